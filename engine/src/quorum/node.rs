//! One voter of the metadata quorum: raft-rs's `RawNode` over `DiskStorage`, the image its
//! committed records build, and the ready loop that makes raft-rs's decisions durable before
//! their messages leave (entries and hard state synced, then messages handed out).
//!
//! The voter does no IO of its own beyond its storage: the driver (`transport.rs`) ticks it by
//! the clock, steps it with the messages that arrive, and sends the messages `process` returns.

use std::io;
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{Config, RawNode, StateRole};

use super::image::{Applied, MetadataImage};
use super::records::MetadataRecord;
use super::storage::DiskStorage;
use crate::io::{Disk, Rng};

/// Ticks without a leader's heartbeat before a follower stands for election (randomized by
/// raft-rs between this and twice this), and between a leader's heartbeats.
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;

/// Entries applied after a snapshot before the next one is taken: bounds the log's size.
pub const SNAPSHOT_EVERY: u64 = 1024;

/// A committed entry, applied.
#[derive(Clone, Debug)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    pub record: MetadataRecord,
    /// What the proposer attached (to match the entry to its proposal); empty for the entries
    /// raft-rs writes itself.
    pub context: Vec<u8>,
    pub outcome: Applied,
}

/// What one pass of the ready loop produced.
#[derive(Default, Debug)]
pub struct Output {
    /// Messages to send, in order.
    pub messages: Vec<Message>,
    pub committed: Vec<Committed>,
    /// The term this voter became the leader in, when it did in this pass.
    pub became_leader: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader is known to take (or be forwarded) the proposal.
    NotLeader(Option<u64>),
    /// raft-rs refused it (a proposal dropped during a leadership transfer, say).
    Dropped(String),
}

pub struct Voter<D: Disk, R: Rng> {
    raw: RawNode<DiskStorage<D>>,
    image: MetadataImage,
    led_term: u64,
    /// Draws each election timeout: raft-rs draws its own from the operating system's
    /// randomness, which the simulator cannot replay, so every one it draws is replaced.
    rng: R,
    /// The (term, role) the timeout was last drawn for: raft-rs draws a new one at each change.
    drawn_for: Option<(u64, StateRole)>,
}

impl<D: Disk, R: Rng> Voter<D, R> {
    /// Opens voter `id` of the quorum of `voters` with its files in `dir`.
    ///
    /// # Errors
    /// IO errors, damaged state (see `DiskStorage::open`), a configuration raft-rs refuses.
    pub fn open(disk: D, rng: R, dir: &Path, id: u64, voters: &[u64]) -> io::Result<Voter<D, R>> {
        let storage = DiskStorage::open(disk, dir, voters)?;
        let snapshot = storage.snapshot_ref();
        let image = if snapshot.get_metadata().index == 0 {
            MetadataImage::default()
        } else {
            MetadataImage::decode(&snapshot.data).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(super::storage::SNAPSHOT_FILE).display()),
                )
            })?
        };
        let config = Config {
            id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied: image.applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let raw = RawNode::new(&config, storage, &logger(id))
            .map_err(|e| io::Error::other(format!("raft: {e}")))?;
        let mut voter = Voter {
            raw,
            image,
            led_term: 0,
            rng,
            drawn_for: None,
        };
        voter.draw_election_timeout();
        Ok(voter)
    }

    /// A new election timeout from `rng`, uniform in [ELECTION_TICKS, 2 * ELECTION_TICKS) as
    /// raft-rs's own, whenever raft-rs has drawn one (a new term or role) since the last.
    fn draw_election_timeout(&mut self) {
        let now = Some((self.raw.raft.term, self.raw.raft.state));
        if now == self.drawn_for {
            return;
        }
        self.drawn_for = now;
        let span = ELECTION_TICKS as u64;
        let timeout = ELECTION_TICKS + (self.rng.next_u64() % span) as usize;
        self.raw.raft.set_randomized_election_timeout(timeout);
    }

    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this voter knows of.
    pub fn leader(&self) -> Option<u64> {
        let leader = self.raw.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    pub fn tick(&mut self) {
        self.raw.tick();
        self.draw_election_timeout();
    }

    /// Hands the voter a message from another voter. Messages from a stale term or an unknown
    /// voter are dropped by raft-rs; errors are logged and the message is dropped.
    pub fn step(&mut self, message: Message) {
        let from = message.from;
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(from, error = %e, "dropped a raft message");
        }
        self.draw_election_timeout();
    }

    /// Tells raft-rs what became of a snapshot sent to `to`. Until it is told, the leader sends
    /// that follower nothing more; a snapshot lost on the way would leave it behind for good.
    /// `delivered` (handed to the transport) makes the leader probe the follower from the
    /// snapshot on, which sends the snapshot again if it never arrived.
    /// Asks raft-rs to hand leadership to `to` (a no-op unless this voter leads).
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
    }

    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    /// Proposes `record`; `context` comes back with it when it commits.
    ///
    /// # Errors
    /// A follower forwards the proposal to the leader it knows (raft-rs's proposal
    /// forwarding): the entry comes back with `context` when it commits, as on the leader.
    ///
    /// # Errors
    /// `NotLeader(None)` when no leader is known, `Dropped` when raft-rs refuses it.
    pub fn propose(
        &mut self,
        context: Vec<u8>,
        record: &MetadataRecord,
    ) -> Result<(), ProposeError> {
        if self.leader().is_none() {
            return Err(ProposeError::NotLeader(None));
        }
        self.raw
            .propose(context, record.encode())
            .map_err(|e| ProposeError::Dropped(e.to_string()))
    }

    /// One pass of raft-rs's ready loop: persists what it must (snapshot, entries, hard state:
    /// each synced), applies what committed, and returns the messages to send.
    ///
    /// # Errors
    /// IO errors of the storage: the voter must then stop (raft-rs's state may be ahead of the
    /// disk), and be opened again.
    pub fn process(&mut self) -> io::Result<Output> {
        let mut output = Output::default();
        if self.raw.has_ready() {
            let mut ready = self.raw.ready();
            output.messages.extend(ready.take_messages());
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                let image = MetadataImage::decode(&snapshot.data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                self.raw.mut_store().apply_snapshot(snapshot)?;
                self.image = image;
            }
            let committed = ready.take_committed_entries();
            self.apply(committed, &mut output);
            if !ready.entries().is_empty() {
                self.raw.mut_store().append(ready.entries())?;
            }
            if let Some(hard_state) = ready.hs() {
                self.raw.mut_store().set_hard_state(hard_state.clone())?;
            }
            output.messages.extend(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            output.messages.extend(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply(committed, &mut output);
            self.raw.advance_apply();
            self.snapshot_if_due()?;
        }
        if self.is_leader() && self.led_term != self.term() {
            self.led_term = self.term();
            output.became_leader = Some(self.led_term);
        }
        Ok(output)
    }

    fn apply(&mut self, entries: Vec<Entry>, output: &mut Output) {
        for entry in entries {
            let record = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => Ok(MetadataRecord::Noop),
                EntryType::EntryNormal => MetadataRecord::decode(&entry.data),
                other => Err(super::records::DecodeError(format!(
                    "a {other:?} entry (membership changes are not supported)"
                ))),
            };
            let (record, outcome) = match record {
                Ok(record) => {
                    let outcome = self.image.apply(entry.index, &record);
                    (record, outcome)
                }
                Err(e) => {
                    // Committed, so on every voter alike: skipped everywhere the same way.
                    tracing::error!(index = entry.index, error = %e, "a committed metadata entry does not decode; skipped");
                    let outcome = self.image.apply(entry.index, &MetadataRecord::Noop);
                    debug_assert_eq!(outcome, Applied::Done);
                    (MetadataRecord::Noop, Applied::Rejected(e.to_string()))
                }
            };
            output.committed.push(Committed {
                index: entry.index,
                term: entry.term,
                record,
                context: entry.context.to_vec(),
                outcome,
            });
        }
    }

    fn snapshot_if_due(&mut self) -> io::Result<()> {
        let applied = self.image.applied;
        let snapshot_index = self.raw.store().snapshot_ref().get_metadata().index;
        if applied >= snapshot_index + SNAPSHOT_EVERY {
            let data = self.image.encode();
            self.raw.mut_store().compact(applied, data)?;
            tracing::debug!(
                voter = self.id(),
                index = applied,
                "metadata snapshot taken"
            );
        }
        Ok(())
    }
}

/// A Raft message as bytes (raft's protobuf encoding), for the wire.
///
/// # Errors
/// When protobuf cannot encode it.
pub fn encode_message(message: &Message) -> io::Result<Vec<u8>> {
    message
        .write_to_bytes()
        .map_err(|e| io::Error::other(format!("encoding a raft message: {e}")))
}

/// # Errors
/// Bytes that are not a Raft message.
pub fn decode_message(bytes: &[u8]) -> io::Result<Message> {
    Message::parse_from_bytes(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("raft message: {e}")))
}

/// raft-rs logs through slog: its records go to tracing (target `keel::raft`), info as debug
/// (elections are reported by the driver), warnings and errors as they are.
fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("voter" => id))
}

struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = KvText(String::new());
        let _ = slog::KV::serialize(values, record, &mut fields);
        let _ = slog::KV::serialize(&record.kv(), record, &mut fields);
        let message = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "keel::raft", "{message}{}", fields.0)
            }
            slog::Level::Warning => tracing::warn!(target: "keel::raft", "{message}{}", fields.0),
            slog::Level::Info => tracing::debug!(target: "keel::raft", "{message}{}", fields.0),
            _ => tracing::trace!(target: "keel::raft", "{message}{}", fields.0),
        }
        Ok(())
    }
}

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use crate::io::os::OsRng;
    use std::collections::VecDeque;
    use std::path::PathBuf;

    /// Three voters on their own disks, messages delivered by hand, optionally dropped for a
    /// cut-off voter.
    struct Cluster {
        disks: Vec<MemDisk>,
        voters: Vec<Option<Voter<MemDisk, OsRng>>>,
        wire: VecDeque<Message>,
        committed: Vec<Vec<Committed>>,
        cut_off: Option<u64>,
        /// Snapshots still to lose on the way (each reported as handed over, as the
        /// transport does when it queues one).
        snapshots_to_lose: u32,
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data/__cluster_metadata-0")
    }

    impl Cluster {
        fn new(n: u64) -> Cluster {
            let ids: Vec<u64> = (1..=n).collect();
            let disks: Vec<MemDisk> = ids.iter().map(|_| MemDisk::new()).collect();
            let voters = ids
                .iter()
                .map(|&id| {
                    Some(
                        Voter::open(
                            disks[id as usize - 1].clone(),
                            OsRng::seeded(id),
                            &dir(),
                            id,
                            &ids,
                        )
                        .unwrap(),
                    )
                })
                .collect();
            Cluster {
                disks,
                voters,
                wire: VecDeque::new(),
                committed: vec![Vec::new(); n as usize],
                cut_off: None,
                snapshots_to_lose: 0,
            }
        }

        fn run(&mut self, ticks: usize) {
            for _ in 0..ticks {
                for voter in self.voters.iter_mut().flatten() {
                    voter.tick();
                }
                self.settle();
            }
        }

        fn settle(&mut self) {
            for _ in 0..1000 {
                for (i, voter) in self.voters.iter_mut().enumerate() {
                    let Some(voter) = voter else { continue };
                    let output = voter.process().unwrap();
                    for message in &output.messages {
                        if message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                            voter.report_snapshot(message.to, true);
                        }
                    }
                    self.wire.extend(output.messages);
                    self.committed[i].extend(output.committed);
                }
                if self.wire.is_empty() {
                    return;
                }
                while let Some(message) = self.wire.pop_front() {
                    if self
                        .cut_off
                        .is_some_and(|c| c == message.to || c == message.from)
                    {
                        continue;
                    }
                    let snapshot =
                        message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
                    if snapshot && self.snapshots_to_lose > 0 {
                        self.snapshots_to_lose -= 1;
                        continue;
                    }
                    if let Some(Some(voter)) = self.voters.get_mut(message.to as usize - 1) {
                        voter.step(message);
                    }
                }
            }
            panic!("messages never settled");
        }

        fn leader(&self) -> Option<u64> {
            self.voters
                .iter()
                .flatten()
                .find(|v| v.is_leader() && Some(v.id()) != self.cut_off)
                .map(|v| v.id())
        }

        fn propose(&mut self, name: &str) {
            let leader = self.leader().expect("a leader") as usize - 1;
            let record = MetadataRecord::CreateTopic {
                name: name.into(),
                id: [name.len() as u8; 16],
                partitions: vec![],
                configs: vec![],
            };
            self.voters[leader]
                .as_mut()
                .unwrap()
                .propose(name.as_bytes().to_vec(), &record)
                .unwrap();
            self.settle();
        }

        fn restart(&mut self, id: u64) {
            let i = id as usize - 1;
            self.voters[i] = None;
            let ids: Vec<u64> = (1..=self.voters.len() as u64).collect();
            self.voters[i] = Some(
                Voter::open(
                    self.disks[i].clone(),
                    OsRng::seeded(id + 100),
                    &dir(),
                    id,
                    &ids,
                )
                .unwrap(),
            );
            self.committed[i].clear();
        }
    }

    #[test]
    fn three_voters_elect_one_leader_and_agree_on_what_committed() {
        let mut cluster = Cluster::new(3);
        cluster.run(3 * ELECTION_TICKS);
        let leader = cluster
            .leader()
            .expect("a leader after three election timeouts");
        let leaders = cluster
            .voters
            .iter()
            .flatten()
            .filter(|v| v.is_leader())
            .count();
        assert_eq!(leaders, 1);
        for name in ["a", "bb", "ccc"] {
            cluster.propose(name);
        }
        cluster.run(HEARTBEAT_TICKS * 2);
        for voter in cluster.voters.iter().flatten() {
            let names: Vec<&String> = voter.image().topics.keys().collect();
            assert_eq!(names, vec!["a", "bb", "ccc"], "voter {}", voter.id());
        }
        // The leader is cut off: the other two elect a new one and go on.
        cluster.cut_off = Some(leader);
        cluster.run(4 * ELECTION_TICKS);
        let new_leader = cluster.leader().expect("a new leader");
        assert_ne!(new_leader, leader);
        cluster.propose("dddd");
        // The old leader rejoins and catches up.
        cluster.cut_off = None;
        cluster.run(4 * ELECTION_TICKS);
        for voter in cluster.voters.iter().flatten() {
            assert!(
                voter.image().topics.contains_key("dddd"),
                "voter {}",
                voter.id()
            );
        }
    }

    #[test]
    fn a_restarted_voter_rebuilds_its_image_from_its_log() {
        let mut cluster = Cluster::new(3);
        cluster.run(3 * ELECTION_TICKS);
        cluster.propose("a");
        cluster.propose("bb");
        cluster.run(HEARTBEAT_TICKS * 2);
        let follower = (1..=3).find(|&id| Some(id) != cluster.leader()).unwrap();
        cluster.restart(follower);
        cluster.run(2 * ELECTION_TICKS);
        let voter = cluster.voters[follower as usize - 1].as_ref().unwrap();
        let names: Vec<&String> = voter.image().topics.keys().collect();
        assert_eq!(names, vec!["a", "bb"]);
    }

    #[test]
    fn a_snapshot_brings_a_voter_that_missed_compacted_entries_up_to_date() {
        let mut cluster = Cluster::new(3);
        cluster.run(3 * ELECTION_TICKS);
        let leader = cluster.leader().unwrap();
        let lagging = (1..=3).find(|&id| id != leader).unwrap();
        cluster.cut_off = Some(lagging);
        for i in 0..SNAPSHOT_EVERY + 10 {
            let leader = cluster.leader().unwrap() as usize - 1;
            let record = MetadataRecord::Noop;
            cluster.voters[leader]
                .as_mut()
                .unwrap()
                .propose(i.to_be_bytes().to_vec(), &record)
                .unwrap();
            if i % 64 == 0 {
                cluster.settle();
            }
        }
        cluster.propose("after");
        // The first snapshot sent is lost: the leader must send it again, not wait for good.
        cluster.snapshots_to_lose = 1;
        let leader_voter = cluster.voters[cluster.leader().unwrap() as usize - 1]
            .as_ref()
            .unwrap();
        assert!(leader_voter.raw.store().snapshot_ref().get_metadata().index > 0);
        cluster.cut_off = None;
        cluster.run(4 * ELECTION_TICKS);
        let voter = cluster.voters[lagging as usize - 1].as_ref().unwrap();
        assert!(voter.image().topics.contains_key("after"));
        assert_eq!(voter.image(), leader_voter_image(&cluster));
    }

    fn leader_voter_image(cluster: &Cluster) -> &MetadataImage {
        cluster.voters[cluster.leader().unwrap() as usize - 1]
            .as_ref()
            .unwrap()
            .image()
    }
}
