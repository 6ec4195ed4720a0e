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

use crate::compression::{self, Codec};
use crate::io::mem::MemDisk;
use crate::io::Disk;
use crate::log::batch::{
    self, BatchBuilder, BatchHeader, BatchInfo, DecodedRecord, NewRecord, RecordReader,
};
use crate::log::checkpoint::{Checkpoint, CheckpointFile, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::log::dump::{self, Problem};
use crate::log::segment::{segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::log::{Log, LogConfig, LogError};

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
    let second = walk(&mut log, scanned_all);
    let report = dump::check_dir(&disk, &dir()).expect("MemDisk never fails");
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
    };
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
        if bytes.is_empty() {
            // A damaged header in trusted bytes can claim offsets past the log end, and a read
            // stops before such a batch: nothing is served, which is allowed there.
            assert!(!strict, "nothing at {offset} < {}", walk.next);
            walk.error = Some(format!("nothing at {offset}"));
            return walk;
        }
        offset = check_dense(&bytes, offset, &mut walk.batches);
    }
    if offset != walk.next {
        // Only a damaged header in trusted bytes, which a CRC check would have refused, can
        // claim offsets past the end (under `cfg(fuzzing)` CRCs pass, so reads serve it).
        assert!(
            !strict,
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
/// `offset`; keeps them in `out` and returns the offset after them.
fn check_dense(bytes: &[u8], offset: u64, out: &mut Vec<Vec<u8>>) -> u64 {
    let mut next = None;
    for batch in split_batches(bytes) {
        let header = BatchHeader::parse(batch).expect("a whole batch");
        let (base, last) = (header.base_offset as u64, header.last_offset() as u64);
        match next {
            None => assert!(
                base <= offset && offset <= last,
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

/// What the log should hold: its records by offset, its start and its end.
#[derive(Default)]
struct Model {
    records: Vec<ModelRecord>,
    start: u64,
    next: u64,
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
            let offset = model.start + at % (model.next - model.start + 1);
            match log.read(offset, bytes_max.into(), u64::MAX).expect("read") {
                Some(slice) => assert!(slice.first_offset <= offset && offset < slice.next_offset),
                None => assert_eq!(offset, model.next),
            }
        }
        Op::FindTime { at } => {
            // From just below the oldest timestamp to just past the newest.
            let timestamp = 995 + i64::from(at) % (10 * i64::from(TIMESTAMP_STEPS) + 10);
            let expected = model
                .records
                .iter()
                .find(|r| r.offset >= model.start && r.timestamp >= timestamp)
                .map(|r| (r.offset, r.timestamp));
            let found = log.offset_for_timestamp(timestamp).expect("time lookup");
            assert_eq!(found, expected, "offset for timestamp {timestamp}");
        }
        Op::Roll => log.roll().expect("roll"),
        Op::Flush => log.flush(0).expect("flush"),
        Op::Truncate { back } => {
            let target = model
                .next
                .saturating_sub((back % 20).into())
                .max(model.start);
            log.truncate_to(target).expect("truncate");
            model.next = log.next_offset();
            assert!(
                model.next <= target,
                "truncated to {} > {target}",
                model.next
            );
            model.records.retain(|r| r.offset < model.next);
            model.start = log.log_start_offset();
        }
        Op::Retention { bytes } => {
            let config = LogConfig {
                retention_bytes: bytes.into(),
                ..small_config()
            };
            log.set_config(config).expect("valid config");
            log.apply_retention(0).expect("retention");
            model.start = log.log_start_offset();
            log.set_config(small_config()).expect("valid config");
        }
        Op::DeleteRecords { at } => {
            let offset = model.start + at % (model.next - model.start + 1);
            log.delete_records_before(offset).expect("delete records");
            model.start = offset;
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
    let info = log.append(&mut bytes, 1000).expect("append");
    for offset in info.base_offset..=info.last_offset {
        model.records.push(ModelRecord {
            offset,
            value: value(offset, value_bytes),
            timestamp: timestamp + (offset - info.base_offset) as i64,
        });
    }
    model.next = info.last_offset + 1;
}

fn check_against_model(log: &mut Log<MemDisk>, disk: &MemDisk, model: &Model) {
    let report = dump::check_dir(disk, &dir()).expect("MemDisk never fails");
    assert_eq!(report.problems, vec![], "keel check on the live directory");
    assert_eq!(log.next_offset(), model.next, "next offset");
    assert_eq!(log.log_start_offset(), model.start, "log start offset");
    let expected: Vec<_> = model
        .records
        .iter()
        .filter(|r| r.offset >= model.start)
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
        let next = check_dense(&bytes, offset, &mut batches);
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

#[cfg(test)]
mod tests {
    use super::*;

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
