//! Statistics from a window's numeric summary ([`crate::window::summary`]).
//!
//! * **KS** is the same integer walk as the raw path ([`super::ecdf::compare_sorted`]): inside
//!   a gap only the current ECDF moves, so the difference's extremes are at the gap's ends, and
//!   the statistic and its p-value are bit-for-bit those of the raw values.
//! * **Binned metrics** (PSI, Jensen–Shannon, Hellinger) count each bin as a range of slots:
//!   every bin edge is a point, so the counts are those of the raw values.
//! * **Wasserstein-1** is exact (to rounding) in every gap where the two ECDFs do not cross:
//!   there the area is linear in the gap's count and offset sum. In a gap where they cross, the
//!   positions of the values matter; the summary's distance is the middle of the possible
//!   range and [`SummaryComparison::wasserstein_bound`] says how far the exact one can be.

use super::ecdf::RunSum;
use crate::window::summary::{Layout, NumericSummary};

/// The ECDF statistics of a summary against its layout's reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryComparison {
    /// The raw two-sided KS statistic: bit-for-bit the raw values' (see
    /// [`super::ecdf::EcdfComparison`]).
    pub ks_statistic: f64,
    /// Wasserstein-1.
    pub wasserstein: f64,
    /// How far the exact Wasserstein-1 can be from `wasserstein`: zero unless the ECDFs cross
    /// inside a gap.
    pub wasserstein_bound: f64,
}

/// KS and Wasserstein-1 of a non-empty summary against its layout's reference: the walk of
/// [`super::ecdf::compare_sorted`], one gap and one point at a time.
pub fn compare(layout: &Layout, summary: &NumericSummary) -> SummaryComparison {
    let (n1, n2) = (layout.n_reference as i64, summary.n as i64);
    let last = layout.points.len();
    let (mut diff, mut max_diff, mut min_diff) = (0i64, 0i64, 0i64);
    let mut area = RunSum::default();
    let mut slack = 0.0f64;
    for gap in 0..=last {
        let m = summary.counts[2 * gap] as i64;
        let offsets = summary.offsets[gap];
        let inside = gap > 0 && gap < last;
        if m > 0 {
            // Below every point the reference ECDF is 0; above, 1: the difference there has
            // one sign, and each value's distance to the nearest point counts `n1` times.
            let (term, error) = if !inside {
                (n1 as f64 * offsets.abs(), 0.0)
            } else {
                let width = layout.points[gap] - layout.points[gap - 1];
                gap_area(diff, diff - m * n1, m, n1, width, offsets)
            };
            area.add(term);
            area.end_run();
            slack += error;
            diff -= m * n1;
            min_diff = min_diff.min(diff);
        } else if inside {
            area.add(diff.unsigned_abs() as f64 * (layout.points[gap] - layout.points[gap - 1]));
        }
        if gap < last {
            diff += layout.reference[gap] as i64 * n2 - summary.counts[2 * gap + 1] as i64 * n1;
            max_diff = max_diff.max(diff);
            min_diff = min_diff.min(diff);
        }
    }
    let denominator = (n1 as f64) * (n2 as f64);
    SummaryComparison {
        ks_statistic: max_diff.max(-min_diff) as f64 / denominator,
        wasserstein: area.total() / denominator,
        wasserstein_bound: slack / denominator,
    }
}

/// The area `|F_ref − F_cur|·n1·n2` over one inner gap of `width` holding `m` current values
/// whose offsets sum to `offsets`, the difference going from `start` to `end`; and how far the
/// exact area can be from it (0 unless the difference changes sign inside).
fn gap_area(start: i64, end: i64, m: i64, n1: i64, width: f64, offsets: f64) -> (f64, f64) {
    // Σ over the steps of d·(step width) = start·width − n1·Σ(width − offset).
    let signed = start as f64 * width - n1 as f64 * (m as f64 * width - offsets);
    if start >= 0 && end >= 0 || start <= 0 && end <= 0 {
        return (signed.abs(), 0.0);
    }
    // Crossing: at least |signed|, at most the largest |d| over the whole gap.
    let lower = signed.abs();
    let upper = (start.unsigned_abs().max(end.unsigned_abs()) as f64 * width).max(lower);
    ((lower + upper) / 2.0, (upper - lower) / 2.0)
}

/// Counts per slot of `bins` (see [`super::bins::QuantileBins::histogram_sorted`]): every edge
/// must be a point of the layout.
pub fn histogram(
    layout: &Layout,
    summary: &NumericSummary,
    bins: &super::bins::QuantileBins,
) -> Vec<u64> {
    let edge = |e: f64| {
        layout
            .point_index(e)
            .expect("the layout holds every bin edge")
    };
    let interior = bins.interior();
    let mut counts = Vec::with_capacity(bins.slots());
    let mut start = 0usize;
    let mut close_slot = |end: usize| {
        counts.push(summary.counts[start..end].iter().sum());
        start = end;
    };
    // Values below edge e end with the gap below it (slot 2·index(e)); the top edge's own slot
    // belongs to the last interior bin.
    close_slot(2 * edge(bins.edges[0]) + 1);
    for &e in &bins.edges[1..interior] {
        close_slot(2 * edge(e) + 1);
    }
    close_slot(2 * edge(bins.edges[bins.edges.len() - 1]) + 2);
    close_slot(summary.counts.len());
    counts
}
