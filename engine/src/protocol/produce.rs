//! Produce: each partition's records (exactly one RecordBatch v2, as Kafka requires of magic 2)
//! are validated and appended; under `flush = always` the partition is flushed before the answer,
//! so an acknowledged batch survives power loss (acks 1 and -1 alike: one replica). acks=0 gets
//! no answer at all. A refused batch leaves the log untouched.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, ProtocolError, Request};
use crate::broker::partition::Partition;
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::log::batch::BatchHeader;
use crate::log::FlushPolicy;

pub async fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Option<Frame<D::File>>, ProtocolError> {
    let body: ProduceRequest = decode(request)?;
    let acks_valid = (-1..=1).contains(&body.acks);
    let mut response = ProduceResponse::default();
    for topic in &body.topic_data {
        let name = topic.name.0.as_str();
        let found = broker.topic_or_create(name, true);
        let mut answer = TopicProduceResponse::default();
        answer.name = topic.name.clone();
        for data in &topic.partition_data {
            let partition = found
                .as_ref()
                .ok()
                .and_then(|t| t.partitions.get(usize::try_from(data.index).ok()?));
            let outcome = match (acks_valid, partition) {
                (false, _) => refused(
                    data.index,
                    errors::INVALID_REQUIRED_ACKS,
                    "acks must be 0, 1 or -1",
                ),
                (true, None) => refused(
                    data.index,
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic or partition",
                ),
                (true, Some(partition)) => append(
                    broker,
                    partition,
                    data.index,
                    data.records.as_deref(),
                    body.transactional_id.is_some(),
                ),
            };
            if outcome.error_code != errors::NONE {
                broker.metrics.error(Some(ApiKey::Produce));
            }
            let outcome = fit_version(outcome, request.version);
            answer.partition_responses.push(outcome);
        }
        response.responses.push(answer);
    }
    if body.acks == 0 {
        return Ok(None);
    }
    encode(request, &response).map(Some)
}

/// Clears fields the request's version does not have (kafka-protocol refuses to encode them).
fn fit_version(mut answer: PartitionProduceResponse, version: i16) -> PartitionProduceResponse {
    if version < 8 {
        answer.error_message = None;
    }
    if version < 5 {
        answer.log_start_offset = -1;
    }
    answer
}

fn refused(index: i32, code: i16, message: &str) -> PartitionProduceResponse {
    let mut answer = PartitionProduceResponse::default();
    answer.index = index;
    answer.error_code = code;
    answer.base_offset = -1;
    answer.log_append_time_ms = -1;
    answer.log_start_offset = -1;
    answer.error_message = Some(str_bytes(message));
    answer
}

/// Checks that `records` is one whole v2 batch from a plain producer, before it touches the log.
fn check_records(records: Option<&[u8]>, transactional: bool) -> Result<&[u8], (i16, String)> {
    let records = records.ok_or((errors::INVALID_RECORD, "no records".to_owned()))?;
    let header =
        BatchHeader::parse(records).map_err(|e| (errors::CORRUPT_MESSAGE, e.to_string()))?;
    if header.total_bytes() != Some(records.len()) {
        let message = "a produce request must carry exactly one record batch per partition";
        return Err((errors::INVALID_RECORD, message.to_owned()));
    }
    if transactional || header.is_transactional() || header.producer_id >= 0 {
        let message = "idempotent and transactional producers are not supported yet";
        return Err((errors::INVALID_RECORD, message.to_owned()));
    }
    Ok(records)
}

fn append<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    partition: &Partition<D>,
    index: i32,
    records: Option<&[u8]>,
    transactional: bool,
) -> PartitionProduceResponse {
    let records = match check_records(records, transactional) {
        Ok(records) => records,
        Err((code, message)) => return refused(index, code, &message),
    };
    let mut batch = records.to_vec();
    let batch_bytes = batch.len() as u64;
    let now_ms = broker.clock.now_ms();
    let mut guard = partition.log();
    let Some(log) = guard.as_mut() else {
        return refused(
            index,
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            "partition closed",
        );
    };
    if log.config().cleanup_policy.compact {
        if let Err(e) = crate::log::compaction::check_keys(&batch) {
            let error = crate::log::LogError::InvalidBatch(e);
            return refused(index, errors::log_error(&error), &error.to_string());
        }
    }
    let appended = log.append(&mut batch, now_ms).and_then(|info| {
        if log.config().flush == FlushPolicy::Always {
            let started_ns = broker.clock.monotonic_ns();
            log.flush(now_ms)?;
            broker
                .metrics
                .fsync(broker.clock.monotonic_ns().saturating_sub(started_ns));
        }
        Ok(info)
    });
    let log_start_offset = log.log_start_offset() as i64;
    drop(guard);
    match appended {
        Ok(info) => {
            broker.metrics.bytes_in(batch_bytes);
            broker.data_arrived.notify_waiters();
            let mut answer = PartitionProduceResponse::default();
            answer.index = index;
            answer.base_offset = info.base_offset as i64;
            answer.log_append_time_ms = info.log_append_time.unwrap_or(-1);
            answer.log_start_offset = log_start_offset;
            answer
        }
        Err(e) => {
            tracing::debug!(topic = %partition.topic, partition = index, error = %e, "produce refused");
            refused(index, errors::log_error(&e), &e.to_string())
        }
    }
}
