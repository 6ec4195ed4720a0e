//! The broker's settings, with Kafka's names where Kafka has the setting, and the per-topic
//! overrides (`retention.ms`, `segment.bytes`, `flush.messages`, ...) that turn broker defaults
//! into one topic's `LogConfig`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::settings::{
    any_boolean, at_least, between, boolean, double, int, invalid, long, segment_bytes,
    timestamp_type, timestamp_type_name, unclean_election, ConfigType, Value,
};
use crate::log::config::SEGMENT_INDEX_BYTES_MIN;
use crate::log::{FlushPolicy, LogConfig};

/// socket.request.max.bytes: the largest request frame accepted.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
/// max.connections.
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;
/// queued.max.requests per connection: requests read ahead of the one being answered.
pub const INFLIGHT_REQUESTS_MAX_DEFAULT: usize = 16;
/// Kafka's "never" for flush.ms and flush.messages.
const NEVER: i64 = i64::MAX;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// node.id
    pub node_id: i32,
    /// listeners (host:port)
    pub listen: String,
    /// advertised.listeners (host:port); the bound address when `None`.
    pub advertised: Option<String>,
    /// log.dirs (one directory)
    pub data_dir: PathBuf,
    /// auto.create.topics.enable
    pub auto_create_topics: bool,
    /// num.partitions: partitions of auto-created topics and of CreateTopics with -1.
    pub partitions_default: i32,
    /// Log defaults (log.segment.bytes, log.retention.ms, log.flush.interval.messages, ...).
    pub log: LogConfig,
    /// socket.request.max.bytes
    pub request_bytes_max: usize,
    /// max.connections
    pub connections_max: usize,
    /// queued.max.requests, per connection
    pub inflight_requests_max: usize,
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// log.cleaner.backoff.ms: how often compaction looks for partitions to clean.
    pub cleaner_backoff_ms: u64,
    pub cluster_id: String,
    /// producer.id.expiration.ms: idempotent producers idle this long are forgotten.
    pub producer_id_expiration_ms: i64,
    /// Consumer groups and the offsets topic.
    pub groups: GroupConfig,
    /// metrics.listen: where `GET /metrics` answers (Prometheus text); `None` turns it off.
    pub metrics_listen: Option<String>,
    /// The settings given in the config file or on the command line, by Kafka name, as given:
    /// DescribeConfigs reports them as STATIC_BROKER_CONFIG, the rest as defaults.
    pub explicit: BTreeMap<String, String>,
    /// The process's limit on open files (RLIMIT_NOFILE) that connections and partitions share
    /// (see `broker::descriptors`): set by `main` from the OS, small in tests; `None` is no
    /// limit.
    pub open_files_max: Option<u64>,
    /// The cluster's settings (process.roles, controller.quorum.voters, ...).
    pub cluster: ClusterConfig,
}

/// How this node takes part in a cluster, with KRaft's names. With no voters, the node is a
/// cluster of one and keeps its metadata in its data directory alone, as keel always has.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// process.roles includes `broker`.
    pub broker: bool,
    /// process.roles includes `controller`.
    pub controller: bool,
    /// controller.quorum.voters: id -> host:port of its CONTROLLER listener.
    pub voters: BTreeMap<u64, String>,
    /// The listener of `listeners` named in controller.listener.names (host:port).
    pub controller_listen: Option<String>,
    /// controller.listener.names
    pub controller_listener_names: Vec<String>,
    /// listeners as given: resolved again when controller.listener.names changes.
    pub listeners: String,
    /// broker.session.timeout.ms
    pub session_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            broker: true,
            controller: true,
            voters: BTreeMap::new(),
            controller_listen: None,
            controller_listener_names: vec!["CONTROLLER".to_owned()],
            listeners: "PLAINTEXT://127.0.0.1:9092".to_owned(),
            session_timeout_ms: 9_000,
        }
    }
}

impl ClusterConfig {
    /// Whether this node is part of a quorum of voters (rather than a cluster of one).
    pub fn is_quorum(&self) -> bool {
        !self.voters.is_empty()
    }
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            node_id: 0,
            listen: "127.0.0.1:9092".to_owned(),
            advertised: None,
            data_dir: PathBuf::from("keel-data"),
            auto_create_topics: true,
            partitions_default: 1,
            log: LogConfig::default(),
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            inflight_requests_max: INFLIGHT_REQUESTS_MAX_DEFAULT,
            retention_check_interval_ms: 300_000,
            cleaner_backoff_ms: 15_000,
            cluster_id: "keel-cluster".to_owned(),
            producer_id_expiration_ms: 86_400_000,
            groups: GroupConfig::default(),
            metrics_listen: Some("127.0.0.1:9644".to_owned()),
            explicit: BTreeMap::new(),
            open_files_max: None,
            cluster: ClusterConfig::default(),
        }
    }
}

/// The group coordinator's settings, with Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.initial.rebalance.delay.ms: how long the first rebalance of an empty group waits
    /// for more members.
    pub initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms
    pub session_timeout_min_ms: i32,
    /// group.max.session.timeout.ms
    pub session_timeout_max_ms: i32,
    /// group.max.size
    pub members_max: usize,
    /// offsets.topic.num.partitions
    pub offsets_partitions: i32,
    /// offsets.topic.segment.bytes
    pub offsets_segment_bytes: u64,
    /// offset.metadata.max.bytes
    pub offset_metadata_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            session_timeout_min_ms: 6_000,
            session_timeout_max_ms: 1_800_000,
            members_max: i32::MAX as usize,
            offsets_partitions: 50,
            offsets_segment_bytes: 100 * 1024 * 1024,
            offset_metadata_bytes_max: 4096,
        }
    }
}

/// A topic's overrides of the broker defaults, by Kafka name, as given (validated).
pub type TopicOverrides = BTreeMap<String, String>;

/// One topic setting: the broker setting that gives its default (Kafka's synonym), and how a
/// value is parsed into the topic's `LogConfig` (or accepted and ignored, with the reason).
pub struct TopicSetting {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// The broker setting whose value is this one's default.
    pub broker_setting: Option<&'static str>,
    pub doc: &'static str,
    pub value: Value<TopicDraft>,
}

impl TopicSetting {
    /// The value in force for a topic with `config` and `overrides`.
    pub fn current(&self, config: &LogConfig, overrides: &TopicOverrides) -> String {
        match &self.value {
            Value::Field { get, .. } => get(&TopicDraft::from(config)),
            Value::Ignored { default, .. } => overrides
                .get(self.name)
                .cloned()
                .unwrap_or_else(|| (*default).to_owned()),
        }
    }
}

/// A topic's settings while overrides are applied: the log's, and the flush pair that becomes
/// its flush policy once all are read.
pub struct TopicDraft {
    pub log: LogConfig,
    flush_messages: i64,
    flush_ms: i64,
}

impl From<&LogConfig> for TopicDraft {
    fn from(log: &LogConfig) -> TopicDraft {
        let (flush_messages, flush_ms) = flush_settings(log.flush);
        TopicDraft {
            log: log.clone(),
            flush_messages,
            flush_ms,
        }
    }
}

/// The row of a topic setting.
pub fn topic_setting(name: &str) -> Option<&'static TopicSetting> {
    TOPIC_SETTINGS.iter().find(|s| s.name == name)
}

/// leader/follower.replication.throttled.replicas: "", "*", or partition:broker pairs.
fn throttled_replicas(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() || value == "*" {
        return Ok(());
    }
    let pair = |item: &str| {
        let (partition, broker) = item.trim().split_once(':')?;
        partition.trim().parse::<u32>().ok()?;
        broker.trim().parse::<u32>().ok()
    };
    if value.split(',').all(|item| pair(item).is_some()) {
        Ok(())
    } else {
        Err("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".to_owned())
    }
}

/// Only `false`: keel has no tiered storage.
fn no_remote_storage(value: &str) -> Result<(), String> {
    if boolean(value)? {
        Err("keel has no tiered storage".to_owned())
    } else {
        Ok(())
    }
}

/// compression.gzip.level: 1 to 9, or -1 for the codec's default.
fn gzip_level(value: &str) -> Result<(), String> {
    match int(value)? {
        -1 | 1..=9 => Ok(()),
        _ => Err("Value must be between 1 and 9 or equal to -1".to_owned()),
    }
}

/// Every topic setting of Kafka 3.9, each applied or accepted as a no-op with its reason.
pub static TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        broker_setting: Some("log.cleanup.policy"),
        doc: "delete (retention by time and size), compact (keep each key's latest record), or both.",
        value: Value::Field {
            set: |c, v| {
                c.log.cleanup_policy = v.parse()?;
                Ok(())
            },
            get: |c| c.log.cleanup_policy.to_string(),
        },
    },
    TopicSetting {
        name: "compression.type",
        config_type: ConfigType::String,
        broker_setting: Some("compression.type"),
        doc: "producer keeps batches as produced; uncompressed, gzip, snappy, lz4 or zstd recompresses batches that use another codec.",
        value: Value::Field {
            set: |c, v| {
                c.log.compression = v.parse()?;
                Ok(())
            },
            get: |c| c.log.compression.to_string(),
        },
    },
    TopicSetting {
        name: "compression.gzip.level",
        config_type: ConfigType::Int,
        broker_setting: Some("compression.gzip.level"),
        doc: "gzip level when the broker recompresses.",
        value: Value::Ignored {
            default: "-1",
            check: gzip_level,
            why: "keel recompresses at each codec's default level",
        },
    },
    TopicSetting {
        name: "compression.lz4.level",
        config_type: ConfigType::Int,
        broker_setting: Some("compression.lz4.level"),
        doc: "lz4 level when the broker recompresses.",
        value: Value::Ignored {
            default: "9",
            check: |v| between(int(v)?, 1, 17).map(drop),
            why: "keel recompresses at each codec's default level",
        },
    },
    TopicSetting {
        name: "compression.zstd.level",
        config_type: ConfigType::Int,
        broker_setting: Some("compression.zstd.level"),
        doc: "zstd level when the broker recompresses.",
        value: Value::Ignored {
            default: "3",
            check: |v| between(int(v)?, -131_072, 22).map(drop),
            why: "keel recompresses at each codec's default level",
        },
    },
    TopicSetting {
        name: "delete.retention.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.cleaner.delete.retention.ms"),
        doc: "How long compaction keeps tombstones.",
        value: Value::Field {
            set: |c, v| {
                c.log.delete_retention_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.delete_retention_ms.to_string(),
        },
    },
    TopicSetting {
        name: "file.delete.delay.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.segment.delete.delay.ms"),
        doc: "How long a deleted segment's files stay.",
        value: Value::Ignored {
            default: "60000",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "keel removes a deleted segment's files at once, after its readers are done",
        },
    },
    TopicSetting {
        name: "flush.messages",
        config_type: ConfigType::Long,
        broker_setting: Some("log.flush.interval.messages"),
        doc: "fsync after this many records; 1 fsyncs before every acknowledgement.",
        value: Value::Field {
            set: |c, v| {
                c.flush_messages = at_least(long(v)?, 1)?;
                Ok(())
            },
            get: |c| c.flush_messages.to_string(),
        },
    },
    TopicSetting {
        name: "flush.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.flush.interval.ms"),
        doc: "fsync at least this often.",
        value: Value::Field {
            set: |c, v| {
                c.flush_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.flush_ms.to_string(),
        },
    },
    TopicSetting {
        name: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        broker_setting: None,
        doc: "Replicas whose follower fetches are throttled.",
        value: Value::Ignored {
            default: "",
            check: throttled_replicas,
            why: "a single-node keel replicates nothing",
        },
    },
    TopicSetting {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        broker_setting: Some("log.index.interval.bytes"),
        doc: "Log bytes between offset index entries.",
        value: Value::Field {
            set: |c, v| {
                c.log.index_interval_bytes = at_least(int(v)?, 0)? as u64;
                Ok(())
            },
            get: |c| c.log.index_interval_bytes.to_string(),
        },
    },
    TopicSetting {
        name: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        broker_setting: None,
        doc: "Replicas whose leader-side replication is throttled.",
        value: Value::Ignored {
            default: "",
            check: throttled_replicas,
            why: "a single-node keel replicates nothing",
        },
    },
    TopicSetting {
        name: "local.retention.bytes",
        config_type: ConfigType::Long,
        broker_setting: Some("log.local.retention.bytes"),
        doc: "Local retention with tiered storage; -2 follows retention.bytes.",
        value: Value::Ignored {
            default: "-2",
            check: |v| at_least(long(v)?, -2).map(drop),
            why: "keel has no tiered storage: retention.bytes is the local retention",
        },
    },
    TopicSetting {
        name: "local.retention.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.local.retention.ms"),
        doc: "Local retention with tiered storage; -2 follows retention.ms.",
        value: Value::Ignored {
            default: "-2",
            check: |v| at_least(long(v)?, -2).map(drop),
            why: "keel has no tiered storage: retention.ms is the local retention",
        },
    },
    TopicSetting {
        name: "max.compaction.lag.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.cleaner.max.compaction.lag.ms"),
        doc: "A log with uncleaned records this old is compacted whatever its dirty ratio.",
        value: Value::Field {
            set: |c, v| {
                c.log.max_compaction_lag_ms = at_least(long(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.max_compaction_lag_ms.to_string(),
        },
    },
    TopicSetting {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        broker_setting: Some("message.max.bytes"),
        doc: "The largest record batch accepted.",
        value: Value::Field {
            set: |c, v| {
                c.log.message_bytes_max = at_least(int(v)?, 1)? as usize;
                Ok(())
            },
            get: |c| c.log.message_bytes_max.to_string(),
        },
    },
    TopicSetting {
        name: "message.downconversion.enable",
        config_type: ConfigType::Boolean,
        broker_setting: Some("log.message.downconversion.enable"),
        doc: "Deprecated: whether old fetch versions get converted batches.",
        value: Value::Ignored {
            default: "true",
            check: any_boolean,
            why: "keel answers only Fetch versions that read message format v2, so nothing is converted",
        },
    },
    TopicSetting {
        name: "message.format.version",
        config_type: ConfigType::String,
        broker_setting: Some("log.message.format.version"),
        doc: "Deprecated: keel writes message format v2 only.",
        value: Value::Ignored {
            default: "3.0-IV1",
            check: |_| Ok(()),
            why: "deprecated; every keel log holds message format v2, as Kafka 3.x ignores it for v2 logs",
        },
    },
    TopicSetting {
        name: "message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.message.timestamp.after.max.ms"),
        doc: "How far in the future a CreateTime timestamp may be.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_after_max_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.timestamp_after_max_ms.to_string(),
        },
    },
    TopicSetting {
        name: "message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.message.timestamp.before.max.ms"),
        doc: "How far in the past a CreateTime timestamp may be.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_before_max_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.timestamp_before_max_ms.to_string(),
        },
    },
    TopicSetting {
        name: "message.timestamp.difference.max.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.message.timestamp.difference.max.ms"),
        doc: "Deprecated for message.timestamp.before.max.ms and message.timestamp.after.max.ms.",
        value: Value::Ignored {
            default: "9223372036854775807",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "deprecated in Kafka 3.6 for the before/after pair, which keel applies",
        },
    },
    TopicSetting {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        broker_setting: Some("log.message.timestamp.type"),
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_type = timestamp_type(v)?;
                Ok(())
            },
            get: |c| timestamp_type_name(c.log.timestamp_type),
        },
    },
    TopicSetting {
        name: "min.cleanable.dirty.ratio",
        config_type: ConfigType::Double,
        broker_setting: Some("log.cleaner.min.cleanable.ratio"),
        doc: "The dirty share of a log that starts compaction.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_cleanable_dirty_ratio = between(double(v)?, 0.0, 1.0)?;
                Ok(())
            },
            get: |c| c.log.min_cleanable_dirty_ratio.to_string(),
        },
    },
    TopicSetting {
        name: "min.compaction.lag.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.cleaner.min.compaction.lag.ms"),
        doc: "Records younger than this are not compacted.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_compaction_lag_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.min_compaction_lag_ms.to_string(),
        },
    },
    TopicSetting {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        broker_setting: Some("min.insync.replicas"),
        doc: "In-sync replicas that must hold a record before acks=all is answered; a single keel node has one, so more refuses acks=all with NOT_ENOUGH_REPLICAS.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_insync_replicas = at_least(int(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.min_insync_replicas.to_string(),
        },
    },
    TopicSetting {
        name: "preallocate",
        config_type: ConfigType::Boolean,
        broker_setting: Some("log.preallocate"),
        doc: "Whether segment files are preallocated.",
        value: Value::Ignored {
            default: "false",
            check: any_boolean,
            why: "keel's segments grow as they are written; recovery relies on their length",
        },
    },
    TopicSetting {
        name: "remote.log.copy.disable",
        config_type: ConfigType::Boolean,
        broker_setting: None,
        doc: "Tiered storage: stop copying segments to remote storage.",
        value: Value::Ignored {
            default: "false",
            check: any_boolean,
            why: "keel has no tiered storage",
        },
    },
    TopicSetting {
        name: "remote.log.delete.on.disable",
        config_type: ConfigType::Boolean,
        broker_setting: None,
        doc: "Tiered storage: delete remote segments when it is turned off.",
        value: Value::Ignored {
            default: "false",
            check: any_boolean,
            why: "keel has no tiered storage",
        },
    },
    TopicSetting {
        name: "remote.storage.enable",
        config_type: ConfigType::Boolean,
        broker_setting: None,
        doc: "Tiered storage; keel has none, so only false is accepted.",
        value: Value::Ignored {
            default: "false",
            check: no_remote_storage,
            why: "keel has no tiered storage",
        },
    },
    TopicSetting {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        broker_setting: Some("log.retention.bytes"),
        doc: "The partition size above which old segments are deleted; -1 keeps all.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_bytes = long(v)?;
                Ok(())
            },
            get: |c| c.log.retention_bytes.to_string(),
        },
    },
    TopicSetting {
        name: "retention.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.retention.ms"),
        doc: "The age after which closed segments are deleted; -1 keeps all.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_ms = at_least(long(v)?, -1)?;
                Ok(())
            },
            get: |c| c.log.retention_ms.to_string(),
        },
    },
    TopicSetting {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        broker_setting: Some("log.segment.bytes"),
        doc: "The size at which a segment rolls.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_bytes = segment_bytes(v)?;
                Ok(())
            },
            get: |c| c.log.segment_bytes.to_string(),
        },
    },
    TopicSetting {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        broker_setting: Some("log.index.size.max.bytes"),
        doc: "The preallocated size of each index file.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_index_bytes = at_least(int(v)?, SEGMENT_INDEX_BYTES_MIN)? as usize;
                Ok(())
            },
            get: |c| c.log.segment_index_bytes.to_string(),
        },
    },
    TopicSetting {
        name: "segment.jitter.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.roll.jitter.ms"),
        doc: "Random time taken off segment.ms, so that segments do not all roll at once.",
        value: Value::Ignored {
            default: "0",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "keel rolls each segment at segment.ms exactly",
        },
    },
    TopicSetting {
        name: "segment.ms",
        config_type: ConfigType::Long,
        broker_setting: Some("log.roll.ms"),
        doc: "The age at which a segment rolls.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_ms = at_least(long(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.segment_ms.to_string(),
        },
    },
    TopicSetting {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        broker_setting: Some("unclean.leader.election.enable"),
        doc: "Whether a replica that is not in sync may become leader: never in keel.",
        value: Value::Ignored {
            default: "false",
            check: unclean_election,
            why: "keel never elects an out-of-sync replica",
        },
    },
];

/// The log settings of a topic: broker defaults with `overrides` applied.
///
/// # Errors
/// A message naming the setting that is unknown or out of range (INVALID_CONFIG), in Kafka's
/// words.
pub fn topic_log_config(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Result<LogConfig, String> {
    let mut draft = TopicDraft::from(defaults);
    for (name, value) in overrides {
        let setting =
            topic_setting(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
        match &setting.value {
            Value::Field { set, .. } => set(&mut draft, value),
            Value::Ignored { check, .. } => check(value),
        }
        .map_err(|why| invalid(name, value, &why))?;
    }
    let mut config = draft.log;
    config.flush = flush_policy(draft.flush_messages, draft.flush_ms);
    config.validate()?;
    Ok(config)
}

/// Kafka's flush.messages / flush.ms pair for a policy.
pub fn flush_settings(policy: FlushPolicy) -> (i64, i64) {
    match policy {
        FlushPolicy::None => (NEVER, NEVER),
        FlushPolicy::Always => (1, NEVER),
        FlushPolicy::Interval { ms, messages } => (
            if messages == 0 {
                NEVER
            } else {
                messages as i64
            },
            if ms == 0 { NEVER } else { ms as i64 },
        ),
    }
}

/// The policy Kafka's settings mean: flush.messages=1 is an fsync before every acknowledgement
/// (`always`); any other finite setting is `interval`; both at "never" is `none`.
pub fn flush_policy(messages: i64, ms: i64) -> FlushPolicy {
    match (messages, ms) {
        (1, _) => FlushPolicy::Always,
        (NEVER, NEVER) => FlushPolicy::None,
        (messages, ms) => FlushPolicy::Interval {
            ms: if ms == NEVER { 0 } else { ms.max(0) as u64 },
            messages: if messages == NEVER {
                0
            } else {
                messages.max(0) as u64
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The effective value of every topic setting.
    pub fn describe(config: &LogConfig, overrides: &TopicOverrides) -> Vec<(&'static str, String)> {
        TOPIC_SETTINGS
            .iter()
            .map(|setting| (setting.name, setting.current(config, overrides)))
            .collect()
    }

    #[test]
    fn kafka_flush_settings_map_to_policies_and_back() {
        let cases = [
            ((NEVER, NEVER), FlushPolicy::None),
            ((1, NEVER), FlushPolicy::Always),
            (
                (100, NEVER),
                FlushPolicy::Interval {
                    ms: 0,
                    messages: 100,
                },
            ),
            (
                (NEVER, 500),
                FlushPolicy::Interval {
                    ms: 500,
                    messages: 0,
                },
            ),
        ];
        for ((messages, ms), policy) in cases {
            assert_eq!(flush_policy(messages, ms), policy);
            assert_eq!(flush_settings(policy), (messages, ms));
        }
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_refused() {
        let defaults = LogConfig::default();
        let mut overrides = TopicOverrides::new();
        overrides.insert("retention.ms".into(), "1000".into());
        overrides.insert("flush.messages".into(), "1".into());
        let config = topic_log_config(&defaults, &overrides).unwrap();
        assert_eq!(config.retention_ms, 1000);
        assert_eq!(config.flush, FlushPolicy::Always);
        for (name, value) in [
            ("segment.bytes", "0"),
            ("segment.bytes", "x"),
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("delete.retention.ms", "-1"),
            ("no.such", "1"),
        ] {
            let bad = TopicOverrides::from([(name.to_owned(), value.to_owned())]);
            assert!(topic_log_config(&defaults, &bad).is_err(), "{name}={value}");
        }
    }

    #[test]
    fn compaction_settings_apply_and_are_described() {
        let overrides = TopicOverrides::from([
            ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
            ("delete.retention.ms".to_owned(), "100".to_owned()),
            ("min.cleanable.dirty.ratio".to_owned(), "0.01".to_owned()),
            ("min.compaction.lag.ms".to_owned(), "5".to_owned()),
        ]);
        let config = topic_log_config(&LogConfig::default(), &overrides).unwrap();
        assert!(config.cleanup_policy.compact && config.cleanup_policy.delete);
        let described = describe(&config, &overrides);
        for (name, value) in &overrides {
            assert!(
                described.contains(&(name.as_str(), value.clone())),
                "{name}"
            );
        }
        let compact = TopicOverrides::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
        let config = topic_log_config(&LogConfig::default(), &compact).unwrap();
        assert_eq!(config.cleanup_policy, crate::log::CleanupPolicy::COMPACT);
    }
}
