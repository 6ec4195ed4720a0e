//! Produce: each partition's records must be exactly one RecordBatch v2 (as Kafka requires of
//! magic 2) from a non-transactional producer (keel has no transaction coordinator); the
//! partition's produce path (`Partition::append`: codec, min.insync.replicas, compaction keys,
//! idempotent producers, the flush before the ack under `flush = always`) does the rest, and
//! this handler translates its answer. acks=0 gets no answer at all.
//!
//! A batch refused for some of its records (keyless records on a compacted topic) is answered as
//! Kafka answers it since KIP-467: INVALID_RECORD, with each such record's index in the batch and
//! reason in record_errors and a message naming them (Produce v8 and later carry both).

use std::path::Path;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, ProtocolError, Request};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::log::batch::{BatchError, BatchHeader};
use crate::log::{Compression, LogError};
use crate::partition::{Acks, AppendError, Partition};

pub async fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Option<Frame<D::File>>, ProtocolError> {
    let body: ProduceRequest = decode(request)?;
    let acks = Acks::from_field(body.acks);
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
            let internal = name == crate::broker::offsets::OFFSETS_TOPIC;
            let elsewhere = partition.and_then(|_| super::not_led_here(broker, name, data.index));
            let outcome = match (acks, partition) {
                (_, Some(_)) if internal => refused(
                    data.index,
                    errors::INVALID_TOPIC_EXCEPTION,
                    "__consumer_offsets is written by the group coordinator only",
                ),
                (None, _) => refused(
                    data.index,
                    errors::INVALID_REQUIRED_ACKS,
                    "acks must be 0, 1 or -1",
                ),
                (Some(_), None) => refused(
                    data.index,
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic or partition",
                ),
                (Some(_), Some(_)) if elsewhere.is_some() => {
                    let (code, message) = elsewhere.expect("checked");
                    refused(data.index, code, &message)
                }
                (Some(acks), Some(partition)) => {
                    append(
                        broker,
                        partition,
                        data.index,
                        data.records.as_deref(),
                        body.transactional_id.is_some(),
                        acks,
                        // The topic's own copy of its settings: no second trip to the log's lock.
                        found
                            .as_ref()
                            .map_or(Compression::Producer, |t| t.config.compression),
                    )
                    .await
                }
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
        answer.record_errors.clear();
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

/// The answer to a batch the log refused. Refused records (KIP-467) are listed one by one in
/// record_errors, under INVALID_RECORD and Kafka's message naming them, as Kafka answers, so a
/// client can tell which of its messages were at fault.
fn refused_batch(index: i32, error: &LogError, data_dir: &Path) -> PartitionProduceResponse {
    if let LogError::TimestampOutOfRange { record, .. } = error {
        let message = error.to_string();
        let mut answer = refused(index, errors::INVALID_TIMESTAMP, &message);
        let mut entry = BatchIndexAndErrorMessage::default();
        entry.batch_index = *record as i32;
        entry.batch_index_error_message = Some(str_bytes(&message));
        answer.record_errors = vec![entry];
        return answer;
    }
    let LogError::InvalidBatch(refusal @ BatchError::RecordErrors(records)) = error else {
        let message = errors::for_client(&error.to_string(), data_dir);
        return refused(index, errors::log_error(error), &message);
    };
    let mut answer = refused(index, errors::INVALID_RECORD, &refusal.to_string());
    answer.record_errors = records
        .iter()
        .map(|record| {
            let mut entry = BatchIndexAndErrorMessage::default();
            entry.batch_index = record.batch_index;
            entry.batch_index_error_message = Some(str_bytes(&record.message));
            entry
        })
        .collect();
    answer
}

/// Checks that `records` is one whole v2 batch from a non-transactional producer, before it
/// touches the log; returns it with its header.
fn check_records(
    records: Option<&[u8]>,
    transactional: bool,
) -> Result<(&[u8], BatchHeader), (i16, String)> {
    let records = records.ok_or((errors::INVALID_RECORD, "no records".to_owned()))?;
    let header =
        BatchHeader::parse(records).map_err(|e| (errors::CORRUPT_MESSAGE, e.to_string()))?;
    let total = header
        .total_bytes()
        .filter(|&total| total <= records.len())
        .ok_or((
            errors::INVALID_RECORD,
            "a produce request must carry one whole record batch per partition".to_owned(),
        ))?;
    let (batch, rest) = records.split_at(total);
    if starts_a_whole_batch(rest)? {
        let message = "a produce request must carry exactly one record batch per partition";
        return Err((errors::INVALID_RECORD, message.to_owned()));
    }
    let records = batch;
    if transactional || header.is_transactional() {
        let message = "transactional producers are not supported by keel";
        return Err((errors::INVALID_RECORD, message.to_owned()));
    }
    Ok((records, header))
}

/// Whether the bytes after a produce's batch hold another whole batch. Kafka's batch iterator
/// stops at an incomplete one, and its log trims such trailing bytes before appending; so does
/// keel. A length field below the smallest record is damage (CORRUPT_MESSAGE), as in Kafka.
fn starts_a_whole_batch(rest: &[u8]) -> Result<bool, (i16, String)> {
    /// Base offset and length field.
    const LOG_OVERHEAD: usize = 12;
    /// Up to and including the magic byte.
    const HEADER_UP_TO_MAGIC: usize = 17;
    /// Kafka's smallest record (LegacyRecord.RECORD_OVERHEAD_V0).
    const RECORD_BYTES_MIN: i32 = 14;
    if rest.len() < LOG_OVERHEAD {
        return Ok(false);
    }
    let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
    if length < RECORD_BYTES_MIN {
        return Err((
            errors::CORRUPT_MESSAGE,
            format!("bytes after the record batch have a length of {length}"),
        ));
    }
    Ok(rest.len() >= HEADER_UP_TO_MAGIC && rest.len() >= LOG_OVERHEAD + length as usize)
}

async fn append<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    partition: &Partition<D>,
    index: i32,
    records: Option<&[u8]>,
    transactional: bool,
    acks: Acks,
    compression: Compression,
) -> PartitionProduceResponse {
    let (records, header) = match check_records(records, transactional) {
        Ok(checked) => checked,
        Err((code, message)) => return refused(index, code, &message),
    };
    let appended = partition
        .append(records, &header, acks, compression, &broker.clock)
        .await;
    match appended {
        Ok(appended) => {
            broker.fsynced(appended.synced);
            if !appended.duplicate {
                broker.metrics.bytes_in(appended.bytes);
                broker.data_arrived.notify_waiters();
            }
            let mut answer = PartitionProduceResponse::default();
            answer.index = index;
            answer.base_offset = appended.base_offset as i64;
            answer.log_append_time_ms = appended.log_append_time.unwrap_or(-1);
            answer.log_start_offset = appended.log_start_offset as i64;
            answer
        }
        Err(AppendError::Closed) => refused(
            index,
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            "partition closed",
        ),
        Err(AppendError::NotEnoughReplicas(message)) => {
            refused(index, errors::NOT_ENOUGH_REPLICAS, &message)
        }
        Err(AppendError::Producer(code, message)) => refused(index, code, &message),
        Err(AppendError::Log(e)) => {
            tracing::debug!(topic = %partition.topic, partition = index, error = %e, "produce refused");
            if errors::log_error(&e) == errors::KAFKA_STORAGE_ERROR {
                let now_ns = broker.clock.monotonic_ns();
                let storage = &broker.metrics.storage_errors;
                storage.record(now_ns, &partition.topic, index, "produce", &e);
                // A failed flush leaves the batch in the log, readable once a later flush
                // covers it.
                broker.data_arrived.notify_waiters();
            }
            refused_batch(index, &e, &broker.config.data_dir)
        }
    }
}
