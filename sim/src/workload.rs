//! The workload of one seed: producers and readers against a node, a fault schedule that kills,
//! power-cycles and cleanly restarts the node and turns disk faults on and off, then a heal phase
//! and a final read of the whole log for the checkers.
//!
//! Clients run on their own simulated node, so they outlive the storage node's crashes; every
//! request has a timeout, because a killed node never answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use keel::compression::Codec;
use keel::log::batch::{BatchBuilder, NewRecord};
use madsim::rand::Rng;
use madsim::runtime::Handle;

use bytes::Bytes;

use crate::broker_node::{BROKER_ADDRESS, TOPIC};
use crate::checkers::served::{self, value_for};
use crate::checkers::FinalLog;
use crate::disk::{FaultConfig, SimDisk};
use crate::history::{Event, History, RecordId};
use crate::kafka::Client;
use crate::node::{FetchError, Fetched, Mailbox, Request};
use crate::rng::SimRng;

/// A request not answered in this much simulated time is given up (the node may be dead).
const REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Bytes a reader asks for per fetch.
const FETCH_BYTES_MAX: u64 = 8 * 1024;
/// The final read gives up after this many fetches (a log of the workload's size needs far
/// fewer; more means the log does not advance).
const FINAL_FETCHES_MAX: u64 = 1_000_000;

/// The shape of one run, drawn from its seed.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub producers: u32,
    pub readers: u32,
    /// Produce and fetch requests in all, across clients.
    pub operations: u64,
    /// Faults are injected until this many operations have been made.
    pub fault_operations: u64,
    pub fault_interval_ms_mean: u64,
    /// Disk faults switched on in bursts.
    pub disk_faults: FaultConfig,
    pub codecs: Vec<Codec>,
    /// Producers are idempotent (broker only): each has a producer id from InitProducerId and
    /// sequence numbers, and resends a batch that got no answer until it is acknowledged.
    pub idempotent: bool,
    /// Consumer-group members committing offsets (broker only).
    pub group_members: u32,
    /// The compaction workload: records carry one of this many keys (`served::key_for`), and
    /// reads accept the holes compaction leaves. `None` for the other workloads.
    pub keys: Option<u32>,
    /// Batches an idempotent producer keeps unacknowledged at once (1: one at a time).
    pub in_flight: u32,
}

/// What the clients talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The storage node (`crate::node`) through its in-memory mailbox.
    Log,
    /// The real broker (`crate::broker_node`) through the Kafka protocol over simulated TCP.
    /// Under `flush = always` its high watermark is its recovery point, so whatever it
    /// acknowledges or serves is durable: the workload records that as flushed.
    Broker { flush_always: bool },
}

/// Everything the workload's tasks share.
#[derive(Clone)]
pub struct Cluster {
    pub handle: Handle,
    pub node_id: madsim::task::NodeId,
    pub disk: SimDisk,
    pub mailbox: Mailbox,
    pub target: Target,
    pub history: Arc<History>,
    pub operations: Arc<AtomicU64>,
    /// The directory of the partition the workload produces to and reads.
    pub partition_dir: std::path::PathBuf,
    /// `flush = always`: every acknowledgement promises durability.
    pub acks_durable: bool,
    /// The compaction workload's key count: the log is read back and checked after every
    /// restart (`None` for the other workloads).
    pub keys: Option<u32>,
}

impl Cluster {
    fn take_operation(&self, budget: u64) -> bool {
        self.operations.fetch_add(1, Ordering::SeqCst) < budget
    }

    fn operations_done(&self) -> u64 {
        self.operations.load(Ordering::SeqCst)
    }

    /// Produces one batch; `None` when no answer came.
    async fn produce(&self, batch: Vec<u8>) -> Option<Result<u64, ProduceError>> {
        match self.target {
            Target::Log => call(&self.mailbox, |reply| Request::Produce { batch, reply })
                .await
                .map(|answer| answer.map_err(ProduceError::Node)),
            Target::Broker { .. } => {
                let mut client = Client::connect(BROKER_ADDRESS).await.ok()?;
                match client.produce(TOPIC, 0, Bytes::from(batch)).await.ok()? {
                    Ok(base) => Some(Ok(base)),
                    Err(code) => Some(Err(ProduceError::Code(code))),
                }
            }
        }
    }

    /// Fetches from `offset`, in a fetch session when `session` is given (the broker's); `None`
    /// when no answer came.
    async fn fetch(
        &self,
        offset: u64,
        session: Option<&mut FetchSession>,
    ) -> Option<Result<Fetched, FetchError>> {
        match self.target {
            Target::Log => fetch(&self.mailbox, offset).await,
            Target::Broker { .. } => {
                let mut client = Client::connect(BROKER_ADDRESS).await.ok()?;
                let asked = session.as_ref().map_or((0, -1), |s| (s.id, s.epoch));
                let answer = client
                    .fetch(TOPIC, 0, offset, FETCH_BYTES_MAX as i32, asked)
                    .await
                    .ok()?;
                if let Some(session) = session {
                    session.answered(&answer);
                }
                Some(match answer {
                    Err(code) => Err(FetchError::Other(format!("Kafka error code {code}"))),
                    Ok(f) if f.error_code == 0 => Ok(Fetched {
                        bytes: f.records.to_vec(),
                        log_start: f.log_start,
                        next_offset: f.high_watermark,
                    }),
                    Ok(f) if f.error_code == OFFSET_OUT_OF_RANGE => Err(FetchError::OutOfRange {
                        log_start: f.log_start,
                        next_offset: f.high_watermark,
                    }),
                    Ok(f) => Err(FetchError::Other(format!(
                        "Kafka error code {}",
                        f.error_code
                    ))),
                })
            }
        }
    }

    /// Asks the node to shut down cleanly; whether it did.
    async fn shutdown(&self) -> bool {
        match self.target {
            Target::Log => matches!(
                call(&self.mailbox, |reply| Request::Shutdown { reply }).await,
                Some(Ok(()))
            ),
            Target::Broker { .. } => {
                self.handle.send_ctrl_c(self.node_id);
                for _ in 0..SHUTDOWN_POLLS_MAX {
                    if self.handle.is_exit(self.node_id) {
                        return true;
                    }
                    sleep_ms(10).await;
                }
                false
            }
        }
    }

    /// Under the broker with `flush = always`, what it acknowledged or served is durable.
    fn note_durable(&self, upto: u64, epoch: u64) {
        if self.target == (Target::Broker { flush_always: true }) {
            self.history.record(Event::Flushed { upto, epoch });
        }
    }
}

/// A reader's fetch session with the broker: started by its first fetch, then incremental
/// (every request names the partition with its current offset); refused or forgotten sessions
/// (after every restart) start over.
#[derive(Default)]
pub struct FetchSession {
    id: i32,
    epoch: i32,
}

impl FetchSession {
    fn answered(&mut self, answer: &crate::kafka::Answer<crate::kafka::Fetched>) {
        match answer {
            Ok(fetched) if fetched.session_id != 0 => {
                if self.id == fetched.session_id {
                    self.epoch = if self.epoch == i32::MAX {
                        1
                    } else {
                        self.epoch + 1
                    };
                } else {
                    (self.id, self.epoch) = (fetched.session_id, 1);
                }
            }
            // No session granted, or the session was refused (unknown after a restart, or an
            // epoch lost with a reply that never came): start a new one.
            _ => (self.id, self.epoch) = (0, 0),
        }
    }
}

/// Why a produce was refused.
#[derive(Debug)]
pub enum ProduceError {
    /// The storage node's reason.
    Node(String),
    /// The broker's Kafka error code.
    Code(i16),
}

impl std::fmt::Display for ProduceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProduceError::Node(reason) => f.write_str(reason),
            ProduceError::Code(code) => write!(f, "Kafka error code {code}"),
        }
    }
}

/// How many 10 ms polls a clean shutdown may take.
const SHUTDOWN_POLLS_MAX: u32 = 1_000;
/// Kafka's OFFSET_OUT_OF_RANGE.
use keel::error_codes::{
    INVALID_PRODUCER_EPOCH, OFFSET_OUT_OF_RANGE, OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
};

/// Creates a topic with the run's log settings (retrying while the broker starts).
pub async fn create_topic(
    cluster: &Cluster,
    name: &str,
    partitions: i32,
    configs: &[(&str, String)],
) {
    for _ in 0..100 {
        if let Ok(mut client) = Client::connect(BROKER_ADDRESS).await {
            if let Ok(Ok(())) = client.create_topic(name, partitions, configs).await {
                return;
            }
        }
        sleep_ms(50).await;
    }
    cluster.history.record(Event::Violation {
        checker: "liveness",
        message: "the broker never accepted the topic".to_owned(),
    });
}

async fn call<T>(mailbox: &Mailbox, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    if !mailbox.send(make(reply)) {
        return None;
    }
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    madsim::time::timeout(timeout, answer).await.ok()?.ok()
}

pub(crate) async fn sleep_ms(ms: u64) {
    madsim::time::sleep(Duration::from_millis(ms)).await;
}

/// Produces batches of 1..=5 records until the operation budget is spent.
pub async fn producer(cluster: Cluster, config: WorkloadConfig, producer: u32) {
    if config.idempotent && config.in_flight > 1 {
        return pipelined_producer(cluster, config, producer).await;
    }
    let mut seq = 0;
    let mut session = IdempotentSession::default();
    while cluster.take_operation(config.operations) {
        seq += 1;
        if config.idempotent {
            produce_idempotent(&cluster, &config, producer, seq, &mut session).await;
        } else {
            produce_one(&cluster, &config, producer, seq).await;
        }
        sleep_ms(madsim::rand::thread_rng().gen_range(0..5)).await;
    }
}

/// An idempotent producer's identity and next sequence number.
#[derive(Default)]
pub struct IdempotentSession {
    producer_id: Option<i64>,
    next_sequence: i32,
}

/// The refusals after which an idempotent producer starts over with a new producer id.
const SESSION_ENDING: [i16; 3] = [
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    INVALID_PRODUCER_EPOCH,
    UNKNOWN_PRODUCER_ID,
];

/// Produces one batch as an idempotent producer: a batch that gets no answer or an error (it may
/// or may not be in the log) is sent again, same producer id and sequence, until it is
/// acknowledged or the operation budget runs out; the broker must not write it twice (the
/// `idempotence` checker). A refusal that ends the producer's session (a sequence gap after a
/// power loss took acknowledged batches, say) starts a new producer.
async fn produce_idempotent(
    cluster: &Cluster,
    config: &WorkloadConfig,
    producer: u32,
    seq: u64,
    session: &mut IdempotentSession,
) {
    let (ids, records, codec) = new_records(config, producer, seq);
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 1 && !cluster.take_operation(config.operations) {
            // Given up with the outcome unknown: the sequence is lost, so is the session.
            session.producer_id = None;
            cluster.history.record(Event::ProduceFailed {
                producer,
                seq,
                reason: "given up after retries".to_owned(),
            });
            return;
        }
        let Some(producer_id) = session_id(session).await else {
            sleep_ms(50).await;
            continue;
        };
        let builder = BatchBuilder {
            codec,
            producer_id,
            producer_epoch: 0,
            base_sequence: session.next_sequence,
            ..BatchBuilder::default()
        };
        let batch = builder.build(&records).expect("compress in memory");
        let epoch = cluster.history.epoch();
        match cluster.produce(batch).await {
            Some(Ok(base)) => {
                let upto = base + ids.len() as u64;
                session.next_sequence = session.next_sequence.wrapping_add(ids.len() as i32);
                cluster.history.record(Event::Acked { base, ids, epoch });
                cluster.note_durable(upto, epoch);
                return;
            }
            Some(Err(ProduceError::Code(code))) if SESSION_ENDING.contains(&code) => {
                // Refused, so not written: a new producer sends it again.
                session.producer_id = None;
            }
            // Any other error (a storage error: the batch may be in the log though its flush
            // failed) is retried as it is, as Kafka clients retry retriable errors.
            Some(Err(_)) | None => sleep_ms(madsim::rand::thread_rng().gen_range(10..100)).await,
        }
    }
}

/// The session's producer id, asking the broker for one when it has none.
/// One batch of a pipelined idempotent producer.
struct InFlight {
    seq: u64,
    /// Empty once acknowledged.
    ids: Vec<RecordId>,
    records: Vec<NewRecord>,
    codec: Codec,
    /// Its first sequence number under the current producer id.
    sequence: i32,
    /// Some attempt got no answer or an error that leaves it unknown whether it was written.
    outcome_unknown: bool,
    sent: bool,
}

/// An idempotent producer with up to `in_flight` batches unacknowledged at once, as librdkafka
/// sends (max.in.flight 5): each round sends every unacknowledged batch on its own connection,
/// all at once with a little jitter, so they reach the broker in any order and retries overtake
/// the batches before them; answers are lost on the wire when the broker dies. A batch answered
/// OUT_OF_ORDER_SEQUENCE_NUMBER while one before it is unacknowledged is only early, and is
/// sent again; at the head of the window it means the broker lost acknowledged batches (a power
/// loss), and the producer starts over with a new producer id: batches refused every time are
/// sent again under it, batches whose outcome is unknown are given up (a real client reports
/// them failed), so no record is resent after it may have been written under the old id.
async fn pipelined_producer(cluster: Cluster, config: WorkloadConfig, producer: u32) {
    let mut seq = 0;
    let mut session = IdempotentSession::default();
    let mut window: Vec<InFlight> = Vec::new();
    loop {
        while window.len() < config.in_flight as usize && cluster.take_operation(config.operations)
        {
            seq += 1;
            let (ids, records, codec) = new_records(&config, producer, seq);
            window.push(InFlight {
                seq,
                ids,
                records,
                codec,
                sequence: 0,
                outcome_unknown: false,
                sent: false,
            });
        }
        if window.is_empty() {
            return;
        }
        // A round that sends batches again costs an operation; out of budget, they are given up.
        let resending = window.iter().any(|b| b.sent);
        if resending && !cluster.take_operation(config.operations) {
            for batch in window.iter().filter(|b| !b.ids.is_empty()) {
                cluster.history.record(Event::ProduceFailed {
                    producer,
                    seq: batch.seq,
                    reason: "given up after retries".to_owned(),
                });
            }
            return;
        }
        let Some(producer_id) = session_id(&mut session).await else {
            sleep_ms(50).await;
            continue;
        };
        // Sequences run on from the last acknowledged batch; a new producer id numbers from 0.
        let mut next = session.next_sequence;
        for batch in &mut window {
            batch.sequence = next;
            next = next.wrapping_add(batch.records.len() as i32);
        }
        let epoch = cluster.history.epoch();
        let sends: Vec<_> = window
            .iter_mut()
            .map(|batch| {
                if batch.ids.is_empty() {
                    return None;
                }
                batch.sent = true;
                let built = BatchBuilder {
                    codec: batch.codec,
                    producer_id,
                    producer_epoch: 0,
                    base_sequence: batch.sequence,
                    ..BatchBuilder::default()
                }
                .build(&batch.records)
                .expect("compress in memory");
                let cluster = cluster.clone();
                let jitter = madsim::rand::thread_rng().gen_range(0..4);
                Some(madsim::task::spawn(async move {
                    sleep_ms(jitter).await;
                    cluster.produce(built).await
                }))
            })
            .collect();
        let mut answers = Vec::new();
        for send in sends {
            answers.push(match send {
                Some(send) => Some(send.await.ok().flatten()),
                None => None,
            });
        }
        let mut restart = false;
        let mut all_before_acked = true;
        for (batch, answer) in window.iter_mut().zip(answers) {
            let Some(answer) = answer else {
                continue;
            };
            match answer {
                Some(Ok(base)) => {
                    let ids = std::mem::take(&mut batch.ids);
                    let upto = base + ids.len() as u64;
                    cluster.history.record(Event::Acked { base, ids, epoch });
                    cluster.note_durable(upto, epoch);
                }
                // Early: a batch before it has not been written yet.
                Some(Err(ProduceError::Code(OUT_OF_ORDER_SEQUENCE_NUMBER)))
                    if !all_before_acked => {}
                Some(Err(ProduceError::Code(code))) if SESSION_ENDING.contains(&code) => {
                    restart = true;
                }
                Some(Err(_)) | None => batch.outcome_unknown = true,
            }
            all_before_acked &= batch.ids.is_empty();
        }
        // The acknowledged head of the window is done; the sequences go on after it.
        let head = window.iter().take_while(|b| b.ids.is_empty()).count();
        if head > 0 {
            let last = &window[head - 1];
            session.next_sequence = last.sequence.wrapping_add(last.records.len() as i32);
            window.drain(..head);
        }
        if restart {
            session.producer_id = None;
            window.retain(|batch| {
                if batch.ids.is_empty() {
                    return false;
                }
                if batch.outcome_unknown {
                    cluster.history.record(Event::ProduceFailed {
                        producer,
                        seq: batch.seq,
                        reason: "outcome unknown when the producer started over".to_owned(),
                    });
                    return false;
                }
                true
            });
        } else if window.iter().any(|b| !b.ids.is_empty()) {
            sleep_ms(madsim::rand::thread_rng().gen_range(5..50)).await;
        }
        sleep_ms(madsim::rand::thread_rng().gen_range(0..5)).await;
    }
}

async fn session_id(session: &mut IdempotentSession) -> Option<i64> {
    if session.producer_id.is_none() {
        let mut client = Client::connect(BROKER_ADDRESS).await.ok()?;
        let id = client.init_producer_id().await.ok()?.ok()?;
        session.producer_id = Some(id);
        session.next_sequence = 0;
    }
    session.producer_id
}

/// 1..=5 records naming (producer, seq), and the codec to send them with.
fn new_records(
    config: &WorkloadConfig,
    producer: u32,
    seq: u64,
) -> (Vec<RecordId>, Vec<NewRecord>, Codec) {
    let mut rng = madsim::rand::thread_rng();
    let count = rng.gen_range(1..=5u32);
    let ids: Vec<RecordId> = (0..count)
        .map(|index| RecordId {
            producer,
            seq,
            index,
        })
        .collect();
    let now_ms = crate::clock::elapsed_ms() as i64 + 1_700_000_000_000;
    let records: Vec<NewRecord> = ids
        .iter()
        .map(|&id| NewRecord {
            timestamp: now_ms,
            key: Some(match config.keys {
                Some(keys) => served::key_for(id, keys),
                None => format!("k{}", id.index).into_bytes(),
            }),
            value: Some(value_for(id, rng.gen_range(0..400))),
            headers: vec![],
        })
        .collect();
    let codec = config.codecs[rng.gen_range(0..config.codecs.len())];
    (ids, records, codec)
}

async fn produce_one(cluster: &Cluster, config: &WorkloadConfig, producer: u32, seq: u64) -> bool {
    let (ids, records, codec) = new_records(config, producer, seq);
    let builder = BatchBuilder {
        codec,
        ..BatchBuilder::default()
    };
    let batch = builder.build(&records).expect("compress in memory");
    // An answer belongs to the power epoch in which it was asked for: a reply can still be on
    // the wire when the node that sent it loses power, and what it acknowledged went with it.
    let epoch = cluster.history.epoch();
    let outcome = cluster.produce(batch).await;
    match outcome {
        Some(Ok(base)) => {
            let upto = base + ids.len() as u64;
            cluster.history.record(Event::Acked { base, ids, epoch });
            cluster.note_durable(upto, epoch);
            true
        }
        other => {
            let reason = match other {
                Some(Err(e)) => e.to_string(),
                _ => "no answer".to_owned(),
            };
            cluster.history.record(Event::ProduceFailed {
                producer,
                seq,
                reason,
            });
            false
        }
    }
}

/// The group the simulated consumers join, and the topic whose partition `member` each one
/// commits offsets for.
pub const GROUP: &str = "sim-group";
pub const COMMIT_TOPIC: &str = "sim-commits";
/// Within the broker's group.min.session.timeout.ms.
const SESSION_TIMEOUT_MS: i32 = 6_000;
const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;

/// A consumer-group member: joins the group (and syncs; the leader hands out assignments), then
/// commits ever larger offsets for its own partition of `COMMIT_TOPIC` and heartbeats, rejoining
/// when the broker says its generation is over or forgets it (as after every restart). Each
/// acknowledged commit is recorded for the `offsets` checker.
pub async fn group_member(cluster: Cluster, config: WorkloadConfig, member: u32) {
    let mut member_id = String::new();
    let mut generation = -1;
    let mut joined = false;
    let mut value: i64 = 0;
    while cluster.take_operation(config.operations) {
        sleep_ms(madsim::rand::thread_rng().gen_range(20..150)).await;
        let Ok(mut client) = Client::connect(BROKER_ADDRESS).await else {
            continue;
        };
        if !joined {
            match client
                .join_group(GROUP, &member_id, SESSION_TIMEOUT_MS)
                .await
            {
                Ok(Ok((id, joined_generation, leader))) => {
                    member_id = id;
                    generation = joined_generation;
                    let assignments = if leader == member_id {
                        vec![member_id.clone()]
                    } else {
                        Vec::new()
                    };
                    let synced = client
                        .sync_group(GROUP, &member_id, generation, &assignments)
                        .await;
                    match synced {
                        Ok(Ok(_)) => {
                            joined = true;
                            // As a consumer does on assignment: where did the group get to?
                            if let Some(found) =
                                read_own_commit(&cluster, &mut client, member).await
                            {
                                value = value.max(found);
                            }
                        }
                        Ok(Err(UNKNOWN_MEMBER_ID)) => member_id.clear(),
                        _ => {}
                    }
                }
                Ok(Err((MEMBER_ID_REQUIRED, id))) => member_id = id,
                Ok(Err((UNKNOWN_MEMBER_ID, _))) => member_id.clear(),
                _ => {}
            }
            continue;
        }
        let code = if madsim::rand::thread_rng().gen_bool(0.3) {
            client.heartbeat(GROUP, &member_id, generation).await.ok()
        } else {
            value += 1;
            let epoch = cluster.history.epoch();
            let partition = member as i32;
            match client
                .commit(
                    GROUP,
                    &member_id,
                    generation,
                    COMMIT_TOPIC,
                    partition,
                    value,
                )
                .await
            {
                Ok(Ok(())) => {
                    cluster.history.record(Event::Committed {
                        member,
                        offset: value,
                        epoch,
                    });
                    Some(0)
                }
                Ok(Err(code)) => Some(code),
                Err(_) => None,
            }
        };
        match code {
            Some(UNKNOWN_MEMBER_ID) => {
                joined = false;
                member_id.clear();
            }
            Some(ILLEGAL_GENERATION | REBALANCE_IN_PROGRESS) => joined = false,
            _ => {}
        }
    }
}

/// Reads the member's committed offset and records it, unless a power loss came between the
/// question and the answer (then the answer's epoch is unknown).
async fn read_own_commit(cluster: &Cluster, client: &mut Client, member: u32) -> Option<i64> {
    let epoch = cluster.history.epoch();
    let found = client
        .committed(GROUP, COMMIT_TOPIC, member as i32)
        .await
        .ok()?
        .ok()?;
    if cluster.history.epoch() == epoch {
        cluster.history.record(Event::CommittedRead {
            member,
            offset: Some(found),
            epoch,
        });
    }
    Some(found)
}

/// After the heal: the committed offset of each member's partition, as the broker reports it.
pub async fn read_committed(cluster: &Cluster, config: &WorkloadConfig) {
    for member in 0..config.group_members {
        let mut found = None;
        for _ in 0..50 {
            if let Ok(mut client) = Client::connect(BROKER_ADDRESS).await {
                found = read_own_commit(cluster, &mut client, member).await;
                if found.is_some() {
                    break;
                }
            }
            sleep_ms(100).await;
        }
        if found.is_none() {
            cluster.history.record(Event::CommittedRead {
                member,
                offset: None,
                epoch: cluster.history.epoch(),
            });
        }
    }
}

/// Reads forward from offset 0, following the log start when retention moves it, and checks
/// every reply with the `served` checker.
pub async fn reader(cluster: Cluster, config: WorkloadConfig, reader: u32) {
    let mut cursor = 0;
    let mut session = FetchSession::default();
    while cluster.take_operation(config.operations) {
        let epoch = cluster.history.epoch();
        let read_faults_before = cluster.disk.fault_counts().read_faults();
        let answer = cluster.fetch(cursor, Some(&mut session)).await;
        cursor = match answer {
            Some(Ok(fetched)) => follow(&cluster, &config, reader, cursor, &fetched, epoch),
            Some(Err(FetchError::OutOfRange {
                log_start,
                next_offset,
            })) if log_start <= next_offset => cursor.clamp(log_start, next_offset),
            Some(Err(FetchError::OutOfRange {
                log_start,
                next_offset,
            })) => {
                let message = format!(
                    "fetch at {cursor}: the log starts at {log_start}, past its end {next_offset}"
                );
                cluster.history.record(Event::Violation {
                    checker: "served",
                    message,
                });
                cursor
            }
            Some(Err(FetchError::Corrupt(reason))) => {
                // No read fault fired during this fetch, so the corruption is stored: the log
                // kept a batch that recovery (or an append) should never have kept.
                if cluster.disk.fault_counts().read_faults() == read_faults_before {
                    let message = format!(
                        "reader {reader}: fetch at {cursor} found stored corruption with no read fault to blame: {reason}"
                    );
                    cluster.history.record(Event::Violation {
                        checker: "served",
                        message,
                    });
                }
                cursor
            }
            _ => cursor,
        };
        sleep_ms(madsim::rand::thread_rng().gen_range(1..10)).await;
    }
}

async fn fetch(mailbox: &Mailbox, offset: u64) -> Option<Result<Fetched, FetchError>> {
    call(mailbox, |reply| Request::Fetch {
        offset,
        bytes_max: FETCH_BYTES_MAX,
        reply,
    })
    .await
}

/// Records what a fetch served and returns the next offset to read.
fn follow(
    cluster: &Cluster,
    config: &WorkloadConfig,
    reader: u32,
    cursor: u64,
    fetched: &Fetched,
    epoch: u64,
) -> u64 {
    let damaged = cluster.history.damaged();
    let served = match served::check_fetch(cursor, &fetched.bytes, config.keys, &damaged) {
        Ok(served) => served,
        Err(violation) => {
            cluster.history.record(Event::Violation {
                checker: violation.checker,
                message: violation.message,
            });
            return cursor;
        }
    };
    for &(offset, id) in &served.records {
        cluster.history.record(Event::Read {
            reader,
            offset,
            id,
            epoch,
        });
    }
    let next = served.next_offset.unwrap_or(cursor).max(cursor);
    if next > cursor {
        cluster.note_durable(next, epoch);
    }
    next
}

/// Injects faults at random intervals until the fault budget of operations is spent.
pub async fn faults(cluster: Cluster, config: WorkloadConfig, seed_rng: u64) {
    let mut disk_rng = SimRng::new(seed_rng);
    while cluster.operations_done() < config.fault_operations {
        let wait = madsim::rand::thread_rng().gen_range(1..=2 * config.fault_interval_ms_mean);
        sleep_ms(wait).await;
        let choice = madsim::rand::thread_rng().gen_range(0..100);
        // The compaction workload turns a fifth of its faults into a power loss that lands in
        // the middle of whatever the node is doing, a compaction swap included.
        if config.keys.is_some() && madsim::rand::thread_rng().gen_bool(0.2) {
            dying_power_loss(&cluster, &config, &mut disk_rng).await;
            continue;
        }
        match choice {
            0..=26 => crash(&cluster).await,
            27..=29 => misdirected_write(&cluster, &config, &mut disk_rng).await,
            30..=54 => power_loss(&cluster, &mut disk_rng).await,
            55..=69 => clean_restart(&cluster).await,
            70..=79 => restart_into_faults(&cluster, &config, &mut disk_rng).await,
            80..=84 => rot_at_rest(&cluster, &config, &mut disk_rng).await,
            85..=89 => failed_syncs_then_power_loss(&cluster, &mut disk_rng).await,
            _ => {
                disk_fault_burst(&cluster, &config).await;
                // End one burst in three with a power loss and one in three with a crash, at
                // once: the node gets no fault-free moment to sync what failed fsyncs left dirty.
                match madsim::rand::thread_rng().gen_range(0..3) {
                    0 => power_loss(&cluster, &mut disk_rng).await,
                    1 => crash(&cluster).await,
                    _ => {}
                }
            }
        }
    }
}

async fn crash(cluster: &Cluster) {
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cluster.disk.crash();
    cluster.history.record(Event::Crash);
    restart_after_downtime(cluster).await;
}

async fn power_loss(cluster: &Cluster, disk_rng: &mut SimRng) {
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cut_power(cluster, disk_rng);
    restart_after_downtime(cluster).await;
}

/// The power goes. First the history learns what the partition's checkpoint on the platter
/// claims is durable (its recovery point), so that every acknowledged record below it is held
/// to survive, under every flush policy: a log that checkpointed more than it synced is caught.
fn cut_power(cluster: &Cluster, disk_rng: &mut SimRng) {
    let checkpoint = cluster
        .partition_dir
        .join(keel::log::checkpoint::CHECKPOINT_FILE);
    let claimed = cluster
        .disk
        .durable_bytes(&checkpoint)
        .and_then(|bytes| keel::log::checkpoint::decode(&bytes));
    if let Some(claimed) = claimed {
        cluster.history.record(Event::Flushed {
            upto: claimed.recovery_point,
            epoch: cluster.history.epoch(),
        });
    }
    cluster.disk.power_loss(disk_rng);
    cluster.history.power_loss();
}

/// A window aimed at (in the spirit of FoundationDB's BUGGIFY): every sync fails for a moment,
/// then the power goes before any sync succeeds again. Whatever was acknowledged as durable in
/// that moment (a commit or an `always` produce whose flush failed) is lost, and the checkers
/// see it; with faults at random this needs an EIO and a power loss to fall together by chance.
async fn failed_syncs_then_power_loss(cluster: &Cluster, disk_rng: &mut SimRng) {
    let failing = FaultConfig {
        eio: 1.0,
        ..FaultConfig::default()
    };
    cluster.disk.set_faults(failing);
    cluster.history.record(Event::DiskFaults { on: true });
    sleep_ms(madsim::rand::thread_rng().gen_range(1..40)).await;
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cut_power(cluster, disk_rng);
    cluster.disk.set_faults(FaultConfig::default());
    cluster.history.record(Event::DiskFaults { on: false });
    restart_after_downtime(cluster).await;
}

/// Rot at rest: one bit of a flushed batch of the partition's log flips on the platter for good
/// (latent corruption the drive does not report). The batch is recorded as damaged, its records
/// truly gone; everything else must stay readable (keel skips exactly the damaged batch). Half
/// the time the power then goes, so that the rotten block is read from the platter.
async fn rot_at_rest(cluster: &Cluster, config: &WorkloadConfig, disk_rng: &mut SimRng) {
    let mut rng = madsim::rand::thread_rng();
    let Some(segment) = flushed_segment(cluster, config.keys.is_some()) else {
        return;
    };
    let agreed = segment.agreed();
    if agreed.is_empty() {
        return;
    }
    let (position, total, first, last) = agreed[rng.gen_range(0..agreed.len())];
    let at = position + rng.gen_range(0..total);
    if cluster.disk.rot_at_rest(&segment.path, at).unwrap_or(false) {
        cluster.history.record(Event::Damaged {
            first,
            last,
            records: segment.records(position, total),
        });
    }
    power_loss_half_the_time(cluster, disk_rng).await;
}

/// A misdirected write: a block of the partition's flushed log is overwritten on the platter
/// with the bytes of another block of its segments (a write meant for there landed here). The
/// block may then hold whole batches that verify but belong at other offsets: keel must tell
/// them from the batches it lost, which are recorded as damaged. Half the time the power then
/// goes, so that the block is read from the platter.
async fn misdirected_write(cluster: &Cluster, config: &WorkloadConfig, disk_rng: &mut SimRng) {
    let mut rng = madsim::rand::thread_rng();
    let Some(segment) = flushed_segment(cluster, config.keys.is_some()) else {
        return;
    };
    // A block wholly inside the verified prefix whose batches the platter and the page cache
    // agree on, so that the offsets it takes are known.
    let agreed = segment.agreed();
    if agreed.is_empty() {
        return;
    }
    let prefix_end = segment
        .batches
        .last()
        .map_or(0, |&(position, total, _, _)| position + total);
    let (position, total, _, _) = agreed[rng.gen_range(0..agreed.len())];
    let block = ((position + rng.gen_range(0..total)) / crate::disk::BLOCK as u64) as usize;
    let (block_start, block_end) = (
        (block * crate::disk::BLOCK) as u64,
        ((block + 1) * crate::disk::BLOCK) as u64,
    );
    let overlapping: Vec<_> = segment
        .batches
        .iter()
        .filter(|&&(position, total, _, _)| position < block_end && position + total > block_start)
        .copied()
        .collect();
    if block_end.min(segment.durable_len) > prefix_end
        || overlapping.iter().any(|batch| !agreed.contains(batch))
    {
        return;
    }
    let logs = segment_files(cluster);
    let source = &logs[rng.gen_range(0..logs.len())];
    let source_blocks = cluster
        .disk
        .durable_bytes(source)
        .map_or(0, |bytes| bytes.len().div_ceil(crate::disk::BLOCK));
    if source_blocks == 0 {
        return;
    }
    let source_block = rng.gen_range(0..source_blocks);
    if (source == &segment.path && source_block == block)
        || !cluster
            .disk
            .misdirect(&segment.path, block, source, source_block)
            .unwrap_or(false)
    {
        return;
    }
    for (position, total, first, last) in overlapping {
        cluster.history.record(Event::Damaged {
            first,
            last,
            records: segment.records(position, total),
        });
    }
    power_loss_half_the_time(cluster, disk_rng).await;
}

async fn power_loss_half_the_time(cluster: &Cluster, disk_rng: &mut SimRng) {
    if madsim::rand::thread_rng().gen_bool(0.5) {
        cluster.handle.kill(cluster.node_id);
        cluster.mailbox.clear();
        cut_power(cluster, disk_rng);
        restart_after_downtime(cluster).await;
    }
}

/// The partition's segment files whose names are durable.
fn segment_files(cluster: &Cluster) -> Vec<std::path::PathBuf> {
    cluster
        .disk
        .durable_list_all()
        .into_iter()
        .filter(|p| p.parent() == Some(&cluster.partition_dir))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect()
}

/// One segment file picked at random, with what its platter and page cache hold.
struct FlushedSegment {
    path: std::path::PathBuf,
    durable_len: u64,
    /// The verified batches at the start of the platter's bytes (see `intact_batches`).
    batches: Vec<(u64, u64, u64, u64)>,
    /// The same walk over the page cache's bytes.
    in_cache: Vec<(u64, u64, u64, u64)>,
    durable: Vec<u8>,
    cached: Vec<u8>,
}

impl FlushedSegment {
    /// The batches the platter and the page cache agree on, found at the same place by walks
    /// over both: the offsets that damage there takes are the ones the log holds there.
    fn agreed(&self) -> Vec<(u64, u64, u64, u64)> {
        self.batches
            .iter()
            .filter(|b| self.in_cache.contains(b))
            .filter(|&&(position, total, _, _)| {
                let range = position as usize..(position + total) as usize;
                self.durable.get(range.clone()) == self.cached.get(range)
            })
            .copied()
            .collect()
    }

    /// The records of the platter's batch at `position` (`total` bytes), by offset.
    fn records(&self, position: u64, total: u64) -> Vec<(u64, crate::history::RecordId)> {
        let batch = &self.durable[position as usize..(position + total) as usize];
        keel::log::batch::decode_records(batch)
            .into_iter()
            .flatten()
            .filter_map(|record| {
                let id = crate::checkers::served::parse_value(
                    record.value.as_deref().unwrap_or_default(),
                )?;
                Some((record.offset as u64, id))
            })
            .collect()
    }
}

/// A segment file picked at random whose platter bytes verify to their end, so that damage
/// done to it is the only damage in it. Two damaged ranges close together can cost the batches
/// between them: a batch whose successor's header is damaged cannot be told from a batch inside
/// a record value, and keel does not take it (nor does the harness make that case).
fn flushed_segment(cluster: &Cluster, holes: bool) -> Option<FlushedSegment> {
    let logs = segment_files(cluster);
    if logs.is_empty() {
        return None;
    }
    let path = logs[madsim::rand::thread_rng().gen_range(0..logs.len())].clone();
    let durable = cluster.disk.durable_bytes(&path)?;
    let cached = cluster.disk.cached_bytes(&path)?;
    let batches = intact_batches(&durable, holes);
    let verified_end = batches
        .last()
        .map_or(0, |&(position, total, _, _)| position + total);
    if verified_end != durable.len() as u64 {
        return None;
    }
    Some(FlushedSegment {
        durable_len: durable.len() as u64,
        batches,
        in_cache: intact_batches(&cached, holes),
        path,
        durable,
        cached,
    })
}

/// The largest jump in offsets the harness believes between batches of a compacted segment
/// (runs write far fewer records).
const HOLE_MAX: u64 = 1 << 20;

/// The batches at the start of a segment file's bytes that verify, as (position, bytes, first
/// offset, last offset).
fn intact_batches(bytes: &[u8], holes: bool) -> Vec<(u64, u64, u64, u64)> {
    let mut batches: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut position = 0;
    while let Ok(header) = keel::log::batch::BatchHeader::parse(&bytes[position..]) {
        let Some(total) = header.total_bytes() else {
            break;
        };
        let Some(batch) = bytes.get(position..position + total) else {
            break;
        };
        if header.base_offset < 0 || !keel::log::batch::crc_ok(batch, &header) {
            break;
        }
        // The CRC does not cover the base offset: a batch whose offsets do not follow the last
        // one's is damaged too (a compacted segment may skip offsets, not go back).
        let base = header.base_offset as u64;
        let follows = batches.last().is_none_or(|&(_, _, _, last)| {
            base == last + 1 || (holes && base > last && base - last < HOLE_MAX)
        });
        if !follows {
            break;
        }
        batches.push((
            position as u64,
            total as u64,
            header.base_offset as u64,
            header.last_offset() as u64,
        ));
        position += total;
    }
    batches
}

/// Syncs start failing after a few more (the machine is dying), the node keeps working for a
/// moment, then the power goes: a multi-step operation such as a compaction swap is cut after a
/// chosen number of durable steps, and its unsynced renames partly survive.
async fn dying_power_loss(cluster: &Cluster, config: &WorkloadConfig, disk_rng: &mut SimRng) {
    let mut rng = madsim::rand::thread_rng();
    cluster.disk.fail_syncs_after(Some(rng.gen_range(0..12)));
    sleep_ms(rng.gen_range(1..=2 * config.fault_interval_ms_mean.min(200))).await;
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cut_power(cluster, disk_rng);
    cluster.disk.fail_syncs_after(None);
    restart_after_downtime(cluster).await;
}

async fn clean_restart(cluster: &Cluster) {
    let ok = cluster.shutdown().await;
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cluster.disk.crash();
    cluster.history.record(Event::CleanShutdown { ok });
    restart_after_downtime(cluster).await;
}

async fn restart_after_downtime(cluster: &Cluster) {
    sleep_ms(madsim::rand::thread_rng().gen_range(10..300)).await;
    cluster.handle.restart(cluster.node_id);
    cluster.history.record(Event::Restart);
    // Give the node a moment to recover before the next fault.
    sleep_ms(5).await;
    if let Some(keys) = cluster.keys {
        if !cluster.disk.faults_on() {
            check_compaction_now(cluster, keys).await;
        }
    }
}

/// How long the read-back after a restart waits for the node to answer.
const RESTART_CHECK_ATTEMPTS_MAX: u32 = 20;

/// The compaction checker, on the log as it is right after a restart rather than only at the
/// end of the run: while producers keep rewriting every key, a key's latest promised value lost
/// at one restart would by the end look compacted away by a newer one. The acknowledgements
/// judged are those made before the read began; records written during it may only excuse
/// older ones.
async fn check_compaction_now(cluster: &Cluster, keys: u32) {
    let events = cluster.history.events_snapshot();
    let epoch = cluster.history.epoch();
    for _ in 0..RESTART_CHECK_ATTEMPTS_MAX {
        match read_final(cluster, Some(keys)).await {
            Ok(log) => {
                if let Some(violation) = crate::checkers::compaction::check(
                    &events,
                    &log,
                    epoch,
                    cluster.acks_durable,
                    keys,
                ) {
                    cluster.history.record(Event::Violation {
                        checker: violation.checker,
                        message: format!("after a restart: {}", violation.message),
                    });
                }
                return;
            }
            // The node is still opening, or the power epoch moved on: try again shortly.
            Err(_) if cluster.history.epoch() == epoch => sleep_ms(10).await,
            Err(_) => return,
        }
    }
}

/// A crash or a power loss, then a restart while disk faults are on: recovery itself meets
/// failed syncs, torn and refused writes and rotten reads. Opening may fail and is tried again
/// (see `node::open_retrying`); what recovery keeps must still satisfy every checker.
async fn restart_into_faults(cluster: &Cluster, config: &WorkloadConfig, disk_rng: &mut SimRng) {
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    if madsim::rand::thread_rng().gen_bool(0.5) {
        cluster.disk.crash();
        cluster.history.record(Event::Crash);
    } else {
        cut_power(cluster, disk_rng);
    }
    cluster.disk.set_faults(config.disk_faults);
    cluster.history.record(Event::DiskFaults { on: true });
    restart_after_downtime(cluster).await;
    sleep_ms(madsim::rand::thread_rng().gen_range(50..300)).await;
    cluster.disk.set_faults(FaultConfig::default());
    cluster.history.record(Event::DiskFaults { on: false });
}

async fn disk_fault_burst(cluster: &Cluster, config: &WorkloadConfig) {
    cluster.disk.set_faults(config.disk_faults);
    cluster.history.record(Event::DiskFaults { on: true });
    sleep_ms(madsim::rand::thread_rng().gen_range(50..500)).await;
    cluster.disk.set_faults(FaultConfig::default());
    cluster.history.record(Event::DiskFaults { on: false });
}

/// Ends the faults: disk faults off, the node restarted, and one write acknowledged (liveness).
pub async fn heal(cluster: &Cluster, config: &WorkloadConfig) {
    cluster.disk.set_faults(FaultConfig::default());
    cluster.handle.kill(cluster.node_id);
    cluster.mailbox.clear();
    cluster.disk.crash();
    cluster.history.record(Event::Crash);
    cluster.handle.restart(cluster.node_id);
    cluster.history.record(Event::Restart);
    cluster.history.record(Event::Healed);
    let deadline = crate::clock::elapsed_ms() + crate::checkers::liveness::HEALED_ACK_MS_MAX;
    let mut seq = u64::MAX / 2;
    while crate::clock::elapsed_ms() < deadline {
        seq += 1;
        if produce_one(cluster, config, u32::MAX, seq).await {
            return;
        }
        sleep_ms(100).await;
    }
}

/// Reads the whole log back, from its start to its end, through the `served` checker.
pub async fn read_final(cluster: &Cluster, keys: Option<u32>) -> Result<FinalLog, String> {
    let mut final_log = FinalLog::default();
    let mut cursor = 0;
    for _ in 0..FINAL_FETCHES_MAX {
        match cluster.fetch(cursor, None).await {
            Some(Ok(fetched)) => {
                final_log.log_start = fetched.log_start;
                final_log.next_offset = fetched.next_offset;
                if fetched.bytes.is_empty() {
                    if cursor >= fetched.next_offset {
                        return Ok(final_log);
                    }
                    return Err(format!(
                        "empty fetch at {cursor} below the end {}",
                        fetched.next_offset
                    ));
                }
                let damaged = cluster.history.damaged();
                let served = served::check_fetch(cursor, &fetched.bytes, keys, &damaged)
                    .map_err(|v| v.to_string())?;
                for (offset, id) in served.records {
                    final_log.records.insert(offset, id);
                }
                for (base, producer_id, first, last) in served.sequences {
                    final_log.sequences.insert(base, (producer_id, first, last));
                }
                cursor = served.next_offset.unwrap_or(cursor).max(cursor);
            }
            Some(Err(FetchError::OutOfRange { log_start, .. })) if cursor < log_start => {
                cursor = log_start;
            }
            Some(Err(e)) => return Err(format!("final read at {cursor}: {e:?}")),
            None => return Err(format!("final read at {cursor}: the node did not answer")),
        }
    }
    Err("final read did not reach the end of the log".to_owned())
}
