//! Fetch: whole batches from each partition, up to the high watermark, within the request's byte
//! limits (always at least one batch, as Kafka does, so a large batch is never stuck), with long
//! polling: when fewer than min_bytes are ready the request waits, up to max_wait_ms, for an
//! append to bring more. The record bytes are not read by the broker: the response frame points
//! at segment file ranges that the connection sends with sendfile.
//!
//! Fetch sessions (KIP-227, v7+): session id 0 with epoch -1 is a full fetch without a session;
//! epoch 0 starts one (`broker::fetch_sessions`); a session's id with the next epoch is an
//! incremental fetch, answered with only the partitions that have something new; epoch -1 with
//! an id closes it.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;

use super::fetch_frame::{self, FetchedPartition, FetchedResponse, FetchedTopic, RecordsRange};
use super::frame::Frame;
use super::{decode, errors, ProtocolError, Request};
use crate::broker::fetch_sessions::{SessionPartition, INVALID_FETCH_SESSION_EPOCH};
use crate::broker::topics::Topic;
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::partition::{Partition, Read};

/// The longest a fetch waits for min_bytes, whatever it asks (Kafka bounds it by the request
/// timeout the same way).
const WAIT_MS_MAX: i32 = 30_000;
/// A session partition's watermarks before any response reported them.
const UNREPORTED: i64 = -2;

pub async fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let mut body: FetchRequest = decode(request)?;
    let now_ms = broker.clock.now_ms();
    let session = if request.version < 7 {
        Session::None
    } else {
        match (body.session_id, body.session_epoch) {
            (0, -1) => Session::None,
            (0, 0) => Session::New,
            (id, -1) => {
                broker.fetch_sessions.close(id);
                Session::None
            }
            (0, _) => return Ok(session_error(request, INVALID_FETCH_SESSION_EPOCH)),
            (id, epoch) => {
                let changed = session_partitions(&body);
                let forgotten: Vec<(String, [u8; 16], i32)> = body
                    .forgotten_topics_data
                    .iter()
                    .flat_map(|t| {
                        let (name, id) = (t.topic.0.to_string(), *t.topic_id.as_bytes());
                        t.partitions.iter().map(move |&p| (name.clone(), id, p))
                    })
                    .collect();
                match broker
                    .fetch_sessions
                    .update(id, epoch, changed, &forgotten, now_ms)
                {
                    Ok(partitions) => {
                        body.topics = fetch_topics(&partitions);
                        Session::Incremental(id, partitions)
                    }
                    Err(code) => return Ok(session_error(request, code)),
                }
            }
        }
    };
    let wait_ns = body.max_wait_ms.clamp(0, WAIT_MS_MAX) as u64 * 1_000_000;
    let deadline_ns = broker.clock.monotonic_ns() + wait_ns;
    loop {
        let arrived = broker.data_arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let (mut response, bytes) = collect(broker, &body, request.version);
        if let Session::Incremental(_, known) = &session {
            leave_out_unchanged(&mut response, known);
        }
        let now_ns = broker.clock.monotonic_ns();
        // At shutdown a waiting fetch answers with what it has, as if its wait were over.
        let waited_enough = now_ns >= deadline_ns || broker.is_stopping();
        if bytes >= body.min_bytes.max(0) as u64 || waited_enough || has_error(&response) {
            broker.metrics.bytes_out(bytes);
            if has_error(&response) {
                broker
                    .metrics
                    .error(Some(kafka_protocol::messages::ApiKey::Fetch));
            }
            match &session {
                Session::None => {}
                Session::New => {
                    let partitions = reported_partitions(&body, &response);
                    let rng = broker.rng();
                    response.session_id = broker
                        .fetch_sessions
                        .create(partitions, now_ms, || rng.next_u64());
                }
                Session::Incremental(id, _) => {
                    response.session_id = *id;
                    broker.fetch_sessions.reported(*id, &reports(&response));
                }
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

/// What the request says of sessions.
enum Session {
    None,
    New,
    /// The session's id and its partitions as they were before this request's answer.
    Incremental(i32, Vec<SessionPartition>),
}

fn session_error<F>(request: &Request, code: i16) -> Frame<F> {
    let response = FetchedResponse {
        throttle_time_ms: 0,
        error_code: code,
        session_id: 0,
        topics: Vec::new(),
    };
    fetch_frame::encode(response, request.version, request.correlation_id)
}

/// The partitions a request names, as session entries not yet reported.
fn session_partitions(body: &FetchRequest) -> Vec<SessionPartition> {
    body.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| SessionPartition {
                topic: t.topic.0.to_string(),
                topic_id: *t.topic_id.as_bytes(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                high_watermark: UNREPORTED,
                log_start_offset: UNREPORTED,
            })
        })
        .collect()
}

/// A new session's partitions with what this response reported of them.
fn reported_partitions<F>(
    body: &FetchRequest,
    response: &FetchedResponse<F>,
) -> Vec<SessionPartition> {
    let mut partitions = session_partitions(body);
    for p in &mut partitions {
        if let Some(found) = response
            .topics
            .iter()
            .filter(|t| t.name == p.topic && t.topic_id == p.topic_id)
            .flat_map(|t| &t.partitions)
            .find(|f| f.partition_index == p.partition)
        {
            p.high_watermark = found.high_watermark;
            p.log_start_offset = found.log_start_offset;
        }
    }
    partitions
}

fn reports<F>(response: &FetchedResponse<F>) -> Vec<(String, [u8; 16], i32, i64, i64)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.clone(),
                    t.topic_id,
                    p.partition_index,
                    p.high_watermark,
                    p.log_start_offset,
                )
            })
        })
        .collect()
}

/// Fetch topics for a session's partitions, in the session's order.
fn fetch_topics(partitions: &[SessionPartition]) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in partitions {
        let mut wanted = FetchPartition::default();
        wanted.partition = p.partition;
        wanted.fetch_offset = p.fetch_offset;
        wanted.partition_max_bytes = p.max_bytes;
        let existing = topics
            .iter_mut()
            .find(|t| t.topic.0.as_str() == p.topic && t.topic_id.as_bytes() == &p.topic_id);
        match existing {
            Some(topic) => topic.partitions.push(wanted),
            None => {
                let mut topic = FetchTopic::default();
                topic.topic = super::topic_name(&p.topic);
                topic.topic_id = uuid::Uuid::from_bytes(p.topic_id);
                topic.partitions = vec![wanted];
                topics.push(topic);
            }
        }
    }
    topics
}

/// An incremental response carries only partitions with records, an error, or a high watermark
/// or log start that moved since the session last reported them.
fn leave_out_unchanged<F>(response: &mut FetchedResponse<F>, known: &[SessionPartition]) {
    for topic in &mut response.topics {
        let (name, id) = (topic.name.clone(), topic.topic_id);
        topic.partitions.retain(|p| {
            let before = known.iter().find(|k| {
                k.partition == p.partition_index && (k.topic == name || k.topic_id == id)
            });
            p.records.is_some()
                || p.error_code != errors::NONE
                || before.is_none_or(|k| {
                    k.high_watermark != p.high_watermark || k.log_start_offset != p.log_start_offset
                })
        });
    }
    response.topics.retain(|t| !t.partitions.is_empty());
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
            let elsewhere = topic
                .as_deref()
                .and_then(|t| super::not_led_here(broker, &t.name, wanted.partition));
            let mut fetched = match (partition_of(topic.as_deref(), wanted.partition), elsewhere) {
                (Some(_), Some((code, _))) => empty(wanted.partition, code),
                (Some(partition), None) => read(broker, partition, wanted, bytes_left, total == 0),
                (None, _) => empty(wanted.partition, unknown),
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
fn read<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    partition: &Partition<D>,
    wanted: &FetchPartition,
    bytes_left: u64,
    first: bool,
) -> FetchedPartition<D::File> {
    let closed = || empty(wanted.partition, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let partition_bytes = (wanted.partition_max_bytes.max(0) as u64).min(bytes_left);
    let offset = u64::try_from(wanted.fetch_offset).unwrap_or(u64::MAX);
    let read = if partition_bytes == 0 && !first {
        partition.bounds().map(|bounds| Read {
            bounds,
            records: Ok(None),
        })
    } else {
        partition.read(offset, partition_bytes.max(1))
    };
    let Some(Read { bounds, records }) = read else {
        return closed();
    };
    let mut fetched = FetchedPartition {
        partition_index: wanted.partition,
        error_code: errors::NONE,
        high_watermark: bounds.high_watermark as i64,
        last_stable_offset: bounds.high_watermark as i64,
        log_start_offset: bounds.log_start_offset as i64,
        records: None,
    };
    match records {
        Ok(Some(slice)) if first || slice.bytes <= partition_bytes => {
            fetched.records = Some(RecordsRange {
                file: slice.file,
                position: slice.position,
                len: slice.bytes,
            });
        }
        Ok(_) => {}
        Err(e) => {
            fetched.error_code = errors::log_error(&e);
            if fetched.error_code == errors::KAFKA_STORAGE_ERROR {
                let now_ns = broker.clock.monotonic_ns();
                let storage = &broker.metrics.storage_errors;
                storage.record(now_ns, &partition.topic, partition.index, "fetch", &e);
            }
        }
    }
    fetched
}
