//! The printed report. Throughput is in payload terms (MB = 10^6 bytes of message values), and
//! CPU is charged per GB (10^9 bytes) of payload, so phases of both codecs and the raw baseline,
//! which moves the same on-disk bytes the uncompressed consumer fetches, compare directly.

use crate::kafka::MESSAGE_BYTES;
use crate::raw::Raw;
use std::time::Duration;

/// One measured produce or consume phase.
pub struct Phase {
    pub name: String,
    pub wall: Duration,
    pub messages: u64,
    /// Consume phases: the part of `wall` spent before the first message arrived.
    pub first_message: Option<Duration>,
    /// CPU seconds the broker process used during the phase.
    pub broker_cpu: f64,
    /// CPU seconds this process (librdkafka's threads included) used during the phase.
    pub client_cpu: f64,
}

impl Phase {
    fn payload(&self) -> f64 {
        (self.messages * MESSAGE_BYTES as u64) as f64
    }

    fn mb_per_s(&self) -> f64 {
        self.payload() / 1e6 / self.wall.as_secs_f64()
    }

    fn per_gb(&self, cpu: f64) -> f64 {
        cpu / (self.payload() / 1e9)
    }
}

/// `on_disk` is the log size of the none and lz4 topics.
pub fn print(count: u64, on_disk: [u64; 2], phases: &[Phase], raw: &Raw) {
    let payload = (count * MESSAGE_BYTES as u64) as f64;
    println!(
        "keel broker benchmark: {count} messages x {MESSAGE_BYTES} B = {:.1} MB payload per codec \
         (MB = 10^6 B, GB = 10^9 B of payload)",
        payload / 1e6
    );
    println!(
        "on disk: none {:.1} MB, lz4 {:.1} MB; load average at the end: {}",
        on_disk[0] as f64 / 1e6,
        on_disk[1] as f64 / 1e6,
        load_average()
    );
    // librdkafka silently sends uncompressed batches when the broker lacks the feature it gates
    // the codec on (for LZ4: FindCoordinator in ApiVersions), so check what actually landed.
    if on_disk[1] as f64 >= 0.95 * on_disk[0] as f64 {
        println!(
            "WARNING: the lz4 topic is not smaller than the uncompressed one: librdkafka sent it \
             uncompressed (it enables LZ4 only if the broker's ApiVersions lists FindCoordinator), \
             so the lz4 rows measure the uncompressed path"
        );
    }
    println!(
        "{:<14} {:>8} {:>10} {:>9} {:>15} {:>15} {:>12} {:>12}",
        "phase",
        "wall s",
        "msgs/s",
        "MB/s",
        "broker CPU s",
        "broker s/GB",
        "client CPU s",
        "client s/GB"
    );
    for phase in phases {
        print_phase(phase);
    }
    let raw_mb_s = payload / 1e6 / raw.wall.as_secs_f64();
    let raw_per_gb = raw.sender_cpu / (payload / 1e9);
    println!(
        "{:<14} {:>8.2} {:>10} {:>9.1} {:>15.2} {:>15.3} {:>12.2} {:>12.3}   (sender = broker column, receiver = client column)",
        "raw sendfile",
        raw.wall.as_secs_f64(),
        "-",
        raw_mb_s,
        raw.sender_cpu,
        raw_per_gb,
        raw.receiver_cpu,
        raw.receiver_cpu / (payload / 1e9)
    );
    println!(
        "raw baseline: {:.1} MB (the uncompressed topic's log size) sendfile'd from its first segment over 127.0.0.1 = {:.1} MB/s on the wire",
        on_disk[0] as f64 / 1e6,
        on_disk[0] as f64 / 1e6 / raw.wall.as_secs_f64()
    );
    println!(
        "fetch none and raw sendfile ran {} times each, alternating: the run of median wall time is shown, with the mean CPU of all runs",
        crate::REPEATS
    );
    print_goals(phases, raw_mb_s, raw_per_gb);
}

fn print_phase(phase: &Phase) {
    println!(
        "{:<14} {:>8.2} {:>10.0} {:>9.1} {:>15.2} {:>15.3} {:>12.2} {:>12.3}",
        phase.name,
        phase.wall.as_secs_f64(),
        phase.messages as f64 / phase.wall.as_secs_f64(),
        phase.mb_per_s(),
        phase.broker_cpu,
        phase.per_gb(phase.broker_cpu),
        phase.client_cpu,
        phase.per_gb(phase.client_cpu)
    );
}

/// The two goals, judged on the Fetch loop: Fetch over loopback against raw sendfile of the same
/// file, as the design states them. librdkafka's consume moves the same bytes and its ratio is
/// printed beside them, but it measures the client's per-message work as much as keel.
fn print_goals(phases: &[Phase], raw_mb_s: f64, raw_per_gb: f64) {
    if let Some(fetch) = phases.iter().find(|phase| phase.name == "fetch none") {
        let throughput = fetch.mb_per_s() / raw_mb_s;
        let cpu = fetch.per_gb(fetch.broker_cpu) / raw_per_gb;
        println!(
            "fetch none (Fetch over loopback) / raw sendfile throughput: {throughput:.2} (goal >= 0.9: {})",
            verdict(throughput >= 0.9)
        );
        println!(
            "fetch none broker CPU/GB / raw sendfile CPU/GB: {cpu:.2} (goal <= 1.3: {})",
            verdict(cpu <= 1.3)
        );
    }
    if let Some(consume) = phases.iter().find(|phase| phase.name == "consume none") {
        let throughput = consume.mb_per_s() / raw_mb_s;
        let cpu = consume.per_gb(consume.broker_cpu) / raw_per_gb;
        println!(
            "consume none (librdkafka, end to end) / raw sendfile: throughput {throughput:.2}, \
             broker CPU/GB {cpu:.2}"
        );
    }
    for phase in phases {
        print_bottleneck(phase);
    }
}

/// A side near one full core (librdkafka's consumer and keel's connection are each mostly one
/// thread) is saturated and is the limit; if neither is, the phase waited on round trips (or on
/// other work sharing the machine), and CPU says nothing about who is slow.
fn print_bottleneck(phase: &Phase) {
    let seconds = phase.wall.as_secs_f64();
    let (broker, client) = (phase.broker_cpu / seconds, phase.client_cpu / seconds);
    let limit = if broker.max(client) < 0.8 {
        "neither side saturates a core: latency-bound (round trips, batching) or a shared machine"
    } else if client > broker {
        "the CLIENT (this process: librdkafka, or the Fetch loop) is the bottleneck, not the broker"
    } else {
        "the BROKER is the bottleneck"
    };
    let first = phase.first_message.map_or(String::new(), |first| {
        let rest = seconds - first.as_secs_f64();
        format!(
            ", first message after {:.0} ms, {:.1} MB/s after it",
            first.as_secs_f64() * 1e3,
            phase.payload() / 1e6 / rest
        )
    });
    println!(
        "{}: broker busy {broker:.2} cores, client busy {client:.2} cores{first} -> {limit}",
        phase.name
    );
}

/// The 1-minute load average: on a shared 2-core machine, anything near 2 or above means the
/// figures above were measured against other work.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}
