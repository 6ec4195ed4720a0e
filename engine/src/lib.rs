//! keel: a Kafka-compatible message broker whose storage engine runs the same code on real IO and
//! under a deterministic simulator. See ARCHITECTURE.md for the crates, seams and invariants.

pub mod broker;
pub mod bytes;
pub mod compression;
pub mod error_codes;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod io;
pub mod log;
pub mod partition;
pub mod protocol;
pub mod quorum;
pub mod server;
