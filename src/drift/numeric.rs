//! A numeric feature's statistics against the reference sample, from the window's raw values
//! or from its summary ([`crate::window::summary`]): the same numbers either way, except
//! Wasserstein-1 where a summary's ECDFs cross inside a gap (its report then gives the bound).

use super::bins::QuantileBins;
use super::decision::{DriftSettings, Evidence, Method, DEFAULT_WASSERSTEIN_PERMUTATIONS};
use super::ecdf::compare_weighted;
use super::feature::{binned_evidence, NullDraws};
use super::hellinger::hellinger_distance;
use super::jensen_shannon::jensen_shannon_distance;
use super::ks::ks_test;
use super::psi::psi;
use super::report::{DistanceOut, Histogram, KsOut, NumericTests, PsiOut, Tests, WassersteinOut};
use super::wasserstein::{normed, pooled};
use super::wasserstein_null::WassersteinNull;
use crate::baseline::NumericProfile;
use crate::rng::SplitMix64;
use crate::window::summary::{Layout, NumericSummary};

/// A window's usable values of one numeric feature.
pub(super) enum NumericCurrent<'a> {
    /// Every value, raw.
    Raw(&'a [f64]),
    /// Values folded into `summary` on `layout` (whose points include the edges of `bins`
    /// quantile bins), and the `tail` that came after the last fold.
    Summarised {
        layout: &'a Layout,
        summary: &'a NumericSummary,
        tail: &'a [f64],
        bins: usize,
    },
}

/// What the tests are computed from, whichever way the values came.
struct Walk {
    ks_statistic: f64,
    wasserstein: f64,
    wasserstein_bound: Option<f64>,
    n_current: u64,
    reference_counts: Vec<u64>,
    current_counts: Vec<u64>,
}

/// The feature's statistics and the evidence for its decision.
pub(super) fn numeric(
    profile: &NumericProfile,
    current: NumericCurrent<'_>,
    profile_bins: usize,
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> (Tests, Evidence, Histogram) {
    match current {
        NumericCurrent::Raw(values) => raw(profile, values, profile_bins, settings, null),
        NumericCurrent::Summarised {
            layout,
            summary,
            tail,
            bins,
        } => {
            let mut whole = summary.clone();
            for &value in tail {
                layout.add(&mut whole, value);
            }
            let comparison = crate::drift::summary::compare(layout, &whole);
            let (edges, reference_counts) = profile.reference_histogram(profile_bins, bins);
            let walk = Walk {
                ks_statistic: comparison.ks_statistic,
                wasserstein: comparison.wasserstein,
                wasserstein_bound: Some(comparison.wasserstein_bound),
                n_current: whole.len(),
                current_counts: crate::drift::summary::histogram(layout, &whole, &edges),
                reference_counts,
            };
            let tests = tests(profile, &walk);
            let evidence = summarised_evidence(&tests, &walk, settings, null);
            (Tests::Numeric(tests), evidence, walk.histogram(edges))
        }
    }
}

fn raw(
    profile: &NumericProfile,
    values: &[f64],
    profile_bins: usize,
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> (Tests, Evidence, Histogram) {
    let mut current = values.to_vec();
    super::ecdf::sort_values(&mut current);
    // One merge of the two samples serves KS and Wasserstein.
    let merged = compare_weighted(&profile.sample, &profile.sample_counts, &current);
    let (bins, reference_counts) = profile.reference_histogram(profile_bins, settings.bins);
    let walk = Walk {
        ks_statistic: merged.ks_statistic,
        wasserstein: merged.wasserstein,
        wasserstein_bound: None,
        n_current: current.len() as u64,
        current_counts: bins.histogram_sorted(&current),
        reference_counts,
    };
    let tests = tests(profile, &walk);
    let evidence = match settings.numeric_method {
        Method::Ks => Evidence::Test {
            p_value: tests.ks.p_value,
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
                let reference = profile.expanded_sample();
                let outcome = wasserstein_permutations(
                    &reference,
                    &current,
                    permutations,
                    settings,
                    &mut null.rng,
                );
                Evidence::Permutation {
                    score,
                    p_value: outcome.p_value,
                    permuted: outcome.permuted,
                }
            }
        }
        method => binned_evidence(
            method,
            &walk.reference_counts,
            &walk.current_counts,
            settings,
            null,
        ),
    };
    (Tests::Numeric(tests), evidence, walk.histogram(bins))
}

impl Walk {
    /// Both sides' counts on the quantile bins, for the report.
    fn histogram(self, bins: QuantileBins) -> Histogram {
        Histogram {
            edges: Some(bins.edges),
            labels: None,
            reference: self.reference_counts,
            current: self.current_counts,
        }
    }
}

/// Wasserstein-1's permutation test ([`super::wasserstein_null`]): the smaller sample is
/// drawn again at random from the pool, stopping once the p-value is settled above `alpha`
/// ([`super::permutation::stop_at`]).
fn wasserstein_permutations(
    reference: &[f64],
    current: &[f64],
    permutations: usize,
    settings: &DriftSettings,
    rng: &mut SplitMix64,
) -> super::permutation::PermutationOutcome {
    let pool = pooled(reference, current);
    let values: Vec<f64> = pool.iter().map(|(v, _)| *v).collect();
    let null = WassersteinNull::new(&values, current.len());
    // The smaller group is the one drawn; W1 is symmetric in the two.
    let drawn_is_reference = reference.len() < current.len();
    let observed = null.statistic(
        pool.iter()
            .enumerate()
            .filter(|(_, (_, is_reference))| *is_reference == drawn_is_reference)
            .map(|(k, _)| k),
    );
    let stop = super::permutation::stop_at(settings.alpha, permutations);
    null.test(observed, permutations, Some(stop), rng)
}

/// The evidence from a summary, for the settings that do not need the values
/// ([`DriftSettings::exact_from_summaries`]; the caller checks).
fn summarised_evidence(
    tests: &NumericTests,
    walk: &Walk,
    settings: &DriftSettings,
    null: &mut NullDraws,
) -> Evidence {
    match settings.numeric_method {
        Method::Ks => Evidence::Test {
            p_value: tests.ks.p_value,
        },
        method => binned_evidence(
            method,
            &walk.reference_counts,
            &walk.current_counts,
            settings,
            null,
        ),
    }
}

fn tests(profile: &NumericProfile, walk: &Walk) -> NumericTests {
    let ks = ks_test(profile.reference_len(), walk.n_current, walk.ks_statistic);
    let (reference, current) = (&walk.reference_counts, &walk.current_counts);
    NumericTests {
        ks: KsOut {
            statistic: ks.statistic,
            p_value: ks.p_value,
            mode: ks.method,
        },
        wasserstein: WassersteinOut {
            distance: walk.wasserstein,
            normed: normed(walk.wasserstein, profile.std.unwrap_or(0.0)),
            bound: walk.wasserstein_bound,
        },
        psi: PsiOut {
            value: psi(reference, current),
        },
        jensen_shannon: DistanceOut {
            distance: jensen_shannon_distance(reference, current),
        },
        hellinger: DistanceOut {
            distance: hellinger_distance(reference, current),
        },
    }
}
