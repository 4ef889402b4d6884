//! One walk over two sorted samples for every statistic built on their empirical CDFs: the KS
//! statistic and Wasserstein-1 need the same merge, so a report does it once, and
//! [`super::ks::ks_statistic`] and [`super::wasserstein::wasserstein_distance`] are views of it.
//!
//! At each distinct value `v` in merged order, both ECDFs count the values `<= v` (scipy's
//! `searchsorted(..., side="right")`); the KS statistic is the largest difference either way,
//! and W1 sums `|F_ref - F_cur|` times the gap to the next distinct value, in order.
//! Reports call this once per numeric feature per window against a reference of up to 100,000
//! values, so it is the detectors' inner loop.

use super::sum::Neumaier;

/// The ECDF-based statistics of two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcdfComparison {
    /// The raw two-sided KS statistic (before lattice rounding; see [`super::ks::ks_test`]).
    pub ks_statistic: f64,
    /// Wasserstein-1.
    pub wasserstein: f64,
}

/// Sorts values in `f64::total_cmp` order, by radix-sorting their bits as integers (several
/// times faster than comparing floats). The radix sort orders the keys' upper 33 bits (sign,
/// exponent and the mantissa's first 21 bits) in three passes of 11 bits; each run of keys
/// that share them is then sorted whole, which for most data is a run of one or two.
pub fn sort_values(values: &mut [f64]) {
    // Order-preserving map to u64: negative numbers have all bits flipped, others the sign bit.
    let to_key = |bits: u64| bits ^ ((((bits as i64) >> 63) as u64) | (1 << 63));
    let from_key = |key: u64| key ^ (((!key as i64 >> 63) as u64) | (1 << 63));
    let mut keys: Vec<u64> = values.iter().map(|v| to_key(v.to_bits())).collect();
    sort_upper(&mut keys);
    for run in keys.chunk_by_mut(|a, b| a >> UPPER_SHIFT == b >> UPPER_SHIFT) {
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
    for (value, key) in values.iter_mut().zip(keys) {
        *value = f64::from_bits(from_key(key));
    }
}

/// The bits below the ones [`sort_upper`] orders by.
const UPPER_SHIFT: u32 = 64 - 3 * DIGIT_BITS;
/// Bits per radix digit: the 2,048 offsets a pass scatters by stay in the first-level cache.
const DIGIT_BITS: u32 = 11;

/// Orders `keys` by their upper 33 bits, stably: a least-significant-digit radix sort of three
/// 11-bit digits, counted in one pass, skipping a digit all keys share. (`radsort` orders a
/// 32-bit key in four 8-bit passes; three passes made a 50-feature reference's profile a
/// fifth faster.)
fn sort_upper(keys: &mut Vec<u64>) {
    const DIGITS: usize = 1 << DIGIT_BITS;
    let digit =
        |key: u64, pass: u32| ((key >> (UPPER_SHIFT + pass * DIGIT_BITS)) as usize) & (DIGITS - 1);
    let mut counts = vec![[0usize; DIGITS]; 3];
    for &key in keys.iter() {
        for (pass, count) in counts.iter_mut().enumerate() {
            count[digit(key, pass as u32)] += 1;
        }
    }
    let mut scratch = vec![0u64; keys.len()];
    for (pass, count) in counts.iter().enumerate() {
        if count.contains(&keys.len()) {
            continue;
        }
        let mut next = [0usize; DIGITS];
        let mut start = 0;
        for (slot, n) in next.iter_mut().zip(count) {
            *slot = start;
            start += n;
        }
        for &key in keys.iter() {
            let d = digit(key, pass as u32);
            scratch[next[d]] = key;
            next[d] += 1;
        }
        std::mem::swap(keys, &mut scratch);
    }
}

/// Both statistics from one merge of two sorted, non-empty samples of finite values.
///
/// The ECDF difference is kept exact, as the integer `i·n2 − j·n1` over the common denominator
/// `n1·n2`, so the walk does no division per step; the KS statistic is that integer's extreme
/// over `n1·n2`, and W1 sums `|i·n2 − j·n1| · gap` before one final division. Both agree with
/// scipy's `i/n1 − j/n2` arithmetic to within rounding (see the fixtures).
///
/// The area's terms are never negative, so they are summed plainly within a run (the gaps from
/// one distinct current value to the next, relative error at most the run's length times
/// `f64::EPSILON`) and each run's total goes into a compensated sum: the inner loop carries one
/// addition instead of a compensated one. `RunSum` is shared with
/// [`super::wasserstein::wasserstein_labelled`], which groups its terms the same way, so both
/// give the same bits.
pub fn compare_sorted(reference: &[f64], current: &[f64]) -> EcdfComparison {
    walk(reference, Once, reference.len() as i64, current)
}

/// [`compare_sorted`] for a reference stored as sorted values with their multiplicities
/// (`counts[k]` copies of `values[k]`; an empty `counts` means once each): bit-for-bit the
/// result of the expanded reference, since a run of equal values only ever adds zero-width
/// terms to the area and moves the difference one way.
pub fn compare_weighted(values: &[f64], counts: &[u64], current: &[f64]) -> EcdfComparison {
    if counts.is_empty() {
        return compare_sorted(values, current);
    }
    debug_assert_eq!(values.len(), counts.len());
    let n1 = counts.iter().sum::<u64>() as i64;
    walk(values, Counts(counts), n1, current)
}

/// How many times each reference value counts.
trait Weights: Copy {
    fn at(self, index: usize) -> i64;
}

/// Every value once: the plain sample (the multiplication by 1 compiles away).
#[derive(Clone, Copy)]
struct Once;

impl Weights for Once {
    #[inline(always)]
    fn at(self, _: usize) -> i64 {
        1
    }
}

/// Stored multiplicities.
#[derive(Clone, Copy)]
struct Counts<'a>(&'a [u64]);

impl Weights for Counts<'_> {
    #[inline(always)]
    fn at(self, index: usize) -> i64 {
        self.0[index] as i64
    }
}

/// The merge itself; `n1` is the reference's total weight.
fn walk(reference: &[f64], weights: impl Weights, n1: i64, current: &[f64]) -> EcdfComparison {
    debug_assert!(reference.is_sorted() && current.is_sorted());
    debug_assert!(!reference.is_empty() && !current.is_empty());
    let n2 = current.len() as i64;
    let (mut i, mut j) = (0usize, 0usize);
    let (mut diff, mut max_diff, mut min_diff) = (0i64, 0i64, 0i64);
    let mut area = RunSum::default();
    let mut value = reference[0].min(current[0]);
    loop {
        // Both ECDFs at `value`: everything `<= value` counts (searchsorted side="right").
        while i < reference.len() && reference[i] <= value {
            diff += n2 * weights.at(i);
            i += 1;
        }
        while j < current.len() && current[j] <= value {
            j += 1;
            diff -= n1;
        }
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
        // The reference is usually the larger sample: walk its values up to the next current
        // value in a loop of its own. Only the reference ECDF moves there, so the difference
        // only grows and its maximum is at the run's end.
        let limit = current.get(j).copied().unwrap_or(f64::INFINITY);
        while i < reference.len() && reference[i] < limit {
            let next = reference[i];
            area.add(diff.unsigned_abs() as f64 * (next - value));
            value = next;
            diff += n2 * weights.at(i);
            i += 1;
        }
        max_diff = max_diff.max(diff);
        if j == current.len() {
            break;
        }
        area.add(diff.unsigned_abs() as f64 * (limit - value));
        area.end_run();
        value = limit;
    }
    let denominator = (n1 as f64) * (n2 as f64);
    EcdfComparison {
        ks_statistic: max_diff.max(-min_diff) as f64 / denominator,
        wasserstein: area.total() / denominator,
    }
}

/// A sum of non-negative terms in runs: plain addition within a run, compensated addition of
/// the runs' totals.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunSum {
    run: f64,
    total: Neumaier,
}

impl RunSum {
    /// Adds a term to the current run.
    #[inline]
    pub(crate) fn add(&mut self, term: f64) {
        self.run += term;
    }

    /// Ends the current run: its total joins the compensated sum.
    #[inline]
    pub(crate) fn end_run(&mut self) {
        self.total.add(self.run);
        self.run = 0.0;
    }

    /// The sum of every term, the open run included.
    pub(crate) fn total(mut self) -> f64 {
        self.end_run();
        self.total.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_by_bits_is_total_cmp_order() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -1e300,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            1e-320,
            -2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2.0,
            -2.0,
        ];
        let mut expected = values.clone();
        expected.sort_by(f64::total_cmp);
        sort_values(&mut values);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&values), bits(&expected));
        // Many values, as a reference has: the radix passes, not a small-slice sort; times in
        // milliseconds share their upper halves in long runs.
        let mut rng = crate::rng::SplitMix64::new(9);
        let mut many: Vec<f64> = (0..50_000)
            .map(|i| match i % 5 {
                0 => rng.normal() * 1e6,
                1 => -0.0,
                2 => (rng.below(100) as f64) - 50.0,
                3 => 1.7e12 + rng.below(86_400_000) as f64,
                _ => rng.normal() * 1e-300,
            })
            .collect();
        let mut expected = many.clone();
        expected.sort_by(f64::total_cmp);
        sort_values(&mut many);
        assert_eq!(bits(&many), bits(&expected));
        // Values that all share their sign and exponent: the passes over them are skipped.
        let mut close: Vec<f64> = (0..5_000)
            .map(|_| 1.0 + rng.below(1 << 40) as f64 * 1e-13)
            .collect();
        let mut expected = close.clone();
        expected.sort_by(f64::total_cmp);
        sort_values(&mut close);
        assert_eq!(bits(&close), bits(&expected));
    }

    #[test]
    fn a_weighted_reference_gives_the_expanded_ones_bits() {
        let mut rng = crate::rng::SplitMix64::new(5);
        let grid = |rng: &mut crate::rng::SplitMix64| (rng.below(60) as f64) / 4.0 - 3.0;
        let mut values: Vec<f64> = (0..30).map(|_| grid(&mut rng)).collect();
        sort_values(&mut values);
        values.dedup();
        let counts: Vec<u64> = values.iter().map(|_| 1 + rng.below(7)).collect();
        let expanded: Vec<f64> = values
            .iter()
            .zip(&counts)
            .flat_map(|(v, c)| std::iter::repeat_n(*v, *c as usize))
            .collect();
        for size in [1, 5, 80, 400] {
            let mut current: Vec<f64> = (0..size).map(|_| grid(&mut rng) + 0.1).collect();
            current.extend((0..size).map(|_| grid(&mut rng)));
            sort_values(&mut current);
            let weighted = compare_weighted(&values, &counts, &current);
            let plain = compare_sorted(&expanded, &current);
            assert_eq!(
                weighted.ks_statistic.to_bits(),
                plain.ks_statistic.to_bits()
            );
            assert_eq!(weighted.wasserstein.to_bits(), plain.wasserstein.to_bits());
        }
    }
}
