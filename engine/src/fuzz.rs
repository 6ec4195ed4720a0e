//! Fuzz bodies: the properties keel's batch parser, codecs, recovery and index lookups must keep
//! whatever bytes they are given, as plain functions that both the libFuzzer targets in `fuzz/`
//! and the corpus replay test (`engine/tests/fuzz_corpus.rs`) call. A body never panics on any
//! input; it asserts only invariants whose failure is a bug in keel.
//!
//! Under `cfg(fuzzing)` every batch CRC passes (`batch::crc_ok`), so that the fuzzer reaches the
//! code behind the check. Nothing here counts on a CRC to reject bytes: where keel trusts a batch
//! because of its CRC, the bodies accept whatever that trust lets through.

use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::broker::config::BrokerConfig;
use crate::broker::Broker;
use crate::compression::{self, Codec};
use crate::io::mem::MemDisk;
use crate::io::mem::MemFile;
use crate::io::Disk;
use crate::io::{File, Rng};
use crate::log::batch::{
    self, BatchBuilder, BatchHeader, BatchInfo, DecodedRecord, NewRecord, RecordReader,
};
use crate::log::checkpoint::{Checkpoint, CheckpointFile, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::log::dump::{self, Problem};
use crate::log::model::LogModel;
use crate::log::segment::{segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::log::{Log, LogConfig, LogError};
use crate::protocol::{
    self,
    frame::{Chunk, Frame},
};

/// Every codec Kafka defines.
const CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Snappy,
    Codec::Lz4,
    Codec::Zstd,
];

/// The output bound when fuzz bytes are decompressed directly: far above any seed's records, far
/// below what would make one execution slow.
const PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// The partition directory every body works in.
const DIR: &str = "/fuzz/topic-0";

fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// Small segments and one-page indexes, so rolls, preallocation and trimming happen on small
/// inputs.
fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Opens the log in `DIR`. MemDisk never fails and damaged data is never an open error, so any
/// error is a bug.
fn open_log(disk: &MemDisk, config: LogConfig) -> Log<MemDisk> {
    Log::open(disk.clone(), &dir(), config, 0)
        .unwrap_or_else(|e| panic!("open failed on MemDisk: {e}"))
}

/// The whole batches `bytes` is made of. Panics if it ends inside one: a read never returns that.
fn split_batches(bytes: &[u8]) -> Vec<&[u8]> {
    let mut batches = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let total = BatchHeader::parse(rest)
            .ok()
            .and_then(|h| h.total_bytes())
            .filter(|&n| n <= rest.len())
            .unwrap_or_else(|| panic!("{} bytes that are not a whole batch", rest.len()));
        let (batch, after) = rest.split_at(total);
        batches.push(batch);
        rest = after;
    }
    batches
}

// ---------------------------------------------------------------------------------------------
// batch_decode

/// Parses `data` as a batch, then as the records section of a batch under each codec.
pub fn batch_decode(data: &[u8]) {
    check_batch(data);
    for codec in CODECS {
        check_payload(codec, data);
    }
}

/// Validation agrees with itself (dense implies sparse) and with decoding.
fn check_batch(bytes: &[u8]) {
    if let Ok(header) = BatchHeader::parse(bytes) {
        // Derived fields must be total on any header.
        let _ = (header.total_bytes(), header.last_offset(), header.codec());
    }
    let dense = batch::validate(bytes, true);
    let sparse = batch::validate(bytes, false);
    let decoded = batch::decode_records(bytes);
    if let Ok(info) = &dense {
        assert_eq!(sparse.as_ref().ok(), Some(info), "dense but not sparse");
    }
    if let Ok(info) = &sparse {
        let records = decoded
            .as_ref()
            .unwrap_or_else(|e| panic!("a validated batch fails to decode: {e}"));
        check_decoded(info, records, dense.is_ok());
    }
}

/// What decoding a validated batch must give: `records_count` records, carrying the timestamp
/// validation found, at increasing offsets inside the batch (exactly base..=last when dense).
fn check_decoded(info: &BatchInfo, records: &[DecodedRecord], dense: bool) {
    let header = &info.header;
    assert_eq!(records.len(), header.records_count as usize, "record count");
    let max = records.iter().map(|r| r.timestamp).max();
    if !header.is_log_append_time() && max.is_some() {
        assert_eq!(max, Some(info.max_record_timestamp), "max timestamp");
    }
    // A producer's base offset is a placeholder that the broker overwrites, so validation takes
    // any; decoding saturates offsets that would pass i64::MAX, and only others can be checked.
    let last_delta = i64::from(header.last_offset_delta);
    if header.base_offset.checked_add(last_delta).is_none() {
        return;
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets do not increase: {offsets:?}"
    );
    let span = header.base_offset..=header.last_offset();
    assert!(
        offsets.iter().all(|o| span.contains(o)),
        "offsets {offsets:?} outside {span:?}"
    );
    if dense {
        assert!(
            offsets.iter().copied().eq(span.clone()),
            "dense offsets {offsets:?} are not {span:?}"
        );
    }
}

/// `data` as compressed records: compression round-trips, decompression keeps its bound, and a
/// batch wrapped around `data` takes the record parser behind decompression.
fn check_payload(codec: Codec, data: &[u8]) {
    check_round_trip(codec, data);
    // A payload over the bound was a test of the bound; wrapping it would only cost time.
    if let Ok(records) = compression::decompress(codec, data, PAYLOAD_BYTES_MAX) {
        assert!(records.len() <= PAYLOAD_BYTES_MAX, "decompression bound");
        check_batch(&wrap(codec, data, count_records(&records)));
    }
}

fn check_round_trip(codec: Codec, data: &[u8]) {
    let compressed = compression::compress(codec, data)
        .unwrap_or_else(|e| panic!("{} compression failed: {e}", codec.name()));
    let back = compression::decompress(codec, &compressed, data.len())
        .unwrap_or_else(|e| panic!("{} cannot read its own output: {e}", codec.name()));
    assert!(
        back == data,
        "{} round trip changed the bytes",
        codec.name()
    );
}

/// How many well-formed records `records` starts with: the count a producer would have written.
fn count_records(records: &[u8]) -> i32 {
    let mut reader = RecordReader::new(records, i32::MAX);
    let mut count = 0;
    while let Ok(Some(_)) = reader.next_record() {
        count += 1;
    }
    count
}

/// A producer's batch header around `payload` (`records` records, compressed with `codec`), with
/// a correct CRC, so that validation gets past the header to decompression and the records.
fn wrap(codec: Codec, payload: &[u8], records: i32) -> Vec<u8> {
    let length = batch::HEADER_BYTES - batch::LOG_OVERHEAD_BYTES + payload.len();
    let mut out = Vec::with_capacity(batch::HEADER_BYTES + payload.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&(length as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(batch::MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, sealed below
    out.extend_from_slice(&i16::from(codec.id()).to_be_bytes());
    out.extend_from_slice(&(records - 1).max(0).to_be_bytes()); // last offset delta
    out.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    out.extend_from_slice(&0i64.to_be_bytes()); // max timestamp, set below
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&records.to_be_bytes());
    out.extend_from_slice(payload);
    // Any record timestamp is at most i64::MAX; this also computes and stores the CRC.
    batch::set_max_timestamp(&mut out, i64::MAX, false);
    out
}

// ---------------------------------------------------------------------------------------------
// segment_recover

/// `segment_recover`'s input: a head of `RECOVER_HEAD_BYTES`, then the `.index`, `.timeindex`
/// and `.log` bytes of segment 0. The head is
/// `[checkpoint mode, index length (u16 LE), time index length (u16 LE), recovery point,
/// log start offset]`; mode % 3 is 0 for no checkpoint file, 1 for a checkpoint with recovery
/// point 0, 2 for one with the given recovery point. Missing bytes read as zero.
pub struct RecoverInput<'a> {
    pub checkpoint: Option<Checkpoint>,
    pub index: &'a [u8],
    pub time_index: &'a [u8],
    pub log: &'a [u8],
}

const RECOVER_HEAD_BYTES: usize = 7;

impl<'a> RecoverInput<'a> {
    pub fn parse(data: &'a [u8]) -> RecoverInput<'a> {
        let mut head = [0u8; RECOVER_HEAD_BYTES];
        let head_bytes = data.len().min(RECOVER_HEAD_BYTES);
        head[..head_bytes].copy_from_slice(&data[..head_bytes]);
        let (index, rest) = take_u16_prefix(&data[head_bytes..], [head[1], head[2]]);
        let (time_index, log) = take_u16_prefix(rest, [head[3], head[4]]);
        let checkpoint = |recovery_point: u8| Checkpoint {
            recovery_point: recovery_point.into(),
            log_start_offset: head[6].into(),
            high_watermark: head[5].into(),
        };
        let checkpoint = match head[0] % 3 {
            0 => None,
            1 => Some(checkpoint(0)),
            _ => Some(checkpoint(head[5])),
        };
        RecoverInput {
            checkpoint,
            index,
            time_index,
            log,
        }
    }

    /// The input that `parse` reads back as these files; `checkpoint` is (recovery point, log
    /// start offset). Seeds are made with it.
    pub fn encode(
        checkpoint: Option<(u8, u8)>,
        index: &[u8],
        time_index: &[u8],
        log: &[u8],
    ) -> Vec<u8> {
        let (mode, recovery_point, log_start) = match checkpoint {
            None => (0, 0, 0),
            Some((0, log_start)) => (1, 0, log_start),
            Some((recovery_point, log_start)) => (2, recovery_point, log_start),
        };
        let mut out = vec![mode];
        out.extend_from_slice(&u16_length(index).to_le_bytes());
        out.extend_from_slice(&u16_length(time_index).to_le_bytes());
        out.extend_from_slice(&[recovery_point, log_start]);
        [out, index.to_vec(), time_index.to_vec(), log.to_vec()].concat()
    }

    /// Lays the files out in `DIR`.
    fn write(&self, disk: &MemDisk) {
        let dir = dir();
        disk.create_dir_all(&dir).expect("MemDisk never fails");
        disk.set_file_bytes(&segment_path(&dir, 0, LOG_SUFFIX), self.log.to_vec());
        disk.set_file_bytes(&segment_path(&dir, 0, INDEX_SUFFIX), self.index.to_vec());
        let time_index = self.time_index.to_vec();
        disk.set_file_bytes(&segment_path(&dir, 0, TIME_INDEX_SUFFIX), time_index);
        if let Some(checkpoint) = self.checkpoint {
            let (mut file, _) = CheckpointFile::open(disk, &dir).expect("MemDisk never fails");
            file.write(checkpoint).expect("MemDisk never fails");
        }
    }
}

/// Splits off a prefix whose length is given as u16 LE bytes, or all of `bytes` if shorter.
fn take_u16_prefix(bytes: &[u8], length: [u8; 2]) -> (&[u8], &[u8]) {
    let length = usize::from(u16::from_le_bytes(length)).min(bytes.len());
    bytes.split_at(length)
}

fn u16_length(bytes: &[u8]) -> u16 {
    u16::try_from(bytes.len()).expect("seed files stay under 64 KiB")
}

/// Recovers a segment made of arbitrary files: open succeeds, the log is a dense run of whole
/// batches, a second recovery agrees with the first, and `keel check` finds nothing wrong.
pub fn segment_recover(data: &[u8]) {
    let input = RecoverInput::parse(data);
    let disk = MemDisk::new();
    input.write(&disk);
    let mut log = open_log(&disk, small_config());
    // Recovery trusts the bytes before the index entry it starts from (they lie below the
    // checkpoint's recovery point); only a scan from the start vouches for every byte.
    let scanned_all = log.recovery_report().bytes_scanned == input.log.len() as u64;
    let first = walk(&mut log, scanned_all);
    drop(log);
    // A crash right after recovery: the next open must find the same log.
    let mut log = open_log(&disk, small_config());
    // Damage the first recovery found may have left a hole the second meets as one.
    let second = walk(&mut log, scanned_all && !first.damaged);
    let report = dump::check_dir(&disk, &dir()).expect("MemDisk never fails");
    if first.damaged || second.damaged {
        // Durable bytes that fail verification are skipped, so what a walk reads depends on
        // where it met them, and `keel check` lists them; readable batches are still checked
        // as dense runs, the first holding the offset asked for or following a skipped range.
        return;
    }
    if !scanned_all {
        // Damage in bytes the first recovery trusted may be found, and cut, by the second,
        // which can start its scan earlier. The contract is void once durable bytes are lost.
        return;
    }
    assert_eq!(first, second, "a second recovery disagrees with the first");
    let problems = unexplained_problems(&disk, report.problems);
    assert_eq!(problems, vec![], "keel check after recovery");
}

/// What a walk over a log read: its bounds, every batch, and the error that ended it early.
#[derive(Debug, PartialEq, Eq)]
struct Walk {
    log_start: u64,
    next: u64,
    batches: Vec<Vec<u8>>,
    error: Option<String>,
    /// The log found damage (bytes that failed verification) and skipped it.
    damaged: bool,
}

/// Bytes per read in a walk: several small batches, so multi-batch slices are exercised.
const WALK_READ_BYTES: u64 = 1000;

/// Reads the log from its start to its end with `read_copy`, checking that offsets are dense.
/// Only a read of bytes recovery did not check (`!strict`) may fail, and only as damage, or come
/// back empty.
fn walk(log: &mut Log<MemDisk>, strict: bool) -> Walk {
    let mut walk = Walk {
        log_start: log.log_start_offset(),
        next: log.next_offset(),
        batches: Vec::new(),
        error: None,
        damaged: log.recovery_report().damaged,
    };
    // Past damage that recovery found, reads may meet more of it.
    let strict = strict && !walk.damaged;
    let mut offset = walk.log_start;
    while offset < walk.next {
        let bytes = match log.read_copy(offset, WALK_READ_BYTES, u64::MAX) {
            Ok(bytes) => bytes,
            Err(e) => {
                assert!(!strict && is_damage(&e), "read at {offset}: {e}");
                walk.error = Some(e.to_string());
                return walk;
            }
        };
        walk.damaged |= !log.damage().is_empty();
        if bytes.is_empty() {
            // A damaged header in trusted bytes can claim offsets past the log end, and a read
            // stops before such a batch: nothing is served, which is allowed there, and so is
            // damage skipped to the end of the log.
            assert!(
                !strict || walk.damaged,
                "nothing at {offset} < {}",
                walk.next
            );
            walk.error = Some(format!("nothing at {offset}"));
            return walk;
        }
        offset = check_dense(&bytes, offset, &mut walk.batches, walk.damaged);
    }
    if offset != walk.next {
        // Only a damaged header in trusted bytes, which a CRC check would have refused, can
        // claim offsets past the end (under `cfg(fuzzing)` CRCs pass, so reads serve it).
        assert!(
            !strict || walk.damaged,
            "the last batch ends at {offset}, past {}",
            walk.next
        );
        walk.error = Some(format!("a batch ends at {offset}"));
    }
    walk
}

/// Whether `e` is how the log reports stored bytes that fail verification.
fn is_damage(e: &LogError) -> bool {
    match e {
        LogError::Corrupt { .. } => true,
        LogError::Io(e) => e.kind() == io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Checks that `bytes`, read at `offset`, are whole batches with dense offsets, the first holding
/// `offset` (or, when the log skipped damage, starting after it); keeps them in `out` and returns
/// the offset after them.
fn check_dense(bytes: &[u8], offset: u64, out: &mut Vec<Vec<u8>>, damaged: bool) -> u64 {
    let mut next = None;
    for batch in split_batches(bytes) {
        let header = BatchHeader::parse(batch).expect("a whole batch");
        let (base, last) = (header.base_offset as u64, header.last_offset() as u64);
        match next {
            None => assert!(
                (base <= offset || damaged) && offset <= last,
                "{base}..={last} for {offset}"
            ),
            Some(expected) => assert_eq!(base, expected, "offsets are not dense"),
        }
        next = Some(last + 1);
        out.push(batch.to_vec());
    }
    next.expect("a read returns at least one batch")
}

/// The problems `keel check` reports that recovery should have prevented. Recovery checks each
/// batch's header and CRC, not its records; `keel check` validates the records too, so a batch
/// that passes its CRC but not validation is kept by design, and its problem is explained.
fn unexplained_problems(disk: &MemDisk, problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .filter(|p| !is_record_problem(disk, p))
        .collect()
}

fn is_record_problem(disk: &MemDisk, problem: &Problem) -> bool {
    let Some(bytes) = disk.file_bytes(&problem.path) else {
        return false;
    };
    let Some(rest) = usize::try_from(problem.position)
        .ok()
        .and_then(|p| bytes.get(p..))
    else {
        return false;
    };
    let batch = BatchHeader::parse(rest)
        .ok()
        .and_then(|h| h.total_bytes())
        .and_then(|n| rest.get(..n));
    batch.is_some_and(|b| batch::validate(b, false).is_err_and(|e| e.to_string() == problem.reason))
}

// ---------------------------------------------------------------------------------------------
// index_lookup

/// `index_lookup`'s input: `[mode, index length (u16 LE)]`, the `.index` bytes, then the
/// `.timeindex` bytes. Mode % 3: 0 opens after a clean shutdown (indexes checked on first use),
/// 1 after a crash following a flush (recovery starts from an index entry), 2 with no
/// checkpoint (recovery scans the whole segment).
pub struct LookupInput<'a> {
    pub mode: u8,
    pub index: &'a [u8],
    pub time_index: &'a [u8],
}

impl<'a> LookupInput<'a> {
    pub fn parse(data: &'a [u8]) -> LookupInput<'a> {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let (index, time_index) = take_u16_prefix(data.get(3..).unwrap_or(&[]), [byte(1), byte(2)]);
        LookupInput {
            mode: byte(0) % 3,
            index,
            time_index,
        }
    }

    pub fn encode(mode: u8, index: &[u8], time_index: &[u8]) -> Vec<u8> {
        let mut out = vec![mode];
        out.extend_from_slice(&u16_length(index).to_le_bytes());
        [out, index.to_vec(), time_index.to_vec()].concat()
    }
}

/// One batch of the fixture log, where it lies and what it holds.
struct FixtureBatch {
    position: u64,
    bytes: u64,
    base: u64,
    last: u64,
}

/// A small, sound, single-segment log, built once per process.
struct Fixture {
    log: Vec<u8>,
    index: Vec<u8>,
    time_index: Vec<u8>,
    checkpoint: Vec<u8>,
    marker: Vec<u8>,
    batches: Vec<FixtureBatch>,
    /// Every record's timestamp, by offset.
    timestamps: Vec<i64>,
}

const FIXTURE_BATCHES: u64 = 30;

/// One segment, indexed every hundred bytes or so: about one entry per batch.
fn fixture_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 100,
        ..small_config()
    }
}

/// Batch `i`'s records: one to three, timestamps that rise and fall between batches (so the time
/// index skips some), values that cannot be mistaken for batch headers.
fn fixture_records(i: u64) -> Vec<NewRecord> {
    (0..1 + i % 3)
        .map(|j| NewRecord {
            timestamp: 1000 + ((i * 7) % 11) as i64 * 10 + j as i64,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i}-{j}-{}", "x".repeat(20)).into_bytes()),
            headers: vec![],
        })
        .collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let disk = MemDisk::new();
    let mut log = open_log(&disk, fixture_config());
    let mut timestamps = Vec::new();
    for i in 0..FIXTURE_BATCHES {
        let records = fixture_records(i);
        timestamps.extend(records.iter().map(|r| r.timestamp));
        let mut bytes = BatchBuilder::default().build(&records).expect("no codec");
        log.append(&mut bytes, 0).expect("a valid batch");
    }
    log.close(0).expect("MemDisk never fails");
    let file = |path: PathBuf| disk.file_bytes(&path).expect("written by the log");
    let log = file(segment_path(&dir(), 0, LOG_SUFFIX));
    let batches = fixture_batches(&log);
    Fixture {
        index: file(segment_path(&dir(), 0, INDEX_SUFFIX)),
        time_index: file(segment_path(&dir(), 0, TIME_INDEX_SUFFIX)),
        checkpoint: file(dir().join(CHECKPOINT_FILE)),
        marker: file(dir().join(CLEAN_SHUTDOWN_FILE)),
        log,
        batches,
        timestamps,
    }
}

fn fixture_batches(log: &[u8]) -> Vec<FixtureBatch> {
    let mut position = 0;
    let mut batches = Vec::new();
    for batch in split_batches(log) {
        let header = BatchHeader::parse(batch).expect("a whole batch");
        batches.push(FixtureBatch {
            position,
            bytes: batch.len() as u64,
            base: header.base_offset as u64,
            last: header.last_offset() as u64,
        });
        position += batch.len() as u64;
    }
    batches
}

impl Fixture {
    fn next_offset(&self) -> u64 {
        self.timestamps.len() as u64
    }

    /// A disk holding the fixture log with `input`'s indexes, as `input.mode` says.
    fn disk(&self, input: &LookupInput) -> MemDisk {
        let disk = MemDisk::new();
        let dir = dir();
        disk.create_dir_all(&dir).expect("MemDisk never fails");
        disk.set_file_bytes(&segment_path(&dir, 0, LOG_SUFFIX), self.log.clone());
        disk.set_file_bytes(&segment_path(&dir, 0, INDEX_SUFFIX), input.index.to_vec());
        let time_index = input.time_index.to_vec();
        disk.set_file_bytes(&segment_path(&dir, 0, TIME_INDEX_SUFFIX), time_index);
        if input.mode != 2 {
            disk.set_file_bytes(&dir.join(CHECKPOINT_FILE), self.checkpoint.clone());
        }
        if input.mode == 0 {
            disk.set_file_bytes(&dir.join(CLEAN_SHUTDOWN_FILE), self.marker.clone());
        }
        disk
    }

    /// The index of the batch holding `offset`.
    fn batch_of(&self, offset: u64) -> usize {
        self.batches.partition_point(|b| b.last < offset)
    }

    /// Timestamps worth asking for: each record's, its neighbours, and the extremes.
    fn probe_timestamps(&self) -> Vec<i64> {
        let mut probes: Vec<i64> = self
            .timestamps
            .iter()
            .flat_map(|&t| [t - 1, t, t + 1])
            .chain([i64::MIN, -1, 0, i64::MAX])
            .collect();
        probes.sort_unstable();
        probes.dedup();
        probes
    }
}

/// Opens the fixture log with arbitrary index files: no record is lost, every read lands on the
/// batch that holds its offset and ends on a batch boundary, and time lookups stay in the log.
pub fn index_lookup(data: &[u8]) {
    let fixture = fixture();
    let input = LookupInput::parse(data);
    let disk = fixture.disk(&input);
    let mut log = open_log(&disk, fixture_config());
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.next_offset(), fixture.next_offset(), "records lost");
    for offset in 0..fixture.next_offset() {
        for (bytes_max, offset_limit) in [(1, u64::MAX), (400, u64::MAX), (u64::MAX, offset + 4)] {
            check_read(&mut log, fixture, offset, bytes_max, offset_limit);
        }
    }
    for timestamp in fixture.probe_timestamps() {
        check_time_lookup(&mut log, fixture, timestamp);
    }
}

/// A read at `offset` returns exactly the whole batches from the one holding `offset` that fit
/// `bytes_max` (at least one) and end below `offset_limit`.
fn check_read(
    log: &mut Log<MemDisk>,
    fixture: &Fixture,
    offset: u64,
    bytes_max: u64,
    offset_limit: u64,
) {
    let slice = log
        .read(offset, bytes_max, offset_limit)
        .unwrap_or_else(|e| panic!("read at {offset} of a sound log: {e}"));
    let first = fixture.batch_of(offset);
    let limit_position = fixture.batches[first].position.saturating_add(bytes_max);
    let fits = |b: &&FixtureBatch| b.last < offset_limit && b.position + b.bytes <= limit_position;
    let beyond_limit = fixture.batches[first].last >= offset_limit;
    assert_eq!(
        slice.is_none(),
        beyond_limit,
        "read at {offset} below {offset_limit}"
    );
    let Some(slice) = slice else {
        return;
    };
    let last = first + fixture.batches[first + 1..].iter().take_while(fits).count();
    let (from, to) = (&fixture.batches[first], &fixture.batches[last]);
    let expected = (
        from.position,
        to.position + to.bytes - from.position,
        from.base,
        to.last + 1,
    );
    let got = (
        slice.position,
        slice.bytes,
        slice.first_offset,
        slice.next_offset,
    );
    assert_eq!(got, expected, "read({offset}, {bytes_max}, {offset_limit})");
}

/// A time lookup finds a record of the log with a timestamp at least the one asked for.
fn check_time_lookup(log: &mut Log<MemDisk>, fixture: &Fixture, timestamp: i64) {
    let found = log
        .offset_for_timestamp(timestamp)
        .unwrap_or_else(|e| panic!("time lookup {timestamp} on a sound log: {e}"));
    if let Some((offset, found_timestamp)) = found {
        let stored = usize::try_from(offset)
            .ok()
            .and_then(|o| fixture.timestamps.get(o));
        assert_eq!(
            stored,
            Some(&found_timestamp),
            "lookup {timestamp} → {offset}"
        );
        assert!(
            found_timestamp >= timestamp,
            "lookup {timestamp} → {offset}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// log_ops

/// One step of `log_ops`, decoded from the fuzz bytes by `arbitrary`. Sizes are reduced into the
/// ranges of the model test in `log/tests.rs` when applied.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    Append {
        records: u8,
        value_bytes: u16,
        timestamp: u8,
    },
    Read {
        at: u64,
        bytes_max: u16,
    },
    FindTime {
        at: u16,
    },
    Roll,
    Flush,
    Truncate {
        back: u8,
    },
    Retention {
        bytes: u16,
    },
    DeleteRecords {
        at: u64,
    },
    Reopen {
        clean: bool,
    },
}

/// Enough steps for several rolls, truncations and reopens; few enough that an execution stays
/// in the milliseconds.
const OPS_MAX: usize = 64;

/// The log against a Vec of records: after every operation, `keel check` is clean and reading
/// the whole log gives exactly the records the model holds.
pub fn log_ops(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(ops) = input.arbitrary_iter::<Op>() else {
        return;
    };
    let disk = MemDisk::new();
    let mut log = open_log(&disk, small_config());
    let mut model = Model::default();
    for op in ops.take(OPS_MAX) {
        let Ok(op) = op else {
            break;
        };
        log = apply(log, &disk, &mut model, &op);
        check_against_model(&mut log, &disk, &model);
    }
}

/// What the log should hold: its records by offset, and what it keeps of them
/// (`log::model`).
#[derive(Default)]
struct Model {
    records: Vec<ModelRecord>,
    log: LogModel,
}

struct ModelRecord {
    offset: u64,
    value: Vec<u8>,
    timestamp: i64,
}

/// Batch timestamps step by ten over this many steps, so that they rise and fall between
/// batches and the time index skips some.
const TIMESTAMP_STEPS: u8 = 32;

/// A record value that names its offset, so a record served at the wrong offset shows.
fn value(offset: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value-{offset}-").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v
}

fn apply(mut log: Log<MemDisk>, disk: &MemDisk, model: &mut Model, op: &Op) -> Log<MemDisk> {
    match *op {
        Op::Append {
            records,
            value_bytes,
            timestamp,
        } => {
            let count = 1 + usize::from(records % 5);
            let timestamp = 1000 + 10 * i64::from(timestamp % TIMESTAMP_STEPS);
            append(&mut log, model, count, value_bytes % 300, timestamp);
        }
        Op::Read { at, bytes_max } => {
            let offset = model.log.start + at % (model.log.next - model.log.start + 1);
            match log.read(offset, bytes_max.into(), u64::MAX).expect("read") {
                Some(slice) => assert!(slice.first_offset <= offset && offset < slice.next_offset),
                None => assert_eq!(offset, model.log.next),
            }
        }
        Op::FindTime { at } => {
            // From just below the oldest timestamp to just past the newest.
            let timestamp = 995 + i64::from(at) % (10 * i64::from(TIMESTAMP_STEPS) + 10);
            let expected = model
                .records
                .iter()
                .find(|r| r.offset >= model.log.start && r.timestamp >= timestamp)
                .map(|r| (r.offset, r.timestamp));
            let found = log.offset_for_timestamp(timestamp).expect("time lookup");
            assert_eq!(found, expected, "offset for timestamp {timestamp}");
        }
        Op::Roll => log.roll().expect("roll"),
        Op::Flush => log.flush(0).expect("flush"),
        Op::Truncate { back } => {
            let target = model
                .log
                .next
                .saturating_sub((back % 20).into())
                .max(model.log.start);
            log.truncate_to(target).expect("truncate");
            model.log.truncate(target);
            model.records.retain(|r| r.offset < model.log.next);
        }
        Op::Retention { bytes } => {
            let config = LogConfig {
                retention_bytes: bytes.into(),
                ..small_config()
            };
            log.set_config(config).expect("valid config");
            // Where segments begin is the log's (rolling is tested elsewhere); what retention
            // keeps of them the model works out.
            let bases = log.segment_base_offsets();
            log.apply_retention(0).expect("retention");
            model.log.retain(&bases, bytes.into());
            log.set_config(small_config()).expect("valid config");
        }
        Op::DeleteRecords { at } => {
            let offset = model.log.start + at % (model.log.next - model.log.start + 1);
            let bases = log.segment_base_offsets();
            log.delete_records_before(offset).expect("delete records");
            model.log.delete_records_before(offset, &bases);
        }
        Op::Reopen { clean } => {
            if clean {
                log.close(0).expect("close");
            } else {
                drop(log);
            }
            return open_log(disk, small_config());
        }
    }
    log
}

/// Appends `count` records of `value_bytes` bytes from `timestamp` on, and to the model.
fn append(
    log: &mut Log<MemDisk>,
    model: &mut Model,
    count: usize,
    value_bytes: u16,
    timestamp: i64,
) {
    let value_bytes = usize::from(value_bytes);
    let first = log.next_offset();
    let records: Vec<NewRecord> = (first..first + count as u64)
        .map(|offset| NewRecord {
            timestamp: timestamp + (offset - first) as i64,
            key: Some(format!("k{offset}").into_bytes()),
            value: Some(value(offset, value_bytes)),
            headers: vec![],
        })
        .collect();
    let mut bytes = BatchBuilder::default().build(&records).expect("no codec");
    let size = bytes.len() as u64;
    let info = log.append(&mut bytes, 1000).expect("append");
    for offset in info.base_offset..=info.last_offset {
        model.records.push(ModelRecord {
            offset,
            value: value(offset, value_bytes),
            timestamp: timestamp + (offset - info.base_offset) as i64,
        });
    }
    model.log.appended(info.base_offset, info.last_offset, size);
}

fn check_against_model(log: &mut Log<MemDisk>, disk: &MemDisk, model: &Model) {
    let report = dump::check_dir(disk, &dir()).expect("MemDisk never fails");
    assert_eq!(report.problems, vec![], "keel check on the live directory");
    assert_eq!(log.next_offset(), model.log.next, "next offset");
    assert_eq!(log.log_start_offset(), model.log.start, "log start offset");
    assert_eq!(log.size_bytes(), model.log.stored_bytes(), "stored bytes");
    let expected: Vec<_> = model
        .records
        .iter()
        .filter(|r| r.offset >= model.log.start)
        .map(|r| (r.offset, r.value.clone()))
        .collect();
    assert!(
        read_all(log) == expected,
        "the log's records differ from the model's"
    );
}

/// Every record from the log start to the end, through `read_copy`, with dense offsets.
fn read_all(log: &mut Log<MemDisk>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let bytes = log.read_copy(offset, 1000, u64::MAX).expect("read");
        assert!(
            !bytes.is_empty(),
            "no data at {offset} < {}",
            log.next_offset()
        );
        let mut batches = Vec::new();
        let next = check_dense(&bytes, offset, &mut batches, false);
        for batch in &batches {
            for record in batch::decode_records(batch).expect("a stored batch decodes") {
                if record.offset as u64 >= offset {
                    out.push((record.offset as u64, record.value.unwrap_or_default()));
                }
            }
        }
        offset = next;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Requests

// The broker's clock in the request bodies: fixed, as in `protocol/tests.rs`.
use crate::io::mem::FixedClock;

/// A deterministic random source (splitmix64), so that a broker's topic ids do not vary from
/// one run of an input to the next.
#[derive(Clone, Default)]
struct SeqRng(Arc<AtomicU64>);

impl Rng for SeqRng {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type FuzzBroker = Broker<MemDisk, FixedClock, SeqRng>;

/// The topic every fresh broker has, with records in partition 0: what the seeds and the
/// structured requests name.
const TOPIC: &str = "fuzz";

/// How many inputs one broker answers before a fresh one replaces it.
const BROKER_INPUTS: u32 = 256;

/// How long one request may take: Fetch waits up to its max_wait_ms for data, a JoinGroup or
/// SyncGroup for the rest of its group. Under cargo-fuzz time is virtual (it jumps ahead when
/// the runtime idles), so this costs no wall time there.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether `api` may rightly still be waiting at `REQUEST_TIMEOUT`: a Fetch short of its
/// min_bytes (the harness's clock stands still, so its max_wait never passes), or a member
/// waiting for its group's rebalance (no housekeeping ends join phases here). Any other request
/// still unanswered then hangs, which fails the input under cargo-fuzz.
fn may_wait(api: ApiKey) -> bool {
    matches!(api, ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup)
}

/// A runtime and a broker, kept across inputs so that executions stay fast.
struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: FuzzBroker,
    inputs: u32,
}

impl Harness {
    fn new() -> Harness {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        // Under cargo-fuzz (see fuzz/Cargo.toml) time is paused and jumps ahead whenever the
        // runtime idles, so waits cost no wall time; `cargo test`'s corpus replay waits for real.
        #[cfg(fuzzing)]
        builder.start_paused(true);
        let runtime = builder.build().expect("a current-thread runtime");
        let mut config = BrokerConfig {
            data_dir: "/data".into(),
            log: small_config(),
            ..BrokerConfig::default()
        };
        config.groups.initial_rebalance_delay_ms = 0;
        config.groups.offsets_partitions = 2;
        let broker = Broker::open(MemDisk::new(), FixedClock, SeqRng::default(), config)
            .unwrap_or_else(|e| panic!("broker open failed on MemDisk: {e:?}"));
        broker
            .create_topic(TOPIC, 2, Default::default(), false)
            .unwrap_or_else(|e| panic!("creating {TOPIC}: {e:?}"));
        let mut harness = Harness {
            runtime,
            broker,
            inputs: 0,
        };
        let produce = produce_request(TOPIC, 0, 1, Some(build(Codec::None, &seed_records(3))));
        let frame = request_frame(ApiKey::Produce, 9, &produce).expect("encodable");
        let request = protocol::parse_request(Bytes::from(frame)).expect("parses");
        harness
            .answer(request)
            .expect("in time")
            .expect("a valid Produce")
            .expect("acks=1 answers");
        harness
    }

    /// Answers `request`; `None` when it took longer than `REQUEST_TIMEOUT`.
    fn answer(
        &mut self,
        request: protocol::Request,
    ) -> Option<Result<Option<Vec<u8>>, protocol::ProtocolError>> {
        let broker = &self.broker;
        self.runtime.block_on(async {
            let (api, version) = (request.api_key, request.version);
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, protocol::handle(broker, request));
            let answer = answer.await;
            if cfg!(fuzzing) && answer.is_err() && !may_wait(api) {
                panic!("{api:?} v{version} hangs: no answer after {REQUEST_TIMEOUT:?}");
            }
            answer
                .ok()
                .map(|result| result.map(|frame| frame.map(frame_bytes)))
        })
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// Runs `request` on the thread's broker, replaced every `BROKER_INPUTS` inputs and after
/// requests that create partitions (which would otherwise pile up in memory).
fn with_broker(
    request: protocol::Request,
) -> Option<Result<Option<Vec<u8>>, protocol::ProtocolError>> {
    let grows = matches!(
        request.api_key,
        ApiKey::CreateTopics | ApiKey::CreatePartitions
    );
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let harness = slot.get_or_insert_with(Harness::new);
        harness.inputs += 1;
        let answer = harness.answer(request);
        if grows || harness.inputs >= BROKER_INPUTS {
            *slot = None;
        }
        answer
    })
}

/// A response frame as the bytes that go to the socket.
fn frame_bytes(frame: Frame<MemFile>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(frame.len() as usize);
    for chunk in frame.chunks {
        match chunk {
            Chunk::Bytes(b) => bytes.extend_from_slice(&b),
            Chunk::File {
                file,
                position,
                len,
            } => {
                let mut data = vec![0u8; len as usize];
                File::read_exact_at(&*file, &mut data, position)
                    .expect("a file chunk lies within its segment");
                bytes.extend_from_slice(&data);
            }
        }
    }
    bytes
}

/// Checks a response's size prefix and returns what follows it.
fn response_body(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 4, "response of {} bytes", frame.len());
    let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    assert_eq!(
        usize::try_from(size).ok(),
        Some(frame.len() - 4),
        "declared size of a response"
    );
    &frame[4..]
}

/// Reads `data` as a request frame without its size prefix, as a connection hands it over, and
/// answers it on an in-memory broker. Whatever the bytes, the outcome is a `ProtocolError` (the
/// connection closes), no answer (acks=0, or a Fetch still waiting after `REQUEST_TIMEOUT`), or a
/// response whose size prefix is its length.
pub fn request_decode(data: &[u8]) {
    let Ok(request) = protocol::parse_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let correlation_id = request.correlation_id;
    if let Some(Ok(Some(frame))) = with_broker(request) {
        let body = response_body(&frame);
        assert!(body.len() >= 4, "a response without a header");
        assert_eq!(
            i32::from_be_bytes(body[..4].try_into().expect("4 bytes")),
            correlation_id,
            "the response answers the request's correlation id"
        );
    }
}

/// Encodes `body` as a request frame (without the size prefix), as a client would.
fn request_frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Option<Vec<u8>> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("fuzz"));
    let mut frame = BytesMut::new();
    header
        .encode(&mut frame, key.request_header_version(version))
        .ok()?;
    body.encode(&mut frame, version).ok()?;
    Some(frame.to_vec())
}

/// A request frame whose body kafka-protocol cannot encode at `version` (OffsetCommit v0/v1).
fn legacy_frame(key: ApiKey, version: i16, body: &[u8]) -> Option<Vec<u8>> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("fuzz"));
    let mut frame = BytesMut::new();
    header
        .encode(&mut frame, key.request_header_version(version))
        .ok()?;
    frame.extend_from_slice(body);
    Some(frame.to_vec())
}

fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    records: Option<Vec<u8>>,
) -> ProduceRequest {
    let mut data = produce_request::PartitionProduceData::default();
    data.index = partition;
    data.records = records.map(Bytes::from);
    let mut topic_data = produce_request::TopicProduceData::default();
    topic_data.name = protocol::topic_name(topic);
    topic_data.partition_data = vec![data];
    let mut body = ProduceRequest::default();
    body.acks = acks;
    body.timeout_ms = 1000;
    body.topic_data = vec![topic_data];
    body
}

/// Config names keel knows, and one it does not.
const CONFIG_NAMES: [&str; 6] = [
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "cleanup.policy",
    "no.such.config",
];

/// Group ids and member ids the structured requests use.
const GROUPS: [&str; 3] = ["group", "other-group", ""];
const MEMBERS: [&str; 3] = ["", "fuzz-0000000000000000", "stranger"];

/// Field values for the structured requests: mostly ones keel has a branch for, sometimes
/// anything.
struct Fields<'a, 'b>(&'b mut Unstructured<'a>);

impl Fields<'_, '_> {
    fn pick<T: Copy>(&mut self, usual: &[T]) -> arbitrary::Result<T> {
        Ok(*self.0.choose(usual)?)
    }

    fn or_any<T: Copy + for<'x> Arbitrary<'x>>(&mut self, usual: &[T]) -> arbitrary::Result<T> {
        if self.0.ratio(1, 4)? {
            self.0.arbitrary()
        } else {
            self.pick(usual)
        }
    }

    fn text(&mut self, usual: &[&str]) -> arbitrary::Result<String> {
        if self.0.ratio(1, 4)? {
            let len = self.0.int_in_range(0..=20)?;
            let bytes = self.0.bytes(len)?;
            Ok(String::from_utf8_lossy(bytes).into_owned())
        } else {
            Ok(self.pick(usual)?.to_owned())
        }
    }

    fn topic(&mut self) -> arbitrary::Result<String> {
        self.text(&[TOPIC, TOPIC, "other", ""])
    }

    fn str_bytes(&mut self, usual: &[&str]) -> arbitrary::Result<StrBytes> {
        Ok(StrBytes::from_string(self.text(usual)?))
    }

    fn partition(&mut self) -> arbitrary::Result<i32> {
        self.or_any(&[0, 1, 2, -1])
    }

    fn offset(&mut self) -> arbitrary::Result<i64> {
        self.or_any(&[0, 1, 2, 3, -1, -2])
    }

    fn count(&mut self) -> arbitrary::Result<usize> {
        self.0.int_in_range(0..=3)
    }

    /// Record bytes: a real batch, or anything.
    fn records(&mut self) -> arbitrary::Result<Option<Bytes>> {
        Ok(match self.0.int_in_range(0..=3)? {
            0 => None,
            1 => Some(Bytes::from(self.0.arbitrary::<Vec<u8>>()?)),
            _ => {
                let codec = self.pick(&CODECS)?;
                let records = seed_records(self.0.int_in_range(0..=4)?);
                Some(Bytes::from(build(codec, &records)))
            }
        })
    }

    fn config_name(&mut self) -> arbitrary::Result<StrBytes> {
        self.str_bytes(&CONFIG_NAMES)
    }

    fn config_value(&mut self) -> arbitrary::Result<Option<StrBytes>> {
        Ok(if self.0.ratio(1, 8)? {
            None
        } else {
            Some(self.str_bytes(&["60000", "1", "-1", "4096", "delete", "compact", "x"])?)
        })
    }

    fn partitions_count(&mut self) -> arbitrary::Result<i32> {
        if self.0.ratio(1, 8)? {
            // Out of range either way; within it, real partitions would be created.
            let n: i32 = self.0.arbitrary()?;
            Ok(if n >= 0 { n.saturating_add(10_001) } else { n })
        } else {
            self.0.int_in_range(-1..=4)
        }
    }
}

/// A structured Produce request at `version`.
fn structured_produce(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = ProduceRequest::default();
    body.acks = f.or_any(&[-1, 0, 1, 2])?;
    body.timeout_ms = 100;
    for _ in 0..f.count()? {
        let mut topic = produce_request::TopicProduceData::default();
        topic.name = protocol::topic_name(&f.topic()?);
        for _ in 0..f.count()? {
            let mut partition = produce_request::PartitionProduceData::default();
            partition.index = f.partition()?;
            partition.records = f.records()?;
            topic.partition_data.push(partition);
        }
        body.topic_data.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured Fetch request at `version`.
fn structured_fetch(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = FetchRequest::default();
    body.max_wait_ms = f.0.int_in_range(0..=5)?;
    body.min_bytes = f.or_any(&[0, 1, 1 << 20])?;
    body.max_bytes = f.or_any(&[0, 1, 100, 1 << 20])?;
    body.isolation_level = f.or_any(&[0, 1])?;
    for _ in 0..f.count()? {
        let mut topic = fetch_request::FetchTopic::default();
        let name = f.topic()?;
        if version >= 13 {
            let id = HARNESS.with(|cell| {
                let mut slot = cell.borrow_mut();
                let harness = slot.get_or_insert_with(Harness::new);
                harness.broker.topic(&name).map(|t| t.id)
            });
            topic.topic_id = match id {
                Some(id) => uuid::Uuid::from_bytes(id),
                None => uuid::Uuid::from_bytes(f.0.arbitrary()?),
            };
        } else {
            topic.topic = protocol::topic_name(&name);
        }
        for _ in 0..f.count()? {
            let mut partition = fetch_request::FetchPartition::default();
            partition.partition = f.partition()?;
            partition.fetch_offset = f.offset()?;
            partition.partition_max_bytes = f.or_any(&[0, 1, 100, 1 << 20])?;
            if version >= 5 {
                partition.log_start_offset = f.offset()?;
            }
            if version >= 9 {
                partition.current_leader_epoch = f.or_any(&[-1, 0, 1])?;
            }
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured ListOffsets request at `version`.
fn structured_list_offsets(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = ListOffsetsRequest::default();
    body.replica_id = BrokerId(f.or_any(&[-1, 0])?);
    if version >= 2 {
        body.isolation_level = f.or_any(&[0, 1])?;
    }
    for _ in 0..f.count()? {
        let mut topic = list_offsets_request::ListOffsetsTopic::default();
        topic.name = protocol::topic_name(&f.topic()?);
        for _ in 0..f.count()? {
            let mut partition = list_offsets_request::ListOffsetsPartition::default();
            partition.partition_index = f.partition()?;
            partition.timestamp =
                f.or_any(&[-1, -2, -3, 0, 1_700_000_000_000, 1_700_000_000_001])?;
            if version >= 4 {
                partition.current_leader_epoch = f.or_any(&[-1, 0])?;
            }
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured Metadata request at `version`.
fn structured_metadata(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = MetadataRequest::default();
    if version == 0 || f.0.arbitrary()? {
        let mut topics = Vec::new();
        for _ in 0..f.count()? {
            let mut topic = metadata_request::MetadataRequestTopic::default();
            topic.name = Some(protocol::topic_name(&f.topic()?));
            topics.push(topic);
        }
        body.topics = Some(topics);
    } else {
        body.topics = None;
    }
    if version >= 4 {
        body.allow_auto_topic_creation = f.0.arbitrary()?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured ApiVersions request at `version`.
fn structured_api_versions(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = ApiVersionsRequest::default();
    if version >= 3 {
        body.client_software_name = f.str_bytes(&["fuzz", ""])?;
        body.client_software_version = f.str_bytes(&["1.0", ""])?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured CreateTopics request at `version`.
fn structured_create_topics(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = CreateTopicsRequest::default();
    body.timeout_ms = 100;
    if version >= 1 {
        body.validate_only = f.0.arbitrary()?;
    }
    for _ in 0..f.count()? {
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = protocol::topic_name(&f.text(&["new", TOPIC, "a.b", "a_b"])?);
        topic.num_partitions = f.partitions_count()?;
        topic.replication_factor = f.or_any(&[-1, 1, 3])?;
        for _ in 0..f.count()? {
            let mut config = create_topics_request::CreatableTopicConfig::default();
            config.name = f.config_name()?;
            config.value = f.config_value()?;
            topic.configs.push(config);
        }
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DeleteTopics request at `version`.
fn structured_delete_topics(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DeleteTopicsRequest::default();
    body.timeout_ms = 100;
    for _ in 0..f.count()? {
        let name = protocol::topic_name(&f.topic()?);
        if version >= 6 {
            let mut state = delete_topics_request::DeleteTopicState::default();
            state.name = Some(name);
            body.topics.push(state);
        } else {
            body.topic_names.push(name);
        }
    }
    Ok(request_frame(key, version, &body))
}

/// A structured CreatePartitions request at `version`.
fn structured_create_partitions(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = CreatePartitionsRequest::default();
    body.timeout_ms = 100;
    body.validate_only = f.0.arbitrary()?;
    for _ in 0..f.count()? {
        let mut topic = create_partitions_request::CreatePartitionsTopic::default();
        topic.name = protocol::topic_name(&f.topic()?);
        topic.count = f.partitions_count()?;
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DescribeConfigs request at `version`.
fn structured_describe_configs(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DescribeConfigsRequest::default();
    body.include_synonyms = f.0.arbitrary()?;
    if version >= 3 {
        body.include_documentation = f.0.arbitrary()?;
    }
    for _ in 0..f.count()? {
        let mut resource = describe_configs_request::DescribeConfigsResource::default();
        resource.resource_type = f.or_any(&[2, 4])?;
        resource.resource_name = f.str_bytes(&[TOPIC, "0", "other", ""])?;
        if f.0.arbitrary()? {
            let mut keys = Vec::new();
            for _ in 0..f.count()? {
                keys.push(f.config_name()?);
            }
            resource.configuration_keys = Some(keys);
        }
        body.resources.push(resource);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured AlterConfigs request at `version`.
fn structured_alter_configs(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = AlterConfigsRequest::default();
    body.validate_only = f.0.arbitrary()?;
    for _ in 0..f.count()? {
        let mut resource = alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = f.or_any(&[2, 4])?;
        resource.resource_name = f.str_bytes(&[TOPIC, "0", "other", ""])?;
        for _ in 0..f.count()? {
            let mut config = alter_configs_request::AlterableConfig::default();
            config.name = f.config_name()?;
            config.value = f.config_value()?;
            resource.configs.push(config);
        }
        body.resources.push(resource);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured IncrementalAlterConfigs request at `version`.
fn structured_incremental_alter_configs(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = IncrementalAlterConfigsRequest::default();
    body.validate_only = f.0.arbitrary()?;
    for _ in 0..f.count()? {
        let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = f.or_any(&[2, 4])?;
        resource.resource_name = f.str_bytes(&[TOPIC, "0", "other", ""])?;
        for _ in 0..f.count()? {
            let mut config = incremental_alter_configs_request::AlterableConfig::default();
            config.name = f.config_name()?;
            config.config_operation = f.or_any(&[0, 1, 2, 3])?;
            config.value = f.config_value()?;
            resource.configs.push(config);
        }
        body.resources.push(resource);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DeleteRecords request at `version`.
fn structured_delete_records(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DeleteRecordsRequest::default();
    body.timeout_ms = 100;
    for _ in 0..f.count()? {
        let mut topic = delete_records_request::DeleteRecordsTopic::default();
        topic.name = protocol::topic_name(&f.topic()?);
        for _ in 0..f.count()? {
            let mut partition = delete_records_request::DeleteRecordsPartition::default();
            partition.partition_index = f.partition()?;
            partition.offset = f.offset()?;
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured InitProducerId request at `version`.
fn structured_init_producer_id(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = InitProducerIdRequest::default();
    body.transactional_id = if f.0.ratio(1, 4)? {
        Some(TransactionalId(f.str_bytes(&["tx", ""])?))
    } else {
        None
    };
    body.transaction_timeout_ms = f.or_any(&[60_000, 0, -1])?;
    if version >= 3 {
        body.producer_id = ProducerId(f.or_any(&[-1, 0, 1000])?);
        body.producer_epoch = f.or_any(&[-1, 0, 1])?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured FindCoordinator request at `version`.
fn structured_find_coordinator(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = FindCoordinatorRequest::default();
    if version >= 1 {
        body.key_type = f.or_any(&[0, 1])?;
    }
    if version >= 4 {
        for _ in 0..f.count()? {
            body.coordinator_keys.push(f.str_bytes(&GROUPS)?);
        }
    } else {
        body.key = f.str_bytes(&GROUPS)?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured JoinGroup request at `version`.
fn structured_join_group(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = JoinGroupRequest::default();
    body.group_id = GroupId(f.str_bytes(&GROUPS)?);
    body.session_timeout_ms = f.or_any(&[10_000, 6_000, 1, -1])?;
    if version >= 1 {
        body.rebalance_timeout_ms = f.or_any(&[10_000, 0, -1])?;
    }
    body.member_id = f.str_bytes(&MEMBERS)?;
    if version >= 5 && f.0.ratio(1, 4)? {
        body.group_instance_id = Some(f.str_bytes(&["static"])?);
    }
    body.protocol_type = f.str_bytes(&["consumer", ""])?;
    for _ in 0..f.count()? {
        let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
        protocol.name = f.str_bytes(&["range", "roundrobin", "cooperative-sticky"])?;
        protocol.metadata = Bytes::from(f.0.arbitrary::<Vec<u8>>()?);
        body.protocols.push(protocol);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured SyncGroup request at `version`.
fn structured_sync_group(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = SyncGroupRequest::default();
    body.group_id = GroupId(f.str_bytes(&GROUPS)?);
    body.generation_id = f.or_any(&[1, 0, -1, 2])?;
    body.member_id = f.str_bytes(&MEMBERS)?;
    if version >= 5 {
        body.protocol_type = Some(f.str_bytes(&["consumer"])?);
        body.protocol_name = Some(f.str_bytes(&["range"])?);
    }
    for _ in 0..f.count()? {
        let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
        assignment.member_id = f.str_bytes(&MEMBERS)?;
        assignment.assignment = Bytes::from(f.0.arbitrary::<Vec<u8>>()?);
        body.assignments.push(assignment);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured Heartbeat request at `version`.
fn structured_heartbeat(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = HeartbeatRequest::default();
    body.group_id = GroupId(f.str_bytes(&GROUPS)?);
    body.generation_id = f.or_any(&[1, 0, -1])?;
    body.member_id = f.str_bytes(&MEMBERS)?;
    Ok(request_frame(key, version, &body))
}

/// A structured LeaveGroup request at `version`.
fn structured_leave_group(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = LeaveGroupRequest::default();
    body.group_id = GroupId(f.str_bytes(&GROUPS)?);
    if version >= 3 {
        for _ in 0..f.count()? {
            let mut member = leave_group_request::MemberIdentity::default();
            member.member_id = f.str_bytes(&MEMBERS)?;
            body.members.push(member);
        }
    } else {
        body.member_id = f.str_bytes(&MEMBERS)?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured OffsetCommit request at `version`.
fn structured_offset_commit(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = OffsetCommitRequest::default();
    body.group_id = GroupId(f.str_bytes(&GROUPS)?);
    body.generation_id_or_member_epoch = f.or_any(&[-1, 1, 0])?;
    body.member_id = f.str_bytes(&MEMBERS)?;
    if (2..=4).contains(&version) {
        body.retention_time_ms = -1;
    }
    for _ in 0..f.count()? {
        let mut topic = offset_commit_request::OffsetCommitRequestTopic::default();
        topic.name = protocol::topic_name(&f.topic()?);
        for _ in 0..f.count()? {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
            partition.partition_index = f.partition()?;
            partition.committed_offset = f.offset()?;
            partition.committed_metadata = Some(f.str_bytes(&["", "m"])?);
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    Ok(if version <= protocol::legacy::OFFSET_COMMIT_LEGACY_MAX {
        legacy_frame(
            key,
            version,
            &protocol::legacy::encode_offset_commit(&body, version),
        )
    } else {
        request_frame(key, version, &body)
    })
}

/// A structured OffsetFetch request at `version`.
fn structured_offset_fetch(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = OffsetFetchRequest::default();
    let topics = if f.0.ratio(1, 4)? {
        None
    } else {
        let mut topics = Vec::new();
        for _ in 0..f.count()? {
            let mut partitions = Vec::new();
            for _ in 0..f.count()? {
                partitions.push(f.partition()?);
            }
            topics.push((f.topic()?, partitions));
        }
        Some(topics)
    };
    if version >= 8 {
        let mut group = offset_fetch_request::OffsetFetchRequestGroup::default();
        group.group_id = GroupId(f.str_bytes(&GROUPS)?);
        group.topics = topics.map(|topics| {
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    let mut topic = offset_fetch_request::OffsetFetchRequestTopics::default();
                    topic.name = protocol::topic_name(&name);
                    topic.partition_indexes = partitions;
                    topic
                })
                .collect()
        });
        body.groups.push(group);
    } else {
        body.group_id = GroupId(f.str_bytes(&GROUPS)?);
        body.topics = topics.map(|topics| {
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    let mut topic = offset_fetch_request::OffsetFetchRequestTopic::default();
                    topic.name = protocol::topic_name(&name);
                    topic.partition_indexes = partitions;
                    topic
                })
                .collect()
        });
    }
    Ok(request_frame(key, version, &body))
}

/// A structured ListGroups request at `version`.
fn structured_list_groups(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = ListGroupsRequest::default();
    if version >= 4 {
        for _ in 0..f.count()? {
            body.states_filter
                .push(f.str_bytes(&["Stable", "Empty", "x"])?);
        }
    }
    if version >= 5 {
        for _ in 0..f.count()? {
            body.types_filter
                .push(f.str_bytes(&["classic", "consumer"])?);
        }
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DescribeGroups request at `version`.
fn structured_describe_groups(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DescribeGroupsRequest::default();
    for _ in 0..f.count()? {
        body.groups.push(GroupId(f.str_bytes(&GROUPS)?));
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DeleteGroups request at `version`.
fn structured_delete_groups(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DeleteGroupsRequest::default();
    for _ in 0..f.count()? {
        body.groups_names.push(GroupId(f.str_bytes(&GROUPS)?));
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DescribeCluster request at `version`.
fn structured_describe_cluster(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DescribeClusterRequest::default();
    body.include_cluster_authorized_operations = f.or_any(&[false, true])?;
    if version >= 1 {
        body.endpoint_type = f.or_any(&[1, 2, 0, 9])?;
    }
    Ok(request_frame(key, version, &body))
}

/// A structured DescribeLogDirs request at `version`.
fn structured_describe_log_dirs(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = DescribeLogDirsRequest::default();
    body.topics = if f.0.ratio(1, 3)? {
        None
    } else {
        let mut topics = Vec::new();
        for _ in 0..f.count()? {
            let mut topic = describe_log_dirs_request::DescribableLogDirTopic::default();
            topic.topic = protocol::topic_name(&f.topic()?);
            for _ in 0..f.count()? {
                topic.partitions.push(f.partition()?);
            }
            topics.push(topic);
        }
        Some(topics)
    };
    Ok(request_frame(key, version, &body))
}

/// A structured AlterReplicaLogDirs request at `version`.
fn structured_alter_replica_log_dirs(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = AlterReplicaLogDirsRequest::default();
    for _ in 0..f.count()? {
        let mut dir = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
        dir.path = f.str_bytes(&["/data", "/elsewhere", ""])?;
        for _ in 0..f.count()? {
            let mut topic = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
            topic.name = protocol::topic_name(&f.topic()?);
            for _ in 0..f.count()? {
                topic.partitions.push(f.partition()?);
            }
            dir.topics.push(topic);
        }
        body.dirs.push(dir);
    }
    Ok(request_frame(key, version, &body))
}

/// A structured OffsetForLeaderEpoch request at `version`.
fn structured_offset_for_leader_epoch(
    f: &mut Fields,
    key: ApiKey,
    version: i16,
) -> arbitrary::Result<Option<Vec<u8>>> {
    let mut body = OffsetForLeaderEpochRequest::default();
    body.replica_id = BrokerId(f.or_any(&[-1, 0])?);
    for _ in 0..f.count()? {
        let mut topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        topic.topic = protocol::topic_name(&f.topic()?);
        for _ in 0..f.count()? {
            let mut partition =
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            partition.partition = f.partition()?;
            partition.current_leader_epoch = f.or_any(&[-1, 0, 1])?;
            partition.leader_epoch = f.or_any(&[-1, 0, 1])?;
            topic.partitions.push(partition);
        }
        body.topics.push(topic);
    }
    Ok(request_frame(key, version, &body))
}

/// Builds a request of `key` at `version`, encodes it, answers it, and checks the response
/// decodes at that version. `None` when the request could not be encoded at this version (a
/// field set that the version lacks).
fn structured(u: &mut Unstructured, key: ApiKey, version: i16) -> arbitrary::Result<()> {
    let mut f = Fields(u);
    let frame = match key {
        ApiKey::Produce => structured_produce(&mut f, key, version)?,
        ApiKey::Fetch => structured_fetch(&mut f, key, version)?,
        ApiKey::ListOffsets => structured_list_offsets(&mut f, key, version)?,
        ApiKey::Metadata => structured_metadata(&mut f, key, version)?,
        ApiKey::ApiVersions => structured_api_versions(&mut f, key, version)?,
        ApiKey::CreateTopics => structured_create_topics(&mut f, key, version)?,
        ApiKey::DeleteTopics => structured_delete_topics(&mut f, key, version)?,
        ApiKey::CreatePartitions => structured_create_partitions(&mut f, key, version)?,
        ApiKey::DescribeConfigs => structured_describe_configs(&mut f, key, version)?,
        ApiKey::AlterConfigs => structured_alter_configs(&mut f, key, version)?,
        ApiKey::IncrementalAlterConfigs => {
            structured_incremental_alter_configs(&mut f, key, version)?
        }
        ApiKey::DeleteRecords => structured_delete_records(&mut f, key, version)?,
        ApiKey::InitProducerId => structured_init_producer_id(&mut f, key, version)?,
        ApiKey::FindCoordinator => structured_find_coordinator(&mut f, key, version)?,
        ApiKey::JoinGroup => structured_join_group(&mut f, key, version)?,
        ApiKey::SyncGroup => structured_sync_group(&mut f, key, version)?,
        ApiKey::Heartbeat => structured_heartbeat(&mut f, key, version)?,
        ApiKey::LeaveGroup => structured_leave_group(&mut f, key, version)?,
        ApiKey::OffsetCommit => structured_offset_commit(&mut f, key, version)?,
        ApiKey::OffsetFetch => structured_offset_fetch(&mut f, key, version)?,
        ApiKey::ListGroups => structured_list_groups(&mut f, key, version)?,
        ApiKey::DescribeGroups => structured_describe_groups(&mut f, key, version)?,
        ApiKey::DeleteGroups => structured_delete_groups(&mut f, key, version)?,
        ApiKey::DescribeCluster => structured_describe_cluster(&mut f, key, version)?,
        ApiKey::DescribeLogDirs => structured_describe_log_dirs(&mut f, key, version)?,
        ApiKey::AlterReplicaLogDirs => structured_alter_replica_log_dirs(&mut f, key, version)?,
        ApiKey::OffsetForLeaderEpoch => structured_offset_for_leader_epoch(&mut f, key, version)?,
        other => unreachable!("{other:?} is not in SUPPORTED"),
    };
    let Some(frame) = frame else {
        return Ok(());
    };
    let request = protocol::parse_request(Bytes::from(frame))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: a client's header: {e}"));
    let answer = match with_broker(request) {
        None => return Ok(()),
        Some(answer) => answer,
    };
    let Some(frame) = answer.unwrap_or_else(|e| panic!("{key:?} v{version}: {e}")) else {
        return Ok(());
    };
    let mut rest = Bytes::copy_from_slice(response_body(&frame));
    let header = ResponseHeader::decode(&mut rest, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: response header: {e}"));
    assert_eq!(
        header.correlation_id, 7,
        "{key:?} v{version}: correlation id"
    );
    fn decodes<T: Decodable>(mut rest: Bytes, key: ApiKey, version: i16) {
        if let Err(e) = T::decode(&mut rest, version) {
            panic!("{key:?} v{version}: response does not decode: {e}");
        }
        assert!(
            rest.is_empty(),
            "{key:?} v{version}: {} bytes after the response",
            rest.len()
        );
    }
    match key {
        ApiKey::Produce => decodes::<ProduceResponse>(rest, key, version),
        ApiKey::Fetch => decodes::<FetchResponse>(rest, key, version),
        ApiKey::ListOffsets => decodes::<ListOffsetsResponse>(rest, key, version),
        ApiKey::Metadata => decodes::<MetadataResponse>(rest, key, version),
        ApiKey::ApiVersions => decodes::<ApiVersionsResponse>(rest, key, version),
        ApiKey::CreateTopics => decodes::<CreateTopicsResponse>(rest, key, version),
        ApiKey::DeleteTopics => decodes::<DeleteTopicsResponse>(rest, key, version),
        ApiKey::CreatePartitions => decodes::<CreatePartitionsResponse>(rest, key, version),
        ApiKey::DescribeConfigs => decodes::<DescribeConfigsResponse>(rest, key, version),
        ApiKey::AlterConfigs => decodes::<AlterConfigsResponse>(rest, key, version),
        ApiKey::IncrementalAlterConfigs => {
            decodes::<IncrementalAlterConfigsResponse>(rest, key, version)
        }
        ApiKey::DeleteRecords => decodes::<DeleteRecordsResponse>(rest, key, version),
        ApiKey::InitProducerId => decodes::<InitProducerIdResponse>(rest, key, version),
        ApiKey::FindCoordinator => decodes::<FindCoordinatorResponse>(rest, key, version),
        ApiKey::JoinGroup => decodes::<JoinGroupResponse>(rest, key, version),
        ApiKey::SyncGroup => decodes::<SyncGroupResponse>(rest, key, version),
        ApiKey::Heartbeat => decodes::<HeartbeatResponse>(rest, key, version),
        ApiKey::LeaveGroup => decodes::<LeaveGroupResponse>(rest, key, version),
        // v0 and v1 are answered with v2's bytes (kafka-protocol decodes v2 on).
        ApiKey::OffsetCommit => decodes::<OffsetCommitResponse>(
            rest,
            key,
            version.max(protocol::legacy::OFFSET_COMMIT_RESPONSE_VERSION),
        ),
        ApiKey::OffsetFetch => decodes::<OffsetFetchResponse>(rest, key, version),
        ApiKey::ListGroups => decodes::<ListGroupsResponse>(rest, key, version),
        ApiKey::DescribeGroups => decodes::<DescribeGroupsResponse>(rest, key, version),
        ApiKey::DeleteGroups => decodes::<DeleteGroupsResponse>(rest, key, version),
        ApiKey::DescribeCluster => decodes::<DescribeClusterResponse>(rest, key, version),
        ApiKey::DescribeLogDirs => decodes::<DescribeLogDirsResponse>(rest, key, version),
        ApiKey::AlterReplicaLogDirs => decodes::<AlterReplicaLogDirsResponse>(rest, key, version),
        ApiKey::OffsetForLeaderEpoch => decodes::<OffsetForLeaderEpochResponse>(rest, key, version),
        _ => unreachable!(),
    }
    Ok(())
}

/// Builds a valid request of an API and version keel advertises from `data` (fields mostly ones
/// keel has a branch for), encoded by kafka-protocol as a client would. keel must answer it
/// without a `ProtocolError` (or not at all: acks=0, a Fetch past `REQUEST_TIMEOUT`), and the
/// answer must decode with kafka-protocol at the request's version.
pub fn request_structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(&(key, min, max)) = u.choose(protocol::SUPPORTED) else {
        return;
    };
    let Ok(version) = u.int_in_range(min..=max) else {
        return;
    };
    // Running out of bytes midway only ends the request early.
    let _ = structured(&mut u, key, version);
}

/// `request_structured` for one API and version, so that a test can reach every one.
pub fn request_structured_at(key: ApiKey, version: i16, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = structured(&mut u, key, version);
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// One seed input: which body it is for, a file name, and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The seed corpora committed under `fuzz/corpus/`: real batches and payloads for every codec,
/// written segments (sound, torn, checkpointed), the fixture's genuine indexes, and op streams.
/// `engine/tests/fuzz_corpus.rs` writes them (an ignored test) and replays them.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = batch_seeds();
    seeds.extend(recover_seeds());
    seeds.extend(lookup_seeds());
    seeds.extend(ops_seeds());
    seeds.extend(request_seeds());
    seeds
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: format!("seed-{}", name.into()),
        bytes,
    }
}

fn seed_records(count: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: (i % 2 == 0).then(|| format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i}").repeat(3).into_bytes()),
            headers: vec![(b"h".to_vec(), (i % 3 != 0).then(|| b"v".to_vec()))],
        })
        .collect()
}

fn build(codec: Codec, records: &[NewRecord]) -> Vec<u8> {
    let builder = BatchBuilder {
        codec,
        ..BatchBuilder::default()
    };
    builder.build(records).expect("compressing to memory")
}

fn batch_seeds() -> Vec<Seed> {
    let records = seed_records(3);
    let mut seeds = Vec::new();
    for codec in CODECS {
        let batch = build(codec, &records);
        seeds.push(seed(
            "batch_decode",
            format!("payload-{}", codec.name()),
            batch[batch::HEADER_BYTES..].to_vec(),
        ));
        seeds.push(seed(
            "batch_decode",
            format!("batch-{}", codec.name()),
            batch,
        ));
    }
    let sparse = BatchBuilder::default()
        .build_with_deltas(&records, &[0, 2, 5], 6)
        .expect("no codec");
    seeds.push(seed("batch_decode", "batch-sparse", sparse));
    seeds.push(seed("batch_decode", "batch-empty", build(Codec::None, &[])));
    seeds
}

/// Segment files after appending batches of every codec, and the checkpoint's recovery point.
fn written_segment(flush_after: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, u64) {
    let disk = MemDisk::new();
    let mut log = open_log(&disk, small_config());
    let mut recovery_point = 0;
    for (i, codec) in CODECS.iter().cycle().take(8).enumerate() {
        if i == flush_after {
            log.flush(0).expect("flush");
            recovery_point = log.next_offset();
        }
        let mut batch = build(*codec, &seed_records(1 + i % 3));
        log.append(&mut batch, 0).expect("append");
    }
    let file = |suffix| {
        disk.file_bytes(&segment_path(&dir(), 0, suffix))
            .expect("written")
    };
    let (log, index, time_index) = (
        file(LOG_SUFFIX),
        file(INDEX_SUFFIX),
        file(TIME_INDEX_SUFFIX),
    );
    // The active segment's indexes are preallocated; their zero tails add nothing to a seed.
    let used = |mut bytes: Vec<u8>| {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        bytes.truncate(end.next_multiple_of(4));
        bytes
    };
    (log, used(index), used(time_index), recovery_point)
}

fn recover_seeds() -> Vec<Seed> {
    let (log, index, time_index, _) = written_segment(usize::MAX);
    let (flushed_log, flushed_index, flushed_time_index, recovery_point) = written_segment(5);
    let torn = &log[..log.len() - 30];
    let point = u8::try_from(recovery_point).expect("a few records");
    let inputs = [
        (
            "sound",
            RecoverInput::encode(None, &index, &time_index, &log),
        ),
        (
            "torn",
            RecoverInput::encode(None, &index, &time_index, torn),
        ),
        (
            "checkpointed",
            RecoverInput::encode(
                Some((point, 2)),
                &flushed_index,
                &flushed_time_index,
                &flushed_log,
            ),
        ),
        (
            "log-start",
            RecoverInput::encode(Some((0, 3)), &[], &[], &log),
        ),
        ("empty", RecoverInput::encode(None, &[], &[], &[])),
    ];
    inputs
        .into_iter()
        .map(|(name, bytes)| seed("segment_recover", name, bytes))
        .collect()
}

fn lookup_seeds() -> Vec<Seed> {
    let fixture = fixture();
    let (index, time_index) = (&fixture.index, &fixture.time_index);
    let garbage: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(37)).collect();
    let inputs = [
        ("clean", LookupInput::encode(0, index, time_index)),
        ("crash", LookupInput::encode(1, index, time_index)),
        ("no-checkpoint", LookupInput::encode(2, index, time_index)),
        ("empty", LookupInput::encode(0, &[], &[])),
        ("garbage", LookupInput::encode(1, &garbage, &garbage)),
    ];
    inputs
        .into_iter()
        .map(|(name, bytes)| seed("index_lookup", name, bytes))
        .collect()
}

/// Op streams: `arbitrary` reads any bytes as ops, so varied pseudo-random bytes make varied runs.
fn ops_seeds() -> Vec<Seed> {
    [64usize, 256, 1024]
        .into_iter()
        .map(|len| {
            let mut state = len as u64 ^ 0x9e37_79b9_7f4a_7c15;
            let bytes = (0..len)
                .map(|_| {
                    // xorshift64: deterministic, so regenerated seeds do not churn.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            seed("log_ops", format!("random-{len}"), bytes)
        })
        .collect()
}

/// Real request frames, as a client sends them after the size prefix.
fn request_seeds() -> Vec<Seed> {
    let mut api_versions = ApiVersionsRequest::default();
    api_versions.client_software_name = StrBytes::from_static_str("keel-fuzz");
    api_versions.client_software_version = StrBytes::from_static_str("1.0");
    let mut topic = metadata_request::MetadataRequestTopic::default();
    topic.name = Some(protocol::topic_name(TOPIC));
    let mut metadata = MetadataRequest::default();
    metadata.topics = Some(vec![topic]);
    metadata.allow_auto_topic_creation = true;
    let produce = produce_request(TOPIC, 1, -1, Some(build(Codec::None, &seed_records(3))));
    let mut partition = fetch_request::FetchPartition::default();
    partition.fetch_offset = 1;
    partition.partition_max_bytes = 1 << 20;
    let mut fetch_topic = fetch_request::FetchTopic::default();
    fetch_topic.topic = protocol::topic_name(TOPIC);
    fetch_topic.partitions = vec![partition];
    let mut fetch = FetchRequest::default();
    fetch.max_wait_ms = 0;
    fetch.max_bytes = 1 << 20;
    fetch.topics = vec![fetch_topic];
    let frames = [
        (
            "api-versions-v3",
            request_frame(ApiKey::ApiVersions, 3, &api_versions),
        ),
        (
            "metadata-v12",
            request_frame(ApiKey::Metadata, 12, &metadata),
        ),
        ("produce-v9", request_frame(ApiKey::Produce, 9, &produce)),
        ("fetch-v12", request_frame(ApiKey::Fetch, 12, &fetch)),
    ];
    let mut seeds: Vec<Seed> = frames
        .into_iter()
        .map(|(name, frame)| seed("request_decode", name, frame.expect("encodable")))
        .collect();
    seeds.extend(ops_seeds().into_iter().map(|s| Seed {
        target: "request_structured",
        ..s
    }));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose array claims 2^31 - 1 (or, compact, 2^32 - 2) elements in a few bytes
    /// must be an error, not an allocation of hundreds of GiB (which aborts the process).
    #[test]
    fn huge_array_counts_are_errors_not_aborts() {
        // Metadata v1: header v1 (key, version, correlation id, client id ""), then the topics
        // array's i32 count.
        let classic = [0, 3, 0, 1, 0, 0, 0, 7, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        // Metadata v12: header v2 (client id "", no tagged fields), then the compact topics
        // array's varint count u32::MAX.
        let compact = [
            0, 3, 0, 12, 0, 0, 0, 7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        for frame in [&classic[..], &compact[..]] {
            let request = protocol::parse_request(Bytes::copy_from_slice(frame)).expect("header");
            assert!(protocol::decode::<MetadataRequest>(&request).is_err());
            request_decode(frame);
        }
    }

    #[test]
    fn inputs_decode_as_they_were_encoded() {
        let data = RecoverInput::encode(Some((7, 3)), b"ab", b"cde", b"log");
        let input = RecoverInput::parse(&data);
        assert_eq!(
            (input.index, input.time_index, input.log),
            (&b"ab"[..], &b"cde"[..], &b"log"[..])
        );
        assert_eq!(input.checkpoint.map(|c| c.recovery_point), Some(7));
        let data = LookupInput::encode(1, b"idx", b"time");
        let input = LookupInput::parse(&data);
        assert_eq!(
            (input.mode, input.index, input.time_index),
            (1, &b"idx"[..], &b"time"[..])
        );
    }
}
