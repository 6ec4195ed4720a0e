//! A consumer that speaks Fetch v4 by hand and does not parse records: it reads each response
//! into one reused buffer and walks only the batch headers (to know the next offset). It measures
//! what the broker can serve, without a client library's per-message work, which is what the raw
//! sendfile baseline is compared with. One request at a time, 16 MiB per fetch, as librdkafka is
//! configured in `kafka::consume`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FETCH_BYTES: i32 = 16 << 20;

/// Size of the buffer responses are read through: the raw baseline's receiver reads through one
/// of the same size, so both pay the same copy into memory that stays in cache.
const READ_BYTES: usize = 1 << 20;

/// Fetches partition 0 of `topic` from offset 0 until `end`; the bytes of record batches read.
pub fn consume(address: &str, topic: &str, end: u64) -> (Duration, u64) {
    let mut stream = TcpStream::connect(address).expect("connecting to keel");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let started = Instant::now();
    let mut offset = 0u64;
    let mut batch_bytes = 0u64;
    let mut buffer = vec![0u8; READ_BYTES];
    let mut correlation = 0;
    while offset < end {
        correlation += 1;
        stream
            .write_all(&fetch_request(topic, offset, correlation))
            .expect("sending a fetch");
        let records = read_header(&mut stream, correlation);
        let mut walker = BatchWalker::new(records);
        let mut left = records;
        while left > 0 {
            let want = left.min(READ_BYTES as u64) as usize;
            let n = stream
                .read(&mut buffer[..want])
                .expect("reading a fetch response");
            assert!(n > 0, "keel closed the connection inside a fetch response");
            walker.feed(&buffer[..n]);
            left -= n as u64;
        }
        let next = walker
            .next_offset
            .expect("a fetch response without a whole batch");
        assert!(next > offset, "fetch at {offset} made no progress");
        offset = next;
        batch_bytes += walker.whole_bytes;
    }
    (started.elapsed(), batch_bytes)
}

fn fetch_request(topic: &str, offset: u64, correlation: i32) -> Vec<u8> {
    let mut r = Vec::with_capacity(64 + topic.len());
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(&1i16.to_be_bytes()); // Fetch
    r.extend_from_slice(&4i16.to_be_bytes()); // v4
    r.extend_from_slice(&correlation.to_be_bytes());
    r.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    r.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    r.extend_from_slice(&500i32.to_be_bytes()); // max wait ms
    r.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    r.extend_from_slice(&FETCH_BYTES.to_be_bytes()); // max bytes
    r.push(0); // isolation level
    r.extend_from_slice(&1i32.to_be_bytes()); // one topic
    r.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    r.extend_from_slice(topic.as_bytes());
    r.extend_from_slice(&1i32.to_be_bytes()); // one partition
    r.extend_from_slice(&0i32.to_be_bytes());
    r.extend_from_slice(&(offset as i64).to_be_bytes());
    r.extend_from_slice(&FETCH_BYTES.to_be_bytes());
    let size = (r.len() - 4) as i32;
    r[..4].copy_from_slice(&size.to_be_bytes());
    r
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads a Fetch v4 response up to the records of its one partition; their length.
fn read_header(stream: &mut TcpStream, correlation: i32) -> u64 {
    let mut read = |n: usize| {
        let mut bytes = vec![0u8; n];
        stream
            .read_exact(&mut bytes)
            .expect("a fetch response header");
        bytes
    };
    let size = i32_at(&read(4), 0);
    assert!(size > 0, "fetch response size {size}");
    // correlation, throttle, topic count, topic name length
    let fixed = read(4 + 4 + 4 + 2);
    assert_eq!(i32_at(&fixed, 0), correlation, "correlation id");
    let name = i16_at(&fixed, 12).max(0) as usize;
    // topic name, partition count, partition index, error, high watermark, last stable offset,
    // aborted transaction count
    let partition = read(name + 4 + 4 + 2 + 8 + 8 + 4);
    let error = i16_at(&partition, name + 8);
    assert_eq!(error, 0, "fetch error code");
    let aborted = i32_at(&partition, name + 8 + 2 + 16).max(0) as usize;
    let records = i32_at(&read(aborted * 16 + 4), aborted * 16);
    records.max(0) as u64
}

/// Walks the batch headers of a record set that arrives in pieces, keeping the offset after the
/// last whole batch. A batch cut off by the end of the record set does not count.
struct BatchWalker {
    /// Length of the record set.
    total: u64,
    /// Bytes of the record set seen so far.
    seen: u64,
    /// Where in the record set the next batch header starts.
    next_batch: u64,
    /// The start of a header split across two pieces.
    partial: Vec<u8>,
    next_offset: Option<u64>,
    whole_bytes: u64,
}

/// Bytes of a batch header up to and including its last offset delta.
const HEADER_BYTES: usize = 27;

impl BatchWalker {
    fn new(total: u64) -> Self {
        BatchWalker {
            total,
            seen: 0,
            next_batch: 0,
            partial: Vec::with_capacity(HEADER_BYTES),
            next_offset: None,
            whole_bytes: 0,
        }
    }

    fn feed(&mut self, piece: &[u8]) {
        let start = self.seen;
        self.seen += piece.len() as u64;
        if !self.partial.is_empty() {
            // The rest of a header begun in an earlier piece starts this one.
            let take = (HEADER_BYTES - self.partial.len()).min(piece.len());
            self.partial.extend_from_slice(&piece[..take]);
            if self.partial.len() < HEADER_BYTES {
                return;
            }
            let header = std::mem::take(&mut self.partial);
            self.header(&header);
        }
        while self.next_batch < self.seen {
            let at = (self.next_batch - start) as usize;
            match piece.get(at..at + HEADER_BYTES) {
                Some(header) => {
                    let header: [u8; HEADER_BYTES] = header.try_into().expect("header bytes");
                    self.header(&header);
                }
                None => {
                    self.partial.extend_from_slice(&piece[at..]);
                    return;
                }
            }
        }
    }

    /// Takes the header of the batch at `next_batch` and moves past that batch.
    fn header(&mut self, header: &[u8]) {
        let length = i32_at(header, 8);
        assert!(length >= 49, "batch length {length}");
        let length = length as u64 + 12;
        let end = self.next_batch + length;
        if end <= self.total {
            let last = i64_at(header, 0) + i64::from(i32_at(header, 23));
            self.next_offset = Some(last as u64 + 1);
            self.whole_bytes = end;
        }
        self.next_batch = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record set of batches with the given record counts and lengths, the last one cut short
    /// by `cut` bytes.
    fn record_set(batches: &[(i32, usize)], cut: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut offset = 100i64;
        for &(count, length) in batches {
            let mut batch = vec![0u8; length];
            batch[..8].copy_from_slice(&offset.to_be_bytes());
            batch[8..12].copy_from_slice(&((length - 12) as i32).to_be_bytes());
            batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
            bytes.extend_from_slice(&batch);
            offset += i64::from(count);
        }
        bytes.truncate(bytes.len() - cut);
        bytes
    }

    #[test]
    fn batches_are_walked_whatever_the_pieces() {
        let batches = [(3, 100), (1, 61), (10, 4000), (2, 70), (5, 300)];
        for (cut, next, whole) in [(0, 121, 4531), (1, 116, 4231), (250, 116, 4231)] {
            let bytes = record_set(&batches, cut);
            for piece in [1, 2, 26, 27, 28, 61, 99, 1000, bytes.len()] {
                let mut walker = BatchWalker::new(bytes.len() as u64);
                for chunk in bytes.chunks(piece) {
                    walker.feed(chunk);
                }
                assert_eq!(
                    walker.next_offset,
                    Some(next),
                    "cut {cut}, pieces of {piece}"
                );
                assert_eq!(walker.whole_bytes, whole, "cut {cut}, pieces of {piece}");
            }
        }
    }
}
