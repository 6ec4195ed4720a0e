//! Metadata: this broker as the whole cluster, leader and only replica of every partition.
//! Topics asked for by name are auto-created when the request allows it and the broker is
//! configured to (auto.create.topics.enable); v10+ topics are also named by id.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, topic_name, ProtocolError, Request};
use crate::broker::topics::{Topic, TopicError};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

/// "No authorized operations returned" in Kafka's encoding.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: MetadataRequest = decode(request)?;
    let node = BrokerId(broker.config.node_id);
    let (host, port) = broker.advertised();
    let mut response = MetadataResponse::default();
    let mut me = MetadataResponseBroker::default();
    me.node_id = node;
    me.host = str_bytes(&host);
    me.port = port;
    response.brokers = vec![me];
    let version = request.version;
    if version >= 2 {
        response.cluster_id = Some(str_bytes(&broker.config.cluster_id));
    }
    if version >= 1 {
        response.controller_id = node;
    }
    response.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    // v0 has no way to say "all topics" but an empty list; v1+ uses null for all.
    let all = match &body.topics {
        None => true,
        Some(topics) => topics.is_empty() && request.version == 0,
    };
    let allow_create = body.allow_auto_topic_creation || request.version < 4;
    response.topics = if all {
        broker
            .topics()
            .iter()
            .map(|t| describe(t, node, version))
            .collect()
    } else {
        let asked = body.topics.unwrap_or_default();
        asked
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.as_str());
                lookup(broker, name, &t.topic_id, allow_create, node, version)
            })
            .collect()
    };
    encode(request, &response)
}

fn lookup<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    name: Option<&str>,
    id: &Uuid,
    allow_create: bool,
    node: BrokerId,
    version: i16,
) -> MetadataResponseTopic {
    let found = match name {
        Some(name) => broker.topic_or_create(name, allow_create),
        None => broker.topic_by_id(id.as_bytes()).ok_or(TopicError::Unknown),
    };
    match found {
        Ok(topic) => describe(&topic, node, version),
        Err(error) => {
            let mut missing = MetadataResponseTopic::default();
            missing.name = name.map(topic_name);
            if version >= 10 {
                missing.topic_id = *id;
            }
            missing.error_code = match error {
                TopicError::Unknown if name.is_none() => errors::UNKNOWN_TOPIC_ID,
                other => errors::topic_error(&other, &broker.config.data_dir).0,
            };
            missing.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
            missing
        }
    }
}

/// Fields newer than the request's version stay at their defaults: kafka-protocol refuses to
/// encode a field the version does not have.
fn describe<D: Disk>(topic: &Topic<D>, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let mut described = MetadataResponseTopic::default();
    described.name = Some(topic_name(&topic.name));
    if version >= 10 {
        described.topic_id = Uuid::from_bytes(topic.id);
    }
    described.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    if version >= 1 {
        described.is_internal = topic.name == crate::broker::offsets::OFFSETS_TOPIC;
    }
    described.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = p.index;
            partition.leader_id = node;
            if version >= 7 {
                partition.leader_epoch = super::list_offsets::LEADER_EPOCH;
            }
            partition.replica_nodes = vec![node];
            partition.isr_nodes = vec![node];
            partition
        })
        .collect();
    described
}
