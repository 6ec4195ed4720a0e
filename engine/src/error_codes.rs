//! Kafka's error codes, as keel answers them: one table, taken from kafka-protocol's
//! `ResponseError` (the codes Kafka's `Errors.java` defines), so that no module keeps its own
//! numbers. The broker's modules and the protocol handlers both use it.

use kafka_protocol::ResponseError;

/// No error (Kafka has no `ResponseError` for it).
pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
pub const REPLICA_NOT_AVAILABLE: i16 = ResponseError::ReplicaNotAvailable.code();
pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
pub const NOT_CONTROLLER: i16 = ResponseError::NotController.code();
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = ResponseError::InvalidCommitOffsetSize.code();
pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
pub const NOT_ENOUGH_REPLICAS: i16 = ResponseError::NotEnoughReplicas.code();
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
pub const INVALID_TIMESTAMP: i16 = ResponseError::InvalidTimestamp.code();
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ResponseError::OutOfOrderSequenceNumber.code();
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
pub const UNKNOWN_PRODUCER_ID: i16 = ResponseError::UnknownProducerId.code();
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ResponseError::TransactionalIdAuthorizationFailed.code();
pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
pub const LOG_DIR_NOT_FOUND: i16 = ResponseError::LogDirNotFound.code();
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = ResponseError::UnsupportedCompressionType.code();
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
pub const GROUP_MAX_SIZE_REACHED: i16 = ResponseError::GroupMaxSizeReached.code();
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
pub const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
pub const MISMATCHED_ENDPOINT_TYPE: i16 = ResponseError::MismatchedEndpointType.code();
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = ResponseError::UnsupportedEndpointType.code();

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers clients act on, as Kafka's Errors.java defines them: a kafka-protocol upgrade
    /// that renumbered one would fail here, not in a client.
    #[test]
    fn codes_are_kafkas() {
        let cases = [
            (UNKNOWN_SERVER_ERROR, -1),
            (CORRUPT_MESSAGE, 2),
            (UNKNOWN_TOPIC_OR_PARTITION, 3),
            (NOT_LEADER_OR_FOLLOWER, 6),
            (COORDINATOR_NOT_AVAILABLE, 15),
            (NOT_COORDINATOR, 16),
            (NOT_ENOUGH_REPLICAS, 19),
            (UNKNOWN_MEMBER_ID, 25),
            (REBALANCE_IN_PROGRESS, 27),
            (INVALID_TIMESTAMP, 32),
            (UNSUPPORTED_VERSION, 35),
            (INVALID_CONFIG, 40),
            (INVALID_REQUEST, 42),
            (OUT_OF_ORDER_SEQUENCE_NUMBER, 45),
            (INVALID_PRODUCER_EPOCH, 47),
            (KAFKA_STORAGE_ERROR, 56),
            (UNKNOWN_PRODUCER_ID, 59),
            (FETCH_SESSION_ID_NOT_FOUND, 70),
            (UNSUPPORTED_COMPRESSION_TYPE, 76),
            (MEMBER_ID_REQUIRED, 79),
            (FENCED_INSTANCE_ID, 82),
            (INVALID_RECORD, 87),
            (UNKNOWN_TOPIC_ID, 100),
            (MISMATCHED_ENDPOINT_TYPE, 114),
        ];
        for (code, kafka) in cases {
            assert_eq!(code, kafka);
        }
    }
}
