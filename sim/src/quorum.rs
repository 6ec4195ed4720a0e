//! The metadata quorum under the simulator (`--brokers N`): N voters, each a madsim node with
//! its own `SimDisk`, running keel's quorum driver (`keel::quorum::transport::run`) over madsim's
//! TCP, exactly as a controller runs it. A client proposes topic creations through whichever
//! voter it believes leads, while a fault schedule kills voters, cuts the power of one, a
//! minority or all of them, isolates voters and the leader, splits the voters into two sides,
//! and restarts a voter many times in a row. Then the network heals, every voter is up, and the
//! checkers judge the history:
//!
//! - one leader per term: no two voters became leader in the same term;
//! - one history: every voter applied the same record at every index, across restarts;
//! - durability: every proposal answered as committed is at its index in that history, and in
//!   every voter's final image (a committed record survives any power losses, since every
//!   append and vote is synced before it is acted on);
//! - liveness: after the heal a proposal commits within `LIVENESS_MAX_MS` of simulated time,
//!   and every voter catches up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::io::net::Network;
use keel::io::os::TcpNetwork;
use keel::quorum::records::MetadataRecord;
use keel::quorum::transport::{self, ProposalError, QuorumConfig, QuorumEvent, QuorumHandle};
use madsim::net::NetSim;
use madsim::rand::seq::SliceRandom;
use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle};

use crate::checkers::Violation;
use crate::disk::{FaultCounts, SimDisk};
use crate::history::{Event, History, TimedEvent};
use crate::rng::SimRng;
use crate::workload::sleep_ms;

pub const CONTROLLER_PORT: u16 = 9093;
const DIR: &str = "/keel-data/__cluster_metadata-0";
/// Simulated time after the heal within which a proposal must commit and every voter catch up.
pub const LIVENESS_MAX_MS: u64 = 30_000;
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(3);

fn address(voter: u64) -> String {
    format!("10.0.1.{voter}:{CONTROLLER_PORT}")
}

type Registry = Arc<Mutex<BTreeMap<u64, QuorumHandle>>>;

/// The running voters: their nodes, disks and handles.
struct Voters {
    handle: Handle,
    nodes: BTreeMap<u64, NodeHandle>,
    disks: BTreeMap<u64, SimDisk>,
    registry: Registry,
    history: Arc<History>,
    /// The disks' power-loss draws.
    disk_rng: Mutex<SimRng>,
}

impl Voters {
    fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn handle_of(&self, voter: u64) -> Option<QuorumHandle> {
        self.registry.lock().expect("registry").get(&voter).cloned()
    }

    fn kill(&self, voter: u64, power: bool) {
        self.handle.kill(self.nodes[&voter].id());
        self.registry.lock().expect("registry").remove(&voter);
        let disk = &self.disks[&voter];
        if power {
            disk.power_loss(&mut self.disk_rng.lock().expect("rng"));
        } else {
            disk.crash();
        }
        self.history.record(Event::VoterDown { voter, power });
    }

    fn restart(&self, voter: u64) {
        self.handle.restart(self.nodes[&voter].id());
    }

    fn cut(&self, voter: u64, cut: bool) {
        let net = NetSim::current();
        if cut {
            net.clog_node(self.nodes[&voter].id());
        } else {
            net.unclog_node(self.nodes[&voter].id());
        }
        self.history.record(Event::VoterNetwork { voter, cut });
    }

    /// The voter that says it leads (the first found), asking every running one.
    async fn leader(&self) -> Option<u64> {
        for voter in self.ids() {
            let Some(handle) = self.handle_of(voter) else {
                continue;
            };
            let status = tokio::time::timeout(Duration::from_millis(100), handle.status()).await;
            if let Ok(Some(status)) = status {
                if status.leader == Some(voter) {
                    return Some(voter);
                }
            }
        }
        None
    }
}

/// A voter's process: opens the quorum and runs its driver; when the driver stops on a storage
/// error, it is opened again after a pause, as a supervisor would.
async fn voter_main(
    voter: u64,
    voters: BTreeMap<u64, String>,
    disk: SimDisk,
    history: Arc<History>,
    registry: Registry,
) {
    loop {
        let listener = match TcpNetwork.bind(&format!("0.0.0.0:{CONTROLLER_PORT}")).await {
            Ok(listener) => listener,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (handle, commands) = transport::channel();
        registry.lock().expect("registry").insert(voter, handle);
        history.record(Event::VoterUp { voter });
        let config = QuorumConfig {
            id: voter,
            voters: voters.clone(),
            dir: DIR.into(),
            tick_ms: transport::TICK_MS,
            session_timeout_ms: 9_000,
        };
        let observer = history.clone();
        let observe = move |event: &QuorumEvent| match event {
            QuorumEvent::BecameLeader { term } => {
                observer.record(Event::BecameLeader { voter, term: *term })
            }
            QuorumEvent::Committed(c) => observer.record(Event::MetaApplied {
                voter,
                index: c.index,
                term: c.term,
                record: describe(&c.record),
            }),
        };
        let result = transport::run(
            disk.clone(),
            crate::clock::SimRandom,
            TcpNetwork,
            listener,
            config,
            commands,
            observe,
        )
        .await;
        registry.lock().expect("registry").remove(&voter);
        // No disk faults but crashes and power losses are injected: every open and every sync
        // must succeed, and a failure is a found bug.
        let error = match result {
            Ok(()) => "the driver stopped".to_owned(),
            Err(e) => e.to_string(),
        };
        history.record(Event::Violation {
            checker: "quorum-recovery",
            message: format!("voter {voter}: {error}"),
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn describe(record: &MetadataRecord) -> String {
    match record {
        MetadataRecord::Noop => "noop".to_owned(),
        MetadataRecord::CreateTopic { name, .. } => name.clone(),
        other => format!("{other:?}"),
    }
}

fn topic(name: &str, n: u64) -> MetadataRecord {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    MetadataRecord::CreateTopic {
        name: name.to_owned(),
        id,
        partitions: vec![],
        configs: vec![],
    }
}

/// Proposes `record` through `*target`, following NotLeader answers; the index it committed at.
async fn propose(voters: &Voters, target: &mut u64, record: &MetadataRecord) -> Option<u64> {
    let ids = voters.ids();
    let Some(handle) = voters.handle_of(*target) else {
        *target = ids[madsim::rand::thread_rng().gen_range(0..ids.len())];
        return None;
    };
    match tokio::time::timeout(PROPOSAL_TIMEOUT, handle.propose(record.clone())).await {
        Ok(Ok(committed)) => Some(committed.index),
        Ok(Err(ProposalError::NotLeader(Some(leader)))) => {
            *target = leader;
            None
        }
        Ok(Err(ProposalError::Unknown(_))) => None,
        _ => {
            *target = ids[madsim::rand::thread_rng().gen_range(0..ids.len())];
            None
        }
    }
}

async fn proposer(voters: Arc<Voters>, operations: u64, done: Arc<std::sync::atomic::AtomicBool>) {
    let mut target = 1;
    for n in 0..operations {
        let name = format!("t{n}");
        if let Some(index) = propose(&voters, &mut target, &topic(&name, n)).await {
            voters.history.record(Event::MetaAcked {
                index,
                record: name,
            });
        } else {
            sleep_ms(20).await;
        }
        sleep_ms(madsim::rand::thread_rng().gen_range(0..10)).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// One fault after another until the proposer is done.
async fn faults(voters: Arc<Voters>, done: Arc<std::sync::atomic::AtomicBool>) {
    let ids = voters.ids();
    let n = ids.len();
    let minority = (n - 1) / 2;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let mut rng = madsim::rand::thread_rng();
        sleep_ms(rng.gen_range(100..1500)).await;
        let one = ids[rng.gen_range(0..n)];
        let down_ms = rng.gen_range(50..2000);
        match rng.gen_range(0..9) {
            8 => {
                // Aimed at elections: the leader goes, and while the rest elect another, voters
                // are killed and back within milliseconds, again and again, so that a voter
                // forgets (if it could) a vote it just cast and casts another in the same term.
                // Half the time one link is cut meanwhile, so that a candidate may not hear of
                // the leader elected by the voters it can reach.
                let leader = voters.leader().await.unwrap_or(one);
                voters.kill(leader, true);
                let net = NetSim::current();
                let link = rng.gen_bool(0.5).then(|| {
                    let a = ids[rng.gen_range(0..n)];
                    let b = ids[(ids.iter().position(|&x| x == a).expect("listed") + 1) % n];
                    (voters.nodes[&a].id(), voters.nodes[&b].id())
                });
                if let Some((a, b)) = link {
                    net.clog_link(a, b);
                    net.clog_link(b, a);
                }
                let start = crate::clock::elapsed_ms();
                let until = start + rng.gen_range(1000..4000);
                let back = start + rng.gen_range(0..2000);
                let mut leader_down = true;
                while crate::clock::elapsed_ms() < until {
                    if leader_down && crate::clock::elapsed_ms() >= back {
                        voters.restart(leader);
                        leader_down = false;
                    }
                    let other = ids[rng.gen_range(0..n)];
                    if other != leader || !leader_down {
                        voters.kill(other, rng.gen_bool(0.5));
                        sleep_ms(rng.gen_range(0..10)).await;
                        voters.restart(other);
                    }
                    sleep_ms(rng.gen_range(5..60)).await;
                }
                if leader_down {
                    voters.restart(leader);
                }
                if let Some((a, b)) = link {
                    net.unclog_link(a, b);
                    net.unclog_link(b, a);
                }
            }
            0 => {
                voters.kill(one, false);
                sleep_ms(down_ms).await;
                voters.restart(one);
            }
            1 => {
                voters.kill(one, true);
                sleep_ms(down_ms).await;
                voters.restart(one);
            }
            2 | 3 => {
                // A minority, or every voter, loses power at once.
                let count = if rng.gen_bool(0.5) { minority } else { n };
                let mut chosen = ids.clone();
                chosen.shuffle(&mut rng);
                chosen.truncate(count);
                for &voter in &chosen {
                    voters.kill(voter, true);
                }
                sleep_ms(down_ms).await;
                for &voter in &chosen {
                    voters.restart(voter);
                }
            }
            4 => {
                voters.cut(one, true);
                sleep_ms(rng.gen_range(200..3000)).await;
                voters.cut(one, false);
            }
            5 => {
                // The leader alone is cut off: the rest must elect another and go on.
                if let Some(leader) = voters.leader().await {
                    voters.cut(leader, true);
                    sleep_ms(rng.gen_range(500..4000)).await;
                    voters.cut(leader, false);
                }
            }
            6 => {
                // A restart storm: one voter killed again and again as it comes up.
                for _ in 0..rng.gen_range(3..6) {
                    voters.kill(one, rng.gen_bool(0.5));
                    sleep_ms(rng.gen_range(5..100)).await;
                    voters.restart(one);
                    sleep_ms(rng.gen_range(5..200)).await;
                }
            }
            _ => {
                // Two sides: a minority cut from the majority (each side still whole).
                let net = NetSim::current();
                let split = rng.gen_range(1..=minority.max(1));
                let (small, large) = ids.split_at(split);
                for &a in small {
                    for &b in large {
                        net.clog_link(voters.nodes[&a].id(), voters.nodes[&b].id());
                        net.clog_link(voters.nodes[&b].id(), voters.nodes[&a].id());
                    }
                }
                sleep_ms(rng.gen_range(500..4000)).await;
                for &a in small {
                    for &b in large {
                        net.unclog_link(voters.nodes[&a].id(), voters.nodes[&b].id());
                        net.unclog_link(voters.nodes[&b].id(), voters.nodes[&a].id());
                    }
                }
            }
        }
    }
}

/// After the faults: a proposal must commit, and every voter reach its index.
async fn heal(voters: &Voters) {
    voters.history.record(Event::Healed);
    let start = crate::clock::elapsed_ms();
    let mut target = voters.ids()[0];
    let mut committed = None;
    while crate::clock::elapsed_ms() - start < LIVENESS_MAX_MS {
        if let Some(index) = propose(voters, &mut target, &topic("after-heal", u64::MAX)).await {
            committed = Some(index);
            break;
        }
        sleep_ms(50).await;
    }
    voters.history.record(Event::MetaLiveness {
        ms: committed.map(|_| crate::clock::elapsed_ms() - start),
    });
    let Some(index) = committed else {
        return;
    };
    voters.history.record(Event::MetaAcked {
        index,
        record: "after-heal".to_owned(),
    });
    for voter in voters.ids() {
        let mut last = None;
        while crate::clock::elapsed_ms() - start < 2 * LIVENESS_MAX_MS {
            if let Some(handle) = voters.handle_of(voter) {
                if let Ok(Some(status)) =
                    tokio::time::timeout(Duration::from_millis(100), handle.status()).await
                {
                    let caught_up = status.image.applied >= index;
                    last = Some(status);
                    if caught_up {
                        break;
                    }
                }
            }
            sleep_ms(50).await;
        }
        if let Some(status) = last {
            voters.history.record(Event::MetaFinal {
                voter,
                applied: status.image.applied,
                topics: status.image.topics.keys().cloned().collect(),
            });
        }
    }
}

/// What one quorum seed did.
pub struct QuorumVerdict {
    pub operations: u64,
    pub faults: FaultCounts,
}

/// Runs the quorum workload of `voters` voters with `operations` proposals.
pub async fn run(
    voter_count: u64,
    operations: u64,
    disk_seed: u64,
    history: Arc<History>,
) -> QuorumVerdict {
    let handle = Handle::current();
    let ids: Vec<u64> = (1..=voter_count).collect();
    let addresses: BTreeMap<u64, String> = ids.iter().map(|&id| (id, address(id))).collect();
    let registry: Registry = Arc::default();
    let mut nodes = BTreeMap::new();
    let mut disks = BTreeMap::new();
    for &id in &ids {
        let disk = SimDisk::new(disk_seed.wrapping_add(id));
        let (d, h, r, a) = (
            disk.clone(),
            history.clone(),
            registry.clone(),
            addresses.clone(),
        );
        let node = handle
            .create_node()
            .name(format!("voter-{id}"))
            .ip(format!("10.0.1.{id}").parse().expect("ip"))
            .init(move || voter_main(id, a.clone(), d.clone(), h.clone(), r.clone()))
            .build();
        nodes.insert(id, node);
        disks.insert(id, disk);
    }
    let voters = Arc::new(Voters {
        handle: handle.clone(),
        nodes,
        disks,
        registry,
        history: history.clone(),
        disk_rng: Mutex::new(SimRng::new(disk_seed ^ 0x9e37)),
    });
    let client = handle
        .create_node()
        .name("clients")
        .ip("10.0.2.1".parse().expect("ip"))
        .build();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (v, d) = (voters.clone(), done.clone());
    let proposing = client.spawn(proposer(v, operations, d));
    let (v, d) = (voters.clone(), done.clone());
    let faulting = client.spawn(faults(v, d));
    proposing.await.expect("the client node is never killed");
    let _ = faulting.await;
    {
        let v = voters.clone();
        let _ = client.spawn(async move { heal(&v).await }).await;
    }
    let mut faults = FaultCounts::default();
    for disk in voters.disks.values() {
        faults += disk.fault_counts();
    }
    for node in voters.nodes.values() {
        handle.kill(node.id());
    }
    handle.kill(client.id());
    for disk in voters.disks.values() {
        disk.release();
    }
    QuorumVerdict { operations, faults }
}

/// The quorum's checkers over the whole history (see the module doc).
pub fn check(events: &[TimedEvent], voter_count: u64) -> Option<Violation> {
    let violation = |checker: &'static str, message: String| Some(Violation { checker, message });
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let mut history: BTreeMap<u64, (u64, &str, u64)> = BTreeMap::new();
    let mut acked: Vec<(u64, &str)> = Vec::new();
    let mut finals = Vec::new();
    let mut liveness = None;
    for e in events {
        match &e.event {
            Event::Violation { checker, message } => {
                return violation(checker, format!("at {} ms: {message}", e.at_ms));
            }
            Event::BecameLeader { voter, term } => {
                if let Some(&other) = leaders.get(term).filter(|&&other| other != *voter) {
                    return violation(
                        "one-leader-per-term",
                        format!(
                            "voters {other} and {voter} both led term {term} (at {} ms)",
                            e.at_ms
                        ),
                    );
                }
                leaders.insert(*term, *voter);
            }
            Event::MetaApplied {
                voter,
                index,
                term,
                record,
            } => match history.get(index) {
                Some(&(t, r, v)) if (t, r) != (*term, record.as_str()) => {
                    return violation(
                        "one-history",
                        format!(
                            "at index {index} voter {v} applied {r} (term {t}), voter {voter} {record} (term {term}), at {} ms",
                            e.at_ms
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    history.insert(*index, (*term, record.as_str(), *voter));
                }
            },
            Event::MetaAcked { index, record } => acked.push((*index, record.as_str())),
            Event::MetaFinal {
                voter,
                applied,
                topics,
            } => finals.push((*voter, *applied, topics)),
            Event::MetaLiveness { ms } => liveness = Some(*ms),
            _ => {}
        }
    }
    for &(index, record) in &acked {
        match history.get(&index) {
            Some(&(_, applied, voter)) if applied != record => {
                return violation(
                    "quorum-durability",
                    format!("{record} was acknowledged at index {index}, where voter {voter} applied {applied}"),
                );
            }
            Some(_) => {}
            None => {
                return violation(
                    "quorum-durability",
                    format!("{record} was acknowledged at index {index}, which no voter applied"),
                )
            }
        }
    }
    match liveness {
        None | Some(None) => {
            return violation(
                "quorum-liveness",
                format!("no proposal committed within {LIVENESS_MAX_MS} ms of the heal"),
            )
        }
        Some(Some(_)) => {}
    }
    if finals.len() as u64 != voter_count {
        return violation(
            "quorum-liveness",
            format!(
                "only {} of {voter_count} voters answered after the heal",
                finals.len()
            ),
        );
    }
    let last_acked = acked.iter().map(|&(index, _)| index).max().unwrap_or(0);
    for (voter, applied, topics) in &finals {
        if *applied < last_acked {
            return violation(
                "quorum-liveness",
                format!(
                    "voter {voter} applied only up to {applied} after the heal, not {last_acked}"
                ),
            );
        }
        for &(index, record) in &acked {
            if topics.binary_search(&record.to_owned()).is_err() {
                return violation(
                    "quorum-durability",
                    format!(
                        "voter {voter}'s final image lacks {record}, acknowledged at index {index}"
                    ),
                );
            }
        }
    }
    None
}
