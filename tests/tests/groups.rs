//! Consumer groups with real clients, through tests/py/confluent_group.py,
//! tests/py/confluent_static.py and tests/py/kafka_python_group.py.
//!
//! confluent-kafka: three members share a six-partition topic; one is killed with SIGKILL (keel
//! must notice its session expire) and a fourth joins; every message is consumed at least once
//! and the commits end at the end offsets. keel is then restarted, more messages are produced, and
//! a new member of the group starts exactly at the committed offsets. Run with the range and the
//! cooperative-sticky assignors. kafka-python: a group consumer with manual commits resumes from
//! its commit.

use keel_tests::{python, unique_name, Broker};

/// Fast first rebalances: the default 3 s wait for more members only slows the test.
const SETTINGS: &[&str] = &["group.initial.rebalance.delay.ms=200"];

fn confluent_group(strategy: &str) {
    let mut broker = Broker::start(SETTINGS);
    let topic = unique_name(&format!("group-{strategy}"));
    let group = unique_name(&format!("members-{strategy}"));
    let stop_file = broker.scratch_file("stop");
    let stop_file = stop_file.to_str().expect("utf-8 path");
    let address = broker.address();
    let common = [
        "--bootstrap",
        &address,
        "--topic",
        &topic,
        "--group",
        &group,
        "--strategy",
        strategy,
        "--stop-file",
        stop_file,
    ];
    let mut args = vec!["--mode", "group", "--count", "3000"];
    args.extend_from_slice(&common);
    python("confluent_group.py", &args);
    broker.restart();
    let address = broker.address();
    let mut args = vec![
        "--mode",
        "resume",
        "--first",
        "3000",
        "--count",
        "3600",
        "--bootstrap",
        &address,
    ];
    args.extend_from_slice(&common[2..]);
    python("confluent_group.py", &args);
}

#[test]
fn confluent_group_range_survives_a_killed_member_and_resumes_after_restart() {
    confluent_group("range");
}

#[test]
fn confluent_group_cooperative_sticky_survives_a_killed_member_and_resumes_after_restart() {
    confluent_group("cooperative-sticky");
}

/// kafka-python: one member consumes about half and commits, the next member of the group gets
/// exactly the rest. Its producer runs with kafka-python's default idempotence.
#[test]
fn kafka_python_group_with_manual_commits_resumes_from_its_commit() {
    let broker = Broker::start(SETTINGS);
    python(
        "kafka_python_group.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &unique_name("kp-group"),
            "--group",
            &unique_name("kp-members"),
        ],
    );
}

/// Static membership (KIP-345), through tests/py/confluent_static.py: two members with distinct
/// group.instance.id; one is killed and the other closed (librdkafka sends no LeaveGroup for a
/// static member), each replaced by a new process with its instance id within the session
/// timeout. The newcomer takes over the old member's partitions under a new member id and the
/// other member sees no rebalance. Then a paused member is replaced and resumed: its old
/// member id is fenced (librdkafka stops it with a fatal FENCED_INSTANCE_ID error). Run with the
/// eager range assignor and with cooperative-sticky.
fn static_members(client: &str, strategy: &str) {
    let broker = Broker::start(SETTINGS);
    let stop_file = broker.scratch_file("stop");
    python(
        "confluent_static.py",
        &[
            "--mode",
            "static",
            "--bootstrap",
            &broker.address(),
            "--topic",
            &unique_name("static"),
            "--group",
            &unique_name("static-members"),
            "--stop-file",
            stop_file.to_str().expect("utf-8 path"),
            "--strategy",
            strategy,
            "--client",
            client,
        ],
    );
}

#[test]
fn confluent_static_member_replaced_within_its_session_keeps_its_partitions_without_a_rebalance() {
    static_members("confluent", "range");
}

#[test]
fn confluent_static_member_replaced_keeps_its_partitions_with_cooperative_sticky() {
    static_members("confluent", "cooperative-sticky");
}

/// The same with kafka-python members (JoinGroup v7, SyncGroup v5, Heartbeat v4, OffsetCommit
/// v8, each carrying the instance id), without the paused member.
#[test]
fn kafka_python_static_member_replaced_within_its_session_keeps_its_partitions() {
    static_members("kafka-python", "range");
}

/// Transactional producers fail at once with keel's reason (there is no transaction
/// coordinator), through tests/py/transactions_refused.py: confluent-kafka's and kafka-python's
/// `init_transactions()` must fail within 10 s, not at their 60 s timeout.
#[test]
fn transactional_producers_fail_fast_with_the_reason() {
    let broker = Broker::start(SETTINGS);
    python(
        "transactions_refused.py",
        &["--bootstrap", &broker.address(), "--seconds-max", "10"],
    );
}

/// Cooperative rebalancing (KIP-429) with librdkafka's cooperative-sticky assignor, through
/// tests/py/confluent_cooperative.py: three members, two topics, subscriptions changed and
/// dropped and taken up again; after each change every partition is held by exactly one member
/// subscribing to it, and each message produced then is consumed once, by that member.
fn confluent_cooperative(settings: &[&str]) {
    let broker = Broker::start(settings);
    let stop_file = broker.scratch_file("stop");
    python(
        "confluent_cooperative.py",
        &[
            "--mode",
            "cooperative",
            "--bootstrap",
            &broker.address(),
            "--topic",
            &unique_name("coop"),
            "--group",
            &unique_name("coop-members"),
            "--stop-file",
            stop_file.to_str().expect("utf-8 path"),
        ],
    );
}

#[test]
fn confluent_cooperative_subscription_changes_without_an_initial_delay() {
    confluent_cooperative(&["group.initial.rebalance.delay.ms=0"]);
}

#[test]
fn confluent_cooperative_subscription_changes_with_the_default_initial_delay() {
    confluent_cooperative(&[]);
}
