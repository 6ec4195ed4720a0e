//! Broker settings from a TOML file and `--set NAME=VALUE` flags, with Kafka's names.
//! Nested TOML tables are flattened with dots, so `[log] segment.bytes = 1024` and
//! `"log.segment.bytes" = 1024` mean the same.

use std::path::PathBuf;

use super::config::{flush_policy, flush_settings, BrokerConfig};
use crate::log::TimestampType;

/// Every broker setting keel reads, with what it means (shown by `keel serve --help`).
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "listeners",
        "address to listen on, host:port or PLAINTEXT://host:port (127.0.0.1:9092)",
    ),
    (
        "advertised.listeners",
        "address clients are told to use (the bound address)",
    ),
    ("log.dirs", "data directory (./keel-data)"),
    ("node.id", "this broker's id (0)"),
    (
        "auto.create.topics.enable",
        "create unknown topics on Metadata and Produce (true)",
    ),
    ("num.partitions", "partitions of auto-created topics (1)"),
    (
        "socket.request.max.bytes",
        "largest request frame accepted (104857600)",
    ),
    ("max.connections", "connections accepted at once (10000)"),
    (
        "queued.max.requests",
        "requests a connection reads ahead of the one being answered (16)",
    ),
    (
        "log.retention.check.interval.ms",
        "how often retention runs (300000)",
    ),
    (
        "log.cleaner.backoff.ms",
        "how often compaction looks for partitions to clean (15000)",
    ),
    (
        "log.cleanup.policy",
        "delete, compact, or compact,delete (delete)",
    ),
    (
        "log.cleaner.delete.retention.ms",
        "how long compaction keeps tombstones (86400000)",
    ),
    (
        "log.cleaner.min.cleanable.ratio",
        "dirty share of a partition that starts compaction (0.5)",
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "age below which records are not compacted (0)",
    ),
    (
        "log.segment.bytes",
        "segment size before a roll (1073741824)",
    ),
    ("log.roll.ms", "segment age before a roll (604800000)"),
    (
        "log.retention.ms",
        "age after which closed segments are deleted; -1 keeps all (604800000)",
    ),
    (
        "log.retention.bytes",
        "partition size above which old segments are deleted; -1 keeps all (-1)",
    ),
    (
        "log.index.interval.bytes",
        "bytes between offset index entries (4096)",
    ),
    (
        "log.index.size.max.bytes",
        "preallocated size of each index file (10485760)",
    ),
    (
        "message.max.bytes",
        "largest record batch accepted (1048588)",
    ),
    (
        "log.flush.interval.messages",
        "fsync after this many records; 1 = before every ack (never)",
    ),
    ("log.flush.interval.ms", "fsync at least this often (never)"),
    (
        "log.message.timestamp.type",
        "CreateTime or LogAppendTime (CreateTime)",
    ),
    (
        "producer.id.expiration.ms",
        "idle time after which an idempotent producer's sequences are forgotten (86400000)",
    ),
    (
        "group.initial.rebalance.delay.ms",
        "how long an empty group's first rebalance waits for more members (3000)",
    ),
    (
        "group.min.session.timeout.ms",
        "smallest session timeout a group member may ask for (6000)",
    ),
    (
        "group.max.session.timeout.ms",
        "largest session timeout a group member may ask for (1800000)",
    ),
    ("group.max.size", "members per group (2147483647)"),
    (
        "offsets.topic.num.partitions",
        "partitions of __consumer_offsets, fixed once it exists (50)",
    ),
    (
        "offsets.topic.segment.bytes",
        "segment size of __consumer_offsets (104857600)",
    ),
    (
        "offset.metadata.max.bytes",
        "largest metadata string of a committed offset (4096)",
    ),
];

/// Applies one setting.
///
/// # Errors
/// Unknown names and unreadable values, with the name.
pub fn apply(config: &mut BrokerConfig, name: &str, value: &str) -> Result<(), String> {
    let int = || {
        value
            .parse::<i64>()
            .map_err(|_| format!("{name}: '{value}' is not a number"))
    };
    let (mut flush_messages, mut flush_ms) = flush_settings(config.log.flush);
    match name {
        "listeners" => config.listen = strip_scheme(value),
        "advertised.listeners" => config.advertised = Some(strip_scheme(value)),
        "log.dirs" | "log.dir" => config.data_dir = PathBuf::from(value),
        "node.id" | "broker.id" => config.node_id = int()? as i32,
        "auto.create.topics.enable" => {
            config.auto_create_topics = value
                .parse()
                .map_err(|_| format!("{name}: true or false"))?
        }
        "num.partitions" => config.partitions_default = int()? as i32,
        "socket.request.max.bytes" => config.request_bytes_max = int()?.max(0) as usize,
        "max.connections" => config.connections_max = int()?.max(0) as usize,
        "queued.max.requests" => config.inflight_requests_max = int()?.max(1) as usize,
        "log.retention.check.interval.ms" => {
            config.retention_check_interval_ms = int()?.max(1) as u64
        }
        "log.cleaner.backoff.ms" => config.cleaner_backoff_ms = int()?.max(1) as u64,
        "log.cleanup.policy" => config.log.cleanup_policy = value.parse()?,
        "log.cleaner.delete.retention.ms" => config.log.delete_retention_ms = int()?,
        "log.cleaner.min.cleanable.ratio" => {
            config.log.min_cleanable_dirty_ratio = super::config::ratio(name, value)?
        }
        "log.cleaner.min.compaction.lag.ms" => config.log.min_compaction_lag_ms = int()?,
        "log.segment.bytes" => config.log.segment_bytes = int()?.max(0) as u64,
        "log.roll.ms" => config.log.segment_ms = int()?,
        "log.retention.ms" => config.log.retention_ms = int()?,
        "log.retention.bytes" => config.log.retention_bytes = int()?,
        "log.index.interval.bytes" => config.log.index_interval_bytes = int()?.max(1) as u64,
        "log.index.size.max.bytes" => config.log.segment_index_bytes = int()?.max(0) as usize,
        "message.max.bytes" => config.log.message_bytes_max = int()?.max(0) as usize,
        "log.flush.interval.messages" => flush_messages = int()?,
        "log.flush.interval.ms" => flush_ms = int()?,
        "log.message.timestamp.type" => {
            config.log.timestamp_type = match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(format!("{name}: CreateTime or LogAppendTime")),
            }
        }
        "producer.id.expiration.ms" => config.producer_id_expiration_ms = int()?.max(1),
        "group.initial.rebalance.delay.ms" => {
            config.groups.initial_rebalance_delay_ms = int()?.max(0)
        }
        "group.min.session.timeout.ms" => {
            config.groups.session_timeout_min_ms = int()?.clamp(1, i64::from(i32::MAX)) as i32
        }
        "group.max.session.timeout.ms" => {
            config.groups.session_timeout_max_ms = int()?.clamp(1, i64::from(i32::MAX)) as i32
        }
        "group.max.size" => config.groups.members_max = int()?.max(1) as usize,
        "offsets.topic.num.partitions" => {
            config.groups.offsets_partitions = int()?.clamp(1, 10_000) as i32
        }
        "offsets.topic.segment.bytes" => {
            config.groups.offsets_segment_bytes = int()?.max(1024) as u64
        }
        "offset.metadata.max.bytes" => {
            config.groups.offset_metadata_bytes_max = int()?.max(0) as usize
        }
        "metrics.listen" => {
            config.metrics_listen = (!value.is_empty()).then(|| strip_scheme(value));
        }
        _ => return Err(format!("unknown setting '{name}' (see keel serve --help)")),
    }
    config.log.flush = flush_policy(flush_messages, flush_ms);
    Ok(())
}

fn strip_scheme(value: &str) -> String {
    let first = value.split(',').next().unwrap_or(value).trim();
    first
        .split_once("://")
        .map_or(first, |(_, address)| address)
        .to_owned()
}

/// Applies every setting of a TOML document.
///
/// # Errors
/// TOML syntax errors and bad settings.
pub fn apply_toml(config: &mut BrokerConfig, text: &str) -> Result<(), String> {
    let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    for (name, value) in flat {
        apply(config, &name, &value)?;
    }
    Ok(())
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            toml::Value::String(s) => out.push((name, s.clone())),
            toml::Value::Integer(i) => out.push((name, i.to_string())),
            toml::Value::Boolean(b) => out.push((name, b.to_string())),
            toml::Value::Float(f) => out.push((name, f.to_string())),
            // Arrays and dates mean nothing to any setting: passed as text, they are refused
            // with the setting's name.
            other => out.push((name, format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::FlushPolicy;

    #[test]
    fn toml_and_flags_use_kafka_names() {
        let mut config = BrokerConfig::default();
        let text = "listeners = \"PLAINTEXT://127.0.0.1:19092\"\n[log]\nsegment.bytes = 4096\nflush.interval.messages = 1\n";
        apply_toml(&mut config, text).unwrap();
        assert_eq!(config.listen, "127.0.0.1:19092");
        assert_eq!(config.log.segment_bytes, 4096);
        assert_eq!(config.log.flush, FlushPolicy::Always);
        apply(&mut config, "auto.create.topics.enable", "false").unwrap();
        assert!(!config.auto_create_topics);
        assert!(apply(&mut config, "no.such.setting", "1").is_err());
        assert!(apply(&mut config, "num.partitions", "x").is_err());
    }
}
