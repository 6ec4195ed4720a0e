//! One seed from start to verdict: draw the run's shape from the seed, build the simulated
//! cluster (a storage node and a client node), run the workload with its fault schedule, heal,
//! read the log back, and hand the history to the checkers.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use keel::compression::Codec;
use keel::log::{CleanupPolicy, Compression, FlushPolicy, LogConfig};
use madsim::rand::Rng;
use madsim::runtime::Runtime;

use crate::broker_node;
use crate::checkers::{self, Violation};
use crate::disk::{DiskLatency, FaultConfig, FaultCounts, SimDisk};
use crate::history::History;
use crate::node::{self, Mailbox, NodeConfig};
use crate::workload::{self, Cluster, Target, WorkloadConfig};

/// What the caller chooses; everything else comes from the seed.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub operations: u64,
    pub trace: bool,
    /// Make every fsync a lie (the proof that the durability checker notices).
    pub lying_fsync: bool,
    /// Override the bit-rot probability of disk-fault bursts, and keep it on all run long.
    pub constant_bit_rot: Option<f64>,
    /// Which server the clients talk to; `None` lets the seed choose.
    pub broker: Option<bool>,
    /// Whether the storage node's log is compacted (cleanup.policy=compact, keyed records with
    /// many updates per key, the cleaner running often); `None` lets the seed choose. Only the
    /// storage node compacts.
    pub compact: Option<bool>,
    /// Runs the metadata quorum with this many voters instead (`--brokers N`,
    /// sim/src/quorum.rs).
    pub voters: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            operations: 10_000,
            trace: false,
            lying_fsync: false,
            constant_bit_rot: None,
            broker: None,
            compact: None,
            voters: None,
        }
    }
}

/// The verdict and figures of one seed.
#[derive(Debug, Clone)]
pub struct SeedOutcome {
    pub seed: u64,
    /// "log" (the storage node), "compact" (the storage node, compacted) or "broker" (Kafka
    /// protocol to the real broker).
    pub target: &'static str,
    pub flush: String,
    pub operations: u64,
    pub faults: FaultCounts,
    pub simulated_ms: u64,
    pub trace_hash: u64,
    /// Acknowledged records gone with batches that rotted at rest (data truly lost).
    pub lost_to_damage: u64,
    pub violation: Option<Violation>,
}

/// The run's shape, drawn from the seed's randomness.
struct Shape {
    broker: bool,
    compact: bool,
    node: NodeConfig,
    workload: WorkloadConfig,
    disk_seed: u64,
    disk_latency: DiskLatency,
}

fn draw_shape(options: &RunOptions) -> Shape {
    let mut rng = madsim::rand::thread_rng();
    let flush = match rng.gen_range(0..3) {
        0 => FlushPolicy::None,
        1 => FlushPolicy::Interval {
            ms: rng.gen_range(5..200),
            messages: [0, 1, 10, 100][rng.gen_range(0..4)],
        },
        _ => FlushPolicy::Always,
    };
    let log = LogConfig {
        segment_bytes: rng.gen_range(4..64) * 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: [128, 512, 4096][rng.gen_range(0..3)],
        retention_bytes: if rng.gen_bool(0.3) {
            rng.gen_range(64..512) * 1024
        } else {
            -1
        },
        retention_ms: -1,
        flush,
        // A quarter of the runs give the topic a compression.type, so the broker recompresses
        // what producers send in another codec (the storage node recompresses too).
        compression: if rng.gen_bool(0.25) {
            let codecs = [
                Codec::None,
                Codec::Gzip,
                Codec::Snappy,
                Codec::Lz4,
                Codec::Zstd,
            ];
            Compression::Codec(codecs[rng.gen_range(0..codecs.len())])
        } else {
            Compression::Producer
        },
        ..LogConfig::default()
    };
    let node = NodeConfig {
        dir: PathBuf::from("/keel-data/topic-0"),
        log,
        flusher_interval_ms: rng.gen_range(5..100),
        retention_interval_ms: rng.gen_range(50..500),
        cleaner_interval_ms: None,
    };
    let disk_latency = DiskLatency {
        sync_us: rng.gen_range(100..5_000),
        slow_sync_ms: rng.gen_range(50..500),
    };
    let disk_faults = FaultConfig {
        torn_write: rng.gen_range(0.0..0.05),
        bit_rot: rng.gen_range(0.0..0.05),
        slow_fsync: rng.gen_range(0.0..0.2),
        enospc: rng.gen_range(0.0..0.05),
        eio: rng.gen_range(0.0..0.1),
        read_eio: rng.gen_range(0.0..0.02),
        misdirected_read: rng.gen_range(0.0..0.02),
    };
    let all_codecs = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];
    let codecs = if rng.gen_bool(0.5) {
        vec![Codec::None]
    } else {
        all_codecs.to_vec()
    };
    let workload = WorkloadConfig {
        producers: rng.gen_range(1..=3),
        readers: rng.gen_range(1..=2),
        operations: options.operations,
        fault_operations: options.operations * 8 / 10,
        fault_interval_ms_mean: rng.gen_range(100..1000),
        disk_faults,
        codecs,
        idempotent: false,
        group_members: 0,
        keys: None,
        in_flight: 1,
    };
    let broker = options.broker.unwrap_or_else(|| rng.gen_bool(0.5));
    let workload = if broker {
        WorkloadConfig {
            idempotent: rng.gen_bool(0.5),
            group_members: rng.gen_range(0..=2),
            ..workload
        }
    } else {
        workload
    };
    let disk_seed = rng.gen();
    // Idempotent producers keep up to five batches in flight in most runs, as librdkafka does.
    let workload = WorkloadConfig {
        in_flight: if workload.idempotent {
            rng.gen_range(1..=5)
        } else {
            1
        },
        ..workload
    };
    // Drawn last, so that the seeds of the other workloads keep their shapes.
    let compact = !broker
        && options
            .compact
            .unwrap_or_else(|| rng.gen_bool(COMPACT_SHARE_OF_LOG_SEEDS));
    let mut shape = Shape {
        broker,
        compact,
        node,
        workload,
        disk_seed,
        disk_latency,
    };
    if compact {
        make_compacted(&mut shape, &mut rng);
    }
    shape
}

/// Under `--workload mixed`, the share of storage-node seeds that compact.
const COMPACT_SHARE_OF_LOG_SEEDS: f64 = 1.0 / 3.0;

/// The compaction workload: small segments, no retention, a cleaner that runs often with a low
/// dirty ratio, and producers that update a few keys many times.
fn make_compacted(shape: &mut Shape, rng: &mut impl Rng) {
    let log = &mut shape.node.log;
    log.cleanup_policy = CleanupPolicy::COMPACT;
    log.segment_bytes = rng.gen_range(1..8) * 1024;
    log.retention_bytes = -1;
    log.min_cleanable_dirty_ratio = [0.0, 0.1, 0.5][rng.gen_range(0..3)];
    shape.node.cleaner_interval_ms = Some(rng.gen_range(10..100));
    shape.workload.keys = Some(rng.gen_range(2..40));
}

/// Runs one seed and judges it. Never panics: a panic inside the simulation is a violation.
pub fn run_seed(seed: u64, options: &RunOptions) -> SeedOutcome {
    let mut outcome = SeedOutcome {
        seed,
        target: "",
        flush: String::new(),
        operations: 0,
        faults: FaultCounts::default(),
        simulated_ms: 0,
        trace_hash: 0,
        lost_to_damage: 0,
        violation: None,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| simulate(seed, options, &mut outcome)));
    if let Err(payload) = result {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned());
        outcome.violation = Some(Violation {
            checker: "recovery",
            message: format!("panic: {message}"),
        });
    }
    outcome
}

/// Simulated time after which a seed is abandoned as hung.
const SIMULATED_TIME_LIMIT: Duration = Duration::from_secs(3_600);

fn simulate(seed: u64, options: &RunOptions, outcome: &mut SeedOutcome) {
    let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.set_time_limit(SIMULATED_TIME_LIMIT);
    let history = History::new(options.trace);
    if let Some(voters) = options.voters {
        let operations = options.operations;
        let disk_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let run_history = history.clone();
        let verdict = runtime.block_on(async move {
            let verdict = crate::quorum::run(voters, operations, disk_seed, run_history).await;
            (verdict, crate::clock::elapsed_ms())
        });
        let (verdict, simulated_ms) = verdict;
        outcome.trace_hash = history.trace_hash();
        let events = history.take_events();
        outcome.target = "quorum";
        outcome.flush = format!("{voters} voters");
        outcome.operations = verdict.operations;
        outcome.faults = verdict.faults;
        outcome.simulated_ms = simulated_ms;
        outcome.violation = crate::quorum::check(&events, voters);
        return;
    }
    let verdict = runtime.block_on(run_cluster(options.clone(), history.clone()));
    outcome.trace_hash = history.trace_hash();
    let events = history.take_events();
    outcome.target = verdict.target;
    outcome.flush = verdict.flush;
    outcome.operations = verdict.operations;
    outcome.faults = verdict.faults;
    outcome.simulated_ms = verdict.simulated_ms;
    outcome.violation = match verdict.final_log {
        Err(message) => Some(Violation {
            checker: "served",
            message,
        }),
        Ok(final_log) => {
            outcome.lost_to_damage = checkers::lost_to_damage(&events, &final_log);
            checkers::check_all(
                &events,
                &final_log,
                history.epoch(),
                verdict.acks_durable,
                verdict.keys,
            )
        }
    };
}

struct Verdict {
    target: &'static str,
    flush: String,
    /// `flush = always`: every acknowledgement promises durability.
    acks_durable: bool,
    /// The compaction workload's key count (`None` for the other workloads).
    keys: Option<u32>,
    operations: u64,
    faults: FaultCounts,
    simulated_ms: u64,
    final_log: Result<checkers::FinalLog, String>,
}

async fn run_cluster(options: RunOptions, history: Arc<History>) -> Verdict {
    let shape = draw_shape(&options);
    let handle = madsim::runtime::Handle::current();
    let disk = SimDisk::new(shape.disk_seed);
    disk.set_latency(shape.disk_latency);
    disk.set_lying_fsync(options.lying_fsync);
    let mut workload_config = shape.workload.clone();
    debug_assert_eq!(shape.compact, workload_config.keys.is_some());
    if let Some(rate) = options.constant_bit_rot {
        workload_config.disk_faults = FaultConfig {
            bit_rot: rate,
            ..FaultConfig::default()
        };
        disk.set_faults(workload_config.disk_faults);
    }
    let mailbox = Mailbox::default();
    let node = if shape.broker {
        let (disk, history) = (disk.clone(), history.clone());
        let config = broker_node::config(&shape.node.log);
        handle
            .create_node()
            .name("keel-0")
            .ip(broker_node::BROKER_IP.parse().expect("ip"))
            .init(move || broker_node::run(disk.clone(), config.clone(), history.clone()))
            .build()
    } else {
        let (disk, mailbox, history, config) = (
            disk.clone(),
            mailbox.clone(),
            history.clone(),
            shape.node.clone(),
        );
        handle
            .create_node()
            .name("keel-0")
            .init(move || {
                node::run(
                    disk.clone(),
                    config.clone(),
                    mailbox.clone(),
                    history.clone(),
                )
            })
            .build()
    };
    // What the topic runs, as the broker reads its settings: flush.messages=1 is `always`,
    // and is judged by the contract's `always` rows.
    let effective_flush = if shape.broker {
        let (messages, ms) = keel::broker::config::flush_settings(shape.node.log.flush);
        keel::broker::config::flush_policy(messages, ms)
    } else {
        shape.node.log.flush
    };
    let target = if shape.broker {
        Target::Broker {
            flush_always: effective_flush == FlushPolicy::Always,
        }
    } else {
        Target::Log
    };
    let cluster = Cluster {
        handle: handle.clone(),
        node_id: node.id(),
        disk: disk.clone(),
        mailbox,
        target,
        history: history.clone(),
        operations: Arc::new(AtomicU64::new(0)),
        partition_dir: match target {
            Target::Log => shape.node.dir.clone(),
            Target::Broker { .. } => keel::broker::topics::partition_dir(
                &broker_node::config(&shape.node.log).data_dir,
                broker_node::TOPIC,
                0,
            ),
        },
        acks_durable: effective_flush == FlushPolicy::Always,
        keys: shape.workload.keys,
    };
    let client = handle
        .create_node()
        .name("clients")
        .ip(broker_node::CLIENT_IP.parse().expect("ip"))
        .build();
    let configs = topic_configs(&shape.node.log);
    let final_log = client
        .spawn(drive(
            cluster.clone(),
            workload_config,
            shape.disk_seed ^ 0x5eed,
            configs,
        ))
        .await
        .expect("the client node is never killed");
    let keys = shape.workload.keys;
    let faults = disk.fault_counts();
    // Nothing of the seed may outlive it. madsim drops a task's future only when the task runs
    // after its node was killed, and a task that waits for good (a connection, a node's last
    // incarnation) holds its own waker: killing every node queues those tasks, and the
    // runtime's end drops the queue and with it the futures. The disk's files go in any case.
    handle.kill(cluster.node_id);
    handle.kill(client.id());
    disk.release();
    Verdict {
        target: match (shape.broker, shape.compact) {
            (true, _) => "broker",
            (false, true) => "compact",
            (false, false) => "log",
        },
        keys,
        flush: effective_flush.to_string(),
        acks_durable: effective_flush == FlushPolicy::Always,
        operations: cluster.operations.load(std::sync::atomic::Ordering::SeqCst),
        faults,
        simulated_ms: crate::clock::elapsed_ms(),
        final_log,
    }
}

/// The run's log settings as topic configs, with Kafka's names.
fn topic_configs(log: &LogConfig) -> Vec<(&'static str, String)> {
    let (flush_messages, flush_ms) = keel::broker::config::flush_settings(log.flush);
    let mut configs = vec![
        ("segment.bytes", log.segment_bytes.to_string()),
        ("segment.index.bytes", log.segment_index_bytes.to_string()),
        ("index.interval.bytes", log.index_interval_bytes.to_string()),
        ("retention.bytes", log.retention_bytes.to_string()),
        ("retention.ms", log.retention_ms.to_string()),
    ];
    if flush_messages != i64::MAX {
        configs.push(("flush.messages", flush_messages.to_string()));
    }
    if flush_ms != i64::MAX {
        configs.push(("flush.ms", flush_ms.to_string()));
    }
    if log.compression != Compression::Producer {
        configs.push(("compression.type", log.compression.to_string()));
    }
    configs
}

/// The client side: workload tasks and fault schedule, then heal and the final read.
async fn drive(
    cluster: Cluster,
    config: WorkloadConfig,
    fault_seed: u64,
    topic_configs: Vec<(&'static str, String)>,
) -> Result<checkers::FinalLog, String> {
    if cluster.target != Target::Log {
        workload::create_topic(&cluster, broker_node::TOPIC, 1, &topic_configs).await;
        if config.group_members > 0 {
            let partitions = config.group_members as i32;
            workload::create_topic(&cluster, workload::COMMIT_TOPIC, partitions, &topic_configs)
                .await;
        }
    }
    let mut tasks = Vec::new();
    for producer in 0..config.producers {
        tasks.push(madsim::task::spawn(workload::producer(
            cluster.clone(),
            config.clone(),
            producer,
        )));
    }
    for member in 0..config.group_members {
        tasks.push(madsim::task::spawn(workload::group_member(
            cluster.clone(),
            config.clone(),
            member,
        )));
    }
    for reader in 0..config.readers {
        tasks.push(madsim::task::spawn(workload::reader(
            cluster.clone(),
            config.clone(),
            reader,
        )));
    }
    let faults = madsim::task::spawn(workload::faults(
        cluster.clone(),
        config.clone(),
        fault_seed,
    ));
    let _ = faults.await;
    workload::heal(&cluster, &config).await;
    for task in tasks {
        let _ = task.await;
    }
    workload::read_committed(&cluster, &config).await;
    let keys = config.keys;
    workload::read_final(&cluster, keys).await
}
