//! The server: accepts connections on the network seam, reads Kafka request frames, answers
//! them in order, and runs the broker's housekeeping beside them. Runs on tokio in production and
//! on madsim's runtime under the simulator (tokio is madsim-tokio).
//!
//! Limits: a frame larger than socket.request.max.bytes, a negative size, or a frame that does
//! not decode closes its connection with a log line (as Kafka does); connections beyond
//! max.connections are closed on accept. Each connection answers its requests one at a time, in
//! order (as Kafka does), and reads ahead while it answers: up to queued.max.requests further
//! requests are read and queued, then the socket is left alone until the queue drains. Shutdown
//! (SIGTERM in the binary) stops accepting, lets every connection finish the request it is
//! answering, then closes every log cleanly (flush, clean-shutdown marker).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::broker::Broker;
use crate::io::net::{Connection, Listener, Network};
use crate::io::{Clock, Disk, Rng};
use crate::protocol::frame::{Chunk, Frame};
use crate::protocol::{self, ProtocolError};

/// How often the housekeeping task looks for flushes due.
const FLUSH_CHECK_INTERVAL_MS: u64 = 10;
/// Bytes a connection reads at a time (more when a frame needs it).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How long shutdown waits for connections to finish their requests.
const DRAIN_MS_MAX: u64 = 10_000;

/// Serves `broker` on `listener` until `shutdown` resolves, then closes every log cleanly.
///
/// # Errors
/// Errors of the listener itself (an accept that fails for a reason other than the peer).
pub async fn serve<N, D, C, R>(
    listener: N::Listener,
    metrics: Option<N::Listener>,
    broker: Arc<Broker<D, C, R>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    N: Network,
    D: Disk,
    C: Clock,
    R: Rng,
{
    broker.set_bound_address(&listener.local_address()?);
    tracing::info!(address = %listener.local_address()?, "keel is serving");
    let stop = Stop::default();
    let open = Arc::new(AtomicUsize::new(0));
    let housekeeping = tokio::spawn(housekeeping(broker.clone(), stop.clone()));
    let metrics =
        metrics.map(|listener| tokio::spawn(serve_metrics::<N, D, C, R>(listener, broker.clone())));
    tokio::pin!(shutdown);
    let mut failures = AcceptFailures::default();
    loop {
        // Every `select!` here is biased: an unbiased one draws its order from tokio's
        // per-thread generator, seeded from a process-wide counter (see `Stop`). The order
        // written is the one wanted.
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (connection, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        let pause = failures.failed(&e, &broker);
                        // Out of descriptors (EMFILE, ENFILE) an accept fails at once, again
                        // and again: back off instead of spinning, as Go's and tokio's servers
                        // do, while still answering the stop.
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                        continue;
                    }
                };
                failures.succeeded();
                admit::<N, D, C, R>(connection, peer, &broker, &open, stop.clone());
            }
        }
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    stop.stop();
    // Fetches on a long poll, and joins and syncs waiting on a rebalance, would hold their
    // connections to the drain's end: they are answered now.
    broker.begin_shutdown();
    drain(&open, &broker.clock).await;
    housekeeping.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    broker.close();
    Ok(())
}

/// The first pause after a failed accept; it doubles while accepts keep failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Failed accepts are logged at most once per this long, with how many there were.
const ACCEPT_LOG_INTERVAL_NS: u64 = 10_000_000_000;

/// The accept loop's failures in a row: how long to pause, and when they were last logged.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at_ns: Option<u64>,
}

impl AcceptFailures {
    /// Counts a failed accept (in the metrics, and in a log line at most every
    /// `ACCEPT_LOG_INTERVAL_NS`) and returns how long to pause before the next.
    fn failed<D: Disk, C: Clock, R: Rng>(
        &mut self,
        e: &io::Error,
        broker: &Broker<D, C, R>,
    ) -> Duration {
        broker.metrics.accept_failed();
        self.unlogged += 1;
        let now_ns = broker.clock.monotonic_ns();
        let due = self
            .logged_at_ns
            .is_none_or(|at| now_ns.saturating_sub(at) >= ACCEPT_LOG_INTERVAL_NS);
        if due {
            let exhausted = matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                descriptors_exhausted = exhausted,
                "accepting connections fails; backing off"
            );
            self.unlogged = 0;
            self.logged_at_ns = Some(now_ns);
        }
        let pause = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.in_a_row.min(16))
            .min(ACCEPT_BACKOFF_MAX);
        self.in_a_row = self.in_a_row.saturating_add(1);
        pause
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// errno values for "too many open files" in the process (EMFILE) and the system (ENFILE).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

fn admit<N, D, C, R>(
    connection: N::Connection,
    peer: String,
    broker: &Arc<Broker<D, C, R>>,
    open: &Arc<AtomicUsize>,
    stop: Stop,
) where
    N: Network,
    D: Disk,
    C: Clock,
    R: Rng,
{
    if open.load(Ordering::SeqCst) >= broker.config.connections_max {
        tracing::warn!(%peer, limit = broker.config.connections_max, "max.connections reached; connection closed");
        return;
    }
    open.fetch_add(1, Ordering::SeqCst);
    let (broker, open) = (broker.clone(), open.clone());
    tokio::spawn(async move {
        if let Err(e) = converse(connection, &peer, &broker, stop).await {
            tracing::info!(%peer, error = %e, "connection closed");
        }
        open.fetch_sub(1, Ordering::SeqCst);
    });
}

/// The server's stop signal: a flag, and the connections waiting for it woken in the order they
/// began to wait. (tokio's watch channel spreads its waiters over shards it picks with a
/// generator seeded from a process-wide counter: the order in which connections saw the stop,
/// and with it a simulated seed's history, depended on the seeds run before it.)
#[derive(Clone, Default)]
struct Stop(Arc<StopState>);

#[derive(Default)]
struct StopState {
    stopped: AtomicBool,
    waiters: Notify,
}

impl Stop {
    fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.waiters.notify_waiters();
    }

    fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once `stop` has been called. Cancel-safe.
    async fn stopped(&self) {
        let waiting = self.0.waiters.notified();
        tokio::pin!(waiting);
        // Registered before the flag is read, so a `stop` in between still wakes it.
        waiting.as_mut().enable();
        if !self.is_stopped() {
            waiting.await;
        }
    }
}

async fn drain<C: Clock>(open: &AtomicUsize, clock: &C) {
    let deadline_ns = clock.monotonic_ns() + DRAIN_MS_MAX * 1_000_000;
    while open.load(Ordering::SeqCst) > 0 && clock.monotonic_ns() < deadline_ns {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Flushes that the flush policies say are due, retention and compaction, until told to stop.
async fn housekeeping<D: Disk, C: Clock, R: Rng>(broker: Arc<Broker<D, C, R>>, stop: Stop) {
    let retention_every =
        (broker.config.retention_check_interval_ms / FLUSH_CHECK_INTERVAL_MS).max(1);
    let cleaner_every = (broker.config.cleaner_backoff_ms / FLUSH_CHECK_INTERVAL_MS).max(1);
    let mut ticks: u64 = 0;
    while !stop.is_stopped() {
        tokio::time::sleep(Duration::from_millis(FLUSH_CHECK_INTERVAL_MS)).await;
        broker.flush_due().await;
        broker
            .groups
            .tick((broker.clock.monotonic_ns() / 1_000_000) as i64);
        ticks += 1;
        // Retention deletes files and compaction rewrites segments: disk work that must not
        // hold up the connections sharing this worker (flushes take care of their own syncs).
        if ticks.is_multiple_of(retention_every) {
            crate::io::blocking(|| broker.apply_retention());
        }
        if ticks.is_multiple_of(cleaner_every) {
            crate::io::blocking(|| broker.compact_due());
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Io(io::Error),
    Protocol(ProtocolError),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Io(e) => write!(f, "{e}"),
            Ended::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl From<io::Error> for Ended {
    fn from(e: io::Error) -> Ended {
        Ended::Io(e)
    }
}

/// One connection: requests are answered in order, one at a time, while the next ones are read
/// ahead (up to queued.max.requests), until the peer leaves, a request is malformed, or the
/// server stops.
async fn converse<Conn, D, C, R>(
    mut connection: Conn,
    peer: &str,
    broker: &Broker<D, C, R>,
    stop: Stop,
) -> Result<(), Ended>
where
    Conn: Connection,
    D: Disk,
    C: Clock,
    R: Rng,
{
    let mut reader = FrameReader::new(broker.config.request_bytes_max);
    let mut queued: VecDeque<BytesMut> = VecDeque::new();
    let queue_max = broker.config.inflight_requests_max.max(1);
    loop {
        let frame = match queued.pop_front() {
            Some(frame) => frame,
            None => {
                let next = tokio::select! {
                    biased;
                    () = stop.stopped() => return Ok(()),
                    frame = reader.next(&mut connection) => frame?,
                };
                match next {
                    Some(frame) => frame,
                    None => return Ok(()),
                }
            }
        };
        let mut request = protocol::parse_request(frame.freeze()).map_err(Ended::Protocol)?;
        request.client_host = client_host(peer);
        let handling = protocol::handle(broker, request);
        tokio::pin!(handling);
        // Read ahead while the request is answered. `FrameReader::next` is cancel-safe: bytes
        // read before the answer was ready stay in its buffer.
        let answer = loop {
            let may_read = !reader.ended && queued.len() < queue_max;
            tokio::select! {
                biased;
                answer = &mut handling => break answer,
                frame = reader.next(&mut connection), if may_read => match frame? {
                    Some(frame) => queued.push_back(frame),
                    None => reader.ended = true,
                },
            }
        };
        if let Some(answer) = answer.map_err(Ended::Protocol)? {
            write_frame(&mut connection, answer).await?;
        }
        if stop.is_stopped() || (reader.ended && queued.is_empty()) {
            return Ok(());
        }
    }
}

/// A peer address as Kafka shows client hosts: "/host".
fn client_host(peer: &str) -> String {
    let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
    format!("/{}", host.trim_start_matches('[').trim_end_matches(']'))
}

/// Splits a byte stream into request frames. Its only await is a read into its own buffer, so a
/// `next` that is cancelled loses nothing.
struct FrameReader {
    buffer: BytesMut,
    request_bytes_max: usize,
    /// The peer closed its side.
    ended: bool,
}

impl FrameReader {
    fn new(request_bytes_max: usize) -> FrameReader {
        FrameReader {
            buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
            request_bytes_max,
            ended: false,
        }
    }

    /// The next frame's bytes (without the size), `None` at a clean end of stream.
    async fn next<Conn: Connection>(
        &mut self,
        connection: &mut Conn,
    ) -> Result<Option<BytesMut>, Ended> {
        loop {
            if self.buffer.len() >= 4 {
                let size = i32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes"));
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&s| s <= self.request_bytes_max)
                    .ok_or_else(|| {
                        Ended::Protocol(ProtocolError(format!(
                            "request size {size} is negative or above socket.request.max.bytes {}",
                            self.request_bytes_max
                        )))
                    })?;
                if self.buffer.len() >= 4 + size {
                    self.buffer.advance(4);
                    return Ok(Some(self.buffer.split_to(size)));
                }
                self.buffer.reserve(4 + size - self.buffer.len());
            } else {
                self.buffer.reserve(READ_BUFFER_BYTES);
            }
            if connection.read_buf(&mut self.buffer).await? == 0 {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                return Err(Ended::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the peer left {} bytes into a request", self.buffer.len()),
                )));
            }
        }
    }
}

async fn write_frame<Conn: Connection, F: crate::io::File>(
    connection: &mut Conn,
    frame: Frame<F>,
) -> io::Result<()> {
    for chunk in frame.chunks {
        match chunk {
            Chunk::Bytes(bytes) => connection.write_all(&bytes).await?,
            Chunk::File {
                file,
                position,
                len,
            } => connection.send_file(&*file, position, len).await?,
        }
    }
    connection.flush().await
}

/// The largest HTTP request head the metrics endpoint reads.
const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// `GET /metrics` in Prometheus' text format; anything else is a 404. One request per
/// connection.
async fn serve_metrics<N, D, C, R>(listener: N::Listener, broker: Arc<Broker<D, C, R>>)
where
    N: Network,
    D: Disk,
    C: Clock,
    R: Rng,
{
    if let Ok(address) = listener.local_address() {
        tracing::info!(%address, "metrics at GET /metrics");
    }
    loop {
        let Ok((mut connection, _)) = listener.accept().await else {
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let _ = answer_metrics(&mut connection, &broker).await;
        });
    }
}

async fn answer_metrics<Conn: Connection, D: Disk, C: Clock, R: Rng>(
    connection: &mut Conn,
    broker: &Broker<D, C, R>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HTTP_REQUEST_BYTES_MAX {
        let n = connection.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?")
    {
        ("200 OK", crate::broker::metrics::render(broker))
    } else {
        ("404 Not Found", "not found: try GET /metrics\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(response.as_bytes()).await?;
    connection.shutdown().await
}
