//! Kafka's error codes that keel answers with, and how engine errors map onto them.

use crate::broker::topics::TopicError;
use crate::compression::CompressionError;
use crate::log::batch::BatchError;
use crate::log::LogError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const REPLICA_NOT_AVAILABLE: i16 = 9;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const LOG_DIR_NOT_FOUND: i16 = 57;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

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
