//! The per-window drift report: every statistic for every feature, the decisions, and the
//! dataset-level verdict. Its JSON shape is a contract other tools read (see README).

use std::collections::BTreeMap;

use serde::Serialize;

use super::chi2::Chi2Result;
use super::decision::{corrected_level, DriftSettings, Evidence, Method, PValueBy};
use super::feature::{analyse_feature, FeatureCurrent, FeatureSummary};
use super::ks::KsMethod;
use super::monte_carlo::default_draws;
use super::multivariate::{Multivariate, MultivariateOutcome};
use crate::baseline::{Baseline, FeatureProfile};
use crate::decode::{Dataset, FeatureKind};
use crate::window::summary::{Layouts, WindowSummaries};

/// A whole drift report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// What the reference was.
    pub reference: DataInfo,
    /// What the current data was.
    pub current: DataInfo,
    /// The settings the decisions used.
    pub settings: DriftSettings,
    /// One entry per reference feature, in reference order.
    pub features: Vec<FeatureReport>,
    /// The dataset-level verdict.
    pub dataset: DatasetSummary,
    /// Multivariate drift of the numeric features, by method (`drift --multivariate`); absent
    /// when none was asked for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub multivariate: BTreeMap<Multivariate, MultivariateOutcome>,
}

/// Provenance of one side of the comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DataInfo {
    /// The file given on the command line.
    pub source: Option<String>,
    /// The baseline id, when the reference is a baseline profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_id: Option<String>,
    /// Records read.
    pub records: u64,
    /// Malformed lines skipped.
    pub invalid_lines: u64,
    /// Fields that are not features of the reference, with how often they appeared.
    pub unknown_fields: BTreeMap<String, u64>,
}

/// Whether a feature could be tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStatus {
    /// Tested.
    Ok,
    /// Fewer usable values than `min_samples` on one side: not tested, not drifted.
    InsufficientData,
}

/// One feature's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureReport {
    /// Feature name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: FeatureKind,
    /// Whether it was tested.
    pub status: FeatureStatus,
    /// Why it was not tested, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Usable reference values.
    pub n_reference: u64,
    /// Usable current values.
    pub n_current: u64,
    /// Reference values that were missing (absent, null, empty).
    pub missing_reference: u64,
    /// Current values that were missing (absent, null, empty).
    pub missing_current: u64,
    /// Current values that were NaN or infinite.
    pub nan_current: u64,
    /// Current values of the wrong type.
    pub invalid_current: u64,
    /// True when the reference sample is a reservoir sample of a larger reference: KS,
    /// Wasserstein and permutation tests then ran on the sample.
    pub reference_sampled: bool,
    /// Every statistic; absent when the feature was not tested.
    pub tests: Option<Tests>,
    /// Both sides' distributions over the bins the binned statistics use (what the dashboard
    /// and HTML reports draw); absent when the feature was not tested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// The decision.
    pub drift: DriftOutcome,
}

/// A feature's distribution on each side over the same bins.
///
/// Numeric: `edges` are the reference's quantile bin edges, and the counts' slots are the values
/// below the first edge, each bin between neighbouring edges (the last one closed), and the
/// values above the last edge. Categorical: `labels` name the slots (the reference categories
/// in order, at most [`HISTOGRAM_CATEGORIES`] of them by reference count, the rest summed into
/// `(other)`, then `(unseen)` for categories the reference never had).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Numeric: the bin edges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
    /// Categorical: the slots' labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Reference values per slot.
    pub reference: Vec<u64>,
    /// Current values per slot.
    pub current: Vec<u64>,
}

/// The most categories a report's histogram names; the rest are summed into `(other)`.
pub const HISTOGRAM_CATEGORIES: usize = 40;

/// The statistics of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Tests {
    /// A numeric feature's statistics.
    Numeric(NumericTests),
    /// A categorical feature's statistics.
    Categorical(CategoricalTests),
}

impl Tests {
    /// PSI over the feature's bins.
    pub fn psi(&self) -> PsiOut {
        match self {
            Tests::Numeric(t) => t.psi,
            Tests::Categorical(t) => t.psi,
        }
    }

    /// Jensen–Shannon distance over the feature's bins.
    pub fn jensen_shannon(&self) -> DistanceOut {
        match self {
            Tests::Numeric(t) => t.jensen_shannon,
            Tests::Categorical(t) => t.jensen_shannon,
        }
    }

    /// Hellinger distance over the feature's bins.
    pub fn hellinger(&self) -> DistanceOut {
        match self {
            Tests::Numeric(t) => t.hellinger,
            Tests::Categorical(t) => t.hellinger,
        }
    }
}

/// Statistics of a numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumericTests {
    /// Two-sample KS.
    pub ks: KsOut,
    /// Wasserstein-1.
    pub wasserstein: WassersteinOut,
    /// PSI over the quantile bins.
    pub psi: PsiOut,
    /// Jensen–Shannon distance over the quantile bins.
    pub jensen_shannon: DistanceOut,
    /// Hellinger distance over the quantile bins.
    pub hellinger: DistanceOut,
}

/// Statistics of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoricalTests {
    /// Chi-square test of homogeneity.
    pub chi2: Chi2Result,
    /// Jensen–Shannon distance over the reference categories plus "unseen".
    pub jensen_shannon: DistanceOut,
    /// PSI over the same bins.
    pub psi: PsiOut,
    /// Hellinger distance over the same bins.
    pub hellinger: DistanceOut,
}

/// KS output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsOut {
    /// The statistic D.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// `exact` or `asymptotic`.
    pub mode: KsMethod,
}

/// Wasserstein output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WassersteinOut {
    /// W1.
    pub distance: f64,
    /// W1 / max(std(reference), 0.001).
    pub normed: f64,
    /// Present when the window's values were summarised: how far the exact W1 can be from
    /// `distance` (0 unless the two ECDFs cross between two neighbouring reference values
    /// that window values fall between).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
}

/// PSI output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PsiOut {
    /// The index.
    pub value: f64,
}

/// A distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DistanceOut {
    /// The distance.
    pub distance: f64,
}

/// A feature's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftOutcome {
    /// The method decided on.
    pub method: Method,
    /// The p-value for `ks`/`chi2`, the distance otherwise; null when not tested.
    pub score: Option<f64>,
    /// The level the p-value is compared with (tests) or the critical distance (distances).
    pub threshold: Option<f64>,
    /// Drift detected. Tests: `score <= threshold`; distances: `score >= threshold`.
    pub detected: bool,
    /// The p-value under "no drift"; null with a fixed threshold.
    pub p_value: Option<f64>,
    /// The corrected significance level used for this feature.
    pub level: Option<f64>,
    /// Where the p-value comes from: `test` (the test's own, as scipy computes it),
    /// `chi_square` (the chi-square approximation of a distance) or `permutation`; null with a
    /// fixed threshold. See `docs/metrics.md` for the rule.
    pub p_value_by: Option<PValueBy>,
    /// Permutations drawn for a permutation p-value (fewer than asked when it was settled early).
    pub permutations: Option<usize>,
}

/// The dataset-level verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSummary {
    /// Features tested.
    pub features: usize,
    /// Features with drift detected.
    pub drifted: usize,
    /// `drifted / features` (0 when none tested).
    pub share: f64,
    /// Dataset drift: `share >= drift_share` when set, otherwise any feature drifted.
    pub detected: bool,
    /// The multiple-testing correction applied.
    pub correction: super::decision::Correction,
    /// The family-wise significance level.
    pub alpha: f64,
    /// The share rule, when used.
    pub drift_share: Option<f64>,
    /// Features not tested for lack of data.
    pub insufficient_data: usize,
}

/// Compares current data against a reference profile, features spread over the cores.
///
/// `current` must be decoded with the reference's schema (`baseline.schema()`).
pub fn compare(
    reference: &Baseline,
    current: &Dataset,
    settings: &DriftSettings,
    reference_info: DataInfo,
    current_info: DataInfo,
) -> DriftReport {
    compare_on(
        Threads::Spread,
        reference,
        current,
        settings,
        reference_info,
        current_info,
    )
}

/// Where a report's features are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Spread over the machine's cores.
    Spread,
    /// On the calling thread alone: for a caller whose other cores are busy already (the
    /// service's background reports run beside the thread that decodes), where more threads
    /// would only take turns.
    Caller,
}

/// [`compare`] with its features computed where `threads` says.
pub fn compare_on(
    threads: Threads,
    reference: &Baseline,
    current: &Dataset,
    settings: &DriftSettings,
    reference_info: DataInfo,
    current_info: DataInfo,
) -> DriftReport {
    compare_window(
        threads,
        reference,
        current,
        None,
        settings,
        reference_info,
        current_info,
    )
}

/// A window's numeric summaries and the layouts they were counted on: `None` when the
/// baseline they are on is not loaded.
#[derive(Debug, Clone, Copy)]
pub struct Folded<'a> {
    /// The summaries.
    pub summaries: &'a WindowSummaries,
    /// Their layouts.
    pub layouts: Option<&'a Layouts>,
}

/// [`compare_on`] for a window whose numeric columns may be partly folded into summaries
/// (`current` then holds the values after the last fold).
pub fn compare_window(
    threads: Threads,
    reference: &Baseline,
    current: &Dataset,
    folded: Option<Folded<'_>>,
    settings: &DriftSettings,
    reference_info: DataInfo,
    current_info: DataInfo,
) -> DriftReport {
    let tables = if settings.permutations > 0 {
        settings.permutations
    } else {
        default_draws(
            settings.alpha,
            settings.correction,
            reference.features.len(),
        )
    };
    let analyse = |profile: &FeatureProfile| {
        let position = current.position(profile.name());
        let side = FeatureCurrent {
            column: position.map(|at| &current.columns[at]),
            summary: position.and_then(|at| summary_of(folded, at)),
        };
        analyse_feature(profile, side, reference.settings.bins, settings, tables)
    };
    let analyses: Vec<(FeatureReport, Option<Evidence>)> = match threads {
        Threads::Spread => crate::parallel::map_in_order(&reference.features, analyse),
        Threads::Caller => reference.features.iter().map(analyse).collect(),
    };
    let p_values: Vec<Option<f64>> = analyses
        .iter()
        .map(|(_, evidence)| evidence.as_ref().and_then(Evidence::p_value))
        .collect();
    let level = corrected_level(&p_values, settings.alpha, settings.correction);

    let mut features = Vec::with_capacity(analyses.len());
    let (mut tested, mut drifted) = (0usize, 0usize);
    for (mut report, evidence) in analyses {
        if let Some(evidence) = evidence {
            tested += 1;
            let detected = evidence.detected(level);
            drifted += usize::from(detected);
            let p_value = evidence.p_value();
            report.drift = DriftOutcome {
                method: report.drift.method,
                score: Some(evidence.score()),
                threshold: Some(evidence.threshold(level)),
                detected,
                p_value,
                level: p_value.map(|_| level),
                p_value_by: evidence.p_value_by(),
                permutations: evidence.permutations(),
            };
        }
        features.push(report);
    }
    let share = if tested == 0 {
        0.0
    } else {
        drifted as f64 / tested as f64
    };
    let detected = match settings.drift_share {
        Some(rule) => tested > 0 && share >= rule,
        None => drifted > 0,
    };
    DriftReport {
        reference: reference_info,
        current: current_info,
        settings: settings.clone(),
        dataset: DatasetSummary {
            features: tested,
            drifted,
            share,
            detected,
            correction: settings.correction,
            alpha: settings.alpha,
            drift_share: settings.drift_share,
            insufficient_data: features.len() - tested,
        },
        features,
        multivariate: BTreeMap::new(),
    }
}

/// Window column `column`'s summary, when some of its values were folded into one.
fn summary_of(folded: Option<Folded<'_>>, column: usize) -> Option<FeatureSummary<'_>> {
    let folded = folded?;
    let summary = folded.summaries.columns.get(column)?.as_ref()?;
    Some(
        match folded.layouts.and_then(|l| Some((l.layout(column)?, l))) {
            Some((layout, layouts)) if layouts.fit(folded.summaries) => FeatureSummary::On {
                layout,
                summary,
                bins: folded.summaries.bins,
            },
            _ => FeatureSummary::Unresolved {
                baseline: &folded.summaries.baseline,
                count: summary.len(),
            },
        },
    )
}
