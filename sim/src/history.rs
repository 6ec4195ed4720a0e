//! What happened in a run, in order: acknowledgements, reads, flushes, faults and recoveries.
//! The workload and the node write it; the checkers read it after the run; its hash is the
//! run's trace hash, which the determinism check compares.
//!
//! A *power epoch* counts power losses: within one epoch the bytes at an offset never change
//! (only a power loss can take back what the page cache held), so an offset's content is judged
//! per epoch.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock;

/// Who wrote a record: producer, batch sequence number, index in the batch. Record values carry
/// it, so any record read back names its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub producer: u32,
    pub seq: u64,
    pub index: u32,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}-s{}-r{}", self.producer, self.seq, self.index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// A produce was acknowledged: its records hold offsets base..=base+ids.len()-1.
    Acked {
        base: u64,
        ids: Vec<RecordId>,
        epoch: u64,
    },
    /// A produce failed or timed out: its records may or may not be in the log.
    ProduceFailed {
        producer: u32,
        seq: u64,
        reason: String,
    },
    /// A reader was served `id` at `offset`.
    Read {
        reader: u32,
        offset: u64,
        id: RecordId,
        epoch: u64,
    },
    /// The node's log is durable below `upto`.
    Flushed {
        upto: u64,
        epoch: u64,
    },
    /// The node opened its log after a start or restart.
    Opened {
        next_offset: u64,
        log_start: u64,
        clean: bool,
        bytes_truncated: u64,
        epoch: u64,
    },
    OpenFailed {
        error: String,
    },
    /// Opening failed while disk faults were on; the node tries again, as a supervisor that
    /// restarts a failed broker would.
    OpenRetried {
        error: String,
    },
    /// Compaction swapped in cleaned segments.
    Compacted {
        segments_cleaned: u64,
        records_removed: u64,
    },
    /// A flushed batch holding offsets first..=last rotted at rest: its records are truly gone
    /// (the checkers excuse their absence, never another record in their place). `records` are
    /// the ones it held (offset and id), read from its bytes before the damage: acknowledged or
    /// not, a newer value of a key among them may have let compaction remove older ones.
    Damaged {
        first: u64,
        last: u64,
        records: Vec<(u64, RecordId)>,
    },
    /// Retention or DeleteRecords moved the log start.
    LogStart {
        offset: u64,
        epoch: u64,
    },
    Crash,
    PowerLoss {
        epoch_after: u64,
    },
    CleanShutdown {
        ok: bool,
    },
    Restart,
    DiskFaults {
        on: bool,
    },
    /// A checker that runs during the workload (served batches) found a problem.
    Violation {
        checker: &'static str,
        message: String,
    },
    Healed,
    /// A group member's commit of `offset` (for its own partition) was acknowledged.
    Committed {
        member: u32,
        offset: i64,
        epoch: u64,
    },
    /// The broker reported this committed offset for a member's partition, asked and answered
    /// within power epoch `epoch` (`None`: it could not be read after the heal).
    CommittedRead {
        member: u32,
        offset: Option<i64>,
        epoch: u64,
    },
    // The metadata quorum (`--brokers N`, sim/src/quorum.rs).
    /// Voter `voter`'s process started (its driver opened the quorum's files).
    VoterUp {
        voter: u64,
    },
    /// Voter `voter` was killed; with `power`, its disk lost what was not synced.
    VoterDown {
        voter: u64,
        power: bool,
    },
    /// Voter `voter`'s network was cut off (`cut`) or given back.
    VoterNetwork {
        voter: u64,
        cut: bool,
    },
    BecameLeader {
        voter: u64,
        term: u64,
    },
    /// Voter `voter` applied the entry at `index` (written in `term`); `record` names it.
    MetaApplied {
        voter: u64,
        index: u64,
        term: u64,
        record: String,
    },
    /// A proposal was answered as committed at `index`.
    MetaAcked {
        index: u64,
        record: String,
    },
    /// What a voter's image held at the end, after the heal: the names of its topics.
    MetaFinal {
        voter: u64,
        applied: u64,
        topics: Vec<String>,
    },
    /// After the heal, the first proposal that committed took this long (`None`: none did).
    MetaLiveness {
        ms: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimedEvent {
    pub at_ms: u64,
    pub event: Event,
}

/// The shared, append-only history of one run.
#[derive(Default)]
pub struct History {
    events: Mutex<Vec<TimedEvent>>,
    epoch: AtomicU64,
    trace: AtomicBool,
    /// The offset ranges of `Event::Damaged`, for the checks made while the run goes on.
    damaged: Mutex<Vec<(u64, u64)>>,
}

impl History {
    pub fn new(trace: bool) -> Arc<History> {
        let history = History::default();
        history.trace.store(trace, Ordering::Relaxed);
        Arc::new(history)
    }

    pub fn record(&self, event: Event) {
        let timed = TimedEvent {
            at_ms: clock::elapsed_ms(),
            event,
        };
        if self.trace.load(Ordering::Relaxed) {
            println!("{:>8} ms  {:?}", timed.at_ms, timed.event);
        }
        if let Event::Damaged { first, last, .. } = timed.event {
            self.damaged
                .lock()
                .expect("history lock")
                .push((first, last));
        }
        self.events.lock().expect("history lock").push(timed);
    }

    /// The current power epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Starts a new power epoch and records the power loss.
    pub fn power_loss(&self) {
        let epoch_after = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.record(Event::PowerLoss { epoch_after });
    }

    /// The offset ranges damaged so far (see `Event::Damaged`).
    pub fn damaged(&self) -> Vec<(u64, u64)> {
        self.damaged.lock().expect("history lock").clone()
    }

    /// A copy of every event recorded so far.
    pub fn events_snapshot(&self) -> Vec<TimedEvent> {
        self.events.lock().expect("history lock").clone()
    }

    /// Every event recorded, moved out: the history is empty afterwards. A seed's history must
    /// not outlive the seed, and tasks of killed nodes that hold it are never dropped (madsim
    /// keeps a task that nothing will wake, and such a task may hold its own waker).
    pub fn take_events(&self) -> Vec<TimedEvent> {
        self.damaged.lock().expect("history lock").clear();
        std::mem::take(&mut *self.events.lock().expect("history lock"))
    }

    /// A hash of every event: two runs of one seed must agree on it.
    pub fn trace_hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.events.lock().expect("history lock").hash(&mut hasher);
        hasher.finish()
    }
}
