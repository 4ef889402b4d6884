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
//! The statistics computed from a summary are in [`crate::drift::summary`]: KS and the binned
//! metrics exactly as from the raw values, Wasserstein-1 within a stated bound.

use serde::{Deserialize, Serialize};

/// Where a summary's counters sit: strictly increasing points with the reference's count at
/// each.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub(crate) points: Vec<f64>,
    pub(crate) reference: Vec<u64>,
    pub(crate) n_reference: u64,
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
    pub(crate) fn point_index(&self, value: f64) -> Option<usize> {
        let at = self.points.partition_point(|p| *p < value);
        (self.points.get(at) == Some(&value)).then_some(at)
    }
}

/// A window's numeric column on a [`Layout`]. Serialises (for window checkpoints and
/// partition parts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Slot `2g`: values in gap `g` (below point `g`, above point `g - 1`); slot `2p + 1`:
    /// values equal to point `p`.
    pub(crate) counts: Vec<u64>,
    /// Per gap: the sum of its values' offsets from the gap's anchor.
    pub(crate) offsets: Vec<f64>,
    /// Values counted.
    pub(crate) n: u64,
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
