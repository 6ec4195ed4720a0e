//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs and DeleteRecords. Topic settings use Kafka's names;
//! a single-node keel accepts replication factor 1 (or -1, the default) only.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use uuid::Uuid;

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, topic_name, ProtocolError, Request};
use crate::broker::config::{self, BrokerConfig, TopicOverrides, TopicSetting, TOPIC_SETTINGS};
use crate::broker::settings::{self, BrokerSetting, ConfigType, BROKER_SETTINGS};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::log::LogConfig;

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
/// DescribeConfigs sources (DescribeConfigsResponse's ConfigSource).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn create_topics<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: CreateTopicsRequest = decode(request)?;
    if broker.cluster().is_some() {
        return create_topics_in_cluster(broker, request, body).await;
    }
    let mut response = CreateTopicsResponse::default();
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let overrides = asked_overrides(topic);
        let outcome = if !matches!(topic.replication_factor, -1 | 1) {
            Err((
                errors::INVALID_REPLICATION_FACTOR,
                "a single-node keel has replication factor 1".to_owned(),
            ))
        } else {
            let assigned: Vec<(i32, &[BrokerId])> = topic
                .assignments
                .iter()
                .map(|a| (a.partition_index, a.broker_ids.as_slice()))
                .collect();
            manual_partitions(broker.config.node_id, topic.num_partitions, &assigned).and_then(
                |partitions| {
                    broker
                        .create_topic(name, partitions, overrides, body.validate_only)
                        .map_err(|e| errors::topic_error(&e, &broker.config.data_dir))
                },
            )
        };
        match outcome {
            Ok(created) => {
                if let Some(created) = created {
                    result.topic_id = Uuid::from_bytes(created.id);
                    result.num_partitions = created.partitions.len() as i32;
                } else {
                    result.num_partitions = topic.num_partitions;
                }
                result.replication_factor = 1;
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(str_bytes(&message));
            }
        }
        response.topics.push(fit_created(result, request.version));
    }
    encode(request, &response)
}

/// The configs a CreateTopics names for a topic (a null value sets nothing).
fn asked_overrides(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> TopicOverrides {
    topic
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect()
}

/// Clears what a CreateTopics result's version does not have (kafka-protocol refuses to encode
/// it).
fn fit_created(mut result: CreatableTopicResult, version: i16) -> CreatableTopicResult {
    if version < 7 {
        result.topic_id = Uuid::nil();
    }
    if version < 5 {
        result.num_partitions = -1;
        result.replication_factor = -1;
    }
    if version < 1 {
        result.error_message = None;
    }
    result
}

/// The partition count a CreateTopics asks for, checking a manual assignment: partitions
/// numbered from 0 up without gaps, each with one replica that names this node (a
/// single-node keel keeps one replica; replication will lift that). With no assignment,
/// `count` as asked.
fn manual_partitions(
    node_id: i32,
    count: i32,
    assigned: &[(i32, &[BrokerId])],
) -> Result<i32, (i16, String)> {
    if assigned.is_empty() {
        return Ok(count);
    }
    if count != -1 {
        return Err((
            errors::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_owned(),
        ));
    }
    let mut indexes: Vec<i32> = assigned.iter().map(|(index, _)| *index).collect();
    indexes.sort_unstable();
    if indexes
        .iter()
        .enumerate()
        .any(|(i, &index)| index != i as i32)
    {
        return Err((
            errors::INVALID_REPLICA_ASSIGNMENT,
            "Partitions should be a consecutive 0-based integer sequence".to_owned(),
        ));
    }
    check_assignment(node_id, assigned)?;
    Ok(assigned.len() as i32)
}

/// Every assigned partition has exactly one replica, this node.
fn check_assignment(node_id: i32, assigned: &[(i32, &[BrokerId])]) -> Result<(), (i16, String)> {
    for (index, replicas) in assigned {
        if replicas.is_empty() {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("partition {index} is assigned no replicas"),
            ));
        }
        if let Some(unknown) = replicas.iter().find(|b| b.0 != node_id) {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "partition {index} names broker {}, which is not in the cluster (this node is {node_id})",
                    unknown.0
                ),
            ));
        }
        if replicas.len() > 1 {
            return Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!(
                    "partition {index} names {} replicas: a single-node keel keeps one replica of each partition",
                    replicas.len()
                ),
            ));
        }
    }
    Ok(())
}

pub async fn delete_topics<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DeleteTopicsRequest = decode(request)?;
    // v0-5 name topics in topic_names; v6 in topics, by name or id.
    let mut asked: Vec<(Option<String>, Uuid)> = body
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), Uuid::nil()))
        .collect();
    asked.extend(
        body.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in asked {
        let name = name.or_else(|| match broker.cluster() {
            Some(cluster) => {
                let image = cluster.view().image;
                image.topic_by_id(id.as_bytes()).map(|t| t.name.clone())
            }
            None => broker.topic_by_id(id.as_bytes()).map(|t| t.name.clone()),
        });
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        match &name {
            Some(name) => {
                result.name = Some(topic_name(name));
                let deleted = match broker.cluster() {
                    Some(_) => broker.delete_cluster_topic(name).await,
                    None => broker.delete_topic(name),
                };
                if let Err(e) = deleted {
                    let (code, message) = errors::topic_error(&e, &broker.config.data_dir);
                    result.error_code = code;
                    result.error_message = Some(str_bytes(&message));
                }
            }
            None => result.error_code = errors::UNKNOWN_TOPIC_ID,
        }
        if request.version < 5 {
            result.error_message = None;
        }
        response.responses.push(result);
    }
    encode(request, &response)
}

pub fn create_partitions<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: CreatePartitionsRequest = decode(request)?;
    let mut response = CreatePartitionsResponse::default();
    for topic in &body.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        if broker.cluster().is_some() {
            result.error_code = errors::INVALID_REQUEST;
            result.error_message = Some(str_bytes(
                "adding partitions to a topic in a cluster is not built yet",
            ));
            response.results.push(result);
            continue;
        }
        let existing = broker
            .topic(topic.name.0.as_str())
            .map_or(0, |t| t.partitions.len() as i32);
        let assigned: Vec<(i32, &[BrokerId])> = topic
            .assignments
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, a)| (existing + i as i32, a.broker_ids.as_slice()))
            .collect();
        let outcome = check_assignment(broker.config.node_id, &assigned)
            .and_then(|()| {
                if !assigned.is_empty() && assigned.len() as i32 != topic.count - existing {
                    return Err((
                        errors::INVALID_REPLICA_ASSIGNMENT,
                        format!(
                            "Increasing the number of partitions by {} but {} assignments provided.",
                            topic.count - existing,
                            assigned.len()
                        ),
                    ));
                }
                Ok(())
            })
            .and_then(|()| {
                broker
                    .add_partitions(topic.name.0.as_str(), topic.count, body.validate_only)
                    .map_err(|e| errors::topic_error(&e, &broker.config.data_dir))
            });
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.results.push(result);
    }
    encode(request, &response)
}

pub fn describe_configs<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DescribeConfigsRequest = decode(request)?;
    let mut response = DescribeConfigsResponse::default();
    let detail = Detail {
        synonyms: body.include_synonyms,
        documentation: body.include_documentation && request.version >= 3,
        types: request.version >= 3,
    };
    for resource in &body.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        // Null lists every config; so does an empty list (as Kafka's ConfigHelper does).
        let wanted = resource
            .configuration_keys
            .as_ref()
            .filter(|keys| !keys.is_empty());
        let is_wanted =
            |name: &str| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
        match described(
            broker,
            resource.resource_type,
            resource.resource_name.as_str(),
        ) {
            Ok(entries) => {
                result.configs = entries
                    .into_iter()
                    .filter(|entry| is_wanted(entry.name))
                    .map(|entry| entry.encode(&detail))
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(str_bytes(&message));
            }
        }
        response.results.push(result);
    }
    encode(request, &response)
}

/// What a DescribeConfigs request asked to see beyond names and values.
struct Detail {
    synonyms: bool,
    documentation: bool,
    types: bool,
}

/// One described setting, before it is shaped for the request's version.
struct Described {
    name: &'static str,
    value: String,
    source: i8,
    read_only: bool,
    config_type: ConfigType,
    doc: &'static str,
    /// (name, value, source), the value in force first, as Kafka orders them.
    synonyms: Vec<(&'static str, String, i8)>,
}

impl Described {
    fn encode(self, detail: &Detail) -> DescribeConfigsResourceResult {
        let mut entry = DescribeConfigsResourceResult::default();
        entry.name = str_bytes(self.name);
        entry.value = Some(str_bytes(&self.value));
        entry.read_only = self.read_only;
        entry.config_source = self.source;
        entry.is_sensitive = self.config_type == ConfigType::Password;
        if entry.is_sensitive {
            entry.value = None;
        }
        if detail.synonyms {
            entry.synonyms = self
                .synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    let mut synonym = DescribeConfigsSynonym::default();
                    synonym.name = str_bytes(name);
                    synonym.value = Some(str_bytes(&value));
                    synonym.source = source;
                    synonym
                })
                .collect();
        }
        if detail.types {
            entry.config_type = self.config_type.code();
        }
        if detail.documentation {
            entry.documentation = Some(str_bytes(self.doc));
        }
        entry
    }
}

/// Every setting of one resource, or the error the resource gets.
fn described<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    resource_type: i8,
    name: &str,
) -> Result<Vec<Described>, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {
            let topic = broker.topic(name).ok_or((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic {name}"),
            ))?;
            Ok(describe_topic(
                &broker.config,
                &topic.config,
                &topic.overrides,
            ))
        }
        RESOURCE_BROKER if name.is_empty() => {
            // The cluster-wide dynamic defaults: keel has none, every setting is static.
            Ok(Vec::new())
        }
        RESOURCE_BROKER if name == broker.config.node_id.to_string() => {
            Ok(describe_broker(&broker.config))
        }
        RESOURCE_BROKER if name.parse::<i32>().is_err() => Err((
            errors::INVALID_REQUEST,
            format!("Broker id must be an integer, but it is: {name}"),
        )),
        RESOURCE_BROKER => Err((
            errors::INVALID_REQUEST,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.config.node_id
            ),
        )),
        RESOURCE_BROKER_LOGGER => Err((
            errors::INVALID_REQUEST,
            "keel has no broker loggers to describe (its log filter is RUST_LOG)".to_owned(),
        )),
        other => Err((
            errors::INVALID_REQUEST,
            format!("keel describes topics (2) and brokers (4), not resource type {other}"),
        )),
    }
}

/// A broker setting's synonyms: the value set at start, then the default.
fn broker_synonyms(
    config: &BrokerConfig,
    setting: &'static BrokerSetting,
) -> Vec<(&'static str, String, i8)> {
    let mut synonyms = Vec::new();
    if config.explicit.contains_key(setting.name) {
        synonyms.push((setting.name, setting.current(config), SOURCE_STATIC_BROKER));
    }
    synonyms.push((setting.name, setting.default_value(), SOURCE_DEFAULT));
    synonyms
}

fn describe_broker(config: &BrokerConfig) -> Vec<Described> {
    BROKER_SETTINGS
        .iter()
        .map(|setting| Described {
            name: setting.name,
            value: setting.current(config),
            source: if config.explicit.contains_key(setting.name) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            },
            // keel reads its settings once, at start: none can be changed while it runs.
            read_only: true,
            config_type: setting.config_type,
            doc: setting.doc,
            synonyms: broker_synonyms(config, setting),
        })
        .collect()
}

fn describe_topic(
    broker: &BrokerConfig,
    config: &LogConfig,
    overrides: &TopicOverrides,
) -> Vec<Described> {
    TOPIC_SETTINGS
        .iter()
        .map(|setting| {
            let value = setting.current(config, overrides);
            let mut synonyms = Vec::new();
            if overrides.contains_key(setting.name) {
                synonyms.push((setting.name, value.clone(), SOURCE_TOPIC));
            }
            match setting.broker_setting.and_then(settings::broker_setting) {
                Some(broker_setting) => synonyms.extend(broker_synonyms(broker, broker_setting)),
                None => synonyms.push((
                    setting.name,
                    setting.current(&LogConfig::default(), &TopicOverrides::new()),
                    SOURCE_DEFAULT,
                )),
            }
            Described {
                name: setting.name,
                value,
                source: synonyms[0].2,
                read_only: false,
                config_type: setting.config_type,
                doc: setting.doc,
                synonyms,
            }
        })
        .collect()
}

/// Applies one resource's new overrides; the error code and message on failure.
fn alter<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut TopicOverrides) -> Result<(), (i16, String)>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            return Err((
                errors::INVALID_REQUEST,
                "keel's broker settings are read at start and cannot be changed while it runs: \
                 set them in the config file or with --set and restart"
                    .to_owned(),
            ))
        }
        other => {
            return Err((
                errors::INVALID_REQUEST,
                format!("keel alters topic configs, not resource type {other}"),
            ))
        }
    }
    if broker.cluster().is_some() {
        return Err((
            errors::INVALID_REQUEST,
            "altering topic configs in a cluster is not built yet: set them at creation".to_owned(),
        ));
    }
    let topic = broker.topic(name).ok_or((
        errors::UNKNOWN_TOPIC_OR_PARTITION,
        format!("unknown topic {name}"),
    ))?;
    let mut overrides = topic.overrides.clone();
    change(&mut overrides)?;
    broker
        .set_topic_overrides(name, overrides, validate_only)
        .map_err(|e| errors::topic_error(&e, &broker.config.data_dir))
}

/// The topic setting called `name`.
fn known(name: &str) -> Result<&'static TopicSetting, String> {
    config::topic_setting(name).ok_or_else(|| format!("Unknown topic config name: {name}"))
}

pub fn alter_configs<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: AlterConfigsRequest = decode(request)?;
    let mut response = AlterConfigsResponse::default();
    for resource in &body.resources {
        // AlterConfigs replaces the whole set of overrides.
        let change = |overrides: &mut TopicOverrides| {
            overrides.clear();
            for c in &resource.configs {
                known(c.name.as_str()).map_err(|m| (errors::INVALID_CONFIG, m))?;
                if let Some(value) = &c.value {
                    overrides.insert(c.name.to_string(), value.to_string());
                }
            }
            Ok(())
        };
        let outcome = alter(
            broker,
            resource.resource_type,
            resource.resource_name.as_str(),
            change,
            body.validate_only,
        );
        let mut result =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.responses.push(result);
    }
    encode(request, &response)
}

pub fn incremental_alter_configs<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: IncrementalAlterConfigsRequest = decode(request)?;
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in &body.resources {
        let change = |overrides: &mut TopicOverrides| {
            let nulls: Vec<&str> = resource
                .configs
                .iter()
                .filter(|c| c.value.is_none() && c.config_operation != OP_DELETE)
                .map(|c| c.name.as_str())
                .collect();
            if !nulls.is_empty() {
                return Err((
                    errors::INVALID_REQUEST,
                    format!("Null value not supported for : {}", nulls.join(", ")),
                ));
            }
            for c in &resource.configs {
                let setting = known(c.name.as_str()).map_err(|m| (errors::INVALID_CONFIG, m))?;
                let value = c.value.as_ref().map(|v| v.as_str());
                incremental_change(setting, overrides, c.config_operation, value)
                    .map_err(|m| (errors::INVALID_CONFIG, m))?;
            }
            Ok(())
        };
        let outcome = alter(
            broker,
            resource.resource_type,
            resource.resource_name.as_str(),
            change,
            body.validate_only,
        );
        let mut result =
            kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.responses.push(result);
    }
    encode(request, &response)
}

/// One IncrementalAlterConfigs operation on a topic's overrides. APPEND and SUBTRACT work on
/// list settings (cleanup.policy, the throttled replica lists), starting from the topic's
/// override, or else from the setting's own default (not the broker's), as Kafka's controller
/// does; an append adds only values not already there.
fn incremental_change(
    setting: &TopicSetting,
    overrides: &mut TopicOverrides,
    operation: i8,
    value: Option<&str>,
) -> Result<(), String> {
    let name = setting.name;
    match (operation, value) {
        (OP_SET, Some(value)) => {
            overrides.insert(name.to_owned(), value.to_owned());
        }
        (OP_DELETE, _) => {
            overrides.remove(name);
        }
        (OP_APPEND | OP_SUBTRACT, _) if setting.config_type != ConfigType::List => {
            let verb = if operation == OP_APPEND {
                "APPEND"
            } else {
                "SUBTRACT"
            };
            return Err(format!(
                "Can't {verb} to key {name} because its type is not LIST."
            ));
        }
        (OP_APPEND | OP_SUBTRACT, value) => {
            let items = |text: &str| -> Vec<String> {
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let start = match overrides.get(name) {
                Some(value) => value.clone(),
                None => setting.current(&LogConfig::default(), overrides),
            };
            let mut list = items(&start);
            let given = items(value.unwrap_or(""));
            if operation == OP_APPEND {
                for item in given {
                    if !list.contains(&item) {
                        list.push(item);
                    }
                }
            } else {
                list.retain(|item| !given.contains(item));
            }
            overrides.insert(name.to_owned(), list.join(","));
        }
        (op, _) => return Err(format!("Unknown config operation {op} for {name}")),
    }
    Ok(())
}

pub fn delete_records<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DeleteRecordsRequest = decode(request)?;
    let mut response = DeleteRecordsResponse::default();
    for topic in &body.topics {
        let found = broker.topic(topic.name.0.as_str());
        let mut answer = DeleteRecordsTopicResult::default();
        answer.name = topic.name.clone();
        for asked in &topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = asked.partition_index;
            result.low_watermark = -1;
            let partition = found.as_ref().and_then(|t| {
                t.partitions
                    .get(usize::try_from(asked.partition_index).ok()?)
            });
            let elsewhere =
                super::not_led_here(broker, topic.name.0.as_str(), asked.partition_index);
            let outcome = match (partition, elsewhere) {
                (None, _) => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                (Some(_), Some((code, _))) => Err(code),
                (Some(partition), None) => {
                    // -1 means "up to the high watermark".
                    let offset = (asked.offset != -1).then(|| asked.offset.max(0) as u64);
                    match partition.delete_records(offset) {
                        None => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(deleted) => deleted.map_err(|e| errors::log_error(&e)),
                    }
                }
            };
            match outcome {
                Ok(low_watermark) => result.low_watermark = low_watermark as i64,
                Err(code) => result.error_code = code,
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    encode(request, &response)
}

/// CreateTopics in a cluster: each topic is placed over the live brokers (or as its manual
/// assignment says) and proposed to the active controller, which any node reaches (its voter
/// forwards the proposal); the answer comes once the creation committed.
async fn create_topics_in_cluster<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
    body: CreateTopicsRequest,
) -> Result<Frame<D::File>, ProtocolError> {
    use crate::broker::cluster::{ClusterTopicError, NewClusterTopic};
    let mut response = CreateTopicsResponse::default();
    for topic in &body.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let overrides = asked_overrides(topic);
        let mut assignments: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort_by_key(|(index, _)| *index);
        let contiguous = assignments
            .iter()
            .enumerate()
            .all(|(i, (index, _))| *index == i as i32);
        let outcome = if !assignments.is_empty()
            && (topic.num_partitions != -1 || topic.replication_factor != -1)
        {
            Err((
                errors::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_owned(),
            ))
        } else if !contiguous {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "Partitions should be 0-based consecutive integers.".to_owned(),
            ))
        } else {
            let new = NewClusterTopic {
                name: topic.name.0.to_string(),
                partitions: topic.num_partitions,
                replication_factor: i32::from(topic.replication_factor),
                assignments: assignments.into_iter().map(|(_, r)| r).collect(),
                overrides,
            };
            broker
                .create_cluster_topic(new, body.validate_only)
                .await
                .map_err(|e| match e {
                    ClusterTopicError::Topic(e) => errors::topic_error(&e, &broker.config.data_dir),
                    ClusterTopicError::InvalidReplicationFactor(why) => {
                        (errors::INVALID_REPLICATION_FACTOR, why)
                    }
                    ClusterTopicError::InvalidReplicaAssignment(why) => {
                        (errors::INVALID_REPLICA_ASSIGNMENT, why)
                    }
                    ClusterTopicError::NotController(why) => (errors::NOT_CONTROLLER, why),
                })
        };
        match outcome {
            Ok(created) => {
                result.topic_id = Uuid::from_bytes(created.id);
                result.num_partitions = created.partitions.len() as i32;
                result.replication_factor = created
                    .partitions
                    .first()
                    .map_or(1, |p| p.replicas.len() as i16);
            }
            Err((code, message)) => {
                tracing::info!(topic = %topic.name.0, code, %message, "CreateTopics refused");
                result.error_code = code;
                result.error_message = Some(str_bytes(&message));
            }
        }
        response.topics.push(fit_created(result, request.version));
    }
    encode(request, &response)
}
