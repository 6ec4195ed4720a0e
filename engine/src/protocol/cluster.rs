//! DescribeCluster (KIP-700), DescribeLogDirs and AlterReplicaLogDirs. DescribeCluster lists
//! the live brokers and the active controller (this node alone when it runs without a
//! quorum); the node's one data directory holds every partition it has.

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
};

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, topic_name, ProtocolError, Request};
use crate::broker::topics::Topic;
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

/// DescribeCluster's endpoint types.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;
/// "Not asked for" in Kafka's encoding of authorized operations.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// The operations Kafka defines on the cluster resource (AclOperation codes: CREATE 5, ALTER 7,
/// DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).
/// keel has no authorizer, so every client may do all of them, as in Kafka without one.
const CLUSTER_OPERATIONS: [i32; 7] = [5, 7, 8, 9, 10, 11, 12];

pub fn describe_cluster<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DescribeClusterRequest = decode(request)?;
    let mut response = DescribeClusterResponse::default();
    response.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    if request.version >= 1 {
        response.endpoint_type = ENDPOINT_BROKERS;
    }
    let wrong_endpoint = match body.endpoint_type {
        ENDPOINT_BROKERS => None,
        ENDPOINT_CONTROLLERS => Some((
            errors::MISMATCHED_ENDPOINT_TYPE,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
        )),
        _ => Some((
            errors::UNSUPPORTED_ENDPOINT_TYPE,
            "Unsupported endpoint type",
        )),
    };
    if let Some((code, message)) = wrong_endpoint {
        // v0 has no endpoint types: Kafka answers INVALID_REQUEST there.
        response.error_code = if request.version == 0 {
            errors::INVALID_REQUEST
        } else {
            code
        };
        response.error_message = Some(str_bytes(message));
        return encode(request, &response);
    }
    let node = BrokerId(broker.config.node_id);
    if let Some(cluster) = broker.cluster() {
        let view = cluster.view();
        response.brokers = super::metadata::live_brokers(&view.image)
            .map(|(id, host, port)| {
                let mut b = DescribeClusterBroker::default();
                b.broker_id = BrokerId(id);
                b.host = str_bytes(host);
                b.port = i32::from(port);
                b
            })
            .collect();
        response.controller_id = BrokerId(view.leader.map_or(-1, |l| l as i32));
    } else {
        let (host, port) = broker.advertised();
        let mut me = DescribeClusterBroker::default();
        me.broker_id = node;
        me.host = str_bytes(&host);
        me.port = port;
        response.brokers = vec![me];
        response.controller_id = node;
    }
    response.cluster_id = str_bytes(&broker.config.cluster_id);
    if body.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS
            .iter()
            .fold(0, |bits, op| bits | (1 << op));
    }
    encode(request, &response)
}

/// The data directory as DescribeLogDirs names it and AlterReplicaLogDirs must be given it.
fn log_dir<D: Disk, C: Clock, R: Rng>(broker: &Broker<D, C, R>) -> String {
    broker.config.data_dir.display().to_string()
}

pub fn describe_log_dirs<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DescribeLogDirsRequest = decode(request)?;
    let topics = broker.topics();
    // Null asks for every partition; a list names topics and their partitions.
    let wanted = |topic: &Topic<D>, index: usize| match &body.topics {
        None => true,
        Some(asked) => asked
            .iter()
            .any(|t| t.topic.0.as_str() == topic.name && t.partitions.contains(&(index as i32))),
    };
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = str_bytes(&log_dir(broker));
    // The device's size is not known through the disk seam: Kafka's "unknown" (-1).
    result.total_bytes = -1;
    result.usable_bytes = -1;
    for topic in topics.iter() {
        let mut described = DescribeLogDirsTopic::default();
        described.name = topic_name(&topic.name);
        for partition in &topic.partitions {
            if !wanted(topic, partition.index as usize) {
                continue;
            }
            let (Some(bounds), Some(size)) = (partition.bounds(), partition.size_bytes()) else {
                continue;
            };
            let mut entry = DescribeLogDirsPartition::default();
            entry.partition_index = partition.index;
            entry.partition_size = size as i64;
            // Kafka: max(high watermark - log end, 0), so 0 for a current log.
            entry.offset_lag = (bounds.high_watermark as i64 - bounds.log_end_offset as i64).max(0);
            described.partitions.push(entry);
        }
        if !described.partitions.is_empty() {
            result.topics.push(described);
        }
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    encode(request, &response)
}

/// Moving a replica to the directory it is in is a no-op that succeeds, as in Kafka; keel has
/// no other directory (LOG_DIR_NOT_FOUND).
pub fn alter_replica_log_dirs<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: AlterReplicaLogDirsRequest = decode(request)?;
    let ours = log_dir(broker);
    let mut response = AlterReplicaLogDirsResponse::default();
    for dir in &body.dirs {
        let here = dir.path.as_str() == ours;
        for asked in &dir.topics {
            let topic = broker.topic(asked.name.0.as_str());
            let mut result = AlterReplicaLogDirTopicResult::default();
            result.topic_name = asked.name.clone();
            for &index in &asked.partitions {
                let exists = topic
                    .as_ref()
                    .is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len()));
                let mut partition = AlterReplicaLogDirPartitionResult::default();
                partition.partition_index = index;
                partition.error_code = match (here, exists) {
                    (false, _) => errors::LOG_DIR_NOT_FOUND,
                    (true, false) => errors::REPLICA_NOT_AVAILABLE,
                    (true, true) => errors::NONE,
                };
                result.partitions.push(partition);
            }
            response.results.push(result);
        }
    }
    encode(request, &response)
}
