//! The loss an error-stream detector watches: the number each labelled record's prediction
//! error becomes before the detector sees it.

use serde::{Deserialize, Serialize};

use crate::decode::PredictionError;

/// How a labelled record's prediction error is scored for a detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// 1 for a wrong prediction, 0 for a right one (the default; any kind of label).
    #[default]
    ZeroOne,
    /// `|prediction - label|`; only records whose prediction and label are both numbers.
    Absolute,
    /// `(prediction - label)²`; only records whose prediction and label are both numbers.
    Squared,
}

impl Loss {
    /// The detector's input for one record; `None` when the loss does not apply to it (a
    /// string or boolean label under a numeric loss).
    pub fn of(self, error: PredictionError) -> Option<f64> {
        match (self, error) {
            (Loss::ZeroOne, error) => Some(f64::from(u8::from(error.wrong()))),
            (Loss::Absolute, PredictionError::Residual(r)) => Some(r.abs()),
            (Loss::Squared, PredictionError::Residual(r)) => Some(r * r),
            (_, PredictionError::Wrong(_)) => None,
        }
    }

    /// Every loss, in the order the documentation lists them.
    pub const ALL: [Loss; 3] = [Loss::ZeroOne, Loss::Absolute, Loss::Squared];

    /// The loss written as `name` in a policy file.
    pub fn parse(name: &str) -> Option<Loss> {
        Loss::ALL.into_iter().find(|loss| loss.name() == name)
    }

    /// The name written in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Loss::ZeroOne => "zero_one",
            Loss::Absolute => "absolute",
            Loss::Squared => "squared",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loss_scores_a_residual_and_only_zero_one_scores_a_class() {
        let residual = PredictionError::Residual(-3.0);
        assert_eq!(Loss::ZeroOne.of(residual), Some(1.0));
        assert_eq!(Loss::ZeroOne.of(PredictionError::Residual(0.0)), Some(0.0));
        assert_eq!(Loss::Absolute.of(residual), Some(3.0));
        assert_eq!(Loss::Squared.of(residual), Some(9.0));
        let class = PredictionError::Wrong(true);
        assert_eq!(Loss::ZeroOne.of(class), Some(1.0));
        assert_eq!(Loss::Absolute.of(class), None);
        assert_eq!(Loss::Squared.of(class), None);
    }
}
