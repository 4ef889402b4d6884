//! The Wasserstein-1 permutation test without relabelling the whole pool.
//!
//! Pool the two samples and sort them once: `z_0 ≤ … ≤ z_{N-1}`, with `w_k = z_{k+1} − z_k`. A
//! relabelling that puts `m` items in one group (the smaller, "drawn" group) at sorted
//! positions `p_1 < … < p_m` has, at step `k`, the scaled ECDF difference
//! `d_k = m·(k+1) − N·c_k` where `c_k` counts the drawn positions `≤ k`; and
//! `W1 = Σ_k |d_k|·w_k / (m·(N − m))` (the two groups' roles are symmetric). Between two drawn
//! positions `c_k` is constant, so `d_k` is linear in `k` and changes sign at most once: with
//! prefix sums of `w_k` and `(k+1)·w_k`, each stretch costs O(1), and a relabelling costs
//! O(m) instead of O(N).
//!
//! A relabelling is a uniformly random `m`-subset of the positions, drawn into a bitmap by
//! rejection (uniform, since `m ≤ N/2` keeps rejections rare) and read back in order: no
//! shuffle of the pool, no sort. The observed split goes through the same arithmetic, so equal
//! splits give equal statistics to the bit.

use crate::rng::SplitMix64;

/// A sorted pool prepared for relabellings.
#[derive(Debug, Clone)]
pub struct WassersteinNull {
    /// Pool size `N`.
    pool: usize,
    /// Size `m` of the drawn group (the smaller one).
    drawn: usize,
    /// At `k` in `0..=N-1`: `Σ_{i<k} w_i` and `Σ_{i<k} (i+1)·w_i`, side by side so that one
    /// lookup reads both.
    prefix: Vec<[f64; 2]>,
}

impl WassersteinNull {
    /// Prepares `pooled_sorted` (both samples, sorted) for relabellings with `drawn` items in
    /// one group (`0 < drawn < N`; the smaller group is drawn either way).
    pub fn new(pooled_sorted: &[f64], drawn: usize) -> WassersteinNull {
        let pool = pooled_sorted.len();
        let drawn = drawn.min(pool - drawn);
        let mut prefix = Vec::with_capacity(pool);
        let mut sums = [0.0f64; 2];
        prefix.push(sums);
        for (k, pair) in pooled_sorted.windows(2).enumerate() {
            let width = pair[1] - pair[0];
            sums[0] += width;
            sums[1] += (k + 1) as f64 * width;
            prefix.push(sums);
        }
        WassersteinNull {
            pool,
            drawn,
            prefix,
        }
    }

    /// W1 of the split whose drawn group is at `positions` (ascending, `drawn` of them).
    pub fn statistic(&self, positions: impl Iterator<Item = usize>) -> f64 {
        let (n, m) = (self.pool as u64, self.drawn as u64);
        let steps = self.pool - 1;
        let mut total = 0.0f64;
        // Each stretch starts where the last one ended: its prefix sums are read once.
        let (mut start, mut at_start) = (0usize, self.prefix[0]);
        // `N·count = quotient·m + remainder`, kept without dividing as `count` grows.
        let (mut count, mut quotient, mut remainder) = (0u64, 0u64, 0u64);
        let (step_quotient, step_remainder) = (n / m, n % m);
        for end in positions.chain(std::iter::once(steps)) {
            if start < end {
                // d_k ≥ 0 from k = ceil(N·count / m) − 1 on.
                let zero = (quotient + u64::from(remainder > 0)).saturating_sub(1) as usize;
                let at_end = self.prefix[end];
                total += self.stretch((start, at_start), (end, at_end), zero, (n * count) as f64);
                (start, at_start) = (end, at_end);
            }
            count += 1;
            quotient += step_quotient;
            remainder += step_remainder;
            if remainder >= m {
                remainder -= m;
                quotient += 1;
            }
        }
        total / ((m as f64) * ((n - m) as f64))
    }

    /// `Σ |m·(k+1) − level|·w_k` over the steps from `start` to `end` (each with its prefix
    /// sums), where the difference is negative before step `zero` and not after.
    fn stretch(
        &self,
        (start, at_start): (usize, [f64; 2]),
        (end, at_end): (usize, [f64; 2]),
        zero: usize,
        level: f64,
    ) -> f64 {
        let m = self.drawn as f64;
        let part = |from: [f64; 2], to: [f64; 2]| m * (to[1] - from[1]) - level * (to[0] - from[0]);
        if zero <= start {
            part(at_start, at_end)
        } else if zero >= end {
            -part(at_start, at_end)
        } else {
            let at_zero = self.prefix[zero];
            part(at_zero, at_end) - part(at_start, at_zero)
        }
    }

    /// The p-value of `observed` (a split's [`statistic`](Self::statistic)) over up to
    /// `permutations` random relabellings, with the permuted statistics (ascending). Stops
    /// early once `stop_at` relabellings were at least as extreme: the p-value can then no
    /// longer fall to the level that made `stop_at` (see [`super::permutation`]).
    pub fn test(
        &self,
        observed: f64,
        permutations: usize,
        stop_at: Option<usize>,
        rng: &mut SplitMix64,
    ) -> super::permutation::PermutationOutcome {
        let mut draws = Draws::new(self.pool);
        super::permutation::sequential(observed, permutations, stop_at, || {
            draws.draw(self.drawn, rng);
            self.statistic(draws.positions())
        })
    }
}

/// A reusable bitmap of drawn positions.
struct Draws {
    bits: Vec<u64>,
    pool: u64,
    /// Lemire's rejection threshold for `pool`, computed once.
    threshold: u64,
}

impl Draws {
    fn new(pool: usize) -> Draws {
        let pool = pool as u64;
        Draws {
            bits: vec![0; pool.div_ceil(64) as usize],
            pool,
            threshold: pool.wrapping_neg() % pool,
        }
    }

    /// Draws a uniformly random `m`-subset of the positions.
    fn draw(&mut self, m: usize, rng: &mut SplitMix64) {
        self.bits.fill(0);
        let mut drawn = 0;
        while drawn < m {
            let position = self.below(rng);
            let (word, bit) = ((position / 64) as usize, position % 64);
            if self.bits[word] & (1 << bit) == 0 {
                self.bits[word] |= 1 << bit;
                drawn += 1;
            }
        }
    }

    /// A uniform position (as [`SplitMix64::below`], with the threshold kept).
    fn below(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            let product = u128::from(rng.next_u64()) * u128::from(self.pool);
            if (product as u64) >= self.threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// The drawn positions, ascending.
    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    word * 64 + bit
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::wasserstein::wasserstein_labelled;

    #[test]
    fn stretches_give_the_labelled_walk() {
        let mut rng = SplitMix64::new(9);
        for (n, m, grid) in [(300, 40, 8.0), (50, 25, 1e9), (200, 199, 3.0), (2, 1, 1.0)] {
            let mut pool: Vec<f64> = (0..n).map(|_| (rng.normal() * grid).round()).collect();
            pool.sort_by(f64::total_cmp);
            let null = WassersteinNull::new(&pool, m);
            let drawn = m.min(n - m);
            for _ in 0..50 {
                let mut draws = Draws::new(n);
                draws.draw(drawn, &mut rng);
                let positions: Vec<usize> = draws.positions().collect();
                assert_eq!(positions.len(), drawn);
                assert!(positions.is_sorted());
                // The drawn group as "current" (not reference) in the labelled walk.
                let labels: Vec<bool> = (0..n).map(|k| !positions.contains(&k)).collect();
                let exact = wasserstein_labelled(&pool, &labels, n - drawn);
                let fast = null.statistic(positions.iter().copied());
                assert!(
                    (fast - exact).abs() <= 1e-9 * exact.max(1e-300),
                    "n {n} m {m}: {fast} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn stopping_early_never_changes_a_decision() {
        let (alpha, permutations) = (0.05, 300);
        let stop = crate::drift::permutation::stop_at(alpha, permutations);
        let mut data = SplitMix64::new(3);
        let (mut stopped, mut significant) = (0, 0);
        for trial in 0..60 {
            let shift = if trial % 3 == 0 { 0.4 } else { 0.0 };
            let reference: Vec<f64> = (0..400).map(|_| data.normal()).collect();
            let current: Vec<f64> = (0..80).map(|_| data.normal() + shift).collect();
            let pool = crate::drift::wasserstein::pooled(&reference, &current);
            let values: Vec<f64> = pool.iter().map(|(v, _)| *v).collect();
            let null = WassersteinNull::new(&values, current.len());
            let positions = pool
                .iter()
                .enumerate()
                .filter(|(_, (_, r))| !r)
                .map(|(k, _)| k);
            let observed = null.statistic(positions);
            let early = null.test(
                observed,
                permutations,
                Some(stop),
                &mut SplitMix64::new(trial),
            );
            let full = null.test(observed, permutations, None, &mut SplitMix64::new(trial));
            assert_eq!(full.permuted.len(), permutations);
            if early.permuted.len() < permutations {
                stopped += 1;
                assert!(
                    early.p_value > alpha && full.p_value > alpha,
                    "trial {trial}"
                );
            } else {
                assert_eq!(early, full, "trial {trial}");
            }
            significant += usize::from(full.p_value <= alpha);
        }
        assert!(
            stopped >= 20,
            "most unchanged windows stop early: {stopped}"
        );
        assert!(
            significant >= 15,
            "the shifted windows are found: {significant}"
        );
    }

    #[test]
    fn draws_are_uniform_subsets() {
        // Each of 10 positions is drawn in 3-subsets with probability 3/10.
        let mut rng = SplitMix64::new(1);
        let mut draws = Draws::new(10);
        let mut seen = [0u32; 10];
        for _ in 0..30_000 {
            draws.draw(3, &mut rng);
            for position in draws.positions() {
                seen[position] += 1;
            }
        }
        for count in seen {
            assert!((8_600..9_400).contains(&count), "{seen:?}");
        }
    }
}
