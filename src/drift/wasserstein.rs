//! Wasserstein-1 (earth mover's) distance between two samples, as
//! `scipy.stats.wasserstein_distance(reference, current)`: the area between the two empirical
//! CDFs, `sum_k |F_ref(z_k) - F_cur(z_k)| · (z_{k+1} - z_k)` over the merged sorted values `z`.
//! The normed form divides by `max(std(reference), 0.001)` (population std), as Evidently does.

use super::sum::Neumaier;

/// Evidently's floor on the reference standard deviation in the normed distance.
pub const NORM_STD_FLOOR: f64 = 0.001;

/// W1 between two sorted, non-empty samples (one walk over both ECDFs, shared with KS:
/// [`super::ecdf`]).
pub fn wasserstein_distance(reference: &[f64], current: &[f64]) -> f64 {
    super::ecdf::compare_sorted(reference, current).wasserstein
}

/// W1 divided by `max(reference_std, 0.001)`.
pub fn normed(distance: f64, reference_std: f64) -> f64 {
    distance / reference_std.max(NORM_STD_FLOOR)
}

/// W1 between the two groups of a pooled sorted sample split by labels (`true` = reference).
/// Used by the permutation test, which relabels the pooled values instead of re-sorting them.
pub fn wasserstein_labelled(
    pooled_sorted: &[f64],
    is_reference: &[bool],
    n_reference: usize,
) -> f64 {
    // The same exact integer ECDF difference as `compare_sorted`, so the observed statistic of
    // a permutation test is bit-for-bit the reported distance.
    let n1 = n_reference as i64;
    let n2 = (pooled_sorted.len() - n_reference) as i64;
    let mut diff = 0i64;
    let mut total = Neumaier::default();
    for k in 0..pooled_sorted.len() {
        diff += if is_reference[k] { n2 } else { -n1 };
        if let Some(next) = pooled_sorted.get(k + 1) {
            let width = next - pooled_sorted[k];
            if width != 0.0 {
                total.add(diff.unsigned_abs() as f64 * width);
            }
        }
    }
    total.total() / ((n1 as f64) * (n2 as f64))
}
