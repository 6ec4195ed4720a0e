//! Fetch: whole batches from each partition, up to the high watermark, within the request's byte
//! limits (always at least one batch, as Kafka does, so a large batch is never stuck), with long
//! polling: when fewer than min_bytes are ready the request waits, up to max_wait_ms, for an
//! append to bring more. The record bytes are not read by the broker: the response frame points
//! at segment file ranges that the connection sends with sendfile.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id 0, which tells the
//! client to send full fetch requests; a request naming a session gets FETCH_SESSION_ID_NOT_FOUND.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::FetchRequest;

use super::fetch_frame::{self, FetchedPartition, FetchedResponse, FetchedTopic, RecordsRange};
use super::frame::Frame;
use super::{decode, errors, ProtocolError, Request};
use crate::broker::partition::{high_watermark, Partition};
use crate::broker::topics::Topic;
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

/// The longest a fetch waits for min_bytes, whatever it asks (Kafka bounds it by the request
/// timeout the same way).
const WAIT_MS_MAX: i32 = 30_000;

pub async fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: FetchRequest = decode(request)?;
    if body.session_id != 0 {
        let response = FetchedResponse {
            throttle_time_ms: 0,
            error_code: errors::FETCH_SESSION_ID_NOT_FOUND,
            session_id: 0,
            topics: Vec::new(),
        };
        return Ok(fetch_frame::encode(
            response,
            request.version,
            request.correlation_id,
        ));
    }
    let wait_ns = body.max_wait_ms.clamp(0, WAIT_MS_MAX) as u64 * 1_000_000;
    let deadline_ns = broker.clock.monotonic_ns() + wait_ns;
    loop {
        let arrived = broker.data_arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let (response, bytes) = collect(broker, &body, request.version);
        let now_ns = broker.clock.monotonic_ns();
        let waited_enough = now_ns >= deadline_ns;
        if bytes >= body.min_bytes.max(0) as u64 || waited_enough || has_error(&response) {
            broker.metrics.bytes_out(bytes);
            if has_error(&response) {
                broker
                    .metrics
                    .error(Some(kafka_protocol::messages::ApiKey::Fetch));
            }
            return Ok(fetch_frame::encode(
                response,
                request.version,
                request.correlation_id,
            ));
        }
        // A timeout here just means "answer with what there is".
        let remaining = Duration::from_nanos(deadline_ns - now_ns);
        let _ = tokio::time::timeout(remaining, arrived).await;
    }
}

fn has_error<F>(response: &FetchedResponse<F>) -> bool {
    response
        .topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code != errors::NONE))
}

/// Reads every partition asked for; returns the response and the record bytes it carries.
fn collect<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    body: &FetchRequest,
    version: i16,
) -> (FetchedResponse<D::File>, u64) {
    let mut bytes_left = if body.max_bytes <= 0 {
        i32::MAX as u64
    } else {
        body.max_bytes as u64
    };
    let mut total = 0;
    let mut topics = Vec::with_capacity(body.topics.len());
    for asked in &body.topics {
        let topic = if version >= 13 {
            broker.topic_by_id(asked.topic_id.as_bytes())
        } else {
            broker.topic(asked.topic.0.as_str())
        };
        let unknown = if version >= 13 {
            errors::UNKNOWN_TOPIC_ID
        } else {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        };
        let mut partitions = Vec::with_capacity(asked.partitions.len());
        for wanted in &asked.partitions {
            let mut fetched = match partition_of(topic.as_deref(), wanted.partition) {
                Some(partition) => read(partition, wanted, bytes_left, total == 0),
                None => empty(wanted.partition, unknown),
            };
            if let Some(records) = &fetched.records {
                bytes_left = bytes_left.saturating_sub(records.len);
                total += records.len;
            }
            fetched.partition_index = wanted.partition;
            partitions.push(fetched);
        }
        topics.push(FetchedTopic {
            name: asked.topic.0.to_string(),
            topic_id: *asked.topic_id.as_bytes(),
            partitions,
        });
    }
    let response = FetchedResponse {
        throttle_time_ms: 0,
        error_code: errors::NONE,
        session_id: 0,
        topics,
    };
    (response, total)
}

fn partition_of<D: Disk>(topic: Option<&Topic<D>>, index: i32) -> Option<&Partition<D>> {
    topic?
        .partitions
        .get(usize::try_from(index).ok()?)
        .map(|p| &**p)
}

fn empty<F>(partition_index: i32, error_code: i16) -> FetchedPartition<F> {
    FetchedPartition {
        partition_index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: None,
    }
}

/// One partition's batches from `fetch_offset`. When nothing was fetched yet in this response
/// (`first`), a batch larger than the limits is still returned whole.
fn read<D: Disk>(
    partition: &Partition<D>,
    wanted: &FetchPartition,
    bytes_left: u64,
    first: bool,
) -> FetchedPartition<D::File> {
    let mut guard = partition.log();
    let Some(log) = guard.as_mut() else {
        return empty(wanted.partition, errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let high_watermark = high_watermark(log);
    let mut fetched = FetchedPartition {
        partition_index: wanted.partition,
        error_code: errors::NONE,
        high_watermark: high_watermark as i64,
        last_stable_offset: high_watermark as i64,
        log_start_offset: log.log_start_offset() as i64,
        records: None,
    };
    let partition_bytes = (wanted.partition_max_bytes.max(0) as u64).min(bytes_left);
    if partition_bytes == 0 && !first {
        return fetched;
    }
    let offset = u64::try_from(wanted.fetch_offset).unwrap_or(u64::MAX);
    match log.read(offset, partition_bytes.max(1), high_watermark) {
        Ok(Some(slice)) if first || slice.bytes <= partition_bytes => {
            fetched.records = Some(RecordsRange {
                file: slice.file,
                position: slice.position,
                len: slice.bytes,
            });
        }
        Ok(_) => {}
        Err(e) => fetched.error_code = errors::log_error(&e),
    }
    fetched
}
