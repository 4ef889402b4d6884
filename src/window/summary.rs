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
    guide: Guide,
}

/// A guide table over the points, so that placing a value costs a few comparisons instead of
/// a binary search over every point: the line from the first point to the last is cut into
/// equal buckets, and `starts[b]` is the number of points in buckets before `b`. The bucket of
/// a value is a non-decreasing function of it, so every point of an earlier bucket is below the
/// value and every point of a later one above: only the value's own bucket is searched.
#[derive(Debug, Clone, PartialEq)]
struct Guide {
    low: f64,
    scale: f64,
    starts: Vec<u32>,
}

impl Guide {
    fn new(points: &[f64]) -> Guide {
        let buckets = points.len().max(1);
        let (low, high) = match (points.first(), points.last()) {
            (Some(low), Some(high)) => (*low, *high),
            _ => (0.0, 0.0),
        };
        let scale = if high > low {
            buckets as f64 / (high - low)
        } else {
            0.0
        };
        let mut guide = Guide {
            low,
            scale,
            starts: vec![0; buckets + 1],
        };
        for &point in points {
            let bucket = guide.bucket(point);
            guide.starts[bucket + 1] += 1;
        }
        for b in 1..guide.starts.len() {
            guide.starts[b] += guide.starts[b - 1];
        }
        guide
    }

    /// The value's bucket: non-decreasing in `value` (every step is monotone, the cast
    /// saturates).
    fn bucket(&self, value: f64) -> usize {
        (((value - self.low) * self.scale) as usize).min(self.starts.len() - 2)
    }

    /// The number of points below `value`, as `points.partition_point(|p| *p < value)`.
    fn below(&self, points: &[f64], value: f64) -> usize {
        let bucket = self.bucket(value);
        let (start, end) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        start + points[start..end].partition_point(|p| *p < value)
    }
}

impl Layout {
    /// The layout of a sorted, non-empty reference sample of finite values, with `edges` (bin
    /// edges; any finite values) as points too.
    pub fn new(sorted_reference: &[f64], edges: &[f64]) -> Layout {
        Layout::weighted(sorted_reference, &[], edges)
    }

    /// [`new`](Self::new) for a reference stored as sorted values with their multiplicities
    /// (an empty `counts` means once each).
    pub fn weighted(sorted_reference: &[f64], counts: &[u64], edges: &[f64]) -> Layout {
        debug_assert!(sorted_reference.is_sorted());
        debug_assert!(counts.is_empty() || counts.len() == sorted_reference.len());
        let mut points: Vec<f64> = Vec::new();
        let mut reference: Vec<u64> = Vec::new();
        for (k, &value) in sorted_reference.iter().enumerate() {
            let count = counts.get(k).copied().unwrap_or(1);
            if points.last() == Some(&value) {
                *reference.last_mut().expect("a point was pushed") += count;
            } else {
                points.push(value);
                reference.push(count);
            }
        }
        let n_reference = reference.iter().sum();
        for &edge in edges {
            let at = points.partition_point(|p| *p < edge);
            if points.get(at) != Some(&edge) {
                points.insert(at, edge);
                reference.insert(at, 0);
            }
        }
        Layout {
            guide: Guide::new(&points),
            points,
            reference,
            n_reference,
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
        let at = self.guide.below(&self.points, value);
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
    /// Per gap: the sum of its values' offsets from the gap's anchor. Serialised as base64 of
    /// little-endian doubles, as a baseline's sample is: exact, and quick to write at every
    /// checkpoint.
    #[serde(with = "crate::baseline::f64_base64")]
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

    /// The bytes its counters and sums take.
    pub fn size_bytes(&self) -> usize {
        8 * (self.counts.len() + self.offsets.len())
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

/// Values a numeric column holds raw before they are folded into its summary, per point of the
/// layout: a summary costs about three words per point (two counters and a sum), a raw value
/// one word, so past this many values the summary is the smaller.
const WORDS_PER_POINT: usize = 3;

/// The layouts one baseline gives a stream's numeric features, each built the first time a
/// window's column grows past the size where its summary is smaller than its values.
#[derive(Debug)]
pub struct Layouts {
    baseline: std::sync::Arc<crate::baseline::Baseline>,
    /// The bin count the layouts hold the edges of (the report's `bins`).
    bins: usize,
    /// Per window column (schema order): the feature's layout, when it is numeric and the
    /// baseline has a sample for it.
    features: Vec<Option<LazyLayout>>,
}

#[derive(Debug)]
struct LazyLayout {
    /// The feature's position among the baseline's profiles.
    profile: usize,
    /// Raw values past which the column is summarised.
    fold_at: usize,
    layout: std::sync::OnceLock<Layout>,
}

impl Layouts {
    /// The layouts of `baseline` for windows of `schema`, with the edges of `bins` quantile bins
    /// as points (the bins the report's binned metrics use).
    pub fn new(
        baseline: std::sync::Arc<crate::baseline::Baseline>,
        schema: &crate::decode::Schema,
        bins: usize,
    ) -> Layouts {
        let features = schema
            .features
            .iter()
            .map(|spec| {
                let profile = baseline
                    .features
                    .iter()
                    .position(|p| p.name() == spec.name)?;
                match &baseline.features[profile] {
                    crate::baseline::FeatureProfile::Numeric(p) if !p.sample.is_empty() => {
                        Some(LazyLayout {
                            profile,
                            fold_at: WORDS_PER_POINT * (p.sample.len() + bins + 1),
                            layout: std::sync::OnceLock::new(),
                        })
                    }
                    _ => None,
                }
            })
            .collect();
        Layouts {
            baseline,
            bins,
            features,
        }
    }

    /// Folds every summarised column once it holds `values` raw values, instead of at the size
    /// where the summary is smaller: for tests and benchmarks that want small windows summarised.
    pub fn folding_at(mut self, values: usize) -> Layouts {
        for feature in self.features.iter_mut().flatten() {
            feature.fold_at = values.max(1);
        }
        self
    }

    /// The baseline the layouts are of.
    pub fn baseline(&self) -> &std::sync::Arc<crate::baseline::Baseline> {
        &self.baseline
    }

    /// The bin count whose edges are points.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Whether summaries of these layouts are what `summaries` were counted on.
    pub fn fit(&self, summaries: &WindowSummaries) -> bool {
        summaries.baseline == self.baseline.id
            && summaries.bins == self.bins
            && summaries.columns.len() == self.features.len()
    }

    /// Raw values past which window column `column` is folded into a summary; `None` when it
    /// is never summarised.
    pub fn fold_at(&self, column: usize) -> Option<usize> {
        self.features.get(column)?.as_ref().map(|f| f.fold_at)
    }

    /// Window column `column`'s layout, built on first use; `None` when it is never summarised.
    pub fn layout(&self, column: usize) -> Option<&Layout> {
        let feature = self.features.get(column)?.as_ref()?;
        Some(feature.layout.get_or_init(|| {
            let crate::baseline::FeatureProfile::Numeric(profile) =
                &self.baseline.features[feature.profile]
            else {
                unreachable!("only numeric profiles get layouts");
            };
            let (bins, _) = profile.reference_histogram(self.baseline.settings.bins, self.bins);
            Layout::weighted(&profile.sample, &profile.sample_counts, &bins.edges)
        }))
    }

    /// An empty set of summaries for a window of these layouts.
    pub fn start(&self) -> WindowSummaries {
        WindowSummaries {
            baseline: self.baseline.id.clone(),
            bins: self.bins,
            columns: vec![None; self.features.len()],
        }
    }
}

impl PartialEq for Layouts {
    /// Layouts are equal when they are of the same baseline and bin count.
    fn eq(&self, other: &Layouts) -> bool {
        self.baseline.id == other.baseline.id && self.bins == other.bins
    }
}

/// The summarised part of a window's numeric columns: which baseline's layouts they are counted
/// on, and per window column the summary of the values folded so far (the rest are still raw
/// in the window's data set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummaries {
    /// The id of the baseline whose layouts the summaries are on.
    pub baseline: String,
    /// The bin count whose edges are points of those layouts.
    pub bins: usize,
    /// Per window column: its summary, when some of its values were folded.
    pub columns: Vec<Option<NumericSummary>>,
}

impl WindowSummaries {
    /// Folds column `column`'s raw `values` into its summary, leaving `values` empty.
    pub fn fold(&mut self, layouts: &Layouts, column: usize, values: &mut Vec<f64>) {
        let Some(layout) = layouts.layout(column) else {
            return;
        };
        let summary = self.columns[column].get_or_insert_with(|| layout.empty());
        for value in values.drain(..) {
            layout.add(summary, value);
        }
    }

    /// Values counted in column `column`'s summary.
    pub fn count(&self, column: usize) -> u64 {
        self.columns
            .get(column)
            .and_then(Option::as_ref)
            .map_or(0, NumericSummary::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_places_every_value_as_a_binary_search_does() {
        let mut rng = crate::rng::SplitMix64::new(4);
        // Clustered points (a dense centre, sparse tails) and a single point.
        let mut points: Vec<f64> = (0..5000)
            .map(|_| (rng.normal() * 50.0).round() / 7.0)
            .collect();
        points.sort_by(f64::total_cmp);
        points.dedup();
        for points in [points, vec![3.0]] {
            let guide = Guide::new(&points);
            let mut values: Vec<f64> = (0..20_000).map(|_| rng.normal() * 30.0).collect();
            values.extend(&points);
            values.extend([
                f64::MIN,
                -1e300,
                1e300,
                f64::MAX,
                points[0],
                points[points.len() - 1],
            ]);
            for value in values {
                let expected = points.partition_point(|p| *p < value);
                assert_eq!(guide.below(&points, value), expected, "value {value}");
            }
        }
    }
}
