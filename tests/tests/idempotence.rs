//! librdkafka's idempotent producer (enable.idempotence=true) while keel is killed with SIGKILL
//! and restarted, twice, in the middle of producing: every delivery succeeds and every partition
//! then holds each message exactly once, in order. What was in flight at the kill is retried by
//! the client; keel must recognise a retry of a batch it had written (its producer state is
//! rebuilt from the log on restart) and not write it again.

use std::thread;
use std::time::Duration;

use keel_tests::{python, python_background, unique_name, Broker};

#[test]
fn idempotent_producer_across_kill9_has_no_duplicates_and_no_gaps() {
    let mut broker = Broker::start(&[]);
    let topic = unique_name("idempotent");
    let address = broker.address();
    let args = ["--bootstrap", &address, "--topic", &topic];
    let mut produce = vec!["--mode", "produce"];
    produce.extend_from_slice(&args);
    let producing = python_background("confluent_idempotent.py", &produce);
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(1300));
        broker.kill9();
        thread::sleep(Duration::from_millis(200));
        broker.restart();
    }
    let out = producing
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let count = out
        .lines()
        .find_map(|line| line.strip_prefix("PRODUCED "))
        .expect("the producer prints how many it produced")
        .to_owned();
    let mut verify = vec!["--mode", "verify", "--count", &count];
    verify.extend_from_slice(&args);
    python("confluent_idempotent.py", &verify);
}
