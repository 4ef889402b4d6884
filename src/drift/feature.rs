//! One feature's statistics and its evidence for a decision: numeric against the reference
//! sample, categorical against the reference counts.

use super::bins::{categorical_histograms, union_histograms, QuantileBins};
use super::chi2::chi2_homogeneity;
use super::decision::{DriftSettings, Evidence, Method, DEFAULT_WASSERSTEIN_PERMUTATIONS};
use super::ecdf::compare_sorted;
use super::hellinger::hellinger_distance;
use super::jensen_shannon::jensen_shannon_distance;
use super::ks::ks_test;
use super::permutation::{permutation_test, split_counts};
use super::psi::psi;
use super::report::{
    CategoricalTests, DistanceOut, DriftOutcome, FeatureReport, FeatureStatus, KsOut, NumericTests,
    PsiOut, Tests, WassersteinOut,
};
use super::wasserstein::{normed, pooled, wasserstein_labelled};
use crate::baseline::{CategoricalProfile, FeatureProfile, NumericProfile};
use crate::decode::{CategoricalColumn, Column, FeatureKind, NumericColumn};
use crate::rng::SplitMix64;

/// A feature's report (its decision still open) and the evidence to decide it by; no evidence
/// when it could not be tested.
pub(super) fn analyse_feature(
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
