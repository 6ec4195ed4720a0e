//! The broker's metrics, served in Prometheus' text format at `GET /metrics` on `metrics.listen`:
//! requests and errors by API, record bytes in and out, each partition's log end offset and high
//! watermark, and fsync latency (count and total seconds, and the slowest since start).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::ApiKey;

use super::Broker;
use crate::io::{Clock, Disk, Rng};

/// API keys are small integers; counters are indexed by them.
const API_KEYS_MAX: usize = 128;

pub struct Metrics {
    requests: [AtomicU64; API_KEYS_MAX],
    errors: [AtomicU64; API_KEYS_MAX],
    /// Requests with bytes after their body (ignored, as Kafka ignores them).
    trailing: [AtomicU64; API_KEYS_MAX],
    /// Frames that could not be parsed far enough to know their API.
    malformed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Accepts that failed (out of descriptors, most often).
    accept_failures: AtomicU64,
    /// Storage errors answered to clients.
    pub storage_errors: StorageErrors,
    fsyncs: AtomicU64,
    fsync_ns_total: AtomicU64,
    fsync_ns_max: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            trailing: std::array::from_fn(|_| AtomicU64::new(0)),
            malformed: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            accept_failures: AtomicU64::new(0),
            storage_errors: StorageErrors::default(),
            bytes_out: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_ns_total: AtomicU64::new(0),
            fsync_ns_max: AtomicU64::new(0),
        }
    }
}

/// Storage errors are logged at most once per this long, with how many there were since.
const STORAGE_ERROR_LOG_INTERVAL_NS: u64 = 10_000_000_000;
/// `StorageErrors::logged_at_ns` before the first log line.
const NEVER_LOGGED: u64 = u64::MAX;

/// Storage errors (KAFKA_STORAGE_ERROR) answered to clients: every one is counted, and logged
/// with its partition and cause at most once per `STORAGE_ERROR_LOG_INTERVAL_NS`, with how many
/// there were since, so that a full disk is seen without flooding the log.
pub struct StorageErrors {
    count: AtomicU64,
    unlogged: AtomicU64,
    logged_at_ns: AtomicU64,
}

impl Default for StorageErrors {
    fn default() -> StorageErrors {
        StorageErrors {
            count: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            logged_at_ns: AtomicU64::new(NEVER_LOGGED),
        }
    }
}

impl StorageErrors {
    /// Counts a storage error answered for `topic`-`partition` while doing `during`.
    pub fn record(
        &self,
        now_ns: u64,
        topic: &str,
        partition: i32,
        during: &str,
        cause: &dyn std::fmt::Display,
    ) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        let last = self.logged_at_ns.load(Ordering::Relaxed);
        let due =
            last == NEVER_LOGGED || now_ns.saturating_sub(last) >= STORAGE_ERROR_LOG_INTERVAL_NS;
        if due
            && self
                .logged_at_ns
                .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let errors = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                topic,
                partition,
                during,
                cause = %cause,
                errors,
                "storage error answered to a client"
            );
        }
    }

    /// How many were answered.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

fn slot(api: ApiKey) -> usize {
    (api as i16).clamp(0, API_KEYS_MAX as i16 - 1) as usize
}

impl Metrics {
    pub fn request(&self, api: ApiKey) {
        self.requests[slot(api)].fetch_add(1, Ordering::Relaxed);
    }

    /// A request (or one partition of it) answered with an error, or a request that closed its
    /// connection.
    pub fn error(&self, api: Option<ApiKey>) {
        match api {
            Some(api) => self.errors[slot(api)].fetch_add(1, Ordering::Relaxed),
            None => self.malformed.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A request whose body was followed by bytes its version does not define.
    pub fn trailing_bytes(&self, api: ApiKey) {
        self.trailing[slot(api)].fetch_add(1, Ordering::Relaxed);
    }

    /// An accept of a connection that failed.
    pub fn accept_failed(&self) {
        self.accept_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn fsync(&self, elapsed_ns: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_ns_total.fetch_add(elapsed_ns, Ordering::Relaxed);
        self.fsync_ns_max.fetch_max(elapsed_ns, Ordering::Relaxed);
    }
}

fn counter(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// A counter without labels: its help, type and value.
fn total(out: &mut String, name: &str, help: &str, value: u64) {
    counter(out, name, help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// The metrics page.
pub fn render<D: Disk, C: Clock, R: Rng>(broker: &Broker<D, C, R>) -> String {
    let m = &broker.metrics;
    let mut out = String::new();
    counter(
        &mut out,
        "keel_requests_total",
        "Requests answered, by API.",
    );
    per_api(&mut out, "keel_requests_total", &m.requests);
    counter(
        &mut out,
        "keel_request_errors_total",
        "Requests or partitions answered with an error, by API.",
    );
    per_api(&mut out, "keel_request_errors_total", &m.errors);
    counter(
        &mut out,
        "keel_requests_trailing_bytes_total",
        "Requests with bytes after the body their version defines (ignored, as Kafka does).",
    );
    per_api(&mut out, "keel_requests_trailing_bytes_total", &m.trailing);
    total(
        &mut out,
        "keel_malformed_requests_total",
        "Frames that closed their connection before naming an API.",
        m.malformed.load(Ordering::Relaxed),
    );
    total(
        &mut out,
        "keel_storage_errors_total",
        "Storage errors (KAFKA_STORAGE_ERROR) answered to clients.",
        m.storage_errors.count(),
    );
    total(
        &mut out,
        "keel_accept_failures_total",
        "Accepts of connections that failed (out of file descriptors, most often).",
        m.accept_failures.load(Ordering::Relaxed),
    );
    total(
        &mut out,
        "keel_bytes_in_total",
        "Record bytes appended by Produce.",
        m.bytes_in.load(Ordering::Relaxed),
    );
    total(
        &mut out,
        "keel_bytes_out_total",
        "Record bytes served by Fetch.",
        m.bytes_out.load(Ordering::Relaxed),
    );
    fsyncs(&mut out, m);
    partitions(&mut out, broker);
    out
}

fn per_api(out: &mut String, name: &str, counts: &[AtomicU64; API_KEYS_MAX]) {
    for (key, _, _) in crate::protocol::SUPPORTED {
        let count = counts[slot(*key)].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{api=\"{key:?}\"}} {count}");
    }
}

fn fsyncs(out: &mut String, m: &Metrics) {
    counter(
        out,
        "keel_fsync_total",
        "Log flushes (fsync of segments and indexes, then the checkpoint).",
    );
    let _ = writeln!(out, "keel_fsync_total {}", m.fsyncs.load(Ordering::Relaxed));
    counter(
        out,
        "keel_fsync_seconds_total",
        "Time spent in log flushes.",
    );
    let total = m.fsync_ns_total.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "keel_fsync_seconds_total {total:.9}");
    gauge(
        out,
        "keel_fsync_seconds_max",
        "The slowest log flush since the broker started.",
    );
    let max = m.fsync_ns_max.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "keel_fsync_seconds_max {max:.9}");
}

fn partitions<D: Disk, C: Clock, R: Rng>(out: &mut String, broker: &Broker<D, C, R>) {
    gauge(
        out,
        "keel_partition_log_end_offset",
        "The offset the next record will get.",
    );
    let mut watermarks = String::new();
    for topic in broker.topics() {
        for partition in &topic.partitions {
            let Some(bounds) = partition.bounds() else {
                continue;
            };
            let labels = format!("topic=\"{}\",partition=\"{}\"", topic.name, partition.index);
            let _ = writeln!(
                out,
                "keel_partition_log_end_offset{{{labels}}} {}",
                bounds.log_end_offset
            );
            let _ = writeln!(
                watermarks,
                "keel_partition_high_watermark{{{labels}}} {}",
                bounds.high_watermark
            );
        }
    }
    gauge(
        out,
        "keel_partition_high_watermark",
        "The offset below which consumers may read.",
    );
    out.push_str(&watermarks);
}
