//! The broker's settings, with Kafka's names where Kafka has the setting, and the per-topic
//! overrides (`retention.ms`, `segment.bytes`, `flush.messages`, ...) that turn broker defaults
//! into one topic's `LogConfig`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::log::{FlushPolicy, LogConfig, TimestampType};

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

/// The topic-level settings keel understands, by Kafka name.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.ms",
];

/// A topic's overrides of the broker defaults, by Kafka name, as given (validated).
pub type TopicOverrides = BTreeMap<String, String>;

/// The log settings of a topic: broker defaults with `overrides` applied.
///
/// # Errors
/// A message naming the setting that is unknown or out of range (INVALID_CONFIG).
pub fn topic_log_config(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Result<LogConfig, String> {
    let mut config = defaults.clone();
    let (mut flush_messages, mut flush_ms) = flush_settings(defaults.flush);
    for (name, value) in overrides {
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| format!("{name}: '{value}' is not a number"))
        };
        match name.as_str() {
            "retention.ms" => config.retention_ms = number()?,
            "retention.bytes" => config.retention_bytes = number()?,
            "segment.bytes" => config.segment_bytes = positive(name, number()?)?,
            "segment.ms" => config.segment_ms = number()?,
            "segment.index.bytes" => {
                config.segment_index_bytes = positive(name, number()?)? as usize
            }
            "index.interval.bytes" => config.index_interval_bytes = positive(name, number()?)?,
            "max.message.bytes" => config.message_bytes_max = positive(name, number()?)? as usize,
            "flush.messages" => flush_messages = positive(name, number()?)? as i64,
            "flush.ms" => flush_ms = number()?,
            "message.timestamp.type" => config.timestamp_type = timestamp_type(value)?,
            "cleanup.policy" => config.cleanup_policy = value.parse()?,
            "delete.retention.ms" => config.delete_retention_ms = number()?,
            "min.compaction.lag.ms" => config.min_compaction_lag_ms = number()?,
            "min.cleanable.dirty.ratio" => config.min_cleanable_dirty_ratio = ratio(name, value)?,
            "min.insync.replicas" if number()? == 1 => {}
            "min.insync.replicas" => {
                return Err(format!(
                    "min.insync.replicas {value}: a single-node keel has one replica"
                ))
            }
            other => return Err(format!("unknown topic config '{other}'")),
        }
    }
    config.flush = flush_policy(flush_messages, flush_ms);
    config.validate()?;
    Ok(config)
}

/// A ratio between 0 and 1 (min.cleanable.dirty.ratio).
///
/// # Errors
/// A message naming the setting when `value` is not a number in 0..=1.
pub fn ratio(name: &str, value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{name}: '{value}' is not a number between 0 and 1"))
}

fn positive(name: &str, value: i64) -> Result<u64, String> {
    u64::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{name} must be positive, not {value}"))
}

fn timestamp_type(value: &str) -> Result<TimestampType, String> {
    match value {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        other => Err(format!(
            "message.timestamp.type '{other}' (CreateTime or LogAppendTime)"
        )),
    }
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

/// The effective value of every topic setting, for DescribeConfigs.
pub fn describe(config: &LogConfig) -> Vec<(&'static str, String)> {
    let (flush_messages, flush_ms) = flush_settings(config.flush);
    let timestamp_type = match config.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    vec![
        ("cleanup.policy", config.cleanup_policy.to_string()),
        (
            "delete.retention.ms",
            config.delete_retention_ms.to_string(),
        ),
        ("flush.messages", flush_messages.to_string()),
        ("flush.ms", flush_ms.to_string()),
        (
            "index.interval.bytes",
            config.index_interval_bytes.to_string(),
        ),
        ("max.message.bytes", config.message_bytes_max.to_string()),
        ("message.timestamp.type", timestamp_type.to_owned()),
        (
            "min.cleanable.dirty.ratio",
            config.min_cleanable_dirty_ratio.to_string(),
        ),
        (
            "min.compaction.lag.ms",
            config.min_compaction_lag_ms.to_string(),
        ),
        ("min.insync.replicas", "1".to_owned()),
        ("retention.bytes", config.retention_bytes.to_string()),
        ("retention.ms", config.retention_ms.to_string()),
        ("segment.bytes", config.segment_bytes.to_string()),
        (
            "segment.index.bytes",
            config.segment_index_bytes.to_string(),
        ),
        ("segment.ms", config.segment_ms.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let described = describe(&config);
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
