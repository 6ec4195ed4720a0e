//! Disk waits must not hold up other work: a flush syncs without the partition's lock, and a
//! topic's creation syncs without the topics' lock. Real threads pause in a held sync of the
//! in-memory disk while others go on (or, if the code regressed, hang until a timeout fails the
//! test).

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use keel::broker::config::{BrokerConfig, TopicOverrides};
use keel::broker::topics::TopicError;
use keel::broker::Broker;
use keel::io::mem::MemDisk;
use keel::io::os::block_on;
use keel::io::os::{OsClock, OsRng};
use keel::log::batch::{BatchBuilder, NewRecord};
use keel::log::{Log, LogConfig};
use keel::partition::Partition;

fn wait_for_a_held_sync(disk: &MemDisk) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while disk.syncs_waiting() == 0 {
        assert!(Instant::now() < deadline, "no sync was reached");
        thread::sleep(Duration::from_millis(1));
    }
}

fn batch(value: &[u8]) -> Vec<u8> {
    let record = NewRecord {
        timestamp: 1000,
        key: None,
        value: Some(value.to_vec()),
        headers: vec![],
    };
    BatchBuilder::default().build(&[record]).expect("a batch")
}

fn partition(disk: &MemDisk) -> Arc<Partition<MemDisk>> {
    let dir = Path::new("/data/t-0");
    let log = Log::open(disk.clone(), dir, LogConfig::default(), 0).expect("open");
    Arc::new(Partition::open("t".into(), 0, 1, disk, log).expect("partition"))
}

#[test]
fn appends_and_reads_go_on_while_a_flush_syncs() {
    let disk = MemDisk::new();
    let partition = partition(&disk);
    let append = |value: &[u8]| {
        let mut guard = partition.log();
        let log = guard.as_mut().expect("open log");
        log.append(&mut batch(value), 1000)
            .expect("append")
            .last_offset
    };
    let last = append(b"before the flush");
    disk.hold_syncs();
    let flusher = {
        let partition = Arc::clone(&partition);
        thread::spawn(move || block_on(partition.flush(None, &OsClock)))
    };
    wait_for_a_held_sync(&disk);
    // The flush is inside its sync: the log must be free. Take it on another thread so a
    // flush that held it fails this test instead of hanging it.
    let (done, finished) = mpsc::channel();
    {
        let partition = Arc::clone(&partition);
        thread::spawn(move || {
            let mut guard = partition.log();
            let log = guard.as_mut().expect("open log");
            let appended = log.append(&mut batch(b"during the flush"), 1000);
            let read = log.read(0, 1 << 20, u64::MAX).map(|slice| slice.is_some());
            let _ = done.send((appended.is_ok(), read.ok()));
        });
    }
    let outcome = finished.recv_timeout(Duration::from_secs(10));
    disk.release_syncs();
    assert_eq!(
        outcome.expect("the log was held through the flush's sync"),
        (true, Some(true))
    );
    assert!(flusher.join().expect("flusher").expect("flush").is_some());
    let guard = partition.log();
    let log = guard.as_ref().expect("open log");
    assert_eq!(
        log.recovery_point(),
        last + 1,
        "only what preceded the flush"
    );
    assert_eq!(log.next_offset(), last + 2);
    drop(guard);
    // A flush through an offset already durable syncs nothing.
    assert!(block_on(partition.flush(Some(last), &OsClock))
        .expect("flush")
        .is_none());
    assert!(block_on(partition.flush(None, &OsClock))
        .expect("flush")
        .is_some());
}

#[test]
fn a_flush_that_a_truncation_overtakes_fails_instead_of_acknowledging() {
    let disk = MemDisk::new();
    let partition = partition(&disk);
    let last = {
        let mut guard = partition.log();
        let log = guard.as_mut().expect("open log");
        log.append(&mut batch(b"kept"), 1000).expect("append");
        log.append(&mut batch(b"cut"), 1000)
            .expect("append")
            .last_offset
    };
    disk.hold_syncs();
    let flusher = {
        let partition = Arc::clone(&partition);
        thread::spawn(move || block_on(partition.flush(Some(last), &OsClock)))
    };
    wait_for_a_held_sync(&disk);
    // While the flush syncs, the log is cut below `last` (as a follower's truncation would). The
    // truncation holds the log through its own sync, so the flush finishes after it.
    let truncater = {
        let partition = Arc::clone(&partition);
        thread::spawn(move || {
            let mut guard = partition.log();
            guard.as_mut().expect("open log").truncate_to(last)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while disk.syncs_waiting() < 2 {
        assert!(
            Instant::now() < deadline,
            "the truncation never reached its sync"
        );
        thread::sleep(Duration::from_millis(1));
    }
    disk.release_syncs();
    truncater.join().expect("truncater").expect("truncate");
    let flushed = flusher.join().expect("flusher");
    let error = flushed.expect_err("offset `last` was cut: the flush must not vouch for it");
    assert!(error.to_string().contains("truncated"), "{error}");
    let guard = partition.log();
    assert!(guard.as_ref().expect("open log").recovery_point() <= last);
}

type TestBroker = Broker<MemDisk, OsClock, OsRng>;

fn broker(disk: &MemDisk) -> Arc<TestBroker> {
    let config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(disk.clone(), OsClock, OsRng::default(), config);
    Arc::new(broker.expect("open"))
}

#[test]
fn creating_a_topic_holds_up_neither_other_topics_nor_a_second_create_of_it() {
    let disk = MemDisk::new();
    let broker = broker(&disk);
    broker
        .create_topic("a", 1, TopicOverrides::new(), false)
        .expect("create a");
    disk.hold_syncs();
    let create = |broker: &Arc<TestBroker>| {
        let broker = Arc::clone(broker);
        thread::spawn(move || broker.create_topic("b", 3, TopicOverrides::new(), false))
    };
    let first = create(&broker);
    wait_for_a_held_sync(&disk);
    // "b" is being created, stuck in a sync: "a" must still be found and written to.
    let (done, finished) = mpsc::channel();
    {
        let broker = Arc::clone(&broker);
        thread::spawn(move || {
            let topic = broker.topic("a").expect("topic a");
            let mut guard = topic.partitions[0].log();
            let appended = guard.as_mut().expect("open").append(&mut batch(b"v"), 1000);
            let _ = done.send((appended.is_ok(), broker.topics().len()));
        });
    }
    let other = finished.recv_timeout(Duration::from_secs(10));
    let second = create(&broker);
    thread::sleep(Duration::from_millis(50));
    let second_waited = !second.is_finished();
    disk.release_syncs();
    assert_eq!(
        other.expect("topic a was held up by the creation of b"),
        (true, 1),
        "b is not listed before it exists"
    );
    let created = first.join().expect("first create").expect("b created");
    assert_eq!(created.expect("not validate-only").partitions.len(), 3);
    assert!(
        second_waited,
        "the second create answered while the first was under way"
    );
    assert!(matches!(
        second.join().expect("second create"),
        Err(TopicError::AlreadyExists)
    ));
    assert_eq!(broker.topics().len(), 2);
}

/// Deleting a topic, growing it and changing its settings sync files; none of them holds the
/// topics' lock while it does, so requests for other topics go on.
#[test]
fn deleting_growing_and_reconfiguring_a_topic_hold_up_no_other_topic() {
    type Change = fn(&TestBroker) -> Result<(), TopicError>;
    let changes: [(&str, Change); 3] = [
        ("delete", |b| b.delete_topic("b")),
        ("grow", |b| b.add_partitions("b", 4, false)),
        ("reconfigure", |b| {
            let overrides = TopicOverrides::from([("retention.ms".to_owned(), "1000".to_owned())]);
            b.set_topic_overrides("b", overrides, false)
        }),
    ];
    for (what, change) in changes {
        let disk = MemDisk::new();
        let broker = broker(&disk);
        broker
            .create_topic("a", 1, TopicOverrides::new(), false)
            .expect("a");
        broker
            .create_topic("b", 2, TopicOverrides::new(), false)
            .expect("b");
        disk.hold_syncs();
        let changing = {
            let broker = Arc::clone(&broker);
            thread::spawn(move || change(&broker))
        };
        wait_for_a_held_sync(&disk);
        let (done, finished) = mpsc::channel();
        {
            let broker = Arc::clone(&broker);
            thread::spawn(move || {
                let topic = broker.topic("a").expect("topic a");
                let mut guard = topic.partitions[0].log();
                let appended = guard.as_mut().expect("open").append(&mut batch(b"v"), 1000);
                let _ = done.send(appended.is_ok());
            });
        }
        let other = finished.recv_timeout(Duration::from_secs(10));
        disk.release_syncs();
        assert!(
            other.unwrap_or_else(|_| panic!("topic a was held up by the {what} of b")),
            "the append to a failed during the {what} of b"
        );
        changing
            .join()
            .expect("change")
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }
}

/// A commit's write (and under flush=always its fsync) runs without the coordinator's lock: a
/// commit of one group stuck in its write holds up neither another group's commit nor a
/// read of the first group's offsets; a second commit of the stuck group waits, so each
/// group's commits reach the log in order.
#[test]
fn one_groups_commit_write_holds_up_no_other_group() {
    use keel::broker::config::GroupConfig;
    use keel::broker::groups::{Caller, Coordinator};
    use keel::broker::offsets::{Committed, OffsetKey};

    let coordinator = Arc::new(Coordinator::new(GroupConfig::default()));
    let entry = |group: &str, offset: i64| {
        vec![(
            OffsetKey {
                group: group.to_owned(),
                topic: "t".to_owned(),
                partition: 0,
            },
            Committed {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            },
        )]
    };
    let simple = || Caller {
        member_id: "",
        instance_id: None,
        generation: -1,
    };
    let (entered, write_entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let stuck = {
        let coordinator = Arc::clone(&coordinator);
        let entries = entry("slow", 1);
        thread::spawn(move || {
            coordinator.commit(
                "slow",
                simple(),
                entries,
                |_| true,
                0,
                |_| {
                    entered.send(()).expect("test alive");
                    released.recv().expect("released");
                    Ok(())
                },
            )
        })
    };
    write_entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the slow commit reached its write");
    let (done, finished) = mpsc::channel();
    {
        let coordinator = Arc::clone(&coordinator);
        let entries = entry("fast", 2);
        thread::spawn(move || {
            let codes = coordinator.commit("fast", simple(), entries, |_| true, 0, |_| Ok(()));
            let read = coordinator.committed("slow", None).len();
            let _ = done.send((codes, read));
        });
    }
    let other = finished.recv_timeout(Duration::from_secs(10));
    let second = {
        let coordinator = Arc::clone(&coordinator);
        let entries = entry("slow", 3);
        thread::spawn(move || {
            coordinator.commit("slow", simple(), entries, |_| true, 0, |_| Ok(()))
        })
    };
    thread::sleep(Duration::from_millis(50));
    let second_waited = !second.is_finished();
    release.send(()).expect("the slow commit waits");
    let (codes, read) = other.expect("the fast group's commit waited for the slow group's write");
    assert_eq!(codes, Ok(vec![0]));
    assert_eq!(read, 0, "the slow commit is applied only once written");
    assert_eq!(stuck.join().expect("slow commit"), Ok(vec![0]));
    assert!(
        second_waited,
        "a second commit of the slow group overtook the first"
    );
    assert_eq!(second.join().expect("second commit"), Ok(vec![0]));
    let committed = coordinator.committed("slow", None);
    assert_eq!(committed[0].1.as_ref().map(|c| c.offset), Some(3));
}
