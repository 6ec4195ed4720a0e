//! Metadata. Without a quorum, this broker is the whole cluster, leader and only replica of
//! every partition; in a cluster, the answer is this node's image of the cluster's metadata.
//! Topics asked for by name are auto-created when the request allows it and the broker is
//! configured to (auto.create.topics.enable); v10+ topics are also named by id.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, topic_name, ProtocolError, Request};
use crate::broker::cluster::Cluster;
use crate::broker::topics::{Topic, TopicError};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::quorum::image::{MetadataImage, TopicImage};

/// "No authorized operations returned" in Kafka's encoding.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: MetadataRequest = decode(request)?;
    if let Some(cluster) = broker.cluster() {
        return in_cluster(broker, cluster, request, body);
    }
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
            let code = match error {
                TopicError::Unknown if name.is_none() => errors::UNKNOWN_TOPIC_ID,
                other => errors::topic_error(&other, &broker.config.data_dir).0,
            };
            missing(name, id, code, version)
        }
    }
}

/// The answer for a topic that cannot be described, with its error.
fn missing(name: Option<&str>, id: &Uuid, code: i16, version: i16) -> MetadataResponseTopic {
    let mut missing = MetadataResponseTopic::default();
    missing.name = name.map(topic_name);
    if version >= 10 {
        missing.topic_id = *id;
    }
    missing.error_code = code;
    missing.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    missing
}

/// A topic's own fields (name, id, internal), before its partitions.
fn topic_header(name: &str, id: &[u8; 16], version: i16) -> MetadataResponseTopic {
    let mut described = MetadataResponseTopic::default();
    described.name = Some(topic_name(name));
    if version >= 10 {
        described.topic_id = Uuid::from_bytes(*id);
    }
    described.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    if version >= 1 {
        described.is_internal = name == crate::broker::offsets::OFFSETS_TOPIC;
    }
    described
}

/// Fields newer than the request's version stay at their defaults: kafka-protocol refuses to
/// encode a field the version does not have.
fn describe<D: Disk>(topic: &Topic<D>, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let mut described = topic_header(&topic.name, &topic.id, version);
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

/// Metadata in a cluster: the live brokers and every partition's leader, replicas and ISR, from
/// this node's image of the cluster's metadata. A topic named and unknown is proposed to the
/// controller when auto-creation allows it, and answered LEADER_NOT_AVAILABLE meanwhile (as
/// Kafka answers a topic it is auto-creating).
fn in_cluster<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    cluster: &Cluster,
    request: &Request,
    body: MetadataRequest,
) -> Result<Frame<D::File>, ProtocolError> {
    let view = cluster.view();
    let image = &view.image;
    let version = request.version;
    let mut response = MetadataResponse::default();
    response.brokers = live_brokers(image)
        .map(|(id, host, port)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = i32::from(port);
            b
        })
        .collect();
    if version >= 2 {
        response.cluster_id = Some(str_bytes(&broker.config.cluster_id));
    }
    if version >= 1 {
        response.controller_id = BrokerId(view.leader.map_or(-1, |l| l as i32));
    }
    response.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    let all = match &body.topics {
        None => true,
        Some(topics) => topics.is_empty() && version == 0,
    };
    let allow_create = body.allow_auto_topic_creation || version < 4;
    response.topics = if all {
        image
            .topics
            .values()
            .map(|t| describe_image(image, t, version))
            .collect()
    } else {
        let asked = body.topics.unwrap_or_default();
        asked
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.as_str());
                let known = match name {
                    Some(name) => image.topics.get(name),
                    None => image.topic_by_id(t.topic_id.as_bytes()),
                };
                if let Some(topic) = known {
                    return describe_image(image, topic, version);
                }
                let error = match name {
                    None => errors::UNKNOWN_TOPIC_ID,
                    Some(name) => match broker.topic_or_create(name, allow_create) {
                        Err(e) => errors::topic_error(&e, &broker.config.data_dir).0,
                        Ok(_) => errors::LEADER_NOT_AVAILABLE,
                    },
                };
                missing(name, &t.topic_id, error, version)
            })
            .collect()
    };
    encode(request, &response)
}

/// The registered, unfenced brokers with their client listener: (id, host, port).
pub fn live_brokers(image: &MetadataImage) -> impl Iterator<Item = (i32, &str, u16)> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b
                .endpoints
                .iter()
                .find(|e| e.name == crate::broker::cluster::CLIENT_LISTENER)?;
            Some((b.id, endpoint.host.as_str(), endpoint.port))
        })
}

fn describe_image(
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
) -> MetadataResponseTopic {
    let mut described = topic_header(&topic.name, &topic.id, version);
    described.partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index as i32;
            partition.leader_id = BrokerId(state.leader);
            if state.leader < 0 {
                partition.error_code = errors::LEADER_NOT_AVAILABLE;
            }
            if version >= 7 {
                partition.leader_epoch = state.leader_epoch;
            }
            partition.replica_nodes = state.replicas.iter().copied().map(BrokerId).collect();
            partition.isr_nodes = state.isr.iter().copied().map(BrokerId).collect();
            if version >= 5 {
                partition.offline_replicas = state
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&r| image.live_broker(r).is_none())
                    .map(BrokerId)
                    .collect();
            }
            partition
        })
        .collect();
    described
}
