//! The group and idempotent-producer APIs at every version keel advertises (as in `tests`), and
//! committed offsets and producer state across a restart of the broker on the same disk.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::tests::{
    answer_frame, batch, create_topic, decode_all, exchange, versions, FixedClock, TestBroker,
};
use crate::broker::config::BrokerConfig;
use crate::broker::groups;
use crate::broker::Broker;
use crate::io::mem::MemDisk;
use crate::io::os::OsRng;
use crate::log::batch::{BatchBuilder, NewRecord};

fn group_broker(disk: MemDisk) -> Arc<TestBroker> {
    let mut config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    config.groups.initial_rebalance_delay_ms = 0;
    config.groups.offsets_partitions = 3;
    Arc::new(Broker::open(disk, FixedClock, OsRng::default(), config).unwrap())
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn join_body(group: &str, member: &str, version: i16) -> JoinGroupRequest {
    let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
    protocol.name = s("range");
    protocol.metadata = Bytes::from_static(b"subscription");
    let mut body = JoinGroupRequest::default();
    body.group_id = GroupId(s(group));
    body.session_timeout_ms = 10_000;
    if version >= 1 {
        body.rebalance_timeout_ms = 10_000;
    }
    body.member_id = s(member);
    body.protocol_type = s("consumer");
    body.protocols = vec![protocol];
    body
}

/// Joins `group` alone at `version` (twice from v4: the first answer gives the member id).
/// Returns (member id, generation).
fn join(broker: &TestBroker, group: &str, version: i16) -> (String, i32) {
    let bytes = exchange(
        broker,
        ApiKey::JoinGroup,
        version,
        &join_body(group, "", version),
    )
    .unwrap();
    let mut response: JoinGroupResponse = decode_all(bytes, version, "JoinGroup");
    if version >= 4 {
        assert_eq!(
            response.error_code,
            groups::MEMBER_ID_REQUIRED,
            "v{version}"
        );
        let id = response.member_id.to_string();
        assert!(id.starts_with("matrix-"), "{id}");
        let bytes = exchange(
            broker,
            ApiKey::JoinGroup,
            version,
            &join_body(group, &id, version),
        )
        .unwrap();
        response = decode_all(bytes, version, "JoinGroup");
    }
    assert_eq!(response.error_code, 0, "JoinGroup v{version}");
    assert_eq!(response.generation_id, 1, "v{version}");
    assert_eq!(response.leader, response.member_id, "v{version}");
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1);
    assert_eq!(&response.members[0].metadata[..], b"subscription");
    (response.member_id.to_string(), response.generation_id)
}

fn sync(broker: &TestBroker, group: &str, member: &str, generation: i32, version: i16) -> i16 {
    let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
    assignment.member_id = s(member);
    assignment.assignment = Bytes::from_static(b"partitions");
    let mut body = SyncGroupRequest::default();
    body.group_id = GroupId(s(group));
    body.generation_id = generation;
    body.member_id = s(member);
    if version >= 5 {
        body.protocol_type = Some(s("consumer"));
        body.protocol_name = Some(s("range"));
    }
    body.assignments = vec![assignment];
    let bytes = exchange(broker, ApiKey::SyncGroup, version, &body).unwrap();
    let response: SyncGroupResponse = decode_all(bytes, version, "SyncGroup");
    if response.error_code == 0 {
        assert_eq!(&response.assignment[..], b"partitions");
    }
    response.error_code
}

fn heartbeat(broker: &TestBroker, group: &str, member: &str, generation: i32, version: i16) -> i16 {
    let mut body = HeartbeatRequest::default();
    body.group_id = GroupId(s(group));
    body.generation_id = generation;
    body.member_id = s(member);
    let bytes = exchange(broker, ApiKey::Heartbeat, version, &body).unwrap();
    decode_all::<HeartbeatResponse>(bytes, version, "Heartbeat").error_code
}

fn commit(
    broker: &TestBroker,
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
    version: i16,
) -> i16 {
    let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = offset;
    partition.committed_metadata = Some(s("meta"));
    let mut topic = offset_commit_request::OffsetCommitRequestTopic::default();
    topic.name = super::topic_name("data");
    topic.partitions = vec![partition];
    let mut body = OffsetCommitRequest::default();
    body.group_id = GroupId(s(group));
    body.generation_id_or_member_epoch = generation;
    body.member_id = s(member);
    if (2..=4).contains(&version) {
        body.retention_time_ms = -1;
    }
    body.topics = vec![topic];
    let response: OffsetCommitResponse = if version <= super::legacy::OFFSET_COMMIT_LEGACY_MAX {
        // kafka-protocol cannot encode v0/v1: sarama's bytes, answered as v2's.
        let mut header = RequestHeader::default();
        header.request_api_key = ApiKey::OffsetCommit as i16;
        header.request_api_version = version;
        header.correlation_id = 7;
        let mut frame = bytes::BytesMut::new();
        header.encode(&mut frame, 1).unwrap();
        frame.extend_from_slice(&super::legacy::encode_offset_commit(&body, version));
        let bytes = answer_frame(broker, ApiKey::OffsetCommit, version, frame).unwrap();
        decode_all(bytes, 2, "OffsetCommit")
    } else {
        let bytes = exchange(broker, ApiKey::OffsetCommit, version, &body).unwrap();
        decode_all(bytes, version, "OffsetCommit")
    };
    response.topics[0].partitions[0].error_code
}

fn fetch_committed(broker: &TestBroker, group: &str, version: i16) -> i64 {
    let mut body = OffsetFetchRequest::default();
    if version >= 8 {
        let mut topic = offset_fetch_request::OffsetFetchRequestTopics::default();
        topic.name = super::topic_name("data");
        topic.partition_indexes = vec![0];
        let mut asked = offset_fetch_request::OffsetFetchRequestGroup::default();
        asked.group_id = GroupId(s(group));
        asked.topics = Some(vec![topic]);
        if version >= 9 {
            asked.member_epoch = -1;
        }
        body.groups = vec![asked];
    } else {
        let mut topic = offset_fetch_request::OffsetFetchRequestTopic::default();
        topic.name = super::topic_name("data");
        topic.partition_indexes = vec![0];
        body.group_id = GroupId(s(group));
        body.topics = Some(vec![topic]);
    }
    let bytes = exchange(broker, ApiKey::OffsetFetch, version, &body).unwrap();
    let response: OffsetFetchResponse = decode_all(bytes, version, "OffsetFetch");
    if version >= 8 {
        let partition = &response.groups[0].topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        partition.committed_offset
    } else {
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        partition.committed_offset
    }
}

#[test]
fn find_coordinator_names_this_broker_at_every_version() {
    let broker = group_broker(MemDisk::new());
    for version in versions(ApiKey::FindCoordinator) {
        let mut body = FindCoordinatorRequest::default();
        if version >= 4 {
            body.coordinator_keys = vec![s("g1"), s("g2")];
        } else {
            body.key = s("g1");
        }
        let bytes = exchange(&broker, ApiKey::FindCoordinator, version, &body).unwrap();
        let response: FindCoordinatorResponse = decode_all(bytes, version, "FindCoordinator");
        if version >= 4 {
            assert_eq!(response.coordinators.len(), 2);
            assert!(response
                .coordinators
                .iter()
                .all(|c| c.error_code == 0 && c.node_id.0 == 0));
        } else {
            assert_eq!(
                (response.error_code, response.node_id.0),
                (0, 0),
                "v{version}"
            );
            assert_eq!(response.port, 9092);
        }
    }
    // The coordinator's topic now exists, internal, with the configured partitions.
    assert_eq!(
        broker.topic("__consumer_offsets").unwrap().partitions.len(),
        3
    );
}

/// There is no transaction coordinator: a transactional id's FindCoordinator fails with an
/// error clients treat as fatal (so `init_transactions()` fails at once), saying why from v1,
/// per key from v4 (batched keys); an unknown key type is an invalid request.
#[test]
fn find_coordinator_refuses_transactional_ids_at_every_version() {
    let broker = group_broker(MemDisk::new());
    for version in versions(ApiKey::FindCoordinator) {
        for (key_type, code) in [
            (1, super::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            (7, super::errors::INVALID_REQUEST),
        ] {
            if version == 0 && key_type != 0 {
                continue; // v0 has no key type: it asks for a group
            }
            let mut body = FindCoordinatorRequest::default();
            body.key_type = key_type;
            if version >= 4 {
                body.coordinator_keys = vec![s("tx1"), s("tx2")];
            } else {
                body.key = s("tx1");
            }
            let bytes = exchange(&broker, ApiKey::FindCoordinator, version, &body).unwrap();
            let response: FindCoordinatorResponse = decode_all(bytes, version, "FindCoordinator");
            let answers: Vec<(i16, i32, Option<String>)> = if version >= 4 {
                assert_eq!(response.error_code, 0, "v{version}: errors are per key");
                assert_eq!(response.coordinators.len(), 2);
                assert_eq!(response.coordinators[1].key.as_str(), "tx2");
                response
                    .coordinators
                    .iter()
                    .map(|c| {
                        let message = c.error_message.as_ref().map(|m| m.to_string());
                        (c.error_code, c.node_id.0, message)
                    })
                    .collect()
            } else {
                let message = response.error_message.as_ref().map(|m| m.to_string());
                vec![(response.error_code, response.node_id.0, message)]
            };
            for (error, node, message) in answers {
                assert_eq!((error, node), (code, -1), "v{version} key type {key_type}");
                if key_type == 1 {
                    let message = message.expect("a message from v1");
                    assert!(
                        message.contains("does not support transactions"),
                        "{message}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_group_joins_syncs_heartbeats_commits_and_leaves_at_every_version() {
    let broker = group_broker(MemDisk::new());
    create_topic(&broker, "data", 1);
    for version in versions(ApiKey::JoinGroup) {
        join(&broker, &format!("join-{version}"), version);
    }
    for version in versions(ApiKey::SyncGroup) {
        let group = format!("sync-{version}");
        let (member, generation) = join(&broker, &group, 5);
        assert_eq!(
            sync(&broker, &group, &member, generation + 1, version),
            groups::ILLEGAL_GENERATION
        );
        assert_eq!(
            sync(&broker, &group, &member, generation, version),
            0,
            "v{version}"
        );
        // Stable: a repeated sync gets the same assignment.
        assert_eq!(
            sync(&broker, &group, &member, generation, version),
            0,
            "v{version}"
        );
    }
    let (member, generation) = join(&broker, "main", 9);
    assert_eq!(sync(&broker, "main", &member, generation, 5), 0);
    for version in versions(ApiKey::Heartbeat) {
        assert_eq!(
            heartbeat(&broker, "main", &member, generation, version),
            0,
            "v{version}"
        );
        assert_eq!(
            heartbeat(&broker, "main", &member, generation - 1, version),
            groups::ILLEGAL_GENERATION
        );
        assert_eq!(
            heartbeat(&broker, "main", "stranger", generation, version),
            groups::UNKNOWN_MEMBER_ID
        );
    }
    // v0 carries no member: a commit to a group with members is UNKNOWN_MEMBER_ID, as in Kafka.
    assert_eq!(
        commit(&broker, "main", "", -1, 5, 0),
        groups::UNKNOWN_MEMBER_ID
    );
    for version in 1..=*versions(ApiKey::OffsetCommit).end() {
        let offset = i64::from(version) * 10;
        assert_eq!(
            commit(&broker, "main", &member, generation, offset, version),
            0,
            "v{version}"
        );
        assert_eq!(
            commit(&broker, "main", &member, generation + 1, 1, version),
            groups::ILLEGAL_GENERATION
        );
        for fetch_version in versions(ApiKey::OffsetFetch) {
            assert_eq!(fetch_committed(&broker, "main", fetch_version), offset);
        }
    }
    for version in versions(ApiKey::ListGroups) {
        let bytes = exchange(
            &broker,
            ApiKey::ListGroups,
            version,
            &ListGroupsRequest::default(),
        )
        .unwrap();
        let response: ListGroupsResponse = decode_all(bytes, version, "ListGroups");
        assert!(response
            .groups
            .iter()
            .any(|g| g.group_id.0.as_str() == "main"));
    }
    for version in versions(ApiKey::DescribeGroups) {
        let mut body = DescribeGroupsRequest::default();
        body.groups = vec![GroupId(s("main")), GroupId(s("nobody"))];
        let bytes = exchange(&broker, ApiKey::DescribeGroups, version, &body).unwrap();
        let response: DescribeGroupsResponse = decode_all(bytes, version, "DescribeGroups");
        let main = &response.groups[0];
        assert_eq!(main.group_state.as_str(), "Stable", "v{version}");
        assert_eq!(main.protocol_data.as_str(), "range");
        assert_eq!(main.members.len(), 1);
        assert_eq!(&main.members[0].member_assignment[..], b"partitions");
        assert_eq!(response.groups[1].group_state.as_str(), "Dead");
    }
    // A non-empty group cannot be deleted; after the member leaves it can, once.
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![GroupId(s("main"))];
    let bytes = exchange(&broker, ApiKey::DeleteGroups, 2, &delete).unwrap();
    let response: DeleteGroupsResponse = decode_all(bytes, 2, "DeleteGroups");
    assert_eq!(response.results[0].error_code, groups::NON_EMPTY_GROUP);
    for version in versions(ApiKey::LeaveGroup) {
        let group = format!("leave-{version}");
        let (member, _) = join(&broker, &group, 5);
        let mut body = LeaveGroupRequest::default();
        body.group_id = GroupId(s(&group));
        if version >= 3 {
            let mut identity = leave_group_request::MemberIdentity::default();
            identity.member_id = s(&member);
            body.members = vec![identity];
        } else {
            body.member_id = s(&member);
        }
        let bytes = exchange(&broker, ApiKey::LeaveGroup, version, &body).unwrap();
        let response: LeaveGroupResponse = decode_all(bytes, version, "LeaveGroup");
        assert_eq!(response.error_code, 0, "v{version}");
        if version >= 3 {
            assert_eq!(response.members[0].error_code, 0);
        }
        let described = broker.groups.describe(&group).unwrap();
        assert_eq!(described.state, groups::GroupState::Empty);
    }
    for version in versions(ApiKey::DeleteGroups) {
        let mut body = DeleteGroupsRequest::default();
        body.groups_names = vec![GroupId(s(&format!("leave-{version}")))];
        let bytes = exchange(&broker, ApiKey::DeleteGroups, version, &body).unwrap();
        let response: DeleteGroupsResponse = decode_all(bytes, version, "DeleteGroups");
        assert_eq!(response.results[0].error_code, 0, "v{version}");
        let bytes = exchange(&broker, ApiKey::DeleteGroups, version, &body).unwrap();
        let response: DeleteGroupsResponse = decode_all(bytes, version, "DeleteGroups");
        assert_eq!(response.results[0].error_code, groups::GROUP_ID_NOT_FOUND);
    }
}

fn static_join(broker: &TestBroker, group: &str, version: i16) -> JoinGroupResponse {
    let mut body = join_body(group, "", version);
    body.group_instance_id = Some(s("i"));
    let bytes = exchange(broker, ApiKey::JoinGroup, version, &body).unwrap();
    decode_all(bytes, version, "JoinGroup")
}

fn static_heartbeat(broker: &TestBroker, group: &str, member: &str, version: i16) -> i16 {
    let mut body = HeartbeatRequest::default();
    body.group_id = GroupId(s(group));
    body.generation_id = 1;
    body.member_id = s(member);
    if version >= 3 {
        body.group_instance_id = Some(s("i"));
    }
    let bytes = exchange(broker, ApiKey::Heartbeat, version, &body).unwrap();
    decode_all::<HeartbeatResponse>(bytes, version, "Heartbeat").error_code
}

/// Static membership on the wire: JoinGroup v5+ carries the instance id (no MEMBER_ID_REQUIRED
/// round trip for it); a second process of the instance takes the member's place at once, told
/// it leads only from v9 (skip_assignment); the old member id is then fenced by every request
/// that names the instance (SyncGroup and Heartbeat v3+, OffsetCommit v7+, LeaveGroup v3+), and
/// LeaveGroup v3+ removes a static member by instance id alone.
#[test]
fn static_members_are_replaced_and_fenced_at_every_version() {
    let broker = group_broker(MemDisk::new());
    create_topic(&broker, "data", 1);
    let mut replaced = std::collections::BTreeMap::new();
    for version in 5..=*versions(ApiKey::JoinGroup).end() {
        let group = format!("static-{version}");
        let first = static_join(&broker, &group, version);
        assert_eq!(first.error_code, 0, "v{version}: no MEMBER_ID_REQUIRED");
        let old = first.member_id.to_string();
        assert!(old.starts_with("i-"), "named after the instance: {old}");
        assert_eq!(
            (first.generation_id, first.leader.as_str()),
            (1, old.as_str())
        );
        assert_eq!(
            first.members[0].group_instance_id.as_deref(),
            Some("i"),
            "v{version}"
        );
        assert_eq!(sync(&broker, &group, &old, 1, 3), 0);
        let second = static_join(&broker, &group, version);
        let new = second.member_id.to_string();
        assert_eq!(
            (second.error_code, second.generation_id),
            (0, 1),
            "v{version}"
        );
        assert_ne!(new, old);
        if version >= 9 {
            assert_eq!(second.leader.as_str(), new, "v{version}");
            assert_eq!(second.members.len(), 1);
            assert!(second.skip_assignment);
        } else {
            assert_eq!(second.leader.as_str(), old, "v{version}");
            assert!(second.members.is_empty());
        }
        let described = broker.groups.describe(&group).unwrap();
        assert_eq!(described.state, groups::GroupState::Stable, "v{version}");
        assert_eq!(described.members.len(), 1);
        assert_eq!(described.members[0].member_id, new);
        replaced.insert(group, old);
    }
    // Fencing, by the request versions that carry the instance id.
    let first = static_join(&broker, "fenced", 5);
    let fenced_id = first.member_id.to_string();
    assert_eq!(sync(&broker, "fenced", &fenced_id, 1, 3), 0);
    let current = static_join(&broker, "fenced", 5).member_id.to_string();
    for version in versions(ApiKey::Heartbeat) {
        let expected = if version >= 3 {
            groups::FENCED_INSTANCE_ID
        } else {
            groups::UNKNOWN_MEMBER_ID
        };
        assert_eq!(
            static_heartbeat(&broker, "fenced", &fenced_id, version),
            expected,
            "v{version}"
        );
        assert_eq!(static_heartbeat(&broker, "fenced", &current, version), 0);
    }
    for version in 3..=*versions(ApiKey::SyncGroup).end() {
        let mut body = SyncGroupRequest::default();
        body.group_id = GroupId(s("fenced"));
        body.generation_id = 1;
        body.member_id = s(&fenced_id);
        body.group_instance_id = Some(s("i"));
        let bytes = exchange(&broker, ApiKey::SyncGroup, version, &body).unwrap();
        let response: SyncGroupResponse = decode_all(bytes, version, "SyncGroup");
        assert_eq!(
            response.error_code,
            groups::FENCED_INSTANCE_ID,
            "v{version}"
        );
    }
    for version in 7..=*versions(ApiKey::OffsetCommit).end() {
        let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
        partition.committed_offset = 1;
        let mut topic = offset_commit_request::OffsetCommitRequestTopic::default();
        topic.name = super::topic_name("data");
        topic.partitions = vec![partition];
        let mut body = OffsetCommitRequest::default();
        body.group_id = GroupId(s("fenced"));
        body.generation_id_or_member_epoch = 1;
        body.member_id = s(&fenced_id);
        body.group_instance_id = Some(s("i"));
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::OffsetCommit, version, &body).unwrap();
        let response: OffsetCommitResponse = decode_all(bytes, version, "OffsetCommit");
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            groups::FENCED_INSTANCE_ID,
            "v{version}"
        );
    }
    for version in 3..=*versions(ApiKey::LeaveGroup).end() {
        let group = format!("static-{}", version + 4);
        let mut fenced = leave_group_request::MemberIdentity::default();
        fenced.member_id = s(&replaced[&group]);
        fenced.group_instance_id = Some(s("i"));
        let mut by_instance = leave_group_request::MemberIdentity::default();
        by_instance.group_instance_id = Some(s("i"));
        let mut body = LeaveGroupRequest::default();
        body.group_id = GroupId(s(&group));
        body.members = vec![fenced, by_instance];
        let bytes = exchange(&broker, ApiKey::LeaveGroup, version, &body).unwrap();
        let response: LeaveGroupResponse = decode_all(bytes, version, "LeaveGroup");
        let codes: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
        assert_eq!(
            (response.error_code, codes),
            (0, vec![groups::FENCED_INSTANCE_ID, 0]),
            "v{version}: {group}"
        );
        assert_eq!(response.members[1].group_instance_id.as_deref(), Some("i"));
        let described = broker.groups.describe(&group).unwrap();
        assert_eq!(
            described.state,
            groups::GroupState::Empty,
            "its only member left"
        );
        assert!(described.members.is_empty());
    }
}

#[test]
fn committed_offsets_survive_a_restart_and_deleted_groups_stay_deleted() {
    let disk = MemDisk::new();
    let broker = group_broker(disk.clone());
    create_topic(&broker, "data", 1);
    // A standalone consumer's commit (no member, generation -1), then a group's.
    assert_eq!(commit(&broker, "standalone", "", -1, 11, 7), 0);
    let (member, generation) = join(&broker, "group", 7);
    assert_eq!(sync(&broker, "group", &member, generation, 3), 0);
    assert_eq!(commit(&broker, "group", &member, generation, 5, 8), 0);
    assert_eq!(commit(&broker, "group", &member, generation, 7, 8), 0);
    assert_eq!(commit(&broker, "gone", "", -1, 3, 8), 0);
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![GroupId(s("gone"))];
    exchange(&broker, ApiKey::DeleteGroups, 2, &delete).unwrap();
    broker.close();
    drop(broker);
    let broker = group_broker(disk);
    assert_eq!(fetch_committed(&broker, "standalone", 7), 11);
    assert_eq!(fetch_committed(&broker, "group", 9), 7);
    assert_eq!(fetch_committed(&broker, "gone", 9), -1);
    // The old member is unknown to the restarted coordinator and must rejoin.
    assert_eq!(
        heartbeat(&broker, "group", &member, generation, 4),
        groups::UNKNOWN_MEMBER_ID
    );
}

fn idempotent_batch(producer_id: i64, sequence: i32, count: usize) -> Bytes {
    let records: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord {
            timestamp: 1_699_999_999_000 + i as i64,
            key: None,
            value: Some(format!("v{sequence}-{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    let builder = BatchBuilder {
        producer_id,
        producer_epoch: 0,
        base_sequence: sequence,
        ..BatchBuilder::default()
    };
    Bytes::from(builder.build(&records).unwrap())
}

fn produce(broker: &TestBroker, records: Bytes, version: i16) -> (i16, i64) {
    let mut partition = produce_request::PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records);
    let mut topic = produce_request::TopicProduceData::default();
    topic.name = super::topic_name("idem");
    topic.partition_data = vec![partition];
    let mut body = ProduceRequest::default();
    body.acks = -1;
    body.timeout_ms = 1000;
    body.topic_data = vec![topic];
    let bytes = exchange(broker, ApiKey::Produce, version, &body).unwrap();
    let response: ProduceResponse = decode_all(bytes, version, "Produce");
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

#[test]
fn idempotent_producers_get_ids_and_retries_are_not_written_twice() {
    let disk = MemDisk::new();
    let broker = group_broker(disk.clone());
    create_topic(&broker, "idem", 1);
    let mut ids = Vec::new();
    for version in versions(ApiKey::InitProducerId) {
        let mut body = InitProducerIdRequest::default();
        body.transactional_id = None;
        body.transaction_timeout_ms = 60_000;
        body.producer_id = ProducerId(-1);
        body.producer_epoch = -1;
        let bytes = exchange(&broker, ApiKey::InitProducerId, version, &body).unwrap();
        let response: InitProducerIdResponse = decode_all(bytes, version, "InitProducerId");
        assert_eq!(
            (response.error_code, response.producer_epoch),
            (0, 0),
            "v{version}"
        );
        ids.push(response.producer_id.0);
    }
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    let pid = ids[0];
    assert_eq!(produce(&broker, idempotent_batch(pid, 0, 3), 9), (0, 0));
    assert_eq!(produce(&broker, idempotent_batch(pid, 3, 2), 9), (0, 3));
    // A retry of either batch is acknowledged at its first offset and not written again.
    assert_eq!(produce(&broker, idempotent_batch(pid, 0, 3), 9), (0, 0));
    assert_eq!(produce(&broker, idempotent_batch(pid, 3, 2), 3), (0, 3));
    // A gap is refused.
    assert_eq!(produce(&broker, idempotent_batch(pid, 9, 1), 9).0, 45);
    let end = |b: &TestBroker| {
        b.topic("idem").unwrap().partitions[0]
            .log()
            .as_ref()
            .unwrap()
            .next_offset()
    };
    assert_eq!(end(&broker), 5);
    // After a restart the state is rebuilt: a retry is still a duplicate.
    broker.close();
    drop(broker);
    let broker = group_broker(disk);
    assert_eq!(produce(&broker, idempotent_batch(pid, 3, 2), 9), (0, 3));
    assert_eq!(produce(&broker, idempotent_batch(pid, 5, 1), 9), (0, 5));
    assert_eq!(end(&broker), 6);
    // New ids after the restart never repeat the old ones.
    let mut body = InitProducerIdRequest::default();
    body.transactional_id = None;
    let bytes = exchange(&broker, ApiKey::InitProducerId, 4, &body).unwrap();
    let response: InitProducerIdResponse = decode_all(bytes, 4, "InitProducerId");
    assert!(!ids.contains(&response.producer_id.0));
}

#[test]
fn producer_state_is_rebuilt_from_the_log_without_a_snapshot() {
    let disk = MemDisk::new();
    let broker = group_broker(disk.clone());
    create_topic(&broker, "idem", 1);
    assert_eq!(produce(&broker, idempotent_batch(77, 0, 4), 9), (0, 0));
    assert_eq!(produce(&broker, batch(2), 9), (0, 4));
    // No clean close: the broker is dropped as a kill would leave it (the page cache survives).
    drop(broker);
    let broker = group_broker(disk);
    assert_eq!(produce(&broker, idempotent_batch(77, 0, 4), 9), (0, 0));
    assert_eq!(produce(&broker, idempotent_batch(77, 4, 1), 9), (0, 6));
}

fn keyed_batch(producer_id: i64, sequence: i32, key: &str, value: &str) -> Bytes {
    let record = NewRecord {
        timestamp: 1_699_999_999_000,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
    };
    let builder = BatchBuilder {
        producer_id,
        producer_epoch: if producer_id >= 0 { 0 } else { -1 },
        base_sequence: if producer_id >= 0 { sequence } else { -1 },
        ..BatchBuilder::default()
    };
    Bytes::from(builder.build(&[record]).unwrap())
}

/// Compaction removes every record of an idempotent producer's last batch (a later producer
/// overwrote its key), yet keeps the batch, empty: after a crash the producer state is rebuilt
/// from batch headers, and a retry of that batch must still be recognised.
#[test]
fn compaction_keeps_an_idempotent_producers_last_batch() {
    let disk = MemDisk::new();
    let broker = group_broker(disk.clone());
    let overrides = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    broker.create_topic("idem", 1, overrides, false).unwrap();
    assert_eq!(produce(&broker, keyed_batch(5, 0, "a", "first"), 9), (0, 0));
    for i in 0..60 {
        let (code, _) = produce(&broker, keyed_batch(-1, 0, "a", &format!("later-{i}")), 9);
        assert_eq!(code, 0);
    }
    crate::io::os::block_on(broker.flush_due());
    assert!(broker.compact_due() > 0, "nothing was compacted");
    let first_batch_records = |b: &TestBroker| {
        let topic = b.topic("idem").unwrap();
        let mut guard = topic.partitions[0].log();
        let log = guard.as_mut().unwrap();
        let bytes = log.read_copy(0, 1 << 20, log.next_offset()).unwrap();
        let header = crate::log::batch::BatchHeader::parse(&bytes).unwrap();
        (header.base_offset, header.producer_id, header.records_count)
    };
    assert_eq!(first_batch_records(&broker), (0, 5, 0), "kept, empty");
    // A crash (no clean close, so no producer snapshot), then the producer's retry.
    drop(broker);
    let broker = group_broker(disk);
    assert_eq!(produce(&broker, keyed_batch(5, 0, "a", "first"), 9), (0, 0));
    assert_eq!(produce(&broker, keyed_batch(5, 1, "b", "next"), 9), (0, 61));
}

fn session_fetch(
    broker: &TestBroker,
    version: i16,
    session: (i32, i32),
    partitions: &[(i32, i64)],
    forgotten: &[i32],
) -> FetchResponse {
    let id = broker.topic("sessions").unwrap().id;
    let topic_of = |partitions: Vec<fetch_request::FetchPartition>| {
        let mut topic = fetch_request::FetchTopic::default();
        if version >= 13 {
            topic.topic_id = uuid::Uuid::from_bytes(id);
        } else {
            topic.topic = super::topic_name("sessions");
        }
        topic.partitions = partitions;
        topic
    };
    let wanted: Vec<fetch_request::FetchPartition> = partitions
        .iter()
        .map(|&(index, offset)| {
            let mut p = fetch_request::FetchPartition::default();
            p.partition = index;
            p.fetch_offset = offset;
            p.partition_max_bytes = 1 << 20;
            p
        })
        .collect();
    let mut body = FetchRequest::default();
    body.max_wait_ms = 0;
    body.max_bytes = 1 << 20;
    body.session_id = session.0;
    body.session_epoch = session.1;
    if !wanted.is_empty() {
        body.topics = vec![topic_of(wanted)];
    }
    if !forgotten.is_empty() {
        let mut gone = fetch_request::ForgottenTopic::default();
        if version >= 13 {
            gone.topic_id = uuid::Uuid::from_bytes(id);
        } else {
            gone.topic = super::topic_name("sessions");
        }
        gone.partitions = forgotten.to_vec();
        body.forgotten_topics_data = vec![gone];
    }
    let bytes = exchange(broker, ApiKey::Fetch, version, &body).unwrap();
    decode_all(bytes, version, "Fetch")
}

fn produce_to(broker: &TestBroker, partition: i32, count: usize) {
    let mut data = produce_request::PartitionProduceData::default();
    data.index = partition;
    data.records = Some(batch(count));
    let mut topic = produce_request::TopicProduceData::default();
    topic.name = super::topic_name("sessions");
    topic.partition_data = vec![data];
    let mut body = ProduceRequest::default();
    body.acks = 1;
    body.timeout_ms = 1000;
    body.topic_data = vec![topic];
    exchange(broker, ApiKey::Produce, 9, &body).unwrap();
}

/// Fetch sessions at every version that has them: a session starts with a full fetch, an
/// incremental fetch answers only partitions with something new, forgotten partitions leave, a
/// wrong epoch or an unknown or closed session is refused.
#[test]
fn fetch_sessions_answer_only_what_changed() {
    for version in 7..=*versions(ApiKey::Fetch).end() {
        let broker = group_broker(MemDisk::new());
        create_topic(&broker, "sessions", 2);
        produce_to(&broker, 0, 3);
        produce_to(&broker, 1, 3);
        let full = session_fetch(&broker, version, (0, 0), &[(0, 0), (1, 0)], &[]);
        assert_eq!(full.error_code, 0, "v{version}");
        let id = full.session_id;
        assert_ne!(id, 0, "v{version}: a session was started");
        assert_eq!(full.responses[0].partitions.len(), 2);
        // Both partitions read to their end: nothing new, nothing answered.
        let quiet = session_fetch(&broker, version, (id, 1), &[(0, 3), (1, 3)], &[]);
        assert_eq!((quiet.error_code, quiet.session_id), (0, id), "v{version}");
        assert!(
            quiet.responses.is_empty(),
            "v{version}: {:?}",
            quiet.responses
        );
        // New data in partition 1 only: the next fetch names no partition and gets just it.
        produce_to(&broker, 1, 2);
        let news = session_fetch(&broker, version, (id, 2), &[], &[]);
        let partitions = &news.responses[0].partitions;
        assert_eq!(partitions.len(), 1, "v{version}");
        assert_eq!(
            (partitions[0].partition_index, partitions[0].high_watermark),
            (1, 5)
        );
        assert!(partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty()));
        // Partition 1 is forgotten: more data there is not answered.
        session_fetch(&broker, version, (id, 3), &[], &[1]);
        produce_to(&broker, 1, 1);
        let after = session_fetch(&broker, version, (id, 4), &[], &[]);
        assert!(after.responses.is_empty(), "v{version}");
        let stale = session_fetch(&broker, version, (id, 4), &[], &[]);
        assert_eq!(stale.error_code, 71, "v{version}: a repeated epoch");
        let unknown = session_fetch(&broker, version, (id ^ 1, 1), &[], &[]);
        assert_eq!(unknown.error_code, 70, "v{version}");
        let closed = session_fetch(&broker, version, (id, -1), &[(0, 0)], &[]);
        assert_eq!((closed.error_code, closed.session_id), (0, 0));
        let gone = session_fetch(&broker, version, (id, 6), &[], &[]);
        assert_eq!(gone.error_code, 70, "v{version}: closed");
    }
}

/// Commits take the partition's produce path with acks=all, so min.insync.replicas applies to
/// `__consumer_offsets` as in Kafka, whose coordinator answers NOT_ENOUGH_REPLICAS as
/// COORDINATOR_NOT_AVAILABLE (clients retry it); nothing is committed.
#[test]
fn commits_above_the_in_sync_replicas_answer_coordinator_not_available() {
    let mut config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    config.log.min_insync_replicas = 2;
    let broker =
        Arc::new(Broker::open(MemDisk::new(), FixedClock, OsRng::default(), config).unwrap());
    create_topic(&broker, "data", 1);
    assert_eq!(
        commit(&broker, "standalone", "", -1, 11, 8),
        crate::error_codes::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(fetch_committed(&broker, "standalone", 8), -1);
}
