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
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use uuid::Uuid;

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, topic_name, ProtocolError, Request};
use crate::broker::config::{self, TopicOverrides, TOPIC_CONFIG_NAMES};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

/// Kafka's ConfigResource type for topics.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub fn create_topics<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: CreateTopicsRequest = decode(request)?;
    let mut response = CreateTopicsResponse::default();
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let overrides: TopicOverrides = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = if !matches!(topic.replication_factor, -1 | 1) {
            Err((
                errors::INVALID_REPLICATION_FACTOR,
                "a single-node keel has replication factor 1".to_owned(),
            ))
        } else if !topic.assignments.is_empty() {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "manual replica assignment is not supported".to_owned(),
            ))
        } else {
            broker
                .create_topic(name, topic.num_partitions, overrides, body.validate_only)
                .map_err(|e| errors::topic_error(&e))
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
        if request.version < 7 {
            result.topic_id = Uuid::nil();
        }
        if request.version < 5 {
            result.num_partitions = -1;
            result.replication_factor = -1;
        }
        if request.version < 1 {
            result.error_message = None;
        }
        response.topics.push(result);
    }
    encode(request, &response)
}

pub fn delete_topics<D: Disk, C: Clock, R: Rng>(
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
        let name = name.or_else(|| broker.topic_by_id(id.as_bytes()).map(|t| t.name.clone()));
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        match &name {
            Some(name) => {
                result.name = Some(topic_name(name));
                if let Err(e) = broker.delete_topic(name) {
                    let (code, message) = errors::topic_error(&e);
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
        let outcome = if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "manual replica assignment is not supported".to_owned(),
            ))
        } else {
            broker
                .add_partitions(topic.name.0.as_str(), topic.count, body.validate_only)
                .map_err(|e| errors::topic_error(&e))
        };
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
    for resource in &body.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let topic = broker.topic(resource.resource_name.as_str());
        match (resource.resource_type, topic) {
            (RESOURCE_TOPIC, Some(topic)) => {
                // Null lists every config; so does an empty list (as Kafka's ConfigHelper does).
                let wanted = resource
                    .configuration_keys
                    .as_ref()
                    .filter(|keys| !keys.is_empty());
                result.configs = config::describe(&topic.config)
                    .into_iter()
                    .filter(|(name, _)| {
                        wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name))
                    })
                    .map(|(name, value)| {
                        let mut entry = DescribeConfigsResourceResult::default();
                        entry.name = str_bytes(name);
                        entry.value = Some(str_bytes(&value));
                        entry.config_source = if topic.overrides.contains_key(name) {
                            SOURCE_TOPIC
                        } else {
                            SOURCE_DEFAULT
                        };
                        entry
                    })
                    .collect();
            }
            (RESOURCE_TOPIC, None) => result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
            _ => {
                result.error_code = errors::INVALID_REQUEST;
                result.error_message = Some(str_bytes("keel describes topic configs only"));
            }
        }
        response.results.push(result);
    }
    encode(request, &response)
}

/// Applies one resource's new overrides; the error code and message on failure.
fn alter<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut TopicOverrides) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if resource_type != RESOURCE_TOPIC {
        return Err((
            errors::INVALID_REQUEST,
            "keel alters topic configs only".to_owned(),
        ));
    }
    let topic = broker.topic(name).ok_or((
        errors::UNKNOWN_TOPIC_OR_PARTITION,
        "unknown topic".to_owned(),
    ))?;
    let mut overrides = topic.overrides.clone();
    change(&mut overrides).map_err(|m| (errors::INVALID_CONFIG, m))?;
    broker
        .set_topic_overrides(name, overrides, validate_only)
        .map_err(|e| errors::topic_error(&e))
}

fn known(name: &str) -> Result<(), String> {
    if TOPIC_CONFIG_NAMES.contains(&name) {
        Ok(())
    } else {
        Err(format!("unknown topic config '{name}'"))
    }
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
                known(c.name.as_str())?;
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
            for c in &resource.configs {
                known(c.name.as_str())?;
                match (c.config_operation, &c.value) {
                    (OP_SET, Some(value)) => {
                        overrides.insert(c.name.to_string(), value.to_string());
                    }
                    (OP_DELETE, _) => {
                        overrides.remove(c.name.as_str());
                    }
                    (op, _) => {
                        return Err(format!(
                            "config operation {op} on '{}' is not supported",
                            c.name
                        ))
                    }
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
            let outcome = match partition {
                None => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                Some(partition) => {
                    let mut guard = partition.log();
                    match guard.as_mut() {
                        None => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(log) => {
                            // -1 means "up to the high watermark".
                            let hw = crate::broker::partition::high_watermark(log);
                            let offset = if asked.offset == -1 {
                                hw
                            } else {
                                asked.offset.max(0) as u64
                            };
                            if offset > hw {
                                Err(errors::OFFSET_OUT_OF_RANGE)
                            } else {
                                log.delete_records_before(offset)
                                    .map_err(|e| errors::log_error(&e))
                            }
                        }
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
