// sarama_client drives keel with Go's sarama (Debian's golang-github-shopify-sarama-dev, 1.22)
// for the end-to-end tests (tests/tests/sarama.rs). It is built with GO111MODULE=off and
// GOPATH=/usr/share/gocode, so it uses exactly the sarama that Debian ships.
//
// Subcommands, each exiting 1 with a line starting "FAIL:" on any mismatch:
//
//	produce   --broker B --topic T --count N [--first F]
//	    sends messages F..F+N-1 to partition 0 with a SyncProducer (snappy, batches of up to
//	    100 messages or 10 ms), checks that they got offsets F..F+N-1, prints a summary.
//	consume   --broker B --topic T --count N
//	    reads partition 0 from the oldest offset and checks that offsets 0..N-1 hold exactly
//	    messages 0..N-1, and that the high watermark is N.
//	group     --broker B --topic T --group G --count N --first F
//	    joins consumer group G (offsets from the oldest when nothing is committed), checks that
//	    it reads exactly messages F..F+N-1 at offsets F..F+N-1, marks them, and closes the group,
//	    which commits.
//	committed --broker B --topic T --group G
//	    prints the group's committed offset of partition 0 (OffsetFetch through ClusterAdmin).
//
// Message i has key "key-<i>" and a value derived from i, so the producer and the readers agree
// without sharing state.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

// How long any one subcommand may wait for the broker before it gives up.
const waitMax = 60 * time.Second

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func key(i int) string {
	return fmt.Sprintf("key-%d", i)
}

// value is repetitive, so that snappy has something to compress.
func value(i int) string {
	return strings.Repeat(fmt.Sprintf("value-%d|", i), 1+i%20)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "keel-tests-sarama"
	// Record batches (magic 2) need 0.11; 2.0 is what sarama 1.22 knows well.
	c.Version = sarama.V2_0_0_0
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	return c
}

func main() {
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	if len(os.Args) < 2 {
		fail("usage: sarama_client produce|consume|group|committed [flags]")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	broker := flags.String("broker", "127.0.0.1:9092", "bootstrap broker")
	topic := flags.String("topic", "", "topic")
	group := flags.String("group", "", "consumer group")
	count := flags.Int("count", 1000, "messages")
	first := flags.Int("first", 0, "index of the first message")
	if err := flags.Parse(os.Args[2:]); err != nil {
		fail("%v", err)
	}
	if *topic == "" {
		fail("--topic is required")
	}
	brokers := []string{*broker}
	switch os.Args[1] {
	case "produce":
		produce(brokers, *topic, *first, *count)
	case "consume":
		consume(brokers, *topic, *count)
	case "group":
		consumeGroup(brokers, *topic, *group, *first, *count)
	case "committed":
		committed(brokers, *topic, *group)
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}

func produce(brokers []string, topic string, first, count int) {
	c := config()
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Compression = sarama.CompressionSnappy
	c.Producer.Flush.Messages = 100
	c.Producer.Flush.Frequency = 10 * time.Millisecond
	c.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(brokers, c)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	messages := make([]*sarama.ProducerMessage, count)
	for n := range messages {
		i := first + n
		messages[n] = &sarama.ProducerMessage{
			Topic:     topic,
			Partition: 0,
			Key:       sarama.StringEncoder(key(i)),
			Value:     sarama.StringEncoder(value(i)),
			Metadata:  i,
		}
	}
	if err := producer.SendMessages(messages); err != nil {
		if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
			fail("SendMessages: %d of %d failed; first: %v", len(errs), count, errs[0].Err)
		}
		fail("SendMessages: %v", err)
	}
	for _, m := range messages {
		i := m.Metadata.(int)
		if m.Partition != 0 || m.Offset != int64(i) {
			fail("message %d acknowledged at partition %d offset %d, expected 0/%d",
				i, m.Partition, m.Offset, i)
		}
	}
	if err := producer.Close(); err != nil {
		fail("closing the producer: %v", err)
	}
	fmt.Printf("produce: %d messages at offsets %d..%d\n", count, first, first+count-1)
}

// check fails unless message m is message number m.Offset.
func check(m *sarama.ConsumerMessage) {
	i := int(m.Offset)
	if string(m.Key) != key(i) || string(m.Value) != value(i) {
		fail("offset %d: key %q value %.40q..., expected %q %.40q...",
			m.Offset, m.Key, m.Value, key(i), value(i))
	}
}

func consume(brokers []string, topic string, count int) {
	consumer, err := sarama.NewConsumer(brokers, config())
	if err != nil {
		fail("NewConsumer: %v", err)
	}
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		fail("ConsumePartition: %v", err)
	}
	deadline := time.After(waitMax)
	for next := 0; next < count; next++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != int64(next) {
				fail("read offset %d, expected %d", m.Offset, next)
			}
			check(m)
		case err := <-pc.Errors():
			fail("consuming: %v", err)
		case <-deadline:
			fail("read %d messages of %d in %v", next, count, waitMax)
		}
	}
	// Nothing beyond the produced messages: the high watermark is the count.
	if hwm := pc.HighWaterMarkOffset(); hwm != int64(count) {
		fail("high watermark %d after %d messages", hwm, count)
	}
	if err := pc.Close(); err != nil {
		fail("closing the partition consumer: %v", err)
	}
	if err := consumer.Close(); err != nil {
		fail("closing the consumer: %v", err)
	}
	fmt.Printf("consume: %d messages at offsets 0..%d\n", count, count-1)
}

// groupHandler checks each message against the next expected offset and marks it.
type groupHandler struct {
	next   int
	last   int
	done   chan struct{}
	failed chan string
}

// fail reports the first failure; later ones are dropped, since the first ends the run.
func (h *groupHandler) fail(why string) {
	select {
	case h.failed <- why:
	default:
	}
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		if m.Offset != int64(h.next) {
			h.fail(fmt.Sprintf("group read offset %d, expected %d", m.Offset, h.next))
			return nil
		}
		check(m)
		s.MarkMessage(m, "")
		h.next++
		if h.next > h.last {
			close(h.done)
			return nil
		}
	}
	return nil
}

func consumeGroup(brokers []string, topic, group string, first, count int) {
	if group == "" {
		fail("--group is required")
	}
	c := config()
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// sarama 1.22's defaults: with no retention set it commits with OffsetCommit v1, which
	// Kafka 3.x still takes, and so does keel.
	cg, err := sarama.NewConsumerGroup(brokers, group, c)
	if err != nil {
		fail("NewConsumerGroup: %v", err)
	}
	h := &groupHandler{
		next:   first,
		last:   first + count - 1,
		done:   make(chan struct{}),
		failed: make(chan string, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for err := range cg.Errors() {
			h.fail(fmt.Sprintf("group error: %v", err))
		}
	}()
	consumed := make(chan error, 1)
	go func() {
		// Consume returns at every rebalance; a session that ends early is joined again.
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case why := <-h.failed:
		fail("%s", why)
	case err := <-consumed:
		fail("Consume: %v", err)
	case <-time.After(waitMax):
		fail("group read %d messages of %d in %v", h.next-first, count, waitMax)
	}
	cancel()
	if err := <-consumed; err != nil {
		fail("Consume: %v", err)
	}
	// Closing commits what was marked.
	if err := cg.Close(); err != nil {
		fail("closing the consumer group: %v", err)
	}
	fmt.Printf("group: %d messages at offsets %d..%d\n", count, first, first+count-1)
}

func committed(brokers []string, topic, group string) {
	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	if err != nil {
		fail("ListConsumerGroupOffsets: %v", err)
	}
	block := offsets.GetBlock(topic, 0)
	if block == nil {
		fail("no offset for %s/0 in the answer", topic)
	}
	if block.Err != sarama.ErrNoError {
		fail("OffsetFetch %s/0: %v", topic, block.Err)
	}
	if err := admin.Close(); err != nil {
		fail("closing the admin client: %v", err)
	}
	fmt.Printf("committed: %d\n", block.Offset)
}
