//! Response frames made of byte chunks and file ranges: how a Fetch response reaches the socket
//! without copying record bytes through user space. The connection writes `Bytes` chunks as they
//! are and sends `File` chunks with `Connection::send_file` (sendfile(2) in production).

use std::sync::Arc;

use bytes::Bytes;

/// One piece of a response on the wire.
pub enum Chunk<F> {
    Bytes(Bytes),
    /// `len` bytes of `file` from `position`: whole record batches from a segment.
    File {
        file: Arc<F>,
        position: u64,
        len: u64,
    },
}

impl<F> Chunk<F> {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(bytes) => bytes.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole response (size prefix included) as chunks.
pub struct Frame<F> {
    pub chunks: Vec<Chunk<F>>,
}

impl<F> Frame<F> {
    /// A frame whose body is already encoded (every API but Fetch).
    pub fn from_bytes(bytes: Bytes) -> Frame<F> {
        Frame {
            chunks: vec![Chunk::Bytes(bytes)],
        }
    }

    pub fn len(&self) -> u64 {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
