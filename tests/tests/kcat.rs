//! kcat (librdkafka 2.0.2, Debian's) against keel: metadata, a balanced consumer group, and a
//! keyed round trip through a file, compared byte for byte.

use keel_tests::{kcat, unique_name, Broker};

/// `kcat -L` names the broker (node 0 at the address it listens on) and a topic created by
/// producing to it (auto-creation with num.partitions=3), with its 3 partitions led by node 0.
#[test]
fn metadata_lists_the_broker_and_a_created_topic() {
    let broker = Broker::start(&["num.partitions=3"]);
    let address = broker.address();
    let topic = unique_name("kcat-metadata");
    kcat(
        &["-b", &address, "-P", "-t", &topic, "-p", "1"],
        Some(b"one message\n"),
    );
    let listing = String::from_utf8(kcat(&["-b", &address, "-L"], None)).expect("utf-8");
    assert!(
        listing.contains(&format!("broker 0 at {address}")),
        "kcat -L does not list broker 0 at {address}:\n{listing}"
    );
    assert!(
        listing.contains(&format!("topic \"{topic}\" with 3 partitions")),
        "kcat -L does not list topic {topic} with 3 partitions:\n{listing}"
    );
    for partition in 0..3 {
        let line = format!("partition {partition}, leader 0, replicas: 0, isrs: 0");
        assert!(
            listing.contains(&line),
            "kcat -L lacks `{line}`:\n{listing}"
        );
    }
    // Asking for that one topic gives the same answer.
    let one = String::from_utf8(kcat(&["-b", &address, "-L", "-t", &topic], None)).expect("utf-8");
    assert!(
        one.contains(&format!("topic \"{topic}\" with 3 partitions")),
        "kcat -L -t {topic}:\n{one}"
    );
}

/// 1000 `key:value` lines produced with `-K:` come back from `-C -e -o beginning -f '%k:%s\n'`
/// byte for byte: keys and values split at the first colon (values may hold more colons), empty
/// keys and values, tabs, non-ASCII UTF-8 and long lines included.
#[test]
fn keyed_lines_round_trip_byte_for_byte() {
    let broker = Broker::start(&[]);
    let address = broker.address();
    let topic = unique_name("kcat-roundtrip");
    let mut input = Vec::new();
    for i in 0..1000 {
        let line = match i % 10 {
            0 => format!(":value {i} with an empty key"),
            1 => format!("key-{i}:"),
            2 => format!("key-{i}:value:with:colons:{i}"),
            3 => format!("key-{i}:tab\there {i}"),
            4 => format!("ключ-{i}:значение ✓ {i}"),
            5 => format!("key-{i}:{}", "x".repeat(10_000 + i)),
            _ => format!("key-{i}:value-{i}"),
        };
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let file = broker.scratch_file("lines.txt");
    std::fs::write(&file, &input).expect("writing the input file");
    let file_arg = file.to_str().expect("a utf-8 path");
    kcat(
        &[
            "-b", &address, "-P", "-t", &topic, "-p", "0", "-K:", "-l", file_arg,
        ],
        None,
    );
    let output = kcat(
        &[
            "-b",
            &address,
            "-C",
            "-t",
            &topic,
            "-p",
            "0",
            "-e",
            "-o",
            "beginning",
            "-f",
            "%k:%s\n",
        ],
        None,
    );
    if output != input {
        let first_difference = output
            .split(|&b| b == b'\n')
            .zip(input.split(|&b| b == b'\n'))
            .position(|(got, want)| got != want);
        panic!(
            "consumed {} bytes, produced {}; first differing line: {:?}",
            output.len(),
            input.len(),
            first_difference
        );
    }
}

/// `kcat -G` (a balanced consumer: FindCoordinator, JoinGroup v5, SyncGroup v3, OffsetCommit)
/// reads a topic to its end and commits; a second run of the same group reads only what was
/// produced after the first.
#[test]
fn balanced_consumer_resumes_from_its_group_commit() {
    let broker = Broker::start(&["group.initial.rebalance.delay.ms=100"]);
    let address = broker.address();
    let topic = unique_name("kcat-group");
    let group = unique_name("kcat-members");
    kcat(
        &["-b", &address, "-P", "-t", &topic],
        Some(b"one\ntwo\nthree\n"),
    );
    let consume = || {
        let out = kcat(
            &[
                "-b",
                &address,
                "-G",
                &group,
                "-X",
                "auto.offset.reset=earliest",
                "-e",
                &topic,
            ],
            None,
        );
        String::from_utf8(out).expect("utf-8")
    };
    assert_eq!(consume(), "one\ntwo\nthree\n");
    kcat(&["-b", &address, "-P", "-t", &topic], Some(b"four\n"));
    assert_eq!(consume(), "four\n");
}
