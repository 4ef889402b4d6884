//! The per-window drift report: every statistic for every feature, the decisions, and the
//! dataset-level verdict. Its JSON shape is a contract other tools read (see README).

use std::collections::BTreeMap;

use serde::Serialize;

use super::bins::{categorical_histograms, union_histograms, QuantileBins};
use super::chi2::{chi2_homogeneity, Chi2Result};
use super::decision::{
    corrected_level, DriftSettings, Evidence, Method, DEFAULT_WASSERSTEIN_PERMUTATIONS,
};
use super::ecdf::compare_sorted;
use super::hellinger::hellinger_distance;
use super::jensen_shannon::jensen_shannon_distance;
use super::ks::{ks_test, KsMethod};
use super::permutation::{permutation_test, split_counts};
use super::psi::psi;
use super::wasserstein::{normed, pooled, wasserstein_labelled};
use crate::baseline::{Baseline, CategoricalProfile, FeatureProfile, NumericProfile};
use crate::decode::{CategoricalColumn, Column, Dataset, FeatureKind, NumericColumn};
use crate::rng::SplitMix64;

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
    /// The decision.
    pub drift: DriftOutcome,
}

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
    let analyse = |profile: &FeatureProfile| {
        let column = current.feature(profile.name()).map(|(_, c)| c);
        analyse_feature(profile, column, reference.settings.bins, settings)
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
    }
}

fn analyse_feature(
    profile: &FeatureProfile,
    column: Option<&Column>,
    profile_bins: usize,
    settings: &DriftSettings,
) -> (FeatureReport, Option<Evidence>) {
    let quality = column.map(Column::quality).unwrap_or_default();
    let n_current = column.map_or(0, Column::len);
    let method = match profile.kind() {
        FeatureKind::Numeric => settings.numeric_method,
        FeatureKind::Categorical => settings.categorical_method,
    };
    let mut report = FeatureReport {
        name: profile.name().to_string(),
        kind: profile.kind(),
        status: FeatureStatus::Ok,
        reason: None,
        n_reference: profile.count(),
        n_current,
        missing_reference: profile.quality().missing,
        missing_current: quality.missing,
        nan_current: quality.nan,
        invalid_current: quality.invalid,
        reference_sampled: matches!(profile, FeatureProfile::Numeric(p) if p.sampled),
        tests: None,
        drift: DriftOutcome {
            method,
            score: None,
            threshold: None,
            detected: false,
            p_value: None,
            level: None,
        },
    };
    let min = settings.min_samples.max(1);
    if profile.count() < min || n_current < min {
        report.status = FeatureStatus::InsufficientData;
        report.reason = Some(format!(
            "needs at least {min} usable values on each side; reference has {}, current has {n_current}",
            profile.count()
        ));
        return (report, None);
    }
    let mut rng = SplitMix64::for_name(settings.seed, profile.name());
    let (tests, evidence) = match (profile, column) {
        (FeatureProfile::Numeric(p), Some(Column::Numeric(c))) => {
            numeric(p, c, profile_bins, settings, &mut rng)
        }
        (FeatureProfile::Categorical(p), Some(Column::Categorical(c))) => {
            categorical(p, c, settings, &mut rng)
        }
        _ => unreachable!("current data is decoded with the reference schema"),
    };
    report.tests = Some(tests);
    (report, Some(evidence))
}

/// Bins and reference counts for the requested bin count: the stored ones when they match,
/// otherwise recomputed from the reference sample.
fn reference_histogram(
    profile: &NumericProfile,
    profile_bins: usize,
    bins: usize,
) -> (QuantileBins, Vec<u64>) {
    if bins == profile_bins {
        if let Some(stored) = &profile.bins {
            return (stored.clone(), profile.bin_counts.clone());
        }
    }
    let edges = QuantileBins::from_sorted(&profile.sample, bins)
        .expect("a tested feature has a non-empty sample");
    let counts = edges.histogram(&profile.sample);
    (edges, counts)
}

/// Degrees of freedom for the chi-square approximation: bins non-empty on either side, minus one.
fn binned_dof(reference: &[u64], current: &[u64]) -> f64 {
    let used = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .count();
    (used.saturating_sub(1)).max(1) as f64
}

fn binned_metric(method: Method, reference: &[u64], current: &[u64]) -> f64 {
    match method {
        Method::Psi => psi(reference, current),
        Method::JensenShannon => jensen_shannon_distance(reference, current),
        Method::Hellinger => hellinger_distance(reference, current),
        _ => unreachable!("only binned metrics"),
    }
}

/// Evidence for a binned distance: fixed threshold, permutation test, or chi-square approximation.
fn binned_evidence(
    method: Method,
    score: f64,
    reference: &[u64],
    current: &[u64],
    pooled_slots: impl FnOnce() -> (Vec<usize>, Vec<bool>),
    settings: &DriftSettings,
    rng: &mut SplitMix64,
) -> Evidence {
    if let Some(threshold) = settings.threshold {
        return Evidence::Fixed { score, threshold };
    }
    if settings.permutations > 0 {
        let (slots, labels) = pooled_slots();
        let slot_count = reference.len();
        let outcome = permutation_test(&labels, settings.permutations, rng, |labels| {
            let (r, c) = split_counts(&slots, labels, slot_count);
            binned_metric(method, &r, &c)
        });
        return Evidence::Permutation {
            score: outcome.observed,
            p_value: outcome.p_value,
            permuted: outcome.permuted,
        };
    }
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let n_eff = (n1 as f64 * n2 as f64) / (n1 + n2) as f64;
    let (scale, squared) = match method {
        Method::Psi => (n_eff, false),
        Method::JensenShannon => (8.0 * n_eff * std::f64::consts::LN_2, true),
        Method::Hellinger => (8.0 * n_eff, true),
        _ => unreachable!("only binned metrics"),
    };
    Evidence::ChiSquareApprox {
        score,
        dof: binned_dof(reference, current),
        scale,
        squared,
    }
}

fn numeric(
    profile: &NumericProfile,
    column: &NumericColumn,
    profile_bins: usize,
    settings: &DriftSettings,
    rng: &mut SplitMix64,
) -> (Tests, Evidence) {
    let reference = &profile.sample;
    let mut current = column.values.clone();
    super::ecdf::sort_values(&mut current);

    // One merge of the two samples serves KS and Wasserstein.
    let walk = compare_sorted(reference, &current);
    let ks = ks_test(
        reference.len() as u64,
        current.len() as u64,
        walk.ks_statistic,
    );
    let distance = walk.wasserstein;
    let (bins, reference_counts) = reference_histogram(profile, profile_bins, settings.bins);
    let current_counts = bins.histogram_sorted(&current);
    let tests = NumericTests {
        ks: KsOut {
            statistic: ks.statistic,
            p_value: ks.p_value,
            mode: ks.method,
        },
        wasserstein: WassersteinOut {
            distance,
            normed: normed(distance, profile.std.unwrap_or(0.0)),
        },
        psi: PsiOut {
            value: psi(&reference_counts, &current_counts),
        },
        jensen_shannon: DistanceOut {
            distance: jensen_shannon_distance(&reference_counts, &current_counts),
        },
        hellinger: DistanceOut {
            distance: hellinger_distance(&reference_counts, &current_counts),
        },
    };
    // The pool for permutation tests: the reference sample and the current values, merged.
    let pool = || pooled(reference, &current);
    let evidence = match settings.numeric_method {
        Method::Ks => Evidence::Test {
            p_value: ks.p_value,
        },
        Method::Wasserstein => {
            let score = tests.wasserstein.distance;
            if let Some(threshold) = settings.threshold {
                Evidence::Fixed { score, threshold }
            } else {
                let permutations = if settings.permutations > 0 {
                    settings.permutations
                } else {
                    DEFAULT_WASSERSTEIN_PERMUTATIONS
                };
                let (values, labels): (Vec<f64>, Vec<bool>) = pool().into_iter().unzip();
                let n_reference = reference.len();
                let outcome = permutation_test(&labels, permutations, rng, |labels| {
                    wasserstein_labelled(&values, labels, n_reference)
                });
                Evidence::Permutation {
                    score: outcome.observed,
                    p_value: outcome.p_value,
                    permuted: outcome.permuted,
                }
            }
        }
        method => binned_evidence(
            method,
            binned_metric(method, &reference_counts, &current_counts),
            &reference_counts,
            &current_counts,
            || pool().into_iter().map(|(v, l)| (bins.slot(v), l)).unzip(),
            settings,
            rng,
        ),
    };
    (Tests::Numeric(tests), evidence)
}

fn categorical(
    profile: &CategoricalProfile,
    column: &CategoricalColumn,
    settings: &DriftSettings,
    rng: &mut SplitMix64,
) -> (Tests, Evidence) {
    let (union_reference, union_current) = union_histograms(&profile.counts, &column.counts);
    let chi2 = chi2_homogeneity(&union_reference, &union_current).expect("both sides non-empty");
    let (reference_counts, current_counts) =
        categorical_histograms(&profile.counts, &column.counts);
    let tests = CategoricalTests {
        chi2,
        jensen_shannon: DistanceOut {
            distance: jensen_shannon_distance(&reference_counts, &current_counts),
        },
        psi: PsiOut {
            value: psi(&reference_counts, &current_counts),
        },
        hellinger: DistanceOut {
            distance: hellinger_distance(&reference_counts, &current_counts),
        },
    };
    let evidence = match settings.categorical_method {
        Method::Chi2 => Evidence::Test {
            p_value: chi2.p_value,
        },
        method => binned_evidence(
            method,
            binned_metric(method, &reference_counts, &current_counts),
            &reference_counts,
            &current_counts,
            || expand_counts(&reference_counts, &current_counts),
            settings,
            rng,
        ),
    };
    (Tests::Categorical(tests), evidence)
}

/// One pooled item per counted value: its slot and whether it is from the reference.
fn expand_counts(reference: &[u64], current: &[u64]) -> (Vec<usize>, Vec<bool>) {
    let mut slots = Vec::new();
    let mut labels = Vec::new();
    for (side, counts) in [(true, reference), (false, current)] {
        for (slot, &count) in counts.iter().enumerate() {
            for _ in 0..count {
                slots.push(slot);
                labels.push(side);
            }
        }
    }
    (slots, labels)
}
