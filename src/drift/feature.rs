//! One feature's statistics and its evidence for a decision: numeric against the reference
//! sample, categorical against the reference counts.

use super::bins::{categorical_histograms, union_histograms};
use super::chi2::{chi2_homogeneity, pearson_statistic};
use super::decision::{DriftSettings, Evidence, Method};
use super::hellinger::hellinger_distance;
use super::jensen_shannon::jensen_shannon_distance;
use super::monte_carlo::{asymptotic_holds, table_test, MIN_EXPECTED_CHI2, MIN_EXPECTED_DISTANCE};
use super::numeric::{numeric, NumericCurrent};
use super::permutation::{stop_at, PermutationOutcome};
use super::psi::psi;
use super::report::{
    CategoricalTests, DistanceOut, DriftOutcome, FeatureReport, FeatureStatus, Histogram, PsiOut,
    Tests, HISTOGRAM_CATEGORIES,
};
use crate::baseline::{CategoricalProfile, FeatureProfile};
use crate::decode::{CategoricalColumn, Column, FeatureKind};
use crate::rng::SplitMix64;
use crate::window::summary::{Layout, NumericSummary};

/// The window's side of one feature.
#[derive(Debug, Clone, Copy)]
pub(super) struct FeatureCurrent<'a> {
    /// Its column (numeric: the values after the last fold into the summary).
    pub(super) column: Option<&'a Column>,
    /// Its summary, when values were folded into one.
    pub(super) summary: Option<FeatureSummary<'a>>,
}

/// A numeric column's summary in a window.
#[derive(Debug, Clone, Copy)]
pub(super) enum FeatureSummary<'a> {
    /// On its layout, with the bin count whose edges are points of it.
    On {
        layout: &'a Layout,
        summary: &'a NumericSummary,
        bins: usize,
    },
    /// On the layout of a baseline that is not loaded.
    Unresolved { baseline: &'a str, count: u64 },
}

impl FeatureSummary<'_> {
    /// Values counted in the summary.
    fn count(&self) -> u64 {
        match self {
            FeatureSummary::On { summary, .. } => summary.len(),
            FeatureSummary::Unresolved { count, .. } => *count,
        }
    }

    /// Why the feature cannot be tested from this summary, if it cannot.
    fn unusable(&self, settings: &DriftSettings) -> Option<String> {
        match self {
            FeatureSummary::Unresolved { baseline, count } => Some(format!(
                "{count} of this window's values were summarised on baseline {baseline}, which is not loaded"
            )),
            FeatureSummary::On { .. } if !settings.exact_from_summaries() => Some(format!(
                "this window's values were summarised, and the `{}` method needs the values themselves",
                settings.numeric_method.as_str()
            )),
            FeatureSummary::On { .. } => None,
        }
    }
}

/// The random draws of a feature's permutation tests: its own seeded stream, and how many
/// tables a test of a binned distance or of chi-square draws.
pub(super) struct NullDraws {
    /// Seeded by the settings' seed and the feature's name.
    pub(super) rng: SplitMix64,
    /// Tables per test.
    pub(super) tables: usize,
}

impl NullDraws {
    /// The permutation test of `statistic` on a table, settled early above alpha.
    fn table_test(
        &mut self,
        reference: &[u64],
        current: &[u64],
        settings: &DriftSettings,
        statistic: impl FnMut(&[u64], &[u64]) -> f64,
    ) -> PermutationOutcome {
        let stop = stop_at(settings.alpha, self.tables);
        table_test(
            reference,
            current,
            self.tables,
            Some(stop),
            &mut self.rng,
            statistic,
        )
    }
}

/// A feature's report (its decision still open) and the evidence to decide it by; no evidence
/// when it could not be tested. `tables` is how many tables a permutation test draws.
pub(super) fn analyse_feature(
    profile: &FeatureProfile,
    current: FeatureCurrent<'_>,
    profile_bins: usize,
    settings: &DriftSettings,
    tables: usize,
) -> (FeatureReport, Option<Evidence>) {
    let column = current.column;
    let quality = column.map(Column::quality).unwrap_or_default();
    let n_current = column.map_or(0, Column::len) + current.summary.map_or(0, |s| s.count());
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
        histogram: None,
        drift: DriftOutcome {
            method,
            score: None,
            threshold: None,
            detected: false,
            p_value: None,
            level: None,
            p_value_by: None,
            permutations: None,
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
    if let Some(why) = current.summary.and_then(|s| s.unusable(settings)) {
        report.status = FeatureStatus::InsufficientData;
        report.reason = Some(why);
        return (report, None);
    }
    let mut null = NullDraws {
        rng: SplitMix64::for_name(settings.seed, profile.name()),
        tables,
    };
    let (tests, evidence, histogram) = match (profile, column) {
        (FeatureProfile::Numeric(p), Some(Column::Numeric(c))) => {
            let values = match current.summary {
                Some(FeatureSummary::On {
                    layout,
                    summary,
                    bins,
                }) => NumericCurrent::Summarised {
                    layout,
                    summary,
                    tail: &c.values,
                    bins,
                },
                _ => NumericCurrent::Raw(&c.values),
            };
            numeric(p, values, profile_bins, settings, &mut null)
        }
        (FeatureProfile::Categorical(p), Some(Column::Categorical(c))) => {
            categorical(p, c, settings, &mut null)
        }
        _ => unreachable!("current data is decoded with the reference schema"),
    };
    report.tests = Some(tests);
    report.histogram = Some(histogram);
    (report, Some(evidence))
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

pub(super) fn binned_metric(method: Method, reference: &[u64], current: &[u64]) -> f64 {
    match method {
        Method::Psi => psi(reference, current),
        Method::JensenShannon => jensen_shannon_distance(reference, current),
        Method::Hellinger => hellinger_distance(reference, current),
        _ => unreachable!("only binned metrics"),
    }
}

/// Evidence for a binned distance from both sides' counts: the fixed threshold when one is set;
/// the chi-square approximation when no permutations are asked for and every expected count is
/// at least [`MIN_EXPECTED_DISTANCE`]; otherwise a permutation test on tables with these margins.
pub(super) fn binned_evidence(
    method: Method,
    reference: &[u64],
    current: &[u64],
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> Evidence {
    let score = binned_metric(method, reference, current);
    if let Some(threshold) = settings.threshold {
        return Evidence::Fixed { score, threshold };
    }
    if settings.permutations > 0 || !asymptotic_holds(reference, current, MIN_EXPECTED_DISTANCE) {
        let outcome = null.table_test(reference, current, settings, |r, c| {
            binned_metric(method, r, c)
        });
        return Evidence::Permutation {
            score,
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

fn categorical(
    profile: &CategoricalProfile,
    column: &CategoricalColumn,
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> (Tests, Evidence, Histogram) {
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
        Method::Chi2 => chi2_evidence(
            &union_reference,
            &union_current,
            chi2.p_value,
            settings,
            null,
        ),
        method => binned_evidence(method, &reference_counts, &current_counts, settings, null),
    };
    let histogram = categorical_histogram(profile, reference_counts, current_counts);
    (Tests::Categorical(tests), evidence, histogram)
}

/// Chi-square's evidence: scipy's p-value when every expected count is at least
/// [`MIN_EXPECTED_CHI2`] and no permutations are asked for; otherwise the permutation p-value of
/// Pearson's statistic.
fn chi2_evidence(
    reference: &[u64],
    current: &[u64],
    p_value: f64,
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> Evidence {
    if settings.permutations == 0 && asymptotic_holds(reference, current, MIN_EXPECTED_CHI2) {
        return Evidence::Test { p_value };
    }
    let outcome = null.table_test(reference, current, settings, pearson_statistic);
    Evidence::PermutedTest {
        p_value: outcome.p_value,
        permutations: outcome.permuted.len(),
    }
}

/// The categorical histogram a report shows: the reference categories (the largest
/// [`HISTOGRAM_CATEGORIES`], the rest as `(other)`), then `(unseen)`.
fn categorical_histogram(
    profile: &CategoricalProfile,
    mut reference: Vec<u64>,
    mut current: Vec<u64>,
) -> Histogram {
    let mut labels: Vec<String> = profile.counts.keys().cloned().collect();
    if labels.len() > HISTOGRAM_CATEGORIES {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(reference[i]));
        let mut kept: Vec<usize> = order[..HISTOGRAM_CATEGORIES].to_vec();
        kept.sort_unstable();
        let other = |counts: &[u64]| -> u64 {
            order[HISTOGRAM_CATEGORIES..]
                .iter()
                .map(|&i| counts[i])
                .sum()
        };
        let pick = |counts: &[u64]| -> Vec<u64> {
            let mut picked: Vec<u64> = kept.iter().map(|&i| counts[i]).collect();
            picked.push(other(counts));
            picked.push(counts[counts.len() - 1]);
            picked
        };
        labels = kept.iter().map(|&i| labels[i].clone()).collect();
        labels.push("(other)".into());
        (reference, current) = (pick(&reference), pick(&current));
    }
    labels.push("(unseen)".into());
    Histogram {
        edges: None,
        labels: Some(labels),
        reference,
        current,
    }
}
