//! The quorum's driver: one task per voter that ticks raft-rs by the clock, steps it with the
//! messages other voters send, takes proposals from `QuorumHandle`s, and sends what each ready
//! pass returns. Messages travel over the `Network` seam on the voters' CONTROLLER listeners,
//! one frame each (a u32 length, then raft's protobuf encoding).
//!
//! Raft tolerates lost messages, so the transport never waits for a slow peer: each peer has a
//! bounded queue, and a message that finds it full is dropped; a connection that fails or stalls
//! past `WRITE_TIMEOUT` is dropped and made again. (madsim's TCP never times out on a clogged
//! link, and a real one can take minutes: the timeouts here are the transport's own.)

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::controller;
use super::image::MetadataImage;
use super::node::{decode_message, encode_message, Committed, ProposeError, Voter};
use super::records::MetadataRecord;
use crate::io::net::{Connection, Listener, Network};
use crate::io::Disk;

/// One tick of raft-rs: elections after 10 to 20 ticks without a leader (1-2 s, KRaft's
/// `controller.quorum.election.timeout.ms` is 1 s), heartbeats every 2.
pub const TICK_MS: u64 = 100;
/// The largest frame a voter accepts (a snapshot of a large cluster's metadata fits).
pub const FRAME_BYTES_MAX: u32 = 64 << 20;
const PEER_QUEUE: usize = 1024;
const INBOUND_QUEUE: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// How long a proposal waits to commit before its proposer is told its outcome is unknown.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the active controller reconciles brokers' liveness with the image.
const RECONCILE_TICKS: u64 = 5;
/// A record the controller proposed is not proposed again for this long (it may be on its way).
const REPROPOSE_TICKS: u64 = 20;

pub struct QuorumConfig {
    pub id: u64,
    /// Every voter's id and CONTROLLER address (host:port), this one's included.
    pub voters: BTreeMap<u64, String>,
    /// The quorum's files (`storage.rs`).
    pub dir: PathBuf,
    pub tick_ms: u64,
    /// broker.session.timeout.ms: a broker the active controller has not heard from for this
    /// long is fenced.
    pub session_timeout_ms: u64,
}

/// What a voter's driver publishes after every change: its term, the leader it knows, and the
/// image as of its last applied entry.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub term: u64,
    pub leader: Option<u64>,
    pub image: Arc<MetadataImage>,
}

/// A voter's state, as its driver sees it.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: u64,
    pub term: u64,
    pub leader: Option<u64>,
    pub image: MetadataImage,
}

/// What a voter's driver saw happen, for an observer (the simulator's history, metrics).
#[derive(Clone, Debug)]
pub enum QuorumEvent {
    BecameLeader { term: u64 },
    Committed(Committed),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalError {
    /// This voter does not lead; the leader it knows of.
    NotLeader(Option<u64>),
    /// Leadership moved, or the proposal timed out, before it committed: it may still commit.
    Unknown(String),
    /// The voter's driver stopped.
    Stopped,
}

enum Command {
    Propose {
        record: MetadataRecord,
        reply: oneshot::Sender<Result<Committed, ProposalError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// Hand leadership to another voter heard from recently; answers whether one was asked.
    StepDown {
        reply: oneshot::Sender<bool>,
    },
}

/// Talks to a running voter.
#[derive(Clone)]
pub struct QuorumHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<View>,
}

impl QuorumHandle {
    /// Proposes `record` and waits until it commits (its `outcome` says whether it applied).
    ///
    /// # Errors
    /// See `ProposalError`.
    pub async fn propose(&self, record: MetadataRecord) -> Result<Committed, ProposalError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Propose { record, reply };
        if self.commands.send(command).await.is_err() {
            return Err(ProposalError::Stopped);
        }
        answer.await.unwrap_or(Err(ProposalError::Stopped))
    }

    /// The voter's latest view (term, leader, image).
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// A receiver of the voter's views, which sees each change.
    pub fn watch(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// If this voter leads, asks raft-rs to hand leadership to another voter it heard from
    /// recently. Answers whether it asked (false when it does not lead or heard from nobody).
    pub async fn step_down(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::StepDown { reply })
            .await
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// The voter's state; `None` once its driver stopped.
    pub async fn status(&self) -> Option<Status> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Status { reply }).await.ok()?;
        answer.await.ok()
    }
}

/// A handle and the receiving end its driver takes.
pub fn channel() -> (QuorumHandle, QuorumCommands) {
    let (commands, receiver) = mpsc::channel(256);
    let (publish, view) = watch::channel(View::default());
    (
        QuorumHandle { commands, view },
        QuorumCommands { receiver, publish },
    )
}

pub struct QuorumCommands {
    receiver: mpsc::Receiver<Command>,
    publish: watch::Sender<View>,
}

struct Pending {
    reply: oneshot::Sender<Result<Committed, ProposalError>>,
    term: u64,
    /// The tick at which the proposer is told the outcome is unknown.
    deadline: u64,
}

/// Runs voter `config.id` until every `QuorumHandle` is dropped (then `Ok`), or until its
/// storage fails (then the error: raft-rs's state may be ahead of the disk, so the voter must
/// be opened again). `listener` is the voter's CONTROLLER listener. `observe` sees every
/// election won and every entry applied.
///
/// # Errors
/// IO errors of the voter's storage, at open or later.
pub async fn run<D, N, R>(
    disk: D,
    rng: R,
    network: N,
    listener: N::Listener,
    config: QuorumConfig,
    commands: QuorumCommands,
    mut observe: impl FnMut(&QuorumEvent) + Send,
) -> io::Result<()>
where
    D: Disk,
    N: Network,
    R: crate::io::Rng,
{
    let ids: Vec<u64> = config.voters.keys().copied().collect();
    let mut voter = crate::io::blocking(|| Voter::open(disk, rng, &config.dir, config.id, &ids))?;
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    // The driver's tasks end with it, however it ends (an abort included).
    let mut tasks = AbortOnDrop(vec![tokio::spawn(accept_loop(listener, inbound_tx))]);
    let mut peers = BTreeMap::new();
    for (&id, address) in &config.voters {
        if id == config.id {
            continue;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        peers.insert(id, tx);
        tasks.0.push(tokio::spawn(peer_loop(
            network.clone(),
            address.clone(),
            rx,
        )));
    }
    let QuorumCommands {
        receiver: mut commands,
        publish,
    } = commands;
    let mut tick = tokio::time::interval(Duration::from_millis(config.tick_ms.max(1)));
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next_proposal = 0u64;
    // Time in ticks: the driver reads no clock of its own.
    let mut ticks = 0u64;
    let timeout_ticks = PROPOSAL_TIMEOUT.as_millis() as u64 / config.tick_ms.max(1);
    let session_ticks = config.session_timeout_ms / config.tick_ms.max(1);
    // The tick each voter was last heard from, and the tick this voter began to lead.
    let mut heard: BTreeMap<u64, u64> = BTreeMap::new();
    let mut leading_since: Option<u64> = None;
    let mut proposed: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut published = (0, 0, None);
    let result = loop {
        tokio::select! {
            _ = tick.tick() => {
                voter.tick();
                ticks += 1;
                if let Some(since) = leading_since.filter(|_| ticks.is_multiple_of(RECONCILE_TICKS)) {
                    let alive = |broker: i32| {
                        let id = broker as u64;
                        id == config.id
                            || heard.get(&id).is_some_and(|&t| t >= since && ticks - t <= session_ticks)
                    };
                    let may_fence = ticks - since >= session_ticks;
                    proposed.retain(|_, &mut at| ticks - at < REPROPOSE_TICKS);
                    for record in controller::reconcile(voter.image(), alive, may_fence) {
                        let bytes = record.encode();
                        if proposed.contains_key(&bytes) {
                            continue;
                        }
                        tracing::info!(voter = config.id, ?record, "the controller proposes");
                        if voter.propose(Vec::new(), &record).is_ok() {
                            proposed.insert(bytes, ticks);
                        }
                    }
                }
                let expired: Vec<u64> = pending
                    .iter()
                    .filter(|(_, p)| p.deadline <= ticks)
                    .map(|(&seq, _)| seq)
                    .collect();
                for seq in expired {
                    let p = pending.remove(&seq).expect("listed");
                    let _ = p.reply.send(Err(ProposalError::Unknown("timed out".into())));
                }
            }
            Some(message) = inbound.recv() => {
                heard.insert(message.from, ticks);
                voter.step(message);
                while let Ok(message) = inbound.try_recv() {
                    heard.insert(message.from, ticks);
                    voter.step(message);
                }
            }
            command = commands.recv() => match command {
                None => break Ok(()),
                Some(Command::Status { reply }) => {
                    let _ = reply.send(Status {
                        id: voter.id(),
                        term: voter.term(),
                        leader: voter.leader(),
                        image: voter.image().clone(),
                    });
                }
                Some(Command::StepDown { reply }) => {
                    let recent = ticks.saturating_sub(2 * super::node::HEARTBEAT_TICKS as u64);
                    let to = heard
                        .iter()
                        .filter(|(&id, &at)| id != config.id && at >= recent && config.voters.contains_key(&id))
                        .map(|(&id, _)| id)
                        .next();
                    let asked = match to {
                        Some(to) if voter.is_leader() => {
                            tracing::info!(voter = config.id, to, "handing leadership over");
                            voter.transfer_leader(to);
                            true
                        }
                        _ => false,
                    };
                    let _ = reply.send(asked);
                }
                Some(Command::Propose { record, reply }) => {
                    next_proposal += 1;
                    let mut context = config.id.to_be_bytes().to_vec();
                    context.extend_from_slice(&next_proposal.to_be_bytes());
                    match voter.propose(context, &record) {
                        Ok(()) => {
                            pending.insert(next_proposal, Pending {
                                reply,
                                term: voter.term(),
                                deadline: ticks + timeout_ticks,
                            });
                        }
                        Err(ProposeError::NotLeader(leader)) => {
                            let _ = reply.send(Err(ProposalError::NotLeader(leader)));
                        }
                        Err(ProposeError::Dropped(reason)) => {
                            let _ = reply.send(Err(ProposalError::Unknown(reason)));
                        }
                    }
                }
            },
        }
        let output = match crate::io::blocking(|| voter.process()) {
            Ok(output) => output,
            Err(e) => break Err(e),
        };
        // Published before any proposer hears its entry committed: what it reads next is an
        // image that holds it.
        let now = (voter.image().applied, voter.term(), voter.leader());
        if now != published {
            published = now;
            publish.send_replace(View {
                term: voter.term(),
                leader: voter.leader(),
                image: Arc::new(voter.image().clone()),
            });
        }
        if let Some(term) = output.became_leader {
            tracing::info!(voter = config.id, term, "became the active controller");
            observe(&QuorumEvent::BecameLeader { term });
        }
        if voter.is_leader() {
            leading_since.get_or_insert(ticks);
        } else {
            leading_since = None;
            proposed.clear();
        }
        for committed in output.committed {
            let ours =
                committed.context.len() == 16 && committed.context[..8] == config.id.to_be_bytes();
            observe(&QuorumEvent::Committed(committed.clone()));
            if ours {
                let seq = u64::from_be_bytes(committed.context[8..].try_into().expect("8"));
                if let Some(p) = pending.remove(&seq) {
                    let _ = p.reply.send(Ok(committed));
                }
            }
        }
        // A proposal made in an earlier term may still commit (the new leader may have it),
        // or may be gone: its proposer is told the outcome is unknown.
        let term = voter.term();
        let stale: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| p.term != term)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in stale {
            let p = pending.remove(&seq).expect("listed");
            let _ = p
                .reply
                .send(Err(ProposalError::Unknown("leadership moved".into())));
        }
        for message in output.messages {
            if let Some(peer) = peers.get(&message.to) {
                let (to, snapshot) = (
                    message.to,
                    message.get_msg_type() == MessageType::MsgSnapshot,
                );
                // A full queue drops the message: Raft retries what matters, and is told of a
                // snapshot's fate (see `Voter::report_snapshot`).
                let queued = peer.try_send(message).is_ok();
                if snapshot {
                    voter.report_snapshot(to, queued);
                }
            }
        }
    };
    drop(tasks);
    result
}

/// Aborts its tasks when dropped: tasks that end with their owner, however it ends.
pub struct AbortOnDrop(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn accept_loop<L: Listener>(listener: L, inbound: mpsc::Sender<Message>) {
    loop {
        match listener.accept().await {
            Ok((connection, peer)) => {
                tokio::spawn(read_loop(connection, peer, inbound.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

async fn read_loop<C: Connection>(mut connection: C, peer: String, inbound: mpsc::Sender<Message>) {
    let mut buffer = Vec::new();
    loop {
        let len = match connection.read_u32().await {
            Ok(len) => len,
            Err(_) => return,
        };
        if len > FRAME_BYTES_MAX {
            tracing::warn!(
                peer,
                len,
                "controller connection: an oversized frame; closing"
            );
            return;
        }
        buffer.resize(len as usize, 0);
        if connection.read_exact(&mut buffer).await.is_err() {
            return;
        }
        match decode_message(&buffer) {
            Ok(message) => {
                // A full queue drops the message; a closed one means the voter stopped, and
                // the peer must find out (by its writes failing) to reach the next one.
                if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(message) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(peer, error = %e, "controller connection: a frame that is not a raft message; closing");
                return;
            }
        }
    }
}

async fn peer_loop<N: Network>(network: N, address: String, mut outbound: mpsc::Receiver<Message>) {
    loop {
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, network.connect(&address)).await;
        let mut connection = match connection {
            Ok(Ok(connection)) => connection,
            _ => {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                // What queued while the peer was unreachable is stale: drop it.
                while outbound.try_recv().is_ok() {}
                continue;
            }
        };
        loop {
            let Some(message) = outbound.recv().await else {
                return;
            };
            let Ok(bytes) = encode_message(&message) else {
                continue;
            };
            let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            let write = async {
                connection.write_all(&frame).await?;
                connection.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    }
}
