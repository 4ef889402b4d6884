//! Wasserstein-1 (earth mover's) distance between two samples, as
//! `scipy.stats.wasserstein_distance(reference, current)`: the area between the two empirical
//! CDFs, `sum_k |F_ref(z_k) - F_cur(z_k)| · (z_{k+1} - z_k)` over the merged sorted values `z`.
//! The normed form divides by `max(std(reference), 0.001)` (population std), as Evidently does.

use super::ecdf::RunSum;

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

/// The two samples merged in sorted order, each value labelled `true` when it is from the
/// reference (equal values keep the reference's first): the pool a permutation test relabels.
pub fn pooled(reference: &[f64], current: &[f64]) -> Vec<(f64, bool)> {
    let mut pooled: Vec<(f64, bool)> = reference
        .iter()
        .map(|v| (*v, true))
        .chain(current.iter().map(|v| (*v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    pooled
}

/// W1 between the two groups of a pooled sorted sample split by labels (`true` = reference).
/// The walk a labelling of the whole pool costs; the permutation test draws relabellings more
/// cheaply ([`super::wasserstein_null`]), and is checked against this.
pub fn wasserstein_labelled(
    pooled_sorted: &[f64],
    is_reference: &[bool],
    n_reference: usize,
) -> f64 {
    // The same exact integer ECDF difference as `compare_sorted`, and the same terms grouped in
    // the same runs (a run ends at each value the current sample holds), so the observed
    // statistic of a permutation test is bit-for-bit the reported distance.
    let n1 = n_reference as i64;
    let n2 = (pooled_sorted.len() - n_reference) as i64;
    let mut diff = 0i64;
    let mut total = RunSum::default();
    for (k, &value) in pooled_sorted.iter().enumerate() {
        diff += if is_reference[k] { n2 } else { -n1 };
        let Some(&next) = pooled_sorted.get(k + 1) else {
            break;
        };
        let width = next - value;
        if width != 0.0 {
            total.add(diff.unsigned_abs() as f64 * width);
            let ties = pooled_sorted[k + 1..].iter().take_while(|v| **v == next);
            if ties
                .zip(&is_reference[k + 1..])
                .any(|(_, reference)| !reference)
            {
                total.end_run();
            }
        }
    }
    total.total() / ((n1 as f64) * (n2 as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_walk_gives_the_bits_of_the_merge() {
        let mut rng = crate::rng::SplitMix64::new(11);
        for (n1, n2, grid) in [
            (200, 30, 8.0),
            (50, 50, 1000.0),
            (7, 300, 4.0),
            (1, 1, 2.0),
            (2000, 200, 1e12),
        ] {
            // A coarse grid makes ties within and across the samples.
            let mut draw = |n: usize| {
                let mut values: Vec<f64> = (0..n)
                    .map(|_| (rng.next_f64() * grid).floor() / 3.0)
                    .collect();
                values.sort_by(f64::total_cmp);
                values
            };
            let (reference, current) = (draw(n1), draw(n2));
            let (values, labels): (Vec<f64>, Vec<bool>) =
                pooled(&reference, &current).into_iter().unzip();
            assert_eq!(
                wasserstein_labelled(&values, &labels, n1).to_bits(),
                wasserstein_distance(&reference, &current).to_bits(),
                "{n1} x {n2}"
            );
        }
    }
}
