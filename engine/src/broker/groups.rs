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
//! UNKNOWN_MEMBER_ID). Static membership (group.instance.id) is recorded and shown, but a
//! static member that restarts rejoins like a dynamic one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::config::GroupConfig;
use super::offsets::{Committed, GroupOffsets, OffsetKey};

pub const NONE: i16 = 0;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const NOT_COORDINATOR: i16 = 16;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
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
    /// JoinGroup v4+: a member without an id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
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
            let missing: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.join_waiter.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            for id in missing {
                tracing::info!(member = %id, "member did not rejoin before the rebalance timeout; removed");
                self.members.remove(&id);
            }
            self.pending.clear();
        }
        self.complete_join(now_ms);
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
        let protocol = votes
            .iter()
            .max_by_key(|(name, count)| (**count, std::cmp::Reverse(*name)))
            .map(|(name, _)| (*name).to_owned());
        self.protocol = protocol;
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster: Vec<JoinedMember> = self
            .members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect();
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
                });
            }
        }
    }

    fn current_join(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        JoinResponse {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: Some(protocol.clone()),
            leader: leader.clone(),
            member_id: member_id.to_owned(),
            members: if member_id == leader {
                self.members
                    .iter()
                    .map(|(id, m)| JoinedMember {
                        member_id: id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
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

    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), i16> {
        if !self.members.contains_key(member_id) {
            return Err(UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(ILLEGAL_GENERATION);
        }
        Ok(())
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
    groups: Mutex<HashMap<String, Group>>,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut member_id = request.member_id.clone();
        if member_id.is_empty() {
            member_id = new_member_id();
            if request.require_known_member_id {
                let deadline = now_ms + i64::from(request.session_timeout_ms);
                group.pending.insert(member_id.clone(), deadline);
                return Reply::Now(JoinResponse::error(MEMBER_ID_REQUIRED, &member_id));
            }
        } else if let Some(member) = group.members.get_mut(&member_id) {
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
        } else if group.pending.remove(&member_id).is_none() {
            return Reply::Now(JoinResponse::error(UNKNOWN_MEMBER_ID, &member_id));
        }
        let is_new = !group.members.contains_key(&member_id);
        if is_new && group.members.len() >= config.members_max {
            return Reply::Now(JoinResponse::error(GROUP_MAX_SIZE_REACHED, &member_id));
        }
        let (sender, receiver) = oneshot::channel();
        let member = group.members.entry(member_id.clone()).or_insert(Member {
            instance_id: None,
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
        member.instance_id = request.instance_id;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
        member.protocol_type = request.protocol_type;
        member.protocols = request.protocols;
        member.last_heard_ms = now_ms;
        if let Some(previous) = member.join_waiter.replace(sender) {
            let _ = previous.send(JoinResponse::error(UNKNOWN_MEMBER_ID, &member_id));
        }
        if group.state != GroupState::PreparingRebalance {
            group.prepare_rebalance(now_ms, config);
        } else {
            let timeout = now_ms + i64::from(group.members[&member_id].rebalance_timeout_ms);
            group.rebalance_deadline_ms = group.rebalance_deadline_ms.max(timeout);
        }
        group.try_complete_join(now_ms);
        Reply::Later(receiver)
    }

    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        protocol: Option<(&str, &str)>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Reply<SyncResponse> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncResponse::error(UNKNOWN_MEMBER_ID));
        };
        if let Err(code) = group.check_member(member_id, generation) {
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
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
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

    pub fn heartbeat(&self, group_id: &str, member_id: &str, generation: i32, now_ms: i64) -> i16 {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if let Err(code) = group.check_member(member_id, generation) {
            return code;
        }
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_heard_ms = now_ms;
        }
        match group.state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Empty => UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    /// Removes members by member id or, when the id is empty, by instance id. Returns each
    /// one's error code.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(UNKNOWN_MEMBER_ID);
        };
        let mut codes = Vec::new();
        let mut leaving = Vec::new();
        for (member_id, instance_id) in members {
            let found = if member_id.is_empty() {
                group
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.is_some() && m.instance_id == *instance_id)
                    .map(|(id, _)| id.clone())
            } else {
                group
                    .members
                    .contains_key(member_id)
                    .then(|| member_id.clone())
            };
            match found {
                Some(id) => {
                    leaving.push(id);
                    codes.push(NONE);
                }
                None => codes.push(UNKNOWN_MEMBER_ID),
            }
        }
        if !leaving.is_empty() {
            tracing::info!(group = group_id, members = ?leaving, "members left the group");
        }
        group.remove_members(&leaving, now_ms, &self.config);
        Ok(codes)
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
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        entries: Vec<(OffsetKey, Committed)>,
        partition_ok: impl Fn(&OffsetKey) -> bool,
        now_ms: i64,
        write: impl FnOnce(&CommitBatch) -> Result<(), i16>,
    ) -> Result<Vec<i16>, i16> {
        if !valid_group_id(group_id) {
            return Err(INVALID_GROUP_ID);
        }
        let mut groups = self.lock();
        let simple = generation < 0 && member_id.is_empty();
        match groups.get_mut(group_id) {
            None if !simple => return Err(ILLEGAL_GENERATION),
            None => {}
            Some(group) if simple && group.state != GroupState::Empty => {
                return Err(UNKNOWN_MEMBER_ID)
            }
            Some(_) if simple => {}
            Some(group) => {
                group.check_member(member_id, generation)?;
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

pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

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
        }
    }

    fn join(c: &Coordinator, member_id: &str, id: &str, now: i64) -> Reply<JoinResponse> {
        c.join(join_request(member_id), now, || id.to_owned())
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
            ready(c.sync("g", "a", 1, None, assignments(&["a"]), 0)).error,
            NONE
        );
        // b joins: the group prepares a rebalance and a learns of it from its heartbeat.
        let mut b_join = waiting(join(&c, "", "b", 10));
        assert_eq!(c.heartbeat("g", "a", 1, 10), REBALANCE_IN_PROGRESS);
        assert!(b_join.try_recv().is_err(), "b waits for a to rejoin");
        let a = ready(join(&c, "a", "unused", 20));
        let b = b_join.try_recv().expect("the join phase ended");
        assert_eq!((a.generation, b.generation), (2, 2));
        assert_eq!(a.leader, "a");
        assert_eq!(a.members.len(), 2, "the leader gets every subscription");
        assert!(b.members.is_empty());
        // b's sync waits for the leader's assignment; the leader's answers both.
        let mut b_sync = waiting(c.sync("g", "b", 2, None, Vec::new(), 30));
        let a_sync = ready(c.sync("g", "a", 2, None, assignments(&["a", "b"]), 30));
        assert_eq!(&a_sync.assignment[..], b"for-a");
        assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"for-b");
        assert_eq!(c.heartbeat("g", "b", 2, 40), NONE);
        assert_eq!(c.heartbeat("g", "b", 1, 40), ILLEGAL_GENERATION);
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    }

    #[test]
    fn an_expired_session_removes_the_member_and_rebalances() {
        let c = Coordinator::new(config());
        ready(join(&c, "", "a", 0));
        let mut b_join = waiting(join(&c, "", "b", 0));
        ready(join(&c, "a", "", 0));
        b_join.try_recv().unwrap();
        ready(c.sync("g", "a", 2, None, assignments(&["a", "b"]), 0));
        // a keeps heartbeating; b goes silent past its 10 s session.
        assert_eq!(c.heartbeat("g", "a", 2, 9_000), NONE);
        c.tick(10_001);
        assert_eq!(c.heartbeat("g", "a", 2, 10_002), REBALANCE_IN_PROGRESS);
        assert_eq!(c.heartbeat("g", "b", 2, 10_002), UNKNOWN_MEMBER_ID);
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
        ready(c.sync("g", "a", 2, None, assignments(&["a", "b"]), 0));
        // c joins at 100; a rejoins; b never does (and keeps no session: it heartbeats only
        // until 100). The phase ends at the rebalance timeout (20 s), without b.
        let mut c_join = waiting(join(&c, "", "c", 100));
        assert_eq!(c.heartbeat("g", "b", 2, 100), REBALANCE_IN_PROGRESS);
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
                member,
                generation,
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
        ready(c.sync("g", "a", 1, None, assignments(&["a"]), 0));
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
            "a",
            1,
            vec![(key(), value(11))],
            |_| true,
            0,
            |_| Err(56),
        );
        assert_eq!(failed, Ok(vec![56]));
        assert_eq!(
            c.committed("g", None)[0].1.as_ref().map(|c| c.offset),
            Some(7)
        );
    }
}
