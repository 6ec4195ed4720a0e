//! keel-bench: keel end to end under librdkafka, next to the floor the kernel sets. It starts the
//! release broker, produces N bytes of 1 KiB messages to two 1-partition topics (compression none
//! and lz4), consumes both from the beginning with librdkafka, fetches the uncompressed one again
//! with a hand-written Fetch loop that does not parse records, alternating with sendfile(2) of
//! one of keel's own segment files over loopback as the raw baseline (nine runs of each: the
//! median throughput and the mean CPU reported), and prints throughput and CPU per GB for each
//! phase.
//! Run through `cargo xtask bench broker [--bytes N]`, which builds keel and passes `--keel`.

mod broker;
mod kafka;
mod raw;
mod report;
mod wire;

use broker::Broker;
use report::Phase;
use std::path::{Path, PathBuf};
use std::time::Duration;

const USAGE: &str = "usage: keel-bench --keel PATH [--data-dir DIR] [--bytes N[K|M|G|KiB|MiB|GiB]]";

struct Args {
    keel: PathBuf,
    data_dir: PathBuf,
    bytes: u64,
}

fn main() {
    let args = parse_args();
    let count = args.bytes.div_ceil(kafka::MESSAGE_BYTES as u64);
    let broker = Broker::start(&args.keel, &args.data_dir);
    let codecs = ["none", "lz4"];
    let mut phases = Vec::new();
    for codec in codecs {
        let topic = topic(codec);
        kafka::create_topic(&broker.address, &topic);
        phases.push(measure(&broker, &format!("produce {codec}"), count, || {
            (kafka::produce(&broker.address, &topic, codec, count), None)
        }));
    }
    for codec in codecs {
        let topic = topic(codec);
        phases.push(measure(&broker, &format!("consume {codec}"), count, || {
            let consumed = kafka::consume(&broker.address, &topic, count);
            let expected = count * kafka::MESSAGE_BYTES as u64;
            assert_eq!(consumed.bytes, expected, "{topic}: payload bytes");
            (consumed.wall, Some(consumed.first_message))
        }));
    }
    let partition = |codec| broker.data_dir.join(format!("{}-0", topic(codec)));
    let on_disk = [log_bytes(&partition("none")), log_bytes(&partition("lz4"))];
    let segment = partition("none").join("00000000000000000000.log");
    // The Fetch loop and the raw baseline are short (well under a second per GB) and so the most
    // exposed to whatever else the machine does: each runs REPEATS times, alternating. The run
    // of median wall time gives the throughput; CPU seconds are the mean over all runs, since
    // the broker's are counted in 10 ms clock ticks.
    let (mut fetches, mut raws) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        // The same bytes as "consume none", fetched without a client library's per-message work.
        fetches.push(measure(&broker, "fetch none", count, || {
            let (wall, bytes) = wire::consume(&broker.address, &topic("none"), count);
            assert!(
                bytes >= count * kafka::MESSAGE_BYTES as u64,
                "fetched {bytes} bytes"
            );
            (wall, None)
        }));
        raws.push(raw::run(&segment, on_disk[0]));
    }
    let mean = |cpu: f64| cpu / REPEATS as f64;
    let (broker_cpu, client_cpu) = fetches.iter().fold((0.0, 0.0), |(b, c), phase| {
        (b + phase.broker_cpu, c + phase.client_cpu)
    });
    let (sender_cpu, receiver_cpu) = raws.iter().fold((0.0, 0.0), |(s, r), raw| {
        (s + raw.sender_cpu, r + raw.receiver_cpu)
    });
    phases.push(report::Phase {
        broker_cpu: mean(broker_cpu),
        client_cpu: mean(client_cpu),
        ..median(fetches, |phase| phase.wall)
    });
    let raw = raw::Raw {
        sender_cpu: mean(sender_cpu),
        receiver_cpu: mean(receiver_cpu),
        ..median(raws, |raw| raw.wall)
    };
    report::print(count, on_disk, &phases, &raw);
    drop(broker);
}

/// How many times the Fetch loop and the raw baseline run.
pub const REPEATS: usize = 9;

/// The run of median `wall` time.
fn median<T>(mut runs: Vec<T>, wall: impl Fn(&T) -> Duration) -> T {
    runs.sort_by_key(|run| wall(run));
    runs.swap_remove(runs.len() / 2)
}

fn topic(codec: &str) -> String {
    format!("bench-{codec}")
}

/// Runs one phase, charging it the broker's and this process's CPU time over its duration. The
/// phase returns its wall time and, for consumers, the time to the first message.
fn measure(
    broker: &Broker,
    name: &str,
    count: u64,
    phase: impl FnOnce() -> (Duration, Option<Duration>),
) -> Phase {
    eprintln!("{name}: {count} messages ...");
    let (broker_before, client_before) = (broker.cpu_seconds(), raw::process_cpu_seconds());
    let (wall, first_message) = phase();
    Phase {
        name: name.to_string(),
        wall,
        first_message,
        messages: count,
        broker_cpu: broker.cpu_seconds() - broker_before,
        client_cpu: raw::process_cpu_seconds() - client_before,
    }
}

/// Total size of a partition's segment files: the bytes a consumer of it fetches.
fn log_bytes(partition: &Path) -> u64 {
    let entries = std::fs::read_dir(partition)
        .unwrap_or_else(|err| panic!("listing {}: {err}", partition.display()));
    entries
        .map(|entry| entry.expect("reading a partition directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .map(|path| path.metadata().expect("segment metadata").len())
        .sum()
}

fn parse_args() -> Args {
    let mut keel = None;
    let mut data_dir = PathBuf::from("target/bench-broker");
    let mut bytes = 1 << 30;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--keel" => keel = Some(PathBuf::from(value())),
            "--data-dir" => data_dir = PathBuf::from(value()),
            "--bytes" => bytes = parse_size(&value()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument `{other}`")),
        }
    }
    let keel = keel.unwrap_or_else(|| fail("--keel is required"));
    Args {
        keel,
        data_dir,
        bytes,
    }
}

/// `256M`, `1GiB`, `1000000`: decimal suffixes are powers of 1000, `i` ones powers of 1024.
fn parse_size(text: &str) -> u64 {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let multiplier: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        _ => fail(&format!("bad size `{text}`")),
    };
    let number: u64 = digits
        .parse()
        .unwrap_or_else(|_| fail(&format!("bad size `{text}`")));
    match number * multiplier {
        0 => fail("--bytes must be positive"),
        bytes => bytes,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("keel-bench: {message}\n{USAGE}");
    std::process::exit(2);
}
