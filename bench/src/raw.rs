//! The raw baseline: what the kernel alone costs to move a segment file over loopback TCP. A
//! sender thread sendfile(2)s the file (looping over it until the requested byte count is out)
//! and a receiver thread reads into a buffer and discards, as any consumer must at least read.
//! Each thread measures its own CPU time with RUSAGE_THREAD.

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::sendfile::sendfile;
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Largest single sendfile call; the kernel caps it near 2 GiB anyway, and smaller chunks keep
/// the loop's wrap-around at the end of the file simple.
const CHUNK: usize = 8 << 20;

pub struct Raw {
    pub wall: Duration,
    pub sender_cpu: f64,
    pub receiver_cpu: f64,
}

/// Sends `total` bytes of `segment` from one thread to another over 127.0.0.1.
pub fn run(segment: &Path, total: u64) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the baseline listener");
    let address = listener.local_addr().expect("baseline listener address");
    let receiver = thread::spawn(move || {
        let (stream, _) = listener
            .accept()
            .expect("accepting the baseline connection");
        receive(stream, total)
    });
    let file =
        File::open(segment).unwrap_or_else(|err| panic!("opening {}: {err}", segment.display()));
    let stream = TcpStream::connect(address).expect("connecting the baseline socket");
    let started = Instant::now();
    let sender = thread::spawn(move || send(&file, &stream, total));
    let sender_cpu = sender.join().expect("sendfile thread panicked");
    let receiver_cpu = receiver.join().expect("receiver thread panicked");
    Raw {
        wall: started.elapsed(),
        sender_cpu,
        receiver_cpu,
    }
}

/// The sendfile loop; returns this thread's CPU seconds.
fn send(file: &File, stream: &TcpStream, total: u64) -> f64 {
    let size = file.metadata().expect("segment metadata").len();
    assert!(size > 0, "the segment file is empty");
    let before = thread_cpu_seconds();
    let (mut sent, mut offset) = (0u64, 0i64);
    while sent < total {
        if offset as u64 == size {
            offset = 0;
        }
        let want = (total - sent).min(size - offset as u64).min(CHUNK as u64) as usize;
        let n = sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), want).expect("sendfile");
        assert!(n > 0, "sendfile sent nothing");
        sent += n as u64;
    }
    thread_cpu_seconds() - before
}

/// Reads and discards `total` bytes; returns this thread's CPU seconds.
fn receive(mut stream: TcpStream, total: u64) -> f64 {
    let before = thread_cpu_seconds();
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = 0u64;
    while received < total {
        let n = stream
            .read(&mut buffer)
            .expect("reading the baseline socket");
        assert!(
            n > 0,
            "baseline connection closed after {received} of {total} bytes"
        );
        received += n as u64;
    }
    thread_cpu_seconds() - before
}

fn thread_cpu_seconds() -> f64 {
    cpu_seconds(UsageWho::RUSAGE_THREAD)
}

/// This process's CPU seconds (all threads, librdkafka's included).
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds(UsageWho::RUSAGE_SELF)
}

fn cpu_seconds(who: UsageWho) -> f64 {
    let usage = getrusage(who).expect("getrusage");
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}
