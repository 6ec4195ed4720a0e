//! The group coordinator: Kafka's classic consumer group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and the committed offsets of each group.
//!
//! The coordinator is a state machine per group, as in Kafka:
//! - **Empty**: no members (maybe committed offsets). A join starts a rebalance; the first one
//!   waits `group.initial.rebalance.delay.ms` for more members.
//! - **PreparingRebalance**: members (re)join; the join phase ends when every known member has
//!   rejoined, or at the rebalance timeout (members that did not rejoin are removed). Then the
//!   generation goes up, a protocol every member supports is chosen, and the leader gets every
//!   member's subscription.
//! - **CompletingRebalance**: waiting for the leader's SyncGroup with the assignment, which
//!   answers every member's SyncGroup.
//! - **Stable**: members heartbeat; a member whose session times out, a leave, or a join with new
//!   metadata starts the next rebalance.
//!
//! Assignment is the client's (range, roundrobin, cooperative-sticky are client-side assignors):
//! the coordinator passes subscriptions and assignments through as bytes. A stale generation
//! gets ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, heartbeats during a rebalance
//! REBALANCE_IN_PROGRESS, and commits too once the join phase has ended and the assignment is
//! not yet known (a member of the current generation may commit while the join phase runs).
//!
//! Waits (a JoinGroup until the join phase ends, a SyncGroup until the leader's assignment) are
//! oneshot channels held by the member; `tick` (driven by the server's housekeeping) ends join
//! phases at their deadlines and expires sessions. Times are the broker clock's monotonic
//! milliseconds.
//!
//! Committed offsets live here in memory and in `__consumer_offsets` on disk (see
//! `broker::offsets`); the caller writes them to the log while `commit` holds the lock, so the
//! order in memory is the order in the log. Group membership itself is not written: after a
//! restart groups come back Empty with their offsets, and members rejoin (their heartbeats get
//! UNKNOWN_MEMBER_ID).
//!
//! Static membership (KIP-345, group.instance.id, JoinGroup v5+) follows Kafka's
//! GroupCoordinator. A static member joins without the MEMBER_ID_REQUIRED round trip. A new
//! process of a known instance (no member id, same instance id) replaces the old member under a
//! new member id, keeping its assignment and leadership; a Stable group whose protocol would not
//! change does not rebalance, and the returning leader is told it leads only from JoinGroup v9
//! (with skip_assignment), before that it is given the old leader's id so that it does not
//! assign. The old member id is fenced: requests naming the instance with it get
//! FENCED_INSTANCE_ID. Static members are not removed at the rebalance timeout, only when their
//! session expires or by LeaveGroup (by member id, or by instance id from v3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::config::GroupConfig;
use super::offsets::{Committed, GroupOffsets, OffsetKey};

pub use crate::error_codes::{
    FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, GROUP_MAX_SIZE_REACHED, ILLEGAL_GENERATION,
    INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED,
    NONE, NON_EMPTY_GROUP, NOT_COORDINATOR, OFFSET_METADATA_TOO_LARGE, REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID, UNKNOWN_TOPIC_OR_PARTITION,
};
/// Group ids are written into `__consumer_offsets` keys with an i16 length.
pub const GROUP_ID_BYTES_MAX: usize = i16::MAX as usize;

fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && group_id.len() <= GROUP_ID_BYTES_MAX
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a dynamic member without an id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): the answer can tell a static leader to skip the assignment.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader is told the members but must not assign (a static leader that came back
    /// while the group is Stable; JoinGroup v9+).
    pub skip_assignment: bool,
}

impl JoinResponse {
    pub fn error(error: i16, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: i16) -> SyncResponse {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Who a SyncGroup, Heartbeat, OffsetCommit or LeaveGroup comes from: a member id, the
/// instance id of a static member (SyncGroup v3+, Heartbeat v3+, OffsetCommit v7+), and the
/// generation it believes in.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
}

impl<'a> Caller<'a> {
    /// A member without an instance id.
    pub fn dynamic(member_id: &'a str, generation: i32) -> Caller<'a> {
        Caller {
            member_id,
            instance_id: None,
            generation,
        }
    }
}

/// An answer now, or one to wait for.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heard_ms: i64,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids given with MEMBER_ID_REQUIRED and the time by which they must join.
    pending: BTreeMap<String, i64>,
    rebalance_deadline_ms: i64,
    initial_delay_until_ms: Option<i64>,
    offsets: GroupOffsets,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: None,
            offsets: BTreeMap::new(),
        }
    }

    /// Protocol names every member supports.
    fn candidates(&self) -> BTreeSet<&str> {
        common_protocols(self.members.values()).unwrap_or_default()
    }

    /// Whether a joining member's protocols fit the group: a protocol type the group has, and a
    /// protocol every other member supports too.
    fn accepts(&self, request: &JoinRequest) -> bool {
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return false;
        }
        let others = self
            .members
            .iter()
            .filter(|(id, _)| **id != request.member_id)
            .map(|(_, m)| m);
        let Some(common) = common_protocols(others) else {
            return true;
        };
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != request.protocol_type)
        {
            return false;
        }
        request
            .protocols
            .iter()
            .any(|(name, _)| common.contains(name.as_str()))
    }

    fn prepare_rebalance(&mut self, now_ms: i64, config: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncResponse::error(REBALANCE_IN_PROGRESS));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        let timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.initial_delay_until_ms = was_empty
            .then(|| (now_ms + config.initial_rebalance_delay_ms).min(self.rebalance_deadline_ms));
    }

    fn try_complete_join(&mut self, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delayed = self
            .initial_delay_until_ms
            .is_some_and(|until| now_ms < until);
        let deadline = now_ms >= self.rebalance_deadline_ms;
        if !(all_joined && !delayed || deadline) {
            return;
        }
        if deadline {
            // As in Kafka (KIP-345): only dynamic members are removed for not rejoining in
            // time. A static member stays, with its last subscription, until its session
            // expires: a process restarting under the same instance id takes its place.
            let missing: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.join_waiter.is_none() && m.instance_id.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            for id in missing {
                tracing::info!(member = %id, "member did not rejoin before the rebalance timeout; removed");
                self.members.remove(&id);
            }
            self.pending.clear();
            if !self.members.is_empty() && self.members.values().all(|m| m.join_waiter.is_none()) {
                // Only static members that have not rejoined: nobody could lead. Wait another
                // rebalance timeout; their sessions expire meanwhile unless they come back.
                tracing::warn!(
                    members = self.members.len(),
                    "no member rejoined before the rebalance timeout; waiting longer"
                );
                self.rebalance_deadline_ms = now_ms + self.rebalance_timeout_ms();
                return;
            }
        }
        self.complete_join(now_ms);
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// The protocol the group would choose now: each member votes for its most preferred
    /// protocol that every member supports; most votes win (ties: the first name).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        votes
            .iter()
            .max_by_key(|(name, count)| (**count, std::cmp::Reverse(*name)))
            .map(|(name, _)| (*name).to_owned())
    }

    fn complete_join(&mut self, now_ms: i64) {
        self.generation += 1;
        self.initial_delay_until_ms = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        // The leader gets the subscriptions and assigns, so it must be a member that rejoined
        // (a static member kept without rejoining gets no answer).
        let joined = |id: &String| {
            self.members
                .get(id)
                .is_some_and(|m| m.join_waiter.is_some())
        };
        if !self.leader.as_ref().is_some_and(joined) {
            self.leader = self.members.keys().find(|id| joined(id)).cloned();
        }
        assert!(self.leader.is_some(), "a member rejoined, so one leads");
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster = self.roster(&protocol);
        tracing::info!(generation = self.generation, members = roster.len(), %protocol, %leader, "group rebalanced");
        for (id, member) in &mut self.members {
            member.last_heard_ms = now_ms;
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinResponse {
                    error: NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
    }

    /// Every member with its metadata for `protocol`, as the leader is told.
    fn roster(&self, protocol: &str) -> Vec<JoinedMember> {
        self.members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn current_join(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        JoinResponse {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: Some(protocol.clone()),
            members: if member_id == leader {
                self.roster(&protocol)
            } else {
                Vec::new()
            },
            leader,
            member_id: member_id.to_owned(),
            skip_assignment: false,
        }
    }

    /// Removes members; the group rebalances without them.
    fn remove_members(&mut self, ids: &[String], now_ms: i64, config: &GroupConfig) {
        let mut removed = false;
        for id in ids {
            if let Some(member) = self.members.remove(id) {
                removed = true;
                if let Some(waiter) = member.join_waiter {
                    let _ = waiter.send(JoinResponse::error(UNKNOWN_MEMBER_ID, id));
                }
                if let Some(waiter) = member.sync_waiter {
                    let _ = waiter.send(SyncResponse::error(UNKNOWN_MEMBER_ID));
                }
            }
        }
        if !removed {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, config)
            }
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
        if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
            self.initial_delay_until_ms = None;
        }
        self.try_complete_join(now_ms);
    }

    /// The member that holds static `instance_id` now.
    fn static_member(&self, instance_id: &str) -> Option<&String> {
        let mut holders = self
            .members
            .iter()
            .filter(|(_, m)| m.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id);
        let holder = holders.next();
        debug_assert!(holders.next().is_none(), "two members hold {instance_id}");
        holder
    }

    /// Kafka's validateCurrentMember: a request naming an instance id must come from the
    /// member that holds it now (else FENCED_INSTANCE_ID: a newer process of that instance took
    /// its place, or UNKNOWN_MEMBER_ID when nobody holds it), and the member must be known.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance_id) = instance_id {
            match self.static_member(instance_id) {
                Some(holder) if holder != member_id => {
                    tracing::info!(member = member_id, instance = instance_id, holder = %holder, "fenced: a newer member holds this instance id");
                    return Err(FENCED_INSTANCE_ID);
                }
                Some(_) => {}
                None => return Err(UNKNOWN_MEMBER_ID),
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// Records a join's details in the member `member_id`, adding it when new.
    /// The instance id is set when the member is added and never changes (a rejoin of a known
    /// static member carries the same one: `validate_member` checked it).
    fn update_member(&mut self, member_id: &str, request: JoinRequest, now_ms: i64) {
        let member = self
            .members
            .entry(member_id.to_owned())
            .or_insert_with(|| Member {
                instance_id: request.instance_id.clone(),
                client_id: String::new(),
                client_host: String::new(),
                session_timeout_ms: 0,
                rebalance_timeout_ms: 0,
                protocol_type: String::new(),
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heard_ms: now_ms,
                join_waiter: None,
                sync_waiter: None,
            });
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
        member.protocol_type = request.protocol_type;
        member.protocols = request.protocols;
        member.last_heard_ms = now_ms;
    }

    /// Makes `member_id` wait for the end of the join phase, starting one if none runs.
    fn await_join(
        &mut self,
        member_id: &str,
        now_ms: i64,
        config: &GroupConfig,
    ) -> Reply<JoinResponse> {
        let (sender, receiver) = oneshot::channel();
        let member = self.members.get_mut(member_id).expect("updated before");
        if let Some(previous) = member.join_waiter.replace(sender) {
            let _ = previous.send(JoinResponse::error(UNKNOWN_MEMBER_ID, member_id));
        }
        let rebalance_timeout_ms = i64::from(member.rebalance_timeout_ms);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms, config);
        } else {
            let timeout = now_ms + rebalance_timeout_ms;
            self.rebalance_deadline_ms = self.rebalance_deadline_ms.max(timeout);
        }
        self.try_complete_join(now_ms);
        Reply::Later(receiver)
    }

    /// A new member joins (dynamic with its given id, or static under a new instance id).
    fn add_member(
        &mut self,
        member_id: &str,
        request: JoinRequest,
        now_ms: i64,
        config: &GroupConfig,
    ) -> Reply<JoinResponse> {
        if self.members.len() >= config.members_max {
            return Reply::Now(JoinResponse::error(GROUP_MAX_SIZE_REACHED, member_id));
        }
        assert!(!self.members.contains_key(member_id), "a new member");
        self.update_member(member_id, request, now_ms);
        self.await_join(member_id, now_ms, config)
    }

    /// Moves the static member `old_id` to `new_id` (KIP-345): a new process of the same
    /// instance took its place. It keeps the assignment and, if it led, the leadership. The old
    /// id is fenced: a join or sync it waits for is answered FENCED_INSTANCE_ID now, and its
    /// later requests get FENCED_INSTANCE_ID from `validate_member`.
    fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        let mut member = self
            .members
            .remove(old_id)
            .expect("the instance's holder is a member");
        assert!(
            member.instance_id.is_some(),
            "only static members are replaced"
        );
        assert!(!self.members.contains_key(new_id), "a new member id is new");
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResponse::error(FENCED_INSTANCE_ID, old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncResponse::error(FENCED_INSTANCE_ID));
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        self.members.insert(new_id.to_owned(), member);
    }

    /// A static member known by its instance id joins with no member id: a restarted process
    /// (Kafka's updateStaticMemberAndRebalance). It replaces the old member under `new_id`.
    /// A Stable group whose protocol would not change does not rebalance: the member gets the
    /// current generation and, from its SyncGroup, the old member's assignment.
    fn rejoin_static_member(
        &mut self,
        old_id: &str,
        new_id: &str,
        request: JoinRequest,
        now_ms: i64,
        config: &GroupConfig,
    ) -> Reply<JoinResponse> {
        assert_ne!(
            self.state,
            GroupState::Empty,
            "a group with members is not Empty"
        );
        let previous_leader = self.leader.clone().unwrap_or_default();
        let supports_skip_assignment = request.supports_skip_assignment;
        self.replace_static_member(old_id, new_id);
        self.update_member(new_id, request, now_ms);
        tracing::info!(
            old = old_id,
            new = new_id,
            state = self.state.name(),
            "static member rejoined under a new member id"
        );
        if self.state != GroupState::Stable || self.select_protocol() != self.protocol {
            // CompletingRebalance: the leader may be assigning to the old id, and the new one
            // would get nothing; PreparingRebalance: it just joins the phase.
            return self.await_join(new_id, now_ms, config);
        }
        let is_leader = self.leader.as_deref() == Some(new_id);
        let mut answer = self.current_join(new_id);
        if supports_skip_assignment {
            // JoinGroup v9+: the leader learns it leads (and the members, to watch for metadata
            // changes) but does not assign: a Stable group would not pass a new assignment on.
            answer.skip_assignment = is_leader;
        } else {
            // Before v9 the old leader id keeps a returning leader from assigning.
            answer.members.clear();
            answer.leader = previous_leader;
        }
        assert!(
            answer.members.is_empty() || answer.skip_assignment,
            "no assignment in a Stable group"
        );
        Reply::Now(answer)
    }
}

/// The protocol names all of `members` support; `None` when there are none.
fn common_protocols<'a>(
    mut members: impl Iterator<Item = &'a Member>,
) -> Option<BTreeSet<&'a str>> {
    let names = |m: &'a Member| -> BTreeSet<&'a str> {
        m.protocols.iter().map(|(n, _)| n.as_str()).collect()
    };
    let first = names(members.next()?);
    Some(members.fold(first, |common, m| {
        common.intersection(&names(m)).copied().collect()
    }))
}

/// One commit's offsets, checked and ready for the log.
pub struct CommitBatch {
    pub group_id: String,
    pub entries: Vec<(OffsetKey, Committed)>,
}

pub struct Coordinator {
    config: GroupConfig,
    groups: Mutex<BTreeMap<String, Group>>,
    /// One lock per group that has committed, held across a commit's (or a deletion's) write
    /// to `__consumer_offsets` and its application in memory: writes of one group reach the log
    /// in the order memory sees them, while other groups' commits go on during the write's
    /// fsync. Lock order: a group's commit lock, then `groups`.
    commit_locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: Mutex::new(BTreeMap::new()),
            commit_locks: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The commit lock of `group_id` (made on first use).
    fn commit_lock(&self, group_id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.commit_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(group_id.to_owned()).or_default().clone()
    }

    /// Forgets a deleted group's commit lock unless someone else holds it.
    fn drop_commit_lock(&self, group_id: &str) {
        let mut locks = self.commit_locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(group_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(group_id);
        }
    }

    /// Installs the offsets read back from `__consumer_offsets` at start.
    pub fn load(&self, offsets: BTreeMap<String, GroupOffsets>) {
        let mut groups = self.lock();
        for (group_id, offsets) in offsets {
            if offsets.is_empty() {
                continue;
            }
            groups.entry(group_id).or_insert_with(Group::new).offsets = offsets;
        }
    }

    pub fn join(
        &self,
        request: JoinRequest,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> Reply<JoinResponse> {
        let config = &self.config;
        if !valid_group_id(&request.group_id) {
            return Reply::Now(JoinResponse::error(INVALID_GROUP_ID, &request.member_id));
        }
        if request.session_timeout_ms < config.session_timeout_min_ms
            || request.session_timeout_ms > config.session_timeout_max_ms
        {
            return Reply::Now(JoinResponse::error(
                INVALID_SESSION_TIMEOUT,
                &request.member_id,
            ));
        }
        let mut groups = self.lock();
        if !request.member_id.is_empty() && !groups.contains_key(&request.group_id) {
            return Reply::Now(JoinResponse::error(UNKNOWN_MEMBER_ID, &request.member_id));
        }
        let group = groups
            .entry(request.group_id.clone())
            .or_insert_with(Group::new);
        if !group.accepts(&request) {
            return Reply::Now(JoinResponse::error(
                INCONSISTENT_GROUP_PROTOCOL,
                &request.member_id,
            ));
        }
        if request.member_id.is_empty() {
            let member_id = new_member_id();
            let instance_holder = request
                .instance_id
                .as_deref()
                .and_then(|instance_id| group.static_member(instance_id))
                .cloned();
            if let Some(old_id) = instance_holder {
                return group.rejoin_static_member(&old_id, &member_id, request, now_ms, config);
            }
            // A static member needs no round trip for its id: its instance id names it.
            if request.require_known_member_id && request.instance_id.is_none() {
                let deadline = now_ms + i64::from(request.session_timeout_ms);
                group.pending.insert(member_id.clone(), deadline);
                return Reply::Now(JoinResponse::error(MEMBER_ID_REQUIRED, &member_id));
            }
            return group.add_member(&member_id, request, now_ms, config);
        }
        let member_id = request.member_id.clone();
        if group.pending.remove(&member_id).is_some() {
            if request.instance_id.is_some() {
                // Ids are handed out pending to dynamic members only (Kafka calls this an
                // illegal state). Joining with it as a static member could give two members
                // one instance id: the client starts again, with no member id.
                return Reply::Now(JoinResponse::error(UNKNOWN_MEMBER_ID, &member_id));
            }
            return group.add_member(&member_id, request, now_ms, config);
        }
        if let Err(code) = group.validate_member(&member_id, request.instance_id.as_deref()) {
            return Reply::Now(JoinResponse::error(code, &member_id));
        }
        let member = group.members.get_mut(&member_id).expect("validated");
        let unchanged = member.same_protocols(&request.protocols);
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let answer_now = match group.state {
            GroupState::Stable => unchanged && !is_leader,
            GroupState::CompletingRebalance => unchanged,
            _ => false,
        };
        if answer_now {
            member.last_heard_ms = now_ms;
            return Reply::Now(group.current_join(&member_id));
        }
        group.update_member(&member_id, request, now_ms);
        group.await_join(&member_id, now_ms, config)
    }

    pub fn sync(
        &self,
        group_id: &str,
        caller: Caller<'_>,
        protocol: Option<(&str, &str)>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Reply<SyncResponse> {
        let member_id = caller.member_id;
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncResponse::error(UNKNOWN_MEMBER_ID));
        };
        if let Err(code) = group.check_member(member_id, caller.instance_id, caller.generation) {
            return Reply::Now(SyncResponse::error(code));
        }
        if let Some((protocol_type, name)) = protocol {
            let type_ok = group
                .protocol_type
                .as_deref()
                .is_none_or(|t| t == protocol_type);
            let name_ok = group.protocol.as_deref().is_none_or(|p| p == name);
            if !type_ok || !name_ok {
                return Reply::Now(SyncResponse::error(INCONSISTENT_GROUP_PROTOCOL));
            }
        }
        match group.state {
            GroupState::Empty => Reply::Now(SyncResponse::error(UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResponse::error(REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => {
                let member = &group.members[member_id];
                Reply::Now(SyncResponse {
                    error: NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                let member = group.members.get_mut(member_id).expect("checked");
                member.last_heard_ms = now_ms;
                member.sync_waiter = Some(sender);
                if group.leader.as_deref() == Some(member_id) {
                    let mut assignments: BTreeMap<String, Bytes> =
                        assignments.into_iter().collect();
                    for (id, member) in &mut group.members {
                        member.assignment = assignments.remove(id).unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    for member in group.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(SyncResponse {
                                error: NONE,
                                protocol_type: group.protocol_type.clone(),
                                protocol_name: group.protocol.clone(),
                                assignment: member.assignment.clone(),
                            });
                        }
                    }
                }
                Reply::Later(receiver)
            }
        }
    }

    pub fn heartbeat(&self, group_id: &str, caller: Caller<'_>, now_ms: i64) -> i16 {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if let Err(code) =
            group.check_member(caller.member_id, caller.instance_id, caller.generation)
        {
            return code;
        }
        if let Some(member) = group.members.get_mut(caller.member_id) {
            member.last_heard_ms = now_ms;
        }
        match group.state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Empty => UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    /// Removes members by member id or, when the id is empty, by instance id (LeaveGroup v3+
    /// lets an admin remove static members so). Returns each one's code as Kafka's
    /// handleLeaveGroup does: UNKNOWN_MEMBER_ID for a member (or instance) not in the group,
    /// FENCED_INSTANCE_ID for a member id whose instance a newer member holds. LeaveGroup v0-v2
    /// carry no instance id, so a static member named by its member id leaves too (as in Kafka;
    /// librdkafka and the Java client send no LeaveGroup for a static member that closes).
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Vec<i16> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![UNKNOWN_MEMBER_ID; members.len()];
        };
        let mut codes = Vec::with_capacity(members.len());
        let mut leaving = Vec::new();
        for (member_id, instance_id) in members {
            let code = if member_id.is_empty() {
                match instance_id.as_deref().and_then(|i| group.static_member(i)) {
                    Some(holder) => {
                        leaving.push(holder.clone());
                        NONE
                    }
                    None => UNKNOWN_MEMBER_ID,
                }
            } else if group.pending.remove(member_id).is_some() {
                NONE
            } else {
                match group.validate_member(member_id, instance_id.as_deref()) {
                    Ok(()) => {
                        leaving.push(member_id.clone());
                        NONE
                    }
                    Err(code) => code,
                }
            };
            codes.push(code);
        }
        if !leaving.is_empty() {
            tracing::info!(group = group_id, members = ?leaving, "members left the group");
        }
        group.remove_members(&leaving, now_ms, &self.config);
        // A pending member that left may have been all the join phase waited for.
        group.try_complete_join(now_ms);
        codes
    }

    /// Ends join phases whose time has come and removes members whose session expired.
    pub fn tick(&self, now_ms: i64) {
        let mut groups = self.lock();
        for (group_id, group) in groups.iter_mut() {
            group.pending.retain(|_, deadline| *deadline > now_ms);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && now_ms > m.last_heard_ms + i64::from(m.session_timeout_ms)
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                tracing::info!(group = %group_id, members = ?expired, "session timed out; members removed");
                group.remove_members(&expired, now_ms, &self.config);
            }
            group.try_complete_join(now_ms);
        }
    }

    /// Checks a commit and, if the group accepts it, hands the entries to `write` (which puts
    /// them in the log) while the lock is held; what was written becomes the committed offsets.
    /// Returns a code per entry, or one code for the whole request.
    pub fn commit(
        &self,
        group_id: &str,
        caller: Caller<'_>,
        entries: Vec<(OffsetKey, Committed)>,
        partition_ok: impl Fn(&OffsetKey) -> bool,
        now_ms: i64,
        write: impl FnOnce(&CommitBatch) -> Result<(), i16>,
    ) -> Result<Vec<i16>, i16> {
        if !valid_group_id(group_id) {
            return Err(INVALID_GROUP_ID);
        }
        let Caller {
            member_id,
            instance_id,
            generation,
        } = caller;
        let commit_lock = self.commit_lock(group_id);
        let _commit = commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut groups = self.lock();
        // Kafka's validateOffsetCommit: without generation, member or instance it is a
        // standalone consumer's (or an admin's) commit, fine while the group has no members.
        let simple = generation < 0 && member_id.is_empty() && instance_id.is_none();
        match groups.get_mut(group_id) {
            None if !simple => return Err(ILLEGAL_GENERATION),
            None => {}
            Some(group) if simple && group.state != GroupState::Empty => {
                return Err(UNKNOWN_MEMBER_ID)
            }
            Some(_) if simple => {}
            Some(group) => {
                group.check_member(member_id, instance_id, generation)?;
                // As in Kafka since cooperative rebalancing: a member of the current generation
                // may commit while the group prepares a rebalance (it still owns what it is
                // committing), but not between the join and the assignment.
                match group.state {
                    GroupState::Stable | GroupState::PreparingRebalance => {}
                    GroupState::Empty => return Err(UNKNOWN_MEMBER_ID),
                    GroupState::CompletingRebalance => return Err(REBALANCE_IN_PROGRESS),
                }
                if let Some(member) = group.members.get_mut(member_id) {
                    member.last_heard_ms = now_ms;
                }
            }
        }
        // The write (and under flush=always its fsync) runs without the coordinator's lock:
        // other groups go on. As in Kafka, a commit validated here is applied once written,
        // whatever the group did meanwhile; the group's commit lock keeps its commits in order.
        drop(groups);
        let mut codes = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        for (key, value) in entries {
            let code = if value.metadata.len() > self.config.offset_metadata_bytes_max {
                OFFSET_METADATA_TOO_LARGE
            } else if !partition_ok(&key) {
                UNKNOWN_TOPIC_OR_PARTITION
            } else {
                accepted.push((key, value));
                NONE
            };
            codes.push(code);
        }
        if accepted.is_empty() {
            return Ok(codes);
        }
        let batch = CommitBatch {
            group_id: group_id.to_owned(),
            entries: accepted,
        };
        if let Err(code) = write(&batch) {
            return Ok(codes
                .into_iter()
                .map(|c| if c == NONE { code } else { c })
                .collect());
        }
        let mut groups = self.lock();
        let group = groups.entry(group_id.to_owned()).or_insert_with(Group::new);
        for (key, value) in batch.entries {
            group.offsets.insert((key.topic, key.partition), value);
        }
        Ok(codes)
    }

    /// The committed offsets of a group: all of them, or those of `partitions`.
    pub fn committed(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<((String, i32), Option<Committed>)> {
        let groups = self.lock();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|p| (p.clone(), offsets.and_then(|o| o.get(p)).cloned()))
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|(p, c)| (p.clone(), Some(c.clone())))
                .collect(),
        }
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.lock();
        let mut listed: Vec<_> = groups
            .iter()
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.protocol_type
                        .clone()
                        .unwrap_or_else(|| "consumer".to_owned()),
                    g.state,
                )
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        listed
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if group.state == GroupState::Stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Deletes an empty group: `write` gets the tombstones of its offsets to put in the log.
    pub fn delete(
        &self,
        group_id: &str,
        write: impl FnOnce(&[OffsetKey]) -> Result<(), i16>,
    ) -> i16 {
        let commit_lock = self.commit_lock(group_id);
        let commit = commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        // A deletion keeps the coordinator's lock over its write: no member may join between
        // the check that the group is empty and its removal. It is an admin's rare call.
        let mut groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return GROUP_ID_NOT_FOUND;
        };
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return NON_EMPTY_GROUP;
        }
        let keys: Vec<OffsetKey> = group
            .offsets
            .keys()
            .map(|(topic, partition)| OffsetKey {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        if let Err(code) = write(&keys) {
            return code;
        }
        groups.remove(group_id);
        drop(groups);
        drop(commit);
        drop(commit_lock);
        self.drop_commit_lock(group_id);
        tracing::info!(group = group_id, "group deleted");
        NONE
    }

    /// Ends every wait (at shutdown): waiting members are told to find the coordinator again.
    pub fn shutdown(&self) {
        let mut groups = self.lock();
        for group in groups.values_mut() {
            for member in group.members.values_mut() {
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(JoinResponse::error(NOT_COORDINATOR, ""));
                }
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncResponse::error(NOT_COORDINATOR));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        }
    }

    fn join_request(member_id: &str) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: false,
            supports_skip_assignment: false,
        }
    }

    fn join(c: &Coordinator, member_id: &str, id: &str, now: i64) -> Reply<JoinResponse> {
        c.join(join_request(member_id), now, || id.to_owned())
    }

    fn static_join(
        c: &Coordinator,
        member_id: &str,
        instance_id: &str,
        id: &str,
        now: i64,
    ) -> Reply<JoinResponse> {
        let request = JoinRequest {
            instance_id: Some(instance_id.into()),
            require_known_member_id: true,
            ..join_request(member_id)
        };
        c.join(request, now, || id.to_owned())
    }

    fn as_static<'a>(member_id: &'a str, instance_id: &'a str, generation: i32) -> Caller<'a> {
        Caller {
            member_id,
            instance_id: Some(instance_id),
            generation,
        }
    }

    fn state(c: &Coordinator) -> GroupState {
        c.describe("g").expect("the group exists").state
    }

    /// Members as (member id, instance id), in member id order.
    fn members(c: &Coordinator) -> Vec<(String, Option<String>)> {
        let group = c.describe("g").expect("the group exists");
        group
            .members
            .into_iter()
            .map(|m| (m.member_id, m.instance_id))
            .collect()
    }

    /// Dynamic member "a" (the leader) and static member "s1" of instance "i", Stable in
    /// generation 2 with assignments "for-a" and "for-s1".
    fn stable_with_a_static_member(c: &Coordinator) {
        ready(join(c, "", "a", 0));
        let mut s_join = waiting(static_join(c, "", "i", "s1", 0));
        ready(join(c, "a", "", 0));
        assert_eq!(s_join.try_recv().unwrap().generation, 2);
        let mut s_sync = waiting(c.sync("g", as_static("s1", "i", 2), None, Vec::new(), 0));
        ready(c.sync(
            "g",
            Caller::dynamic("a", 2),
            None,
            assignments(&["a", "s1"]),
            0,
        ));
        assert_eq!(&s_sync.try_recv().unwrap().assignment[..], b"for-s1");
        assert_eq!(state(c), GroupState::Stable);
    }

    fn ready<T>(reply: Reply<T>) -> T {
        match reply {
            Reply::Now(answer) => answer,
            Reply::Later(mut waiting) => waiting.try_recv().expect("answered already"),
        }
    }

    fn waiting<T>(reply: Reply<T>) -> oneshot::Receiver<T> {
        match reply {
            Reply::Now(_) => panic!("expected to wait"),
            Reply::Later(waiting) => waiting,
        }
    }

    fn assignments(ids: &[&str]) -> Vec<(String, Bytes)> {
        ids.iter()
            .map(|id| (id.to_string(), Bytes::from(format!("for-{id}"))))
            .collect()
    }

    #[test]
    fn a_second_member_triggers_a_rebalance_that_both_complete() {
        let c = Coordinator::new(config());
        let a = ready(join(&c, "", "a", 0));
        assert_eq!((a.error, a.generation, a.leader.as_str()), (NONE, 1, "a"));
        assert_eq!(
            ready(c.sync("g", Caller::dynamic("a", 1), None, assignments(&["a"]), 0)).error,
            NONE
        );
        // b joins: the group prepares a rebalance and a learns of it from its heartbeat.
        let mut b_join = waiting(join(&c, "", "b", 10));
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("a", 1), 10),
            REBALANCE_IN_PROGRESS
        );
        assert!(b_join.try_recv().is_err(), "b waits for a to rejoin");
        let a = ready(join(&c, "a", "unused", 20));
        let b = b_join.try_recv().expect("the join phase ended");
        assert_eq!((a.generation, b.generation), (2, 2));
        assert_eq!(a.leader, "a");
        assert_eq!(a.members.len(), 2, "the leader gets every subscription");
        assert!(b.members.is_empty());
        // b's sync waits for the leader's assignment; the leader's answers both.
        let mut b_sync = waiting(c.sync("g", Caller::dynamic("b", 2), None, Vec::new(), 30));
        let a_sync = ready(c.sync(
            "g",
            Caller::dynamic("a", 2),
            None,
            assignments(&["a", "b"]),
            30,
        ));
        assert_eq!(&a_sync.assignment[..], b"for-a");
        assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"for-b");
        assert_eq!(c.heartbeat("g", Caller::dynamic("b", 2), 40), NONE);
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("b", 1), 40),
            ILLEGAL_GENERATION
        );
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    }

    #[test]
    fn an_expired_session_removes_the_member_and_rebalances() {
        let c = Coordinator::new(config());
        ready(join(&c, "", "a", 0));
        let mut b_join = waiting(join(&c, "", "b", 0));
        ready(join(&c, "a", "", 0));
        b_join.try_recv().unwrap();
        ready(c.sync(
            "g",
            Caller::dynamic("a", 2),
            None,
            assignments(&["a", "b"]),
            0,
        ));
        // a keeps heartbeating; b goes silent past its 10 s session.
        assert_eq!(c.heartbeat("g", Caller::dynamic("a", 2), 9_000), NONE);
        c.tick(10_001);
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("a", 2), 10_002),
            REBALANCE_IN_PROGRESS
        );
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("b", 2), 10_002),
            UNKNOWN_MEMBER_ID
        );
        let a = ready(join(&c, "a", "", 10_003));
        assert_eq!((a.generation, a.members.len()), (3, 1));
    }

    #[test]
    fn a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
        let c = Coordinator::new(config());
        ready(join(&c, "", "a", 0));
        let mut b_join = waiting(join(&c, "", "b", 0));
        ready(join(&c, "a", "", 0));
        b_join.try_recv().unwrap();
        ready(c.sync(
            "g",
            Caller::dynamic("a", 2),
            None,
            assignments(&["a", "b"]),
            0,
        ));
        // c joins at 100; a rejoins; b never does (and keeps no session: it heartbeats only
        // until 100). The phase ends at the rebalance timeout (20 s), without b.
        let mut c_join = waiting(join(&c, "", "c", 100));
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("b", 2), 100),
            REBALANCE_IN_PROGRESS
        );
        let mut a_join = waiting(join(&c, "a", "", 200));
        c.tick(5_000);
        assert!(a_join.try_recv().is_err(), "still waiting for b");
        c.tick(20_101);
        let a = a_join.try_recv().expect("ended at the timeout");
        assert_eq!((a.generation, a.members.len()), (3, 2));
        assert_eq!(c_join.try_recv().unwrap().generation, 3);
    }

    #[test]
    fn commits_are_fenced_by_member_and_generation() {
        let c = Coordinator::new(config());
        let key = || OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let value = |offset| Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        };
        let commit = |member: &str, generation, offset| {
            c.commit(
                "g",
                Caller::dynamic(member, generation),
                vec![(key(), value(offset))],
                |_| true,
                0,
                |_| Ok(()),
            )
        };
        // No group yet: a standalone commit is fine; a member's is not.
        assert_eq!(commit("", -1, 5), Ok(vec![NONE]));
        ready(join(&c, "", "a", 0));
        // Between the join and the assignment: not yet.
        assert_eq!(commit("a", 1, 6), Err(REBALANCE_IN_PROGRESS));
        ready(c.sync("g", Caller::dynamic("a", 1), None, assignments(&["a"]), 0));
        assert_eq!(commit("a", 1, 7), Ok(vec![NONE]));
        assert_eq!(commit("a", 0, 8), Err(ILLEGAL_GENERATION));
        assert_eq!(commit("z", 1, 9), Err(UNKNOWN_MEMBER_ID));
        assert_eq!(
            commit("", -1, 10),
            Err(UNKNOWN_MEMBER_ID),
            "the group has members"
        );
        let committed = c.committed("g", None);
        assert_eq!(committed[0].1.as_ref().map(|c| c.offset), Some(7));
        // A failed write commits nothing.
        let failed = c.commit(
            "g",
            Caller::dynamic("a", 1),
            vec![(key(), value(11))],
            |_| true,
            0,
            |_| Err(crate::error_codes::KAFKA_STORAGE_ERROR),
        );
        assert_eq!(failed, Ok(vec![56]));
        assert_eq!(
            c.committed("g", None)[0].1.as_ref().map(|c| c.offset),
            Some(7)
        );
    }

    #[test]
    fn a_static_member_that_comes_back_takes_its_place_without_a_rebalance() {
        let c = Coordinator::new(config());
        stable_with_a_static_member(&c);
        // A new process of instance i joins with no member id: no MEMBER_ID_REQUIRED round
        // trip, an answer now, the current generation, not the leader.
        let s2 = ready(static_join(&c, "", "i", "s2", 1_000));
        assert_eq!(
            (
                s2.error,
                s2.generation,
                s2.member_id.as_str(),
                s2.leader.as_str()
            ),
            (NONE, 2, "s2", "a")
        );
        assert!(s2.members.is_empty() && !s2.skip_assignment);
        assert_eq!(state(&c), GroupState::Stable, "no rebalance");
        assert_eq!(c.heartbeat("g", Caller::dynamic("a", 2), 1_000), NONE);
        let synced = ready(c.sync("g", as_static("s2", "i", 2), None, Vec::new(), 1_000));
        assert_eq!(
            (synced.error, &synced.assignment[..]),
            (NONE, &b"for-s1"[..]),
            "the old member's assignment"
        );
        assert_eq!(
            members(&c),
            vec![("a".into(), None), ("s2".into(), Some("i".into()))]
        );
        // The old member id is fenced wherever it names its instance, unknown elsewhere.
        assert_eq!(
            c.heartbeat("g", as_static("s1", "i", 2), 1_000),
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("s1", 2), 1_000),
            UNKNOWN_MEMBER_ID
        );
        let sync = ready(c.sync("g", as_static("s1", "i", 2), None, Vec::new(), 1_000));
        assert_eq!(sync.error, FENCED_INSTANCE_ID);
        let commit = c.commit(
            "g",
            as_static("s1", "i", 2),
            Vec::new(),
            |_| true,
            1_000,
            |_| Ok(()),
        );
        assert_eq!(commit, Err(FENCED_INSTANCE_ID));
        assert_eq!(
            ready(static_join(&c, "s1", "i", "unused", 1_000)).error,
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            c.leave("g", &[("s1".into(), Some("i".into()))], 1_000),
            vec![FENCED_INSTANCE_ID]
        );
        assert_eq!(state(&c), GroupState::Stable, "none of that rebalanced");
        assert_eq!(c.heartbeat("g", as_static("s2", "i", 2), 1_000), NONE);
    }

    #[test]
    fn a_static_leader_that_comes_back_is_told_it_leads_only_from_join_group_v9() {
        for skip_supported in [false, true] {
            let c = Coordinator::new(config());
            ready(static_join(&c, "", "L", "l1", 0));
            let mut f_join = waiting(join(&c, "", "f", 0));
            ready(static_join(&c, "l1", "L", "", 0));
            assert_eq!(f_join.try_recv().unwrap().leader, "l1");
            ready(c.sync(
                "g",
                as_static("l1", "L", 2),
                None,
                assignments(&["l1", "f"]),
                0,
            ));
            let request = JoinRequest {
                instance_id: Some("L".into()),
                supports_skip_assignment: skip_supported,
                ..join_request("")
            };
            let l2 = ready(c.join(request, 10, || "l2".to_owned()));
            assert_eq!((l2.error, l2.generation), (NONE, 2));
            if skip_supported {
                // It leads, sees the members, and must not assign.
                assert_eq!(l2.leader, "l2");
                assert_eq!(l2.members.len(), 2);
                assert!(l2.skip_assignment);
            } else {
                // The old leader id: it acts as a follower and does not assign.
                assert_eq!(l2.leader, "l1");
                assert!(l2.members.is_empty() && !l2.skip_assignment);
            }
            assert_eq!(state(&c), GroupState::Stable);
            let synced = ready(c.sync("g", as_static("l2", "L", 2), None, Vec::new(), 10));
            assert_eq!(&synced.assignment[..], b"for-l1");
            // It leads the next rebalance.
            let mut changed = join_request("f");
            changed.protocols = vec![("range".into(), Bytes::from_static(b"new topics"))];
            let mut f_join = waiting(c.join(changed, 20, String::new));
            let l2 = ready(static_join(&c, "l2", "L", "", 20));
            assert_eq!((l2.generation, l2.leader.as_str()), (3, "l2"));
            assert_eq!(l2.members.len(), 2);
            assert_eq!(f_join.try_recv().unwrap().leader, "l2");
        }
    }

    #[test]
    fn a_static_member_that_comes_back_mid_rebalance_or_with_other_protocols_rebalances() {
        // Between the join and the assignment: the leader may be assigning to the old id.
        let c = Coordinator::new(config());
        ready(join(&c, "", "a", 0));
        let mut s_join = waiting(static_join(&c, "", "i", "s1", 0));
        ready(join(&c, "a", "", 0));
        s_join.try_recv().unwrap();
        assert_eq!(state(&c), GroupState::CompletingRebalance);
        let mut old_sync = waiting(c.sync("g", as_static("s1", "i", 2), None, Vec::new(), 0));
        let mut s2_join = waiting(static_join(&c, "", "i", "s2", 10));
        assert_eq!(old_sync.try_recv().unwrap().error, FENCED_INSTANCE_ID);
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        let a = ready(join(&c, "a", "", 20));
        assert_eq!(a.generation, 3);
        let s2 = s2_join.try_recv().unwrap();
        assert_eq!((s2.generation, s2.member_id.as_str()), (3, "s2"));
        // Stable, but the returning member supports only another protocol: the group's
        // protocol would change, so it rebalances.
        let c = Coordinator::new(config());
        let both = vec![
            ("range".into(), Bytes::from_static(b"m")),
            ("roundrobin".into(), Bytes::from_static(b"m")),
        ];
        let request = |member_id: &str, instance: Option<&str>| JoinRequest {
            instance_id: instance.map(str::to_owned),
            protocols: both.clone(),
            ..join_request(member_id)
        };
        ready(c.join(request("", None), 0, || "a".to_owned()));
        let mut s_join = waiting(c.join(request("", Some("i")), 0, || "s1".to_owned()));
        ready(c.join(request("a", None), 0, String::new));
        s_join.try_recv().unwrap();
        ready(c.sync(
            "g",
            Caller::dynamic("a", 2),
            None,
            assignments(&["a", "s1"]),
            0,
        ));
        assert_eq!(state(&c), GroupState::Stable);
        let only_roundrobin = JoinRequest {
            protocols: vec![("roundrobin".into(), Bytes::from_static(b"m"))],
            ..request("", Some("i"))
        };
        let mut s2_join = waiting(c.join(only_roundrobin, 10, || "s2".to_owned()));
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(
            c.heartbeat("g", Caller::dynamic("a", 2), 10),
            REBALANCE_IN_PROGRESS
        );
        ready(c.join(request("a", None), 20, String::new));
        let s2 = s2_join.try_recv().unwrap();
        assert_eq!(s2.protocol_name.as_deref(), Some("roundrobin"));
    }

    #[test]
    fn a_static_member_outlives_the_rebalance_timeout_but_not_its_session() {
        let c = Coordinator::new(config());
        stable_with_a_static_member(&c);
        // A third member joins; a rejoins, s1 (gone) does not. At the rebalance timeout (20 s)
        // the phase (its deadline moved to 20 200 by a's join) ends with s1 kept: only its session (10 s of silence) removes it.
        let mut b_join = waiting(join(&c, "", "b", 100));
        let mut a_join = waiting(join(&c, "a", "", 200));
        c.tick(5_000);
        assert!(a_join.try_recv().is_err(), "waits for s1");
        assert_eq!(
            c.heartbeat("g", as_static("s1", "i", 2), 15_000),
            REBALANCE_IN_PROGRESS
        );
        c.tick(20_201);
        let a = a_join.try_recv().expect("ended at the timeout");
        assert_eq!(
            (a.generation, a.members.len()),
            (3, 3),
            "s1 is still a member"
        );
        b_join.try_recv().unwrap();
        // complete_join counted as hearing from everyone at 20 201; s1 stays silent.
        ready(c.sync(
            "g",
            Caller::dynamic("a", 3),
            None,
            assignments(&["a", "b", "s1"]),
            20_201,
        ));
        assert_eq!(c.heartbeat("g", Caller::dynamic("a", 3), 29_000), NONE);
        assert_eq!(c.heartbeat("g", Caller::dynamic("b", 3), 29_000), NONE);
        c.tick(30_202);
        assert_eq!(
            state(&c),
            GroupState::PreparingRebalance,
            "s1's session expired"
        );
        assert_eq!(members(&c).len(), 2);
        assert_eq!(
            c.heartbeat("g", as_static("s1", "i", 3), 30_202),
            UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn a_rebalance_that_only_unrejoined_static_members_could_lead_waits_for_their_sessions() {
        let c = Coordinator::new(config());
        ready(static_join(&c, "", "i", "s1", 0));
        let mut t_join = waiting(static_join(&c, "", "j", "t1", 0));
        ready(static_join(&c, "s1", "i", "", 0));
        assert_eq!(t_join.try_recv().unwrap().generation, 2);
        ready(c.sync(
            "g",
            as_static("s1", "i", 2),
            None,
            assignments(&["s1", "t1"]),
            0,
        ));
        // A dynamic member joins (the phase may last 20 s) and leaves again; s1 and t1 keep
        // their sessions with heartbeats but never rejoin. No member that rejoined is left to
        // lead, so the phase outlasts its timeout, until their sessions expire.
        let mut b_join = waiting(join(&c, "", "b", 100));
        assert_eq!(c.leave("g", &[("b".into(), None)], 200), vec![NONE]);
        assert_eq!(b_join.try_recv().unwrap().error, UNKNOWN_MEMBER_ID);
        for (member, instance) in [("s1", "i"), ("t1", "j")] {
            let caller = as_static(member, instance, 2);
            assert_eq!(c.heartbeat("g", caller, 15_000), REBALANCE_IN_PROGRESS);
        }
        c.tick(20_101);
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(members(&c).len(), 2, "static members are kept");
        c.tick(25_001);
        assert_eq!(state(&c), GroupState::Empty, "their sessions expired");
        assert!(members(&c).is_empty());
    }

    #[test]
    fn leave_group_removes_static_members_by_instance_id() {
        let c = Coordinator::new(config());
        stable_with_a_static_member(&c);
        let codes = c.leave(
            "g",
            &[
                (String::new(), Some("nobody".into())),
                ("a".into(), Some("i".into())),
                (String::new(), Some("i".into())),
            ],
            100,
        );
        assert_eq!(codes, vec![UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, NONE]);
        assert_eq!(members(&c), vec![("a".into(), None)]);
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(
            c.leave("elsewhere", &[("a".into(), None)], 100),
            vec![UNKNOWN_MEMBER_ID]
        );
        // A member id alone (LeaveGroup v0-v2) removes a static member too, as in Kafka.
        ready(join(&c, "a", "", 200));
        let mut s_join = waiting(static_join(&c, "", "i", "s3", 300));
        ready(join(&c, "a", "", 300));
        s_join.try_recv().unwrap();
        assert_eq!(c.leave("g", &[("s3".into(), None)], 400), vec![NONE]);
        assert_eq!(members(&c), vec![("a".into(), None)]);
    }

    #[test]
    fn a_pending_member_id_cannot_join_as_a_static_member() {
        let c = Coordinator::new(config());
        stable_with_a_static_member(&c);
        let pending = ready(c.join(
            JoinRequest {
                require_known_member_id: true,
                ..join_request("")
            },
            100,
            || "p".to_owned(),
        ));
        assert_eq!(pending.error, MEMBER_ID_REQUIRED);
        // Its id with instance i (held by s1) would make two holders of i.
        assert_eq!(
            ready(static_join(&c, "p", "i", "", 200)).error,
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            members(&c),
            vec![("a".into(), None), ("s1".into(), Some("i".into()))]
        );
        assert_eq!(state(&c), GroupState::Stable);
    }
}
