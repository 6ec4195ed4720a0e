//! Record batch compression: the five codecs a Kafka `RecordBatch` names in the low three bits of
//! its attributes, decoded the way every mainstream client writes them (gzip members, raw or
//! xerial-framed snappy, lz4 frames, zstd frames) and encoded the way the Java client does, so that
//! any consumer can read what keel compresses.
//!
//! The records section arrives from untrusted producers, so whatever the input bytes, `decompress`:
//! - never panics;
//! - never produces more than `output_bytes_max` bytes, and checks that bound while it decodes, so
//!   a small bomb costs about the bound in memory, plus the codec's working buffers (at most about
//!   12 MiB for an lz4 frame; for zstd, the window the frame declares, capped by zstd at 128 MiB and
//!   reserved rather than filled);
//! - reports a stream that stops inside a frame, member or block as `Corrupt`, never as a shorter
//!   batch. A cut exactly between two gzip members, lz4 or zstd frames, or xerial blocks leaves a
//!   well-formed stream that no decoder can tell apart; the batch CRC, which covers the compressed
//!   bytes, catches that.

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A record batch compression codec, as numbered in the batch attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Attribute bits 0..=2 hold the codec; the higher bits are timestamp type, transactional and
/// control flags, which are none of this module's business.
const ATTRIBUTES_CODEC_MASK: i16 = 0b111;

impl Codec {
    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The codec named by the low three bits of a `RecordBatch` attributes field.
    ///
    /// # Errors
    /// `UnknownCodec` for ids 5 to 7, which Kafka has not assigned.
    pub fn from_attributes(attributes: i16) -> Result<Codec, CompressionError> {
        // The mask leaves 0..=7, so the cast cannot truncate, even for negative attributes.
        let id = (attributes & ATTRIBUTES_CODEC_MASK) as u8;
        Codec::ALL
            .into_iter()
            .find(|codec| codec.id() == id)
            .ok_or(CompressionError::UnknownCodec(id))
    }

    /// The id Kafka stores in the batch attributes.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// Kafka's name for the codec, as used by the `compression.type` configs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl FromStr for Codec {
    type Err = CompressionError;

    /// Parses Kafka's codec names. Case-sensitive, like Kafka's `CompressionType.forName`, so a
    /// config that Kafka would reject is rejected here too.
    fn from_str(name: &str) -> Result<Codec, CompressionError> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.name() == name)
            .ok_or_else(|| CompressionError::UnknownName(name.to_owned()))
    }
}

/// Why a batch could not be decompressed (or, rarely, compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressionError {
    /// Attributes name a codec id Kafka has not assigned (5 to 7).
    UnknownCodec(u8),
    /// A codec name that is not one of Kafka's.
    UnknownName(String),
    /// The bytes are not a well-formed stream of this codec. Compression failures, which the
    /// in-memory encoders cannot produce in practice, are reported as this too.
    Corrupt { codec: Codec, reason: String },
    /// The stream decodes to more than the caller's bound.
    TooLarge { codec: Codec, bytes_max: usize },
}

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressionError::UnknownCodec(id) => write!(
                f,
                "unknown compression codec id {id} in record batch attributes (Kafka defines 0 to 4)"
            ),
            CompressionError::UnknownName(name) => write!(
                f,
                "unknown compression codec name {name:?} (expected none, gzip, snappy, lz4 or zstd)"
            ),
            CompressionError::Corrupt { codec, reason } => {
                write!(f, "corrupt {} data: {reason}", codec.name())
            }
            CompressionError::TooLarge { codec, bytes_max } => write!(
                f,
                "{} data decompresses to more than the limit of {bytes_max} bytes",
                codec.name()
            ),
        }
    }
}

impl Error for CompressionError {}

fn corrupt(codec: Codec, reason: impl fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

fn too_large(codec: Codec, bytes_max: usize) -> CompressionError {
    CompressionError::TooLarge { codec, bytes_max }
}

fn compress_failed(codec: Codec, reason: impl fmt::Display) -> CompressionError {
    corrupt(codec, format_args!("compression failed: {reason}"))
}

/// Decompresses a batch's records section, producing at most `output_bytes_max` bytes.
///
/// # Errors
/// `TooLarge` as soon as the output would pass `output_bytes_max`; `Corrupt` for anything that is
/// not a complete, well-formed stream of `codec` (including empty input for any codec but `None`:
/// every framing writes at least a header, even for no records).
pub fn decompress(
    codec: Codec,
    input: &[u8],
    output_bytes_max: usize,
) -> Result<Vec<u8>, CompressionError> {
    if codec != Codec::None && input.is_empty() {
        return Err(corrupt(codec, "empty input"));
    }
    match codec {
        Codec::None => copy_bounded(input, output_bytes_max),
        Codec::Gzip => gzip_decompress(input, output_bytes_max),
        Codec::Snappy => snappy_decompress(input, output_bytes_max),
        Codec::Lz4 => lz4_decompress(input, output_bytes_max),
        Codec::Zstd => zstd_decompress(input, output_bytes_max),
    }
}

/// Compresses with the framing Kafka's Java client writes: one gzip member, snappy-java's xerial
/// framing with 32 KiB blocks, an lz4 frame of independent 64 KiB blocks, one zstd frame.
///
/// # Errors
/// `Corrupt` if an encoder fails, which none does in practice when writing to memory.
pub fn compress(codec: Codec, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => Ok(input.to_vec()),
        Codec::Gzip => gzip_compress(input),
        Codec::Snappy => xerial_compress(input),
        Codec::Lz4 => lz4_compress(input),
        Codec::Zstd => zstd_compress(input),
    }
}

fn copy_bounded(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    if input.len() > output_bytes_max {
        return Err(too_large(Codec::None, output_bytes_max));
    }
    Ok(input.to_vec())
}

/// Small enough to live on the stack, large enough that the per-read overhead of the streaming
/// decoders is noise.
const READ_CHUNK_BYTES: usize = 32 * 1024;

/// Appends everything `decoder` yields to `output`, failing the moment `output` would pass
/// `output_bytes_max`: the decoder is never asked for more than one chunk past the bound, so a
/// bomb costs a chunk of work, not its claimed size.
fn read_bounded(
    codec: Codec,
    decoder: &mut impl Read,
    output: &mut Vec<u8>,
    output_bytes_max: usize,
) -> Result<(), CompressionError> {
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    loop {
        let read_bytes = decoder.read(&mut chunk).map_err(|e| corrupt(codec, e))?;
        if read_bytes == 0 {
            return Ok(());
        }
        if read_bytes > output_bytes_max.saturating_sub(output.len()) {
            return Err(too_large(codec, output_bytes_max));
        }
        // `get` rather than indexing: a decoder claiming more than the chunk is a bug in it, and
        // must not become a panic here.
        let read = chunk.get(..read_bytes).ok_or_else(|| {
            corrupt(
                codec,
                "decoder reported more bytes than it was given room for",
            )
        })?;
        output.extend_from_slice(read);
    }
}

fn gzip_decompress(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    // Multi-member: some producers (and `cat`) concatenate gzip members, and gzip says the result
    // is the concatenation of their contents. Trailing bytes that are not a member are an error.
    let mut decoder = flate2::bufread::MultiGzDecoder::new(input);
    let mut output = Vec::new();
    read_bounded(Codec::Gzip, &mut decoder, &mut output, output_bytes_max)?;
    Ok(output)
}

fn gzip_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    // Java's GZIPOutputStream uses zlib's default level, as does this.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(input)
        .map_err(|e| compress_failed(Codec::Gzip, e))?;
    encoder
        .finish()
        .map_err(|e| compress_failed(Codec::Gzip, e))
}

/// snappy-java's stream header: this magic, then a version and a compatible version (i32 BE).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
/// What every snappy-java release writes for both version fields.
const XERIAL_VERSION: i32 = 1;
/// snappy-java's default block size, which Kafka's Java client uses.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

fn snappy_decompress(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    // Java clients write the xerial framing, librdkafka raw snappy; the magic tells them apart.
    // A raw block could in principle begin with the magic, but Kafka's own broker and librdkafka
    // make the same call, so no client can rely on the difference.
    let mut output = Vec::new();
    if input.starts_with(&XERIAL_MAGIC) {
        xerial_decompress_into(input, &mut output, output_bytes_max)?;
    } else {
        snappy_block_decompress_into(input, &mut output, output_bytes_max)?;
    }
    Ok(output)
}

fn xerial_decompress_into(
    input: &[u8],
    output: &mut Vec<u8>,
    output_bytes_max: usize,
) -> Result<(), CompressionError> {
    let mut rest = input;
    while !rest.is_empty() {
        // A header can only start where a block would: its first byte, read as a block length, is
        // negative. snappy-java accepts streams concatenated this way, so we do too.
        if rest.starts_with(&XERIAL_MAGIC) {
            rest = skip_xerial_header(rest)?;
            continue;
        }
        let (block, after) = split_xerial_block(rest)?;
        snappy_block_decompress_into(block, output, output_bytes_max)?;
        rest = after;
    }
    Ok(())
}

/// The versions are not checked: the block format has never changed, so they carry nothing a
/// decoder needs.
fn skip_xerial_header(input: &[u8]) -> Result<&[u8], CompressionError> {
    input
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt(Codec::Snappy, "truncated xerial stream header"))
}

/// Splits `[i32 BE length][block]` off the front of `input`.
fn split_xerial_block(input: &[u8]) -> Result<(&[u8], &[u8]), CompressionError> {
    let (length_bytes, after_length) = input
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(Codec::Snappy, "truncated xerial block length"))?;
    let length = i32::from_be_bytes(*length_bytes);
    let block_bytes = usize::try_from(length).map_err(|_| {
        corrupt(
            Codec::Snappy,
            format_args!("negative xerial block length {length}"),
        )
    })?;
    after_length.split_at_checked(block_bytes).ok_or_else(|| {
        corrupt(
            Codec::Snappy,
            format_args!(
                "xerial block of {block_bytes} bytes but only {} bytes remain",
                after_length.len()
            ),
        )
    })
}

/// Raw snappy states its decompressed length up front, so the bound is checked before the output
/// is allocated rather than while decoding.
fn snappy_block_decompress_into(
    block: &[u8],
    output: &mut Vec<u8>,
    output_bytes_max: usize,
) -> Result<(), CompressionError> {
    if block.is_empty() {
        return Err(corrupt(Codec::Snappy, "empty snappy block"));
    }
    let block_output_bytes =
        snap::raw::decompress_len(block).map_err(|e| corrupt(Codec::Snappy, e))?;
    if block_output_bytes > output_bytes_max.saturating_sub(output.len()) {
        return Err(too_large(Codec::Snappy, output_bytes_max));
    }
    let start = output.len();
    output.resize(start + block_output_bytes, 0);
    // `start` is the old length, never input-derived, so this slice cannot be out of range.
    match snap::raw::Decoder::new().decompress(block, &mut output[start..]) {
        Ok(written_bytes) => {
            output.truncate(start + written_bytes);
            Ok(())
        }
        Err(e) => {
            output.truncate(start);
            Err(corrupt(Codec::Snappy, e))
        }
    }
}

fn xerial_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut output = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len() / 2);
    output.extend_from_slice(&XERIAL_MAGIC);
    output.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    output.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| compress_failed(Codec::Snappy, e))?;
        let length = i32::try_from(block.len()).map_err(|e| compress_failed(Codec::Snappy, e))?;
        output.extend_from_slice(&length.to_be_bytes());
        output.extend_from_slice(&block);
    }
    Ok(output)
}

/// The LZ4 frame magic, little-endian on the wire. The legacy and skippable magics are valid LZ4
/// but no Kafka client writes them, and the legacy format has no end mark to check.
const LZ4_FRAME_MAGIC: [u8; 4] = 0x184D_2204_u32.to_le_bytes();

fn lz4_decompress(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    if !input.starts_with(&LZ4_FRAME_MAGIC) {
        return Err(corrupt(Codec::Lz4, "missing LZ4 frame magic"));
    }
    let mut source = EofWatch {
        rest: input,
        hit_eof: false,
    };
    let mut output = Vec::new();
    lz4_frames_decompress_into(&mut source, &mut output, output_bytes_max)?;
    Ok(output)
}

/// Decodes frames until the input is used up.
///
/// lz4_flex's `FrameDecoder` reports "end of data" both after a frame's end mark and after a block
/// that decodes to nothing, and also when the input runs out mid-frame. So a zero read is only the
/// end when the input is used up, and it is a clean end only if the decoder never found the input
/// short; otherwise it means more frames, or more blocks, follow.
///
/// One blind spot remains: a frame whose last block is empty and whose end mark is missing passes
/// as complete. No encoder writes empty blocks, and the batch CRC still covers the bytes.
fn lz4_frames_decompress_into(
    source: &mut EofWatch<'_>,
    output: &mut Vec<u8>,
    output_bytes_max: usize,
) -> Result<(), CompressionError> {
    let mut decoder = lz4_flex::frame::FrameDecoder::new(source);
    loop {
        let rest_bytes_before = decoder.get_ref().rest.len();
        read_bounded(Codec::Lz4, &mut decoder, output, output_bytes_max)?;
        let source = decoder.get_ref();
        if source.hit_eof {
            return Err(corrupt(Codec::Lz4, "input ends inside a frame"));
        }
        if source.rest.is_empty() {
            return Ok(());
        }
        // Every zero read consumes a header, block or end mark; this guards against a decoder
        // change turning the loop into a spin.
        if source.rest.len() == rest_bytes_before {
            return Err(corrupt(Codec::Lz4, "decoder stopped making progress"));
        }
    }
}

/// A slice reader that remembers whether anyone asked it for bytes past its end, which is how a
/// truncated lz4 frame is told apart from a complete one.
struct EofWatch<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl Read for EofWatch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.hit_eof = true;
        }
        self.rest.read(buf)
    }
}

fn lz4_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    // What Kafka's KafkaLZ4BlockOutputStream writes: independent 64 KiB blocks, no block or
    // content checksums, no content size, and (for magic v2) a correct header checksum.
    let frame_info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(frame_info, Vec::new());
    encoder
        .write_all(input)
        .map_err(|e| compress_failed(Codec::Lz4, e))?;
    encoder.finish().map_err(|e| compress_failed(Codec::Lz4, e))
}

thread_local! {
    /// zstd's contexts are large and zeroed when made (making one cost more than decompressing a
    /// typical batch): each thread keeps one of each and reuses it. A frame with a large window
    /// leaves the context holding buffers that size until zstd shrinks them (after 128 frames
    /// that need far less), so memory stays bounded by threads times the largest window.
    static ZSTD_DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_decompress(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    // The window limit stays at zstd's default (128 MiB): Kafka allows levels up to 22, whose
    // streamed frames declare windows that large, and the window is reserved, not filled, so the
    // memory actually touched still follows the output bound.
    ZSTD_DCTX.with(|cell| {
        let mut output = Vec::new();
        let Ok(mut slot) = cell.try_borrow_mut() else {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| corrupt(Codec::Zstd, e))?;
            read_bounded(Codec::Zstd, &mut decoder, &mut output, output_bytes_max)?;
            return Ok(output);
        };
        if slot.is_none() {
            let context = zstd::zstd_safe::DCtx::try_create()
                .ok_or_else(|| corrupt(Codec::Zstd, "no memory for a decompression context"))?;
            *slot = Some(context);
        }
        let context = slot.as_mut().expect("made above");
        // `with_context` resets the context's session: nothing of an earlier frame (one that
        // failed half way, say) carries over.
        let mut decoder = zstd::stream::read::Decoder::with_context(input, context);
        read_bounded(Codec::Zstd, &mut decoder, &mut output, output_bytes_max)?;
        Ok(output)
    })
}

fn zstd_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    // Level 3 is both zstd's default and Kafka's default `compression.zstd.level`.
    let level = zstd::DEFAULT_COMPRESSION_LEVEL;
    ZSTD_COMPRESSOR.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return zstd::bulk::compress(input, level).map_err(|e| compress_failed(Codec::Zstd, e));
        };
        if slot.is_none() {
            let compressor =
                zstd::bulk::Compressor::new(level).map_err(|e| compress_failed(Codec::Zstd, e))?;
            *slot = Some(compressor);
        }
        let compressor = slot.as_mut().expect("made above");
        compressor
            .compress(input)
            .map_err(|e| compress_failed(Codec::Zstd, e))
    })
}
