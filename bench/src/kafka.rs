//! The librdkafka side: topic creation, a BaseProducer that keeps librdkafka's queue full, and a
//! BaseConsumer that reads a partition from the beginning by manual assignment (keel has no
//! consumer groups, so nothing subscribes or commits).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Size of every message's value.
pub const MESSAGE_BYTES: usize = 1024;

/// Creates `topic` with one partition, failing loudly on any per-topic error.
pub fn create_topic(address: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .expect("creating the admin client");
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures_executor::block_on(admin.create_topics([&new_topic], &options))
        .expect("CreateTopics request");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
    }
}

/// Counts delivery reports, so the produce phase can check that every message was acknowledged.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Produces `count` messages of [`MESSAGE_BYTES`] to partition 0 of `topic` with the given
/// compression codec, and returns the wall time until the last one is acknowledged.
pub fn produce(address: &str, topic: &str, compression: &str, count: u64) -> Duration {
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", compression)
        .create_with_context(Counting::default())
        .expect("creating the producer");
    let payloads = payloads();
    let started = Instant::now();
    for index in 0..count {
        let payload = &payloads[index as usize % payloads.len()];
        send(&producer, topic, payload);
        // Serve delivery reports now and then, so their queue does not grow without bound.
        if index % 4096 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flushing the producer");
    let elapsed = started.elapsed();
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    let delivered = context.delivered.load(Ordering::Relaxed);
    assert!(
        failed == 0 && delivered == count,
        "{topic}: {delivered} of {count} messages delivered, {failed} failed"
    );
    elapsed
}

/// Enqueues one message, waiting for room whenever librdkafka's queue is full.
fn send(producer: &BaseProducer<Counting>, topic: &str, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8], ()>::to(topic)
        .partition(0)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((err, _)) => panic!("producing to {topic}: {err}"),
        }
    }
}

/// 256 distinct values, each half pseudo-random bytes and half repeated text, so that lz4 has
/// something to compress (about 2:1) without the all-zero payload's absurd ratio.
fn payloads() -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..256)
        .map(|_| {
            let mut value = Vec::with_capacity(MESSAGE_BYTES);
            while value.len() < MESSAGE_BYTES / 2 {
                // xorshift64: cheap, deterministic, and incompressible enough for lz4.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                value.extend_from_slice(&state.to_le_bytes());
            }
            let text = b"keel benchmark payload, repeated so lz4 finds matches; ";
            value.extend(text.iter().cycle().take(MESSAGE_BYTES - value.len()));
            value
        })
        .collect()
}

/// What a consume phase saw.
pub struct Consumed {
    pub wall: Duration,
    /// Until the first message: connection, metadata and ListOffsets, not the fetch path.
    pub first_message: Duration,
    pub bytes: u64,
}

/// Reads partition 0 of `topic` from the beginning until `count` messages have arrived.
pub fn consume(address: &str, topic: &str, count: u64) -> Consumed {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        // Required by librdkafka even without subscribe(); nothing is ever committed.
        .set("group.id", "keel-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "16777216")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .expect("creating the consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("building the assignment");
    consumer.assign(&assignment).expect("assigning partition 0");
    let started = Instant::now();
    let (mut seen, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut first_message = None;
    while seen < count {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first_message.get_or_insert_with(|| started.elapsed());
                seen += 1;
                bytes += message.payload().map_or(0, <[u8]>::len) as u64;
                last_progress = Instant::now();
            }
            Some(Err(err)) => panic!("consuming {topic}: {err}"),
            None => assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "consuming {topic}: stuck at {seen} of {count} messages for 30 s"
            ),
        }
    }
    Consumed {
        wall: started.elapsed(),
        first_message: first_message.unwrap_or_default(),
        bytes,
    }
}
