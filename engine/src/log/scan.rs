//! Sequential reading of the batches of a `.log` file, in large chunks, for recovery, index
//! rebuilds, `keel check` and `keel dump-log`.
//!
//! The scanner never trusts a length field: a batch must have a v2 header, a length that fits
//! both the file and `BATCH_BYTES_MAX`, and (when asked) a CRC that matches. The first batch that
//! fails ends the scan with the reason and the position: where recovery truncates a torn tail,
//! and where `resync` looks for the next batch after damage to durable bytes.

use std::io;

use super::batch::{self, BatchHeader, HEADER_BYTES, MAGIC_V2};
use crate::io::File;

/// The most of the file one read brings in.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
/// The first read of a header-only scan, and its read after a jump over a large batch: a lookup
/// reads a few headers near an index entry, and a walk over large batches needs only their
/// headers, so neither should copy a whole chunk of record bytes. Reads double while the scan
/// moves through the bytes already read (many small batches), up to `SCAN_CHUNK_BYTES`.
const HEADER_READ_BYTES: usize = 4096;
/// How many times bytes that fail verification are read again before they are judged corrupt.
pub const READ_ATTEMPTS_MAX: u32 = 3;
/// The attempts of the replays at open (producer state, committed offsets), in all: more than a
/// read's, since stopping early there forgets whatever follows.
pub const REPLAY_READ_ATTEMPTS_MAX: u32 = 2 * READ_ATTEMPTS_MAX;
/// No batch on disk can be larger than this; a header that says otherwise is corrupt.
pub const BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;

/// How much of each batch to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Header fields only: enough to walk the file and rebuild indexes of trusted segments.
    Header,
    /// Header and CRC: what recovery requires of bytes that may have been torn.
    Crc,
}

/// What the first batch of a scan must be: known from the segment's base offset (a scan from
/// the start) or from the index entry the scan starts at (which names the batch's last offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    Base(u64),
    Last(u64),
}

/// One batch found by the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch {
    pub position: u64,
    pub header: BatchHeader,
    pub total_bytes: u64,
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStop {
    pub position: u64,
    pub reason: String,
}

/// A scan ends early on bad bytes (`Stop`) or on an IO error.
#[derive(Debug)]
pub enum ScanError {
    Stop(ScanStop),
    Io(io::Error),
}

impl ScanError {
    /// As an IO error naming `path`: for callers that trusted the bytes to be valid.
    pub fn into_io(self, path: &std::path::Path) -> io::Error {
        match self {
            ScanError::Io(e) => e,
            ScanError::Stop(stop) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} at position {}: {}",
                    path.display(),
                    stop.position,
                    stop.reason
                ),
            ),
        }
    }
}

pub struct Scanner<'a, F: File> {
    file: &'a F,
    position: u64,
    end: u64,
    verify: Verify,
    chunk: Vec<u8>,
    chunk_start: u64,
    /// How much the next read of the file brings in, at least.
    read_bytes: usize,
    /// The base offset the next batch must have: batches are dense, each starting right after
    /// the last offset of the one before (the base offset is outside the CRC, so this is what
    /// catches a damaged one). In a log with holes it is the lowest base offset allowed.
    expected_base: Option<u64>,
    first: Option<First>,
    /// Compaction leaves holes between batches: offsets then need only increase strictly, and a
    /// scan from a segment's start may find its first batch above the segment's base offset.
    holes: bool,
    /// Every batch's last offset is below this: the next segment's base offset (`u64::MAX` in
    /// the last segment). A block the device wrote to the wrong place holds batches that verify
    /// but belong to a later segment.
    below: u64,
}

impl<'a, F: File> Scanner<'a, F> {
    /// Scans `file` from `position` up to `end` (usually the file's length).
    pub fn new(file: &'a F, position: u64, end: u64, verify: Verify) -> Scanner<'a, F> {
        Scanner {
            file,
            position,
            end,
            verify,
            chunk: Vec::new(),
            chunk_start: position,
            read_bytes: match verify {
                Verify::Header => HEADER_READ_BYTES,
                Verify::Crc => SCAN_CHUNK_BYTES,
            },
            expected_base: None,
            first: None,
            holes: false,
            below: u64::MAX,
        }
    }

    /// Requires every batch to end below `limit` (see `Segment::set_offset_limit`).
    pub fn ending_below(mut self, limit: u64) -> Scanner<'a, F> {
        self.below = limit;
        self
    }

    /// Accepts holes between batches (a log that compaction has cleaned), when `holes` is set.
    pub fn allowing_holes(mut self, holes: bool) -> Scanner<'a, F> {
        self.holes = holes;
        self
    }

    /// Requires the first batch to be `first`: base offsets lie outside the CRC, so a damaged
    /// one is caught only by comparison with what the log already knows.
    pub fn expecting(mut self, first: First) -> Scanner<'a, F> {
        self.first = Some(first);
        self
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// The lowest base offset the next batch may have, when the scan knows it: after a batch,
    /// the offset after it; before the first, the segment's base (or the offset after an index
    /// entry's batch, for the batch following it).
    pub fn expected_base(&self) -> Option<u64> {
        match (self.expected_base, self.first) {
            (Some(expected), _) => Some(expected),
            (None, Some(First::Base(base))) => Some(base),
            (None, _) => None,
        }
    }

    /// Goes on after `batch`, found past damage by `resync`: the scan continues from its end,
    /// the offsets dense (or increasing) from its last on.
    pub fn resume_after(&mut self, batch: &ScannedBatch) {
        self.position = batch.position + batch.total_bytes;
        self.expected_base = Some(batch.header.last_offset() as u64 + 1);
        self.chunk.clear();
    }

    /// The next batch; `Ok(None)` at the end; `Stop` when the bytes at the current position are
    /// not a valid batch. Before giving up on a position the bytes are read again from the file,
    /// up to `READ_ATTEMPTS_MAX` times: a transient read error (a flipped bit on the bus, a bad
    /// cable) must not make recovery cut good, durable data.
    ///
    /// # Errors
    /// `Stop` with the position and reason, or `Io`.
    pub fn next_batch(&mut self) -> Result<Option<ScannedBatch>, ScanError> {
        let mut attempt = 1;
        loop {
            match self.next_batch_once() {
                Err(ScanError::Stop(_)) if attempt < READ_ATTEMPTS_MAX => {
                    self.chunk.clear();
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn next_batch_once(&mut self) -> Result<Option<ScannedBatch>, ScanError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let parsed = match self.bytes(HEADER_BYTES).map_err(ScanError::Io)? {
            Some(bytes) => BatchHeader::parse(bytes),
            None => {
                let reason = "a partial batch header at the end of the file";
                return Err(ScanError::Stop(self.stop(reason)));
            }
        };
        let header = parsed.map_err(|e| ScanError::Stop(self.stop(&e.to_string())))?;
        if header.magic != MAGIC_V2 {
            let reason = format!("magic {} instead of 2", header.magic);
            return Err(ScanError::Stop(self.stop(&reason)));
        }
        let total = match header.total_bytes() {
            Some(total) if total <= BATCH_BYTES_MAX => total,
            _ => {
                let reason = format!("impossible batch length {}", header.batch_length);
                return Err(ScanError::Stop(self.stop(&reason)));
            }
        };
        if header.base_offset < 0 || header.last_offset_delta < 0 || header.records_count < 0 {
            return Err(ScanError::Stop(
                self.stop("negative offsets or record count in the header"),
            ));
        }
        let first_ok = match (self.expected_base, self.first) {
            (None, Some(First::Base(base))) if self.holes => header.base_offset as u64 >= base,
            (None, Some(First::Base(base))) => header.base_offset as u64 == base,
            (None, Some(First::Last(last))) => header.last_offset() as u64 == last,
            _ => true,
        };
        if !first_ok {
            let reason = format!(
                "batch {}..={} is not the expected {:?}",
                header.base_offset,
                header.last_offset(),
                self.first
            );
            return Err(ScanError::Stop(self.stop(&reason)));
        }
        let base = header.base_offset as u64;
        if header.last_offset() as u64 >= self.below {
            let reason = format!(
                "batch {}..={} reaches the next segment's base offset {}",
                header.base_offset,
                header.last_offset(),
                self.below
            );
            return Err(ScanError::Stop(self.stop(&reason)));
        }
        if let Some(expected) = self
            .expected_base
            .filter(|&e| base < e || (base > e && !self.holes))
        {
            let reason = format!(
                "batch at offset {} follows one ending at {}",
                header.base_offset,
                expected.wrapping_sub(1)
            );
            return Err(ScanError::Stop(self.stop(&reason)));
        }
        // The CRC does not cover the base offset, and where compaction left holes a batch whose
        // base offset had a bit flipped looks like one: it is found out by the next batch,
        // which holds offsets the jump claims to have passed.
        let expected_now = self.expected_base.or(match self.first {
            Some(First::Base(first)) => Some(first),
            _ => None,
        });
        if let Some(expected) = expected_now.filter(|&e| self.holes && base > e) {
            if self.next_goes_back(total, expected, header.last_offset() as u64)? {
                let reason = format!(
                    "batch {}..={} jumps past offsets that the batch after it holds",
                    header.base_offset,
                    header.last_offset()
                );
                return Err(ScanError::Stop(self.stop(&reason)));
            }
        }
        if self.verify == Verify::Crc {
            self.check_crc(&header, total)?;
        } else if self.position + total as u64 > self.end {
            return Err(ScanError::Stop(
                self.stop("a batch cut short by the end of the file"),
            ));
        }
        let scanned = ScannedBatch {
            position: self.position,
            header,
            total_bytes: total as u64,
        };
        self.position += total as u64;
        self.expected_base = Some(header.last_offset() as u64 + 1);
        Ok(Some(scanned))
    }

    /// Whether the batch after the one at the scan's position (`total` bytes long, ending at
    /// offset `last`) falls back into the jump from `expected` (see `falls_back_into`). Read
    /// from the scan's chunk when it holds that header, so that a walk over a compacted
    /// segment's holes costs no extra reads.
    fn next_goes_back(&self, total: usize, expected: u64, last: u64) -> Result<bool, ScanError> {
        let next = self.position + total as u64;
        if next + HEADER_BYTES as u64 > self.end {
            return Ok(false);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if next >= self.chunk_start && next + HEADER_BYTES as u64 <= chunk_end {
            let at = (next - self.chunk_start) as usize;
            return Ok(falls_back_into(&self.chunk[at..], expected, last));
        }
        let mut header = [0u8; HEADER_BYTES];
        self.file
            .read_exact_at(&mut header, next)
            .map_err(ScanError::Io)?;
        Ok(falls_back_into(&header, expected, last))
    }

    fn check_crc(&mut self, header: &BatchHeader, total: usize) -> Result<(), ScanError> {
        let computed = match self.bytes(total).map_err(ScanError::Io)? {
            Some(bytes) if batch::crc_ok(bytes, header) => return Ok(()),
            Some(bytes) => batch::compute_crc(bytes),
            None => {
                let reason = "a batch cut short by the end of the file";
                return Err(ScanError::Stop(self.stop(reason)));
            }
        };
        {
            let reason = format!(
                "CRC mismatch in the batch at offset {}: stored {:#010x}, computed {computed:#010x}",
                header.base_offset, header.crc
            );
            Err(ScanError::Stop(self.stop(&reason)))
        }
    }

    fn stop(&self, reason: &str) -> ScanStop {
        ScanStop {
            position: self.position,
            reason: reason.to_owned(),
        }
    }

    /// The `n` bytes at the current position, or `None` if the scan range ends first.
    fn bytes(&mut self, n: usize) -> io::Result<Option<&[u8]>> {
        if self.position + n as u64 > self.end {
            return Ok(None);
        }
        let offset_in_chunk = (self.position - self.chunk_start) as usize;
        let chunk_covers =
            self.position >= self.chunk_start && offset_in_chunk + n <= self.chunk.len();
        if !chunk_covers {
            self.fill(n)?;
        }
        let start = (self.position - self.chunk_start) as usize;
        Ok(Some(&self.chunk[start..start + n]))
    }

    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.verify == Verify::Header {
            let chunk_end = self.chunk_start + self.chunk.len() as u64;
            self.read_bytes = if !self.chunk.is_empty() && self.position <= chunk_end {
                (self.read_bytes * 2).min(SCAN_CHUNK_BYTES)
            } else {
                HEADER_READ_BYTES
            };
        }
        let want = n.max(self.read_bytes) as u64;
        let len = want.min(self.end - self.position) as usize;
        self.chunk.resize(len, 0);
        self.file.read_exact_at(&mut self.chunk, self.position)?;
        self.chunk_start = self.position;
        Ok(())
    }
}

/// Whether `next` (the bytes after a batch that jumped from offset `expected` to end at
/// `last`) starts a batch whose base offset lies in `expected..=last`: offsets that the jump
/// claims to have passed. The CRC does not cover a base offset, so where compaction left holes a
/// flipped bit there looks like a hole; the batch after it gives it away.
pub(crate) fn falls_back_into(next: &[u8], expected: u64, last: u64) -> bool {
    BatchHeader::parse(next).is_ok_and(|h| {
        h.magic == MAGIC_V2 && (expected..=last).contains(&(h.base_offset.max(0) as u64))
    })
}

/// How far a batch found by `resync` may start above the offset expected: a segment's offsets
/// are relative to its base in 32 bits, so no batch of it lies further.
const RESYNC_OFFSET_SPAN_MAX: u64 = 1 << 31;

/// What a batch found by `resync` must be to belong where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Its base offset is at least this (the first offset the damage may have held).
    pub base: u64,
    /// Its last offset is below this: the next segment's base offset (`u64::MAX` for the last
    /// segment). A block written to the wrong place by the device holds batches that verify
    /// but belong elsewhere, often to a later segment.
    pub below: u64,
    /// Whether compaction may have left holes between batches.
    pub holes: bool,
}

/// Where the batches go on after damage at `from`: the first batch from `from` on that verifies
/// (a v2 header, a length that fits, offsets within `expect`'s bounds, a CRC that matches)
/// and that the bytes after it continue (the end of the range, or a batch header whose base
/// offset follows its last: a batch carried inside another's record values verifies too, but
/// is not followed by one that continues it). The damaged batch's own frame is tried first, since its length
/// field usually survives a flipped bit in its records; then every position after `from`, so
/// a damaged length field costs the batch it belongs to and no more. `Ok(None)` when nothing
/// verifies before `end`.
///
/// The batch found first is not taken on trust: a block the device wrote to the wrong place
/// can hold whole batches of the same segment from further on, which verify and continue one
/// another. Offsets grow with position in a segment, so the batches that truly go on after the
/// damage are the ones with the lowest offsets: the rest of the range is searched for a batch
/// wholly below the one found, again after each one found, and the lowest is taken. This reads
/// the rest of the segment once per damaged range (more often only where misplaced batches
/// were found), in chunks, so it costs bounded memory and time proportional to the range.
///
/// # Errors
/// IO errors.
pub fn resync<F: File>(
    file: &F,
    from: u64,
    end: u64,
    expect: Expect,
) -> io::Result<Option<ScannedBatch>> {
    let Some(mut found) = first_verified_after(file, from, end, expect)? else {
        return Ok(None);
    };
    loop {
        let lower = Expect {
            below: found.header.base_offset as u64,
            ..expect
        };
        match scan_for_batch(file, found.position + 1, end, end, lower)? {
            Some(earlier_offsets) => found = earlier_offsets,
            None => return Ok(Some(found)),
        }
    }
}

/// The first batch at or after `from` that verifies (see `resync`).
fn first_verified_after<F: File>(
    file: &F,
    from: u64,
    end: u64,
    expect: Expect,
) -> io::Result<Option<ScannedBatch>> {
    // The bytes at `from` may be a sound batch after a hole (offsets lost to damage before it,
    // the damaged bytes gone): then it is where batches go on.
    if let Some(found) = verified_at(file, from, end, expect)? {
        return Ok(Some(found));
    }
    let mut header = [0u8; HEADER_BYTES];
    if from + HEADER_BYTES as u64 <= end {
        file.read_exact_at(&mut header, from)?;
        if let Some(total) = BatchHeader::parse(&header)
            .ok()
            .and_then(|h| h.total_bytes())
            .filter(|&total| total <= BATCH_BYTES_MAX)
        {
            if let Some(found) = verified_at(file, from + total as u64, end, expect)? {
                return Ok(Some(found));
            }
        }
    }
    // The scan's reads may have gone wrong where no damage is (a transient flip in the header
    // of the batch it should find): a second pass over the bytes before what the first found
    // makes sure no earlier batch was passed over.
    let Some(found) = scan_for_batch(file, from + 1, end, end, expect)? else {
        return Ok(None);
    };
    let earlier = scan_for_batch(file, from + 1, found.position, end, expect)?;
    Ok(earlier.or(Some(found)))
}

/// The first batch that verifies (see `resync`) at a position in [start, before), the file's
/// bytes ending at `end`.
fn scan_for_batch<F: File>(
    file: &F,
    mut start: u64,
    before: u64,
    end: u64,
    expect: Expect,
) -> io::Result<Option<ScannedBatch>> {
    let mut chunk = Vec::new();
    while start < before && start + HEADER_BYTES as u64 <= end {
        let len = (end - start).min(SCAN_CHUNK_BYTES as u64) as usize;
        chunk.resize(len, 0);
        file.read_exact_at(&mut chunk, start)?;
        let candidates = len.saturating_sub(HEADER_BYTES - 1);
        let candidates = candidates.min((before - start) as usize);
        for i in 0..candidates {
            if !plausible_header(&chunk[i..], expect) {
                continue;
            }
            let position = start + i as u64;
            if let Some(found) = verified_at(file, position, end, expect)? {
                return Ok(Some(found));
            }
        }
        start += candidates.max(1) as u64;
    }
    Ok(None)
}

/// A cheap filter before a CRC: the magic byte, and a base offset and length that could be.
fn plausible_header(bytes: &[u8], expect: Expect) -> bool {
    /// Base offset, length, partition leader epoch.
    const MAGIC_AT: usize = 16;
    if bytes.len() < HEADER_BYTES || bytes[MAGIC_AT] as i8 != MAGIC_V2 {
        return false;
    }
    let Ok(header) = BatchHeader::parse(bytes) else {
        return false;
    };
    let base = header.base_offset;
    let limit = expect
        .below
        .min(expect.base.saturating_add(RESYNC_OFFSET_SPAN_MAX));
    base >= 0
        && (base as u64) >= expect.base
        && header.last_offset_delta >= 0
        && (header.last_offset() as u64) < limit
        && header
            .total_bytes()
            .is_some_and(|t| (HEADER_BYTES..=BATCH_BYTES_MAX).contains(&t))
}

/// The batch at `position` if it verifies and what follows it continues it, reading again up
/// to `READ_ATTEMPTS_MAX` times before saying no.
fn verified_at<F: File>(
    file: &F,
    position: u64,
    end: u64,
    expect: Expect,
) -> io::Result<Option<ScannedBatch>> {
    for _ in 0..READ_ATTEMPTS_MAX {
        if let Some(found) = verified_once(file, position, end, expect)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn verified_once<F: File>(
    file: &F,
    position: u64,
    end: u64,
    expect: Expect,
) -> io::Result<Option<ScannedBatch>> {
    let mut header_bytes = [0u8; HEADER_BYTES];
    if position + HEADER_BYTES as u64 > end {
        return Ok(None);
    }
    file.read_exact_at(&mut header_bytes, position)?;
    if !plausible_header(&header_bytes, expect) {
        return Ok(None);
    }
    let header = BatchHeader::parse(&header_bytes).expect("plausible headers parse");
    let total = header
        .total_bytes()
        .expect("plausible headers have a length");
    if position + total as u64 > end {
        return Ok(None);
    }
    let mut batch = vec![0u8; total];
    file.read_exact_at(&mut batch, position)?;
    if !batch::crc_ok(&batch, &header) {
        return Ok(None);
    }
    let after = position + total as u64;
    if after + HEADER_BYTES as u64 <= end {
        file.read_exact_at(&mut header_bytes, after)?;
        let next_base = header.last_offset() as u64 + 1;
        let continues = BatchHeader::parse(&header_bytes).is_ok_and(|next| {
            let base = next.base_offset as u64;
            next.magic == MAGIC_V2 && (base == next_base || (expect.holes && base > next_base))
        });
        if !continues {
            return Ok(None);
        }
    }
    Ok(Some(ScannedBatch {
        position,
        header,
        total_bytes: total as u64,
    }))
}
