//! The network seam: a listener that accepts connections, and connections that carry Kafka's
//! framed requests and responses and can send a file range without copying it
//! (`send_file`: sendfile(2) in production, a read-then-write on simulated networks).
//!
//! The broker's async code is written against these traits. In production `io::os::TcpNetwork`
//! implements them over tokio's TCP; under `--cfg madsim` the same type runs on madsim's
//! simulated TCP (tokio is madsim-tokio), and `send_file` falls back to read-then-write.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::File;

/// Bytes read from a file per write when a range is copied rather than sent with sendfile.
pub const COPY_CHUNK_BYTES: usize = 256 * 1024;

pub trait Network: Clone + Send + Sync + 'static {
    type Listener: Listener<Connection = Self::Connection>;
    type Connection: Connection;

    /// Listens on `address` (host:port; port 0 picks a free one).
    fn bind(&self, address: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Connects to `address` (host:port): the quorum's voters reach one another this way.
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Connection>> + Send;
}

pub trait Listener: Send + Sync + 'static {
    type Connection: Connection;

    /// The next connection and its peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Connection, String)>> + Send;

    /// The address actually bound (with the port chosen for port 0).
    ///
    /// # Errors
    /// When the socket has no address.
    fn local_address(&self) -> io::Result<String>;
}

pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Sends `len` bytes of `file` from `position`, all of them, or fails.
    fn send_file<F: File>(
        &mut self,
        file: &F,
        position: u64,
        len: u64,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// `send_file` for connections that cannot splice: read the range in chunks and write it.
///
/// # Errors
/// IO errors of the file or the connection; `UnexpectedEof` when the file is shorter.
pub async fn copy_file_range<C, F>(
    connection: &mut C,
    file: &F,
    mut position: u64,
    len: u64,
) -> io::Result<()>
where
    C: AsyncWrite + Unpin + Send,
    F: File,
{
    let mut left = len;
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES.min(len as usize)];
    while left > 0 {
        let n = (left as usize).min(buffer.len());
        file.read_exact_at(&mut buffer[..n], position)?;
        connection.write_all(&buffer[..n]).await?;
        position += n as u64;
        left -= n as u64;
    }
    Ok(())
}
