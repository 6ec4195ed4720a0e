//! keel-sim: the deterministic simulator's pieces that do not need the madsim runtime.
//!
//! `disk` is `SimDisk`, a `keel::io::Disk` that keeps a page cache apart from the platter, loses
//! the unsynced part of it on power loss and injects faults on demand; `rng` is the seeded
//! generator all of its random choices come from, so a failing seed replays exactly. The madsim
//! harness (network, clock, node crashes) builds on these.

pub mod disk;
pub mod rng;
