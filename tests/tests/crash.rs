//! Stopping keel and starting it again on the same data directory: a crash (SIGKILL) loses no
//! acknowledged message, since acknowledged bytes are in the page cache, which outlives the
//! process; a clean stop (SIGTERM) exits 0 promptly and leaves each partition's clean-shutdown
//! marker, and nothing is lost either.

use keel_tests::{now_ms, python, unique_name, Broker};

const PARTITIONS: i32 = 3;

/// Runs confluent_roundtrip.py in `mode` (produce or verify) for `count` messages.
fn confluent(broker: &Broker, mode: &str, topic: &str, count: usize, base_ts: i64) {
    python(
        "confluent_roundtrip.py",
        &[
            "--mode",
            mode,
            "--bootstrap",
            &broker.address(),
            "--topic",
            topic,
            "--partitions",
            &PARTITIONS.to_string(),
            "--count",
            &count.to_string(),
            "--acks",
            "1",
            "--base-ts",
            &base_ts.to_string(),
        ],
    );
}

/// 5000 messages acknowledged with acks=1 (and flushed by the client, not fsynced by keel: the
/// default log.flush.interval.messages never fsyncs) are all there after `kill -9` and a restart.
#[test]
fn kill9_loses_no_acknowledged_message() {
    let mut broker = Broker::start(&[]);
    let topic = unique_name("crash-kill9");
    let base_ts = now_ms();
    confluent(&broker, "produce", &topic, 5000, base_ts);
    broker.kill9();
    broker.restart();
    confluent(&broker, "verify", &topic, 5000, base_ts);
}

/// SIGTERM: keel exits 0 within the stop timeout, every partition's directory holds the
/// `clean-shutdown` marker, and after a restart every message is there.
#[test]
fn sigterm_exits_0_with_clean_shutdown_markers_and_loses_nothing() {
    let mut broker = Broker::start(&[]);
    let topic = unique_name("crash-sigterm");
    let base_ts = now_ms();
    confluent(&broker, "produce", &topic, 3000, base_ts);
    let status = broker.stop();
    assert!(status.success(), "keel exited with {status} after SIGTERM");
    for partition in 0..PARTITIONS {
        let marker = broker
            .partition_dir(&topic, partition)
            .join("clean-shutdown");
        assert!(
            marker.is_file(),
            "{} is missing after a clean shutdown; the directory holds {:?}",
            marker.display(),
            std::fs::read_dir(broker.partition_dir(&topic, partition)).map(|entries| entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect::<Vec<_>>())
        );
    }
    broker.restart();
    confluent(&broker, "verify", &topic, 3000, base_ts);
}

/// Crash and clean restarts in a row keep the log whole: produce, kill -9, restart, produce
/// more, SIGTERM, restart, and the consumer sees both rounds, dense and in order.
#[test]
fn crash_then_clean_restart_then_more_messages() {
    let mut broker = Broker::start(&[]);
    let topic = unique_name("crash-mixed");
    let base_ts = now_ms();
    // Round one: messages 0..2000; round two appends 2000..4000 to the recovered log.
    confluent(&broker, "produce", &topic, 2000, base_ts);
    broker.kill9();
    broker.restart();
    python(
        "confluent_roundtrip.py",
        &[
            "--mode",
            "append",
            "--bootstrap",
            &broker.address(),
            "--topic",
            &topic,
            "--partitions",
            &PARTITIONS.to_string(),
            "--count",
            "4000",
            "--from",
            "2000",
            "--acks",
            "all",
            "--base-ts",
            &base_ts.to_string(),
        ],
    );
    broker.stop();
    broker.restart();
    confluent(&broker, "verify", &topic, 4000, base_ts);
}
