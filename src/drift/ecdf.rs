//! One walk over two sorted samples for every statistic built on their empirical CDFs: the KS
//! statistic and Wasserstein-1 need the same merge, so a report does it once, and
//! [`super::ks::ks_statistic`] and [`super::wasserstein::wasserstein_distance`] are views of it.
//!
//! At each distinct value `v` in merged order, both ECDFs count the values `<= v` (scipy's
//! `searchsorted(..., side="right")`); the KS statistic is the largest difference either way,
//! and W1 sums `|F_ref - F_cur|` times the gap to the next distinct value, in order.

use super::sum::Neumaier;

/// The ECDF-based statistics of two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcdfComparison {
    /// The raw two-sided KS statistic (before lattice rounding; see [`super::ks::ks_test`]).
    pub ks_statistic: f64,
    /// Wasserstein-1.
    pub wasserstein: f64,
}

/// Both statistics from one merge of two sorted, non-empty samples.
pub fn compare_sorted(reference: &[f64], current: &[f64]) -> EcdfComparison {
    debug_assert!(reference.is_sorted() && current.is_sorted());
    debug_assert!(!reference.is_empty() && !current.is_empty());
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    let mut area = Neumaier::default();
    let mut previous: Option<(f64, f64)> = None;
    while i < reference.len() || j < current.len() {
        let value = match (reference.get(i), current.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => unreachable!(),
        };
        while i < reference.len() && reference[i] <= value {
            i += 1;
        }
        while j < current.len() && current[j] <= value {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
        if let Some((last_value, gap)) = previous {
            area.add(gap * (value - last_value));
        }
        previous = Some((value, diff.abs()));
    }
    let below = (-min_diff).clamp(0.0, 1.0);
    EcdfComparison {
        ks_statistic: if below > max_diff { below } else { max_diff },
        wasserstein: area.total(),
    }
}
