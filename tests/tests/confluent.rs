//! confluent-kafka (librdkafka 2.16) against keel, through tests/py/confluent_roundtrip.py: every
//! compression codec with every acks setting. Each test's property: a new 6-partition topic made
//! with CreateTopics receives every produced message, and a consumer reading each partition from
//! the beginning gets exactly those messages back, in order, at offsets 0..n-1, with equal keys,
//! values, headers and CreateTime timestamps; delivery reports (acks 1/all) name those offsets.
//! acks=0 loses nothing either: one broker, no faults, and keel reads every request it is sent.
//! The batches on disk carry the codec the producer was asked for (read back with
//! `keel dump-log`): librdkafka compresses only against a broker that advertises
//! FindCoordinator, so this proves the codec path is really exercised.

use std::process::Command;
use std::time::Duration;

use keel_tests::{keel_bin, now_ms, python, run_bounded, unique_name, Broker};

/// How many stored batches of `topic` (6 partitions, first segment) use each codec.
fn stored_codecs(broker: &Broker, topic: &str) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for partition in 0..6 {
        let segment = broker
            .partition_dir(topic, partition)
            .join("00000000000000000000.log");
        let mut command = Command::new(keel_bin());
        command.arg("dump-log").arg(&segment);
        let run = run_bounded(command, None, Duration::from_secs(60)).expect("keel dump-log");
        assert!(run.status.success(), "keel dump-log {}", segment.display());
        for line in String::from_utf8_lossy(&run.stdout).lines() {
            let Some(codec) = line
                .split("compresscodec: ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
            else {
                continue;
            };
            match counts.iter_mut().find(|(name, _)| name == codec) {
                Some((_, count)) => *count += 1,
                None => counts.push((codec.to_owned(), 1)),
            }
        }
    }
    counts
}

/// Messages per run: enough for many batches per partition (and a few 100 KB values), few enough
/// that the 15 runs take well under a minute on two cores.
const COUNT: usize = 3000;

fn roundtrip(acks: &str, compression: &str) {
    let broker = Broker::start(&[]);
    let topic = unique_name(&format!("confluent-{compression}-acks{acks}"));
    let count = COUNT.to_string();
    let base_ts = now_ms().to_string();
    python(
        "confluent_roundtrip.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &topic,
            "--partitions",
            "6",
            "--count",
            &count,
            "--acks",
            acks,
            "--compression",
            compression,
            "--base-ts",
            &base_ts,
        ],
    );
    let codecs = stored_codecs(&broker, &topic);
    println!("stored batches by codec: {codecs:?}");
    let with = |codec: &str| {
        codecs
            .iter()
            .find(|(n, _)| n == codec)
            .map_or(0, |(_, c)| *c)
    };
    let total: usize = codecs.iter().map(|(_, c)| c).sum();
    assert!(total > 0, "no batches stored");
    if compression == "none" {
        assert_eq!(with("none"), total, "uncompressed producer: {codecs:?}");
    } else {
        // librdkafka sends a batch uncompressed when compression would not shrink it.
        assert!(
            with(compression) * 2 > total,
            "most batches should be {compression}: {codecs:?}"
        );
    }
}

macro_rules! matrix {
    ($($name:ident: $acks:literal, $compression:literal;)*) => {
        $(
            #[test]
            fn $name() {
                roundtrip($acks, $compression);
            }
        )*
    };
}

matrix! {
    none_acks0: "0", "none";
    none_acks1: "1", "none";
    none_acks_all: "all", "none";
    gzip_acks0: "0", "gzip";
    gzip_acks1: "1", "gzip";
    gzip_acks_all: "all", "gzip";
    snappy_acks0: "0", "snappy";
    snappy_acks1: "1", "snappy";
    snappy_acks_all: "all", "snappy";
    lz4_acks0: "0", "lz4";
    lz4_acks1: "1", "lz4";
    lz4_acks_all: "all", "lz4";
    zstd_acks0: "0", "zstd";
    zstd_acks1: "1", "zstd";
    zstd_acks_all: "all", "zstd";
}
