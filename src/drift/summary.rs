//! Exact, mergeable summaries of a window's numeric column, laid out on the reference.
//!
//! The reference sample's distinct values (and the quantile bins' edges, when they are not
//! among them) split the line into *points* and the open *gaps* between and around them. A
//! window's column is summarised by how many of its values fall on each point and in each gap,
//! plus, per gap, the sum of its values' offsets from the gap's anchor (the point on its left;
//! the first point for the gap below every point). That is at most `2P + 1` counters and
//! `P + 1` sums for `P` points, whatever the window's size, and two summaries of the same
//! layout merge by adding them (counts exactly; sums to rounding).
//!
//! From a summary:
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

/// Where a summary's counters sit: strictly increasing points with the reference's count at
/// each.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    points: Vec<f64>,
    reference: Vec<u64>,
    n_reference: u64,
}

impl Layout {
    /// The layout of a sorted, non-empty reference sample of finite values, with `edges` (bin
    /// edges; any finite values) as points too.
    pub fn new(sorted_reference: &[f64], edges: &[f64]) -> Layout {
        debug_assert!(sorted_reference.is_sorted());
        let mut points: Vec<f64> = Vec::new();
        let mut reference: Vec<u64> = Vec::new();
        for &value in sorted_reference {
            if points.last() == Some(&value) {
                *reference.last_mut().expect("a point was pushed") += 1;
            } else {
                points.push(value);
                reference.push(1);
            }
        }
        for &edge in edges {
            let at = points.partition_point(|p| *p < edge);
            if points.get(at) != Some(&edge) {
                points.insert(at, edge);
                reference.insert(at, 0);
            }
        }
        Layout {
            points,
            reference,
            n_reference: sorted_reference.len() as u64,
        }
    }

    /// The number of points.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// An empty summary on this layout.
    pub fn empty(&self) -> NumericSummary {
        NumericSummary {
            counts: vec![0; 2 * self.points.len() + 1],
            offsets: vec![0.0; self.points.len() + 1],
            n: 0,
        }
    }

    /// The summary of `values` (finite; any order).
    pub fn summarise(&self, values: &[f64]) -> NumericSummary {
        let mut summary = self.empty();
        for &value in values {
            self.add(&mut summary, value);
        }
        summary
    }

    /// Counts one finite value into `summary`.
    pub fn add(&self, summary: &mut NumericSummary, value: f64) {
        let at = self.points.partition_point(|p| *p < value);
        summary.n += 1;
        if self.points.get(at) == Some(&value) {
            summary.counts[2 * at + 1] += 1;
        } else {
            summary.counts[2 * at] += 1;
            summary.offsets[at] += value - self.anchor(at);
        }
    }

    /// The point gap `gap` measures offsets from: its left point, or the first for gap 0.
    fn anchor(&self, gap: usize) -> f64 {
        self.points[gap.saturating_sub(1)]
    }

    /// The index of the point equal to `value`, if any.
    fn point_index(&self, value: f64) -> Option<usize> {
        let at = self.points.partition_point(|p| *p < value);
        (self.points.get(at) == Some(&value)).then_some(at)
    }
}

/// A window's numeric column on a [`Layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct NumericSummary {
    /// Slot `2g`: values in gap `g` (below point `g`, above point `g - 1`); slot `2p + 1`:
    /// values equal to point `p`.
    counts: Vec<u64>,
    /// Per gap: the sum of its values' offsets from the gap's anchor.
    offsets: Vec<f64>,
    /// Values counted.
    n: u64,
}

impl NumericSummary {
    /// Values counted.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no value was counted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds `other` (a summary on the same layout) into this one.
    pub fn merge(&mut self, other: &NumericSummary) {
        debug_assert_eq!(self.counts.len(), other.counts.len());
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        for (mine, theirs) in self.offsets.iter_mut().zip(&other.offsets) {
            *mine += theirs;
        }
        self.n += other.n;
    }
}

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
