//! A simulated keel node: one process that owns a partition log on its `SimDisk` and serves
//! produce and fetch requests, with a flusher task that applies the log's flush policy, a
//! retention task, and (for the compaction workload) a cleaner task. It is the storage core's server until the Kafka broker takes its place in the
//! harness; requests arrive over an in-memory mailbox, so a killed node simply stops answering.
//!
//! Every flush that succeeds is reported to the history (`Flushed`), which is how the checkers
//! know what the durability contract promises.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use keel::io::Clock;
use keel::log::{FlushPolicy, Log, LogConfig, LogError};

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::history::{Event, History};

/// How the node runs its log.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub dir: PathBuf,
    pub log: LogConfig,
    /// Simulated time an fsync takes before the reply that waited on it.
    pub fsync_ms: u64,
    /// Extra time for an fsync that the disk marked slow.
    pub slow_fsync_ms: u64,
    pub flusher_interval_ms: u64,
    pub retention_interval_ms: u64,
    /// How often the cleaner looks for compaction work (`None`: no cleaner).
    pub cleaner_interval_ms: Option<u64>,
}

/// Why a fetch was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    OutOfRange { log_start: u64, next_offset: u64 },
    Corrupt(String),
    Other(String),
}

/// What a fetch returns: verified batches (possibly none) and the log's bounds.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub log_start: u64,
    pub next_offset: u64,
}

pub enum Request {
    Produce {
        batch: Vec<u8>,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Fetch {
        offset: u64,
        bytes_max: u64,
        reply: oneshot::Sender<Result<Fetched, FetchError>>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Where clients find the node's current request channel; a restart installs a new one.
#[derive(Clone, Default)]
pub struct Mailbox(Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>);

impl Mailbox {
    /// Sends a request; `false` when the node is down.
    pub fn send(&self, request: Request) -> bool {
        let sender = self.0.lock().expect("mailbox lock").clone();
        sender.is_some_and(|s| s.unbounded_send(request).is_ok())
    }

    fn install(&self, sender: mpsc::UnboundedSender<Request>) {
        *self.0.lock().expect("mailbox lock") = Some(sender);
    }

    /// Forgets the channel of a node that was killed.
    pub fn clear(&self) {
        *self.0.lock().expect("mailbox lock") = None;
    }
}

type SharedLog = Arc<Mutex<Option<Log<SimDisk>>>>;

/// The node's main task: open (recover) the log, then serve until killed.
pub async fn run(disk: SimDisk, config: NodeConfig, mailbox: Mailbox, history: Arc<History>) {
    let open = || {
        Log::open(
            disk.clone(),
            &config.dir,
            config.log.clone(),
            SimClock.now_ms(),
        )
    };
    let Some(log) = open_retrying(&disk, &history, open).await else {
        std::future::pending::<()>().await;
        return;
    };
    // The marker's contract: it is removed, durably, before the log takes appends, so it can
    // never vouch for data written after it.
    let marker = config.dir.join(keel::log::checkpoint::CLEAN_SHUTDOWN_FILE);
    if disk.durable_list_all().contains(&marker) {
        history.record(Event::Violation {
            checker: "recovery",
            message: format!(
                "{} is still durable after open: it could vouch for data appended later",
                marker.display()
            ),
        });
    }
    let report = log.recovery_report().clone();
    let epoch = history.epoch();
    history.record(Event::Opened {
        next_offset: log.next_offset(),
        log_start: log.log_start_offset(),
        clean: report.clean_shutdown,
        bytes_truncated: report.bytes_truncated,
        epoch,
    });
    history.record(Event::Flushed {
        upto: log.recovery_point(),
        epoch,
    });
    let shared: SharedLog = Arc::new(Mutex::new(Some(log)));
    let (sender, receiver) = mpsc::unbounded();
    mailbox.install(sender);
    let node = Node {
        disk,
        config,
        history,
        log: shared,
    };
    madsim::task::spawn(node.clone().flusher());
    madsim::task::spawn(node.clone().retention());
    if let Some(interval_ms) = node.config.cleaner_interval_ms {
        madsim::task::spawn(node.clone().cleaner(interval_ms));
    }
    node.serve(receiver).await;
    std::future::pending::<()>().await;
}

#[derive(Clone)]
struct Node {
    disk: SimDisk,
    config: NodeConfig,
    history: Arc<History>,
    log: SharedLog,
}

impl Node {
    async fn serve(&self, mut receiver: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = receiver.next().await {
            match request {
                Request::Produce { batch, reply } => {
                    let result = self.produce(batch).await;
                    let _ = reply.send(result);
                }
                Request::Fetch {
                    offset,
                    bytes_max,
                    reply,
                } => {
                    let _ = reply.send(self.fetch(offset, bytes_max));
                }
                Request::Shutdown { reply } => {
                    let _ = reply.send(self.shutdown());
                    return;
                }
            }
        }
    }

    /// Appends; under `flush = always` the reply waits for the flush (and its simulated time).
    async fn produce(&self, mut batch: Vec<u8>) -> Result<u64, String> {
        let (base_offset, flushed) = {
            let mut guard = self.log.lock().expect("log lock");
            let log = guard.as_mut().ok_or("log closed")?;
            let now_ms = SimClock.now_ms();
            let info = log.append(&mut batch, now_ms).map_err(|e| e.to_string())?;
            let flushed = match log.config().flush {
                FlushPolicy::Always => Some(self.flush_locked(log, now_ms)?),
                _ => None,
            };
            (info.base_offset, flushed)
        };
        if let Some(slow) = flushed {
            self.fsync_delay(slow).await;
        }
        Ok(base_offset)
    }

    /// Flushes and reports it; returns whether the disk marked the fsync slow.
    fn flush_locked(&self, log: &mut Log<SimDisk>, now_ms: i64) -> Result<bool, String> {
        let slow_before = self.disk.fault_counts().slow_fsyncs;
        log.flush(now_ms).map_err(|e| e.to_string())?;
        self.history.record(Event::Flushed {
            upto: log.recovery_point(),
            epoch: self.history.epoch(),
        });
        Ok(self.disk.fault_counts().slow_fsyncs > slow_before)
    }

    async fn fsync_delay(&self, slow: bool) {
        let extra = if slow { self.config.slow_fsync_ms } else { 0 };
        madsim::time::sleep(Duration::from_millis(self.config.fsync_ms + extra)).await;
    }

    fn fetch(&self, offset: u64, bytes_max: u64) -> Result<Fetched, FetchError> {
        let mut guard = self.log.lock().expect("log lock");
        let log = guard
            .as_mut()
            .ok_or_else(|| FetchError::Other("log closed".to_owned()))?;
        match log.read_copy(offset, bytes_max, u64::MAX) {
            Ok(bytes) => Ok(Fetched {
                bytes,
                log_start: log.log_start_offset(),
                next_offset: log.next_offset(),
            }),
            Err(LogError::OffsetOutOfRange {
                log_start_offset,
                next_offset,
                ..
            }) => Err(FetchError::OutOfRange {
                log_start: log_start_offset,
                next_offset,
            }),
            Err(LogError::Corrupt { offset, reason }) => {
                Err(FetchError::Corrupt(format!("offset {offset}: {reason}")))
            }
            Err(e) => Err(FetchError::Other(e.to_string())),
        }
    }

    fn shutdown(&self) -> Result<(), String> {
        let log = self
            .log
            .lock()
            .expect("log lock")
            .take()
            .ok_or("log closed")?;
        log.close(SimClock.now_ms()).map_err(|e| e.to_string())
    }

    /// Applies the flush policy on a timer (interval, and flushes of rolled segments).
    async fn flusher(self) {
        loop {
            madsim::time::sleep(Duration::from_millis(self.config.flusher_interval_ms)).await;
            let slow = {
                let mut guard = self.log.lock().expect("log lock");
                let Some(log) = guard.as_mut() else { return };
                let now_ms = SimClock.now_ms();
                if !log.flush_due(now_ms) {
                    continue;
                }
                match self.flush_locked(log, now_ms) {
                    Ok(slow) => slow,
                    Err(_) => continue,
                }
            };
            self.fsync_delay(slow).await;
        }
    }

    /// Compacts the log whenever its dirty ratio asks for it, as the broker's housekeeping does.
    async fn cleaner(self, interval_ms: u64) {
        loop {
            madsim::time::sleep(Duration::from_millis(interval_ms)).await;
            let mut guard = self.log.lock().expect("log lock");
            let Some(log) = guard.as_mut() else { return };
            let now_ms = SimClock.now_ms();
            if !log.compaction_due(now_ms) {
                continue;
            }
            if let Ok(outcome) = log.compact(now_ms) {
                if outcome.segments_cleaned > 0 {
                    self.history.record(Event::Compacted {
                        segments_cleaned: outcome.segments_cleaned as u64,
                        records_removed: outcome.records_removed,
                    });
                }
            }
        }
    }

    async fn retention(self) {
        loop {
            madsim::time::sleep(Duration::from_millis(self.config.retention_interval_ms)).await;
            let mut guard = self.log.lock().expect("log lock");
            let Some(log) = guard.as_mut() else { return };
            let before = log.log_start_offset();
            if log.apply_retention(SimClock.now_ms()).is_ok() && log.log_start_offset() > before {
                self.history.record(Event::LogStart {
                    offset: log.log_start_offset(),
                    epoch: self.history.epoch(),
                });
            }
        }
    }
}

/// How long a node waits before opening again after disk faults made an open fail.
const OPEN_RETRY_MS: u64 = 20;
/// How many opens a node tries while faults are on: well past the longest burst (300 ms), so a
/// failure that repeats for this long is not the faults' doing (and faults that never stop,
/// as `--bit-rot` sets, cannot hide it).
const OPEN_ATTEMPTS_MAX: u32 = 100;

/// Opens with `open`, again every `OPEN_RETRY_MS` while disk faults are on and make it fail, as
/// a supervisor restarts a broker that could not start. A failure with the faults off, or after
/// `OPEN_ATTEMPTS_MAX` attempts, is recorded as `OpenFailed` (a violation of the recovery
/// checker) and gives `None`.
pub async fn open_retrying<T, E: std::fmt::Debug>(
    disk: &SimDisk,
    history: &History,
    mut open: impl FnMut() -> Result<T, E>,
) -> Option<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match open() {
            Ok(opened) => return Some(opened),
            Err(e) if disk.faults_on() && attempt < OPEN_ATTEMPTS_MAX => {
                history.record(Event::OpenRetried {
                    error: format!("{e:?}"),
                });
                madsim::time::sleep(std::time::Duration::from_millis(OPEN_RETRY_MS)).await;
            }
            Err(e) => {
                history.record(Event::OpenFailed {
                    error: format!("{e:?}"),
                });
                return None;
            }
        }
    }
}
