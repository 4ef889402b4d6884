//! Multivariate drift of a data set's numeric features: the methods of
//! [`super::reconstruction`] and [`super::mmd`] on complete rows, each feature standardised by
//! the reference's mean and population standard deviation. Categorical features take no part.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::decision::{permutation_quantile, DriftSettings};
use super::mmd::{median_sigma, mmd_test, sample_rows, DEFAULT_PERMUTATIONS, MAX_ROWS};
use super::permutation::stop_at;
use super::reconstruction::{
    held_out_errors, standardisation, ErrorNull, Reconstruction, DEFAULT_VARIANCE, FOLDS,
};
use crate::decode::{Column, Dataset};
use crate::rng::SplitMix64;

/// A multivariate method.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Multivariate {
    /// MMD² with a Gaussian kernel and a permutation p-value (alibi-detect's MMDDrift).
    Mmd,
    /// PCA reconstruction error (NannyML's DataReconstructionDrift), decided on held-out errors.
    Pca,
}

impl Multivariate {
    /// Every method.
    pub const ALL: [Multivariate; 2] = [Multivariate::Mmd, Multivariate::Pca];

    /// The method named `name` in reports and policies.
    pub fn parse(name: &str) -> Option<Multivariate> {
        Multivariate::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Multivariate::Mmd => "mmd",
            Multivariate::Pca => "pca",
        }
    }
}

/// One multivariate method's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultivariateOutcome {
    /// MMD², or the current rows' mean reconstruction error.
    pub statistic: f64,
    /// The p-value under "no drift".
    pub p_value: f64,
    /// The statistic's critical value at `alpha` (PCA: the band's upper end; MMD: the `1 -
    /// alpha` quantile of the permuted statistics).
    pub threshold: f64,
    /// `p_value <= alpha`.
    pub drift: bool,
    /// The numeric features taken.
    pub features: usize,
    /// Reference rows used (MMD: sampled down to 500).
    pub reference_rows: usize,
    /// Current rows used (MMD: sampled down to 500).
    pub current_rows: usize,
}

/// A data set's numeric features as one row per record. An error names the features with
/// missing, NaN or invalid values, which leave a record without a complete row.
pub fn numeric_rows(data: &Dataset) -> Result<Array2<f64>, String> {
    let columns: Vec<(&str, &[f64])> = data
        .schema
        .features
        .iter()
        .zip(&data.columns)
        .filter_map(|(spec, column)| match column {
            Column::Numeric(c) => Some((spec.name.as_str(), c.values.as_slice())),
            Column::Categorical(_) => None,
        })
        .collect();
    if columns.is_empty() {
        return Err("multivariate drift needs numeric features; there are none".into());
    }
    let rows = data.records as usize;
    let incomplete: Vec<&str> = columns
        .iter()
        .filter(|(_, values)| values.len() != rows)
        .map(|(name, _)| *name)
        .collect();
    if !incomplete.is_empty() {
        return Err(format!(
            "multivariate drift needs every numeric value; missing, NaN or invalid values in: {}",
            incomplete.join(", ")
        ));
    }
    Ok(Array2::from_shape_fn((rows, columns.len()), |(i, j)| {
        columns[j].1[i]
    }))
}

/// Each method's result for `current` against `reference` (complete rows, same features).
pub fn multivariate(
    methods: &[Multivariate],
    reference: ArrayView2<f64>,
    current: ArrayView2<f64>,
    settings: &DriftSettings,
) -> Result<BTreeMap<Multivariate, MultivariateOutcome>, String> {
    Prepared::new(methods, reference, settings)?.test(current, settings)
}

/// What the methods need from a reference, computed once for every window tested against it:
/// the PCA fit and its held-out errors; the standardised MMD sample and its bandwidth.
#[derive(Debug, Clone)]
pub struct Prepared {
    pca: Option<PreparedPca>,
    mmd: Option<PreparedMmd>,
    features: usize,
}

#[derive(Debug, Clone)]
struct PreparedPca {
    model: Reconstruction,
    null: ErrorNull,
    rows: usize,
}

#[derive(Debug, Clone)]
struct PreparedMmd {
    mean: Array1<f64>,
    scale: Array1<f64>,
    /// The reference's sampled rows, standardised.
    x: Array2<f64>,
    sigma: f64,
    /// The generator after sampling `x`, to sample each window's rows from.
    rng: SplitMix64,
}

impl Prepared {
    /// The preparation of `reference` (complete rows, at least two) for `methods`.
    pub fn new(
        methods: &[Multivariate],
        reference: ArrayView2<f64>,
        settings: &DriftSettings,
    ) -> Result<Prepared, String> {
        if reference.nrows() < 2 {
            return Err(format!(
                "multivariate drift needs two complete rows on each side; the reference has {}",
                reference.nrows()
            ));
        }
        let pca = match methods.contains(&Multivariate::Pca) {
            true => Some(PreparedPca::new(reference)?),
            false => None,
        };
        let mmd =
            (methods.contains(&Multivariate::Mmd)).then(|| PreparedMmd::new(reference, settings));
        Ok(Prepared {
            pca,
            mmd,
            features: reference.ncols(),
        })
    }

    /// Each prepared method's result for `current` (complete rows of the same features).
    pub fn test(
        &self,
        current: ArrayView2<f64>,
        settings: &DriftSettings,
    ) -> Result<BTreeMap<Multivariate, MultivariateOutcome>, String> {
        if current.nrows() < 2 || current.ncols() != self.features {
            return Err(format!(
                "multivariate drift needs two complete rows of the reference's {} features; current has {} rows of {}",
                self.features,
                current.nrows(),
                current.ncols()
            ));
        }
        let mut outcomes = BTreeMap::new();
        if let Some(pca) = &self.pca {
            outcomes.insert(Multivariate::Pca, pca.test(current, settings));
        }
        if let Some(mmd) = &self.mmd {
            outcomes.insert(Multivariate::Mmd, mmd.test(current, settings));
        }
        Ok(outcomes)
    }
}

impl PreparedPca {
    fn new(reference: ArrayView2<f64>) -> Result<PreparedPca, String> {
        let model = Reconstruction::fit(reference, DEFAULT_VARIANCE).map_err(|e| e.to_string())?;
        let held_out =
            held_out_errors(reference, DEFAULT_VARIANCE, FOLDS).map_err(|e| e.to_string())?;
        Ok(PreparedPca {
            model,
            null: ErrorNull::of(&held_out),
            rows: reference.nrows(),
        })
    }

    fn test(&self, current: ArrayView2<f64>, settings: &DriftSettings) -> MultivariateOutcome {
        let statistic = self.model.mean_error(current);
        let p_value = self.null.p_value(statistic, current.nrows());
        MultivariateOutcome {
            statistic,
            p_value,
            threshold: self.null.band(current.nrows(), settings.alpha).upper,
            drift: p_value <= settings.alpha,
            features: current.ncols(),
            reference_rows: self.rows,
            current_rows: current.nrows(),
        }
    }
}

impl PreparedMmd {
    fn new(reference: ArrayView2<f64>, settings: &DriftSettings) -> PreparedMmd {
        let (mean, scale) = standardisation(reference);
        let mut rng = SplitMix64::for_name(settings.seed, "multivariate/mmd");
        let x = (&sample_rows(reference, MAX_ROWS, &mut rng) - &mean) / &scale;
        let sigma = median_sigma(x.view());
        PreparedMmd {
            mean,
            scale,
            x,
            sigma,
            rng,
        }
    }

    fn test(&self, current: ArrayView2<f64>, settings: &DriftSettings) -> MultivariateOutcome {
        let mut rng = self.rng.clone();
        let y = (&sample_rows(current, MAX_ROWS, &mut rng) - &self.mean) / &self.scale;
        let permutations = match settings.permutations {
            0 => DEFAULT_PERMUTATIONS,
            asked => asked,
        };
        let stop = Some(stop_at(settings.alpha, permutations));
        let outcome = mmd_test(
            self.x.view(),
            y.view(),
            self.sigma,
            permutations,
            stop,
            &mut rng,
        );
        MultivariateOutcome {
            statistic: outcome.observed,
            p_value: outcome.p_value,
            threshold: permutation_quantile(&outcome.permuted, 1.0 - settings.alpha),
            drift: outcome.p_value <= settings.alpha,
            features: current.ncols(),
            reference_rows: self.x.nrows(),
            current_rows: y.nrows(),
        }
    }
}
