//! keel-sim: the deterministic simulator that runs keel's own storage code on a disk that loses
//! unsynced page cache, tears writes and rots bits, under madsim's scheduler, with seeded fault
//! schedules and checkers that hold the engine to its durability contract.
//!
//! `disk` and `rng` build everywhere (their unit tests run in ordinary `cargo test`); the harness
//! builds only with `RUSTFLAGS="--cfg madsim"` into `target/sim` (`cargo xtask sim`).

pub mod disk;
pub mod rng;

#[cfg(madsim)]
pub mod broker_node;
#[cfg(madsim)]
pub mod checkers;
#[cfg(madsim)]
pub mod clock;
#[cfg(madsim)]
pub mod history;
#[cfg(madsim)]
pub mod kafka;
#[cfg(madsim)]
pub mod node;
#[cfg(madsim)]
pub mod quorum;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod workload;
