//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment, in Kafka's format.
//!
//! Both are arrays of fixed-size big-endian entries in a memory-mapped file:
//! - offset index: (relative offset u32, position u32): the last offset of a batch and the file
//!   position where that batch starts;
//! - time index: (timestamp i64, relative offset u32): the largest timestamp seen so far in the
//!   segment and the offset that carries it.
//!
//! The file of the active segment is preallocated to `index_bytes_max` and mapped whole; on roll it
//! is trimmed to its entries, as Kafka does. An index is a hint, never the truth: entries are only
//! trusted while they strictly increase and point inside the segment (`valid_prefix`), and the
//! segment reader checks the batch it lands on. A damaged index is rebuilt from the log.

use std::io;

use crate::io::{File, Mapping};

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

/// One entry, decoded. For the offset index `key` is the relative offset and `value` the
/// position; for the time index `key` is the timestamp and `value` the relative offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: i64,
    pub value: u32,
}

/// Which of the two index formats a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Offset,
    Time,
}

impl IndexKind {
    pub fn entry_bytes(self) -> usize {
        match self {
            IndexKind::Offset => OFFSET_ENTRY_BYTES,
            IndexKind::Time => TIME_ENTRY_BYTES,
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Entry {
        match self {
            IndexKind::Offset => Entry {
                key: i64::from(u32::from_be_bytes(bytes[0..4].try_into().expect("4"))),
                value: u32::from_be_bytes(bytes[4..8].try_into().expect("4")),
            },
            IndexKind::Time => Entry {
                key: i64::from_be_bytes(bytes[0..8].try_into().expect("8")),
                value: u32::from_be_bytes(bytes[8..12].try_into().expect("4")),
            },
        }
    }

    fn encode(self, entry: Entry) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entry_bytes());
        match self {
            IndexKind::Offset => out.extend_from_slice(&(entry.key as u32).to_be_bytes()),
            IndexKind::Time => out.extend_from_slice(&entry.key.to_be_bytes()),
        }
        out.extend_from_slice(&entry.value.to_be_bytes());
        out
    }
}

/// The longest prefix of `entries` that a correct writer could have produced for a segment of
/// `segment_bytes` bytes: strictly increasing keys, and for the offset index strictly increasing
/// positions inside the segment (never 0: the first batch of a segment is never indexed); for the
/// time index, non-decreasing offsets. A zero-filled tail (preallocation, or pages lost in a
/// crash) ends the prefix.
pub fn valid_prefix(kind: IndexKind, bytes: &[u8], segment_bytes: u64) -> usize {
    let mut previous: Option<Entry> = None;
    let mut count = 0;
    for chunk in bytes.chunks_exact(kind.entry_bytes()) {
        let entry = kind.decode(chunk);
        let ok = match (kind, previous) {
            (IndexKind::Offset, None) => entry.value > 0 && u64::from(entry.value) < segment_bytes,
            (IndexKind::Offset, Some(p)) => {
                entry.key > p.key && entry.value > p.value && u64::from(entry.value) < segment_bytes
            }
            (IndexKind::Time, None) => entry != Entry { key: 0, value: 0 },
            (IndexKind::Time, Some(p)) => entry.key > p.key && entry.value >= p.value,
        };
        if !ok {
            break;
        }
        previous = Some(entry);
        count += 1;
    }
    count
}

/// An index file with its mapping and the number of entries in use.
pub struct IndexFile<F: File> {
    kind: IndexKind,
    file: F,
    map: F::Mapping,
    entries: usize,
}

impl<F: File> IndexFile<F> {
    /// Maps `file` for appends: it is grown to `bytes_max` (preallocation) and the first
    /// `entries` entries are kept.
    ///
    /// # Errors
    /// IO errors while growing or mapping the file.
    pub fn open_mutable(
        kind: IndexKind,
        file: F,
        entries: usize,
        bytes_max: usize,
    ) -> io::Result<IndexFile<F>> {
        let bytes = bytes_max - bytes_max % kind.entry_bytes();
        debug_assert!(entries * kind.entry_bytes() <= bytes);
        let old_bytes = file.len()?;
        file.set_len(bytes as u64)?;
        let map = file.map(bytes as u64)?;
        let mut index = IndexFile {
            kind,
            file,
            map,
            entries,
        };
        index.zero_tail(old_bytes as usize);
        Ok(index)
    }

    /// Maps a closed segment's index as it is, entries = its length in entries.
    ///
    /// # Errors
    /// IO errors while mapping.
    pub fn open_immutable(kind: IndexKind, file: F) -> io::Result<IndexFile<F>> {
        let len = file.len()?;
        let len = len - len % kind.entry_bytes() as u64;
        let map = file.map(len)?;
        let entries = len as usize / kind.entry_bytes();
        Ok(IndexFile {
            kind,
            file,
            map,
            entries,
        })
    }

    /// Stale entries past `entries` must read as zero, so that a later scan for the valid prefix
    /// stops at the right place. Only the first `written_bytes` of the file can hold anything
    /// but zeros (the rest was just grown by `set_len`), so only they are looked at: touching a
    /// fresh 10 MiB preallocation would cost a page fault per page.
    fn zero_tail(&mut self, written_bytes: usize) {
        let start = self.entries * self.kind.entry_bytes();
        let end = self.map.bytes().len().min(written_bytes);
        if start >= end {
            return;
        }
        if self.map.bytes()[start..end].iter().any(|&b| b != 0) {
            let zeros = vec![0u8; end - start];
            self.map.write(start, &zeros);
        }
    }

    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn is_full(&self) -> bool {
        (self.entries + 1) * self.kind.entry_bytes() > self.map.bytes().len()
    }

    /// The mapped bytes, entries and preallocated tail alike.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    pub fn entry(&self, i: usize) -> Entry {
        let size = self.kind.entry_bytes();
        self.kind
            .decode(&self.map.bytes()[i * size..(i + 1) * size])
    }

    pub fn last(&self) -> Option<Entry> {
        self.entries.checked_sub(1).map(|i| self.entry(i))
    }

    /// Appends an entry; `false` when the index is full (the caller rolls the segment).
    pub fn append(&mut self, entry: Entry) -> bool {
        if self.is_full() {
            return false;
        }
        let bytes = self.kind.encode(entry);
        self.map
            .write(self.entries * self.kind.entry_bytes(), &bytes);
        self.entries += 1;
        true
    }

    /// The last entry whose key is at most `key` (binary search).
    pub fn floor(&self, key: i64) -> Option<Entry> {
        let (mut low, mut high) = (0, self.entries);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.entry(mid).key <= key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low.checked_sub(1).map(|i| self.entry(i))
    }

    /// Forgets entries from `entries` on (truncation), zeroing them in the file.
    pub fn truncate_entries(&mut self, entries: usize) {
        if entries < self.entries {
            let written_bytes = self.entries * self.kind.entry_bytes();
            self.entries = entries;
            self.zero_tail(written_bytes);
        }
    }

    /// Makes the entries durable.
    ///
    /// # Errors
    /// IO errors of msync.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()?;
        self.file.sync_data()
    }

    /// Trims the file to its entries and maps it again (on roll and clean close).
    ///
    /// # Errors
    /// IO errors while trimming or mapping.
    pub fn trim(&mut self) -> io::Result<()> {
        self.map.flush()?;
        let bytes = (self.entries * self.kind.entry_bytes()) as u64;
        self.file.set_len(bytes)?;
        // The old mapping is dropped only after the new one exists; nothing reads it past the
        // new end in between.
        self.map = self.file.map(bytes)?;
        Ok(())
    }

    /// Grows the file to `bytes_max` and keeps its first `entries` entries, so it takes appends
    /// again (the active segment after a restart, or a rebuild from scratch).
    ///
    /// # Errors
    /// IO errors while growing or mapping.
    pub fn make_mutable(&mut self, entries: usize, bytes_max: usize) -> io::Result<()> {
        let bytes = bytes_max - bytes_max % self.kind.entry_bytes();
        let entries = entries.min(bytes / self.kind.entry_bytes());
        if self.map.bytes().len() == bytes {
            // Already preallocated and mapped: only the entry count changes.
            self.truncate_entries(entries);
            self.entries = entries;
            return Ok(());
        }
        let old_bytes = self.file.len()? as usize;
        self.file.set_len(bytes as u64)?;
        self.map = self.file.map(bytes as u64)?;
        self.entries = entries;
        self.zero_tail(old_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use crate::io::Disk;
    use std::path::Path;

    fn offset_index(entries: &[(i64, u32)]) -> IndexFile<crate::io::mem::MemFile> {
        let disk = MemDisk::new();
        let file = disk.create(Path::new("/i")).unwrap();
        let mut index = IndexFile::open_mutable(IndexKind::Offset, file, 0, 800).unwrap();
        for &(key, value) in entries {
            assert!(index.append(Entry { key, value }));
        }
        index
    }

    #[test]
    fn floor_finds_the_last_entry_at_or_below() {
        let index = offset_index(&[(10, 100), (20, 200), (30, 300)]);
        let cases = [(5, None), (10, Some(100)), (25, Some(200)), (99, Some(300))];
        for (key, expected) in cases {
            assert_eq!(index.floor(key).map(|e| e.value), expected, "key {key}");
        }
    }

    #[test]
    fn a_full_index_refuses_appends() {
        let mut index = offset_index(&[]);
        for i in 0..100 {
            assert!(index.append(Entry {
                key: i,
                value: i as u32 + 1
            }));
        }
        assert!(!index.append(Entry {
            key: 100,
            value: 101
        }));
    }

    #[test]
    fn valid_prefix_stops_at_zeros_and_disorder() {
        let index = offset_index(&[(10, 100), (20, 200), (30, 300)]);
        assert_eq!(valid_prefix(IndexKind::Offset, index.bytes(), 1000), 3);
        assert_eq!(valid_prefix(IndexKind::Offset, index.bytes(), 250), 2);
        let disorder = offset_index(&[(10, 100), (5, 200)]);
        assert_eq!(valid_prefix(IndexKind::Offset, disorder.bytes(), 1000), 1);
    }

    #[test]
    fn trim_then_reopen_keeps_entries() {
        let index = offset_index(&[(10, 100), (20, 200)]);
        let mut index = index;
        index.trim().unwrap();
        assert_eq!(index.bytes().len(), 16);
        index.make_mutable(2, 800).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.bytes().len(), 800);
        assert_eq!(
            index.last(),
            Some(Entry {
                key: 20,
                value: 200
            })
        );
    }
}
