//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5) and offset by timestamp; and OffsetForLeaderEpoch. A single keel node has led
//! every partition since it was created, in leader epoch 0 (what Metadata reports), so the epoch
//! history of every partition is that one epoch, from the log start to the log end.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use super::frame::Frame;
use super::{decode, encode, errors, ProtocolError, Request};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// Earliest offset held locally (v8+): with no tiered storage, the earliest.
const EARLIEST_LOCAL: i64 = -4;
/// Latest offset in tiered storage (v9+): keel has none, so Kafka's "no offset" answer.
const LATEST_TIERED: i64 = -5;
/// The one leader epoch of every partition of a single node.
pub const LEADER_EPOCH: i32 = 0;
/// "No epoch given" in requests, and "no epoch known" in answers.
const NO_EPOCH: i32 = -1;

/// The error for a request that names `current` as the leader's epoch, as Kafka's
/// `getLocalLog` fences them: an older epoch is FENCED_LEADER_EPOCH, a newer one
/// UNKNOWN_LEADER_EPOCH; -1 asks for no check.
pub fn leader_epoch_error(current: i32) -> Option<i16> {
    match current {
        NO_EPOCH | LEADER_EPOCH => None,
        c if c < LEADER_EPOCH => Some(errors::FENCED_LEADER_EPOCH),
        _ => Some(errors::UNKNOWN_LEADER_EPOCH),
    }
}

pub fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: ListOffsetsRequest = decode(request)?;
    let mut response = ListOffsetsResponse::default();
    for topic in &body.topics {
        let found = broker.topic(topic.name.0.as_str());
        let mut answer = ListOffsetsTopicResponse::default();
        answer.name = topic.name.clone();
        for asked in &topic.partitions {
            let partition = found.as_ref().and_then(|t| {
                t.partitions
                    .get(usize::try_from(asked.partition_index).ok()?)
            });
            let fenced = super::not_led_here(broker, topic.name.0.as_str(), asked.partition_index)
                .map(|(code, _)| code)
                .or_else(|| leader_epoch_error(asked.current_leader_epoch));
            let mut result = match (partition, fenced) {
                (None, _) => failed(errors::UNKNOWN_TOPIC_OR_PARTITION),
                (Some(_), Some(code)) => failed(code),
                (Some(partition), None) => lookup(partition, asked.timestamp),
            };
            result.partition_index = asked.partition_index;
            if request.version < 4 {
                result.leader_epoch = -1;
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    encode(request, &response)
}

fn failed(code: i16) -> ListOffsetsPartitionResponse {
    let mut result = ListOffsetsPartitionResponse::default();
    result.error_code = code;
    result.timestamp = -1;
    result.offset = -1;
    result.leader_epoch = -1;
    result
}

fn found(offset: u64, timestamp: i64) -> ListOffsetsPartitionResponse {
    let mut result = ListOffsetsPartitionResponse::default();
    result.offset = offset as i64;
    result.timestamp = timestamp;
    result.leader_epoch = LEADER_EPOCH;
    result
}

fn lookup<D: Disk>(partition: &Partition<D>, timestamp: i64) -> ListOffsetsPartitionResponse {
    let closed = || failed(errors::UNKNOWN_TOPIC_OR_PARTITION);
    let Some(bounds) = partition.bounds() else {
        return closed();
    };
    match timestamp {
        LATEST => found(bounds.high_watermark, -1),
        EARLIEST | EARLIEST_LOCAL => found(bounds.log_start_offset, -1),
        // Offset, timestamp and epoch -1 with no error, as Kafka without tiered storage.
        LATEST_TIERED => failed(errors::NONE),
        MAX_TIMESTAMP => match partition.max_timestamp_offset() {
            None => closed(),
            Some(Ok(Some((offset, timestamp)))) => found(offset, timestamp),
            Some(Ok(None)) => found(bounds.log_end_offset, -1),
            Some(Err(e)) => failed(errors::log_error(&e)),
        },
        t if t >= 0 => match partition.offset_for_timestamp(t) {
            None => closed(),
            Some(Ok(Some((offset, ts)))) => found(offset, ts),
            // Every record is older (or not yet readable): Kafka answers offset and timestamp
            // -1 with no error, which clients read as "no such offset".
            Some(Ok(None)) => {
                let mut none = found(0, -1);
                none.offset = -1;
                none
            }
            Some(Err(e)) => failed(errors::log_error(&e)),
        },
        _ => failed(errors::INVALID_REQUEST),
    }
}

pub fn offset_for_leader_epoch<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: OffsetForLeaderEpochRequest = decode(request)?;
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in &body.topics {
        let found = broker.topic(topic.topic.0.as_str());
        let mut answer = OffsetForLeaderTopicResult::default();
        answer.topic = topic.topic.clone();
        for asked in &topic.partitions {
            let partition = found
                .as_ref()
                .and_then(|t| t.partitions.get(usize::try_from(asked.partition).ok()?));
            let mut result = EpochEndOffset::default();
            result.partition = asked.partition;
            result.leader_epoch = NO_EPOCH;
            result.end_offset = -1;
            let fenced = super::not_led_here(broker, topic.topic.0.as_str(), asked.partition)
                .map(|(code, _)| code)
                .or_else(|| leader_epoch_error(asked.current_leader_epoch));
            match (partition, fenced) {
                (None, _) => result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                (Some(_), Some(code)) => result.error_code = code,
                (Some(partition), None) => match partition.bounds() {
                    None => result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(bounds) => {
                        (result.leader_epoch, result.end_offset) = epoch_end(
                            asked.leader_epoch,
                            bounds.log_start_offset,
                            bounds.log_end_offset,
                        )
                    }
                },
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    encode(request, &response)
}

/// Kafka's LeaderEpochFileCache.endOffsetFor over a history of one epoch, `LEADER_EPOCH`,
/// from `start` to `end`: the latest epoch ends at the log end; a later epoch is unknown; an
/// earlier one ends where epoch 0 starts.
fn epoch_end(requested: i32, start: u64, end: u64) -> (i32, i64) {
    match requested {
        NO_EPOCH => (NO_EPOCH, -1),
        LEADER_EPOCH => (LEADER_EPOCH, end as i64),
        r if r > LEADER_EPOCH => (NO_EPOCH, -1),
        _ => (NO_EPOCH, start as i64),
    }
}
