//! Turning statistics into drift decisions whose false-alarm rate does not depend on sample size.
//!
//! Every method yields a p-value under "no drift", so one significance level `alpha` means the
//! same thing for a 100-row window and a 100,000-row one, and p-values can be corrected across
//! features:
//!
//! * `ks`, `chi2`: the test's own p-value; the reported threshold is the significance level.
//! * `psi`, `jensen_shannon`, `hellinger`: the chi-square approximation of the null
//!   distribution. With `n_eff = n_ref·n_cur/(n_ref+n_cur)` and `df` = bins non-empty in either
//!   sample minus one, `n_eff·PSI`, `8·n_eff·ln2·JS²` and `8·n_eff·H²` are each approximately
//!   chi-square with `df` degrees of freedom. The threshold is the distance at the critical value.
//! * Where an approximation is not trusted (an expected count below 5 for chi-square, below 20
//!   for the distances; [`super::monte_carlo`]), or any method when `permutations > 0`, and
//!   always for `wasserstein`: a seeded permutation test. A distance's threshold is then the
//!   `1 - level` quantile of the permuted distances.
//! * A fixed `threshold` on a distance (Evidently style) skips all of this: drift when
//!   `score >= threshold`, no p-value, no correction.
//!
//! Across features the p-values are corrected (Benjamini–Hochberg by default, Bonferroni, or
//! none). A feature drifts when its p-value is at most its corrected level.

use serde::{Deserialize, Serialize};

use super::chi2::{chi2_critical, chi2_sf};

/// A drift method: the statistic a feature's decision is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov test (numeric).
    Ks,
    /// Chi-square test of homogeneity (categorical).
    Chi2,
    /// Wasserstein-1 distance (numeric), decided by a permutation test or a fixed threshold.
    Wasserstein,
    /// Population Stability Index over the bins.
    Psi,
    /// Jensen–Shannon distance (base 2) over the bins.
    JensenShannon,
    /// Hellinger distance over the bins.
    Hellinger,
}

impl Method {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::Chi2 => "chi2",
            Method::Wasserstein => "wasserstein",
            Method::Psi => "psi",
            Method::JensenShannon => "jensen_shannon",
            Method::Hellinger => "hellinger",
        }
    }

    /// True for tests whose score is a p-value.
    pub fn is_test(self) -> bool {
        matches!(self, Method::Ks | Method::Chi2)
    }

    /// Whether the method applies to numeric (`true`) or categorical (`false`) features.
    pub fn applies_to(self, numeric: bool) -> bool {
        match self {
            Method::Ks | Method::Wasserstein => numeric,
            Method::Chi2 => !numeric,
            Method::Psi | Method::JensenShannon | Method::Hellinger => true,
        }
    }
}

/// Multiple-testing correction across features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Correction {
    /// Benjamini–Hochberg: controls the false discovery rate at `alpha`.
    BenjaminiHochberg,
    /// Bonferroni: controls the family-wise error rate at `alpha`.
    Bonferroni,
    /// No correction: each feature is tested at `alpha` (Evidently's behaviour).
    None,
}

/// How features are compared and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSettings {
    /// Significance level.
    pub alpha: f64,
    /// Quantile bins for numeric binned metrics.
    pub bins: usize,
    /// Method deciding numeric features.
    pub numeric_method: Method,
    /// Method deciding categorical features.
    pub categorical_method: Method,
    /// Fixed threshold for distance methods, instead of a sample-size-aware one.
    pub threshold: Option<f64>,
    /// Permutations for a permutation test of every feature. 0 uses the test's own p-value or
    /// the chi-square approximation where every expected count is at least 5, and a permutation
    /// test with enough permutations for the strictest corrected level elsewhere (and 1000 for
    /// Wasserstein, which has no approximation).
    pub permutations: usize,
    /// Seed of the permutation test.
    pub seed: u64,
    /// Correction across features.
    pub correction: Correction,
    /// Dataset drift when at least this share of features drifts; otherwise when any does.
    pub drift_share: Option<f64>,
    /// A feature with fewer usable values than this on either side is not tested.
    pub min_samples: u64,
}

/// Permutations used for Wasserstein when none are asked for.
pub const DEFAULT_WASSERSTEIN_PERMUTATIONS: usize = 1000;

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            alpha: 0.05,
            bins: super::bins::DEFAULT_BINS,
            numeric_method: Method::Ks,
            categorical_method: Method::Chi2,
            threshold: None,
            permutations: 0,
            seed: 0,
            correction: Correction::BenjaminiHochberg,
            drift_share: None,
            min_samples: 1,
        }
    }
}

impl DriftSettings {
    /// Whether numeric decisions under these settings come out of a window's summary exactly as
    /// out of its values: KS, and the binned metrics (whose tests, permutation tests included,
    /// need only the bins' counts). Wasserstein's distance is bounded, not exact, from a
    /// summary, so it needs the values themselves.
    pub fn exact_from_summaries(&self) -> bool {
        match self.numeric_method {
            Method::Ks | Method::Psi | Method::JensenShannon | Method::Hellinger => true,
            Method::Wasserstein | Method::Chi2 => false,
        }
    }

    /// Checks every setting and reports all problems at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            problems.push(format!("alpha must be in (0, 1), got {}", self.alpha));
        }
        if self.bins == 0 || self.bins > 10_000 {
            problems.push(format!("bins must be in 1..=10000, got {}", self.bins));
        }
        if !self.numeric_method.applies_to(true) {
            problems.push(format!(
                "{} is not a method for numeric features (use ks, wasserstein, psi, jensen_shannon or hellinger)",
                self.numeric_method.as_str()
            ));
        }
        if !self.categorical_method.applies_to(false) {
            problems.push(format!(
                "{} is not a method for categorical features (use chi2, psi, jensen_shannon or hellinger)",
                self.categorical_method.as_str()
            ));
        }
        if let Some(threshold) = self.threshold {
            if !(threshold.is_finite() && threshold >= 0.0) {
                problems.push(format!(
                    "threshold must be a non-negative number, got {threshold}"
                ));
            }
        }
        if let Some(share) = self.drift_share {
            if !(share > 0.0 && share <= 1.0) {
                problems.push(format!("drift share must be in (0, 1], got {share}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// What a feature's decision rests on, before the correction fixes its level.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// A test's p-value is the score.
    Test {
        /// The p-value.
        p_value: f64,
    },
    /// A test's p-value by permutation, where its own approximation is not trusted
    /// ([`super::monte_carlo::asymptotic_holds`]); the score is still the p-value.
    PermutedTest {
        /// `(1 + #{permuted >= observed}) / (1 + permutations)`.
        p_value: f64,
        /// Permutations drawn.
        permutations: usize,
    },
    /// A distance with a chi-square approximation of its null distribution.
    ChiSquareApprox {
        /// The distance.
        score: f64,
        /// Degrees of freedom.
        dof: f64,
        /// `statistic = scale · transform(score)` is approximately chi-square.
        scale: f64,
        /// Whether the statistic uses the square of the score (JS and Hellinger) or the score.
        squared: bool,
    },
    /// A distance with a permutation distribution.
    Permutation {
        /// The observed distance.
        score: f64,
        /// `(1 + #{permuted >= observed}) / (1 + permutations)`.
        p_value: f64,
        /// The permuted distances, sorted ascending.
        permuted: Vec<f64>,
    },
    /// A distance against a fixed threshold.
    Fixed {
        /// The distance.
        score: f64,
        /// The threshold.
        threshold: f64,
    },
}

impl Evidence {
    /// The p-value under "no drift", when there is one.
    pub fn p_value(&self) -> Option<f64> {
        match self {
            Evidence::Test { p_value }
            | Evidence::PermutedTest { p_value, .. }
            | Evidence::Permutation { p_value, .. } => Some(*p_value),
            Evidence::ChiSquareApprox {
                score,
                dof,
                scale,
                squared,
            } => {
                let transformed = if *squared { score * score } else { *score };
                Some(chi2_sf(scale * transformed, *dof))
            }
            Evidence::Fixed { .. } => None,
        }
    }

    /// The score reported: the p-value for tests, the distance otherwise.
    pub fn score(&self) -> f64 {
        match self {
            Evidence::Test { p_value } | Evidence::PermutedTest { p_value, .. } => *p_value,
            Evidence::ChiSquareApprox { score, .. }
            | Evidence::Permutation { score, .. }
            | Evidence::Fixed { score, .. } => *score,
        }
    }

    /// The threshold on the score at a significance level.
    pub fn threshold(&self, level: f64) -> f64 {
        match self {
            Evidence::Test { .. } | Evidence::PermutedTest { .. } => level,
            Evidence::ChiSquareApprox {
                dof,
                scale,
                squared,
                ..
            } => {
                let critical = chi2_critical(level, *dof) / scale;
                if *squared {
                    critical.sqrt()
                } else {
                    critical
                }
            }
            Evidence::Permutation { permuted, .. } => permutation_quantile(permuted, 1.0 - level),
            Evidence::Fixed { threshold, .. } => *threshold,
        }
    }

    /// Where the p-value comes from; `None` with a fixed threshold.
    pub fn p_value_by(&self) -> Option<PValueBy> {
        match self {
            Evidence::Test { .. } => Some(PValueBy::Test),
            Evidence::ChiSquareApprox { .. } => Some(PValueBy::ChiSquare),
            Evidence::PermutedTest { .. } | Evidence::Permutation { .. } => {
                Some(PValueBy::Permutation)
            }
            Evidence::Fixed { .. } => None,
        }
    }

    /// Permutations drawn for the p-value (fewer than asked when it was settled early).
    pub fn permutations(&self) -> Option<usize> {
        match self {
            Evidence::PermutedTest { permutations, .. } => Some(*permutations),
            Evidence::Permutation { permuted, .. } => Some(permuted.len()),
            _ => None,
        }
    }

    /// Whether the feature drifts at a significance level.
    pub fn detected(&self, level: f64) -> bool {
        match self {
            Evidence::Fixed { score, threshold } => score >= threshold,
            _ => self.p_value().is_some_and(|p| p <= level),
        }
    }
}

/// Where a decision's p-value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PValueBy {
    /// The test's own p-value, as scipy computes it (KS; chi-square when every expected count
    /// is at least 5).
    Test,
    /// The chi-square approximation of a distance's null distribution (every expected count is
    /// at least 20).
    ChiSquare,
    /// A permutation test: relabelled tables (or values, for Wasserstein) drawn at random.
    Permutation,
}

/// The `q` quantile of sorted permuted statistics (the smallest value with at least a `q` share
/// of the distribution at or below it).
pub(super) fn permutation_quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The significance level each p-value is compared with after the correction.
/// `p_values[i]` is `None` for features that take no part (fixed threshold, too little data).
pub fn corrected_level(p_values: &[Option<f64>], alpha: f64, correction: Correction) -> f64 {
    let tested: Vec<f64> = p_values.iter().flatten().copied().collect();
    let m = tested.len().max(1) as f64;
    match correction {
        Correction::None => alpha,
        Correction::Bonferroni => alpha / m,
        Correction::BenjaminiHochberg => {
            let mut sorted = tested;
            sorted.sort_by(f64::total_cmp);
            // The largest k with p_(k) <= k·alpha/m; all p-values up to that level are rejected.
            // With no such k, the strictest level alpha/m (nothing passes it).
            let k = sorted
                .iter()
                .enumerate()
                .filter(|(i, p)| **p <= (*i as f64 + 1.0) * alpha / m)
                .map(|(i, _)| i + 1)
                .max()
                .unwrap_or(1);
            k as f64 * alpha / m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benjamini_hochberg_step_up() {
        // m = 4, alpha = 0.05: thresholds 0.0125, 0.025, 0.0375, 0.05. 0.03 misses its own
        // threshold but is rejected because 0.035, ranked after it, makes its threshold.
        let p = [Some(0.01), Some(0.035), Some(0.03), Some(0.2), None];
        let level = corrected_level(&p, 0.05, Correction::BenjaminiHochberg);
        assert!((level - 0.0375).abs() < 1e-15);
        let rejected: Vec<_> = p.iter().flatten().filter(|x| **x <= level).collect();
        assert_eq!(rejected.len(), 3);
        let bonferroni = corrected_level(&p, 0.05, Correction::Bonferroni);
        assert!((bonferroni - 0.0125).abs() < 1e-15);
    }

    #[test]
    fn benjamini_hochberg_without_rejection_is_strictest() {
        let p = [Some(0.5), Some(0.9)];
        let level = corrected_level(&p, 0.05, Correction::BenjaminiHochberg);
        assert!((level - 0.025).abs() < 1e-15);
    }

    #[test]
    fn chi_square_threshold_matches_p_value() {
        let evidence = Evidence::ChiSquareApprox {
            score: 0.0,
            dof: 9.0,
            scale: 50.0,
            squared: false,
        };
        let threshold = evidence.threshold(0.05);
        let at_threshold = Evidence::ChiSquareApprox {
            score: threshold,
            dof: 9.0,
            scale: 50.0,
            squared: false,
        };
        assert!((at_threshold.p_value().unwrap() - 0.05).abs() < 1e-9);
    }
}
