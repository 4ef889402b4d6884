//! PCA reconstruction error, a multivariate drift statistic that sees what per-feature tests
//! cannot (a correlation that flips while every marginal stays put), as NannyML's
//! `DataReconstructionDriftCalculator` defines it:
//!
//! 1. On the reference: each feature standardised by its mean and population standard deviation
//!    (a constant feature keeps scale 1), then PCA on the standardised rows, keeping the fewest
//!    components whose explained variance exceeds `variance` (0.65 by default, scikit-learn's
//!    rule for a fractional `n_components`).
//! 2. A row's reconstruction error is the Euclidean norm of what the kept components do not
//!    explain: `|z - mu - (z - mu)·Vᵀ·V|` for the standardised row `z`, the standardised
//!    reference's mean `mu` and the kept components `V` (one per row of `V`).
//! 3. A chunk's (window's) statistic is the mean error of its rows. NannyML's thresholds
//!    ([`chunk_band`]) come from the reference's own chunks: their mean plus and minus three
//!    population standard deviations, the lower one at least 0.
//!
//! NannyML's band is measured on the rows the PCA was fitted on, whose errors are smaller than
//! a new window's: with 20 features of which 13 components are kept, unchanged 1,000-row
//! windows leave it in 68 % of cases (`tests/multivariate.rs`). So driftgate decides on errors
//! held out instead ([`ErrorNull`]): each reference row's error under a PCA fitted without it
//! (ten folds), whose mean and spread give a window's mean error a normal null distribution and
//! so a p-value, as every other method has.
//!
//! Rows must be complete (the caller imputes or leaves out missing values); categorical features
//! enter as numbers the caller chose (e.g. each category's share in the reference, NannyML's
//! count encoding).

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use statrs::distribution::ContinuousCDF;

/// The share of variance the kept components explain, NannyML's default.
pub const DEFAULT_VARIANCE: f64 = 0.65;

/// Standard deviations either side of the reference chunks' mean error, NannyML's default.
pub const DEFAULT_MULTIPLIER: f64 = 3.0;

/// A PCA fitted on the reference, for reconstruction errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconstruction {
    /// Per feature: the reference's mean.
    pub mean: Array1<f64>,
    /// Per feature: the reference's population standard deviation (1 for a constant feature).
    pub scale: Array1<f64>,
    /// The standardised reference's mean (zero but for rounding).
    pub centre: Array1<f64>,
    /// The kept components, one unit vector per row, by falling explained variance.
    pub components: Array2<f64>,
    /// Every component's share of the variance, falling.
    pub explained: Vec<f64>,
}

/// Why a reconstruction cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer than two rows, or no features.
    #[error("PCA needs at least two reference rows and one feature; got {rows} x {features}")]
    TooSmall {
        /// Rows given.
        rows: usize,
        /// Features given.
        features: usize,
    },
    /// A value that is not a finite number.
    #[error(
        "the reference holds a value that is not a finite number (row {row}, feature {feature})"
    )]
    NotFinite {
        /// Its row.
        row: usize,
        /// Its feature.
        feature: usize,
    },
}

impl Reconstruction {
    /// Fits on `reference` (one row per record, one column per feature), keeping the fewest
    /// components that explain more than `variance` of it (all of them when `variance >= 1`).
    pub fn fit(reference: ArrayView2<f64>, variance: f64) -> Result<Reconstruction, FitError> {
        let (rows, features) = reference.dim();
        if rows < 2 || features == 0 {
            return Err(FitError::TooSmall { rows, features });
        }
        if let Some(((row, feature), _)) = reference.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(FitError::NotFinite { row, feature });
        }
        let (mean, scale) = standardisation(reference);
        let standardised = (&reference - &mean) / &scale;
        let centre = standardised.mean_axis(Axis(0)).expect("rows > 0");
        let centred = &standardised - &centre;
        let covariance = centred.t().dot(&centred) / (rows - 1) as f64;
        let (values, vectors) = eigen_falling(&covariance);
        let total: f64 = values.iter().sum();
        let explained: Vec<f64> = values.iter().map(|v| v / total).collect();
        let kept = kept_components(&explained, variance);
        let components = Array2::from_shape_fn((kept, features), |(k, j)| vectors[(j, k)]);
        Ok(Reconstruction {
            mean,
            scale,
            centre,
            components,
            explained,
        })
    }

    /// Each row's reconstruction error.
    pub fn errors(&self, data: ArrayView2<f64>) -> Array1<f64> {
        let centred = (&data - &self.mean) / &self.scale - &self.centre;
        let projected = centred.dot(&self.components.t()).dot(&self.components);
        let residual = centred - projected;
        residual.map_axis(Axis(1), |row| row.dot(&row).sqrt())
    }

    /// The mean reconstruction error of `data`'s rows: a window's statistic. NaN without rows.
    pub fn mean_error(&self, data: ArrayView2<f64>) -> f64 {
        self.errors(data).mean().unwrap_or(f64::NAN)
    }
}

/// Per feature, the mean and the population standard deviation (1 for a constant feature) of
/// `rows` (at least one): what standardising on a reference divides by.
pub fn standardisation(rows: ArrayView2<f64>) -> (Array1<f64>, Array1<f64>) {
    let mean = rows.mean_axis(Axis(0)).unwrap_or_default();
    let scale = rows
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 0.0 { s } else { 1.0 });
    (mean, scale)
}

/// The eigenvalues of a symmetric matrix, falling (negatives from rounding clamped to 0), and
/// their unit eigenvectors as columns in the same order.
fn eigen_falling(matrix: &Array2<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let n = matrix.nrows();
    let eigen = SymmetricEigen::new(DMatrix::from_fn(n, n, |i, j| matrix[(i, j)]));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values = order
        .iter()
        .map(|&k| eigen.eigenvalues[k].max(0.0))
        .collect();
    let vectors = DMatrix::from_fn(n, n, |i, k| eigen.eigenvectors[(i, order[k])]);
    (values, vectors)
}

/// scikit-learn's rule for a fractional `n_components`: one more than the number of components
/// whose cumulative share is at most `variance`, and no more than there are.
fn kept_components(explained: &[f64], variance: f64) -> usize {
    let mut cumulative = 0.0;
    let within = explained
        .iter()
        .take_while(|share| {
            cumulative += **share;
            cumulative <= variance
        })
        .count();
    (within + 1).min(explained.len())
}

/// The band a window's mean error is expected in when nothing drifted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Below this, drift (at least 0).
    pub lower: f64,
    /// Above this, drift.
    pub upper: f64,
}

impl Band {
    /// Whether a window's mean error lies outside the band.
    pub fn drifted(&self, mean_error: f64) -> bool {
        mean_error < self.lower || mean_error > self.upper
    }
}

/// The band from the reference's own chunks of `chunk_rows` consecutive rows (a last, shorter
/// chunk left out): their mean error's mean plus and minus `multiplier` population standard
/// deviations, the lower end at least 0. `None` with fewer than two chunks.
pub fn chunk_band(
    model: &Reconstruction,
    reference: ArrayView2<f64>,
    chunk_rows: usize,
    multiplier: f64,
) -> Option<Band> {
    let errors = model.errors(reference);
    let chunks: Vec<f64> = errors
        .exact_chunks(chunk_rows.max(1))
        .into_iter()
        .map(|chunk| chunk.mean().expect("chunks are not empty"))
        .collect();
    if chunks.len() < 2 {
        return None;
    }
    let values = Array1::from(chunks);
    let centre = values.mean().expect("two chunks");
    let spread = values.std(0.0);
    Some(Band {
        lower: (centre - multiplier * spread).max(0.0),
        upper: centre + multiplier * spread,
    })
}

/// Folds of the reference for held-out errors.
pub const FOLDS: usize = 10;

/// Every reference row's error under a PCA fitted on the other folds' rows (row `i` is in fold
/// `i % folds`): what a new window's rows would show when nothing drifted.
pub fn held_out_errors(
    reference: ArrayView2<f64>,
    variance: f64,
    folds: usize,
) -> Result<Array1<f64>, FitError> {
    let rows = reference.nrows();
    let folds = folds.clamp(2, rows.max(2));
    let mut errors = Array1::zeros(rows);
    for fold in 0..folds {
        let (inside, outside): (Vec<usize>, Vec<usize>) =
            (0..rows).partition(|&row| row % folds == fold);
        let model = Reconstruction::fit(reference.select(Axis(0), &outside).view(), variance)?;
        let held = model.errors(reference.select(Axis(0), &inside).view());
        for (&row, error) in inside.iter().zip(held) {
            errors[row] = error;
        }
    }
    Ok(errors)
}

/// The null distribution of a window's mean error, from held-out row errors: normal, with
/// their mean and their standard deviation over the square root of the window's rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorNull {
    /// Mean held-out row error.
    pub mean: f64,
    /// Standard deviation of the held-out row errors (`n - 1`).
    pub sd: f64,
}

impl ErrorNull {
    /// From held-out row errors (at least two).
    pub fn of(errors: &Array1<f64>) -> ErrorNull {
        ErrorNull {
            mean: errors.mean().unwrap_or(f64::NAN),
            sd: errors.std(1.0),
        }
    }

    /// The two-sided p-value of a window of `rows` rows with this mean error.
    pub fn p_value(&self, mean_error: f64, rows: usize) -> f64 {
        let z = (mean_error - self.mean) / (self.sd / (rows.max(1) as f64).sqrt());
        (2.0 * standard_normal().sf(z.abs())).min(1.0)
    }

    /// The band a window of `rows` rows stays in at significance `level`.
    pub fn band(&self, rows: usize, level: f64) -> Band {
        let half = standard_normal().inverse_cdf(1.0 - level / 2.0) * self.sd
            / (rows.max(1) as f64).sqrt();
        Band {
            lower: (self.mean - half).max(0.0),
            upper: self.mean + half,
        }
    }
}

fn standard_normal() -> statrs::distribution::Normal {
    statrs::distribution::Normal::new(0.0, 1.0).expect("a standard normal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// `rows` rows of two standard normal features with correlation `rho`.
    fn correlated(rng: &mut SplitMix64, rows: usize, rho: f64) -> Array2<f64> {
        let mut data = Array2::zeros((rows, 2));
        for mut row in data.rows_mut() {
            let (a, b) = (rng.normal(), rng.normal());
            row[0] = a;
            row[1] = rho * a + (1.0 - rho * rho).sqrt() * b;
        }
        data
    }

    #[test]
    fn keeps_the_fewest_components_past_the_share() {
        assert_eq!(kept_components(&[0.5, 0.3, 0.2], 0.65), 2);
        assert_eq!(kept_components(&[0.9, 0.1], 0.65), 1);
        assert_eq!(kept_components(&[0.65, 0.35], 0.65), 2);
        assert_eq!(kept_components(&[0.5, 0.5], 1.0), 2);
    }

    #[test]
    fn a_flipped_correlation_leaves_the_band() {
        let mut rng = SplitMix64::new(5);
        let reference = correlated(&mut rng, 10_000, 0.8);
        let model = Reconstruction::fit(reference.view(), DEFAULT_VARIANCE).unwrap();
        assert_eq!(model.components.nrows(), 1, "one component explains 90 %");
        let band = chunk_band(&model, reference.view(), 1000, DEFAULT_MULTIPLIER).unwrap();
        let same = correlated(&mut rng, 1000, 0.8);
        let flipped = correlated(&mut rng, 1000, -0.8);
        assert!(!band.drifted(model.mean_error(same.view())));
        assert!(band.drifted(model.mean_error(flipped.view())));
    }

    #[test]
    fn bad_references_are_refused_in_words() {
        let one = Array2::<f64>::zeros((1, 3));
        assert!(Reconstruction::fit(one.view(), 0.65).is_err());
        let mut nan = Array2::<f64>::zeros((3, 2));
        nan[(2, 1)] = f64::NAN;
        let err = Reconstruction::fit(nan.view(), 0.65).unwrap_err();
        assert!(err.to_string().contains("row 2, feature 1"), "{err}");
    }
}
