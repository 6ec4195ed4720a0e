//! Three keel processes as one cluster on 127.0.0.1 (each a voter of the metadata quorum and a
//! broker, distinct ports and data directories), driven by librdkafka as a user would: clients
//! see three brokers; a topic created through one node exists on all, its partitions spread over
//! the three; a replication factor above 1 is refused; messages produced through one node are
//! consumed by a group through another; kill -9 of the active controller elects another,
//! creation goes on, and the dead broker's partitions have no leader; restarted, it catches up
//! on what was created while it was down and leads its partitions again; SIGTERM is a
//! controlled shutdown.

use keel_tests::{probably_free_port, python, unique_name, Broker};

const NODES: u32 = 3;

fn cluster_py(command: &str, broker: &Broker, args: &[&str]) -> String {
    let address = broker.address();
    let mut all = vec![command, "--bootstrap", &address];
    all.extend_from_slice(args);
    python("confluent_cluster.py", &all)
}

/// The controller Metadata names, once every one of `ids` is listed and the controller is not
/// `not`.
fn controller(broker: &Broker, ids: &str, not: Option<u32>) -> u32 {
    let not = not.map(|n| n.to_string());
    let mut args = vec!["--ids", ids];
    if let Some(not) = &not {
        args.extend_from_slice(&["--not-controller", not]);
    }
    let out = cluster_py("brokers", broker, &args);
    out.trim()
        .strip_prefix("controller ")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no controller in {out:?}"))
}

/// (partition, leader) of every partition of `topic`, once settled (see confluent_cluster.py).
fn leaders(broker: &Broker, topic: &str, leaderless: Option<u32>) -> Vec<(i32, i32)> {
    let leaderless = leaderless.map(|n| n.to_string());
    let mut args = vec!["--topic", topic];
    if let Some(n) = &leaderless {
        args.extend_from_slice(&["--leaderless", n]);
    }
    cluster_py("leaders", broker, &args)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["partition", p, "leader", l, ..] => Some((p.parse().ok()?, l.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn three_nodes_make_one_cluster_that_survives_its_controllers_death() {
    let controller_ports: Vec<u16> = (0..NODES).map(|_| probably_free_port()).collect();
    let voters = (1..=NODES)
        .zip(&controller_ports)
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let voters_setting = format!("controller.quorum.voters={voters}");
    let mut nodes: Vec<Broker> = (1..=NODES)
        .zip(&controller_ports)
        .map(|(id, port)| {
            let node = format!("node.id={id}");
            let listener = format!("listeners=CONTROLLER://127.0.0.1:{port}");
            Broker::start(&[
                &node,
                &listener,
                &voters_setting,
                "broker.session.timeout.ms=3000",
            ])
        })
        .collect();
    let node = |id: u32| (id - 1) as usize;

    // Every node sees the same three brokers and one controller.
    let first = controller(&nodes[0], "1,2,3", None);
    for broker in &nodes[1..] {
        assert_eq!(controller(broker, "1,2,3", None), first);
    }

    // Created through node 2, the topic is on every node, spread over all three.
    let topic = unique_name("spread");
    let out = cluster_py(
        "create",
        &nodes[1],
        &["--topic", &topic, "--partitions", "6"],
    );
    assert_eq!(out.trim(), "created");
    for broker in &nodes {
        let led = leaders(broker, &topic, None);
        let mut by: Vec<i32> = led.iter().map(|&(_, l)| l).collect();
        by.sort_unstable();
        assert_eq!(
            by,
            [1, 1, 2, 2, 3, 3],
            "leaders of {topic} from {}",
            broker.address()
        );
    }
    let refused = cluster_py("create", &nodes[2], &["--topic", "rf3", "--rf", "3"]);
    assert!(
        refused.starts_with("error INVALID_REPLICATION_FACTOR") && refused.contains("replicat"),
        "{refused}"
    );

    // Produced through node 3 (acks=all), consumed by a group through node 1.
    cluster_py(
        "produce",
        &nodes[2],
        &["--topic", &topic, "--count", "3000"],
    );
    let group = unique_name("group");
    cluster_py(
        "consume",
        &nodes[0],
        &["--topic", &topic, "--count", "3000", "--group", &group],
    );

    // kill -9 of the active controller: the other two elect one of themselves, go on creating
    // topics, and the dead broker's partitions have no leader.
    nodes[node(first)].kill9();
    let survivor = &nodes[node(if first == 1 { 2 } else { 1 })];
    let alive = (1..=NODES)
        .filter(|&id| id != first)
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let second = controller(survivor, &alive, Some(first));
    assert_ne!(second, first);
    let later = unique_name("later");
    let out = cluster_py(
        "create",
        survivor,
        &["--topic", &later, "--partitions", "4"],
    );
    assert_eq!(out.trim(), "created");
    let led = leaders(survivor, &topic, Some(first));
    assert_eq!(led.iter().filter(|&&(_, l)| l == -1).count(), 2, "{led:?}");

    // Restarted, it catches up from the log: it knows the topic created while it was down,
    // and leads its partitions again; what it held is still there for the group.
    nodes[node(first)].restart();
    controller(&nodes[node(first)], "1,2,3", None);
    let led = leaders(&nodes[node(first)], &later, None);
    assert_eq!(led.len(), 4);
    leaders(&nodes[node(first)], &topic, None);
    let again = unique_name("again");
    cluster_py(
        "consume",
        &nodes[node(first)],
        &["--topic", &topic, "--count", "3000", "--group", &again],
    );

    // SIGTERM is a controlled shutdown: the broker gives up its partitions before it stops.
    let stopping = if first == 3 { 2 } else { 3 };
    nodes[node(stopping)].stop();
    assert!(
        nodes[node(stopping)]
            .log()
            .contains("controlled shutdown: this broker leads nothing now"),
        "no controlled shutdown in the log of node {stopping}"
    );
    let led = leaders(&nodes[node(first)], &topic, Some(stopping));
    assert_eq!(led.iter().filter(|&&(_, l)| l == -1).count(), 2, "{led:?}");
}
