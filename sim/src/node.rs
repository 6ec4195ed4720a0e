//! A simulated storage node: one process that owns one partition (`keel::partition`, the code
//! the broker runs for each of its partitions) on its `SimDisk` and serves produce and fetch
//! requests through it, with a flusher task that applies the flush policy, a retention task,
//! and (for the compaction workload) a cleaner task, as the broker's housekeeping does. It
//! drives the partition without the Kafka protocol, so a seed spends its time in storage:
//! requests arrive over an in-memory mailbox, and a killed node simply stops answering.
//!
//! Every flush that succeeds is reported to the history (`Flushed`), which is how the checkers
//! know what the durability contract promises.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use keel::io::{Clock, File};
use keel::log::batch::BatchHeader;
use keel::log::{Log, LogConfig, LogError};
use keel::partition::{Acks, Partition};

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::history::{Event, History};

/// How the node runs its log.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub dir: PathBuf,
    pub log: LogConfig,
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

/// Producers are never idle long enough to expire in a run (the node's workload has none).
const PRODUCER_EXPIRATION_MS: i64 = i64::MAX;

/// The node's main task: open (recover) the log, then serve until killed.
pub async fn run(disk: SimDisk, config: NodeConfig, mailbox: Mailbox, history: Arc<History>) {
    let open = || {
        let log = Log::open(
            disk.clone(),
            &config.dir,
            config.log.clone(),
            SimClock.now_ms(),
        )?;
        Partition::open(TOPIC.to_owned(), 0, NODE_ID, &disk, log)
    };
    let Some(partition) = open_retrying(&disk, &history, open).await else {
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
    let report = partition.recovery_report().expect("just opened");
    let bounds = partition.bounds().expect("just opened");
    let epoch = history.epoch();
    history.record(Event::Opened {
        next_offset: bounds.log_end_offset,
        log_start: bounds.log_start_offset,
        clean: report.clean_shutdown,
        bytes_truncated: report.bytes_truncated,
        epoch,
    });
    history.record(Event::Flushed {
        upto: bounds.recovery_point,
        epoch,
    });
    let (sender, receiver) = mpsc::unbounded();
    mailbox.install(sender);
    let node = Node {
        config,
        history,
        partition: Arc::new(partition),
    };
    madsim::task::spawn(node.clone().flusher());
    madsim::task::spawn(node.clone().retention());
    if let Some(interval_ms) = node.config.cleaner_interval_ms {
        madsim::task::spawn(node.clone().cleaner(interval_ms));
    }
    node.serve(receiver).await;
    std::future::pending::<()>().await;
}

/// The node's partition, named as the broker would name it.
const TOPIC: &str = "topic";
const NODE_ID: i32 = 1;

#[derive(Clone)]
struct Node {
    config: NodeConfig,
    history: Arc<History>,
    partition: Arc<Partition<SimDisk>>,
}

impl Node {
    async fn serve(&self, mut receiver: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = receiver.next().await {
            match request {
                // Each produce in a task of its own, as the broker serves connections: appends
                // and fetches go on while another produce's flush waits for the disk.
                Request::Produce { batch, reply } => {
                    let node = self.clone();
                    madsim::task::spawn(async move {
                        let _ = reply.send(node.produce(batch).await);
                    });
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

    /// Appends through the partition's produce path (acks=1); under `flush = always` the reply
    /// waits for the flush (and the disk's simulated time for it).
    async fn produce(&self, batch: Vec<u8>) -> Result<u64, String> {
        let header = BatchHeader::parse(&batch).map_err(|e| e.to_string())?;
        let appended = self
            .partition
            .append(
                &batch,
                &header,
                Acks::Leader,
                self.config.log.compression,
                &SimClock,
            )
            .await
            .map_err(|e| format!("{e:?}"))?;
        if appended.synced.is_some() {
            self.flushed();
        }
        Ok(appended.base_offset)
    }

    /// Reports the recovery point a flush reached.
    fn flushed(&self) {
        if let Some(bounds) = self.partition.bounds() {
            self.history.record(Event::Flushed {
                upto: bounds.recovery_point,
                epoch: self.history.epoch(),
            });
        }
    }

    /// A consumer's read, as the broker serves it: the partition's verified file range below
    /// the high watermark, then the bytes of that range (what sendfile would send).
    fn fetch(&self, offset: u64, bytes_max: u64) -> Result<Fetched, FetchError> {
        let read = self
            .partition
            .read(offset, bytes_max)
            .ok_or_else(|| FetchError::Other("log closed".to_owned()))?;
        let bounds = read.bounds;
        match read.records {
            Ok(slice) => {
                let mut bytes = Vec::new();
                if let Some(slice) = slice {
                    bytes.resize(slice.bytes as usize, 0);
                    slice
                        .file
                        .read_exact_at(&mut bytes, slice.position)
                        .map_err(|e| FetchError::Other(e.to_string()))?;
                }
                Ok(Fetched {
                    bytes,
                    log_start: bounds.log_start_offset,
                    next_offset: bounds.high_watermark,
                })
            }
            Err(LogError::OffsetOutOfRange { .. }) => Err(FetchError::OutOfRange {
                log_start: bounds.log_start_offset,
                next_offset: bounds.high_watermark,
            }),
            Err(LogError::Corrupt { offset, reason }) => {
                Err(FetchError::Corrupt(format!("offset {offset}: {reason}")))
            }
            Err(e) => Err(FetchError::Other(e.to_string())),
        }
    }

    fn shutdown(&self) -> Result<(), String> {
        self.partition
            .close(SimClock.now_ms())
            .map_err(|e| e.to_string())
    }

    /// Applies the flush policy on a timer (interval, and flushes of rolled segments).
    async fn flusher(self) {
        loop {
            madsim::time::sleep(Duration::from_millis(self.config.flusher_interval_ms)).await;
            if self.partition.bounds().is_none() {
                return;
            }
            if let Ok(Some(_)) = self.partition.flush_if_due(&SimClock).await {
                self.flushed();
            }
        }
    }

    /// Compacts the log whenever its dirty ratio asks for it, as the broker's housekeeping does.
    async fn cleaner(self, interval_ms: u64) {
        loop {
            madsim::time::sleep(Duration::from_millis(interval_ms)).await;
            if self.partition.bounds().is_none() {
                return;
            }
            if let Ok(Some(outcome)) = self.partition.compact_if_due(SimClock.now_ms()) {
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
            if self.partition.bounds().is_none() {
                return;
            }
            let retained = self
                .partition
                .apply_retention(SimClock.now_ms(), PRODUCER_EXPIRATION_MS);
            if let Ok(Some(offset)) = retained {
                self.history.record(Event::LogStart {
                    offset,
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
