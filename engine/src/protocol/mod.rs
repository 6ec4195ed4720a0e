//! The Kafka protocol on top of the broker: request framing, the versions keel answers, and one
//! handler per API. Message bodies are decoded and encoded with the kafka-protocol crate, except
//! Fetch responses, whose record bytes go to the socket from the segment files
//! (`fetch_frame`).
//!
//! A frame that does not decode is a protocol error: the connection is closed (as Kafka does)
//! and nothing reaches a log. Each handler answers every partition it was asked about, with a
//! Kafka error code where it could not serve it.

mod admin;
mod api_versions;
mod cluster;
pub mod errors;
mod fetch;
pub mod fetch_frame;
pub mod frame;
mod groups;
mod init_producer_id;
pub mod legacy;
mod list_offsets;
mod metadata;
mod produce;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use self::frame::Frame;
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

/// The APIs keel implements and the version range of each, exactly what ApiVersions advertises.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
];

/// Why a request could not be answered; the connection is closed.
#[derive(Debug)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A decoded request header with the body still to decode.
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The client's address as the server saw it ("/host" as Kafka shows it), or empty.
    pub client_host: String,
    pub body: Bytes,
    /// Bytes found after the body when it was decoded; Kafka ignores them, and so does keel,
    /// counting such requests (`keel_requests_trailing_bytes_total`).
    trailing_bytes: std::sync::atomic::AtomicUsize,
}

/// Splits a frame (without its size prefix) into header and body.
///
/// # Errors
/// When the header does not decode or names an API key Kafka does not define.
pub fn parse_request(mut frame: Bytes) -> Result<Request, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key =
        ApiKey::try_from(key).map_err(|_| ProtocolError(format!("unknown API key {key}")))?;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        ProtocolError(format!(
            "bad request header for {api_key:?} v{version}: {e}"
        ))
    })?;
    Ok(Request {
        api_key,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        client_host: String::new(),
        body: frame,
        trailing_bytes: std::sync::atomic::AtomicUsize::new(0),
    })
}

/// The advertised version range of `api_key`, if keel implements it.
pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// Decodes a request body of type `T` at `version`. Bytes after what the version defines are
/// ignored, as Kafka's request parser ignores them: librdkafka 2.12 and later sends its
/// Metadata v12 "all topics" request with 3 spare bytes after the body. They are remembered on
/// the request, so that `handle` counts the request in the metrics.
///
/// # Errors
/// When the bytes do not decode.
pub fn decode<T: Decodable>(request: &Request) -> Result<T, ProtocolError> {
    let mut body = request.body.clone();
    let decoded = T::decode(&mut body, request.version).map_err(|e| {
        ProtocolError(format!(
            "bad {:?} v{} request: {e}",
            request.api_key, request.version
        ))
    })?;
    request
        .trailing_bytes
        .store(body.remaining(), std::sync::atomic::Ordering::Relaxed);
    Ok(decoded)
}

impl Request {
    /// How many bytes followed the body the last time it was decoded.
    pub fn trailing_bytes(&self) -> usize {
        self.trailing_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Encodes a response: size prefix, response header, body.
///
/// # Errors
/// When the body cannot be encoded at this version (a field the version lacks was set).
pub fn encode<T: Encodable, F>(request: &Request, body: &T) -> Result<Frame<F>, ProtocolError> {
    encode_at(request, request.version, body)
}

/// Encodes a response body at `version`, which may differ from the request's (ApiVersions'
/// fallback to v0).
///
/// # Errors
/// When the body cannot be encoded at this version.
pub fn encode_at<T: Encodable, F>(
    request: &Request,
    version: i16,
    body: &T,
) -> Result<Frame<F>, ProtocolError> {
    let header_version = request.api_key.response_header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = request.correlation_id;
    let mut bytes = BytesMut::with_capacity(64);
    bytes.put_i32(0);
    header
        .encode(&mut bytes, header_version)
        .and_then(|()| body.encode(&mut bytes, version))
        .map_err(|e| {
            ProtocolError(format!(
                "encoding {:?} v{version} response: {e}",
                request.api_key
            ))
        })?;
    let size = (bytes.len() - 4) as i32;
    bytes[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Frame::from_bytes(bytes.freeze()))
}

/// Answers one request. `Ok(None)` means no response is sent (Produce with acks=0).
///
/// # Errors
/// A `ProtocolError` when the request is malformed or uses a version keel does not implement
/// (except ApiVersions, which answers those as KIP-511 says).
pub async fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: Request,
) -> Result<Option<Frame<D::File>>, ProtocolError> {
    broker.metrics.request(request.api_key);
    let answer = dispatch(broker, &request).await;
    let trailing = request.trailing_bytes();
    if trailing > 0 {
        broker.metrics.trailing_bytes(request.api_key);
        tracing::debug!(
            api = ?request.api_key,
            version = request.version,
            trailing,
            "ignored bytes after the request body"
        );
    }
    answer
}

async fn dispatch<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Option<Frame<D::File>>, ProtocolError> {
    if request.api_key == ApiKey::ApiVersions {
        return api_versions::handle(request).map(Some);
    }
    let (min, max) = supported_range(request.api_key)
        .ok_or_else(|| ProtocolError(format!("{:?} is not implemented", request.api_key)))?;
    if !(min..=max).contains(&request.version) {
        return Err(ProtocolError(format!(
            "{:?} v{} is not supported (v{min} to v{max})",
            request.api_key, request.version
        )));
    }
    match request.api_key {
        ApiKey::Metadata => metadata::handle(broker, request).map(Some),
        ApiKey::Produce => produce::handle(broker, request).await,
        ApiKey::Fetch => fetch::handle(broker, request).await.map(Some),
        ApiKey::ListOffsets => list_offsets::handle(broker, request).map(Some),
        ApiKey::OffsetForLeaderEpoch => {
            list_offsets::offset_for_leader_epoch(broker, request).map(Some)
        }
        ApiKey::CreateTopics => admin::create_topics(broker, request).await.map(Some),
        ApiKey::DeleteTopics => admin::delete_topics(broker, request).await.map(Some),
        ApiKey::CreatePartitions => admin::create_partitions(broker, request).map(Some),
        ApiKey::DescribeConfigs => admin::describe_configs(broker, request).map(Some),
        ApiKey::AlterConfigs => admin::alter_configs(broker, request).map(Some),
        ApiKey::IncrementalAlterConfigs => {
            admin::incremental_alter_configs(broker, request).map(Some)
        }
        ApiKey::DeleteRecords => admin::delete_records(broker, request).map(Some),
        ApiKey::InitProducerId => init_producer_id::handle(broker, request).map(Some),
        ApiKey::FindCoordinator => groups::find_coordinator(broker, request).map(Some),
        ApiKey::JoinGroup => groups::join_group(broker, request).await.map(Some),
        ApiKey::SyncGroup => groups::sync_group(broker, request).await.map(Some),
        ApiKey::Heartbeat => groups::heartbeat(broker, request).map(Some),
        ApiKey::LeaveGroup => groups::leave_group(broker, request).map(Some),
        ApiKey::OffsetCommit => groups::offset_commit(broker, request).map(Some),
        ApiKey::OffsetFetch => groups::offset_fetch(broker, request).map(Some),
        ApiKey::ListGroups => groups::list_groups(broker, request).map(Some),
        ApiKey::DescribeGroups => groups::describe_groups(broker, request).map(Some),
        ApiKey::DeleteGroups => groups::delete_groups(broker, request).map(Some),
        ApiKey::DescribeCluster => cluster::describe_cluster(broker, request).map(Some),
        ApiKey::DescribeLogDirs => cluster::describe_log_dirs(broker, request).map(Some),
        ApiKey::AlterReplicaLogDirs => cluster::alter_replica_log_dirs(broker, request).map(Some),
        other => Err(ProtocolError(format!("{other:?} is not implemented"))),
    }
}

/// Why this node does not serve `partition` of `topic` (code and message), if it does not: in
/// a cluster only its leader serves a partition.
pub fn not_led_here<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    topic: &str,
    partition: i32,
) -> Option<(i16, String)> {
    use crate::broker::cluster::Leadership;
    match broker.leadership(topic, partition) {
        Leadership::Here => None,
        Leadership::Elsewhere(leader) => Some((
            errors::NOT_LEADER_OR_FOLLOWER,
            format!("broker {leader} leads this partition, not this one"),
        )),
        Leadership::NoLeader => Some((
            errors::NOT_LEADER_OR_FOLLOWER,
            "the partition has no leader now: its replica's broker is fenced".to_owned(),
        )),
        Leadership::Unknown => Some((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            "unknown topic or partition".to_owned(),
        )),
    }
}

/// A topic name as kafka-protocol carries it.
pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        name.to_owned(),
    ))
}

pub fn str_bytes(text: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(text.to_owned())
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;
