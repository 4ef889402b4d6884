//! A uniform sample of the training data's complete numeric rows: the reference a multivariate
//! test (MMD, PCA reconstruction) needs, since per-feature profiles lose which values went
//! together.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::sample::f64_base64;
use crate::rng::SplitMix64;

/// Rows a baseline keeps by default: MMD compares 500 a side; PCA's held-out errors use them
/// all.
pub const DEFAULT_JOINT_ROWS: usize = 2000;

/// Complete numeric rows of the training data, sampled uniformly (Vitter's algorithm R).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointSample {
    /// The numeric features, in schema order: the rows' columns.
    pub features: Vec<String>,
    /// Records whose numeric features all had a finite value: the rows sampled from.
    pub complete_rows: u64,
    /// The sampled rows, row-major, as base64 of little-endian doubles.
    #[serde(with = "f64_base64")]
    pub values: Vec<f64>,
}

impl JointSample {
    /// The sample as a rows × features array.
    pub fn rows(&self) -> ArrayView2<'_, f64> {
        let width = self.features.len().max(1);
        ArrayView2::from_shape((self.values.len() / width, width), &self.values)
            .expect("checked on load")
    }

    /// The sampled rows' count.
    pub fn len(&self) -> usize {
        self.values.len() / self.features.len().max(1)
    }

    /// Whether no row was sampled.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Internal consistency, checked on load.
    pub fn check(&self) -> Result<(), String> {
        if self.features.is_empty() || !self.values.len().is_multiple_of(self.features.len()) {
            return Err(format!(
                "the joint sample's {} values are not rows of its {} features",
                self.values.len(),
                self.features.len()
            ));
        }
        if self.values.iter().any(|v| !v.is_finite()) {
            return Err("the joint sample holds a value that is not finite".into());
        }
        Ok(())
    }
}

/// Samples complete rows as they are offered.
#[derive(Debug)]
pub struct RowReservoir {
    features: Vec<String>,
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
            capacity,
            seen: 0,
            rows: Vec::new(),
            rng: SplitMix64::new(seed ^ 0x6a6f_696e_7472_6f77),
        }
    }

    /// Offers one record's values of the features, in their order (`None` for a missing or
    /// unusable one: the record has no complete row).
    pub fn offer(&mut self, row: impl Iterator<Item = Option<f64>>) {
        let Some(row) = row
            .map(|v| v.filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()
        else {
            return;
        };
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

    /// The sample; `None` with fewer than two rows or two features (nothing to test jointly).
    pub fn finish(self) -> Option<JointSample> {
        if self.rows.len() < 2 || self.features.len() < 2 {
            return None;
        }
        let rows = Array2::from_shape_vec(
            (self.rows.len(), self.features.len()),
            self.rows.into_iter().flatten().collect(),
        )
        .expect("rows of the features");
        Some(JointSample {
            features: self.features,
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
