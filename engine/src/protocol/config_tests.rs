//! Settings over the wire: DescribeConfigs for the broker and for topics (values, sources,
//! synonyms, KIP-569 types, documentation, per version), IncrementalAlterConfigs' APPEND and
//! SUBTRACT, and the topic settings that change what a produce stores (compression.type) or
//! accepts (message.timestamp.before/after.max.ms).

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::tests::{batch, create_topic, decode_all, exchange, versions, TestBroker};
use crate::broker::config::{BrokerConfig, TopicOverrides};
use crate::broker::Broker;
use crate::compression::Codec;
use crate::io::mem::MemDisk;
use crate::io::os::OsRng;
use crate::log::batch::{self, BatchHeader};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const TOPIC_CONFIG: i8 = 1;
const LONG: i8 = 5;
const INT: i8 = 3;
const LIST: i8 = 7;

fn broker_with(settings: &[(&str, &str)]) -> TestBroker {
    let mut config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    for (name, value) in settings {
        crate::broker::settings::apply(&mut config, name, value).unwrap();
    }
    Broker::open(
        MemDisk::new(),
        super::tests::FixedClock,
        OsRng::default(),
        config,
    )
    .unwrap()
}

fn describe(
    broker: &TestBroker,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
    detail: bool,
) -> describe_configs_response::DescribeConfigsResult {
    let mut resource = describe_configs_request::DescribeConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = StrBytes::from_string(name.to_owned());
    resource.configuration_keys = keys.map(|keys| {
        keys.iter()
            .map(|k| StrBytes::from_string((*k).to_owned()))
            .collect()
    });
    let mut body = DescribeConfigsRequest::default();
    body.resources = vec![resource];
    body.include_synonyms = detail;
    if version >= 3 {
        body.include_documentation = detail;
    }
    let bytes = exchange(broker, ApiKey::DescribeConfigs, version, &body).unwrap();
    let mut response: DescribeConfigsResponse = decode_all(bytes, version, "DescribeConfigs");
    response.results.remove(0)
}

fn entry<'a>(
    result: &'a describe_configs_response::DescribeConfigsResult,
    name: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is not described"))
}

fn synonyms(
    entry: &describe_configs_response::DescribeConfigsResourceResult,
) -> Vec<(String, String, i8)> {
    entry
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_deref().unwrap_or("null").to_owned(),
                s.source,
            )
        })
        .collect()
}

#[test]
fn the_broker_resource_lists_every_setting_with_source_type_and_synonyms() {
    let broker = broker_with(&[("log.segment.bytes", "65536"), ("num.partitions", "3")]);
    for version in versions(ApiKey::DescribeConfigs) {
        let result = describe(&broker, version, BROKER, "0", None, true);
        assert_eq!(result.error_code, 0, "v{version}");
        assert_eq!(
            result.configs.len(),
            crate::broker::settings::BROKER_SETTINGS.len()
        );
        let segment = entry(&result, "log.segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("65536"));
        assert_eq!(segment.config_source, STATIC_BROKER_CONFIG, "v{version}");
        assert!(segment.read_only);
        assert_eq!(
            synonyms(segment),
            vec![
                (
                    "log.segment.bytes".into(),
                    "65536".into(),
                    STATIC_BROKER_CONFIG
                ),
                (
                    "log.segment.bytes".into(),
                    "1073741824".into(),
                    DEFAULT_CONFIG
                ),
            ]
        );
        let retention = entry(&result, "log.retention.ms");
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!(retention.config_source, DEFAULT_CONFIG);
        for name in ["advertised.listeners", "num.partitions", "metrics.listen"] {
            entry(&result, name);
        }
        if version >= 3 {
            assert_eq!(segment.config_type, INT, "v{version}");
            assert_eq!(retention.config_type, LONG, "v{version}");
            assert!(segment
                .documentation
                .as_deref()
                .is_some_and(|d| d.contains("segment")));
        }
        // Without include_synonyms there are none.
        let plain = describe(
            &broker,
            version,
            BROKER,
            "0",
            Some(&["num.partitions"]),
            false,
        );
        assert_eq!(plain.configs.len(), 1);
        assert!(plain.configs[0].synonyms.is_empty());
        assert_eq!(plain.configs[0].value.as_deref(), Some("3"));
    }
    let other = describe(&broker, 4, BROKER, "7", None, false);
    assert_eq!(other.error_code, super::errors::INVALID_REQUEST);
    assert!(other
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("Unexpected broker id")));
    let cluster_default = describe(&broker, 4, BROKER, "", None, false);
    assert_eq!(cluster_default.error_code, 0);
    assert!(
        cluster_default.configs.is_empty(),
        "keel has no dynamic defaults"
    );
}

#[test]
fn topic_settings_carry_their_type_source_and_broker_synonyms() {
    let broker = broker_with(&[("log.retention.bytes", "5000")]);
    broker
        .create_topic(
            "typed",
            1,
            TopicOverrides::from([("retention.ms".to_owned(), "60000".to_owned())]),
            false,
        )
        .unwrap();
    let result = describe(&broker, 4, TOPIC, "typed", None, true);
    assert_eq!(
        result.configs.len(),
        crate::broker::config::TOPIC_SETTINGS.len()
    );
    let retention = entry(&result, "retention.ms");
    assert_eq!(retention.config_source, TOPIC_CONFIG);
    assert_eq!(retention.config_type, LONG);
    assert_eq!(
        synonyms(retention),
        vec![
            ("retention.ms".into(), "60000".into(), TOPIC_CONFIG),
            (
                "log.retention.ms".into(),
                "604800000".into(),
                DEFAULT_CONFIG
            ),
        ]
    );
    let bytes = entry(&result, "retention.bytes");
    assert_eq!(bytes.value.as_deref(), Some("5000"));
    assert_eq!(bytes.config_source, STATIC_BROKER_CONFIG);
    assert_eq!(bytes.config_type, LONG, "kafka-python saw UNKNOWN here");
    assert_eq!(entry(&result, "cleanup.policy").config_type, LIST);
    for name in [
        "compression.type",
        "message.format.version",
        "unclean.leader.election.enable",
        "preallocate",
        "max.compaction.lag.ms",
        "message.timestamp.before.max.ms",
    ] {
        assert!(!entry(&result, name).read_only, "{name}");
    }
}

fn incremental(
    broker: &TestBroker,
    topic: &str,
    configs: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = TOPIC;
    resource.resource_name = StrBytes::from_string(topic.to_owned());
    resource.configs = configs
        .iter()
        .map(|(name, op, value)| {
            let mut config = incremental_alter_configs_request::AlterableConfig::default();
            config.name = StrBytes::from_string((*name).to_owned());
            config.config_operation = *op;
            config.value = value.map(|v| StrBytes::from_string(v.to_owned()));
            config
        })
        .collect();
    let mut body = IncrementalAlterConfigsRequest::default();
    body.resources = vec![resource];
    let bytes = exchange(broker, ApiKey::IncrementalAlterConfigs, 1, &body).unwrap();
    let response: IncrementalAlterConfigsResponse = decode_all(bytes, 1, "IncrementalAlterConfigs");
    let answer = &response.responses[0];
    (
        answer.error_code,
        answer.error_message.as_deref().unwrap_or("").to_owned(),
    )
}

#[test]
fn append_and_subtract_edit_list_settings_and_refuse_the_others() {
    let broker = broker_with(&[]);
    create_topic(&broker, "lists", 1);
    let policy = || broker.topic("lists").unwrap().config.cleanup_policy;
    assert_eq!(
        incremental(&broker, "lists", &[("cleanup.policy", 2, Some("compact"))]).0,
        0
    );
    assert!(
        policy().compact && policy().delete,
        "appended to the default 'delete'"
    );
    assert_eq!(
        broker.topic("lists").unwrap().overrides["cleanup.policy"],
        "delete,compact"
    );
    // Appending what is there changes nothing.
    assert_eq!(
        incremental(&broker, "lists", &[("cleanup.policy", 2, Some("delete"))]).0,
        0
    );
    assert_eq!(
        broker.topic("lists").unwrap().overrides["cleanup.policy"],
        "delete,compact"
    );
    assert_eq!(
        incremental(&broker, "lists", &[("cleanup.policy", 3, Some("delete"))]).0,
        0
    );
    assert!(policy().compact && !policy().delete);
    // Subtracting the last policy leaves none, which keel refuses: a log must be deleted or
    // compacted.
    let (code, _) = incremental(&broker, "lists", &[("cleanup.policy", 3, Some("compact"))]);
    assert_eq!(code, super::errors::INVALID_CONFIG);
    assert!(
        policy().compact,
        "a refused change leaves the topic as it was"
    );
    let (code, message) = incremental(&broker, "lists", &[("retention.ms", 2, Some("5"))]);
    assert_eq!(code, super::errors::INVALID_CONFIG);
    assert!(message.contains("not LIST"), "{message}");
    let (code, message) = incremental(&broker, "lists", &[("retention.ms", 0, None)]);
    assert_eq!(code, super::errors::INVALID_REQUEST);
    assert!(message.contains("Null value"), "{message}");
    let (code, message) = incremental(&broker, "lists", &[("no.such.config", 0, Some("1"))]);
    assert_eq!(code, super::errors::INVALID_CONFIG);
    assert!(message.contains("Unknown topic config name"), "{message}");
    let (code, message) = incremental(&broker, "lists", &[("segment.bytes", 0, Some("13"))]);
    assert_eq!(code, super::errors::INVALID_CONFIG);
    assert_eq!(
        message,
        "Invalid value 13 for configuration segment.bytes: Value must be at least 14"
    );
    // Deprecated and no-op settings Kafka takes are taken, and reported back.
    for (name, value) in [
        ("message.format.version", "2.8-IV1"),
        ("preallocate", "true"),
        ("unclean.leader.election.enable", "false"),
        ("segment.jitter.ms", "100"),
    ] {
        assert_eq!(
            incremental(&broker, "lists", &[(name, 0, Some(value))]).0,
            0,
            "{name}"
        );
        let result = describe(&broker, 4, TOPIC, "lists", Some(&[name]), false);
        assert_eq!(result.configs[0].value.as_deref(), Some(value), "{name}");
        assert_eq!(result.configs[0].config_source, TOPIC_CONFIG, "{name}");
    }
    let (code, message) = incremental(
        &broker,
        "lists",
        &[("unclean.leader.election.enable", 0, Some("true"))],
    );
    assert_eq!(code, super::errors::INVALID_CONFIG);
    assert!(message.contains("never"), "{message}");
}

/// Produces `records` (one batch) to partition 0 of `topic` with acks=all; the partition's
/// answer.
fn produce(
    broker: &TestBroker,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    produce_acks(broker, topic, records, -1)
}

fn produce_acks(
    broker: &TestBroker,
    topic: &str,
    records: Bytes,
    acks: i16,
) -> produce_response::PartitionProduceResponse {
    let mut partition = produce_request::PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records);
    let mut data = produce_request::TopicProduceData::default();
    data.name = super::topic_name(topic);
    data.partition_data = vec![partition];
    let mut body = ProduceRequest::default();
    body.acks = acks;
    body.timeout_ms = 1000;
    body.topic_data = vec![data];
    let bytes = exchange(broker, ApiKey::Produce, 9, &body).unwrap();
    let mut response: ProduceResponse = decode_all(bytes, 9, "Produce");
    response.responses[0].partition_responses.remove(0)
}

#[test]
fn a_topic_with_a_codec_stores_batches_recompressed_with_their_records() {
    let broker = broker_with(&[]);
    broker
        .create_topic(
            "squeezed",
            1,
            TopicOverrides::from([("compression.type".to_owned(), "lz4".to_owned())]),
            false,
        )
        .unwrap();
    let produced = batch(20);
    assert_eq!(produce(&broker, "squeezed", produced.clone()).error_code, 0);
    let topic = broker.topic("squeezed").unwrap();
    let mut guard = topic.partitions[0].log();
    let log = guard.as_mut().unwrap();
    let stored = log.read_copy(0, 1 << 20, u64::MAX).unwrap();
    let header = BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.codec().unwrap(), Codec::Lz4);
    assert!(batch::crc_ok(&stored, &header));
    let records = batch::decode_records(&stored).unwrap();
    let expected = batch::decode_records(&produced).unwrap();
    assert_eq!(records, expected, "the same records, at the same offsets");
}

#[test]
fn timestamps_outside_the_topics_window_are_refused() {
    let broker = broker_with(&[]);
    broker
        .create_topic(
            "recent",
            1,
            TopicOverrides::from([
                (
                    "message.timestamp.before.max.ms".to_owned(),
                    "500".to_owned(),
                ),
                ("message.timestamp.after.max.ms".to_owned(), "0".to_owned()),
            ]),
            false,
        )
        .unwrap();
    // batch() stamps its records 1000 ms (minus the index) before the broker's clock.
    let answer = produce(&broker, "recent", batch(3));
    assert_eq!(answer.error_code, super::errors::INVALID_TIMESTAMP);
    let named: Vec<i32> = answer.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(
        named,
        vec![0],
        "KIP-467: the first record out of range is named"
    );
    let topic = broker.topic("recent").unwrap();
    assert_eq!(
        topic.partitions[0].log().as_ref().unwrap().next_offset(),
        0,
        "nothing was written"
    );
    drop(topic);
    let mut overrides = TopicOverrides::new();
    overrides.insert(
        "message.timestamp.before.max.ms".to_owned(),
        "5000".to_owned(),
    );
    broker
        .set_topic_overrides("recent", overrides, false)
        .unwrap();
    assert_eq!(produce(&broker, "recent", batch(3)).error_code, 0);
}

/// max.compaction.lag.ms bounds how long a record of a compacted topic waits in the active
/// segment, which is never cleaned: the segment rolls at that age, well before segment.ms.
#[test]
fn a_compacted_topic_rolls_its_active_segment_at_the_max_compaction_lag() {
    let broker = broker_with(&[]);
    broker
        .create_topic(
            "lagged",
            1,
            TopicOverrides::from([
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("max.compaction.lag.ms".to_owned(), "1000".to_owned()),
            ]),
            false,
        )
        .unwrap();
    let topic = broker.topic("lagged").unwrap();
    let mut guard = topic.partitions[0].log();
    let log = guard.as_mut().unwrap();
    // batch() stamps its records from this time on; a segment's age counts from its first
    // batch's timestamp.
    let now = 1_699_999_999_000;
    log.append(&mut batch(2).to_vec(), now).unwrap();
    log.append(&mut batch(2).to_vec(), now + 500).unwrap();
    assert_eq!(log.segment_count(), 1, "younger than the lag: no roll");
    log.append(&mut batch(2).to_vec(), now + 1500).unwrap();
    assert_eq!(log.segment_count(), 2, "older than the lag: rolled");
}

#[test]
fn describe_cluster_names_this_node_as_broker_and_controller() {
    let broker = broker_with(&[("node.id", "3")]);
    for version in versions(ApiKey::DescribeCluster) {
        let mut body = DescribeClusterRequest::default();
        body.include_cluster_authorized_operations = true;
        if version >= 1 {
            body.endpoint_type = 1;
        }
        let bytes = exchange(&broker, ApiKey::DescribeCluster, version, &body).unwrap();
        let response: DescribeClusterResponse = decode_all(bytes, version, "DescribeCluster");
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.controller_id.0, 3);
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(response.brokers[0].broker_id.0, 3);
        assert_eq!(response.cluster_id.as_str(), broker.config.cluster_id);
        assert!(response.cluster_authorized_operations > 0);
        if version >= 1 {
            body.endpoint_type = 2;
            let bytes = exchange(&broker, ApiKey::DescribeCluster, version, &body).unwrap();
            let response: DescribeClusterResponse = decode_all(bytes, version, "DescribeCluster");
            assert_eq!(response.error_code, super::errors::MISMATCHED_ENDPOINT_TYPE);
        }
    }
}

#[test]
fn log_dirs_describe_each_partition_and_a_move_to_the_same_dir_succeeds() {
    let broker = broker_with(&[]);
    create_topic(&broker, "sized", 2);
    assert_eq!(produce(&broker, "sized", batch(5)).error_code, 0);
    for version in versions(ApiKey::DescribeLogDirs) {
        let mut body = DescribeLogDirsRequest::default();
        body.topics = None;
        let bytes = exchange(&broker, ApiKey::DescribeLogDirs, version, &body).unwrap();
        let response: DescribeLogDirsResponse = decode_all(bytes, version, "DescribeLogDirs");
        let dir = &response.results[0];
        assert_eq!(dir.log_dir.as_str(), "/data");
        let topic = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "sized")
            .unwrap();
        let mut sizes: Vec<(i32, i64)> = topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes.len(), 2, "v{version}");
        assert_eq!(
            sizes[0].1,
            batch(5).len() as i64,
            "partition 0 holds the batch"
        );
        assert_eq!(sizes[1].1, 0);
    }
    for version in versions(ApiKey::AlterReplicaLogDirs) {
        let mut results = Vec::new();
        for path in ["/data", "/elsewhere"] {
            let mut topic = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
            topic.name = super::topic_name("sized");
            topic.partitions = vec![0, 9];
            let mut dir = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
            dir.path = StrBytes::from_static_str(path);
            dir.topics = vec![topic];
            let mut body = AlterReplicaLogDirsRequest::default();
            body.dirs = vec![dir];
            let bytes = exchange(&broker, ApiKey::AlterReplicaLogDirs, version, &body).unwrap();
            let response: AlterReplicaLogDirsResponse =
                decode_all(bytes, version, "AlterReplicaLogDirs");
            results.extend(
                response.results[0]
                    .partitions
                    .iter()
                    .map(|p| p.error_code)
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            results,
            vec![
                super::errors::NONE,
                super::errors::REPLICA_NOT_AVAILABLE,
                super::errors::LOG_DIR_NOT_FOUND,
                super::errors::LOG_DIR_NOT_FOUND
            ]
        );
    }
}

#[test]
fn manual_assignments_naming_this_node_create_the_partitions() {
    let broker = broker_with(&[]);
    let create = |name: &str, replicas: &[&[i32]]| {
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = super::topic_name(name);
        topic.num_partitions = -1;
        topic.replication_factor = -1;
        topic.assignments = replicas
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                let mut a = create_topics_request::CreatableReplicaAssignment::default();
                a.partition_index = i as i32;
                a.broker_ids = ids.iter().map(|&id| BrokerId(id)).collect();
                a
            })
            .collect();
        let mut body = CreateTopicsRequest::default();
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::CreateTopics, 7, &body).unwrap();
        let response: CreateTopicsResponse = decode_all(bytes, 7, "CreateTopics");
        response.topics[0].error_code
    };
    assert_eq!(create("assigned", &[&[0], &[0], &[0]]), 0);
    assert_eq!(broker.topic("assigned").unwrap().partitions.len(), 3);
    assert_eq!(
        create("elsewhere", &[&[0], &[5]]),
        super::errors::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        create("replicated", &[&[0, 0]]),
        super::errors::INVALID_REPLICATION_FACTOR
    );
    assert!(broker.topic("elsewhere").is_none());
}

#[test]
fn offset_for_leader_epoch_answers_from_the_one_epoch_and_fences_others() {
    let broker = broker_with(&[]);
    create_topic(&broker, "epochs", 1);
    assert_eq!(produce(&broker, "epochs", batch(4)).error_code, 0);
    // (current leader epoch, asked epoch) -> (error, epoch, end offset)
    let cases = [
        ((-1, 0), (0, 0, 4)),
        ((0, 0), (0, 0, 4)),
        ((-1, 3), (0, -1, -1)),
        ((-1, -1), (0, -1, -1)),
        ((1, 0), (super::errors::UNKNOWN_LEADER_EPOCH, -1, -1)),
        ((-2, 0), (super::errors::FENCED_LEADER_EPOCH, -1, -1)),
    ];
    for version in versions(ApiKey::OffsetForLeaderEpoch) {
        for ((current, asked), (error, epoch, end)) in cases {
            let mut partition =
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            partition.partition = 0;
            partition.current_leader_epoch = current;
            partition.leader_epoch = asked;
            let mut topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            topic.topic = super::topic_name("epochs");
            topic.partitions = vec![partition];
            let mut body = OffsetForLeaderEpochRequest::default();
            body.replica_id = BrokerId(-1);
            body.topics = vec![topic];
            let bytes = exchange(&broker, ApiKey::OffsetForLeaderEpoch, version, &body).unwrap();
            let response: OffsetForLeaderEpochResponse =
                decode_all(bytes, version, "OffsetForLeaderEpoch");
            let answer = &response.topics[0].partitions[0];
            assert_eq!(
                (answer.error_code, answer.leader_epoch, answer.end_offset),
                (error, epoch, end),
                "v{version} current {current} asked {asked}"
            );
        }
    }
}

#[test]
fn list_offsets_answers_latest_tiered_and_fences_newer_epochs() {
    let broker = broker_with(&[]);
    create_topic(&broker, "tiers", 1);
    let ask = |timestamp: i64, current: i32| {
        let mut partition = list_offsets_request::ListOffsetsPartition::default();
        partition.partition_index = 0;
        partition.timestamp = timestamp;
        partition.current_leader_epoch = current;
        let mut topic = list_offsets_request::ListOffsetsTopic::default();
        topic.name = super::topic_name("tiers");
        topic.partitions = vec![partition];
        let mut body = ListOffsetsRequest::default();
        body.replica_id = BrokerId(-1);
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::ListOffsets, 9, &body).unwrap();
        let mut response: ListOffsetsResponse = decode_all(bytes, 9, "ListOffsets");
        let answer = response.topics.remove(0).partitions.remove(0);
        (answer.error_code, answer.offset)
    };
    assert_eq!(
        ask(-5, -1),
        (0, -1),
        "no tiered storage: no offset, no error"
    );
    assert_eq!(ask(-2, 0), (0, 0));
    assert_eq!(ask(-1, 1), (super::errors::UNKNOWN_LEADER_EPOCH, -1));
}

/// Kafka takes min.insync.replicas above the replica count, and then refuses acks=all with
/// NOT_ENOUGH_REPLICAS before writing anything; acks=1 is still answered.
#[test]
fn min_insync_replicas_above_one_refuses_acks_all() {
    let broker = broker_with(&[]);
    broker
        .create_topic(
            "guarded",
            1,
            TopicOverrides::from([("min.insync.replicas".to_owned(), "2".to_owned())]),
            false,
        )
        .unwrap();
    let answer = produce(&broker, "guarded", batch(2));
    assert_eq!(answer.error_code, super::errors::NOT_ENOUGH_REPLICAS);
    assert!(answer
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("min.isr requirement of 2")));
    assert_eq!(produce_acks(&broker, "guarded", batch(2), 1).error_code, 0);
    let topic = broker.topic("guarded").unwrap();
    assert_eq!(topic.partitions[0].log().as_ref().unwrap().next_offset(), 2);
}

/// Kafka's batch iterator stops at an incomplete batch and its log trims what follows; a
/// second whole batch is refused.
#[test]
fn bytes_after_a_produced_batch_are_trimmed_unless_they_are_a_batch() {
    let broker = broker_with(&[]);
    create_topic(&broker, "tails", 1);
    let one = batch(3);
    let padded = Bytes::from([one.as_ref(), &[0, 0, 0, 0, 0]].concat());
    assert_eq!(produce(&broker, "tails", padded).error_code, 0);
    let topic = broker.topic("tails").unwrap();
    let size = topic.partitions[0].log().as_ref().unwrap().size_bytes();
    assert_eq!(size, one.len() as u64, "the trailing bytes were not stored");
    let two = Bytes::from([one.as_ref(), one.as_ref()].concat());
    assert_eq!(
        produce(&broker, "tails", two).error_code,
        super::errors::INVALID_RECORD
    );
    let cut = one.slice(..one.len() - 1);
    assert_eq!(
        produce(&broker, "tails", cut).error_code,
        super::errors::INVALID_RECORD
    );
}

/// Kafka refuses to delete its internal topics; keel refuses `__consumer_offsets`, whose loss
/// would lose every group's commits.
#[test]
fn the_offsets_topic_cannot_be_deleted() {
    let broker = broker_with(&[]);
    broker.offsets_topic().unwrap();
    for version in versions(ApiKey::DeleteTopics) {
        let mut body = DeleteTopicsRequest::default();
        if version >= 6 {
            let mut topic = delete_topics_request::DeleteTopicState::default();
            topic.name = Some(super::topic_name("__consumer_offsets"));
            body.topics = vec![topic];
        } else {
            body.topic_names = vec![super::topic_name("__consumer_offsets")];
        }
        let bytes = exchange(&broker, ApiKey::DeleteTopics, version, &body).unwrap();
        let response: DeleteTopicsResponse = decode_all(bytes, version, "DeleteTopics");
        assert_eq!(
            response.responses[0].error_code,
            super::errors::INVALID_TOPIC_EXCEPTION,
            "v{version}"
        );
        assert!(broker.topic("__consumer_offsets").is_some());
    }
}

/// A Fetch on a long poll when shutdown begins answers at once with what it has, instead of
/// holding its connection until the drain gives up on it.
#[test]
fn a_waiting_fetch_answers_when_shutdown_begins() {
    let broker = broker_with(&[]);
    create_topic(&broker, "quiet", 1);
    let mut partition = fetch_request::FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = 0;
    partition.partition_max_bytes = 1 << 20;
    let mut topic = fetch_request::FetchTopic::default();
    topic.topic = super::topic_name("quiet");
    topic.partitions = vec![partition];
    let mut body = FetchRequest::default();
    body.max_wait_ms = 30_000;
    body.min_bytes = 1;
    body.max_bytes = 1 << 20;
    body.topics = vec![topic];
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Fetch as i16;
    header.request_api_version = 12;
    header.correlation_id = 7;
    let mut frame = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&header, &mut frame, 2).unwrap();
    kafka_protocol::protocol::Encodable::encode(&body, &mut frame, 12).unwrap();
    let request = super::parse_request(frame.freeze()).unwrap();
    let answered = super::tests::run(async {
        let fetch = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            super::handle(&broker, request),
        );
        let shutdown = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            broker.begin_shutdown();
        };
        let (answer, ()) = tokio::join!(fetch, shutdown);
        answer
    });
    let answer = answered.expect("the fetch still waited 10 s after shutdown began");
    assert!(matches!(answer, Ok(Some(_))), "the fetch was answered");
}

/// A full disk answers producers KAFKA_STORAGE_ERROR, and every such answer is counted in the
/// metrics (and logged, at most every 10 s), so that an operator sees it.
#[test]
fn storage_errors_answered_to_producers_are_counted() {
    let disk = MemDisk::new();
    let config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    let broker: TestBroker = Broker::open(
        disk.clone(),
        super::tests::FixedClock,
        OsRng::default(),
        config,
    )
    .unwrap();
    create_topic(&broker, "full", 1);
    assert_eq!(produce(&broker, "full", batch(2)).error_code, 0);
    disk.fill(true);
    for _ in 0..3 {
        let answer = produce(&broker, "full", batch(2));
        assert_eq!(answer.error_code, super::errors::KAFKA_STORAGE_ERROR);
    }
    disk.fill(false);
    assert_eq!(produce(&broker, "full", batch(2)).error_code, 0);
    let page = crate::broker::metrics::render(&broker);
    assert!(page.contains("keel_storage_errors_total 3"), "{page}");
}
