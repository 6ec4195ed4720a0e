//! `cargo xtask bench engine`: the log's append path against the machine's own limit, and
//! recovery time against log size.
//!
//! 1. Append 1 KiB records in 16 KiB batches to a fresh log (flush none), then write the same
//!    number of bytes with plain sequential pwrite in 16 KiB writes; print both rates and their
//!    ratio (target: >= 0.9).
//! 2. For logs of each size given, flushed but for a small tail, drop the log without closing it
//!    (an unclean stop) and time the reopen; recovery should cost the same whatever the size.
//!
//! Arguments: `--append-mib N` (default 1024), `--recovery-gib A,B` (default 1,8),
//! `--dir PATH` (default target/bench-engine).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use keel::io::os::OsDisk;
use keel::log::batch::{BatchBuilder, NewRecord};
use keel::log::{FlushPolicy, Log, LogConfig};

const RECORD_BYTES: usize = 1024;
const BATCH_BYTES: usize = 16 * 1024;
const TAIL_BYTES: u64 = 4 * 1024 * 1024;

struct Args {
    /// `log` or `raw`: run only that side of the append comparison (for profiling).
    only: Option<String>,
    append_mib: u64,
    recovery_gib: Vec<u64>,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        only: None,
        append_mib: 1024,
        recovery_gib: vec![1, 8],
        dir: PathBuf::from("target/bench-engine"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--append-mib" => args.append_mib = value.parse().expect("--append-mib N"),
            "--recovery-gib" => {
                args.recovery_gib = value
                    .split(',')
                    .map(|v| v.parse().expect("--recovery-gib A,B"))
                    .collect()
            }
            "--dir" => args.dir = PathBuf::from(value),
            "--only" => args.only = Some(value),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One producer batch: 16 records of 1 KiB (key, value and framing included, about 16 KiB).
fn batch_template() -> Vec<u8> {
    let value_bytes = RECORD_BYTES - 24;
    let records: Vec<NewRecord> = (0..BATCH_BYTES / RECORD_BYTES)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(format!("key-{i:08}").into_bytes()),
            value: Some(vec![b'v'; value_bytes]),
            headers: vec![],
        })
        .collect();
    BatchBuilder::default().build(&records).expect("build")
}

fn fresh_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).expect("create bench dir");
}

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Appends batches until `bytes` are written; returns the seconds taken.
fn append_log(dir: &Path, bytes: u64, template: &[u8]) -> (Log<OsDisk>, f64) {
    let mut log = Log::open(OsDisk, dir, config(), 0).expect("open");
    // The same buffer is appended again and again: append rewrites only the base offset, which
    // lies outside the CRC, so the batch stays valid without a copy per iteration.
    let mut batch = template.to_vec();
    let start = Instant::now();
    let mut written = 0;
    while written < bytes {
        log.append(&mut batch, 1_700_000_000_000).expect("append");
        written += batch.len() as u64;
    }
    (log, start.elapsed().as_secs_f64())
}

fn pwrite_file(path: &Path, bytes: u64, template: &[u8]) -> f64 {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .expect("open raw file");
    let start = Instant::now();
    let mut position = 0;
    while position < bytes {
        file.write_all_at(template, position).expect("pwrite");
        position += template.len() as u64;
    }
    start.elapsed().as_secs_f64()
}

fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

/// Rounds of each side, alternating, best kept: the page cache's state drifts between runs.
const ROUNDS: usize = 3;

fn bench_append(args: &Args, template: &[u8]) {
    let bytes = args.append_mib * 1024 * 1024;
    let (mut log_s, mut raw_s) = (f64::MAX, f64::MAX);
    let run = |side: &str| args.only.as_deref().is_none_or(|only| only == side);
    for _ in 0..ROUNDS {
        if !run("raw") {
            raw_s = 1.0;
        } else {
            let raw_dir = args.dir.join("append-raw");
            fresh_dir(&raw_dir);
            raw_s = raw_s.min(pwrite_file(&raw_dir.join("raw"), bytes, template));
            fresh_dir(&raw_dir);
        }
        if !run("log") {
            log_s = 1.0;
            continue;
        }
        let log_dir = args.dir.join("append-log");
        fresh_dir(&log_dir);
        let (log, seconds) = append_log(&log_dir, bytes, template);
        log_s = log_s.min(seconds);
        drop(log);
        fresh_dir(&log_dir);
    }
    let log_rate = mib_per_s(bytes, log_s);
    let raw_rate = mib_per_s(bytes, raw_s);
    println!(
        "append {} MiB, 1 KiB records in 16 KiB batches, flush none (best of {ROUNDS})",
        args.append_mib
    );
    println!("  keel log append : {log_rate:8.0} MiB/s ({log_s:.3} s)");
    println!("  raw pwrite      : {raw_rate:8.0} MiB/s ({raw_s:.3} s)");
    println!(
        "  ratio           : {:.2} (target >= 0.90)",
        log_rate / raw_rate
    );
}

fn bench_recovery(args: &Args, template: &[u8]) {
    println!(
        "recovery after an unclean stop with a {} MiB unflushed tail",
        TAIL_BYTES >> 20
    );
    for &gib in &args.recovery_gib {
        let dir = args.dir.join(format!("recovery-{gib}g"));
        fresh_dir(&dir);
        let (mut log, _) = append_log(&dir, gib << 30, template);
        log.flush(0).expect("flush");
        let mut batch = template.to_vec();
        let mut tail = 0;
        while tail < TAIL_BYTES {
            log.append(&mut batch, 1_700_000_000_000).expect("append");
            tail += batch.len() as u64;
        }
        let size = log.size_bytes();
        drop(log);
        let start = Instant::now();
        let log = Log::open(OsDisk, &dir, config(), 0).expect("reopen");
        let seconds = start.elapsed().as_secs_f64();
        let report = log.recovery_report().clone();
        println!(
            "  {gib:3} GiB log ({size} bytes, {} segments): reopen {:.1} ms, scanned {} bytes",
            log.segment_count(),
            seconds * 1000.0,
            report.bytes_scanned
        );
        drop(log);
        fresh_dir(&dir);
    }
}

fn main() {
    let args = parse_args();
    let template = batch_template();
    bench_append(&args, &template);
    bench_recovery(&args, &template);
    let _ = std::fs::remove_dir_all(&args.dir);
}
