//! The log on the real file system (`OsDisk`: pwrite, fdatasync, mmap'd indexes, directory
//! fsyncs), topics' files on it, and the `keel dump-log` / `keel check` commands on the
//! segments it writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use keel::broker::config::TopicOverrides;
use keel::broker::topics::{self, NewTopic, TOPICS_DIR, TOPIC_NAME_BYTES_MAX};
use keel::io::os::OsDisk;
use keel::log::batch::{BatchBuilder, NewRecord};
use keel::log::{FlushPolicy, Log, LogConfig};

/// A fresh directory under the system temp dir, unique per process and call, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("keel-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        segment_index_bytes: 8192,
        index_interval_bytes: 512,
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

fn write_log(dir: &Path, batches: usize) {
    let mut log = Log::open(OsDisk, dir, config(), 0).unwrap();
    for i in 0..batches {
        let records: Vec<NewRecord> = (0..4)
            .map(|j| NewRecord {
                timestamp: 1_000 + i as i64,
                key: Some(format!("key-{j}").into_bytes()),
                value: Some(vec![b'a' + (i % 26) as u8; 300]),
                headers: vec![(b"h".to_vec(), None)],
            })
            .collect();
        let mut bytes = BatchBuilder::default().build(&records).unwrap();
        log.append(&mut bytes, 0).unwrap();
        if log.flush_due(0) {
            log.flush(0).unwrap();
        }
    }
    log.close(0).unwrap();
}

fn keel(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("run keel");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_log_on_real_files_survives_reopen_with_and_without_a_clean_shutdown() {
    let tmp = TempDir::new("reopen");
    write_log(&tmp.0, 100);
    let mut log = Log::open(OsDisk, &tmp.0, config(), 0).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.next_offset(), 400);
    assert!(log.segment_count() > 5);
    let bytes = log.read_copy(123, 1 << 20, u64::MAX).unwrap();
    assert!(!bytes.is_empty());
    drop(log);
    let log = Log::open(OsDisk, &tmp.0, config(), 0).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(log.next_offset(), 400);
}

#[test]
fn keel_check_passes_a_sound_directory_and_names_damage() {
    let tmp = TempDir::new("check");
    let dir = tmp.0.join("topic-0");
    write_log(&dir, 60);
    let (code, out) = keel(&["check", tmp.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("240 records: 0 problems"), "{out}");

    let segment = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let (code, out) = keel(&["check", tmp.0.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("00000000000000000000.log: position "), "{out}");
}

#[test]
fn keel_dump_log_prints_batches_like_kafka_dump_log() {
    let tmp = TempDir::new("dump");
    write_log(&tmp.0, 10);
    let segment = tmp.0.join("00000000000000000000.log");
    let (code, out) = keel(&["dump-log", segment.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("baseOffset: 0 lastOffset: 3 count: 4"),
        "{out}"
    );
    assert!(out.contains("compresscodec: none"), "{out}");
    assert!(out.contains("isvalid: true"), "{out}");

    let mut bytes = std::fs::read(&segment).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 7);
    std::fs::write(&segment, bytes).unwrap();
    let (code, out) = keel(&["dump-log", segment.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Stopped at position"), "{out}");
}

/// The longest topic name Kafka accepts works on a real file system (whose limit on a file name
/// is 255 bytes): created, opened again, deleted, with nothing left behind.
#[test]
fn a_topic_with_the_longest_name_kafka_accepts_lives_on_real_files() {
    let tmp = TempDir::new("long-name");
    let name = "n".repeat(TOPIC_NAME_BYTES_MAX);
    let new = NewTopic {
        name: &name,
        id: [3; 16],
        partitions: 11,
        overrides: TopicOverrides::new(),
    };
    // As the broker opens its data directory (which makes `topics/`) before it creates.
    let none = topics::load_all(&OsDisk, &tmp.0, &config(), 0, 0).expect("empty");
    assert!(none.is_empty());
    let topic = topics::create(&OsDisk, &tmp.0, new, &config(), 0, 0).expect("created");
    let record = NewRecord {
        timestamp: 1_000,
        key: None,
        value: Some(b"a record".to_vec()),
        headers: vec![],
    };
    let mut bytes = BatchBuilder::default().build(&[record]).unwrap();
    let last = &topic.partitions[10];
    last.log()
        .as_mut()
        .expect("open")
        .append(&mut bytes, 0)
        .unwrap();
    last.close(0).unwrap();
    drop(topic);
    let loaded = topics::load_all(&OsDisk, &tmp.0, &config(), 0, 0).expect("loaded again");
    let topic = &loaded[&name];
    assert_eq!(topic.partitions.len(), 11);
    assert_eq!(
        topic.partitions[10].bounds().map(|b| b.log_end_offset),
        Some(1)
    );
    topics::delete(&OsDisk, &tmp.0, topic).expect("deleted");
    let left: Vec<_> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .chain(std::fs::read_dir(tmp.0.join(TOPICS_DIR)).unwrap())
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from(TOPICS_DIR)]);
}
