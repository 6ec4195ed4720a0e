//! Kafka's RecordBatch v2 (magic 2), byte for byte: parsing, validation, offset assignment and a
//! builder.
//!
//! A batch is a 61-byte header followed by its records, possibly compressed as a whole. The CRC-32C
//! covers everything from `attributes` to the end, so the broker can rewrite the base offset and
//! the partition leader epoch (both before the CRC) without recomputing it. keel stores batches
//! exactly as the producer compressed them and never trusts one it has not validated: `validate`
//! checks length, magic, CRC, record count against the last offset delta, and every record's
//! framing and timestamp (decompressing to do so). The header's max timestamp is not trusted:
//! validation finds the records' maximum, and the log re-seals the header when they differ.
//!
//! ```text
//!  0 base_offset i64          27 base_timestamp i64
//!  8 batch_length i32         35 max_timestamp i64
//! 12 partition_leader_epoch   43 producer_id i64
//! 16 magic i8 (= 2)           51 producer_epoch i16
//! 17 crc u32                  53 base_sequence i32
//! 21 attributes i16           57 records_count i32
//! 23 last_offset_delta i32    61 records...
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::compression::{self, Codec, CompressionError};

pub const HEADER_BYTES: usize = 61;
/// base_offset + batch_length: the part of the header that is not counted by batch_length.
pub const LOG_OVERHEAD_BYTES: usize = 12;
pub const MAGIC_V2: i8 = 2;
const BASE_OFFSET_POS: usize = 0;
const LENGTH_POS: usize = 8;
const LEADER_EPOCH_POS: usize = 12;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const LAST_OFFSET_DELTA_POS: usize = 23;
const BASE_TIMESTAMP_POS: usize = 27;
const MAX_TIMESTAMP_POS: usize = 35;
const PRODUCER_ID_POS: usize = 43;
const PRODUCER_EPOCH_POS: usize = 51;
const BASE_SEQUENCE_POS: usize = 53;
const RECORDS_COUNT_POS: usize = 57;

const ATTR_CODEC_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// A batch may not decompress to more than this, whatever it claims: a decompression bomb must
/// not exhaust the broker's memory.
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's length field announces.
    Truncated {
        bytes: usize,
        bytes_needed: usize,
    },
    /// The length field disagrees with the bytes given (trailing bytes, or a negative length).
    BadLength {
        batch_length: i32,
        bytes: usize,
    },
    BadMagic(i8),
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// The records do not match the header: count, offset deltas or framing.
    BadRecords(String),
    BadTimestamp(String),
    Compression(CompressionError),
    /// Records that a topic's rules refuse (a keyless record on a compacted topic), each named
    /// by its index in the batch: Kafka's record errors (KIP-467), never empty.
    RecordErrors(Vec<RecordError>),
}

/// One record a batch was refused for: its index among the batch's records and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

/// How many record errors the batch's own error message spells out (all of them are listed in
/// a Produce answer's record_errors); Kafka shows three.
pub const RECORD_ERRORS_SHOWN_MAX: usize = 3;

impl fmt::Display for RecordError {
    /// As Kafka's `RecordError.toString`, which its batch-level message quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecordError(batchIndex={}, message='{}')",
            self.batch_index, self.message
        )
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated {
                bytes,
                bytes_needed,
            } => write!(f, "batch truncated: {bytes} bytes of {bytes_needed}"),
            BatchError::BadLength {
                batch_length,
                bytes,
            } => write!(
                f,
                "batch length field {batch_length} does not match {bytes} bytes"
            ),
            BatchError::BadMagic(magic) => write!(f, "unsupported magic {magic} (keel stores v2)"),
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::BadRecords(why) => write!(f, "invalid records: {why}"),
            BatchError::BadTimestamp(why) => write!(f, "invalid timestamp: {why}"),
            BatchError::Compression(e) => write!(f, "{e}"),
            // Kafka's words (LogValidator), which clients show their users.
            BatchError::RecordErrors(errors) => {
                let shown: Vec<String> = errors
                    .iter()
                    .take(RECORD_ERRORS_SHOWN_MAX)
                    .map(RecordError::to_string)
                    .collect();
                write!(
                    f,
                    "One or more records have been rejected due to {} record errors in total, \
                     and only showing the first three errors at most: [{}]",
                    errors.len(),
                    shown.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for BatchError {}

impl From<CompressionError> for BatchError {
    fn from(e: CompressionError) -> BatchError {
        BatchError::Compression(e)
    }
}

fn i16_at(b: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([b[pos], b[pos + 1]])
}

fn i32_at(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes(b[pos..pos + 4].try_into().expect("4 bytes"))
}

fn u32_at(b: &[u8], pos: usize) -> u32 {
    u32::from_be_bytes(b[pos..pos + 4].try_into().expect("4 bytes"))
}

fn i64_at(b: &[u8], pos: usize) -> i64 {
    i64::from_be_bytes(b[pos..pos + 8].try_into().expect("8 bytes"))
}

/// The fixed header of a batch, decoded. Parsing it checks only that the bytes are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the first `HEADER_BYTES` of `bytes`.
    ///
    /// # Errors
    /// `Truncated` when fewer than `HEADER_BYTES` bytes are given.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                bytes: bytes.len(),
                bytes_needed: HEADER_BYTES,
            });
        }
        Ok(BatchHeader {
            base_offset: i64_at(bytes, BASE_OFFSET_POS),
            batch_length: i32_at(bytes, LENGTH_POS),
            partition_leader_epoch: i32_at(bytes, LEADER_EPOCH_POS),
            magic: bytes[MAGIC_POS] as i8,
            crc: u32_at(bytes, CRC_POS),
            attributes: i16_at(bytes, ATTRIBUTES_POS),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA_POS),
            base_timestamp: i64_at(bytes, BASE_TIMESTAMP_POS),
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP_POS),
            producer_id: i64_at(bytes, PRODUCER_ID_POS),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH_POS),
            base_sequence: i32_at(bytes, BASE_SEQUENCE_POS),
            records_count: i32_at(bytes, RECORDS_COUNT_POS),
        })
    }

    /// The whole batch's size on disk, or `None` if the length field is impossible.
    pub fn total_bytes(&self) -> Option<usize> {
        let length = usize::try_from(self.batch_length).ok()?;
        if length + LOG_OVERHEAD_BYTES < HEADER_BYTES {
            return None;
        }
        Some(length + LOG_OVERHEAD_BYTES)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The codec; `Err` for ids Kafka does not define.
    ///
    /// # Errors
    /// `UnknownCodec` for ids 5 to 7.
    pub fn codec(&self) -> Result<Codec, CompressionError> {
        Codec::from_attributes(self.attributes & ATTR_CODEC_MASK)
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// The CRC-32C a batch should carry: over attributes..end.
///
/// # Panics
/// When `batch` is shorter than a header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_POS..])
}

/// Whether the stored CRC matches the bytes. Under `cfg(fuzzing)` every CRC passes, so that a
/// fuzzer reaches the code behind the check.
pub fn crc_ok(batch: &[u8], header: &BatchHeader) -> bool {
    cfg!(fuzzing) || compute_crc(batch) == header.crc
}

/// Rewrites the base offset. It lies outside the CRC, so the CRC stays valid.
///
/// # Panics
/// When `batch` is shorter than a header.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch (outside the CRC).
///
/// # Panics
/// When `batch` is shorter than a header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites max_timestamp (and the timestamp type) and recomputes the CRC, which covers them.
///
/// # Panics
/// When `batch` is shorter than a header.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64, log_append_time: bool) {
    let mut attributes = i16_at(batch, ATTRIBUTES_POS) & !ATTR_LOG_APPEND_TIME;
    if log_append_time {
        attributes |= ATTR_LOG_APPEND_TIME;
    }
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

/// What validation learned about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub header: BatchHeader,
    pub codec: Codec,
    /// The largest record timestamp (CreateTime), which may differ from the header's claim.
    pub max_record_timestamp: i64,
    /// The offset delta of the record that carries `max_record_timestamp`.
    pub offset_delta_of_max_timestamp: i32,
}

/// Checks a whole batch as it would be appended: exact length, magic, CRC, codec, and records.
///
/// The header's max_timestamp is the producer's claim and is not held against the records:
/// sarama writes -1 there, and Kafka takes the maximum from the records (LogValidator), as
/// `BatchInfo::max_record_timestamp` does; `Log::append` seals that into the header. What is
/// checked is that every record's timestamp (base timestamp plus delta) is an i64.
///
/// With `dense` set (a producer's batch) the records must have offset deltas 0, 1, 2, ... and
/// their count must be last_offset_delta + 1; without it (a compacted or replicated batch) deltas
/// must only increase and stay within last_offset_delta.
///
/// # Errors
/// The first problem found, as a `BatchError`.
pub fn validate(batch: &[u8], dense: bool) -> Result<BatchInfo, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    match header.total_bytes() {
        Some(total) if total == batch.len() => {}
        _ => {
            return Err(BatchError::BadLength {
                batch_length: header.batch_length,
                bytes: batch.len(),
            })
        }
    }
    if !crc_ok(batch, &header) {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed: compute_crc(batch),
        });
    }
    let codec = header.codec()?;
    validate_counts(&header, dense)?;
    let records = records_section(codec, &batch[HEADER_BYTES..])?;
    let (max_record_timestamp, offset_delta_of_max_timestamp) =
        validate_records(&header, &records, dense)?;
    Ok(BatchInfo {
        header,
        codec,
        max_record_timestamp,
        offset_delta_of_max_timestamp,
    })
}

/// A batch's records section as plain bytes: borrowed when uncompressed, decompressed (within
/// `DECOMPRESSED_BYTES_MAX`) otherwise.
fn records_section(codec: Codec, payload: &[u8]) -> Result<Cow<'_, [u8]>, BatchError> {
    Ok(match codec {
        Codec::None => Cow::Borrowed(payload),
        _ => Cow::Owned(compression::decompress(
            codec,
            payload,
            DECOMPRESSED_BYTES_MAX,
        )?),
    })
}

fn validate_counts(header: &BatchHeader, dense: bool) -> Result<(), BatchError> {
    if header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(BatchError::BadRecords(format!(
            "negative last_offset_delta {} or records_count {}",
            header.last_offset_delta, header.records_count
        )));
    }
    let span = i64::from(header.last_offset_delta) + 1;
    let count = i64::from(header.records_count);
    let count_ok = if dense { count == span } else { count <= span };
    if !count_ok || count == 0 && dense {
        return Err(BatchError::BadRecords(format!(
            "records_count {} does not fit last_offset_delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(())
}

/// Walks every record; returns the largest timestamp and the offset delta that carries it.
fn validate_records(
    header: &BatchHeader,
    records: &[u8],
    dense: bool,
) -> Result<(i64, i32), BatchError> {
    let mut reader = RecordReader::new(records, header.records_count);
    let mut max = (i64::MIN, 0);
    let mut previous_delta: i64 = -1;
    while let Some((timestamp_delta, delta)) = reader.next_deltas()? {
        let delta_ok = if dense {
            delta == previous_delta + 1
        } else {
            delta > previous_delta && delta <= i64::from(header.last_offset_delta)
        };
        if !delta_ok {
            return Err(BatchError::BadRecords(format!(
                "offset delta {delta} after {previous_delta}"
            )));
        }
        previous_delta = delta;
        let timestamp = header
            .base_timestamp
            .checked_add(timestamp_delta)
            .ok_or_else(|| BatchError::BadTimestamp("timestamp overflows".to_owned()))?;
        if timestamp > max.0 {
            max = (timestamp, delta as i32);
        }
    }
    if !reader.rest().is_empty() {
        return Err(BatchError::BadRecords(format!(
            "{} bytes after the last record",
            reader.rest().len()
        )));
    }
    if header.records_count == 0 {
        max = (header.max_timestamp, 0);
    }
    Ok(max)
}

/// One record of a batch, borrowing from the (decompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Reads the records of a records section one at a time, checking each one's framing. It stops
/// after `records_count` records, so trailing bytes are left for the caller to judge.
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    records_left: i32,
}

/// A record's header count may not exceed this: each costs an allocation slot.
const RECORD_HEADERS_MAX: i64 = 64 * 1024;

impl<'a> RecordReader<'a> {
    pub fn new(bytes: &'a [u8], records_count: i32) -> RecordReader<'a> {
        RecordReader {
            bytes,
            pos: 0,
            records_left: records_count,
        }
    }

    /// The bytes after the records read so far.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// The next record, `None` after the last.
    ///
    /// # Errors
    /// `BadRecords` when a record's framing is broken.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, BatchError> {
        self.next_with(RecordReader::record_body)
    }

    /// Checks the framing of the next record like `next_record`, but returns only its timestamp
    /// and offset deltas: validation on the produce path needs no more, and building a `Record`
    /// per record would cost more than the check itself.
    ///
    /// # Errors
    /// `BadRecords` when a record's framing is broken.
    pub fn next_deltas(&mut self) -> Result<Option<(i64, i64)>, BatchError> {
        self.next_with(RecordReader::record_deltas)
    }

    /// Reads the next record's length, lets `read` parse the body within it, and checks the body
    /// used exactly that length.
    fn next_with<T>(
        &mut self,
        read: impl FnOnce(&mut RecordReader<'a>) -> Result<T, BatchError>,
    ) -> Result<Option<T>, BatchError> {
        if self.records_left <= 0 {
            return Ok(None);
        }
        self.records_left -= 1;
        let length = self.varint()?;
        let length = usize::try_from(length)
            .map_err(|_| BatchError::BadRecords(format!("negative record length {length}")))?;
        let end = self
            .pos
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| BatchError::BadRecords("record runs past the batch".to_owned()))?;
        let mut body = RecordReader {
            bytes: &self.bytes[..end],
            pos: self.pos,
            records_left: 0,
        };
        let parsed = read(&mut body)?;
        if body.pos != end {
            return Err(BatchError::BadRecords(format!(
                "record length {length} disagrees with its fields"
            )));
        }
        self.pos = end;
        Ok(Some(parsed))
    }

    /// A record body's timestamp and offset deltas, every other field checked and skipped.
    fn record_deltas(&mut self) -> Result<(i64, i64), BatchError> {
        self.take(1)?;
        let timestamp_delta = self.varint()?;
        let offset_delta = self.varint()?;
        self.nullable_bytes()?;
        self.nullable_bytes()?;
        let header_count = self.varint()?;
        if !(0..=RECORD_HEADERS_MAX).contains(&header_count) {
            return Err(BatchError::BadRecords(format!(
                "header count {header_count}"
            )));
        }
        for _ in 0..header_count {
            if self.nullable_bytes()?.is_none() {
                return Err(BatchError::BadRecords("null header key".to_owned()));
            }
            self.nullable_bytes()?;
        }
        Ok((timestamp_delta, offset_delta))
    }

    fn record_body(&mut self) -> Result<Record<'a>, BatchError> {
        let attributes = self.take(1)?[0] as i8;
        let timestamp_delta = self.varint()?;
        let offset_delta = self.varint()?;
        let key = self.nullable_bytes()?;
        let value = self.nullable_bytes()?;
        let header_count = self.varint()?;
        if !(0..=RECORD_HEADERS_MAX).contains(&header_count) {
            return Err(BatchError::BadRecords(format!(
                "header count {header_count}"
            )));
        }
        let mut headers = Vec::new();
        for _ in 0..header_count {
            let name = self
                .nullable_bytes()?
                .ok_or_else(|| BatchError::BadRecords("null header key".to_owned()))?;
            headers.push((name, self.nullable_bytes()?));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                BatchError::BadRecords("record field runs past the record".to_owned())
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let length = self.varint()?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .map_err(|_| BatchError::BadRecords(format!("field length {length}")))?;
        self.take(length).map(Some)
    }

    /// A zig-zag varint of up to 64 bits (Kafka's varlong; varints are the same encoding).
    #[inline]
    fn varint(&mut self) -> Result<i64, BatchError> {
        let (value, used) = read_varint(&self.bytes[self.pos..])
            .ok_or_else(|| BatchError::BadRecords("bad varint".to_owned()))?;
        self.pos += used;
        Ok(value)
    }
}

/// Decodes a zig-zag varint; returns the value and the bytes used, `None` when malformed.
#[inline]
pub fn read_varint(bytes: &[u8]) -> Option<(i64, usize)> {
    // Most varints in a batch (deltas, small lengths) fit one byte.
    if let Some(&byte) = bytes.first() {
        if byte < 0x80 {
            let raw = u64::from(byte);
            return Some(((raw >> 1) as i64 ^ -((raw & 1) as i64), 1));
        }
    }
    let mut raw: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        raw |= bits << (7 * i);
        if byte & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// A record to put in a batch with `BatchBuilder`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Builds RecordBatch v2 bytes the way a producer does (tests, benchmarks, the simulator's
/// producers and compaction use it).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub codec: Codec,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
}

impl Default for BatchBuilder {
    fn default() -> BatchBuilder {
        BatchBuilder {
            base_offset: 0,
            codec: Codec::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
        }
    }
}

impl BatchBuilder {
    /// Encodes `records` with offset deltas 0..n.
    ///
    /// # Errors
    /// When the codec fails to compress.
    pub fn build(&self, records: &[NewRecord]) -> Result<Vec<u8>, CompressionError> {
        let deltas: Vec<i64> = (0..records.len() as i64).collect();
        self.build_with_deltas(records, &deltas, records.len().saturating_sub(1) as i32)
    }

    /// Encodes `records` with the given offset deltas (compaction leaves holes).
    ///
    /// # Errors
    /// When the codec fails to compress.
    ///
    /// # Panics
    /// When `records` and `offset_deltas` differ in length.
    pub fn build_with_deltas(
        &self,
        records: &[NewRecord],
        offset_deltas: &[i64],
        last_offset_delta: i32,
    ) -> Result<Vec<u8>, CompressionError> {
        assert_eq!(records.len(), offset_deltas.len());
        let base_timestamp = records.iter().map(|r| r.timestamp).min().unwrap_or(-1);
        let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let mut body = Vec::new();
        for (record, &delta) in records.iter().zip(offset_deltas) {
            encode_record(&mut body, record, record.timestamp - base_timestamp, delta);
        }
        let payload = match self.codec {
            Codec::None => body,
            codec => compression::compress(codec, &body)?,
        };
        let mut batch = Vec::with_capacity(HEADER_BYTES + payload.len());
        batch.extend_from_slice(&self.base_offset.to_be_bytes());
        let batch_length = (HEADER_BYTES - LOG_OVERHEAD_BYTES + payload.len()) as i32;
        batch.extend_from_slice(&batch_length.to_be_bytes());
        batch.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        batch.push(MAGIC_V2 as u8);
        batch.extend_from_slice(&[0; 4]);
        batch.extend_from_slice(&i16::from(self.codec.id()).to_be_bytes());
        batch.extend_from_slice(&last_offset_delta.to_be_bytes());
        batch.extend_from_slice(&base_timestamp.to_be_bytes());
        batch.extend_from_slice(&max_timestamp.to_be_bytes());
        batch.extend_from_slice(&self.producer_id.to_be_bytes());
        batch.extend_from_slice(&self.producer_epoch.to_be_bytes());
        batch.extend_from_slice(&self.base_sequence.to_be_bytes());
        batch.extend_from_slice(&(records.len() as i32).to_be_bytes());
        batch.extend_from_slice(&payload);
        let crc = compute_crc(&batch);
        batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(batch)
    }
}

fn encode_record(out: &mut Vec<u8>, record: &NewRecord, timestamp_delta: i64, offset_delta: i64) {
    let mut body = vec![0u8];
    write_varint(&mut body, timestamp_delta);
    write_varint(&mut body, offset_delta);
    write_nullable(&mut body, record.key.as_deref());
    write_nullable(&mut body, record.value.as_deref());
    write_varint(&mut body, record.headers.len() as i64);
    for (name, value) in &record.headers {
        write_nullable(&mut body, Some(name));
        write_nullable(&mut body, value.as_deref());
    }
    write_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

/// What compaction writes in place of a batch it keeps only `records` of (records of `original`,
/// with their offsets): the original's base offset and last offset delta (so the batch still ends
/// where it did), producer id, epoch and base sequence, partition leader epoch, codec and
/// attributes, with a fresh CRC. Under LogAppendTime the original max timestamp is kept. With no
/// records it is an empty batch, uncompressed, both timestamps the original's max timestamp, as
/// Kafka writes one to keep a producer's last sequence.
///
/// # Errors
/// When the codec fails to compress.
pub fn rebuild(
    original: &BatchHeader,
    records: &[DecodedRecord],
) -> Result<Vec<u8>, CompressionError> {
    let codec = match records.is_empty() {
        true => Codec::None,
        false => original.codec()?,
    };
    let mut batch = build_like(original, records, codec)?;
    if records.is_empty() {
        let timestamp = original.max_timestamp.to_be_bytes();
        batch[BASE_TIMESTAMP_POS..BASE_TIMESTAMP_POS + 8].copy_from_slice(&timestamp);
        batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&timestamp);
    }
    let crc = compute_crc(&batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(batch)
}

/// The batch with its records compressed by `codec` instead, for a topic whose
/// compression.type names a codec (Kafka's log validator recompresses such batches): the same
/// base offset and offset deltas, producer id, epoch and base sequence, partition leader epoch,
/// record timestamps and timestamp type, and a fresh CRC. The caller has validated `batch`.
///
/// # Errors
/// Framing or compression errors.
pub fn recompress(batch: &[u8], codec: Codec) -> Result<Vec<u8>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = decode_records(batch)?;
    let mut out = build_like(&header, &records, codec).map_err(BatchError::Compression)?;
    let crc = compute_crc(&out);
    out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(decode_records(&out).ok().as_ref(), Some(&records));
    Ok(out)
}

/// `records` (of `original`, with their offsets) encoded as a batch like `original`: its base
/// offset and last offset delta, producer id, epoch and base sequence, partition leader epoch
/// and attributes, with `codec`, and under LogAppendTime its max timestamp. The CRC is left to
/// the caller, which may change more first.
fn build_like(
    original: &BatchHeader,
    records: &[DecodedRecord],
    codec: Codec,
) -> Result<Vec<u8>, CompressionError> {
    let builder = BatchBuilder {
        base_offset: original.base_offset,
        codec,
        producer_id: original.producer_id,
        producer_epoch: original.producer_epoch,
        base_sequence: original.base_sequence,
        partition_leader_epoch: original.partition_leader_epoch,
    };
    let new_records: Vec<NewRecord> = records
        .iter()
        .map(|r| NewRecord {
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        })
        .collect();
    let deltas: Vec<i64> = records
        .iter()
        .map(|r| r.offset.saturating_sub(original.base_offset))
        .collect();
    let mut batch = builder.build_with_deltas(&new_records, &deltas, original.last_offset_delta)?;
    let attributes = (original.attributes & !ATTR_CODEC_MASK) | i16::from(codec.id());
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    if original.is_log_append_time() {
        let timestamp = original.max_timestamp.to_be_bytes();
        batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&timestamp);
    }
    Ok(batch)
}

/// The records of a batch with their absolute offsets and timestamps, decompressed and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Decodes every record of a batch (which must already have passed `validate`, or be checked
/// again here: this function re-validates framing but not the CRC).
///
/// # Errors
/// Framing or compression errors.
pub fn decode_records(batch: &[u8]) -> Result<Vec<DecodedRecord>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let end = header
        .total_bytes()
        .filter(|&n| n <= batch.len())
        .ok_or(BatchError::BadLength {
            batch_length: header.batch_length,
            bytes: batch.len(),
        })?;
    let records = records_section(header.codec()?, &batch[HEADER_BYTES..end])?;
    let mut reader = RecordReader::new(&records, header.records_count);
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        out.push(DecodedRecord {
            offset: header.base_offset.saturating_add(record.offset_delta),
            timestamp,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ts: i64, key: &str, value: &str) -> NewRecord {
        NewRecord {
            timestamp: ts,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![(b"h".to_vec(), Some(b"v".to_vec()))],
        }
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(read_varint(&out), Some((value, out.len())), "{value}");
        }
        assert_eq!(read_varint(&[0x80; 11]), None);
        assert_eq!(read_varint(&[]), None);
    }

    #[test]
    fn built_batches_validate_and_decode() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let builder = BatchBuilder {
                codec,
                ..BatchBuilder::default()
            };
            let records = [record(1000, "a", "x"), record(1005, "b", "y")];
            let batch = builder.build(&records).unwrap();
            let info = validate(&batch, true).unwrap();
            assert_eq!(info.codec, codec);
            assert_eq!(info.max_record_timestamp, 1005);
            assert_eq!(info.offset_delta_of_max_timestamp, 1);
            let decoded = decode_records(&batch).unwrap();
            assert_eq!(decoded.len(), 2);
            assert_eq!(decoded[1].offset, 1);
            assert_eq!(decoded[1].timestamp, 1005);
            assert_eq!(decoded[1].value.as_deref(), Some(&b"y"[..]));
        }
    }

    #[test]
    fn base_offset_rewrite_keeps_the_crc() {
        let mut batch = BatchBuilder::default()
            .build(&[record(1, "k", "v")])
            .unwrap();
        set_base_offset(&mut batch, 42);
        let info = validate(&batch, true).unwrap();
        assert_eq!(info.header.base_offset, 42);
    }

    #[test]
    fn every_single_bit_flip_after_the_crc_field_is_caught() {
        let batch = BatchBuilder::default()
            .build(&[record(1, "key", "value")])
            .unwrap();
        for pos in ATTRIBUTES_POS..batch.len() {
            for bit in 0..8 {
                let mut bad = batch.clone();
                bad[pos] ^= 1 << bit;
                assert!(validate(&bad, true).is_err(), "flip at {pos}:{bit}");
            }
        }
    }

    #[test]
    fn malformed_batches_are_refused_with_the_reason() {
        let good = BatchBuilder::default()
            .build(&[record(1, "k", "v"), record(2, "k", "w")])
            .unwrap();
        let resealed = |mut b: Vec<u8>| {
            let crc = compute_crc(&b);
            b[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
            b
        };
        let mut count_wrong = good.clone();
        count_wrong[RECORDS_COUNT_POS + 3] = 3;
        let mut delta_wrong = good.clone();
        delta_wrong[LAST_OFFSET_DELTA_POS + 3] = 5;
        let mut magic_wrong = good.clone();
        magic_wrong[MAGIC_POS] = 1;
        let mut codec_wrong = good.clone();
        codec_wrong[ATTRIBUTES_POS + 1] = 6;
        type Case = (&'static str, Vec<u8>, fn(&BatchError) -> bool);
        let cases: Vec<Case> = vec![
            ("short", good[..30].to_vec(), |e| {
                matches!(e, BatchError::Truncated { .. })
            }),
            ("trailing", [good.clone(), vec![0]].concat(), |e| {
                matches!(e, BatchError::BadLength { .. })
            }),
            ("magic", magic_wrong, |e| {
                matches!(e, BatchError::BadMagic(1))
            }),
            (
                "crc",
                {
                    let mut b = good.clone();
                    b[CRC_POS] ^= 1;
                    b
                },
                |e| matches!(e, BatchError::CrcMismatch { .. }),
            ),
            ("count", resealed(count_wrong), |e| {
                matches!(e, BatchError::BadRecords(_))
            }),
            ("delta", resealed(delta_wrong), |e| {
                matches!(e, BatchError::BadRecords(_))
            }),
            ("codec", resealed(codec_wrong), |e| {
                matches!(e, BatchError::Compression(_))
            }),
        ];
        for (name, bytes, expected) in cases {
            let error = validate(&bytes, true).expect_err(name);
            assert!(expected(&error), "{name}: {error}");
        }
    }

    #[test]
    fn max_timestamp_rewrite_reseals_the_crc() {
        let mut batch = BatchBuilder::default()
            .build(&[record(7, "k", "v")])
            .unwrap();
        set_max_timestamp(&mut batch, 99, true);
        let info = validate(&batch, true).unwrap();
        assert_eq!(info.header.max_timestamp, 99);
        assert!(info.header.is_log_append_time());
        assert_eq!(decode_records(&batch).unwrap()[0].timestamp, 99);
    }

    /// sarama (1.22) writes -1 as every batch's max timestamp; Kafka accepts the batch and takes
    /// the maximum from the records. A claim above the records' maximum is no more binding.
    #[test]
    fn a_wrong_max_timestamp_claim_is_not_held_against_the_records() {
        for codec in [Codec::None, Codec::Snappy] {
            let builder = BatchBuilder {
                codec,
                ..BatchBuilder::default()
            };
            let records = [
                record(1000, "a", "x"),
                record(1007, "b", "y"),
                record(1003, "c", "z"),
            ];
            for claim in [-1, 0, 999, 1006, 1008, i64::MAX] {
                let mut batch = builder.build(&records).unwrap();
                set_max_timestamp(&mut batch, claim, false);
                let info = validate(&batch, true).unwrap_or_else(|e| panic!("{claim}: {e}"));
                assert_eq!(info.header.max_timestamp, claim);
                assert_eq!(info.max_record_timestamp, 1007, "claim {claim}");
                assert_eq!(info.offset_delta_of_max_timestamp, 1, "claim {claim}");
            }
        }
    }

    #[test]
    fn a_record_timestamp_that_overflows_is_refused() {
        let mut batch = BatchBuilder::default()
            .build(&[record(1000, "a", "x"), record(1005, "b", "y")])
            .unwrap();
        // The second record's delta (5) takes it past i64::MAX.
        batch[BASE_TIMESTAMP_POS..BASE_TIMESTAMP_POS + 8]
            .copy_from_slice(&(i64::MAX - 2).to_be_bytes());
        set_max_timestamp(&mut batch, -1, false);
        let error = validate(&batch, true).unwrap_err();
        assert!(
            matches!(&error, BatchError::BadTimestamp(why) if why.contains("overflows")),
            "{error}"
        );
    }
}
