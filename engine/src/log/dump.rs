//! Offline inspection of log files: `keel dump-log FILE` prints the batches of a `.log` file (or
//! the entries of an index) the way kafka-dump-log does, and `keel check DIR` verifies every
//! segment of a data directory, naming the file and position of each problem it finds. A log
//! whose directory holds compaction's marker may have holes between batches; elsewhere offsets
//! must be dense.
//!
//! Both read through the `Disk` seam, like the engine, and never write.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::batch::{self, BatchHeader};
use super::compaction::COMPACTED_MARKER_FILE;
use super::index::{self, IndexKind};
use super::scan::{self, First, ScanError, Scanner, Verify};
use super::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::io::{Disk, File};

/// What a dump saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    pub batches: u64,
    pub records: u64,
    pub invalid_batches: u64,
    /// Where the file stopped parsing, and why.
    pub stopped: Option<(u64, String)>,
}

/// Prints every batch of a `.log` file, or every entry of a `.index`/`.timeindex` file.
///
/// # Errors
/// IO errors reading the file or writing `out`.
pub fn dump_file<D: Disk>(disk: &D, path: &Path, out: &mut dyn Write) -> io::Result<DumpSummary> {
    let file = disk.open(path)?;
    writeln!(out, "Dumping {}", path.display())?;
    let suffix = path.extension().and_then(|s| s.to_str()).unwrap_or("");
    match suffix {
        INDEX_SUFFIX => dump_index(&file, path, IndexKind::Offset, out),
        TIME_INDEX_SUFFIX => dump_index(&file, path, IndexKind::Time, out),
        _ => {
            // A compacted log has holes between batches; its directory says so.
            let marker = path.parent().map(|dir| dir.join(COMPACTED_MARKER_FILE));
            let holes = marker.is_some_and(|marker| disk.exists(&marker));
            dump_log(&file, holes, out)
        }
    }
}

fn dump_log<F: File>(file: &F, holes: bool, out: &mut dyn Write) -> io::Result<DumpSummary> {
    let mut summary = DumpSummary::default();
    let end = file.len()?;
    let mut scanner = Scanner::new(file, 0, end, Verify::Header).allowing_holes(holes);
    loop {
        match scanner.next_batch() {
            Ok(Some(found)) => {
                let mut bytes = vec![0u8; found.total_bytes as usize];
                file.read_exact_at(&mut bytes, found.position)?;
                let valid = batch::validate(&bytes, false);
                print_batch(out, &found.header, found.position, &valid)?;
                summary.batches += 1;
                summary.records += found.header.records_count.max(0) as u64;
                summary.invalid_batches += u64::from(valid.is_err());
            }
            Ok(None) => break,
            Err(ScanError::Io(e)) => return Err(e),
            Err(ScanError::Stop(stop)) => {
                writeln!(
                    out,
                    "Stopped at position {}: {} ({} bytes not parsed)",
                    stop.position,
                    stop.reason,
                    end - stop.position
                )?;
                summary.stopped = Some((stop.position, stop.reason));
                break;
            }
        }
    }
    Ok(summary)
}

fn print_batch(
    out: &mut dyn Write,
    header: &BatchHeader,
    position: u64,
    valid: &Result<batch::BatchInfo, batch::BatchError>,
) -> io::Result<()> {
    let codec = header.codec().map_or("unknown", |c| c.name());
    let timestamp_type = if header.is_log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    };
    let last_sequence = if header.base_sequence < 0 {
        -1
    } else {
        header.base_sequence.wrapping_add(header.last_offset_delta)
    };
    write!(
        out,
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} \
         isvalid: {}",
        header.base_offset,
        header.last_offset(),
        header.records_count,
        header.base_sequence,
        last_sequence,
        header.producer_id,
        header.producer_epoch,
        header.partition_leader_epoch,
        header.is_transactional(),
        header.is_control(),
        position,
        timestamp_type,
        header.max_timestamp,
        header.total_bytes().unwrap_or(0),
        header.magic,
        codec,
        header.crc,
        valid.is_ok(),
    )?;
    match valid {
        Ok(_) => writeln!(out),
        Err(e) => writeln!(out, " error: {e}"),
    }
}

fn dump_index<F: File>(
    file: &F,
    path: &Path,
    kind: IndexKind,
    out: &mut dyn Write,
) -> io::Result<DumpSummary> {
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(segment::parse_segment_name)
        .map_or(0, |(base, _)| base);
    let mut bytes = vec![0u8; file.len()? as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let valid = index::valid_prefix(kind, &bytes, u64::MAX);
    let mut summary = DumpSummary::default();
    for (i, chunk) in bytes.chunks_exact(kind.entry_bytes()).enumerate() {
        let entry = kind.decode(chunk);
        if i >= valid && entry.key == 0 && entry.value == 0 {
            break;
        }
        match kind {
            IndexKind::Offset => writeln!(
                out,
                "offset: {} position: {}",
                base + entry.key as u64,
                entry.value
            )?,
            IndexKind::Time => writeln!(
                out,
                "timestamp: {} offset: {}",
                entry.key,
                base + u64::from(entry.value)
            )?,
        }
        summary.batches += 1;
    }
    if valid < summary.batches as usize {
        let reason = format!("entry {valid} breaks the index's ordering");
        writeln!(out, "Invalid: {reason}")?;
        summary.stopped = Some(((valid * kind.entry_bytes()) as u64, reason));
    }
    Ok(summary)
}

/// One problem `check_dir` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub position: u64,
    pub reason: String,
}

/// What `check_dir` looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub logs: u64,
    pub segments: u64,
    pub batches: u64,
    pub records: u64,
    pub problems: Vec<Problem>,
}

/// Verifies every log under `dir` (a partition directory, or a data directory of them): every
/// batch parses and passes its CRC and record checks, offsets increase within and across
/// segments, and every index entry points at the batch it names.
///
/// # Errors
/// IO errors listing or opening files. Damage is reported in `CheckReport::problems`.
pub fn check_dir<D: Disk>(disk: &D, dir: &Path) -> io::Result<CheckReport> {
    let mut report = CheckReport::default();
    check_tree(disk, dir, &mut report, 0)?;
    Ok(report)
}

/// How deep below the given directory logs are looked for (data dir / topic-partition).
const CHECK_DEPTH_MAX: usize = 2;

fn check_tree<D: Disk>(
    disk: &D,
    dir: &Path,
    report: &mut CheckReport,
    depth: usize,
) -> io::Result<()> {
    let names = disk.list(dir)?;
    let bases: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_segment_name(n))
        .filter(|&(_, suffix)| suffix == LOG_SUFFIX)
        .map(|(base, _)| base)
        .collect();
    if !bases.is_empty() {
        report.logs += 1;
        return check_log(disk, dir, &bases, report);
    }
    if depth >= CHECK_DEPTH_MAX {
        return Ok(());
    }
    for name in names {
        let child = dir.join(&name);
        if disk.list(&child).is_ok() {
            check_tree(disk, &child, report, depth + 1)?;
        }
    }
    Ok(())
}

fn check_log<D: Disk>(
    disk: &D,
    dir: &Path,
    bases: &[u64],
    report: &mut CheckReport,
) -> io::Result<()> {
    let mut next_offset: Option<u64> = None;
    let holes = disk.exists(&dir.join(COMPACTED_MARKER_FILE));
    for (i, &base) in bases.iter().enumerate() {
        report.segments += 1;
        let offset_limit = bases.get(i + 1).copied().unwrap_or(u64::MAX);
        let path = segment::segment_path(dir, base, LOG_SUFFIX);
        let file = disk.open(&path)?;
        if let Some(next) = next_offset.filter(|&next| base < next) {
            report.problems.push(Problem {
                path: path.clone(),
                position: 0,
                reason: format!("segment starts at {base}, below the previous end {next}"),
            });
        }
        let last = check_segment(&file, &path, (base, offset_limit), holes, report)?;
        next_offset = last.or(next_offset).or(Some(base));
        check_index(disk, &file, dir, base, report)?;
    }
    Ok(())
}

/// Checks each batch of one segment; returns the next offset after its last batch.
fn check_segment<F: File>(
    file: &F,
    path: &Path,
    (base, offset_limit): (u64, u64),
    holes: bool,
    report: &mut CheckReport,
) -> io::Result<Option<u64>> {
    let mut next: Option<u64> = None;
    let end = file.len()?;
    let mut scanner = Scanner::new(file, 0, end, Verify::Crc)
        .expecting(First::Base(base))
        .allowing_holes(holes)
        .ending_below(offset_limit);
    let problem = |position: u64, reason: String| Problem {
        path: path.to_path_buf(),
        position,
        reason,
    };
    loop {
        let found = match scanner.next_batch() {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(next),
            Err(ScanError::Io(e)) => return Err(e),
            // Damage is listed range by range: the check goes on at the next batch that
            // verifies, as reads do, and names the offsets the damaged bytes held.
            Err(ScanError::Stop(stop)) => {
                let expected = scanner.expected_base().unwrap_or(base);
                let expect = scan::Expect {
                    base: expected,
                    below: offset_limit,
                    holes,
                };
                match scan::resync(file, stop.position, end, expect)? {
                    Some(resumed) => {
                        let reason = format!(
                            "{}; damaged bytes {}..{}, offsets {expected}..{} lost, batches verify again after them",
                            stop.reason, stop.position, resumed.position, resumed.header.base_offset
                        );
                        report.problems.push(problem(stop.position, reason));
                        scanner.resume_after(&resumed);
                        resumed
                    }
                    None => {
                        let reason = format!(
                            "{}; nothing verifies from there to the end ({} bytes, offsets from {expected}): a torn tail, or damage",
                            stop.reason,
                            end - stop.position
                        );
                        report.problems.push(problem(stop.position, reason));
                        return Ok(next);
                    }
                }
            }
        };
        let header = found.header;
        let expected_floor = next.unwrap_or(base);
        if (header.base_offset as u64) < expected_floor {
            let reason = format!(
                "batch at offset {} follows offset {}",
                header.base_offset,
                expected_floor.saturating_sub(1)
            );
            report.problems.push(problem(found.position, reason));
        }
        let mut bytes = vec![0u8; found.total_bytes as usize];
        file.read_exact_at(&mut bytes, found.position)?;
        if let Err(e) = batch::validate(&bytes, false) {
            report.problems.push(problem(found.position, e.to_string()));
        }
        report.batches += 1;
        report.records += header.records_count.max(0) as u64;
        next = Some(header.last_offset() as u64 + 1);
    }
}

/// Every offset-index entry must name the last offset of the batch that starts at its position.
fn check_index<D: Disk>(
    disk: &D,
    log: &D::File,
    dir: &Path,
    base: u64,
    report: &mut CheckReport,
) -> io::Result<()> {
    let path = segment::segment_path(dir, base, INDEX_SUFFIX);
    if !disk.exists(&path) {
        return Ok(());
    }
    let index = disk.open(&path)?;
    let mut bytes = vec![0u8; index.len()? as usize];
    index.read_exact_at(&mut bytes, 0)?;
    let log_bytes = log.len()?;
    let valid = index::valid_prefix(IndexKind::Offset, &bytes, log_bytes);
    for (i, chunk) in bytes.chunks_exact(index::OFFSET_ENTRY_BYTES).enumerate() {
        let entry = IndexKind::Offset.decode(chunk);
        if i >= valid {
            if chunk.iter().any(|&b| b != 0) {
                report.problems.push(Problem {
                    path: path.clone(),
                    position: (i * index::OFFSET_ENTRY_BYTES) as u64,
                    reason: "index entry out of order or past the end of the log".to_owned(),
                });
            }
            break;
        }
        let mut header = [0u8; batch::HEADER_BYTES];
        let matches = log
            .read_exact_at(&mut header, u64::from(entry.value))
            .ok()
            .and_then(|()| BatchHeader::parse(&header).ok())
            .is_some_and(|h| h.last_offset() as u64 == base + entry.key as u64);
        if !matches {
            report.problems.push(Problem {
                path: path.clone(),
                position: (i * index::OFFSET_ENTRY_BYTES) as u64,
                reason: format!(
                    "entry for offset {} points at position {}, where that batch is not",
                    base + entry.key as u64,
                    entry.value
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use crate::log::batch::{BatchBuilder, NewRecord};
    use crate::log::{Log, LogConfig};

    fn written_log(disk: &MemDisk) -> PathBuf {
        let dir = PathBuf::from("/data/t-0");
        let config = LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        let mut log = Log::open(disk.clone(), &dir, config, 0).unwrap();
        for i in 0..30 {
            let record = NewRecord {
                timestamp: i,
                value: Some(vec![b'v'; 200]),
                ..NewRecord::default()
            };
            let mut bytes = BatchBuilder::default()
                .build(&[record.clone(), record])
                .unwrap();
            log.append(&mut bytes, 0).unwrap();
        }
        log.close(0).unwrap();
        dir
    }

    #[test]
    fn a_sound_directory_checks_clean() {
        let disk = MemDisk::new();
        written_log(&disk);
        let report = check_dir(&disk, Path::new("/data")).unwrap();
        assert_eq!(report.logs, 1);
        assert_eq!(report.records, 60);
        assert!(report.segments > 2);
        assert_eq!(report.problems, vec![]);
    }

    #[test]
    fn check_names_the_file_and_position_of_damage() {
        let disk = MemDisk::new();
        let dir = written_log(&disk);
        let path = segment::segment_path(&dir, 0, LOG_SUFFIX);
        let mut bytes = disk.file_bytes(&path).unwrap();
        bytes[600] ^= 0x10;
        disk.set_file_bytes(&path, bytes);
        let index_path = segment::segment_path(&dir, 0, INDEX_SUFFIX);
        let mut index = disk.file_bytes(&index_path).unwrap();
        index[7] ^= 1;
        disk.set_file_bytes(&index_path, index);
        let report = check_dir(&disk, &dir).unwrap();
        let batch_bytes = 479;
        assert!(report
            .problems
            .iter()
            .any(|p| p.path == path && p.position == batch_bytes));
        assert!(report.problems.iter().any(|p| p.path == index_path));
    }

    #[test]
    fn dump_prints_every_batch_with_its_validity() {
        let disk = MemDisk::new();
        let dir = written_log(&disk);
        let path = segment::segment_path(&dir, 0, LOG_SUFFIX);
        let mut out = Vec::new();
        let summary = dump_file(&disk, &path, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(summary.batches > 1);
        assert_eq!(summary.invalid_batches, 0);
        assert!(text.contains("baseOffset: 0 lastOffset: 1 count: 2"));
        assert!(text.contains("isvalid: true"));
        let mut out = Vec::new();
        dump_file(
            &disk,
            &segment::segment_path(&dir, 0, INDEX_SUFFIX),
            &mut out,
        )
        .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("offset: "));
    }
}
