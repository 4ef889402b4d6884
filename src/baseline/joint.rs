//! A uniform sample of the training data's complete numeric rows: the reference a multivariate
//! test (MMD, PCA reconstruction) needs, since per-feature profiles lose which values went
//! together.

use std::collections::BTreeMap;

use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::sample::f64_base64;
use crate::decode::Cell;
use crate::rng::SplitMix64;

/// Rows a baseline keeps by default: MMD compares 500 a side; PCA's held-out errors use them
/// all.
pub const DEFAULT_JOINT_ROWS: usize = 2000;

/// Complete numeric rows of the training data, sampled uniformly (Vitter's algorithm R).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointSample {
    /// The numeric features, in schema order: the rows' first columns.
    pub features: Vec<String>,
    /// The categorical features, in schema order, one-hot: their indicator columns follow the
    /// numeric ones (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub onehot: Vec<OneHot>,
    /// Records whose numeric features all had a finite value: the rows sampled from.
    pub complete_rows: u64,
    /// The sampled rows, row-major, as base64 of little-endian doubles.
    #[serde(with = "f64_base64")]
    pub values: Vec<f64>,
}

impl JointSample {
    /// The sample as a rows × columns array: the numeric features, then the indicators.
    pub fn rows(&self) -> ArrayView2<'_, f64> {
        let width = self.width().max(1);
        ArrayView2::from_shape((self.values.len() / width, width), &self.values)
            .expect("checked on load")
    }

    /// The numeric features' columns only.
    pub fn numeric_rows(&self) -> ArrayView2<'_, f64> {
        self.rows().slice_move(s![.., ..self.features.len()])
    }

    /// Columns per row: the numeric features and one per level of each categorical one.
    pub fn width(&self) -> usize {
        self.features.len() + self.onehot.iter().map(|o| o.levels.len()).sum::<usize>()
    }

    /// The sampled rows' count.
    pub fn len(&self) -> usize {
        self.values.len() / self.width().max(1)
    }

    /// Whether no row was sampled.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Internal consistency, checked on load.
    pub fn check(&self) -> Result<(), String> {
        if self.width() == 0 || !self.values.len().is_multiple_of(self.width()) {
            return Err(format!(
                "the joint sample's {} values are not rows of its {} columns",
                self.values.len(),
                self.width()
            ));
        }
        if self.onehot.iter().any(|o| !o.levels.is_sorted()) {
            return Err("a one-hot feature's levels are not in order".into());
        }
        if self.values.iter().any(|v| !v.is_finite()) {
            return Err("the joint sample holds a value that is not finite".into());
        }
        Ok(())
    }
}

/// Levels of a categorical feature a joint sample encodes at most: its most frequent.
pub const MAX_LEVELS: usize = 20;
/// Levels rarer than this share of the training values get no indicator of their own.
pub const MIN_LEVEL_SHARE: f64 = 0.01;

/// A categorical feature one-hot encoded: an indicator column per level, levels in byte
/// order; a value of no level (rare, or unseen in training) sets none of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHot {
    /// The feature.
    pub feature: String,
    /// Its levels with an indicator.
    pub levels: Vec<String>,
}

impl OneHot {
    /// The encoding of feature `name` with these training counts: the up to [`MAX_LEVELS`]
    /// most frequent levels of at least [`MIN_LEVEL_SHARE`]; `None` when none qualifies.
    pub fn of(name: &str, counts: &BTreeMap<String, u64>) -> Option<OneHot> {
        let total: u64 = counts.values().sum();
        let mut levels: Vec<(&String, u64)> = (counts.iter())
            .filter(|(_, &n)| n as f64 >= MIN_LEVEL_SHARE * total as f64)
            .map(|(level, &n)| (level, n))
            .collect();
        levels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        levels.truncate(MAX_LEVELS);
        let mut levels: Vec<String> = levels.into_iter().map(|(l, _)| l.clone()).collect();
        levels.sort();
        (!levels.is_empty()).then(|| OneHot {
            feature: name.to_string(),
            levels,
        })
    }

    /// Appends `cell`'s indicators to `row` (labels as a categorical column reads them); false
    /// for a missing or unusable value, which leaves the record without a complete row.
    pub fn encode(&self, cell: Cell<'_>, row: &mut Vec<f64>) -> bool {
        let at = match cell {
            Cell::Missing | Cell::Nested => return false,
            Cell::Number { value, .. } if value.is_nan() => return false,
            Cell::Number { text, .. } => text.with_str(|label| self.position(label)),
            Cell::Text(label) => self.position(label),
            Cell::Bool(b) => self.position(if b { "true" } else { "false" }),
        };
        row.extend((0..self.levels.len()).map(|i| f64::from(u8::from(at == Some(i)))));
        true
    }

    fn position(&self, label: &str) -> Option<usize> {
        self.levels.binary_search_by(|l| l.as_str().cmp(label)).ok()
    }
}

/// Samples complete rows as they are offered.
#[derive(Debug)]
pub struct RowReservoir {
    features: Vec<String>,
    onehot: Vec<OneHot>,
    capacity: usize,
    seen: u64,
    rows: Vec<Vec<f64>>,
    rng: SplitMix64,
}

impl RowReservoir {
    /// An empty sample of at most `capacity` rows of `features`.
    pub fn new(features: Vec<String>, capacity: usize, seed: u64) -> RowReservoir {
        RowReservoir {
            features,
            onehot: Vec::new(),
            capacity,
            seen: 0,
            rows: Vec::new(),
            rng: SplitMix64::new(seed ^ 0x6a6f_696e_7472_6f77),
        }
    }

    /// Also samples these categorical features, one-hot, after the numeric ones.
    pub fn with_onehot(mut self, onehot: Vec<OneHot>) -> RowReservoir {
        self.onehot = onehot;
        self
    }

    /// Offers one record's values of the numeric features, in their order (`None` for a
    /// missing or unusable one: the record has no complete row); for a sample without
    /// categorical features.
    pub fn offer(&mut self, row: impl Iterator<Item = Option<f64>>) {
        self.offer_cells(row, std::iter::empty());
    }

    /// Offers one record's values of the numeric features and its cells of the categorical
    /// ones, each in their order.
    pub fn offer_cells<'c>(
        &mut self,
        numbers: impl Iterator<Item = Option<f64>>,
        cells: impl Iterator<Item = Cell<'c>>,
    ) {
        let Some(mut row) = numbers
            .map(|v| v.filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()
        else {
            return;
        };
        let mut cells = cells;
        for encoding in &self.onehot {
            let Some(cell) = cells.next() else { return };
            if !encoding.encode(cell, &mut row) {
                return;
            }
        }
        self.seen += 1;
        if self.rows.len() < self.capacity {
            self.rows.push(row);
            return;
        }
        let slot = self.rng.below(self.seen) as usize;
        if slot < self.capacity {
            self.rows[slot] = row;
        }
    }

    /// The sample; `None` with fewer than two rows or two columns (nothing to test jointly).
    pub fn finish(self) -> Option<JointSample> {
        let width = self.features.len() + self.onehot.iter().map(|o| o.levels.len()).sum::<usize>();
        if self.rows.len() < 2 || width < 2 {
            return None;
        }
        let rows = Array2::from_shape_vec(
            (self.rows.len(), width),
            self.rows.into_iter().flatten().collect(),
        )
        .expect("rows of the features");
        Some(JointSample {
            features: self.features,
            onehot: self.onehot,
            complete_rows: self.seen,
            values: rows.into_raw_vec_and_offset().0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_rows_are_sampled_and_the_cap_holds() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut all = RowReservoir::new(names.clone(), 10, 1);
        for i in 0..5 {
            all.offer([Some(f64::from(i)), Some(-f64::from(i))].into_iter());
        }
        all.offer([Some(1.0), None].into_iter());
        all.offer([Some(f64::NAN), Some(1.0)].into_iter());
        let sample = all.finish().unwrap();
        assert_eq!(sample.complete_rows, 5);
        assert_eq!(sample.rows().row(3).to_vec(), [3.0, -3.0]);
        let mut capped = RowReservoir::new(names, 100, 2);
        for i in 0..10_000 {
            capped.offer([Some(f64::from(i)), Some(f64::from(i) * 2.0)].into_iter());
        }
        let sample = capped.finish().unwrap();
        assert_eq!((sample.len(), sample.complete_rows), (100, 10_000));
        assert!(
            sample.rows().rows().into_iter().all(|r| r[1] == 2.0 * r[0]),
            "rows stay whole"
        );
        let mean = sample.rows().column(0).mean().unwrap();
        assert!(
            (3_500.0..6_500.0).contains(&mean),
            "uniform over the stream: {mean}"
        );
        assert!(sample.check().is_ok());
    }
}
