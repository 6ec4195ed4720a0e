//! A consumer that speaks Fetch v4 by hand and does not parse records: it reads each response
//! into one reused buffer and walks only the batch headers (to know the next offset). It measures
//! what the broker can serve, without a client library's per-message work, which is what the raw
//! sendfile baseline is compared with. One request at a time, 16 MiB per fetch, as librdkafka is
//! configured in `kafka::consume`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FETCH_BYTES: i32 = 16 << 20;

/// Fetches partition 0 of `topic` from offset 0 until `end`; the bytes of record batches read.
pub fn consume(address: &str, topic: &str, end: u64) -> (Duration, u64) {
    let mut stream = TcpStream::connect(address).expect("connecting to keel");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let started = Instant::now();
    let mut offset = 0u64;
    let mut batch_bytes = 0u64;
    let mut buffer = Vec::new();
    let mut correlation = 0;
    while offset < end {
        correlation += 1;
        stream
            .write_all(&fetch_request(topic, offset, correlation))
            .expect("sending a fetch");
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("a fetch response");
        buffer.resize(i32::from_be_bytes(size) as usize, 0);
        stream
            .read_exact(&mut buffer)
            .expect("a fetch response body");
        let records = records_of(&buffer, correlation);
        let (next, bytes) = walk_batches(records);
        assert!(next > offset, "fetch at {offset} made no progress");
        offset = next;
        batch_bytes += bytes;
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

/// The records of the one partition of a Fetch v4 response.
fn records_of(response: &[u8], correlation: i32) -> &[u8] {
    assert_eq!(i32_at(response, 0), correlation, "correlation id");
    // correlation, throttle, topic count, topic name
    let mut at = 4 + 4 + 4;
    at += 2 + i16_at(response, at) as usize;
    at += 4; // partition count
    at += 4; // partition index
    let error = i16_at(response, at);
    assert_eq!(error, 0, "fetch error code");
    at += 2 + 8 + 8; // error, high watermark, last stable offset
    let aborted = i32_at(response, at);
    at += 4 + aborted.max(0) as usize * 16;
    let len = i32_at(response, at).max(0) as usize;
    at += 4;
    &response[at..at + len]
}

/// The offset after the last whole batch in `records`, and the bytes of those batches.
fn walk_batches(records: &[u8]) -> (u64, u64) {
    let (mut at, mut next) = (0, 0);
    while at + 27 <= records.len() {
        let length = i32_at(records, at + 8) as usize + 12;
        if at + length > records.len() {
            break;
        }
        let last = i64_at(records, at) + i64::from(i32_at(records, at + 23));
        next = last as u64 + 1;
        at += length;
    }
    (next, at as u64)
}
