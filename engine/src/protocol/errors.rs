//! Kafka's error codes that keel answers with, and how engine errors map onto them.

use crate::broker::topics::TopicError;
use crate::compression::CompressionError;
use crate::log::batch::BatchError;
use crate::log::LogError;

pub use crate::error_codes::*;

/// The code and message for a topic operation's failure.
pub fn topic_error(error: &TopicError) -> (i16, String) {
    match error {
        TopicError::InvalidName(why) => (INVALID_TOPIC_EXCEPTION, why.clone()),
        TopicError::AlreadyExists => (TOPIC_ALREADY_EXISTS, "topic already exists".to_owned()),
        TopicError::Unknown => (UNKNOWN_TOPIC_OR_PARTITION, "unknown topic".to_owned()),
        TopicError::InvalidPartitions(why) => (INVALID_PARTITIONS, why.clone()),
        TopicError::InvalidConfig(why) => (INVALID_CONFIG, why.clone()),
        TopicError::Storage(why) => (KAFKA_STORAGE_ERROR, why.clone()),
        TopicError::Internal => (
            INVALID_TOPIC_EXCEPTION,
            "__consumer_offsets is an internal topic: the group coordinator's committed offsets cannot be deleted"
                .to_owned(),
        ),
    }
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
