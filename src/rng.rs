//! A small seeded generator (SplitMix64) for reservoir sampling, permutation tests and the
//! synthetic data of the demo, tests and benchmarks.
//!
//! Kept in-house rather than taken from `rand` so that a seed means the same stream of numbers
//! in every version of driftgate: a baseline built today and rebuilt next year from the same data
//! and seed is the same file, with the same id.

/// SplitMix64 (Steele, Lea & Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator for a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for a seed and a name (e.g. a feature), so streams differ per feature but do
    /// not depend on the order features are processed in.
    pub fn for_name(seed: u64, name: &str) -> SplitMix64 {
        // FNV-1a over the name, mixed into the seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        SplitMix64::new(seed ^ hash)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` (the top 53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal variate (Box–Muller, the cosine branch; one draw uses two uniforms).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64() + f64::EPSILON;
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A uniform integer in `0..bound` (Lemire's multiply-and-reject; unbiased). `bound > 0`.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Moves a uniformly random `k`-subset of `items` to its front (a partial Fisher–Yates
    /// shuffle: `k` swaps, whatever the slice's length). `k <= items.len()`.
    pub fn choose_front<T>(&mut self, items: &mut [T], k: usize) {
        for i in 0..k {
            let j = i + self.below((items.len() - i) as u64) as usize;
            items.swap(i, j);
        }
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = rng.below(5);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
