//! The accept loop when accepting fails at once, again and again, as it does when the process is
//! out of file descriptors (EMFILE): it must back off, not spin. A listener whose every accept
//! fails counts how often it is asked, for 300 ms of the server's life.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use keel::broker::config::BrokerConfig;
use keel::broker::Broker;
use keel::io::mem::MemDisk;
use keel::io::net::{Connection, Listener, Network};
use keel::io::os::{OsClock, OsRng};
use keel::io::File;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A network whose listener never yields a connection: every accept fails with EMFILE.
#[derive(Clone, Default)]
struct Exhausted {
    accepts: Arc<AtomicU64>,
}

struct ExhaustedListener {
    accepts: Arc<AtomicU64>,
}

/// Never made: the listener has no connections to give.
struct NoConnection;

impl Network for Exhausted {
    type Listener = ExhaustedListener;
    type Connection = NoConnection;

    async fn bind(&self, _address: &str) -> io::Result<ExhaustedListener> {
        Ok(ExhaustedListener {
            accepts: self.accepts.clone(),
        })
    }

    async fn connect(&self, address: &str) -> io::Result<NoConnection> {
        Err(io::Error::other(format!(
            "no connections to {address} here"
        )))
    }
}

impl Listener for ExhaustedListener {
    type Connection = NoConnection;

    async fn accept(&self) -> io::Result<(NoConnection, String)> {
        self.accepts.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(24))
    }

    fn local_address(&self) -> io::Result<String> {
        Ok("127.0.0.1:1".to_owned())
    }
}

impl AsyncRead for NoConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        unreachable!("no connection is ever accepted")
    }
}

impl AsyncWrite for NoConnection {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        unreachable!("no connection is ever accepted")
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        unreachable!("no connection is ever accepted")
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        unreachable!("no connection is ever accepted")
    }
}

impl Connection for NoConnection {
    async fn send_file<F: File>(&mut self, _: &F, _: u64, _: u64) -> io::Result<()> {
        unreachable!("no connection is ever accepted")
    }
}

/// With every accept failing, the server asks again after 5 ms, then 10, 20, ... up to 1 s: a
/// handful of times in 300 ms, where a loop that retried at once asked hundreds of thousands
/// of times (and logged each). Each failure is counted in the metrics.
#[test]
fn failed_accepts_back_off_instead_of_spinning() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let network = Exhausted::default();
    let accepts = network.accepts.clone();
    let config = BrokerConfig {
        data_dir: "/data".into(),
        metrics_listen: None,
        ..BrokerConfig::default()
    };
    let broker =
        Arc::new(Broker::open(MemDisk::new(), OsClock, OsRng::default(), config).expect("broker"));
    runtime.block_on(async {
        let listener = network.bind("127.0.0.1:0").await.expect("bind");
        let stop = tokio::time::sleep(Duration::from_millis(300));
        keel::server::serve::<Exhausted, _, _, _>(listener, None, broker.clone(), stop)
            .await
            .expect("serve");
    });
    let asked = accepts.load(Ordering::SeqCst);
    assert!(asked >= 2, "the listener was asked {asked} times");
    assert!(
        asked <= 20,
        "the listener was asked {asked} times in 300 ms: accept spins"
    );
    let page = keel::broker::metrics::render(&broker);
    assert!(
        page.contains(&format!("keel_accept_failures_total {asked}")),
        "{page}"
    );
}
