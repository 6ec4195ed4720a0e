//! The hand-written Fetch response encoder, for versions `MIN_VERSION..=MAX_VERSION` (4 to 16):
//! it lays the response out as a `Frame` whose record sets are `Chunk::File` ranges of segment
//! files, so the connection sends them with sendfile instead of copying them through user space.
//! Everything else (size prefix, response header, partition headers) is coalesced into as few
//! `Chunk::Bytes` as the files allow: bytes, file, bytes, file, ... (ending in bytes unless the
//! last partition's records end the response, as before v12, which has no trailing tagged fields).
//!
//! Guarantee (checked by the tests against kafka-protocol's generated encoder for every version):
//! the frame's chunks, sent in order, are byte for byte the 4-byte size, the response header
//! (v0, or v1 from Fetch v12) and kafka-protocol's `FetchResponse` encoding of the same values.
//! Where Kafka allows a choice, this encoder sends what kafka-protocol's defaults send:
//! - `aborted_transactions` is an empty array, never null: keel writes no transactional aborts,
//!   and an empty array means "none aborted" to read_committed and read_uncommitted consumers
//!   alike (Kafka sends null to read_uncommitted ones; clients accept both).
//! - a partition without records sends an empty record set, never null: librdkafka rejects a null
//!   one ("invalid MessageSetSize -1"), and Kafka itself sends an empty one.
//! - `preferred_read_replica` is -1 (no preference) from v11.
//! - no tagged fields: diverging_epoch, current_leader, snapshot_id and v16's node_endpoints are
//!   left out, so every tagged section is the single byte 0.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::frame::{Chunk, Frame};

/// The oldest Fetch version this encoder writes.
pub const MIN_VERSION: i16 = 4;
/// The newest Fetch version this encoder writes.
pub const MAX_VERSION: i16 = 16;

/// From this version on, arrays, strings and bytes are compact and structs end in tagged fields.
const FIRST_FLEXIBLE_VERSION: i16 = 12;
/// From this version on, topics are named by id instead of by name.
const FIRST_TOPIC_ID_VERSION: i16 = 13;
const FIRST_SESSION_VERSION: i16 = 7;
const FIRST_LOG_START_OFFSET_VERSION: i16 = 5;
const FIRST_PREFERRED_REPLICA_VERSION: i16 = 11;
const NO_PREFERRED_READ_REPLICA: i32 = -1;
const SIZE_PREFIX_LEN_BYTES: u64 = 4;

/// One partition of a Fetch response.
pub struct FetchedPartition<F> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// The records: a range of a segment file, or None when there is nothing to send (no data,
    /// or an error). None and an empty range both go out as an empty record set.
    pub records: Option<RecordsRange<F>>,
}

/// Whole record batches of a segment file: `len` bytes from `position`.
pub struct RecordsRange<F> {
    pub file: Arc<F>,
    pub position: u64,
    pub len: u64,
}

/// One topic of a Fetch response. `name` goes on the wire before v13, `topic_id` from v13.
pub struct FetchedTopic<F> {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchedPartition<F>>,
}

/// A Fetch response. `error_code` and `session_id` go on the wire from v7.
pub struct FetchedResponse<F> {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchedTopic<F>>,
}

/// Encodes `response` as version `version` (4..=16) preceded by the 4-byte size and the response
/// header (correlation id; plus an empty tagged-field section for flexible versions, i.e. v12+,
/// which use response header v1).
///
/// # Panics
/// If `version` is outside `MIN_VERSION..=MAX_VERSION` (ApiVersions advertises only these), or
/// if the frame exceeds `i32::MAX` bytes (a fetch is bounded by the request's i32 max_bytes).
pub fn encode<F>(response: FetchedResponse<F>, version: i16, correlation_id: i32) -> Frame<F> {
    assert!(
        (MIN_VERSION..=MAX_VERSION).contains(&version),
        "Fetch v{version} is not encodable (supported: v{MIN_VERSION}..=v{MAX_VERSION})"
    );
    let mut out = ChunkWriter::new();
    // Patched by `finish`, once the chunks' total length is known.
    out.bytes().put_i32(0);
    put_header(out.bytes(), version, correlation_id);
    put_response(&mut out, version, response);
    out.finish()
}

fn put_header(buf: &mut BytesMut, version: i16, correlation_id: i32) {
    buf.put_i32(correlation_id);
    put_tagged_fields(buf, version);
}

fn put_response<F>(out: &mut ChunkWriter<F>, version: i16, response: FetchedResponse<F>) {
    let buf = out.bytes();
    buf.put_i32(response.throttle_time_ms);
    if version >= FIRST_SESSION_VERSION {
        buf.put_i16(response.error_code);
        buf.put_i32(response.session_id);
    }
    put_array_len(buf, version, response.topics.len());
    for topic in response.topics {
        put_topic(out, version, topic);
    }
    put_tagged_fields(out.bytes(), version);
}

fn put_topic<F>(out: &mut ChunkWriter<F>, version: i16, topic: FetchedTopic<F>) {
    let buf = out.bytes();
    if version >= FIRST_TOPIC_ID_VERSION {
        buf.put_slice(&topic.topic_id);
    } else {
        put_string(buf, version, &topic.name);
    }
    put_array_len(buf, version, topic.partitions.len());
    for partition in topic.partitions {
        put_partition(out, version, partition);
    }
    put_tagged_fields(out.bytes(), version);
}

fn put_partition<F>(out: &mut ChunkWriter<F>, version: i16, partition: FetchedPartition<F>) {
    let buf = out.bytes();
    buf.put_i32(partition.partition_index);
    buf.put_i16(partition.error_code);
    buf.put_i64(partition.high_watermark);
    buf.put_i64(partition.last_stable_offset);
    if version >= FIRST_LOG_START_OFFSET_VERSION {
        buf.put_i64(partition.log_start_offset);
    }
    // aborted_transactions: none (see the module comment).
    put_array_len(buf, version, 0);
    if version >= FIRST_PREFERRED_REPLICA_VERSION {
        buf.put_i32(NO_PREFERRED_READ_REPLICA);
    }
    // An empty range would be a zero-length sendfile: it is an empty record set like None.
    let records = partition.records.filter(|records| records.len > 0);
    let records_len_bytes = records.as_ref().map_or(0, |records| records.len);
    put_bytes_len(buf, version, records_len_bytes);
    if let Some(records) = records {
        out.file(records);
    }
    put_tagged_fields(out.bytes(), version);
}

fn is_flexible(version: i16) -> bool {
    version >= FIRST_FLEXIBLE_VERSION
}

/// An empty tagged-field section: flexible versions end every struct and header with one.
fn put_tagged_fields(buf: &mut BytesMut, version: i16) {
    if is_flexible(version) {
        put_unsigned_varint(buf, 0);
    }
}

/// A non-null array's length: compact arrays store N+1 (0 is null), others an i32.
fn put_array_len(buf: &mut BytesMut, version: i16, len: usize) {
    put_length(buf, version, len as u64);
}

/// A non-null bytes field's length: compact bytes store N+1 (0 is null), others an i32.
fn put_bytes_len(buf: &mut BytesMut, version: i16, len_bytes: u64) {
    put_length(buf, version, len_bytes);
}

/// A non-null string: compact strings store the length+1 as a varint, others an i16.
fn put_string(buf: &mut BytesMut, version: i16, value: &str) {
    let len_bytes = value.len();
    if is_flexible(version) {
        put_length(buf, version, len_bytes as u64);
    } else {
        buf.put_i16(i16::try_from(len_bytes).expect("a topic name fits in an i16 length"));
    }
    buf.put_slice(value.as_bytes());
}

fn put_length(buf: &mut BytesMut, version: i16, len: u64) {
    if is_flexible(version) {
        let stored = u32::try_from(len + 1).expect("a fetch response length fits in a u32");
        put_unsigned_varint(buf, stored);
    } else {
        buf.put_i32(i32::try_from(len).expect("a fetch response length fits in an i32"));
    }
}

/// Kafka's unsigned varint: 7 bits a byte, least significant first, high bit = more follow.
fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// A piece of the frame under construction; byte pieces stay mutable so `finish` can patch the
/// size prefix in place.
enum Piece<F> {
    Bytes(BytesMut),
    File(RecordsRange<F>),
}

impl<F> Piece<F> {
    fn len_bytes(&self) -> u64 {
        match self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::File(records) => records.len,
        }
    }

    fn into_chunk(self) -> Chunk<F> {
        match self {
            Piece::Bytes(bytes) => Chunk::Bytes(bytes.freeze()),
            Piece::File(records) => Chunk::File {
                file: records.file,
                position: records.position,
                len: records.len,
            },
        }
    }
}

/// Builds a frame from appended bytes and file ranges, coalescing consecutive bytes into one
/// piece so a frame alternates bytes and files.
struct ChunkWriter<F> {
    pieces: Vec<Piece<F>>,
    open: BytesMut,
}

impl<F> ChunkWriter<F> {
    fn new() -> ChunkWriter<F> {
        ChunkWriter {
            pieces: Vec::new(),
            open: BytesMut::new(),
        }
    }

    /// The bytes piece being written, which the next `file` or `finish` closes.
    fn bytes(&mut self) -> &mut BytesMut {
        &mut self.open
    }

    fn file(&mut self, records: RecordsRange<F>) {
        self.close_bytes();
        self.pieces.push(Piece::File(records));
    }

    fn close_bytes(&mut self) {
        if !self.open.is_empty() {
            // `split` hands over the written bytes and keeps the spare capacity for the next piece.
            self.pieces.push(Piece::Bytes(self.open.split()));
        }
    }

    /// Closes the frame and writes its size (everything after the 4-byte prefix) into the prefix.
    fn finish(mut self) -> Frame<F> {
        self.close_bytes();
        let total_bytes: u64 = self.pieces.iter().map(Piece::len_bytes).sum();
        let size_bytes = i32::try_from(total_bytes - SIZE_PREFIX_LEN_BYTES)
            .expect("a fetch response fits in an i32 size");
        match self.pieces.first_mut() {
            Some(Piece::Bytes(head)) => head[..4].copy_from_slice(&size_bytes.to_be_bytes()),
            _ => unreachable!("a frame starts with its size prefix"),
        }
        let chunks = self.pieces.into_iter().map(Piece::into_chunk).collect();
        Frame { chunks }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;
    use crate::io::mem::{MemDisk, MemFile};
    use crate::io::{Disk, File};

    const CORRELATION_ID: i32 = 0x0102_0304;
    use crate::error_codes::NOT_LEADER_OR_FOLLOWER;

    /// Where a partition's records come from: (segment index, position, length in bytes).
    type RecordsSpec = Option<(usize, u64, u64)>;

    /// A partition of the test response as plain values, from which both encoders are fed.
    struct PartitionSpec {
        index: i32,
        error_code: i16,
        records: RecordsSpec,
    }

    struct TopicSpec {
        name: &'static str,
        topic_id: [u8; 16],
        partitions: Vec<PartitionSpec>,
    }

    /// Two segment files with distinct contents, so a range read from the wrong file or offset
    /// shows up as different bytes.
    struct Segments {
        files: Vec<Arc<MemFile>>,
        contents: Vec<Vec<u8>>,
    }

    impl Segments {
        fn new() -> Segments {
            let disk = MemDisk::new();
            let contents: Vec<Vec<u8>> = vec![
                (0..200u32).map(|i| (i * 7 + 3) as u8).collect(),
                (0..300u32).map(|i| (i * 13 + 101) as u8).collect(),
            ];
            let files = contents
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    let file = disk
                        .create(Path::new(&format!("/segment-{i}.log")))
                        .expect("create segment");
                    file.write_at(bytes, 0).expect("write segment");
                    Arc::new(file)
                })
                .collect();
            Segments { files, contents }
        }

        fn range(&self, spec: RecordsSpec) -> Option<RecordsRange<MemFile>> {
            let (segment, position, len) = spec?;
            Some(RecordsRange {
                file: self.files[segment].clone(),
                position,
                len,
            })
        }

        fn bytes(&self, spec: RecordsSpec) -> Bytes {
            let Some((segment, position, len)) = spec else {
                return Bytes::new();
            };
            let start = position as usize;
            Bytes::copy_from_slice(&self.contents[segment][start..start + len as usize])
        }
    }

    /// Longer than 127 bytes, so its compact length takes a two-byte varint.
    const LONG_TOPIC_NAME: &str = concat!(
        "payments-with-a-name-padded-past-one-hundred-and-twenty-seven-bytes-",
        "so-that-the-compact-string-length-needs-two-unsigned-varint-bytes",
    );

    const _: () = assert!(LONG_TOPIC_NAME.len() > 127);

    fn partition(index: i32, error_code: i16, records: RecordsSpec) -> PartitionSpec {
        PartitionSpec {
            index,
            error_code,
            records,
        }
    }

    /// Two topics of three partitions: four with records from two files, one without records,
    /// one with an error (and, like Kafka, no records).
    fn topic_specs() -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: "orders",
                topic_id: core::array::from_fn(|i| i as u8 + 1),
                partitions: vec![
                    partition(0, 0, Some((0, 0, 37))),
                    partition(1, 0, None),
                    partition(2, 0, Some((0, 37, 163))),
                ],
            },
            TopicSpec {
                name: LONG_TOPIC_NAME,
                topic_id: core::array::from_fn(|i| 0xf0 - i as u8),
                partitions: vec![
                    partition(4, 0, Some((1, 5, 150))),
                    partition(7, NOT_LEADER_OR_FOLLOWER, None),
                    partition(9, 0, Some((1, 155, 145))),
                ],
            },
        ]
    }

    /// Distinct values per field, so swapped or misplaced fields change the bytes.
    fn high_watermark(index: i32) -> i64 {
        1_000_000 + i64::from(index)
    }

    fn last_stable_offset(index: i32) -> i64 {
        900_000 + i64::from(index)
    }

    fn log_start_offset(index: i32) -> i64 {
        10 + i64::from(index)
    }

    const THROTTLE_TIME_MS: i32 = 250;
    const RESPONSE_ERROR_CODE: i16 = 0;

    /// kafka-protocol rejects a session id before v7, where the field does not exist.
    fn session_id(version: i16) -> i32 {
        if version >= FIRST_SESSION_VERSION {
            0x0a0b_0c0d
        } else {
            0
        }
    }

    fn fetched(segments: &Segments, specs: &[TopicSpec], version: i16) -> FetchedResponse<MemFile> {
        let topics = specs
            .iter()
            .map(|topic| FetchedTopic {
                name: topic.name.to_owned(),
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|p| FetchedPartition {
                        partition_index: p.index,
                        error_code: p.error_code,
                        high_watermark: high_watermark(p.index),
                        last_stable_offset: last_stable_offset(p.index),
                        log_start_offset: log_start_offset(p.index),
                        records: segments.range(p.records),
                    })
                    .collect(),
            })
            .collect();
        FetchedResponse {
            throttle_time_ms: THROTTLE_TIME_MS,
            error_code: RESPONSE_ERROR_CODE,
            session_id: session_id(version),
            topics,
        }
    }

    fn uuid_text(id: [u8; 16]) -> String {
        id.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn reference(segments: &Segments, specs: &[TopicSpec], version: i16) -> FetchResponse {
        let topics = specs
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionData::default()
                            .with_partition_index(p.index)
                            .with_error_code(p.error_code)
                            .with_high_watermark(high_watermark(p.index))
                            .with_last_stable_offset(last_stable_offset(p.index))
                            .with_log_start_offset(log_start_offset(p.index))
                            .with_aborted_transactions(Some(vec![]))
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_records(Some(segments.bytes(p.records)))
                    })
                    .collect();
                let topic_id = uuid_text(topic.topic_id).parse().expect("valid uuid");
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str(topic.name)))
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        FetchResponse::default()
            .with_throttle_time_ms(THROTTLE_TIME_MS)
            .with_error_code(RESPONSE_ERROR_CODE)
            .with_session_id(session_id(version))
            .with_responses(topics)
    }

    /// What kafka-protocol puts on the wire: size, response header, body.
    fn reference_wire(response: &FetchResponse, version: i16) -> Vec<u8> {
        let mut body = BytesMut::new();
        let header_version = ApiKey::Fetch.response_header_version(version);
        ResponseHeader::default()
            .with_correlation_id(CORRELATION_ID)
            .encode(&mut body, header_version)
            .expect("encode header");
        response.encode(&mut body, version).expect("encode body");
        let mut wire = (body.len() as i32).to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        wire
    }

    /// What the connection puts on the wire: bytes as they are, file ranges read from the file.
    fn send(frame: &Frame<MemFile>) -> Vec<u8> {
        let mut wire = Vec::new();
        for chunk in &frame.chunks {
            match chunk {
                Chunk::Bytes(bytes) => wire.extend_from_slice(bytes),
                Chunk::File {
                    file,
                    position,
                    len,
                } => {
                    let mut range = vec![0; *len as usize];
                    file.read_exact_at(&mut range, *position)
                        .expect("read range");
                    wire.extend_from_slice(&range);
                }
            }
        }
        wire
    }

    fn file_ranges(frame: &Frame<MemFile>) -> Vec<(u64, u64)> {
        let files = frame.chunks.iter().filter_map(|chunk| match chunk {
            Chunk::File { position, len, .. } => Some((*position, *len)),
            Chunk::Bytes(_) => None,
        });
        files.collect()
    }

    fn expected_file_ranges(specs: &[TopicSpec]) -> Vec<(u64, u64)> {
        let partitions = specs.iter().flat_map(|topic| &topic.partitions);
        let records = partitions.filter_map(|p| p.records);
        records.map(|(_, position, len)| (position, len)).collect()
    }

    #[test]
    fn every_version_matches_kafka_protocol() {
        let segments = Segments::new();
        let specs = topic_specs();
        for version in MIN_VERSION..=MAX_VERSION {
            let frame = encode(fetched(&segments, &specs, version), version, CORRELATION_ID);
            let expected = reference_wire(&reference(&segments, &specs, version), version);
            assert_eq!(send(&frame), expected, "Fetch v{version}");
            assert_eq!(
                frame.len(),
                expected.len() as u64,
                "Fetch v{version} length"
            );
        }
    }

    #[test]
    fn every_version_sends_each_record_set_as_one_file_range() {
        let segments = Segments::new();
        let specs = topic_specs();
        let expected = expected_file_ranges(&specs);
        assert_eq!(expected.len(), 4, "the test response has four record sets");
        for version in MIN_VERSION..=MAX_VERSION {
            let frame = encode(fetched(&segments, &specs, version), version, CORRELATION_ID);
            assert_eq!(file_ranges(&frame), expected, "Fetch v{version}");
        }
    }

    #[test]
    fn every_version_alternates_bytes_and_files() {
        let segments = Segments::new();
        let specs = topic_specs();
        for version in MIN_VERSION..=MAX_VERSION {
            let frame = encode(fetched(&segments, &specs, version), version, CORRELATION_ID);
            let is_file: Vec<bool> = frame
                .chunks
                .iter()
                .map(|chunk| matches!(chunk, Chunk::File { .. }))
                .collect();
            // Four files, each after a bytes chunk: B F B F B F B F, then the closing tagged
            // sections in flexible versions; before v12 the last records end the frame.
            let chunk_count = if is_flexible(version) { 9 } else { 8 };
            let alternating: Vec<bool> = (0..chunk_count).map(|i| i % 2 == 1).collect();
            assert_eq!(is_file, alternating, "Fetch v{version}");
            assert!(
                frame.chunks.iter().all(|chunk| !chunk.is_empty()),
                "Fetch v{version} has an empty chunk"
            );
        }
    }

    #[test]
    fn every_version_sends_an_empty_range_as_empty_records_without_a_file() {
        let segments = Segments::new();
        let specs = vec![TopicSpec {
            name: "empty",
            topic_id: [7; 16],
            partitions: vec![partition(3, 0, Some((0, 50, 0)))],
        }];
        for version in MIN_VERSION..=MAX_VERSION {
            let frame = encode(fetched(&segments, &specs, version), version, CORRELATION_ID);
            let expected = reference_wire(&reference(&segments, &specs, version), version);
            assert_eq!(send(&frame), expected, "Fetch v{version}");
            assert_eq!(frame.chunks.len(), 1, "Fetch v{version} is one bytes chunk");
        }
    }

    #[test]
    fn every_version_encodes_a_response_without_topics() {
        let segments = Segments::new();
        for version in MIN_VERSION..=MAX_VERSION {
            let frame = encode(fetched(&segments, &[], version), version, CORRELATION_ID);
            let expected = reference_wire(&reference(&segments, &[], version), version);
            assert_eq!(send(&frame), expected, "Fetch v{version}");
        }
    }

    #[test]
    #[should_panic(expected = "Fetch v3 is not encodable")]
    fn rejects_versions_before_4() {
        encode(fetched(&Segments::new(), &[], 3), 3, CORRELATION_ID);
    }

    #[test]
    #[should_panic(expected = "Fetch v17 is not encodable")]
    fn rejects_versions_after_16() {
        encode(fetched(&Segments::new(), &[], 17), 17, CORRELATION_ID);
    }
}
