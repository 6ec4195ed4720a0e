//! Log compaction end to end: a topic created with cleanup.policy=compact (small segments, a tiny
//! min.cleanable.dirty.ratio, a short delete.retention.ms) on a broker whose cleaner runs every
//! 100 ms, written by confluent-kafka with many updates per key and a few tombstones
//! (tests/py/confluent_compaction.py). The property: a consumer reading from the beginning always
//! gets the latest value of every key at the offset it was produced at, and once the cleaner has
//! run, no older value of any key below the active segment and no deleted key at all; a message
//! without a key is refused. After a clean stop, `keel check` finds the compacted data directory
//! sound, and `keel dump-log` shows the holes compaction left in the offsets.

use std::process::Command;
use std::time::Duration;

use keel_tests::{keel_bin, python, run_bounded, unique_name, Broker};

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_every_key() {
    let mut broker = Broker::start(&["log.cleaner.backoff.ms=100"]);
    let topic = unique_name("compacted");
    let summary = python(
        "confluent_compaction.py",
        &["--bootstrap", &broker.address(), "--topic", &topic],
    );
    assert!(summary.contains("compaction:"), "{summary}");
    assert!(
        broker.log().contains("compaction cleaned segments"),
        "the broker's cleaner never ran"
    );
    let dir = broker.partition_dir(&topic, 0);
    broker.stop();

    let mut check = Command::new(keel_bin());
    check.arg("check").arg(broker.data_dir());
    let run = run_bounded(check, None, Duration::from_secs(60)).expect("keel check");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "keel check: {report}");
    assert!(report.contains(": 0 problems"), "{report}");

    let first_segment = dir.join(format!("{:020}.log", 0));
    let mut dump = Command::new(keel_bin());
    dump.arg("dump-log").arg(&first_segment);
    let run = run_bounded(dump, None, Duration::from_secs(60)).expect("keel dump-log");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "keel dump-log: {text}");
    let mut next = 0;
    let mut holes = 0;
    for line in text.lines().filter(|l| l.starts_with("baseOffset:")) {
        let field = |name: &str| -> u64 {
            let rest = &line[line.find(name).expect(name) + name.len()..];
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        let (base, last) = (field("baseOffset: "), field("lastOffset: "));
        assert!(base >= next && last >= base, "{line}");
        holes += u64::from(base > next);
        next = last + 1;
    }
    assert!(holes > 0, "no holes in the compacted segment:\n{text}");
}
