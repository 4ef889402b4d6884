//! Uniform reservoir sampling (Vitter's algorithm R) with a seeded generator.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Keeps a uniform random sample of at most `capacity` values from a stream of any length.
/// While the stream is no longer than the capacity, the sample is the whole stream.
/// Serialises (for checkpoints) with the sample as base64 of little-endian `f64`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    #[serde(with = "super::sample::f64_base64")]
    sample: Vec<f64>,
    rng: SplitMix64,
}

impl Reservoir {
    /// An empty reservoir.
    pub fn new(capacity: usize, rng: SplitMix64) -> Reservoir {
        Reservoir {
            capacity,
            seen: 0,
            sample: Vec::with_capacity(capacity.min(1 << 20)),
            rng,
        }
    }

    /// Offers one value.
    pub fn push(&mut self, value: f64) {
        self.seen += 1;
        if self.sample.len() < self.capacity {
            self.sample.push(value);
            return;
        }
        let slot = self.rng.below(self.seen);
        if (slot as usize) < self.capacity {
            self.sample[slot as usize] = value;
        }
    }

    /// True once values were dropped: the sample is no longer the whole stream.
    pub fn is_sampled(&self) -> bool {
        self.seen > self.sample.len() as u64
    }

    /// The sample, in no particular order.
    pub fn sample(&self) -> &[f64] {
        &self.sample
    }

    /// The values offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample, in no particular order.
    pub fn into_sample(self) -> Vec<f64> {
        self.sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut r = Reservoir::new(10, SplitMix64::new(1));
        (0..10).for_each(|i| r.push(f64::from(i)));
        assert!(!r.is_sampled());
        assert_eq!(r.into_sample(), (0..10).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn sample_is_roughly_uniform() {
        // Each of 1000 values should be kept with probability 1/10; count the kept lower half.
        let mut kept_low = 0usize;
        for seed in 0..200 {
            let mut r = Reservoir::new(100, SplitMix64::new(seed));
            (0..1000).for_each(|i| r.push(f64::from(i)));
            kept_low += r.into_sample().iter().filter(|v| **v < 500.0).count();
        }
        // 200 × 100 values kept, half expected in the lower half: 10,000 ± a few hundred.
        assert!((9_500..10_500).contains(&kept_low), "{kept_low}");
    }
}
