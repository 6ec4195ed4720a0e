//! Kafka's error codes that keel answers with, and how engine errors map onto them, and the
//! messages clients are sent with them.

use std::path::Path;

use crate::broker::topics::TopicError;
use crate::compression::CompressionError;
use crate::log::batch::BatchError;
use crate::log::LogError;

pub use crate::error_codes::*;

/// The code and message for a topic operation's failure; paths in the message are relative to
/// `data_dir` (see `for_client`).
pub fn topic_error(error: &TopicError, data_dir: &Path) -> (i16, String) {
    match error {
        TopicError::InvalidName(why) => (INVALID_TOPIC_EXCEPTION, why.clone()),
        TopicError::AlreadyExists => (TOPIC_ALREADY_EXISTS, "topic already exists".to_owned()),
        TopicError::Unknown => (UNKNOWN_TOPIC_OR_PARTITION, "unknown topic".to_owned()),
        TopicError::InvalidPartitions(why) => (INVALID_PARTITIONS, why.clone()),
        TopicError::InvalidConfig(why) => (INVALID_CONFIG, why.clone()),
        TopicError::Storage(why) => (KAFKA_STORAGE_ERROR, for_client(why, data_dir)),
        TopicError::Pending => (
            LEADER_NOT_AVAILABLE,
            "the topic is being created in the cluster; retry".to_owned(),
        ),
        TopicError::Internal => (
            INVALID_TOPIC_EXCEPTION,
            "__consumer_offsets is an internal topic: the group coordinator's committed offsets cannot be deleted"
                .to_owned(),
        ),
    }
}

/// `message` as a client may be sent it: a path inside `data_dir` becomes relative to it
/// (`topic-0/00000000000000000000.log`), `data_dir` itself `.`. The disk's errors name their
/// files by absolute path, which tells any client how the broker's host is laid out; the log
/// lines that report the error keep the whole path.
pub fn for_client(message: &str, data_dir: &Path) -> String {
    let dir = data_dir.display().to_string();
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(dir) {
        let after = &rest[at + dir.len()..];
        out.push_str(&rest[..at]);
        // Only the directory itself: `/data` in `/database` is another path.
        rest = match after.chars().next() {
            Some('/') => &after[1..],
            Some(c) if is_path_char(c) => {
                out.push_str(dir);
                after
            }
            _ => {
                out.push('.');
                after
            }
        };
    }
    out.push_str(rest);
    out
}

/// Whether `c` may continue a file name (so a match that `c` follows is not the whole name).
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The code for a log operation's failure.
pub fn log_error(error: &LogError) -> i16 {
    match error {
        LogError::Io(_) => KAFKA_STORAGE_ERROR,
        LogError::InvalidBatch(BatchError::CrcMismatch { .. }) => CORRUPT_MESSAGE,
        // Only a codec id Kafka never assigned is an unsupported compression type; a payload
        // that does not decompress under its codec is corrupt, as Kafka answers it.
        LogError::InvalidBatch(BatchError::Compression(e)) => match e {
            CompressionError::UnknownCodec(_) | CompressionError::UnknownName(_) => {
                UNSUPPORTED_COMPRESSION_TYPE
            }
            CompressionError::Corrupt { .. } => CORRUPT_MESSAGE,
            CompressionError::TooLarge { .. } => MESSAGE_TOO_LARGE,
        },
        LogError::InvalidBatch(_) => INVALID_RECORD,
        LogError::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::Corrupt { .. } => CORRUPT_MESSAGE,
        LogError::Config(_) => INVALID_CONFIG,
        LogError::TimestampOutOfRange { .. } => INVALID_TIMESTAMP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Codec;

    #[test]
    fn messages_for_clients_name_paths_relative_to_the_data_directory() {
        let cases = [
            (
                "/var/lib/keel/t-0: IO error: /var/lib/keel/t-0/00000000000000000000.log: No space left on device (os error 28)",
                "t-0: IO error: t-0/00000000000000000000.log: No space left on device (os error 28)",
            ),
            ("/var/lib/keel: Permission denied", ".: Permission denied"),
            ("/var/lib/keel2/x and /var/lib/keel-old", "/var/lib/keel2/x and /var/lib/keel-old"),
            ("no path here", "no path here"),
        ];
        for (message, expected) in cases {
            assert_eq!(for_client(message, Path::new("/var/lib/keel/")), expected);
        }
    }

    #[test]
    fn compression_failures_map_to_kafkas_codes() {
        let corrupt = CompressionError::Corrupt {
            codec: Codec::Zstd,
            reason: "bad frame".to_owned(),
        };
        let too_large = CompressionError::TooLarge {
            codec: Codec::Gzip,
            bytes_max: 1,
        };
        let cases = [
            (
                CompressionError::UnknownCodec(5),
                UNSUPPORTED_COMPRESSION_TYPE,
            ),
            (corrupt, CORRUPT_MESSAGE),
            (too_large, MESSAGE_TOO_LARGE),
        ];
        for (error, code) in cases {
            let error = LogError::InvalidBatch(BatchError::Compression(error));
            assert_eq!(log_error(&error), code, "{error}");
        }
    }
}
