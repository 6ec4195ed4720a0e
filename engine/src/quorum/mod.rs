//! The metadata quorum: cluster metadata as a log replicated by Raft (raft-rs's state machine),
//! applied in order to an in-memory image on every node, as KRaft does.
//!
//! - `records`: what the log holds (broker registrations, topics, partition states, configs).
//! - `image`: the metadata as of an index, and snapshots of it.
//! - `storage`: raft-rs's `Storage` in files on the `Disk` seam, synced before raft-rs acts.
//! - `controller`: what the active controller decides (fencing, leaders, placement).
//! - `node`: one voter: raft-rs's `RawNode` with its ready loop, proposals and the image.
//! - `transport`: Raft messages between voters over the `Network` seam, and the async driver
//!   that ticks the node by the clock.

/// The metadata quorum's files in the data directory: Kafka's name for the metadata log's
/// directory, which no topic may take (see `topics::validate_name`).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// The topic name `METADATA_DIR` would belong to.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub mod controller;
pub mod image;
pub mod node;
pub mod records;
pub mod storage;
pub mod transport;
