//! Opening a log directory: from whatever a crash or power loss left to a log that keeps the
//! contract in `Log`'s doc.
//!
//! 1. A compaction swap that a crash interrupted is finished or rolled back (see `compaction`);
//!    then leftovers are cleared: temporary and `.cleaned` files, and index files whose `.log` is
//!    gone (a removal that a crash interrupted).
//! 2. If a clean-shutdown marker is present and matches the checkpoint and the active segment's
//!    size, every segment is trusted and nothing is scanned.
//! 3. Otherwise segments that end below the recovery point are trusted as they stand; from the
//!    segment holding the recovery point on, batches are read back from the last index entry
//!    below the recovery point and CRC-checked. The first batch that fails is where the log ends:
//!    its segment is cut there and later segments are removed, with a log line saying how many
//!    bytes went and why.
//! 4. The recovered tail is flushed and checkpointed, so the next crash starts from here.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::checkpoint::{self, CheckpointFile, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use super::compaction;
use super::scan::First;
use super::segment::{self, Segment, TailRecovery, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::{Log, LogConfig, LogError, RecoveryReport};
use crate::io::{Disk, File};

impl<D: Disk> Log<D> {
    /// Opens (creating if needed) the log in `dir`, recovering it as the module doc describes.
    ///
    /// # Errors
    /// `Config` for settings out of range; IO errors. Damaged data is never an error here: it is
    /// cut off and reported in `recovery_report`.
    pub fn open(disk: D, dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log<D>, LogError> {
        config.validate().map_err(LogError::Config)?;
        disk.create_dir_all(dir)?;
        compaction::finish_interrupted_swaps(&disk, dir)?;
        let names = disk.list(dir)?;
        remove_leftovers(&disk, dir, &names)?;
        let holes = names.iter().any(|n| n == compaction::COMPACTED_MARKER_FILE);
        let bases = segment_bases(&names);
        let (checkpoint_file, checkpoint) = CheckpointFile::open(&disk, dir)?;
        let checkpoint = checkpoint.unwrap_or_default();
        let marker = checkpoint::take_clean_shutdown(&disk, dir)?;
        let mut log = Log {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::new(),
            checkpoint_file,
            log_start_offset: checkpoint.log_start_offset,
            next_offset: 0,
            recovery_point: checkpoint.recovery_point,
            high_watermark: checkpoint.high_watermark,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            recovery: RecoveryReport::default(),
            holes,
            cleaned_to: 0,
            tombstones_expire_at_ms: None,
            compaction_blocked: false,
            truncations: 0,
        };
        if bases.is_empty() {
            log.start_fresh_at(log.log_start_offset)?;
            log.disk.sync_dir(dir)?;
            log.recovery_point = log.log_start_offset;
            log.write_checkpoint(log.recovery_point)?;
        } else if !log.open_clean(&bases, marker)? {
            log.open_recovering(&bases, now_ms)?;
        }
        log.bound_segments();
        log.finish_open()?;
        Ok(log)
    }

    /// Opens every segment as trusted if the marker vouches for exactly what is on disk.
    fn open_clean(
        &mut self,
        bases: &[u64],
        marker: Option<checkpoint::CleanShutdown>,
    ) -> Result<bool, LogError> {
        let Some(marker) = marker else {
            return Ok(false);
        };
        let active_base = *bases.last().expect("non-empty");
        let active_path = segment::segment_path(&self.dir, active_base, LOG_SUFFIX);
        let active_bytes = self.disk.open(&active_path)?.len()?;
        let vouches = marker.next_offset == self.recovery_point
            && marker.active_base_offset == active_base
            && marker.active_bytes == active_bytes;
        if !vouches {
            tracing::warn!(
                dir = %self.dir.display(),
                ?marker,
                recovery_point = self.recovery_point,
                active_bytes,
                "clean-shutdown marker does not match the log; recovering"
            );
            return Ok(false);
        }
        for &base in bases {
            let mut segment = Segment::open_trusted(&self.disk, &self.dir, base)?;
            segment.set_holes(self.holes);
            self.segments.insert(base, segment);
        }
        self.next_offset = marker.next_offset;
        self.recovery.clean_shutdown = true;
        Ok(true)
    }

    fn open_recovering(&mut self, bases: &[u64], now_ms: i64) -> Result<(), LogError> {
        let recovery_point = self.recovery_point;
        let mut next_offset = None;
        let mut stopped = false;
        let mut damaged = false;
        for (i, &base) in bases.iter().enumerate() {
            if stopped {
                self.remove_after_corruption(base)?;
                continue;
            }
            let mut segment = Segment::open_trusted(&self.disk, &self.dir, base)?;
            segment.set_holes(self.holes);
            segment.set_offset_limit(bases.get(i + 1).copied().unwrap_or(u64::MAX));
            let below = bases.get(i + 1).is_some_and(|&next| next <= recovery_point);
            if !below {
                let (end, tail) = self.recover_segment(&mut segment, base)?;
                next_offset = Some(end);
                damaged |= tail.damaged_durable;
                if let Some(&next_base) = bases.get(i + 1).filter(|&&b| b != end) {
                    // The next segment does not start where this one ends: this one lost its
                    // unflushed tail (a power loss after a roll), so the next holds records
                    // newer than lost ones. Keeping them would leave a hole in the offsets.
                    tracing::warn!(
                        segment = %segment.path(LOG_SUFFIX).display(),
                        end,
                        next_base,
                        "segment ends where the next does not start; removing later segments"
                    );
                    stopped = true;
                }
                if let Some((bytes, stop)) = tail.truncated {
                    tracing::warn!(
                        segment = %segment.path(LOG_SUFFIX).display(),
                        position = stop.position,
                        bytes_truncated = bytes,
                        reason = %stop.reason,
                        "recovery cut a torn or corrupt tail"
                    );
                    self.recovery.bytes_truncated += bytes;
                    // The last segment ends here; an earlier one keeps its successors only if
                    // they start exactly where it now ends (a failed write left garbage behind
                    // its last batch before the roll), which the check above decided.
                }
            }
            self.segments.insert(base, segment);
        }
        let active_base = *self.segments.keys().next_back().expect("non-empty");
        self.next_offset = next_offset.unwrap_or(active_base).max(active_base);
        self.recovery.damaged = damaged;
        if damaged && self.recovery_point > self.next_offset {
            // Damage to flushed bytes at the end of the log took records that were durable,
            // and perhaps acknowledged: their offsets are never given to other records. The
            // log goes on at the recovery point, after a hole.
            tracing::warn!(
                dir = %self.dir.display(),
                from = self.next_offset,
                to = self.recovery_point,
                "flushed records at the end of the log were lost to damage; new records start after them"
            );
            self.next_offset = self.recovery_point;
            // A segment starting there makes the jump last: the next open finds the log's end
            // in its base, not in the batches before the hole.
            self.roll()?;
        }
        if self.recovery_point > self.next_offset {
            tracing::error!(
                dir = %self.dir.display(),
                recovery_point = self.recovery_point,
                next_offset = self.next_offset,
                "the disk lost data below the recovery point"
            );
            self.recovery.recovery_point_lost = Some((self.recovery_point, self.next_offset));
        }
        self.flush_recovered(now_ms)
    }

    /// Recovers `segment` from its last index entry below the recovery point; returns the offset
    /// it now ends at and what was cut.
    fn recover_segment(
        &mut self,
        segment: &mut Segment<D::File>,
        base: u64,
    ) -> Result<(u64, TailRecovery), LogError> {
        let start = segment.recovery_start(self.recovery_point);
        let file_bytes = segment.log_file().len()?;
        let interval = self.config.index_interval_bytes;
        let index_bytes = self.config.segment_index_bytes;
        let durable_below = self.recovery_point;
        let tail = segment.recover_tail(start, interval, index_bytes, durable_below)?;
        self.recovery.bytes_scanned += file_bytes.saturating_sub(start.0);
        if let Some(end) = tail.next_offset {
            return Ok((end, tail));
        }
        match segment.next_offset() {
            Ok(end) => Ok((end.unwrap_or(base), tail)),
            // Nothing valid from the recovery start on, and the trusted bytes before it do not
            // parse: the disk lost data below the recovery point. Scanning the whole segment cuts
            // the damage off, where failing the open would leave the partition unusable.
            Err(e) if start.0 > 0 => {
                tracing::warn!(
                    segment = %segment.path(LOG_SUFFIX).display(),
                    error = %e,
                    "damage below the recovery point; recovering the whole segment"
                );
                let retry = segment.recover_tail(
                    (0, First::Base(base)),
                    interval,
                    index_bytes,
                    durable_below,
                )?;
                self.recovery.bytes_scanned += start.0;
                let truncated = match (tail.truncated, retry.truncated) {
                    (Some((cut, _)), Some((more, stop))) => Some((cut + more, stop)),
                    (first, second) => second.or(first),
                };
                let end = retry.next_offset.unwrap_or(base);
                let next_offset = retry.next_offset;
                Ok((
                    end,
                    TailRecovery {
                        next_offset,
                        truncated,
                        damaged_durable: tail.damaged_durable || retry.damaged_durable,
                    },
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn remove_after_corruption(&mut self, base: u64) -> Result<(), LogError> {
        let segment = Segment::open_trusted(&self.disk, &self.dir, base)?;
        let bytes = segment.bytes();
        tracing::warn!(
            segment = %segment.path(LOG_SUFFIX).display(),
            bytes,
            "removing a segment that follows a corrupt one"
        );
        segment.delete(&self.disk)?;
        self.recovery.bytes_truncated += bytes;
        self.recovery.segments_removed += 1;
        Ok(())
    }

    /// Makes what recovery kept durable, so that the recovery point can move to the end.
    fn flush_recovered(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.recovery_point = self.recovery_point.min(self.next_offset);
        self.disk.sync_dir(&self.dir)?;
        self.flush(now_ms)
    }

    /// The active segment takes appends again; offsets and bookkeeping agree with the disk.
    fn finish_open(&mut self) -> Result<(), LogError> {
        let first_base = *self.segments.keys().next().expect("non-empty");
        self.log_start_offset = self.log_start_offset.max(first_base).min(self.next_offset);
        self.high_watermark = self.high_watermark.min(self.next_offset);
        let index_bytes = self.config.segment_index_bytes;
        self.active().make_active(index_bytes)?;
        Ok(())
    }
}

/// Base offsets of the `.log` files among `names`, ascending.
fn segment_bases(names: &[String]) -> Vec<u64> {
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|name| segment::parse_segment_name(name))
        .filter(|&(_, suffix)| suffix == LOG_SUFFIX)
        .map(|(base, _)| base)
        .collect();
    bases.sort_unstable();
    bases
}

/// Removes temporary files and indexes without a `.log`, then syncs the directory.
fn remove_leftovers<D: Disk>(disk: &D, dir: &Path, names: &[String]) -> io::Result<()> {
    let bases = segment_bases(names);
    let mut removed = false;
    for name in names {
        let orphan_index = segment::parse_segment_name(name).is_some_and(|(base, suffix)| {
            (suffix == INDEX_SUFFIX || suffix == TIME_INDEX_SUFFIX) && !bases.contains(&base)
        });
        let temporary = name.ends_with(".tmp") || name.ends_with(".cleaned");
        let ours = name == CHECKPOINT_FILE
            || name == CLEAN_SHUTDOWN_FILE
            || name == compaction::COMPACTED_MARKER_FILE;
        if (orphan_index || temporary) && !ours {
            tracing::info!(file = %dir.join(name).display(), "removing a leftover file");
            disk.remove(&dir.join(name))?;
            removed = true;
        }
    }
    if removed {
        disk.sync_dir(dir)?;
    }
    Ok(())
}
