//! Administration with stock clients, as a new user meets it: confluent-kafka's AdminClient
//! (list_topics with librdkafka's padded Metadata v12, a regex subscription, describe_cluster,
//! manual replica assignments, broker configs, APPEND/SUBTRACT, compression.type) through
//! tests/py/confluent_admin.py, and kafka-python's describe_configs types, describe_log_dirs,
//! alter_replica_log_dirs and describe_cluster through tests/py/kafka_python_configs.py.

use std::process::Command;
use std::time::Duration;

use keel_tests::{keel_bin, python, run_bounded, unique_name, Broker};

/// The codec of every batch `keel dump-log` finds in a segment.
fn codecs(segment: &std::path::Path) -> Vec<String> {
    let mut command = Command::new(keel_bin());
    command.arg("dump-log").arg(segment);
    let run = run_bounded(command, None, Duration::from_secs(60)).expect("keel dump-log");
    assert!(run.status.success(), "keel dump-log {}", segment.display());
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter_map(|line| line.split("compresscodec: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every call in the script succeeds against keel; the padded Metadata requests were answered
/// (keel logs each at debug); the lz4 topic stored what librdkafka sent uncompressed as lz4.
#[test]
fn confluent_admin_calls_work() {
    let broker = Broker::start(&["log.segment.bytes=1048576"]);
    let prefix = unique_name("admin");
    python(
        "confluent_admin.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--prefix",
            &prefix,
            "--segment-bytes",
            "1048576",
        ],
    );
    assert!(
        broker
            .log()
            .contains("ignored bytes after the request body"),
        "librdkafka's padded Metadata v12 was not seen"
    );
    let segment = broker
        .partition_dir(&format!("{prefix}-lz4"), 0)
        .join("00000000000000000000.log");
    let stored = codecs(&segment);
    assert!(!stored.is_empty(), "no batches in {}", segment.display());
    assert!(
        stored.iter().all(|codec| codec == "lz4"),
        "compression.type=lz4 stored {stored:?}"
    );
}

#[test]
fn kafka_python_sees_config_types_log_dirs_and_the_cluster() {
    let broker = Broker::start(&[]);
    let data_dir = broker.data_dir().display().to_string();
    python(
        "kafka_python_configs.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &unique_name("configs"),
            "--data-dir",
            &data_dir,
        ],
    );
}
