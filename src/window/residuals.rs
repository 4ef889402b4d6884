//! A window's regression errors: what MAE and RMSE are computed from, kept as sums so that a
//! window's parts (from several instances) merge by adding them.

use serde::{Deserialize, Serialize};

use crate::decode::PredictionError;

/// Sums over a window's records whose `prediction` and `label` are both numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Residuals {
    /// Records with a numeric prediction and a numeric label.
    pub count: u64,
    /// Their sum of `|prediction - label|`.
    pub absolute: f64,
    /// Their sum of `(prediction - label)²`.
    pub squared: f64,
}

impl Residuals {
    /// Counts one labelled record's error (class labels add nothing).
    pub fn add(&mut self, error: PredictionError) {
        if let PredictionError::Residual(r) = error {
            self.count += 1;
            self.absolute += r.abs();
            self.squared += r * r;
        }
    }

    /// Adds another part's sums. Floating-point addition is not associative, so a window
    /// merged from parts can differ from the same window read whole in the last bits.
    pub fn merge(&mut self, other: &Residuals) {
        self.count += other.count;
        self.absolute += other.absolute;
        self.squared += other.squared;
    }

    /// No numeric labels seen.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Mean absolute error; `None` without numeric labels.
    pub fn mae(&self) -> Option<f64> {
        (self.count > 0).then(|| self.absolute / self.count as f64)
    }

    /// Root mean squared error; `None` without numeric labels.
    pub fn rmse(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.squared / self.count as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mae_and_rmse_are_over_numeric_labels_only() {
        let mut residuals = Residuals::default();
        assert_eq!((residuals.mae(), residuals.rmse()), (None, None));
        for error in [
            PredictionError::Residual(3.0),
            PredictionError::Wrong(true),
            PredictionError::Residual(-4.0),
            PredictionError::Residual(0.0),
        ] {
            residuals.add(error);
        }
        assert_eq!(residuals.count, 3);
        assert_eq!(residuals.mae(), Some(7.0 / 3.0));
        assert_eq!(residuals.rmse(), Some((25.0f64 / 3.0).sqrt()));
        let mut merged = Residuals::default();
        merged.merge(&residuals);
        merged.merge(&residuals);
        assert_eq!(merged.count, 6);
        assert_eq!(merged.mae(), residuals.mae());
    }
}
