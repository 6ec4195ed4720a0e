//! Every API at every version keel advertises, against a broker on an in-memory disk: the request
//! is encoded by kafka-protocol as a client would, answered by keel, and the answer must decode
//! with kafka-protocol at the same version and carry the expected content. This is what catches
//! a response field set on a version that lacks it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::frame::Chunk;
use super::{handle, parse_request, topic_name, SUPPORTED};
use crate::broker::config::BrokerConfig;
use crate::broker::topics::TopicError;
use crate::broker::Broker;
use crate::io::mem::{MemDisk, MemFile};
use crate::io::os::OsRng;
use crate::io::File;
use crate::log::batch::{BatchBuilder, NewRecord};

pub(super) use crate::io::mem::FixedClock;

pub(super) type TestBroker = Broker<MemDisk, FixedClock, OsRng>;

pub(super) fn broker() -> Arc<TestBroker> {
    let config = BrokerConfig {
        data_dir: "/data".into(),
        ..BrokerConfig::default()
    };
    Arc::new(Broker::open(MemDisk::new(), FixedClock, OsRng::default(), config).unwrap())
}

pub(super) fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Encodes `body` as a request frame (without the size prefix), answers it, and returns the
/// response body bytes after the header.
pub(super) fn exchange<T: Encodable>(
    broker: &TestBroker,
    key: ApiKey,
    version: i16,
    body: &T,
) -> Option<Bytes> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("matrix"));
    let mut frame = BytesMut::new();
    header
        .encode(&mut frame, key.request_header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    answer_frame(broker, key, version, frame)
}

/// Answers a request frame (header and body, without the size prefix) and returns the response
/// body bytes after the header.
pub(super) fn answer_frame(
    broker: &TestBroker,
    key: ApiKey,
    version: i16,
    frame: BytesMut,
) -> Option<Bytes> {
    let request = parse_request(frame.freeze()).unwrap();
    let answer =
        run(handle(broker, request)).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))?;
    let mut bytes = Vec::new();
    for chunk in answer.chunks {
        match chunk {
            Chunk::Bytes(b) => bytes.extend_from_slice(&b),
            Chunk::File {
                file,
                position,
                len,
            } => {
                let mut data = vec![0u8; len as usize];
                File::read_exact_at(&*file, &mut data, position).unwrap();
                bytes.extend_from_slice(&data);
            }
        }
    }
    let size = i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(size, bytes.len() - 4, "{key:?} v{version}: size prefix");
    let mut rest = Bytes::from(bytes).slice(4..);
    let response_header =
        ResponseHeader::decode(&mut rest, key.response_header_version(version)).unwrap();
    assert_eq!(response_header.correlation_id, 7);
    Some(rest)
}

pub(super) fn decode_all<T: Decodable>(mut bytes: Bytes, version: i16, what: &str) -> T {
    let decoded =
        T::decode(&mut bytes, version).unwrap_or_else(|e| panic!("{what} v{version}: {e}"));
    assert!(
        bytes.is_empty(),
        "{what} v{version}: {} trailing bytes",
        bytes.len()
    );
    decoded
}

pub(super) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let &(_, min, max) = SUPPORTED.iter().find(|(k, _, _)| *k == key).unwrap();
    min..=max
}

pub(super) fn create_topic(broker: &TestBroker, name: &str, partitions: i32) {
    broker
        .create_topic(name, partitions, Default::default(), false)
        .unwrap();
}

/// CreateTopics of one topic at the newest version, through the protocol: its result.
pub(super) fn create_topics(
    broker: &TestBroker,
    name: &str,
    partitions: i32,
) -> create_topics_response::CreatableTopicResult {
    let version = *versions(ApiKey::CreateTopics).end();
    let mut topic = create_topics_request::CreatableTopic::default();
    topic.name = topic_name(name);
    topic.num_partitions = partitions;
    topic.replication_factor = 1;
    let mut body = CreateTopicsRequest::default();
    body.topics = vec![topic];
    let bytes = exchange(broker, ApiKey::CreateTopics, version, &body).unwrap();
    let response: CreateTopicsResponse = decode_all(bytes, version, "CreateTopics");
    response
        .topics
        .into_iter()
        .next()
        .expect("one topic asked, one answered")
}

pub(super) fn batch(count: usize) -> Bytes {
    let records: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord {
            // Near the broker's clock: older first timestamps would roll a segment per batch
            // (segment.ms counts from the first batch's timestamp, as in Kafka).
            timestamp: 1_699_999_999_000 + i as i64,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    Bytes::from(BatchBuilder::default().build(&records).unwrap())
}

#[test]
fn api_versions_lists_exactly_what_is_implemented_and_falls_back_to_v0() {
    let broker = broker();
    for version in versions(ApiKey::ApiVersions) {
        let mut body = ApiVersionsRequest::default();
        if version >= 3 {
            body.client_software_name = StrBytes::from_static_str("matrix");
            body.client_software_version = StrBytes::from_static_str("1");
        }
        let bytes = exchange(&broker, ApiKey::ApiVersions, version, &body).unwrap();
        let response: ApiVersionsResponse = decode_all(bytes, version, "ApiVersions");
        assert_eq!(response.error_code, 0);
        assert_eq!(response.api_keys.len(), SUPPORTED.len());
    }
    // A version from the future: the answer is a v0 body with UNSUPPORTED_VERSION (KIP-511).
    let mut frame = BytesMut::new();
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::ApiVersions as i16;
    header.request_api_version = 99;
    header.correlation_id = 7;
    header.encode(&mut frame, 2).unwrap();
    let request = parse_request(frame.freeze()).unwrap();
    let answer = run(handle(&*broker, request)).unwrap().unwrap();
    let Chunk::Bytes(bytes) = &answer.chunks[0] else {
        panic!()
    };
    let mut body = bytes.slice(8..);
    let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(response.error_code, super::errors::UNSUPPORTED_VERSION);
}

#[test]
fn metadata_at_every_version_describes_and_auto_creates_topics() {
    let broker = broker();
    for version in versions(ApiKey::Metadata) {
        let name = format!("meta-{version}");
        let mut topic = metadata_request::MetadataRequestTopic::default();
        topic.name = Some(topic_name(&name));
        let mut body = MetadataRequest::default();
        body.topics = Some(vec![topic]);
        if version >= 4 {
            body.allow_auto_topic_creation = true;
        }
        let bytes = exchange(&broker, ApiKey::Metadata, version, &body).unwrap();
        let response: MetadataResponse = decode_all(bytes, version, "Metadata");
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, 0, "v{version}");
        assert_eq!(response.topics[0].partitions.len(), 1);
        assert!(broker.topic(&name).is_some());
    }
}

#[test]
fn produce_then_fetch_and_list_offsets_at_every_version() {
    let broker = broker();
    create_topic(&broker, "data", 2);
    let mut appended = 0;
    for version in versions(ApiKey::Produce) {
        let mut partition = produce_request::PartitionProduceData::default();
        partition.index = 1;
        partition.records = Some(batch(3));
        let mut topic = produce_request::TopicProduceData::default();
        topic.name = topic_name("data");
        topic.partition_data = vec![partition];
        let mut body = ProduceRequest::default();
        body.acks = -1;
        body.timeout_ms = 1000;
        body.topic_data = vec![topic];
        let bytes = exchange(&broker, ApiKey::Produce, version, &body).unwrap();
        let response: ProduceResponse = decode_all(bytes, version, "Produce");
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(answer.error_code, 0, "v{version}");
        assert_eq!(answer.base_offset, appended);
        appended += 3;
    }
    let id = broker.topic("data").unwrap().id;
    for version in versions(ApiKey::Fetch) {
        let mut partition = fetch_request::FetchPartition::default();
        partition.partition = 1;
        partition.fetch_offset = 3;
        partition.partition_max_bytes = 1 << 20;
        let mut topic = fetch_request::FetchTopic::default();
        if version >= 13 {
            topic.topic_id = uuid::Uuid::from_bytes(id);
        } else {
            topic.topic = topic_name("data");
        }
        topic.partitions = vec![partition];
        let mut body = FetchRequest::default();
        body.max_bytes = 1 << 20;
        body.max_wait_ms = 0;
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::Fetch, version, &body).unwrap();
        let response: FetchResponse = decode_all(bytes, version, "Fetch");
        let answer = &response.responses[0].partitions[0];
        assert_eq!(answer.error_code, 0, "v{version}");
        assert_eq!(answer.high_watermark, appended);
        let records = answer.records.clone().unwrap();
        let sets =
            kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records.clone()).unwrap();
        let offsets: Vec<i64> = sets
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.offset))
            .collect();
        assert_eq!(offsets, (3..appended).collect::<Vec<_>>(), "v{version}");
    }
    for version in versions(ApiKey::ListOffsets) {
        for (timestamp, expected) in [(-1, appended), (-2, 0), (1_699_999_999_001, 1)] {
            let mut partition = list_offsets_request::ListOffsetsPartition::default();
            partition.partition_index = 1;
            partition.timestamp = timestamp;
            let mut topic = list_offsets_request::ListOffsetsTopic::default();
            topic.name = topic_name("data");
            topic.partitions = vec![partition];
            let mut body = ListOffsetsRequest::default();
            body.replica_id = BrokerId(-1);
            body.topics = vec![topic];
            let bytes = exchange(&broker, ApiKey::ListOffsets, version, &body).unwrap();
            let response: ListOffsetsResponse = decode_all(bytes, version, "ListOffsets");
            let answer = &response.topics[0].partitions[0];
            assert_eq!(
                (answer.error_code, answer.offset),
                (0, expected),
                "v{version} ts {timestamp}"
            );
        }
    }
}

#[test]
fn produce_with_acks_zero_gets_no_answer_and_bad_acks_an_error() {
    let broker = broker();
    create_topic(&broker, "quiet", 1);
    let mut partition = produce_request::PartitionProduceData::default();
    partition.records = Some(batch(1));
    let mut topic = produce_request::TopicProduceData::default();
    topic.name = topic_name("quiet");
    topic.partition_data = vec![partition];
    let mut body = ProduceRequest::default();
    body.acks = 0;
    body.topic_data = vec![topic];
    assert!(exchange(&broker, ApiKey::Produce, 9, &body).is_none());
    body.acks = 2;
    let bytes = exchange(&broker, ApiKey::Produce, 9, &body).unwrap();
    let response: ProduceResponse = decode_all(bytes, 9, "Produce");
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, super::errors::INVALID_REQUIRED_ACKS);
}

/// A producer's batch built by hand from the RecordBatch v2 spec: `records` records whose
/// (possibly compressed) section is `payload`, codec id `codec_id` in the attributes, and a
/// correct CRC-32C, so that only what the payload holds can be wrong with it.
fn hand_built_batch(codec_id: u8, payload: &[u8], records: i32) -> Bytes {
    let length = 49 + payload.len(); // everything after base_offset and batch_length
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&(length as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&[0; 4]); // CRC, computed below
    batch.extend_from_slice(&i16::from(codec_id).to_be_bytes()); // attributes
    batch.extend_from_slice(&(records - 1).to_be_bytes()); // last offset delta
    batch.extend_from_slice(&1_699_999_999_000i64.to_be_bytes()); // base timestamp
    batch.extend_from_slice(&1_699_999_999_002i64.to_be_bytes()); // max timestamp
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&records.to_be_bytes());
    batch.extend_from_slice(payload);
    assert_eq!(batch.len(), 61 + payload.len());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

/// Produces `records` to partition 0 of `topic` at `version`; returns the partition's answer.
fn produce_one(
    broker: &TestBroker,
    topic: &str,
    records: Bytes,
    version: i16,
) -> produce_response::PartitionProduceResponse {
    let mut partition = produce_request::PartitionProduceData::default();
    partition.records = Some(records);
    let mut data = produce_request::TopicProduceData::default();
    data.name = topic_name(topic);
    data.partition_data = vec![partition];
    let mut body = ProduceRequest::default();
    body.acks = -1;
    body.timeout_ms = 1000;
    body.topic_data = vec![data];
    let bytes = exchange(broker, ApiKey::Produce, version, &body).unwrap();
    let mut response: ProduceResponse = decode_all(bytes, version, "Produce");
    response.responses.remove(0).partition_responses.remove(0)
}

/// A batch whose CRC is right but whose payload does not decompress under its codec is
/// CORRUPT_MESSAGE, as Kafka answers it (it once was UNSUPPORTED_COMPRESSION_TYPE); a codec id
/// Kafka never assigned (5 to 7) is UNSUPPORTED_COMPRESSION_TYPE. Neither reaches the log.
#[test]
fn a_payload_that_does_not_decompress_is_corrupt_and_an_unknown_codec_unsupported() {
    use super::errors::{CORRUPT_MESSAGE, UNSUPPORTED_COMPRESSION_TYPE};
    use crate::compression::{self, Codec, CompressionError};

    let broker = broker();
    create_topic(&broker, "garbage", 1);
    let records = batch(3);
    let plain = &records[61..];
    let garbage = b"keel: these bytes are no codec's stream at all. ".repeat(4);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let compressed = compression::compress(codec, plain).unwrap();
        let cut = &compressed[..compressed.len() / 2];
        for (what, payload) in [("garbage", &garbage[..]), ("cut stream", cut)] {
            let decompressed = compression::decompress(codec, payload, 1 << 20);
            assert!(
                matches!(decompressed, Err(CompressionError::Corrupt { .. })),
                "{} {what}: the payload must not decompress: {decompressed:?}",
                codec.name()
            );
            for version in versions(ApiKey::Produce) {
                let sent = hand_built_batch(codec.id(), payload, 3);
                let answer = produce_one(&broker, "garbage", sent, version);
                assert_eq!(
                    answer.error_code,
                    CORRUPT_MESSAGE,
                    "{} {what} v{version}: {:?}",
                    codec.name(),
                    answer.error_message
                );
                assert_eq!(answer.base_offset, -1);
            }
        }
    }
    for codec_id in 5..=7 {
        for version in versions(ApiKey::Produce) {
            let answer = produce_one(
                &broker,
                "garbage",
                hand_built_batch(codec_id, plain, 3),
                version,
            );
            assert_eq!(
                answer.error_code, UNSUPPORTED_COMPRESSION_TYPE,
                "codec id {codec_id} v{version}: {:?}",
                answer.error_message
            );
        }
    }
    // The hand-built batch is right when its payload is: nothing before it was written.
    let answer = produce_one(&broker, "garbage", hand_built_batch(0, plain, 3), 9);
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    let compressed = compression::compress(Codec::Lz4, plain).unwrap();
    let answer = produce_one(&broker, "garbage", hand_built_batch(3, &compressed, 3), 9);
    assert_eq!((answer.error_code, answer.base_offset), (0, 3));
}

/// A batch mixing keyed and keyless records sent to a compacted topic is refused whole with
/// INVALID_RECORD; from Produce v8 on the answer names each keyless record by its index in the
/// batch (record_errors, KIP-467) and carries Kafka's message. Nothing is written.
#[test]
fn keyless_records_on_a_compacted_topic_are_named_in_record_errors() {
    let broker = broker();
    let mut overrides = crate::broker::config::TopicOverrides::new();
    overrides.insert("cleanup.policy".into(), "compact".into());
    broker
        .create_topic("compacted", 1, overrides, false)
        .unwrap();
    let records: Vec<NewRecord> = (0..6)
        .map(|i| NewRecord {
            timestamp: 1_699_999_999_000 + i,
            key: (i % 3 != 1).then(|| format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    let mixed = Bytes::from(BatchBuilder::default().build(&records).unwrap());
    let reason = "Compacted topic cannot accept message without key in topic partition \
                  compacted-0.";
    for version in versions(ApiKey::Produce) {
        let answer = produce_one(&broker, "compacted", mixed.clone(), version);
        assert_eq!(
            answer.error_code,
            super::errors::INVALID_RECORD,
            "v{version}"
        );
        assert_eq!(answer.base_offset, -1);
        if version < 8 {
            assert!(answer.record_errors.is_empty(), "v{version}");
            continue;
        }
        let named: Vec<(i32, Option<&str>)> = answer
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_ref().map(|m| m.as_str());
                (e.batch_index, message)
            })
            .collect();
        assert_eq!(named, [(1, Some(reason)), (4, Some(reason))], "v{version}");
        let message = answer.error_message.as_ref().map(|m| m.to_string());
        let expected = format!(
            "One or more records have been rejected due to 2 record errors in total, and only \
             showing the first three errors at most: [RecordError(batchIndex=1, \
             message='{reason}'), RecordError(batchIndex=4, message='{reason}')]"
        );
        assert_eq!(message.as_deref(), Some(expected.as_str()), "v{version}");
    }
    let keyed: Vec<NewRecord> = records.into_iter().filter(|r| r.key.is_some()).collect();
    let keyed = Bytes::from(BatchBuilder::default().build(&keyed).unwrap());
    let answer = produce_one(&broker, "compacted", keyed, 9);
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    assert!(answer.record_errors.is_empty());
}

#[test]
fn topic_administration_at_every_version() {
    let broker = broker();
    for version in versions(ApiKey::CreateTopics) {
        let name = format!("admin-{version}");
        let mut config = create_topics_request::CreatableTopicConfig::default();
        config.name = StrBytes::from_static_str("retention.ms");
        config.value = Some(StrBytes::from_static_str("60000"));
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = topic_name(&name);
        topic.num_partitions = 3;
        topic.replication_factor = 1;
        topic.configs = vec![config];
        let mut body = CreateTopicsRequest::default();
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::CreateTopics, version, &body).unwrap();
        let response: CreateTopicsResponse = decode_all(bytes, version, "CreateTopics");
        assert_eq!(response.topics[0].error_code, 0, "v{version}");
        assert_eq!(broker.topic(&name).unwrap().config.retention_ms, 60_000);
        // Again: TOPIC_ALREADY_EXISTS.
        let bytes = exchange(&broker, ApiKey::CreateTopics, version, &body).unwrap();
        let response: CreateTopicsResponse = decode_all(bytes, version, "CreateTopics");
        assert_eq!(
            response.topics[0].error_code,
            super::errors::TOPIC_ALREADY_EXISTS
        );
    }
    for version in versions(ApiKey::CreatePartitions) {
        let name = format!("admin-{}", 2 + version);
        let mut topic = create_partitions_request::CreatePartitionsTopic::default();
        topic.name = topic_name(&name);
        topic.count = 5;
        let mut body = CreatePartitionsRequest::default();
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::CreatePartitions, version, &body).unwrap();
        let response: CreatePartitionsResponse = decode_all(bytes, version, "CreatePartitions");
        assert_eq!(response.results[0].error_code, 0, "v{version}");
        assert_eq!(broker.topic(&name).unwrap().partitions.len(), 5);
    }
    for version in versions(ApiKey::DescribeConfigs) {
        let mut resource = describe_configs_request::DescribeConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("admin-2");
        let mut body = DescribeConfigsRequest::default();
        body.resources = vec![resource];
        let bytes = exchange(&broker, ApiKey::DescribeConfigs, version, &body).unwrap();
        let response: DescribeConfigsResponse = decode_all(bytes, version, "DescribeConfigs");
        let retention = response.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(retention.value.as_deref(), Some("60000"), "v{version}");
    }
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let mut config = incremental_alter_configs_request::AlterableConfig::default();
        config.name = StrBytes::from_static_str("retention.bytes");
        config.value = Some(StrBytes::from_string(format!(
            "{}",
            1_000_000 + version as i64
        )));
        let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("admin-2");
        resource.configs = vec![config];
        let mut body = IncrementalAlterConfigsRequest::default();
        body.resources = vec![resource];
        let bytes = exchange(&broker, ApiKey::IncrementalAlterConfigs, version, &body).unwrap();
        let response: IncrementalAlterConfigsResponse =
            decode_all(bytes, version, "IncrementalAlterConfigs");
        assert_eq!(response.responses[0].error_code, 0, "v{version}");
        let topic = broker.topic("admin-2").unwrap();
        assert_eq!(topic.config.retention_bytes, 1_000_000 + version as i64);
        assert_eq!(topic.config.retention_ms, 60_000, "other overrides stay");
    }
    for version in versions(ApiKey::AlterConfigs) {
        let mut config = alter_configs_request::AlterableConfig::default();
        config.name = StrBytes::from_static_str("segment.bytes");
        config.value = Some(StrBytes::from_static_str("65536"));
        let mut resource = alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("admin-3");
        resource.configs = vec![config];
        let mut body = AlterConfigsRequest::default();
        body.resources = vec![resource];
        let bytes = exchange(&broker, ApiKey::AlterConfigs, version, &body).unwrap();
        let response: AlterConfigsResponse = decode_all(bytes, version, "AlterConfigs");
        assert_eq!(response.responses[0].error_code, 0, "v{version}");
        let topic = broker.topic("admin-3").unwrap();
        assert_eq!(topic.config.segment_bytes, 65_536);
        assert_eq!(
            topic.config.retention_ms,
            crate::log::config::RETENTION_MS_DEFAULT,
            "replaced"
        );
    }
    for version in versions(ApiKey::DeleteRecords) {
        let name = format!("records-{version}");
        create_topic(&broker, &name, 1);
        let mut produce = produce_request::PartitionProduceData::default();
        produce.records = Some(batch(4));
        let mut produce_topic = produce_request::TopicProduceData::default();
        produce_topic.name = topic_name(&name);
        produce_topic.partition_data = vec![produce];
        let mut produce_body = ProduceRequest::default();
        produce_body.acks = 1;
        produce_body.topic_data = vec![produce_topic];
        exchange(&broker, ApiKey::Produce, 9, &produce_body).unwrap();
        let mut partition = delete_records_request::DeleteRecordsPartition::default();
        partition.offset = 2;
        let mut topic = delete_records_request::DeleteRecordsTopic::default();
        topic.name = topic_name(&name);
        topic.partitions = vec![partition];
        let mut body = DeleteRecordsRequest::default();
        body.topics = vec![topic];
        let bytes = exchange(&broker, ApiKey::DeleteRecords, version, &body).unwrap();
        let response: DeleteRecordsResponse = decode_all(bytes, version, "DeleteRecords");
        let answer = &response.topics[0].partitions[0];
        assert_eq!(
            (answer.error_code, answer.low_watermark),
            (0, 2),
            "v{version}"
        );
    }
    for version in versions(ApiKey::DeleteTopics) {
        let name = format!("admin-{}", version + 1);
        let mut body = DeleteTopicsRequest::default();
        if version >= 6 {
            let mut state = delete_topics_request::DeleteTopicState::default();
            state.name = Some(topic_name(&name));
            body.topics = vec![state];
        } else {
            body.topic_names = vec![topic_name(&name)];
        }
        let bytes = exchange(&broker, ApiKey::DeleteTopics, version, &body).unwrap();
        let response: DeleteTopicsResponse = decode_all(bytes, version, "DeleteTopics");
        assert_eq!(response.responses[0].error_code, 0, "v{version}");
        assert!(broker.topic(&name).is_none());
    }
}

#[test]
fn malformed_frames_are_protocol_errors_not_panics() {
    let broker = broker();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short header", vec![0, 3, 0]),
        ("unknown key", vec![0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]),
        ("unsupported version", vec![0, 3, 0, 99, 0, 0, 0, 1, 0, 0]),
        (
            "truncated metadata body",
            vec![0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ),
    ];
    for (name, bytes) in cases {
        let outcome =
            parse_request(Bytes::from(bytes)).and_then(|r| run(handle(&*broker, r)).map(|_| ()));
        assert!(outcome.is_err(), "{name}");
    }
    let _ = MemFile::read_at; // the in-memory file type is part of the broker under test
}

/// librdkafka 2.12 and later sends Metadata v12 "all topics" with 3 spare bytes after the body
/// (it reserves 4 bytes for the topic count and writes 1). Kafka reads what the version defines
/// and ignores the rest; keel answers it, at every version of every API, and counts it.
#[test]
fn bytes_after_a_request_body_are_ignored_and_counted() {
    let broker = broker();
    create_topic(&broker, "spare", 1);
    for (key, _, _) in SUPPORTED {
        if *key != ApiKey::Metadata && *key != ApiKey::ApiVersions {
            continue;
        }
        for version in versions(*key) {
            let mut header = RequestHeader::default();
            header.request_api_key = *key as i16;
            header.request_api_version = version;
            header.correlation_id = 7;
            let mut frame = BytesMut::new();
            header
                .encode(&mut frame, key.request_header_version(version))
                .unwrap();
            match key {
                ApiKey::Metadata => {
                    let mut body = MetadataRequest::default();
                    body.topics = None;
                    if version < 1 {
                        body.topics = Some(vec![]);
                    }
                    body.encode(&mut frame, version).unwrap();
                }
                _ => {
                    let mut body = ApiVersionsRequest::default();
                    if version >= 3 {
                        body.client_software_name = StrBytes::from_static_str("spare");
                        body.client_software_version = StrBytes::from_static_str("1");
                    }
                    body.encode(&mut frame, version).unwrap();
                }
            }
            frame.extend_from_slice(&[0, 0, 0]);
            let bytes = answer_frame(&broker, *key, version, frame).unwrap();
            if *key == ApiKey::Metadata {
                let response: MetadataResponse = decode_all(bytes, version, "Metadata");
                assert!(
                    response
                        .topics
                        .iter()
                        .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "spare")),
                    "Metadata v{version} with spare bytes lists the topic"
                );
            } else {
                let response: ApiVersionsResponse = decode_all(bytes, version, "ApiVersions");
                assert_eq!(response.error_code, 0, "ApiVersions v{version}");
            }
        }
    }
    let page = crate::broker::metrics::render(&broker);
    let metadata_versions = versions(ApiKey::Metadata).count();
    assert!(
        page.contains(&format!(
            "keel_requests_trailing_bytes_total{{api=\"Metadata\"}} {metadata_versions}"
        )),
        "{page}"
    );
}

/// A storage failure is answered with a message that names the files it is about relative to
/// the data directory: the disk's errors carry absolute paths, which tell a client how the
/// broker's host is laid out. The log line keeps the whole path.
#[test]
fn storage_errors_answered_to_clients_name_no_path_outside_the_data_directory() {
    let data_dir = "/srv/keel-data";
    let config = BrokerConfig {
        data_dir: data_dir.into(),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(MemDisk::new(), FixedClock, OsRng::default(), config).unwrap();
    create_topic(&broker, "grown", 1);
    broker.disk.fill(true);
    let checked = |what: &str, code: i16, message: Option<StrBytes>| {
        let message = message.map(|m| m.to_string()).unwrap_or_default();
        assert_eq!(
            code,
            super::errors::KAFKA_STORAGE_ERROR,
            "{what}: {message}"
        );
        assert!(!message.contains(data_dir), "{what}: {message}");
        message
    };

    let result = &create_topics(&broker, "t", 2);
    let message = checked(
        "CreateTopics",
        result.error_code,
        result.error_message.clone(),
    );
    assert!(message.contains("t-0"), "names the partition: {message}");

    let version = *versions(ApiKey::CreatePartitions).end();
    let mut topic = create_partitions_request::CreatePartitionsTopic::default();
    topic.name = topic_name("grown");
    topic.count = 3;
    let mut body = CreatePartitionsRequest::default();
    body.topics = vec![topic];
    let bytes = exchange(&broker, ApiKey::CreatePartitions, version, &body).unwrap();
    let response: CreatePartitionsResponse = decode_all(bytes, version, "CreatePartitions");
    let result = &response.results[0];
    let message = checked(
        "CreatePartitions",
        result.error_code,
        result.error_message.clone(),
    );
    assert!(
        message.contains("grown-1"),
        "names the partition: {message}"
    );

    let version = *versions(ApiKey::IncrementalAlterConfigs).end();
    let mut config = incremental_alter_configs_request::AlterableConfig::default();
    config.name = StrBytes::from_static_str("retention.ms");
    config.value = Some(StrBytes::from_static_str("1000"));
    let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from_static_str("grown");
    resource.configs = vec![config];
    let mut body = IncrementalAlterConfigsRequest::default();
    body.resources = vec![resource];
    let bytes = exchange(&broker, ApiKey::IncrementalAlterConfigs, version, &body).unwrap();
    let response: IncrementalAlterConfigsResponse =
        decode_all(bytes, version, "IncrementalAlterConfigs");
    let result = &response.responses[0];
    checked(
        "IncrementalAlterConfigs",
        result.error_code,
        result.error_message.clone(),
    );
}

/// What the open-files limit holds is promised and no more: max.connections is lowered to fit,
/// and a creation whose partitions would not fit is refused before any file is made, with
/// INVALID_PARTITIONS and a message naming the limit; those that fit are created.
#[test]
fn creations_are_sized_against_the_open_files_limit() {
    let open = |connections_max: usize| {
        let mut config = BrokerConfig {
            data_dir: "/data".into(),
            open_files_max: Some(1_000),
            connections_max,
            partitions_default: 85,
            ..BrokerConfig::default()
        };
        // The smallest indexes, so that hundreds of partitions fit in memory.
        config.log.segment_index_bytes = crate::log::config::SEGMENT_INDEX_BYTES_MIN as usize;
        Broker::open(MemDisk::new(), FixedClock, OsRng::default(), config).unwrap()
    };
    // 1,000 open files less 64 reserved hold 936 connections, and then no partition.
    let crowded = open(10_000);
    assert_eq!(crowded.config.connections_max, 936);
    let refused = crowded.create_topic("t", 1, Default::default(), false);
    assert!(matches!(refused, Err(TopicError::InvalidPartitions(_))));

    // With 200 connections, 736 descriptors are left: 184 partitions of 4.
    let broker = open(200);
    assert_eq!(broker.config.connections_max, 200);
    create_topic(&broker, "a", 100);
    let files = broker.disk.paths();
    let result = &create_topics(&broker, "b", 85);
    let message = result.error_message.as_deref().unwrap_or_default();
    assert_eq!(
        result.error_code,
        super::errors::INVALID_PARTITIONS,
        "{message}"
    );
    assert!(
        message.contains("limit of 1000 open files leaves 336"),
        "{message}"
    );
    assert_eq!(broker.disk.paths(), files, "nothing was made");
    // Auto-creation (num.partitions is 85) and growth are refused alike.
    let auto = broker.topic_or_create("c", true);
    assert!(matches!(auto, Err(TopicError::InvalidPartitions(_))));
    let grown = broker.add_partitions("a", 185, false);
    assert!(matches!(grown, Err(TopicError::InvalidPartitions(_))));
    assert_eq!(broker.disk.paths(), files, "nothing was made");
    // What fits is made.
    broker.add_partitions("a", 150, false).expect("50 more fit");
    create_topic(&broker, "b", 34);
    assert!(broker
        .create_topic("d", 1, Default::default(), false)
        .is_err());
}
