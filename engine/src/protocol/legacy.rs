//! Request versions Kafka 3.9 still answers but the kafka-protocol crate (generated from Kafka
//! 4's schemas) no longer knows: OffsetCommit v0 and v1, which sarama 1.22 sends unless told to
//! keep offsets for a retention time. They are read into the crate's v2 request type, and
//! answered with the v2 response, whose bytes v0 and v1 share.
//!
//! OffsetCommit v0: group_id, [topic: name, [partition: index, offset, metadata]].
//! v1 adds generation_id and member_id after group_id, and a commit timestamp after each offset.
//! Strings are int16-length prefixed (nullable metadata: -1), arrays int32-counted.

use bytes::{Buf, Bytes};
#[cfg(any(test, feature = "fuzz"))]
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest};

use super::{str_bytes, topic_name, ProtocolError, Request};

/// The newest OffsetCommit version read here; v2 on goes through kafka-protocol.
pub const OFFSET_COMMIT_LEGACY_MAX: i16 = 1;
/// The version whose response bytes v0 and v1 share.
pub const OFFSET_COMMIT_RESPONSE_VERSION: i16 = 2;
/// A v1 commit timestamp that asks for the broker's time.
const DEFAULT_TIMESTAMP: i64 = -1;

/// One decoded legacy commit: the request as v2 would carry it, and each partition's commit
/// timestamp (v1; `None` for the broker's time), in request order.
pub struct LegacyCommit {
    pub body: OffsetCommitRequest,
    pub timestamps: Vec<Option<i64>>,
}

struct Reader<'a> {
    bytes: &'a mut Bytes,
    what: &'static str,
}

impl Reader<'_> {
    fn short(&self) -> ProtocolError {
        ProtocolError(format!("OffsetCommit {} ends early", self.what))
    }

    fn need(&self, n: usize) -> Result<(), ProtocolError> {
        if self.bytes.remaining() < n {
            return Err(self.short());
        }
        Ok(())
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.need(4)?;
        Ok(self.bytes.get_i32())
    }

    fn i64(&mut self) -> Result<i64, ProtocolError> {
        self.need(8)?;
        Ok(self.bytes.get_i64())
    }

    /// A nullable string: `None` for length -1.
    fn string(&mut self) -> Result<Option<String>, ProtocolError> {
        self.need(2)?;
        let len = self.bytes.get_i16();
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| {
            ProtocolError(format!("OffsetCommit {}: string length {len}", self.what))
        })?;
        self.need(len)?;
        let raw = self.bytes.split_to(len);
        String::from_utf8(raw.to_vec()).map(Some).map_err(|_| {
            ProtocolError(format!("OffsetCommit {}: a string is not UTF-8", self.what))
        })
    }

    fn required_string(&mut self) -> Result<String, ProtocolError> {
        self.string()?
            .ok_or_else(|| ProtocolError(format!("OffsetCommit {}: a null string", self.what)))
    }

    /// An array count, bounded by the bytes left (each element takes at least `min_bytes`), so a
    /// forged count cannot make the loop run past the frame.
    fn count(&mut self, min_bytes: usize) -> Result<usize, ProtocolError> {
        let count = self.i32()?;
        let count = usize::try_from(count).map_err(|_| {
            ProtocolError(format!("OffsetCommit {}: array count {count}", self.what))
        })?;
        if count.saturating_mul(min_bytes) > self.bytes.remaining() {
            return Err(self.short());
        }
        Ok(count)
    }
}

/// Reads an OffsetCommit v0 or v1 body.
///
/// # Errors
/// A `ProtocolError` when the body does not decode; bytes after it are left, as Kafka leaves
/// them (the caller counts them).
pub fn offset_commit(request: &Request) -> Result<LegacyCommit, ProtocolError> {
    let version = request.version;
    debug_assert!((0..=OFFSET_COMMIT_LEGACY_MAX).contains(&version));
    let mut bytes = request.body.clone();
    let mut r = Reader {
        bytes: &mut bytes,
        what: if version == 0 { "v0" } else { "v1" },
    };
    let mut body = OffsetCommitRequest::default();
    body.group_id = GroupId(str_bytes(&r.required_string()?));
    body.generation_id_or_member_epoch = -1;
    if version >= 1 {
        body.generation_id_or_member_epoch = r.i32()?;
        body.member_id = str_bytes(&r.required_string()?);
    }
    body.retention_time_ms = -1;
    let mut timestamps = Vec::new();
    // A topic takes at least its name's length and a partition count; a partition at least its
    // index, offset and metadata length.
    let partition_bytes = 4 + 8 + 2 + if version >= 1 { 8 } else { 0 };
    for _ in 0..r.count(2 + 4)? {
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = topic_name(&r.required_string()?);
        for _ in 0..r.count(partition_bytes)? {
            let mut partition = OffsetCommitRequestPartition::default();
            partition.partition_index = r.i32()?;
            partition.committed_offset = r.i64()?;
            let timestamp = if version >= 1 {
                r.i64()?
            } else {
                DEFAULT_TIMESTAMP
            };
            timestamps.push((timestamp != DEFAULT_TIMESTAMP).then_some(timestamp));
            partition.committed_metadata = r.string()?.map(|m| str_bytes(&m));
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    request
        .trailing_bytes
        .store(bytes.remaining(), std::sync::atomic::Ordering::Relaxed);
    Ok(LegacyCommit { body, timestamps })
}

/// Encodes an OffsetCommit v0 or v1 body as sarama writes one (for tests and the fuzz harness;
/// v1 commit timestamps are -1).
#[cfg(any(test, feature = "fuzz"))]
pub fn encode_offset_commit(body: &OffsetCommitRequest, version: i16) -> Vec<u8> {
    fn string(out: &mut BytesMut, text: &str) {
        out.put_i16(text.len() as i16);
        out.put_slice(text.as_bytes());
    }
    let mut out = BytesMut::new();
    string(&mut out, body.group_id.0.as_str());
    if version >= 1 {
        out.put_i32(body.generation_id_or_member_epoch);
        string(&mut out, body.member_id.as_str());
    }
    out.put_i32(body.topics.len() as i32);
    for topic in &body.topics {
        string(&mut out, topic.name.0.as_str());
        out.put_i32(topic.partitions.len() as i32);
        for partition in &topic.partitions {
            out.put_i32(partition.partition_index);
            out.put_i64(partition.committed_offset);
            if version >= 1 {
                out.put_i64(DEFAULT_TIMESTAMP);
            }
            match &partition.committed_metadata {
                Some(metadata) => string(&mut out, metadata.as_str()),
                None => out.put_i16(-1),
            }
        }
    }
    out.to_vec()
}
