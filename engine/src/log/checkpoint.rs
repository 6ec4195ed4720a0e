//! The small metadata files of a log: the checkpoint (recovery point, log start offset, high
//! watermark) and the clean-shutdown marker.
//!
//! The checkpoint is written in place, alternately into one of two slots 4 KiB apart, each sealed
//! by a CRC-32C and a sequence number: a torn or lost write can damage only the slot being
//! written, and the other still holds the previous checkpoint. One `sync_data` makes it durable;
//! no rename and no directory sync are needed after the file exists. Reading takes the valid slot
//! with the highest sequence number; with no valid slot the log recovers from offset 0, which is
//! slow but safe.
//!
//! The clean-shutdown marker vouches that, at shutdown, every byte of the log was flushed. It
//! records the log end offset and the active segment's size, and `Log::open` trusts it only when
//! the checkpoint's recovery point equals that end offset and the segment still has that size;
//! the marker is removed (durably) before the log takes new appends, so it can never vouch for
//! data written after it.

use std::io;
use std::path::Path;

use crate::io::{Disk, File};

pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
const CHECKPOINT_MAGIC: &[u8; 8] = b"KEELCKP1";
const MARKER_MAGIC: &[u8; 8] = b"KEELCLN1";
const SLOT_BYTES: u64 = 4096;
const RECORD_BYTES: usize = 8 + 8 * 4 + 4;

/// What the checkpoint file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Every offset below this is durable (flushed, with its indexes).
    pub recovery_point: u64,
    pub log_start_offset: u64,
    pub high_watermark: u64,
}

fn seal(magic: &[u8; 8], fields: [u64; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_BYTES);
    out.extend_from_slice(magic);
    for field in fields {
        out.extend_from_slice(&field.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn unseal(magic: &[u8; 8], bytes: &[u8]) -> Option<[u64; 4]> {
    if bytes.len() < RECORD_BYTES || &bytes[..8] != magic {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[RECORD_BYTES - 4..RECORD_BYTES].try_into().ok()?);
    if crc32c::crc32c(&bytes[..RECORD_BYTES - 4]) != crc {
        return None;
    }
    let field = |i: usize| u64::from_be_bytes(bytes[8 + i * 8..16 + i * 8].try_into().expect("8"));
    Some([field(0), field(1), field(2), field(3)])
}

/// The checkpoint file of one log, open for rewriting.
pub struct CheckpointFile<F: File> {
    file: F,
    sequence: u64,
}

impl<F: File> CheckpointFile<F> {
    /// Opens (or creates, durably) the checkpoint of the log in `dir` and reads it.
    ///
    /// # Errors
    /// IO errors. A damaged file is not an error: it reads as the default checkpoint.
    pub fn open<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
    ) -> io::Result<(CheckpointFile<F>, Option<Checkpoint>)> {
        let path = dir.join(CHECKPOINT_FILE);
        if !disk.exists(&path) {
            let file = disk.create(&path)?;
            file.sync_data()?;
            disk.sync_dir(dir)?;
            return Ok((CheckpointFile { file, sequence: 0 }, None));
        }
        let file = disk.open(&path)?;
        let (sequence, checkpoint) = read_slots(&file)?;
        Ok((CheckpointFile { file, sequence }, checkpoint))
    }

    /// Writes and syncs a new checkpoint into the older slot.
    ///
    /// # Errors
    /// IO errors; the previous checkpoint is then still readable.
    pub fn write(&mut self, checkpoint: Checkpoint) -> io::Result<()> {
        let sequence = self.sequence + 1;
        let record = seal(
            CHECKPOINT_MAGIC,
            [
                sequence,
                checkpoint.recovery_point,
                checkpoint.log_start_offset,
                checkpoint.high_watermark,
            ],
        );
        self.file.write_at(&record, (sequence % 2) * SLOT_BYTES)?;
        self.file.sync_data()?;
        self.sequence = sequence;
        Ok(())
    }
}

fn read_slots<F: File>(file: &F) -> io::Result<(u64, Option<Checkpoint>)> {
    let mut slots = [[0u8; RECORD_BYTES]; 2];
    let mut lengths = [0; 2];
    for (slot, bytes) in slots.iter_mut().enumerate() {
        // A slot that fails its CRC is read again before it is given up: a transient misread
        // of both slots would otherwise send recovery back to the log's start, where damage
        // to flushed bytes looks like a torn tail.
        for _ in 0..crate::log::scan::READ_ATTEMPTS_MAX {
            lengths[slot] = file.read_at(bytes, slot as u64 * SLOT_BYTES)?;
            if unseal(CHECKPOINT_MAGIC, &bytes[..lengths[slot]]).is_some() {
                break;
            }
        }
    }
    Ok(newest(&slots[0][..lengths[0]], &slots[1][..lengths[1]]))
}

/// The checkpoint a checkpoint file's bytes hold (the newer of its sealed slots), if any: what
/// the simulator reads off the platter to learn what the log claims is durable.
pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
    let slot = |i: u64| {
        let start = (i * SLOT_BYTES) as usize;
        bytes
            .get(start..bytes.len().min(start + RECORD_BYTES))
            .unwrap_or_default()
    };
    newest(slot(0), slot(1)).1
}

fn newest(slot0: &[u8], slot1: &[u8]) -> (u64, Option<Checkpoint>) {
    let mut best: Option<[u64; 4]> = None;
    for (slot, bytes) in [slot0, slot1].into_iter().enumerate() {
        let Some(fields) = unseal(CHECKPOINT_MAGIC, bytes) else {
            continue;
        };
        if fields[0] % 2 == slot as u64 && best.is_none_or(|b| fields[0] > b[0]) {
            best = Some(fields);
        }
    }
    match best {
        None => (0, None),
        Some([sequence, recovery_point, log_start_offset, high_watermark]) => (
            sequence,
            Some(Checkpoint {
                recovery_point,
                log_start_offset,
                high_watermark,
            }),
        ),
    }
}

/// What a clean-shutdown marker vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanShutdown {
    pub next_offset: u64,
    pub active_base_offset: u64,
    pub active_bytes: u64,
}

/// Writes the marker durably (temporary file, sync, rename, directory sync). Call it only after
/// the flush it vouches for.
///
/// # Errors
/// IO errors; a half-written marker is never at the final name.
pub fn write_clean_shutdown<D: Disk>(
    disk: &D,
    dir: &Path,
    marker: CleanShutdown,
) -> io::Result<()> {
    let tmp = dir.join(format!("{CLEAN_SHUTDOWN_FILE}.tmp"));
    if disk.exists(&tmp) {
        disk.remove(&tmp)?;
    }
    let file = disk.create(&tmp)?;
    let record = seal(
        MARKER_MAGIC,
        [
            marker.next_offset,
            marker.active_base_offset,
            marker.active_bytes,
            0,
        ],
    );
    file.write_at(&record, 0)?;
    file.sync_data()?;
    disk.rename(&tmp, &dir.join(CLEAN_SHUTDOWN_FILE))?;
    disk.sync_dir(dir)
}

/// Reads and durably removes the marker. `None` when there is none or it is damaged.
///
/// # Errors
/// IO errors while reading or removing it.
pub fn take_clean_shutdown<D: Disk>(disk: &D, dir: &Path) -> io::Result<Option<CleanShutdown>> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk.open(&path)?;
    let mut bytes = [0u8; RECORD_BYTES];
    let n = file.read_at(&mut bytes, 0)?;
    let marker = unseal(MARKER_MAGIC, &bytes[..n]).map(|f| CleanShutdown {
        next_offset: f[0],
        active_base_offset: f[1],
        active_bytes: f[2],
    });
    drop(file);
    disk.remove(&path)?;
    disk.sync_dir(dir)?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let disk = MemDisk::new();
        let dir = Path::new("/log");
        disk.create_dir_all(dir).unwrap();
        let (mut file, initial) = CheckpointFile::open(&disk, dir).unwrap();
        assert_eq!(initial, None);
        for recovery_point in [10, 20, 30] {
            file.write(Checkpoint {
                recovery_point,
                ..Checkpoint::default()
            })
            .unwrap();
        }
        let (_, read) = CheckpointFile::open(&disk, dir).unwrap();
        assert_eq!(read.unwrap().recovery_point, 30);
        // Tear the newest slot (sequence 3 lives in slot 1).
        let path = dir.join(CHECKPOINT_FILE);
        let mut bytes = disk.file_bytes(&path).unwrap();
        bytes[SLOT_BYTES as usize + 20] ^= 0xff;
        disk.set_file_bytes(&path, bytes);
        let (mut file, read) = CheckpointFile::open(&disk, dir).unwrap();
        assert_eq!(read.unwrap().recovery_point, 20);
        // The next write goes to the damaged slot, not over the survivor.
        file.write(Checkpoint {
            recovery_point: 40,
            ..Checkpoint::default()
        })
        .unwrap();
        let (_, read) = CheckpointFile::open(&disk, dir).unwrap();
        assert_eq!(read.unwrap().recovery_point, 40);
    }

    /// Both slots reading wrong once (transient rot) must not lose the checkpoint: recovery
    /// would go back to the log's start, where damage to flushed bytes looks like a torn tail.
    #[test]
    fn slots_that_read_wrong_once_are_read_again() {
        let disk = MemDisk::new();
        let dir = Path::new("/log");
        disk.create_dir_all(dir).unwrap();
        let (mut file, _) = CheckpointFile::open(&disk, dir).unwrap();
        for recovery_point in [10, 20] {
            file.write(Checkpoint {
                recovery_point,
                ..Checkpoint::default()
            })
            .unwrap();
        }
        drop(file);
        let file = disk.open(&dir.join(CHECKPOINT_FILE)).unwrap();
        // Two reads come back with their last byte (in the CRC) flipped: read once each, both
        // slots would be lost.
        disk.rot_reads(2);
        let (_, read) = read_slots(&file).unwrap();
        assert_eq!(
            read.map(|c| c.recovery_point),
            Some(20),
            "read again, not given up"
        );
        assert_eq!(disk.rotten_reads_left(), 0);
    }

    #[test]
    fn the_marker_is_read_once() {
        let disk = MemDisk::new();
        let dir = Path::new("/log");
        disk.create_dir_all(dir).unwrap();
        let marker = CleanShutdown {
            next_offset: 5,
            active_base_offset: 0,
            active_bytes: 500,
        };
        write_clean_shutdown(&disk, dir, marker).unwrap();
        assert_eq!(take_clean_shutdown(&disk, dir).unwrap(), Some(marker));
        assert_eq!(take_clean_shutdown(&disk, dir).unwrap(), None);
    }
}
