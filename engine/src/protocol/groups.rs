//! The consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups. The state machine is
//! `broker::groups`; these handlers translate requests and answers per version. A single node
//! coordinates every group; in a cluster the leader of a group's `__consumer_offsets`
//! partition does, and the others answer NOT_COORDINATOR. There is no transaction coordinator: a
//! FindCoordinator for a transactional id fails at once (see `coordinator_error`).

use bytes::Bytes;
use kafka_protocol::messages::{
    delete_groups_response::DeletableGroupResult,
    describe_groups_response::{DescribedGroup, DescribedGroupMember},
    find_coordinator_response::Coordinator,
    join_group_response::JoinGroupResponseMember,
    leave_group_response::MemberResponse,
    list_groups_response::ListedGroup,
    offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    },
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::frame::Frame;
use super::{
    decode, encode, encode_at, errors, legacy, str_bytes, topic_name, ProtocolError, Request,
};
use crate::broker::groups::{self, Caller, JoinRequest, JoinResponse, Reply, SyncResponse};
use crate::broker::offsets::{Committed, OffsetKey};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// What a transactional producer is told when it looks for its coordinator.
const NO_TRANSACTIONS: &str =
    "keel does not support transactions: there is no transaction coordinator";
/// Kafka's "not authorized operations were not asked for".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

fn now_ms<D: Disk, C: Clock, R: Rng>(broker: &Broker<D, C, R>) -> i64 {
    (broker.clock.monotonic_ns() / 1_000_000) as i64
}

/// Whether this node coordinates keys of `key_type`, and if not why (code and message; the
/// message reaches clients from FindCoordinator v1).
///
/// The coordinator is this node for every group; it needs the offsets topic to exist. There is
/// no transaction coordinator, and a transactional producer must learn that at once: librdkafka
/// retries every FindCoordinator error (so `init_transactions()` would wait out its whole
/// timeout) except TRANSACTIONAL_ID_AUTHORIZATION_FAILED and CLUSTER_AUTHORIZATION_FAILED,
/// which are fatal and show the broker's message (rd_kafka_txn_handle_FindCoordinator); the
/// Java client and kafka-python also treat the first as fatal. Of the two it is the nearer
/// meaning ("this transactional id cannot be used here"), and InitProducerId answers a
/// transactional id with it too; the message says the real reason.
fn coordinator_error<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    key_type: i8,
) -> (i16, &'static str) {
    match key_type {
        KEY_TYPE_GROUP => match broker.offsets_topic() {
            Ok(_) => (errors::NONE, ""),
            Err(e) => {
                tracing::error!(error = ?e, "the offsets topic cannot be created");
                (
                    errors::COORDINATOR_NOT_AVAILABLE,
                    "the offsets topic cannot be created",
                )
            }
        },
        KEY_TYPE_TRANSACTION => {
            tracing::info!(
                "FindCoordinator for a transactional id refused: transactions are not supported"
            );
            (
                errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                NO_TRANSACTIONS,
            )
        }
        _ => (errors::INVALID_REQUEST, "unknown coordinator key type"),
    }
}

pub fn find_coordinator<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: FindCoordinatorRequest = decode(request)?;
    if broker.cluster().is_some() && body.key_type == KEY_TYPE_GROUP {
        return find_coordinator_in_cluster(broker, request, body);
    }
    let (host, port) = broker.advertised();
    let node = broker.config.node_id;
    let (code, message) = coordinator_error(broker, body.key_type);
    let mut response = FindCoordinatorResponse::default();
    if request.version >= 4 {
        for key in &body.coordinator_keys {
            let mut coordinator = Coordinator::default();
            coordinator.key = key.clone();
            coordinator.node_id = BrokerId(if code == errors::NONE { node } else { -1 });
            coordinator.host = str_bytes(if code == errors::NONE { &host } else { "" });
            coordinator.port = if code == errors::NONE { port } else { -1 };
            coordinator.error_code = code;
            coordinator.error_message = (code != errors::NONE).then(|| str_bytes(message));
            response.coordinators.push(coordinator);
        }
    } else {
        response.error_code = code;
        response.node_id = BrokerId(if code == errors::NONE { node } else { -1 });
        response.host = str_bytes(if code == errors::NONE { &host } else { "" });
        response.port = if code == errors::NONE { port } else { -1 };
        if request.version >= 1 && code != errors::NONE {
            response.error_message = Some(str_bytes(message));
        }
    }
    encode(request, &response)
}

/// FindCoordinator for groups in a cluster: each group's coordinator is the leader of its
/// partition of `__consumer_offsets`, as the image says.
fn find_coordinator_in_cluster<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
    body: FindCoordinatorRequest,
) -> Result<Frame<D::File>, ProtocolError> {
    use crate::broker::cluster::Coordination;
    let keys: Vec<String> = if request.version >= 4 {
        body.coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![body.key.to_string()]
    };
    let mut response = FindCoordinatorResponse::default();
    for key in keys {
        let (node, host, port, code, message) = match broker.coordinator(&key) {
            Coordination::Here => {
                let (host, port) = broker.advertised();
                (broker.config.node_id, host, port, errors::NONE, "")
            }
            Coordination::Elsewhere { id, host, port } => {
                (id, host, i32::from(port), errors::NONE, "")
            }
            Coordination::Unavailable(why) => (
                -1,
                String::new(),
                -1,
                errors::COORDINATOR_NOT_AVAILABLE,
                why,
            ),
        };
        if request.version >= 4 {
            let mut coordinator = Coordinator::default();
            coordinator.key = str_bytes(&key);
            coordinator.node_id = BrokerId(node);
            coordinator.host = str_bytes(&host);
            coordinator.port = port;
            coordinator.error_code = code;
            coordinator.error_message = (code != errors::NONE).then(|| str_bytes(message));
            response.coordinators.push(coordinator);
        } else {
            response.error_code = code;
            response.node_id = BrokerId(node);
            response.host = str_bytes(&host);
            response.port = port;
            if request.version >= 1 && code != errors::NONE {
                response.error_message = Some(str_bytes(message));
            }
        }
    }
    encode(request, &response)
}

pub async fn join_group<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: JoinGroupRequest = decode(request)?;
    let client_id = request.client_id.clone().unwrap_or_default();
    let join = JoinRequest {
        group_id: body.group_id.0.to_string(),
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.clone(),
        client_host: request.client_host.clone(),
        session_timeout_ms: body.session_timeout_ms,
        rebalance_timeout_ms: if request.version >= 1 {
            body.rebalance_timeout_ms
        } else {
            body.session_timeout_ms
        },
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: request.version >= 4,
        supports_skip_assignment: request.version >= 9,
    };
    // As Kafka names members: the instance id of a static member, else the client id.
    let prefix = match (&join.instance_id, client_id.as_str()) {
        (Some(instance_id), _) => instance_id.clone(),
        (None, "") => "member".to_owned(),
        (None, client_id) => client_id.to_owned(),
    };
    let new_id = || {
        let rng = broker.rng();
        format!("{prefix}-{:016x}{:016x}", rng.next_u64(), rng.next_u64())
    };
    let elsewhere = broker.not_coordinator(&join.group_id);
    let reply = match elsewhere {
        Some(code) => Reply::Now(JoinResponse::error(code, &join.member_id)),
        None => broker.groups.join(join, now_ms(broker), new_id),
    };
    let answer = match reply {
        Reply::Now(answer) => answer,
        Reply::Later(waiting) => waiting
            .await
            .unwrap_or_else(|_| JoinResponse::error(groups::UNKNOWN_MEMBER_ID, "")),
    };
    if answer.error != errors::NONE {
        broker.metrics.error(Some(request.api_key));
    }
    let mut response = JoinGroupResponse::default();
    response.error_code = answer.error;
    response.generation_id = answer.generation;
    if request.version >= 7 {
        response.protocol_type = answer.protocol_type.as_deref().map(str_bytes);
    }
    response.protocol_name = match (answer.protocol_name.as_deref(), request.version) {
        (Some(name), _) => Some(str_bytes(name)),
        (None, v) if v >= 7 => None,
        (None, _) => Some(str_bytes("")),
    };
    response.leader = str_bytes(&answer.leader);
    response.member_id = str_bytes(&answer.member_id);
    if request.version >= 9 {
        response.skip_assignment = answer.skip_assignment;
    }
    for member in answer.members {
        let mut joined = JoinGroupResponseMember::default();
        joined.member_id = str_bytes(&member.member_id);
        if request.version >= 5 {
            joined.group_instance_id = member.instance_id.as_deref().map(str_bytes);
        }
        joined.metadata = member.metadata;
        response.members.push(joined);
    }
    encode(request, &response)
}

pub async fn sync_group<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: SyncGroupRequest = decode(request)?;
    let protocol = match (&body.protocol_type, &body.protocol_name) {
        (Some(t), Some(n)) => Some((t.as_str(), n.as_str())),
        _ => None,
    };
    let assignments: Vec<(String, Bytes)> = body
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let caller = Caller {
        member_id: body.member_id.as_str(),
        instance_id: body.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: body.generation_id,
    };
    let reply = match broker.not_coordinator(body.group_id.0.as_str()) {
        Some(code) => Reply::Now(SyncResponse::error(code)),
        None => broker.groups.sync(
            body.group_id.0.as_str(),
            caller,
            protocol,
            assignments,
            now_ms(broker),
        ),
    };
    let answer = match reply {
        Reply::Now(answer) => answer,
        Reply::Later(waiting) => waiting
            .await
            .unwrap_or_else(|_| SyncResponse::error(groups::UNKNOWN_MEMBER_ID)),
    };
    if answer.error != errors::NONE {
        broker.metrics.error(Some(request.api_key));
    }
    let mut response = SyncGroupResponse::default();
    response.error_code = answer.error;
    response.assignment = answer.assignment;
    if request.version >= 5 {
        response.protocol_type = answer.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = answer.protocol_name.as_deref().map(str_bytes);
    }
    encode(request, &response)
}

pub fn heartbeat<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: HeartbeatRequest = decode(request)?;
    let mut response = HeartbeatResponse::default();
    let caller = Caller {
        member_id: body.member_id.as_str(),
        instance_id: body.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: body.generation_id,
    };
    response.error_code = match broker.not_coordinator(body.group_id.0.as_str()) {
        Some(code) => code,
        None => broker
            .groups
            .heartbeat(body.group_id.0.as_str(), caller, now_ms(broker)),
    };
    encode(request, &response)
}

pub fn leave_group<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: LeaveGroupRequest = decode(request)?;
    let leaving: Vec<(String, Option<String>)> = if request.version >= 3 {
        body.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(body.member_id.to_string(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    let codes = match broker.not_coordinator(body.group_id.0.as_str()) {
        Some(code) if request.version >= 3 => {
            response.error_code = code;
            vec![code; leaving.len()]
        }
        Some(code) => vec![code],
        None => broker
            .groups
            .leave(body.group_id.0.as_str(), &leaving, now_ms(broker)),
    };
    if request.version >= 3 {
        // Per member, as Kafka answers; the request itself succeeded.
        for ((member_id, instance_id), code) in leaving.iter().zip(codes) {
            let mut member = MemberResponse::default();
            member.member_id = str_bytes(member_id);
            member.group_instance_id = instance_id.as_deref().map(str_bytes);
            member.error_code = code;
            response.members.push(member);
        }
    } else {
        response.error_code = codes.first().copied().unwrap_or(errors::NONE);
    }
    encode(request, &response)
}

pub fn offset_commit<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    // v0 and v1 (sarama's default) are read by hand: kafka-protocol knows v2 on.
    let (body, timestamps) = if request.version <= legacy::OFFSET_COMMIT_LEGACY_MAX {
        let commit = legacy::offset_commit(request)?;
        (commit.body, commit.timestamps)
    } else {
        (decode::<OffsetCommitRequest>(request)?, Vec::new())
    };
    let group_id = body.group_id.0.to_string();
    let now = broker.clock.now_ms();
    let mut timestamps = timestamps.into_iter();
    let mut entries = Vec::new();
    for topic in &body.topics {
        for partition in &topic.partitions {
            let commit_timestamp = timestamps.next().flatten().unwrap_or(now);
            entries.push((
                OffsetKey {
                    group: group_id.clone(),
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                },
                Committed {
                    offset: partition.committed_offset,
                    leader_epoch: if request.version >= 6 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: partition
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    commit_timestamp,
                },
            ));
        }
    }
    let partition_ok = |key: &OffsetKey| {
        broker
            .topic(&key.topic)
            .is_some_and(|t| usize::try_from(key.partition).is_ok_and(|p| p < t.partitions.len()))
    };
    let caller = Caller {
        member_id: body.member_id.as_str(),
        instance_id: body.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: body.generation_id_or_member_epoch,
    };
    let codes = match broker.not_coordinator(&group_id) {
        Some(code) => Err(code),
        None => broker.groups.commit(
            &group_id,
            caller,
            entries,
            partition_ok,
            now_ms(broker),
            |batch| {
                let records: Vec<(OffsetKey, Option<Committed>)> = batch
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect();
                broker.write_offsets(&batch.group_id, &records)
            },
        ),
    };
    let mut codes = match codes {
        Ok(codes) => codes.into_iter(),
        Err(code) => {
            let count = body.topics.iter().map(|t| t.partitions.len()).sum();
            vec![code; count].into_iter()
        }
    };
    let mut response = OffsetCommitResponse::default();
    for topic in &body.topics {
        let mut answer = OffsetCommitResponseTopic::default();
        answer.name = topic.name.clone();
        for partition in &topic.partitions {
            let mut result = OffsetCommitResponsePartition::default();
            result.partition_index = partition.partition_index;
            result.error_code = codes.next().unwrap_or(errors::UNKNOWN_SERVER_ERROR);
            if result.error_code != errors::NONE {
                broker.metrics.error(Some(request.api_key));
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    if request.version <= legacy::OFFSET_COMMIT_LEGACY_MAX {
        return encode_at(request, legacy::OFFSET_COMMIT_RESPONSE_VERSION, &response);
    }
    encode(request, &response)
}

/// The asked partitions as (topic, partition) pairs; `None` means all of the group's.
fn asked(topics: Option<Vec<(String, Vec<i32>)>>) -> Option<Vec<(String, i32)>> {
    topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(name, partitions)| partitions.into_iter().map(move |p| (name.clone(), p)))
            .collect()
    })
}

/// A topic's committed offsets by partition (`None`: nothing committed).
type TopicCommits = (String, Vec<(i32, Option<Committed>)>);

/// Committed offsets grouped by topic, in the order asked.
fn by_topic(found: Vec<((String, i32), Option<Committed>)>) -> Vec<TopicCommits> {
    let mut topics: Vec<TopicCommits> = Vec::new();
    for ((topic, partition), committed) in found {
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, partitions)) => partitions.push((partition, committed)),
            None => topics.push((topic, vec![(partition, committed)])),
        }
    }
    topics
}

pub fn offset_fetch<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: OffsetFetchRequest = decode(request)?;
    let mut response = OffsetFetchResponse::default();
    if request.version >= 8 {
        for group in &body.groups {
            let topics = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let mut answer = OffsetFetchResponseGroup::default();
            answer.group_id = group.group_id.clone();
            if let Some(code) = broker.not_coordinator(group.group_id.0.as_str()) {
                answer.error_code = code;
                response.groups.push(answer);
                continue;
            }
            let found = broker
                .groups
                .committed(group.group_id.0.as_str(), asked(topics).as_deref());
            for (topic, partitions) in by_topic(found) {
                let mut topic_answer = OffsetFetchResponseTopics::default();
                topic_answer.name = topic_name(&topic);
                for (index, committed) in partitions {
                    let mut p = OffsetFetchResponsePartitions::default();
                    p.partition_index = index;
                    p.committed_offset = committed.as_ref().map_or(-1, |c| c.offset);
                    p.committed_leader_epoch = committed.as_ref().map_or(-1, |c| c.leader_epoch);
                    p.metadata = Some(str_bytes(committed.as_ref().map_or("", |c| &c.metadata)));
                    topic_answer.partitions.push(p);
                }
                answer.topics.push(topic_answer);
            }
            response.groups.push(answer);
        }
    } else {
        let topics = body.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        if let Some(code) = broker.not_coordinator(body.group_id.0.as_str()) {
            // v0 and v1 have no error of the whole request: each asked partition carries it.
            if request.version >= 2 {
                response.error_code = code;
            } else {
                for topic in body.topics.iter().flatten() {
                    let mut topic_answer = OffsetFetchResponseTopic::default();
                    topic_answer.name = topic.name.clone();
                    for &index in &topic.partition_indexes {
                        let mut p = OffsetFetchResponsePartition::default();
                        p.partition_index = index;
                        p.committed_offset = -1;
                        p.error_code = code;
                        topic_answer.partitions.push(p);
                    }
                    response.topics.push(topic_answer);
                }
            }
            return encode(request, &response);
        }
        let found = broker
            .groups
            .committed(body.group_id.0.as_str(), asked(topics).as_deref());
        for (topic, partitions) in by_topic(found) {
            let mut topic_answer = OffsetFetchResponseTopic::default();
            topic_answer.name = topic_name(&topic);
            for (index, committed) in partitions {
                let mut p = OffsetFetchResponsePartition::default();
                p.partition_index = index;
                p.committed_offset = committed.as_ref().map_or(-1, |c| c.offset);
                p.committed_leader_epoch = if request.version >= 5 {
                    committed.as_ref().map_or(-1, |c| c.leader_epoch)
                } else {
                    -1
                };
                p.metadata = Some(str_bytes(committed.as_ref().map_or("", |c| &c.metadata)));
                topic_answer.partitions.push(p);
            }
            response.topics.push(topic_answer);
        }
    }
    encode(request, &response)
}

pub fn list_groups<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: ListGroupsRequest = decode(request)?;
    let mut response = ListGroupsResponse::default();
    for (group_id, protocol_type, state) in broker.groups.list() {
        let state_ok = body.states_filter.is_empty()
            || body
                .states_filter
                .iter()
                .any(|s| s.as_str().eq_ignore_ascii_case(state.name()));
        let type_ok = body.types_filter.is_empty()
            || body
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case("classic"));
        if !(state_ok && type_ok) {
            continue;
        }
        let mut listed = ListedGroup::default();
        listed.group_id = GroupId(str_bytes(&group_id));
        listed.protocol_type = str_bytes(&protocol_type);
        if request.version >= 4 {
            listed.group_state = str_bytes(state.name());
        }
        if request.version >= 5 {
            listed.group_type = str_bytes("classic");
        }
        response.groups.push(listed);
    }
    encode(request, &response)
}

pub fn describe_groups<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DescribeGroupsRequest = decode(request)?;
    let mut response = DescribeGroupsResponse::default();
    for group_id in &body.groups {
        let mut described = DescribedGroup::default();
        described.group_id = group_id.clone();
        described.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        if let Some(code) = broker.not_coordinator(group_id.0.as_str()) {
            described.error_code = code;
            described.group_state = str_bytes("");
            response.groups.push(described);
            continue;
        }
        match broker.groups.describe(group_id.0.as_str()) {
            // Kafka describes an unknown group as Dead with no members.
            None => described.group_state = str_bytes("Dead"),
            Some(group) => {
                described.group_state = str_bytes(group.state.name());
                described.protocol_type = str_bytes(&group.protocol_type);
                described.protocol_data = str_bytes(&group.protocol);
                for member in group.members {
                    let mut m = DescribedGroupMember::default();
                    m.member_id = str_bytes(&member.member_id);
                    if request.version >= 4 {
                        m.group_instance_id = member.instance_id.as_deref().map(str_bytes);
                    }
                    m.client_id = str_bytes(&member.client_id);
                    m.client_host = str_bytes(&member.client_host);
                    m.member_metadata = member.metadata;
                    m.member_assignment = member.assignment;
                    described.members.push(m);
                }
            }
        }
        response.groups.push(described);
    }
    encode(request, &response)
}

pub fn delete_groups<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: DeleteGroupsRequest = decode(request)?;
    let mut response = DeleteGroupsResponse::default();
    for group_id in &body.groups_names {
        let name = group_id.0.as_str();
        if let Some(code) = broker.not_coordinator(name) {
            let mut result = DeletableGroupResult::default();
            result.group_id = group_id.clone();
            result.error_code = code;
            response.results.push(result);
            continue;
        }
        let code = broker.groups.delete(name, |keys| {
            if keys.is_empty() {
                return Ok(());
            }
            let tombstones: Vec<(OffsetKey, Option<Committed>)> =
                keys.iter().map(|k| (k.clone(), None)).collect();
            broker.write_offsets(name, &tombstones)
        });
        let mut result = DeletableGroupResult::default();
        result.group_id = group_id.clone();
        result.error_code = code;
        response.results.push(result);
    }
    encode(request, &response)
}
