//! Producer ids for InitProducerId, unique across restarts.
//!
//! Ids are handed out from blocks of `BLOCK_SIZE`. Before the first id of a block is given, the
//! block's end is written to `DATA/producer-ids` (temporary file, sync, rename, directory sync),
//! so after any crash the next start begins at a recorded end and never repeats an id. A crash
//! wastes at most the rest of one block. A file that fails its CRC is an error at start, because
//! starting over from 0 could hand out ids that are still in the logs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::io::write_atomically;
use crate::io::{Disk, File};

const FILE: &str = "producer-ids";
const MAGIC: &[u8; 8] = b"KEELPID1";
pub const BLOCK_SIZE: i64 = 1000;

pub struct ProducerIds {
    dir: PathBuf,
    /// (next id to give, end of the block recorded on disk)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Reads the recorded block end in `dir` (the data directory).
    ///
    /// # Errors
    /// IO errors, or a damaged file.
    pub fn open<D: Disk>(disk: &D, dir: &Path) -> io::Result<ProducerIds> {
        let path = dir.join(FILE);
        let recorded = if disk.exists(&path) {
            let file = disk.open(&path)?;
            let mut bytes = [0u8; 20];
            let mut recorded = None;
            // Bytes that read wrong are read again before the file is judged damaged.
            for _ in 0..crate::log::scan::READ_ATTEMPTS_MAX {
                file.read_exact_at(&mut bytes, 0)?;
                recorded = unseal(&bytes);
                if recorded.is_some() {
                    break;
                }
            }
            recorded.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged; keel will not guess which producer ids were given",
                        path.display()
                    ),
                )
            })?
        } else {
            0
        };
        Ok(ProducerIds {
            dir: dir.to_owned(),
            state: Mutex::new((recorded, recorded)),
        })
    }

    /// The next producer id.
    ///
    /// # Errors
    /// IO errors recording a new block; no id is given then.
    pub fn next<D: Disk>(&self, disk: &D) -> io::Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (next, end) = *state;
        if next >= end {
            let new_end = next + BLOCK_SIZE;
            self.record(disk, new_end)?;
            state.1 = new_end;
        }
        state.0 = next + 1;
        Ok(next)
    }

    fn record<D: Disk>(&self, disk: &D, end: i64) -> io::Result<()> {
        write_atomically(disk, &self.dir.join(FILE), &seal(end))
    }
}

fn seal(end: i64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&end.to_be_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..].copy_from_slice(&crc.to_be_bytes());
    out
}

fn unseal(bytes: &[u8; 20]) -> Option<i64> {
    let crc = u32::from_be_bytes(bytes[16..].try_into().ok()?);
    (&bytes[..8] == MAGIC && crc32c::crc32c(&bytes[..16]) == crc)
        .then(|| i64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let disk = MemDisk::new();
        let dir = Path::new("/data");
        disk.create_dir_all(dir).unwrap();
        let ids = ProducerIds::open(&disk, dir).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.next(&disk).unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        let again = ProducerIds::open(&disk, dir).unwrap();
        assert_eq!(again.next(&disk).unwrap(), BLOCK_SIZE);
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let disk = MemDisk::new();
        let dir = Path::new("/data");
        disk.create_dir_all(dir).unwrap();
        ProducerIds::open(&disk, dir).unwrap().next(&disk).unwrap();
        let file = disk.open(&dir.join(FILE)).unwrap();
        file.write_at(&[0xff], 10).unwrap();
        assert!(ProducerIds::open(&disk, dir).is_err());
    }
}
