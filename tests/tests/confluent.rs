//! confluent-kafka (librdkafka 2.16) against keel, through tests/py/confluent_roundtrip.py: every
//! compression codec with every acks setting. Each test's property: a new 6-partition topic made
//! with CreateTopics receives every produced message, and a consumer reading each partition from
//! the beginning gets exactly those messages back, in order, at offsets 0..n-1, with equal keys,
//! values, headers and CreateTime timestamps; delivery reports (acks 1/all) name those offsets.
//! acks=0 loses nothing either: one broker, no faults, and keel reads every request it is sent.

use keel_tests::{now_ms, python, unique_name, Broker};

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
