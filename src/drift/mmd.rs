//! Maximum mean discrepancy (MMD²) with a Gaussian kernel and a permutation p-value, as
//! alibi-detect's `MMDDrift` defines it: a multivariate two-sample test that sees any change of
//! the joint distribution, a flipped correlation included.
//!
//! * Kernel `k(x, y) = exp(-|x - y|² / (2σ²))`; `σ` by the median heuristic on the reference
//!   ([`median_sigma`]): `σ² = ½ ·` the median squared distance between two distinct reference
//!   rows (alibi-detect takes the lower median of the pairs).
//! * Statistic, unbiased: with `n` reference rows `X` and `m` current rows `Y`,
//!   `MMD² = Σ_{i≠j} k(x_i, x_j) / (n(n-1)) + Σ_{i≠j} k(y_i, y_j) / (m(m-1)) - 2 Σ k(x_i, y_j) / (nm)`.
//! * p-value: the pooled rows relabelled at random; `(1 + #{permuted >= observed}) / (1 +
//!   permutations)` (alibi-detect leaves out both ones), stopping early once the p-value is
//!   settled above alpha ([`super::permutation::stop_at`]).
//!
//! The kernel matrix of the pooled rows is computed once; a relabelling only draws which rows
//! are current and sums the kernel over the smaller group's pairs, the other sums following from
//! row sums: `O(min(n, m)²)` per relabelling. The matrix is `O((n + m)²)`, so callers test a
//! sample of each side ([`MAX_ROWS`] rows), as alibi-detect users do with `x_ref` subsamples.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::permutation::{sequential, PermutationOutcome};
use crate::rng::SplitMix64;

/// The most rows of each side a test uses: larger sides are sampled down to this, uniformly.
pub const MAX_ROWS: usize = 500;

/// Relabellings when none are asked for (alibi-detect's default).
pub const DEFAULT_PERMUTATIONS: usize = 100;

/// Squared Euclidean distances between every row of `a` and every row of `b`.
pub fn squared_distances(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    let a_norms = a.map_axis(Axis(1), |row| row.dot(&row));
    let b_norms = b.map_axis(Axis(1), |row| row.dot(&row));
    let mut distances = a.dot(&b.t()) * -2.0;
    for ((i, j), value) in distances.indexed_iter_mut() {
        *value = (*value + a_norms[i] + b_norms[j]).max(0.0);
    }
    distances
}

/// The median heuristic: `σ = sqrt(½ · d)` with `d` the lower median of the squared distances
/// between distinct reference rows. At least two rows; `σ` is 1 when every row is the same.
pub fn median_sigma(reference: ArrayView2<f64>) -> f64 {
    let distances = squared_distances(reference, reference);
    let n = reference.nrows();
    let mut pairs: Vec<f64> = (0..n)
        .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
        .map(|(i, j)| distances[(i, j)])
        .collect();
    if pairs.is_empty() {
        return 1.0;
    }
    let at = (pairs.len() - 1) / 2;
    let (_, median, _) = pairs.select_nth_unstable_by(at, f64::total_cmp);
    let sigma = (0.5 * *median).sqrt();
    if sigma > 0.0 {
        sigma
    } else {
        1.0
    }
}

/// The kernel matrix of the pooled rows (reference first), its diagonal zeroed, with its row
/// sums and total: all a relabelling's statistic needs.
struct Pool {
    kernel: Array2<f64>,
    row_sums: Array1<f64>,
    total: f64,
}

impl Pool {
    fn new(reference: ArrayView2<f64>, current: ArrayView2<f64>, sigma: f64) -> Pool {
        let pooled = ndarray::concatenate(Axis(0), &[reference, current]).expect("same features");
        let scale = -1.0 / (2.0 * sigma * sigma);
        let mut kernel =
            squared_distances(pooled.view(), pooled.view()).mapv(|d| (d * scale).exp());
        kernel.diag_mut().fill(0.0);
        let row_sums = kernel.sum_axis(Axis(1));
        let total = row_sums.sum();
        Pool {
            kernel,
            row_sums,
            total,
        }
    }

    /// MMD² when `group` (the `size` rows listed; the smaller side) is the reference when
    /// `group_is_reference`, the current rows otherwise.
    fn statistic(&self, group: &[usize], group_is_reference: bool) -> f64 {
        // Each pair once (the matrix is symmetric), from its row as a slice.
        let inside: f64 = 2.0
            * group
                .iter()
                .enumerate()
                .map(|(at, &i)| {
                    let row = self.kernel.row(i);
                    let row = row.as_slice().expect("rows of a standard-layout matrix");
                    group[at + 1..].iter().map(|&j| row[j]).sum::<f64>()
                })
                .sum::<f64>();
        let group_rows: f64 = group.iter().map(|&i| self.row_sums[i]).sum();
        let outside = self.total - 2.0 * group_rows + inside;
        let across = group_rows - inside;
        let g = group.len() as f64;
        let o = (self.kernel.nrows() - group.len()) as f64;
        let (xx, yy) = if group_is_reference {
            (inside, outside)
        } else {
            (outside, inside)
        };
        let (n, m) = if group_is_reference { (g, o) } else { (o, g) };
        xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2.0 * across / (n * m)
    }
}

/// The MMD² test of `current` against `reference` (rows are records; the same features, already
/// standardised as the caller chose): the observed MMD², its p-value over up to `permutations`
/// relabellings, stopping once `stop` of them were at least as large. Each side needs two rows.
pub fn mmd_test(
    reference: ArrayView2<f64>,
    current: ArrayView2<f64>,
    sigma: f64,
    permutations: usize,
    stop: Option<usize>,
    rng: &mut SplitMix64,
) -> PermutationOutcome {
    let pool = Pool::new(reference, current, sigma);
    let (n, m) = (reference.nrows(), current.nrows());
    let group_is_reference = n < m;
    let size = n.min(m);
    let observed: Vec<usize> = if group_is_reference {
        (0..n).collect()
    } else {
        (n..n + m).collect()
    };
    let observed = pool.statistic(&observed, group_is_reference);
    let mut order: Vec<usize> = (0..n + m).collect();
    sequential(observed, permutations, stop, || {
        rng.choose_front(&mut order, size);
        // In row order, so each row is read front to back (whatever the arrangement, the next
        // draw's subset is uniform).
        order[..size].sort_unstable();
        pool.statistic(&order[..size], group_is_reference)
    })
}

/// Up to `rows` rows of `data`, drawn uniformly without replacement (all of them, in order,
/// when there are no more).
pub fn sample_rows(data: ArrayView2<f64>, rows: usize, rng: &mut SplitMix64) -> Array2<f64> {
    if data.nrows() <= rows {
        return data.to_owned();
    }
    let mut order: Vec<usize> = (0..data.nrows()).collect();
    rng.choose_front(&mut order, rows);
    data.select(Axis(0), &order[..rows])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(rng: &mut SplitMix64, rows: usize, columns: usize, shift: f64) -> Array2<f64> {
        Array2::from_shape_simple_fn((rows, columns), || rng.normal() + shift)
    }

    /// The statistic by the definition, pair by pair.
    fn direct(x: &Array2<f64>, y: &Array2<f64>, sigma: f64) -> f64 {
        let k = |a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>| {
            let d: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
            (-d / (2.0 * sigma * sigma)).exp()
        };
        let (n, m) = (x.nrows() as f64, y.nrows() as f64);
        let within = |z: &Array2<f64>| -> f64 {
            let rows = || z.rows().into_iter().enumerate();
            rows()
                .flat_map(|(i, a)| {
                    rows()
                        .filter(move |(j, _)| *j != i)
                        .map(move |(_, b)| k(a, b))
                })
                .sum()
        };
        let (xx, yy) = (within(x), within(y));
        let xy: f64 = x
            .rows()
            .into_iter()
            .flat_map(|a| y.rows().into_iter().map(move |b| k(a, b)))
            .sum();
        xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2.0 * xy / (n * m)
    }

    #[test]
    fn the_statistic_is_the_definition_whichever_side_is_smaller() {
        let mut rng = SplitMix64::new(4);
        for (n, m) in [(30, 12), (12, 30), (20, 20)] {
            let (x, y) = (normal(&mut rng, n, 3, 0.0), normal(&mut rng, m, 3, 0.3));
            let outcome = mmd_test(x.view(), y.view(), 1.3, 0, None, &mut rng);
            let want = direct(&x, &y, 1.3);
            assert!(
                (outcome.observed - want).abs() < 1e-12,
                "{n}x{m}: {} vs {want}",
                outcome.observed
            );
        }
    }

    #[test]
    fn a_shift_has_a_small_p_value_and_none_a_large_one() {
        let mut rng = SplitMix64::new(8);
        let x = normal(&mut rng, 200, 4, 0.0);
        let sigma = median_sigma(x.view());
        let same = mmd_test(
            x.view(),
            normal(&mut rng, 100, 4, 0.0).view(),
            sigma,
            200,
            None,
            &mut rng,
        );
        let shifted = mmd_test(
            x.view(),
            normal(&mut rng, 100, 4, 0.5).view(),
            sigma,
            200,
            None,
            &mut rng,
        );
        assert!(same.p_value > 0.05, "{}", same.p_value);
        assert!(shifted.p_value < 0.01, "{}", shifted.p_value);
    }
}
