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
    matches!(stream.read(&mut answer), Ok(0))
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
