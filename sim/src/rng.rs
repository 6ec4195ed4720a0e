//! The simulator's seeded random number generator.
//!
//! Every random decision of the simulated disk (which fault fires, which dirty block reaches the
//! platter at a power loss) comes from a `SimRng`, so a run is a pure function of its seed and a
//! failing seed replays exactly. It is splitmix64: one 64-bit word of state, fast, and good enough
//! statistically for choosing faults; it is not cryptographic and need not be. It deliberately
//! does not come from madsim, so the disk model builds and tests without the madsim runtime.

/// The splitmix64 increment (the golden ratio as a 64-bit fraction): consecutive states differ by
/// it, which visits all 2^64 states before repeating.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A uniform `f64` in [0, 1) keeps only 53 bits (the mantissa); this scales them down.
const F64_UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// A deterministic generator: the same seed always yields the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator seeded with `seed`. Every seed, zero included, gives a full-period sequence.
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0 (an empty range has no better answer, and callers
    /// picking "a prefix shorter than an empty buffer" want 0).
    ///
    /// Uses the high half of a 128-bit product rather than `%`: the bias is below 2^-64 per
    /// value, far under anything a simulation run could observe.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`. `p <= 0` (and NaN) is never, `p >= 1` always; neither extreme
    /// draws from the generator, so turning a fault off does not shift the rest of the run.
    pub fn chance(&mut self, p: f64) -> bool {
        if p >= 1.0 {
            return true;
        }
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        ((self.next_u64() >> 11) as f64 * F64_UNIT) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SimRng::new(1).next_u64(), SimRng::new(2).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SimRng::new(7);
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = rng.below(5);
            assert!(v < 5);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every value of 0..5 appears");
    }

    #[test]
    fn chance_extremes_and_middle() {
        let mut rng = SimRng::new(3);
        assert!((0..1000).all(|_| rng.chance(1.0)));
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!(!rng.chance(f64::NAN));
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!(
            (2_000..3_000).contains(&hits),
            "{hits} hits of 10000 at p=0.25"
        );
    }
}
