//! Bins fixed on the reference, shared by every binned metric (PSI, Jensen–Shannon, Hellinger).
//!
//! Numeric: `k` quantile bins (default 10). Edge `i` (for `i = 0..=k`) is the reference value at
//! rank `floor(i·(n-1)/k)` of the sorted reference, a lower order statistic, so edges are always
//! observed values and no interpolation rounding can move a value across an edge. Repeated edges
//! (ties) are merged, so a column with few distinct values gets fewer bins, and a constant column
//! gets one. Interior bin `j` is `[e_j, e_{j+1})`, the last one closed `[e_{k-1}, e_k]`. Two
//! extra bins catch current values below the reference minimum (underflow) and above its
//! maximum (overflow); the reference has none there by construction.
//!
//! Categorical: one bin per reference category, in sorted order, plus an "unseen" bin for
//! current values the reference never had.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The default number of quantile bins.
pub const DEFAULT_BINS: usize = 10;

/// Quantile bin edges of a numeric reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileBins {
    /// Strictly increasing edges; at least one.
    pub edges: Vec<f64>,
}

impl QuantileBins {
    /// Edges for `count` bins from a sorted, non-empty sample. `None` when the sample is empty
    /// or `count` is zero.
    pub fn from_sorted(sorted: &[f64], count: usize) -> Option<QuantileBins> {
        debug_assert!(sorted.is_sorted());
        Self::from_ranks(sorted.len(), |rank| sorted[rank], count)
    }

    /// [`from_sorted`](Self::from_sorted) for sorted distinct values with their multiplicities
    /// (an empty `counts` means once each): the edges of the expanded sample.
    pub fn from_weighted(values: &[f64], counts: &[u64], count: usize) -> Option<QuantileBins> {
        if counts.is_empty() {
            return Self::from_sorted(values, count);
        }
        let ends = running_totals(counts);
        let len = ends.last().copied().unwrap_or(0) as usize;
        let value_at = |rank: usize| values[ends.partition_point(|end| *end <= rank as u64)];
        Self::from_ranks(len, value_at, count)
    }

    /// Edges at ranks `floor(i·(len-1)/count)` of a sorted sample of `len` values, each read
    /// with `value_at`.
    fn from_ranks(
        len: usize,
        value_at: impl Fn(usize) -> f64,
        count: usize,
    ) -> Option<QuantileBins> {
        if len == 0 || count == 0 {
            return None;
        }
        let last = len - 1;
        let mut edges: Vec<f64> = Vec::with_capacity(count + 1);
        for i in 0..=count {
            // u128: i·(n-1) may exceed u64 for absurd bin counts; never silently wrap.
            let rank = (i as u128 * last as u128 / count as u128) as usize;
            let edge = value_at(rank);
            if edges.last() != Some(&edge) {
                edges.push(edge);
            }
        }
        Some(QuantileBins { edges })
    }

    /// Checks a deserialised value: at least one edge, strictly increasing, finite.
    pub fn validate(&self) -> Result<(), String> {
        if self.edges.is_empty() {
            return Err("no bin edges".to_string());
        }
        if self.edges.iter().any(|e| !e.is_finite()) {
            return Err("a bin edge is not finite".to_string());
        }
        if self.edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err("bin edges are not strictly increasing".to_string());
        }
        Ok(())
    }

    /// The number of interior bins (at least one).
    pub fn interior(&self) -> usize {
        self.edges.len().saturating_sub(1).max(1)
    }

    /// The number of histogram slots: interior bins plus underflow and overflow.
    pub fn slots(&self) -> usize {
        self.interior() + 2
    }

    /// The histogram slot of a value: 0 underflow, `1..=interior` interior, last overflow.
    #[inline]
    pub fn slot(&self, value: f64) -> usize {
        let first = self.edges[0];
        let last = self.edges[self.edges.len() - 1];
        if value < first {
            return 0;
        }
        if value > last {
            return self.interior() + 1;
        }
        // Edges <= value, minus one, is the interior bin; the top edge belongs to the last bin.
        let below = self.edges.partition_point(|e| *e <= value);
        below.min(self.interior())
    }

    /// Counts values per slot.
    pub fn histogram(&self, values: &[f64]) -> Vec<u64> {
        let mut counts = vec![0u64; self.slots()];
        for &value in values {
            counts[self.slot(value)] += 1;
        }
        counts
    }

    /// Counts values per slot, like [`histogram`](Self::histogram), for values sorted in
    /// ascending order: a slot's values are one run of them, so this finds each slot's end by
    /// binary search instead of placing every value.
    pub fn histogram_sorted(&self, sorted: &[f64]) -> Vec<u64> {
        let mut start = 0;
        self.slot_ends(sorted)
            .map(|end| {
                let count = (end - start) as u64;
                start = end;
                count
            })
            .collect()
    }

    /// [`histogram_sorted`](Self::histogram_sorted) for sorted values with their
    /// multiplicities (an empty `counts` means once each).
    pub fn histogram_weighted(&self, sorted: &[f64], counts: &[u64]) -> Vec<u64> {
        if counts.is_empty() {
            return self.histogram_sorted(sorted);
        }
        let mut start = 0;
        self.slot_ends(sorted)
            .map(|end| {
                let count = counts[start..end].iter().sum();
                start = end;
                count
            })
            .collect()
    }

    /// Where each slot's run of sorted values ends.
    fn slot_ends<'a>(&'a self, sorted: &'a [f64]) -> impl Iterator<Item = usize> + 'a {
        debug_assert!(sorted.is_sorted());
        let interior = self.interior();
        let top = self.edges[self.edges.len() - 1];
        // Underflow ends at the first edge; interior bin j (1-based) ends at edge j, except the
        // last, which holds its top edge; overflow takes the rest.
        std::iter::once(sorted.partition_point(|v| *v < self.edges[0]))
            .chain(
                self.edges[1..interior]
                    .iter()
                    .map(|edge| sorted.partition_point(|v| v < edge)),
            )
            .chain([sorted.partition_point(|v| *v <= top), sorted.len()])
    }
}

/// The running totals of `counts`: entry `k` is the sum of the first `k + 1`.
fn running_totals(counts: &[u64]) -> Vec<u64> {
    counts
        .iter()
        .scan(0u64, |total, count| {
            *total += count;
            Some(*total)
        })
        .collect()
}

/// Aligned count vectors for a categorical feature: the reference categories in sorted order,
/// then the "unseen" bin.
pub fn categorical_histograms(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> (Vec<u64>, Vec<u64>) {
    let mut reference_counts: Vec<u64> = reference.values().copied().collect();
    reference_counts.push(0);
    let mut current_counts: Vec<u64> = reference
        .keys()
        .map(|label| current.get(label).copied().unwrap_or(0))
        .collect();
    let unseen = current
        .iter()
        .filter(|(label, _)| !reference.contains_key(*label))
        .map(|(_, count)| count)
        .sum();
    current_counts.push(unseen);
    (reference_counts, current_counts)
}

/// Aligned count vectors over the categories seen in either sample, for the chi-square test.
pub fn union_histograms(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> (Vec<u64>, Vec<u64>) {
    let mut labels: Vec<&String> = reference.keys().chain(current.keys()).collect();
    labels.sort();
    labels.dedup();
    labels
        .into_iter()
        .map(|label| {
            (
                reference.get(label).copied().unwrap_or(0),
                current.get(label).copied().unwrap_or(0),
            )
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_order_statistics_and_ties_merge() {
        let sorted: Vec<f64> = (0..11).map(f64::from).collect();
        let bins = QuantileBins::from_sorted(&sorted, 10).unwrap();
        assert_eq!(bins.edges, sorted);
        let constant = QuantileBins::from_sorted(&[3.0; 7], 10).unwrap();
        assert_eq!(constant.edges, vec![3.0]);
        assert_eq!(constant.slots(), 3);
        assert_eq!(constant.slot(3.0), 1);
        assert_eq!(constant.slot(2.0), 0);
        assert_eq!(constant.slot(4.0), 2);
    }

    #[test]
    fn sorted_histogram_counts_like_placing_each_value() {
        let mut rng = crate::rng::SplitMix64::new(7);
        // Values on a coarse grid, so many of them sit exactly on edges.
        let draw = |rng: &mut crate::rng::SplitMix64, n: usize| {
            let mut values: Vec<f64> = (0..n)
                .map(|_| (rng.next_f64() * 40.0).floor() / 4.0 - 2.0)
                .collect();
            values.sort_by(f64::total_cmp);
            values
        };
        for bin_count in [1, 2, 3, 10, 50] {
            let reference = draw(&mut rng, 500);
            let bins = QuantileBins::from_sorted(&reference, bin_count).unwrap();
            for current in [
                draw(&mut rng, 300),
                vec![],
                vec![-9.0, 99.0],
                reference.clone(),
            ] {
                assert_eq!(bins.histogram_sorted(&current), bins.histogram(&current));
            }
        }
        let constant = QuantileBins { edges: vec![3.0] };
        let values = [1.0, 3.0, 3.0, 4.0];
        assert_eq!(constant.histogram_sorted(&values), vec![1, 2, 1]);
    }

    #[test]
    fn weighted_edges_and_histograms_are_those_of_the_expanded_sample() {
        let mut rng = crate::rng::SplitMix64::new(11);
        let values: Vec<f64> = (0..40).map(|v| f64::from(v) / 2.0).collect();
        let counts: Vec<u64> = (0..40).map(|_| 1 + rng.below(9)).collect();
        let expanded: Vec<f64> = values
            .iter()
            .zip(&counts)
            .flat_map(|(v, c)| std::iter::repeat_n(*v, *c as usize))
            .collect();
        for bin_count in [1, 3, 10, 39, 200] {
            let bins = QuantileBins::from_weighted(&values, &counts, bin_count).unwrap();
            assert_eq!(
                Some(&bins),
                QuantileBins::from_sorted(&expanded, bin_count).as_ref()
            );
            assert_eq!(
                bins.histogram_weighted(&values, &counts),
                bins.histogram_sorted(&expanded)
            );
        }
    }

    #[test]
    fn top_edge_belongs_to_last_bin() {
        let bins = QuantileBins {
            edges: vec![0.0, 1.0, 2.0],
        };
        assert_eq!(bins.slot(0.0), 1);
        assert_eq!(bins.slot(0.5), 1);
        assert_eq!(bins.slot(1.0), 2);
        assert_eq!(bins.slot(2.0), 2);
        assert_eq!(bins.slot(2.5), 3);
        assert_eq!(bins.slot(-1.0), 0);
    }

    #[test]
    fn bin_count_is_honoured() {
        let sorted: Vec<f64> = (0..1000).map(f64::from).collect();
        for count in [2, 5, 10, 20, 50] {
            let bins = QuantileBins::from_sorted(&sorted, count).unwrap();
            assert_eq!(bins.interior(), count);
        }
    }
}
