//! Bad input on the wire: an oversized frame, a negative size and an undecodable request each
//! close their own connection with a log line, and the broker goes on serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use keel_tests::{kcat, Broker};

/// Sends `bytes` and reports whether the broker closed the connection (EOF) without answering.
fn closed_after(address: &str, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).expect("send");
    let mut answer = [0u8; 64];
    match stream.read(&mut answer) {
        Ok(0) => true,
        // Bytes sent to a socket the broker already closed come back as a reset.
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
        Ok(_) => false,
    }
}

#[test]
fn bad_frames_close_their_connection_and_nothing_else() {
    let broker = Broker::start(&["socket.request.max.bytes=1048576"]);
    let address = broker.address();
    let oversized = (8 * 1024 * 1024i32).to_be_bytes();
    assert!(closed_after(&address, &oversized), "oversized frame");
    assert!(
        closed_after(&address, &(-5i32).to_be_bytes()),
        "negative size"
    );
    let garbage = [0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    assert!(closed_after(&address, &garbage), "unknown API key");
    let truncated_metadata = [0, 0, 0, 12, 0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
    assert!(
        closed_after(&address, &truncated_metadata),
        "undecodable Metadata"
    );
    let log = broker.log();
    assert!(log.contains("socket.request.max.bytes"), "{log}");
    assert!(log.contains("protocol error"), "{log}");
    // Everyone else is still served.
    kcat(
        &["-b", &address, "-P", "-t", "after"],
        Some(b"still here\n"),
    );
    let out = kcat(
        &["-b", &address, "-C", "-t", "after", "-e", "-o", "beginning"],
        None,
    );
    assert!(String::from_utf8_lossy(&out).contains("still here"));
}

#[test]
fn connections_beyond_max_connections_are_closed_on_accept() {
    let broker = Broker::start(&["max.connections=1"]);
    let address = broker.address();
    let first = TcpStream::connect(&address).expect("first connection");
    std::thread::sleep(Duration::from_millis(300));
    assert!(closed_after(&address, &[0, 0, 0, 0]), "second connection");
    assert!(broker.log().contains("max.connections reached"));
    drop(first);
    // Once the first leaves, clients are served again (bounded wait for the slot to free).
    let mut served = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let mut probe = TcpStream::connect(&address).expect("probe");
        probe
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // An ApiVersions v0 request: a served connection answers it.
        probe
            .write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap();
        let mut answer = [0u8; 4];
        if probe.read_exact(&mut answer).is_ok() {
            served = true;
            break;
        }
    }
    assert!(served, "the slot never freed:\n{}", broker.log());
}

/// A client may send many requests without waiting: keel answers each, in the order sent,
/// whether they arrive in one write or split at odd places, and with fewer queued than sent
/// (queued.max.requests=2 stops reading ahead without losing any).
#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start(&["queued.max.requests=2"]);
    let mut stream = TcpStream::connect(broker.address()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // 50 ApiVersions v0 requests, correlation ids 1..=50, in one buffer.
    let mut bytes = Vec::new();
    for id in 1..=50i32 {
        bytes.extend_from_slice(&[0, 0, 0, 10, 0, 18, 0, 0]);
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
    }
    // Sent in pieces that split sizes and headers.
    for piece in bytes.chunks(7) {
        stream.write_all(piece).unwrap();
    }
    for id in 1..=50i32 {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("an answer");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut body).unwrap();
        let correlation = i32::from_be_bytes(body[..4].try_into().unwrap());
        assert_eq!(correlation, id, "answers out of order");
    }
}
