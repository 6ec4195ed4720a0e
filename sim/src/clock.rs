//! The engine's `Clock` and `Rng` seams on madsim: simulated time and the seed's randomness.

use std::time::UNIX_EPOCH;

use keel::io::{Clock, Rng};
use madsim::rand::Rng as _;

/// Simulated wall-clock and monotonic time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let now = madsim::time::TimeHandle::current().now_time();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }

    fn monotonic_ns(&self) -> u64 {
        let elapsed = madsim::time::TimeHandle::current().elapsed();
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Randomness drawn from the seed, in simulation order.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimRandom;

impl Rng for SimRandom {
    fn next_u64(&self) -> u64 {
        madsim::rand::thread_rng().gen()
    }
}

/// Milliseconds of simulated time since the run started.
pub fn elapsed_ms() -> u64 {
    SimClock.monotonic_ns() / 1_000_000
}
