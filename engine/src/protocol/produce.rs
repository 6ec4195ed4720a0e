//! Produce: each partition's records (exactly one RecordBatch v2, as Kafka requires of magic 2)
//! are validated and appended; under `flush = always` the partition is flushed before the answer,
//! so an acknowledged batch survives power loss (acks 1 and -1 alike: one replica). acks=0 gets
//! no answer at all. A refused batch leaves the log untouched.
//!
//! A batch from an idempotent producer (producer id set) is judged by the partition's producer
//! state first (`broker::producers`): a retry of a batch already written is acknowledged with its
//! first offsets and not written again; a gap in sequences or a fenced epoch is refused.
//! Transactional batches are refused: keel has no transaction coordinator.
//!
//! A batch refused for some of its records (keyless records on a compacted topic) is answered as
//! Kafka answers it since KIP-467: INVALID_RECORD, with each such record's index in the batch and
//! reason in record_errors and a message naming them (Produce v8 and later carry both).

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::frame::Frame;
use super::{decode, encode, errors, str_bytes, ProtocolError, Request};
use crate::broker::partition::Partition;
use crate::broker::producers::{self, Verdict};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::log::batch::{BatchError, BatchHeader};
use crate::log::{Compression, FlushPolicy, LogError};

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
            let internal = name == crate::broker::offsets::OFFSETS_TOPIC;
            let outcome = match (acks_valid, partition) {
                (_, Some(_)) if internal => refused(
                    data.index,
                    errors::INVALID_TOPIC_EXCEPTION,
                    "__consumer_offsets is written by the group coordinator only",
                ),
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
                    body.acks,
                    // The topic's own copy of its settings: no second trip to the log's lock.
                    found
                        .as_ref()
                        .map_or(Compression::Producer, |t| t.config.compression),
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
fn refused_batch(index: i32, error: &LogError) -> PartitionProduceResponse {
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
        return refused(index, errors::log_error(error), &error.to_string());
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

/// Makes the log durable through `last_offset` (flush=always, before the ack). Requests that
/// appended while another flush ran share the next one: a flush that already covered this
/// batch is not repeated (see `Partition::flush`).
fn flush_through<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    partition: &Partition<D>,
    last_offset: u64,
) -> Result<(), crate::log::LogError> {
    let started_ns = broker.clock.monotonic_ns();
    if partition.flush(Some(last_offset), broker.clock.now_ms())? {
        broker
            .metrics
            .fsync(broker.clock.monotonic_ns().saturating_sub(started_ns));
    }
    Ok(())
}

/// The batch as the partition stores it: as produced, or recompressed when the topic's
/// compression.type names another codec than the producer used (control batches stay as they
/// are). Recompression runs before the partition's lock is taken, and only after the batch has
/// passed its CRC check, so that garbage is refused rather than decompressed.
fn recompressed(
    compression: Compression,
    records: &[u8],
    header: &BatchHeader,
) -> Result<Vec<u8>, crate::log::LogError> {
    let Compression::Codec(codec) = compression else {
        return Ok(records.to_vec());
    };
    let produced = header
        .codec()
        .map_err(|e| crate::log::LogError::InvalidBatch(e.into()))?;
    if produced == codec || header.is_control() {
        return Ok(records.to_vec());
    }
    crate::log::batch::validate(records, true)?;
    Ok(crate::log::batch::recompress(records, codec)?)
}

/// The in-sync replicas of every partition of a single node: itself.
const IN_SYNC_REPLICAS: i32 = 1;

fn append<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    partition: &Partition<D>,
    index: i32,
    records: Option<&[u8]>,
    transactional: bool,
    acks: i16,
    compression: Compression,
) -> PartitionProduceResponse {
    let (records, header) = match check_records(records, transactional) {
        Ok(checked) => checked,
        Err((code, message)) => return refused(index, code, &message),
    };
    let mut batch = match recompressed(compression, records, &header) {
        Ok(batch) => batch,
        Err(e) => return refused_batch(index, &e),
    };
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
    // acks=all needs min.insync.replicas in sync; a single node is one (Kafka checks this
    // before appending, so nothing is written).
    let min_insync = log.config().min_insync_replicas;
    if acks == -1 && min_insync > IN_SYNC_REPLICAS {
        let message = format!(
            "The size of the current ISR Set({}) is insufficient to satisfy the min.isr requirement of {min_insync} for partition {}-{index}",
            broker.config.node_id, partition.topic
        );
        return refused(index, errors::NOT_ENOUGH_REPLICAS, &message);
    }
    if log.config().cleanup_policy.compact {
        let name = format!("{}-{index}", partition.topic);
        if let Err(e) = crate::log::compaction::check_keys(&batch, &name) {
            return refused_batch(index, &LogError::InvalidBatch(e));
        }
    }
    let idempotent = producers::is_idempotent(&header);
    if idempotent {
        // Bound first: the producers' lock must not be held while the log's is taken again.
        let verdict = partition.producers().check(&header);
        match verdict {
            Verdict::Append => {}
            Verdict::Duplicate(meta) => {
                let flush_always = log.config().flush == FlushPolicy::Always;
                let log_start_offset = log.log_start_offset() as i64;
                drop(guard);
                // Under flush=always the first attempt may have been written but not flushed
                // (its flush failed): the retry's acknowledgement must still be a durable one.
                if flush_always {
                    if let Err(e) = flush_through(broker, partition, meta.last_offset) {
                        return refused_batch(index, &e);
                    }
                }
                tracing::debug!(topic = %partition.topic, partition = index, producer = header.producer_id, sequence = header.base_sequence, "duplicate batch acknowledged at its first offset");
                let mut answer = PartitionProduceResponse::default();
                answer.index = index;
                answer.base_offset = meta.base_offset as i64;
                answer.log_append_time_ms = -1;
                answer.log_start_offset = log_start_offset;
                return answer;
            }
            Verdict::Refuse(code, message) => {
                drop(guard);
                return refused(index, code, &message);
            }
        }
    }
    let appended = log.append(&mut batch, now_ms).inspect(|info| {
        if idempotent {
            let mut stored = header;
            stored.base_offset = info.base_offset as i64;
            partition.producers().record(&stored);
        }
    });
    let flush_always = log.config().flush == FlushPolicy::Always;
    let log_start_offset = log.log_start_offset() as i64;
    drop(guard);
    let appended = match appended {
        Ok(info) if flush_always => {
            flush_through(broker, partition, info.last_offset).map(|()| info)
        }
        other => other,
    };
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
            if errors::log_error(&e) == errors::KAFKA_STORAGE_ERROR {
                let now_ns = broker.clock.monotonic_ns();
                let storage = &broker.metrics.storage_errors;
                storage.record(now_ns, &partition.topic, index, "produce", &e);
            }
            refused_batch(index, &e)
        }
    }
}
