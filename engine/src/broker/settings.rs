//! The broker's settings as one table: each row is a setting's Kafka name, its type as
//! DescribeConfigs reports it (KIP-569), its meaning, and how a value is parsed, range-checked and
//! read back. `keel serve --help`, the TOML and `--set` parser, DescribeConfigs for the broker
//! resource and the defaults shown for topic settings all come from it, so they cannot disagree.
//! Nested TOML tables are flattened with dots, so `[log] segment.bytes = 1024` and
//! `"log.segment.bytes" = 1024` mean the same.
//!
//! A value out of range is refused with Kafka's message ("Invalid value X for configuration
//! NAME: ..."), never clamped. Settings Kafka has that change nothing in keel are accepted only
//! where a user of Kafka would expect them to be, each with the reason in its row.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::config::{flush_policy, flush_settings, BrokerConfig};
use crate::log::config::{
    SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN, SEGMENT_INDEX_BYTES_MIN, TIMESTAMP_TYPES,
};
use crate::log::TimestampType;

/// A setting's type, as DescribeConfigs v3+ reports it (KIP-569's ConfigType codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name of the type, as `--help` shows it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Class => "class",
            ConfigType::Password => "password",
        }
    }
}

/// How a setting's value reaches the broker.
pub enum Value<C: 'static> {
    /// Parsed into a field of `C`: `set` checks and stores it, `get` reads the effective value
    /// back in Kafka's syntax.
    Field {
        set: fn(&mut C, &str) -> Result<(), String>,
        get: fn(&C) -> String,
    },
    /// Accepted and reported, but nothing in keel depends on it: `check` refuses what Kafka
    /// refuses (and what keel cannot honour), `why` says why the value changes nothing.
    Ignored {
        default: &'static str,
        check: fn(&str) -> Result<(), String>,
        why: &'static str,
    },
}

/// One broker setting.
pub struct BrokerSetting {
    /// Kafka's name.
    pub name: &'static str,
    /// Other names Kafka reads for the same setting (`log.dir`, `broker.id`).
    pub aliases: &'static [&'static str],
    pub config_type: ConfigType,
    /// What it means, one sentence (DescribeConfigs' documentation and `--help`).
    pub doc: &'static str,
    pub value: Value<BrokerConfig>,
}

impl BrokerSetting {
    /// The value in force: what was set, or the default.
    pub fn current(&self, config: &BrokerConfig) -> String {
        match &self.value {
            Value::Field { get, .. } => get(config),
            Value::Ignored { default, .. } => config
                .explicit
                .get(self.name)
                .cloned()
                .unwrap_or_else(|| (*default).to_owned()),
        }
    }

    /// The value when nothing sets it.
    pub fn default_value(&self) -> String {
        match &self.value {
            Value::Field { get, .. } => get(&BrokerConfig::default()),
            Value::Ignored { default, .. } => (*default).to_owned(),
        }
    }

    /// Whether `name` is this setting.
    pub fn is(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// The row of a broker setting by its name or an alias.
pub fn broker_setting(name: &str) -> Option<&'static BrokerSetting> {
    BROKER_SETTINGS.iter().find(|s| s.is(name))
}

/// Kafka's message for a refused value.
pub fn invalid(name: &str, value: &str, why: &str) -> String {
    format!("Invalid value {value} for configuration {name}: {why}")
}

// Value parsers shared by the broker and topic tables. Each returns the reason a value is
// refused, worded as Kafka's ConfigDef words it; the caller adds the name.

pub fn long(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "Not a number of type LONG".to_owned())
}

pub fn int(value: &str) -> Result<i32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "Not a number of type INT".to_owned())
}

pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("Expected value to be either true or false".to_owned()),
    }
}

pub fn double(value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "Not a number of type DOUBLE".to_owned())
}

/// `value` if it is at least `min`.
pub fn at_least<T: PartialOrd + std::fmt::Display>(value: T, min: T) -> Result<T, String> {
    if value >= min {
        Ok(value)
    } else {
        Err(format!("Value must be at least {min}"))
    }
}

/// `value` if it lies in `min..=max`, refused in the words of Kafka's `Range.between`.
pub fn between<T: PartialOrd + std::fmt::Display>(value: T, min: T, max: T) -> Result<T, String> {
    if value < min {
        Err(format!("Value must be at least {min}"))
    } else if value > max {
        Err(format!("Value must be no more than {max}"))
    } else {
        Ok(value)
    }
}

/// One of `allowed`, compared as Kafka's `ValidString.in` does (exactly).
pub fn one_of<'a>(value: &'a str, allowed: &[&str]) -> Result<&'a str, String> {
    if allowed.contains(&value.trim()) {
        Ok(value.trim())
    } else {
        Err(format!("String must be one of: {}", allowed.join(", ")))
    }
}

pub fn timestamp_type(value: &str) -> Result<TimestampType, String> {
    match one_of(value, &TIMESTAMP_TYPES)? {
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Ok(TimestampType::CreateTime),
    }
}

pub fn timestamp_type_name(value: TimestampType) -> String {
    match value {
        TimestampType::CreateTime => "CreateTime".to_owned(),
        TimestampType::LogAppendTime => "LogAppendTime".to_owned(),
    }
}

/// A value keel accepts without checking beyond its type.
pub fn any_boolean(value: &str) -> Result<(), String> {
    boolean(value).map(drop)
}

/// Only `false`: keel never elects a leader that may lack acknowledged records.
pub fn unclean_election(value: &str) -> Result<(), String> {
    if boolean(value)? {
        Err("keel never elects an out-of-sync replica (unclean election stays off)".to_owned())
    } else {
        Ok(())
    }
}

/// segment.bytes: from one batch header up to what a u32 index position can address.
pub fn segment_bytes(value: &str) -> Result<u64, String> {
    let bytes = between(
        int(value)?,
        SEGMENT_BYTES_MIN as i32,
        SEGMENT_BYTES_LIMIT as i32,
    )?;
    Ok(bytes as u64)
}

/// Milliseconds in an hour and a minute, for the `.hours` / `.minutes` forms of Kafka's settings.
const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;

/// Kafka's "never" for flush settings.
const NEVER: i64 = i64::MAX;

/// -1 (keep for ever) or a number of `unit_ms`, as milliseconds.
fn retention_in(value: &str, unit_ms: i64) -> Result<i64, String> {
    let units = at_least(long(value)?, -1)?;
    if units == -1 {
        return Ok(-1);
    }
    units
        .checked_mul(unit_ms)
        .ok_or_else(|| "Value is too large".to_owned())
}

/// A retention in milliseconds shown in `unit_ms` (-1 stays -1).
fn retention_as(ms: i64, unit_ms: i64) -> String {
    if ms < 0 {
        ms.to_string()
    } else {
        (ms / unit_ms).to_string()
    }
}

fn set_flush_messages(config: &mut BrokerConfig, value: &str) -> Result<(), String> {
    let messages = at_least(long(value)?, 1)?;
    let (_, ms) = flush_settings(config.log.flush);
    config.log.flush = flush_policy(messages, ms);
    Ok(())
}

fn set_flush_ms(config: &mut BrokerConfig, value: &str) -> Result<(), String> {
    let ms = at_least(long(value)?, 0)?;
    let (messages, _) = flush_settings(config.log.flush);
    config.log.flush = flush_policy(messages, if ms == 0 { NEVER } else { ms });
    Ok(())
}

/// Splits `listeners` into the client listener and the controller listener (the one named in
/// controller.listener.names), each host:port.
fn set_listeners(c: &mut BrokerConfig, value: &str) -> Result<(), String> {
    let mut client = None;
    let mut controller = None;
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let name = entry.split_once("://").map(|(name, _)| name);
        let address = listener_address(entry)?;
        let is_controller = name.is_some_and(|n| {
            c.cluster
                .controller_listener_names
                .iter()
                .any(|c| c.eq_ignore_ascii_case(n))
        });
        if is_controller {
            controller.get_or_insert(address);
        } else {
            client.get_or_insert(address);
        }
    }
    match (client, controller) {
        (None, None) => return Err("expected host:port or PLAINTEXT://host:port".to_owned()),
        (client, controller) => {
            if let Some(client) = client {
                c.listen = client;
            }
            c.cluster.controller_listen = controller;
        }
    }
    c.cluster.listeners = value.trim().to_owned();
    Ok(())
}

fn get_listeners(c: &BrokerConfig) -> String {
    let mut out = plaintext(&c.listen);
    if let Some(controller) = &c.cluster.controller_listen {
        let name = c
            .cluster
            .controller_listener_names
            .first()
            .map_or("CONTROLLER", |n| n);
        out.push_str(&format!(",{name}://{controller}"));
    }
    out
}

/// `1@host:port,2@host:port`: every voter's id and CONTROLLER address.
fn parse_voters(value: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("'{entry}': expected id@host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("'{entry}': the id is not a number"))?;
        let address = listener_address(address)?;
        if voters.insert(id, address).is_some() {
            return Err(format!("voter {id} is named twice"));
        }
    }
    Ok(voters)
}

/// "host:port" from `PLAINTEXT://host:port` (the first listener of a list).
fn listener_address(value: &str) -> Result<String, String> {
    let first = value.split(',').next().unwrap_or(value).trim();
    let address = first
        .split_once("://")
        .map_or(first, |(_, address)| address);
    match address.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => Ok(address.to_owned()),
        _ => Err("expected host:port or PLAINTEXT://host:port".to_owned()),
    }
}

fn plaintext(address: &str) -> String {
    format!("PLAINTEXT://{address}")
}

/// Every broker setting keel reads.
pub static BROKER_SETTINGS: &[BrokerSetting] = &[
    BrokerSetting {
        name: "listeners",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "Addresses to listen on: host:port or PLAINTEXT://host:port for clients, and \
              CONTROLLER://host:port for the metadata quorum (see controller.listener.names).",
        value: Value::Field {
            set: set_listeners,
            get: get_listeners,
        },
    },
    BrokerSetting {
        name: "process.roles",
        aliases: &[],
        config_type: ConfigType::List,
        doc: "broker, controller, or both (combined mode, the default). Takes effect with \
              controller.quorum.voters.",
        value: Value::Field {
            set: |c, v| {
                let (mut broker, mut controller) = (false, false);
                for role in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match role {
                        "broker" => broker = true,
                        "controller" => controller = true,
                        other => return Err(format!("unknown role '{other}'")),
                    }
                }
                if !(broker || controller) {
                    return Err("expected broker, controller or both".to_owned());
                }
                c.cluster.broker = broker;
                c.cluster.controller = controller;
                Ok(())
            },
            get: |c| {
                let roles = [(c.cluster.broker, "broker"), (c.cluster.controller, "controller")];
                let named: Vec<&str> = roles.iter().filter(|r| r.0).map(|r| r.1).collect();
                named.join(",")
            },
        },
    },
    BrokerSetting {
        name: "controller.quorum.voters",
        aliases: &[],
        config_type: ConfigType::List,
        doc: "The metadata quorum's voters, id@host:port of each one's CONTROLLER listener \
              (1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293). Empty: a cluster of one.",
        value: Value::Field {
            set: |c, v| {
                c.cluster.voters = parse_voters(v)?;
                Ok(())
            },
            get: |c| {
                let voters = c.cluster.voters.iter().map(|(id, a)| format!("{id}@{a}"));
                voters.collect::<Vec<_>>().join(",")
            },
        },
    },
    BrokerSetting {
        name: "controller.listener.names",
        aliases: &[],
        config_type: ConfigType::List,
        doc: "The names in listeners of the metadata quorum's listener.",
        value: Value::Field {
            set: |c, v| {
                let names: Vec<String> = v
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    return Err("expected at least one listener name".to_owned());
                }
                c.cluster.controller_listener_names = names;
                let listeners = c.cluster.listeners.clone();
                set_listeners(c, &listeners)
            },
            get: |c| c.cluster.controller_listener_names.join(","),
        },
    },
    BrokerSetting {
        name: "cluster.id",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "The cluster's id, which clients see in Metadata; every node of a cluster must \
              have the same.",
        value: Value::Field {
            set: |c, v| {
                if v.trim().is_empty() {
                    return Err("must not be empty".to_owned());
                }
                c.cluster_id = v.trim().to_owned();
                Ok(())
            },
            get: |c| c.cluster_id.clone(),
        },
    },
    BrokerSetting {
        name: "broker.session.timeout.ms",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "A broker the active controller has not heard from for this long is fenced: its \
              partitions get other leaders, or none.",
        value: Value::Field {
            set: |c, v| {
                c.cluster.session_timeout_ms = at_least(long(v)?, 100)? as u64;
                Ok(())
            },
            get: |c| c.cluster.session_timeout_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "advertised.listeners",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "Address clients are told to connect to; the listener's when unset.",
        value: Value::Field {
            set: |c, v| {
                c.advertised = Some(listener_address(v)?);
                Ok(())
            },
            get: |c| plaintext(c.advertised.as_deref().unwrap_or(&c.listen)),
        },
    },
    BrokerSetting {
        name: "log.dirs",
        aliases: &["log.dir"],
        config_type: ConfigType::String,
        doc: "The data directory (one).",
        value: Value::Field {
            set: |c, v| {
                if v.contains(',') {
                    return Err("keel keeps its data in one directory".to_owned());
                }
                c.data_dir = PathBuf::from(v.trim());
                Ok(())
            },
            get: |c| c.data_dir.display().to_string(),
        },
    },
    BrokerSetting {
        name: "node.id",
        aliases: &["broker.id"],
        config_type: ConfigType::Int,
        doc: "This broker's id.",
        value: Value::Field {
            set: |c, v| {
                c.node_id = at_least(int(v)?, 0)?;
                Ok(())
            },
            get: |c| c.node_id.to_string(),
        },
    },
    BrokerSetting {
        name: "auto.create.topics.enable",
        aliases: &[],
        config_type: ConfigType::Boolean,
        doc: "Create unknown topics on Metadata and Produce.",
        value: Value::Field {
            set: |c, v| {
                c.auto_create_topics = boolean(v)?;
                Ok(())
            },
            get: |c| c.auto_create_topics.to_string(),
        },
    },
    BrokerSetting {
        name: "num.partitions",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Partitions of auto-created topics and of CreateTopics asking for the default.",
        value: Value::Field {
            set: |c, v| {
                c.partitions_default = between(int(v)?, 1, super::topics::PARTITIONS_MAX)?;
                Ok(())
            },
            get: |c| c.partitions_default.to_string(),
        },
    },
    BrokerSetting {
        name: "default.replication.factor",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Replicas of auto-created topics; a single keel node holds one.",
        value: Value::Ignored {
            default: "1",
            check: |v| {
                between(int(v)?, 1, 1)?;
                Ok(())
            },
            why: "a single-node keel keeps one replica of every partition",
        },
    },
    BrokerSetting {
        name: "socket.request.max.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "The largest request frame accepted.",
        value: Value::Field {
            set: |c, v| {
                c.request_bytes_max = at_least(int(v)?, 1)? as usize;
                Ok(())
            },
            get: |c| c.request_bytes_max.to_string(),
        },
    },
    BrokerSetting {
        name: "max.connections",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Connections accepted at once.",
        value: Value::Field {
            set: |c, v| {
                c.connections_max = at_least(int(v)?, 0)? as usize;
                Ok(())
            },
            get: |c| c.connections_max.to_string(),
        },
    },
    BrokerSetting {
        name: "queued.max.requests",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Requests a connection reads ahead of the one being answered.",
        value: Value::Field {
            set: |c, v| {
                c.inflight_requests_max = at_least(int(v)?, 1)? as usize;
                Ok(())
            },
            get: |c| c.inflight_requests_max.to_string(),
        },
    },
    BrokerSetting {
        name: "log.retention.check.interval.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "How often retention runs.",
        value: Value::Field {
            set: |c, v| {
                c.retention_check_interval_ms = at_least(long(v)?, 1)? as u64;
                Ok(())
            },
            get: |c| c.retention_check_interval_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleaner.backoff.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "How often compaction looks for partitions to clean.",
        value: Value::Field {
            set: |c, v| {
                c.cleaner_backoff_ms = at_least(long(v)?, 1)? as u64;
                Ok(())
            },
            get: |c| c.cleaner_backoff_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleanup.policy",
        aliases: &[],
        config_type: ConfigType::List,
        doc: "Default cleanup.policy: delete, compact, or compact,delete.",
        value: Value::Field {
            set: |c, v| {
                c.log.cleanup_policy = v.parse()?;
                Ok(())
            },
            get: |c| c.log.cleanup_policy.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleaner.delete.retention.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default delete.retention.ms: how long compaction keeps tombstones.",
        value: Value::Field {
            set: |c, v| {
                c.log.delete_retention_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.delete_retention_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleaner.min.cleanable.ratio",
        aliases: &[],
        config_type: ConfigType::Double,
        doc: "Default min.cleanable.dirty.ratio: the dirty share of a log that starts compaction.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_cleanable_dirty_ratio = between(double(v)?, 0.0, 1.0)?;
                Ok(())
            },
            get: |c| c.log.min_cleanable_dirty_ratio.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleaner.min.compaction.lag.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default min.compaction.lag.ms: records younger than this are not compacted.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_compaction_lag_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.min_compaction_lag_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.cleaner.max.compaction.lag.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default max.compaction.lag.ms: a log with records older than this that are not yet compacted is compacted whatever its dirty ratio.",
        value: Value::Field {
            set: |c, v| {
                c.log.max_compaction_lag_ms = at_least(long(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.max_compaction_lag_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.segment.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Default segment.bytes: the size at which a segment rolls.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_bytes = segment_bytes(v)?;
                Ok(())
            },
            get: |c| c.log.segment_bytes.to_string(),
        },
    },
    BrokerSetting {
        name: "log.roll.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default segment.ms: the age at which a segment rolls.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_ms = at_least(long(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.segment_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.roll.hours",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "log.roll.ms in hours.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_ms = i64::from(at_least(int(v)?, 1)?) * HOUR_MS;
                Ok(())
            },
            get: |c| (c.log.segment_ms / HOUR_MS).to_string(),
        },
    },
    BrokerSetting {
        name: "log.roll.jitter.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default segment.jitter.ms.",
        value: Value::Ignored {
            default: "0",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "keel rolls each segment at segment.ms exactly",
        },
    },
    BrokerSetting {
        name: "log.retention.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default retention.ms: the age after which closed segments are deleted; -1 keeps all.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_ms = retention_in(v, 1)?;
                Ok(())
            },
            get: |c| c.log.retention_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.retention.minutes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "log.retention.ms in minutes.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_ms = retention_in(v, MINUTE_MS)?;
                Ok(())
            },
            get: |c| retention_as(c.log.retention_ms, MINUTE_MS),
        },
    },
    BrokerSetting {
        name: "log.retention.hours",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "log.retention.ms in hours.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_ms = retention_in(v, HOUR_MS)?;
                Ok(())
            },
            get: |c| retention_as(c.log.retention_ms, HOUR_MS),
        },
    },
    BrokerSetting {
        name: "log.retention.bytes",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default retention.bytes: the partition size above which old segments are deleted; -1 keeps all.",
        value: Value::Field {
            set: |c, v| {
                c.log.retention_bytes = at_least(long(v)?, -1)?;
                Ok(())
            },
            get: |c| c.log.retention_bytes.to_string(),
        },
    },
    BrokerSetting {
        name: "log.index.interval.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Default index.interval.bytes: log bytes between offset index entries.",
        value: Value::Field {
            set: |c, v| {
                c.log.index_interval_bytes = at_least(int(v)?, 0)? as u64;
                Ok(())
            },
            get: |c| c.log.index_interval_bytes.to_string(),
        },
    },
    BrokerSetting {
        name: "log.index.size.max.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Default segment.index.bytes: the preallocated size of each index file.",
        value: Value::Field {
            set: |c, v| {
                c.log.segment_index_bytes = at_least(int(v)?, SEGMENT_INDEX_BYTES_MIN)? as usize;
                Ok(())
            },
            get: |c| c.log.segment_index_bytes.to_string(),
        },
    },
    BrokerSetting {
        name: "log.preallocate",
        aliases: &[],
        config_type: ConfigType::Boolean,
        doc: "Default preallocate.",
        value: Value::Ignored {
            default: "false",
            check: any_boolean,
            why: "keel's segments grow as they are written; recovery relies on their length",
        },
    },
    BrokerSetting {
        name: "log.segment.delete.delay.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default file.delete.delay.ms.",
        value: Value::Ignored {
            default: "60000",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "keel removes a deleted segment's files at once, after its readers are done",
        },
    },
    BrokerSetting {
        name: "message.max.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Default max.message.bytes: the largest record batch accepted.",
        value: Value::Field {
            set: |c, v| {
                c.log.message_bytes_max = at_least(int(v)?, 1)? as usize;
                Ok(())
            },
            get: |c| c.log.message_bytes_max.to_string(),
        },
    },
    BrokerSetting {
        name: "compression.type",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "Default compression.type: producer keeps batches as produced; a codec recompresses batches that use another.",
        value: Value::Field {
            set: |c, v| {
                c.log.compression = v.parse()?;
                Ok(())
            },
            get: |c| c.log.compression.to_string(),
        },
    },
    BrokerSetting {
        name: "log.flush.interval.messages",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default flush.messages: fsync after this many records; 1 fsyncs before every acknowledgement.",
        value: Value::Field {
            set: set_flush_messages,
            get: |c| flush_settings(c.log.flush).0.to_string(),
        },
    },
    BrokerSetting {
        name: "log.flush.interval.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default flush.ms: fsync at least this often.",
        value: Value::Field {
            set: set_flush_ms,
            get: |c| flush_settings(c.log.flush).1.to_string(),
        },
    },
    BrokerSetting {
        name: "log.message.timestamp.type",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "Default message.timestamp.type: CreateTime or LogAppendTime.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_type = timestamp_type(v)?;
                Ok(())
            },
            get: |c| timestamp_type_name(c.log.timestamp_type),
        },
    },
    BrokerSetting {
        name: "log.message.timestamp.before.max.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default message.timestamp.before.max.ms: how far in the past a CreateTime timestamp may be.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_before_max_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.timestamp_before_max_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.message.timestamp.after.max.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Default message.timestamp.after.max.ms: how far in the future a CreateTime timestamp may be.",
        value: Value::Field {
            set: |c, v| {
                c.log.timestamp_after_max_ms = at_least(long(v)?, 0)?;
                Ok(())
            },
            get: |c| c.log.timestamp_after_max_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "log.message.timestamp.difference.max.ms",
        aliases: &[],
        config_type: ConfigType::Long,
        doc: "Deprecated default of message.timestamp.difference.max.ms.",
        value: Value::Ignored {
            default: "9223372036854775807",
            check: |v| at_least(long(v)?, 0).map(drop),
            why: "deprecated in Kafka 3.6 for the before/after pair, which keel applies",
        },
    },
    BrokerSetting {
        name: "log.message.format.version",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "Deprecated: keel writes message format v2 only.",
        value: Value::Ignored {
            default: "3.0-IV1",
            check: |_| Ok(()),
            why: "deprecated; every keel log holds message format v2, as Kafka 3.x ignores it for v2 logs",
        },
    },
    BrokerSetting {
        name: "min.insync.replicas",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Default min.insync.replicas: in-sync replicas acks=all needs.",
        value: Value::Field {
            set: |c, v| {
                c.log.min_insync_replicas = at_least(int(v)?, 1)?;
                Ok(())
            },
            get: |c| c.log.min_insync_replicas.to_string(),
        },
    },
    BrokerSetting {
        name: "unclean.leader.election.enable",
        aliases: &[],
        config_type: ConfigType::Boolean,
        doc: "Whether a replica that is not in sync may become leader: never in keel.",
        value: Value::Ignored {
            default: "false",
            check: unclean_election,
            why: "keel never elects an out-of-sync replica",
        },
    },
    BrokerSetting {
        name: "producer.id.expiration.ms",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Idle time after which an idempotent producer's sequences are forgotten.",
        value: Value::Field {
            set: |c, v| {
                c.producer_id_expiration_ms = i64::from(at_least(int(v)?, 1)?);
                Ok(())
            },
            get: |c| c.producer_id_expiration_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "group.initial.rebalance.delay.ms",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "How long an empty group's first rebalance waits for more members.",
        value: Value::Field {
            set: |c, v| {
                c.groups.initial_rebalance_delay_ms = i64::from(at_least(int(v)?, 0)?);
                Ok(())
            },
            get: |c| c.groups.initial_rebalance_delay_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "group.min.session.timeout.ms",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "The smallest session timeout a group member may ask for.",
        value: Value::Field {
            set: |c, v| {
                c.groups.session_timeout_min_ms = at_least(int(v)?, 1)?;
                Ok(())
            },
            get: |c| c.groups.session_timeout_min_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "group.max.session.timeout.ms",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "The largest session timeout a group member may ask for.",
        value: Value::Field {
            set: |c, v| {
                c.groups.session_timeout_max_ms = at_least(int(v)?, 1)?;
                Ok(())
            },
            get: |c| c.groups.session_timeout_max_ms.to_string(),
        },
    },
    BrokerSetting {
        name: "group.max.size",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Members per group.",
        value: Value::Field {
            set: |c, v| {
                c.groups.members_max = at_least(int(v)?, 1)? as usize;
                Ok(())
            },
            get: |c| c.groups.members_max.to_string(),
        },
    },
    BrokerSetting {
        name: "offsets.topic.num.partitions",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Partitions of __consumer_offsets, fixed once it exists.",
        value: Value::Field {
            set: |c, v| {
                c.groups.offsets_partitions = between(int(v)?, 1, super::topics::PARTITIONS_MAX)?;
                Ok(())
            },
            get: |c| c.groups.offsets_partitions.to_string(),
        },
    },
    BrokerSetting {
        name: "offsets.topic.segment.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "Segment size of __consumer_offsets.",
        value: Value::Field {
            set: |c, v| {
                c.groups.offsets_segment_bytes = at_least(int(v)?, 1024)? as u64;
                Ok(())
            },
            get: |c| c.groups.offsets_segment_bytes.to_string(),
        },
    },
    BrokerSetting {
        name: "offset.metadata.max.bytes",
        aliases: &[],
        config_type: ConfigType::Int,
        doc: "The largest metadata string of a committed offset.",
        value: Value::Field {
            set: |c, v| {
                c.groups.offset_metadata_bytes_max = at_least(int(v)?, 0)? as usize;
                Ok(())
            },
            get: |c| c.groups.offset_metadata_bytes_max.to_string(),
        },
    },
    BrokerSetting {
        name: "metrics.listen",
        aliases: &[],
        config_type: ConfigType::String,
        doc: "host:port where GET /metrics answers in Prometheus' text format; empty turns it off.",
        value: Value::Field {
            set: |c, v| {
                c.metrics_listen = if v.trim().is_empty() {
                    None
                } else {
                    Some(listener_address(v)?)
                };
                Ok(())
            },
            get: |c| c.metrics_listen.clone().unwrap_or_default(),
        },
    },
];

/// Settings that another form of the same setting overrides whatever their order, as in
/// Kafka: log.retention.ms wins over .minutes, which wins over .hours; log.roll.ms over
/// log.roll.hours.
const OVERRIDDEN_BY: &[(&str, &[&str])] = &[
    (
        "log.retention.hours",
        &["log.retention.ms", "log.retention.minutes"],
    ),
    ("log.retention.minutes", &["log.retention.ms"]),
    ("log.roll.hours", &["log.roll.ms"]),
];

/// Applies one setting, by its Kafka name or an alias, and remembers it as set explicitly.
///
/// # Errors
/// Unknown names, and values the setting refuses, in Kafka's words.
pub fn apply(config: &mut BrokerConfig, name: &str, value: &str) -> Result<(), String> {
    let setting = broker_setting(name)
        .ok_or_else(|| format!("unknown setting '{name}' (see keel serve --help)"))?;
    let overridden = OVERRIDDEN_BY
        .iter()
        .find(|(shadowed, _)| *shadowed == setting.name)
        .is_some_and(|(_, by)| by.iter().any(|b| config.explicit.contains_key(*b)));
    match &setting.value {
        Value::Field { .. } if overridden => check_only(setting, value),
        Value::Field { set, .. } => set(config, value),
        Value::Ignored { check, .. } => check(value),
    }
    .map_err(|why| invalid(name, value, &why))?;
    config
        .explicit
        .insert(setting.name.to_owned(), value.trim().to_owned());
    Ok(())
}

/// Checks a value without applying it: parsed into a scratch configuration.
fn check_only(setting: &BrokerSetting, value: &str) -> Result<(), String> {
    match &setting.value {
        Value::Field { set, .. } => set(&mut BrokerConfig::default(), value),
        Value::Ignored { check, .. } => check(value),
    }
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
            // A list (listeners, say) is Kafka's comma-separated value.
            toml::Value::Array(items) => out.push((
                name,
                items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            // Dates mean nothing to any setting: passed as text, they are refused with the
            // setting's name.
            other => out.push((name, format!("{other:?}"))),
        }
    }
}

/// The settings part of `keel serve --help`: every broker setting with its type, default and
/// meaning, then the topic settings.
pub fn help() -> String {
    let mut help = String::from("Settings (Kafka's names, for --config and --set):\n");
    for setting in BROKER_SETTINGS {
        let default = setting.default_value();
        let default = if default.is_empty() {
            "empty".to_owned()
        } else {
            default
        };
        help.push_str(&format!(
            "  {:40} {} [{}, default {}]\n",
            setting.name,
            setting.doc,
            setting.config_type.name(),
            default
        ));
    }
    help.push_str("\nTopic settings (CreateTopics, AlterConfigs, IncrementalAlterConfigs):\n");
    for setting in super::config::TOPIC_SETTINGS {
        help.push_str(&format!(
            "  {:40} {} [{}]\n",
            setting.name,
            setting.doc,
            setting.config_type.name()
        ));
    }
    help
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
        assert_eq!(
            config.explicit.get("log.segment.bytes").map(String::as_str),
            Some("4096")
        );
    }

    /// Out-of-range values are refused with the name, the value and the range, never clamped.
    #[test]
    fn out_of_range_values_are_refused_not_clamped() {
        let cases = [
            ("log.segment.bytes", "13", "at least 14"),
            ("queued.max.requests", "0", "at least 1"),
            ("group.min.session.timeout.ms", "-5", "at least 1"),
            ("offsets.topic.num.partitions", "0", "at least 1"),
            ("log.cleaner.min.cleanable.ratio", "1.5", "no more than 1"),
            ("unclean.leader.election.enable", "true", "never"),
            ("default.replication.factor", "3", "no more than 1"),
            ("log.retention.ms", "-2", "at least -1"),
            ("auto.create.topics.enable", "yes", "true or false"),
            ("listeners", "nowhere", "host:port"),
        ];
        for (name, value, why) in cases {
            let mut config = BrokerConfig::default();
            let before = format!("{config:?}");
            let err = apply(&mut config, name, value).unwrap_err();
            assert!(
                err.contains(name) && err.contains(value) && err.contains(why),
                "{name}={value}: {err}"
            );
            assert_eq!(
                format!("{config:?}"),
                before,
                "{name}={value} changed the config"
            );
        }
    }

    /// Every setting reads back what it was set to, and its default parses as a value of its
    /// own: the table cannot describe a default it would refuse.
    #[test]
    fn every_setting_takes_its_own_default_and_reads_it_back() {
        for setting in BROKER_SETTINGS {
            let mut config = BrokerConfig::default();
            let default = setting.default_value();
            if default.is_empty() {
                continue;
            }
            apply(&mut config, setting.name, &default)
                .unwrap_or_else(|e| panic!("{}: default {default}: {e}", setting.name));
            assert_eq!(setting.current(&config), default, "{}", setting.name);
        }
    }

    #[test]
    fn hours_and_minutes_forms_set_milliseconds() {
        let mut config = BrokerConfig::default();
        apply(&mut config, "log.retention.hours", "2").unwrap();
        assert_eq!(config.log.retention_ms, 2 * HOUR_MS);
        apply(&mut config, "log.retention.minutes", "-1").unwrap();
        assert_eq!(config.log.retention_ms, -1);
        apply(&mut config, "log.roll.hours", "1").unwrap();
        assert_eq!(config.log.segment_ms, HOUR_MS);
    }

    /// Whatever the order they are given in, the finer form wins, as in Kafka.
    #[test]
    fn milliseconds_win_over_minutes_and_hours_in_any_order() {
        for order in [
            ["log.retention.ms=5000", "log.retention.hours=2"],
            ["log.retention.hours=2", "log.retention.ms=5000"],
        ] {
            let mut config = BrokerConfig::default();
            for setting in order {
                let (name, value) = setting.split_once('=').unwrap();
                apply(&mut config, name, value).unwrap();
            }
            assert_eq!(config.log.retention_ms, 5000, "{order:?}");
        }
        let mut config = BrokerConfig::default();
        apply(&mut config, "log.retention.minutes", "3").unwrap();
        apply(&mut config, "log.retention.hours", "2").unwrap();
        assert_eq!(config.log.retention_ms, 3 * MINUTE_MS);
        assert!(
            apply(&mut config, "log.retention.hours", "x").is_err(),
            "still checked"
        );
    }

    #[test]
    fn help_lists_every_setting_with_type_and_default() {
        let help = help();
        for setting in BROKER_SETTINGS {
            assert!(help.contains(setting.name), "{}", setting.name);
        }
        assert!(help.contains("metrics.listen"));
        assert!(help.contains("log.segment.bytes"));
        assert!(help.contains("[int, default 1073741824]"));
    }
}
