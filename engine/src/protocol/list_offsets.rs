//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and offset by timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::frame::Frame;
use super::{decode, encode, errors, ProtocolError, Request};
use crate::broker::partition::{high_watermark, Partition};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// Earliest offset held locally (v8+): with no tiered storage, the earliest.
const EARLIEST_LOCAL: i64 = -4;

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
            let mut result = match partition {
                Some(partition) => lookup(partition, asked.timestamp),
                None => failed(errors::UNKNOWN_TOPIC_OR_PARTITION),
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
    result.leader_epoch = 0;
    result
}

fn lookup<D: Disk>(partition: &Partition<D>, timestamp: i64) -> ListOffsetsPartitionResponse {
    let mut guard = partition.log();
    let Some(log) = guard.as_mut() else {
        return failed(errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let high_watermark = high_watermark(log);
    match timestamp {
        LATEST => found(high_watermark, -1),
        EARLIEST | EARLIEST_LOCAL => found(log.log_start_offset(), -1),
        MAX_TIMESTAMP => max_timestamp(log),
        t if t >= 0 => match log.offset_for_timestamp(t) {
            Ok(Some((offset, ts))) if offset < high_watermark => found(offset, ts),
            // Every record is older (or not yet readable): Kafka answers offset and timestamp
            // -1 with no error, which clients read as "no such offset".
            Ok(_) => {
                let mut none = found(0, -1);
                none.offset = -1;
                none
            }
            Err(e) => failed(errors::log_error(&e)),
        },
        _ => failed(errors::INVALID_REQUEST),
    }
}

/// The offset of the record with the largest timestamp (KIP-734).
fn max_timestamp<D: Disk>(log: &mut crate::log::Log<D>) -> ListOffsetsPartitionResponse {
    match log.max_timestamp_offset() {
        Ok(Some((offset, timestamp))) => found(offset, timestamp),
        Ok(None) => found(log.next_offset(), -1),
        Err(e) => failed(errors::log_error(&e)),
    }
}
