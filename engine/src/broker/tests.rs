//! The broker's own locking: disk work that waits on the device must not hold up requests for
//! other topics and partitions.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{BrokerConfig, TopicOverrides};
use super::topics::TopicError;
use super::Broker;
use crate::io::mem::MemDisk;
use crate::io::os::{OsClock, OsRng};
use crate::log::batch::{BatchBuilder, NewRecord};

type TestBroker = Broker<MemDisk, OsClock, OsRng>;

fn broker(disk: &MemDisk) -> Arc<TestBroker> {
    let config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(disk.clone(), OsClock, OsRng::default(), config);
    Arc::new(broker.expect("open"))
}

fn batch() -> Vec<u8> {
    let record = NewRecord {
        timestamp: 1000,
        key: None,
        value: Some(b"v".to_vec()),
        headers: vec![],
    };
    BatchBuilder::default().build(&[record]).expect("a batch")
}

fn wait_for_a_held_sync(disk: &MemDisk) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while disk.syncs_waiting() == 0 {
        assert!(Instant::now() < deadline, "no sync was reached");
        thread::sleep(Duration::from_millis(1));
    }
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
            let appended = guard.as_mut().expect("open").append(&mut batch(), 1000);
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
