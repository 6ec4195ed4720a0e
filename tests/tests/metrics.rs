//! The Prometheus endpoint: after traffic, `GET /metrics` reports requests by API, bytes in and
//! out, and each partition's log end offset and high watermark; other paths are 404.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use keel_tests::{kcat, Broker};

/// The metrics address keel logged at start.
fn metrics_address(broker: &Broker) -> String {
    for _ in 0..100 {
        let log = broker.log();
        if let Some(line) = log.lines().find(|l| l.contains("metrics at GET /metrics")) {
            let at = line.find("address=").expect("an address field") + "address=".len();
            return line[at..]
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("keel never logged its metrics address:\n{}", broker.log());
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: keel\r\n\r\n").unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
}

#[test]
fn metrics_report_requests_bytes_and_offsets() {
    let broker = Broker::start(&[]);
    let lines = "one\ntwo\nthree\n";
    kcat(
        &["-b", &broker.address(), "-P", "-t", "measured"],
        Some(lines.as_bytes()),
    );
    let consumed = kcat(
        &[
            "-b",
            &broker.address(),
            "-C",
            "-t",
            "measured",
            "-e",
            "-o",
            "beginning",
        ],
        None,
    );
    let consumed = String::from_utf8_lossy(&consumed);
    assert!(consumed.contains("three"), "{consumed}");
    let address = metrics_address(&broker);
    let page = http_get(&address, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    for expected in [
        "keel_partition_log_end_offset{topic=\"measured\",partition=\"0\"} 3",
        "keel_partition_high_watermark{topic=\"measured\",partition=\"0\"} 3",
        "# TYPE keel_requests_total counter",
        "# TYPE keel_fsync_seconds_total counter",
    ] {
        assert!(page.contains(expected), "missing {expected}:\n{page}");
    }
    let count = |name: &str| -> u64 {
        let line = page
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(count("keel_requests_total{api=\"Produce\"}") >= 1);
    assert!(count("keel_requests_total{api=\"Fetch\"}") >= 1);
    assert!(count("keel_bytes_in_total") > 0);
    assert!(
        count("keel_bytes_out_total") >= count("keel_bytes_in_total"),
        "{page}"
    );
    assert!(http_get(&address, "/nothing").starts_with("HTTP/1.1 404"));
}
