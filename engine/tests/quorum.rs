//! Three metadata voters on real files and real TCP on 127.0.0.1: one is elected, a record
//! committed through it reaches every image, the leader's loss elects another that goes on
//! committing, and the old leader, opened again from its files, catches up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keel::io::net::{Listener, Network};
use keel::io::os::{OsDisk, TcpNetwork};
use keel::quorum::image::Applied;
use keel::quorum::records::MetadataRecord;
use keel::quorum::transport::{self, QuorumConfig, QuorumHandle};

const TICK_MS: u64 = 20;
/// Polls for a state, every 20 ms, up to this many times (10 s).
const POLLS_MAX: u32 = 500;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("keel-quorum-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    handle: QuorumHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(
    id: u64,
    listener: <TcpNetwork as Network>::Listener,
    voters: &BTreeMap<u64, String>,
    dir: &TempDir,
) -> Running {
    let config = QuorumConfig {
        id,
        voters: voters.clone(),
        dir: dir.0.join(format!("voter-{id}")),
        tick_ms: TICK_MS,
        session_timeout_ms: 9_000,
    };
    let (handle, commands) = transport::channel();
    let task = tokio::spawn(transport::run(
        OsDisk,
        keel::io::os::OsRng::default(),
        TcpNetwork,
        listener,
        config,
        commands,
        |_| {},
    ));
    Running { handle, task }
}

async fn leader_of(running: &BTreeMap<u64, Running>) -> u64 {
    for _ in 0..POLLS_MAX {
        for (&id, r) in running {
            if let Some(status) = r.handle.status().await {
                if status.leader == Some(id) {
                    return id;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leader among {:?}", running.keys().collect::<Vec<_>>());
}

fn topic(name: &str, id: u8) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        name: name.into(),
        id: [id; 16],
        partitions: vec![],
        configs: vec![],
    }
}

async fn wait_for_topic(handle: &QuorumHandle, name: &str) {
    for _ in 0..POLLS_MAX {
        if let Some(status) = handle.status().await {
            if status.image.topics.contains_key(name) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} never reached the voter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_commit_through_a_leader_and_survive_its_loss() {
    let dir = TempDir::new("three");
    let mut listeners = BTreeMap::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpNetwork.bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, listener.local_address().unwrap());
        listeners.insert(id, listener);
    }
    let mut running = BTreeMap::new();
    for (id, listener) in listeners {
        running.insert(id, start(id, listener, &voters, &dir).await);
    }
    let leader = leader_of(&running).await;
    let committed = running[&leader]
        .handle
        .propose(topic("orders", 1))
        .await
        .unwrap();
    assert_eq!(committed.outcome, Applied::Done);
    let again = running[&leader]
        .handle
        .propose(topic("orders", 2))
        .await
        .unwrap();
    assert!(matches!(again.outcome, Applied::Rejected(_)), "{again:?}");
    for r in running.values() {
        wait_for_topic(&r.handle, "orders").await;
    }

    // The leader goes: the other two elect one of themselves and go on.
    let gone = running.remove(&leader).unwrap();
    gone.task.abort();
    let _ = gone.task.await;
    let second = leader_of(&running).await;
    assert_ne!(second, leader);
    let committed = running[&second]
        .handle
        .propose(topic("payments", 3))
        .await
        .unwrap();
    assert_eq!(committed.outcome, Applied::Done);

    // The old leader comes back from its files and catches up.
    // Its listener closes as its tasks wind down: the port is taken again when it is free.
    let mut listener = None;
    for _ in 0..POLLS_MAX {
        match TcpNetwork.bind(&voters[&leader]).await {
            Ok(bound) => {
                listener = Some(bound);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let listener = listener.expect("the old leader's port is free again");
    running.insert(leader, start(leader, listener, &voters, &dir).await);
    wait_for_topic(&running[&leader].handle, "payments").await;
    let status = running[&leader].handle.status().await.unwrap();
    assert!(status.image.topics.contains_key("orders"));

    // A follower forwards a proposal to the leader, and hears when it commits.
    let leader = leader_of(&running).await;
    let follower = running.keys().copied().find(|&id| id != leader).unwrap();
    let committed = running[&follower].handle.propose(topic("x", 9)).await;
    assert_eq!(
        committed.expect("forwarded and committed").outcome,
        Applied::Done
    );
    assert!(running[&leader]
        .handle
        .view()
        .image
        .topics
        .contains_key("x"));
    for (_, r) in running {
        r.task.abort();
    }
}
