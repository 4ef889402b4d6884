//! Permutation p-values for any statistic of a 2×k table of counts (the reference and the
//! current row over the same columns: bins or categories), drawn without the values.
//!
//! Relabelling the pooled values at random keeps each column's total and each row's total, and
//! gives every table with those margins its multivariate hypergeometric probability. So the
//! permutation null can be drawn table by table: column after column, the current row's count
//! is hypergeometric given what is left of the pool and of the current row. A draw costs one
//! hypergeometric variate per column whatever the sample sizes, needs only the counts (so a
//! window summarised on several instances gets the same p-value as one read whole), and is the
//! distribution R's `chisq.test(simulate.p.value = TRUE)` samples for Pearson's statistic.
//!
//! [`asymptotic_holds`] is the rule for when the chi-square approximation is trusted instead.

use statrs::function::factorial::ln_binomial;

use super::decision::Correction;
use super::permutation::{sequential, PermutationOutcome};
use crate::rng::SplitMix64;

/// The smallest expected count under "no drift" for which chi-square's own p-value is trusted
/// (Cochran's rule for contingency tables).
pub const MIN_EXPECTED_CHI2: f64 = 5.0;

/// The smallest expected count for which the chi-square approximation of a binned distance
/// (PSI, Jensen–Shannon, Hellinger) is trusted. They converge more slowly than Pearson's
/// statistic: on 100-row windows of unchanged data over 10 quantile bins (expected count 10),
/// the approximation flags PSI in 8 % of windows at alpha 5 % (`tests/calibration.rs`).
pub const MIN_EXPECTED_DISTANCE: f64 = 20.0;

/// The fewest tables drawn for a test. Its smallest p-value is `1 / (MIN_DRAWS + 1)`.
pub const MIN_DRAWS: usize = 999;

/// Whether every cell's expected count under homogeneity, `row total · column total / total`,
/// is at least `min_expected` (columns empty in both rows left out). The smallest such count
/// is the smaller row's share of the smallest column.
pub fn asymptotic_holds(reference: &[u64], current: &[u64], min_expected: f64) -> bool {
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let smallest_column = reference
        .iter()
        .zip(current)
        .map(|(r, c)| r + c)
        .filter(|&total| total > 0)
        .min();
    smallest_column
        .is_none_or(|column| n1.min(n2) as f64 * column as f64 / (n1 + n2) as f64 >= min_expected)
}

/// How many tables a test draws when none are asked for: enough that a feature drifting alone
/// can pass the strictest level its correction gives (alpha over the number of features), with
/// a factor of two to spare, and at least [`MIN_DRAWS`].
pub fn default_draws(alpha: f64, correction: Correction, features: usize) -> usize {
    let strictest = match correction {
        Correction::None => alpha,
        Correction::Bonferroni | Correction::BenjaminiHochberg => alpha / features.max(1) as f64,
    };
    ((2.0 / strictest).ceil() as usize).max(MIN_DRAWS)
}

/// The permutation test of `statistic` on a table: the observed value, then up to `draws`
/// values on tables drawn with its margins, stopping once `stop` of them were at least as
/// large (see [`super::permutation::stop_at`]).
pub fn table_test(
    reference: &[u64],
    current: &[u64],
    draws: usize,
    stop: Option<usize>,
    rng: &mut SplitMix64,
    mut statistic: impl FnMut(&[u64], &[u64]) -> f64,
) -> PermutationOutcome {
    let observed = statistic(reference, current);
    let margins = Margins::of(reference, current);
    let (mut drawn_reference, mut drawn_current) =
        (vec![0; reference.len()], vec![0; current.len()]);
    sequential(observed, draws, stop, || {
        margins.draw(rng, &mut drawn_reference, &mut drawn_current);
        statistic(&drawn_reference, &drawn_current)
    })
}

/// A table's column totals and its current row's total.
struct Margins {
    columns: Vec<u64>,
    current: u64,
}

impl Margins {
    fn of(reference: &[u64], current: &[u64]) -> Margins {
        Margins {
            columns: reference.iter().zip(current).map(|(r, c)| r + c).collect(),
            current: current.iter().sum(),
        }
    }

    /// One table with these margins, at its probability under relabelling.
    fn draw(&self, rng: &mut SplitMix64, reference: &mut [u64], current: &mut [u64]) {
        let mut pool: u64 = self.columns.iter().sum();
        let mut left = self.current;
        for (j, &column) in self.columns.iter().enumerate() {
            let taken = if left == 0 || column == 0 {
                0
            } else if column == pool {
                left
            } else {
                hypergeometric(rng, pool, column, left)
            };
            current[j] = taken;
            reference[j] = column - taken;
            pool -= column;
            left -= taken;
        }
    }
}

/// A draw of how many of `draws` items taken without replacement from `population` items are
/// among its `marked` ones (`marked, draws <= population`).
///
/// Inversion from the mode outwards: the probabilities are walked from the mode, alternately
/// one step up and one down, by the ratio of neighbouring probabilities, until the uniform
/// variate is used up; so a draw costs about one standard deviation's worth of steps, and the
/// only logarithms are the mode's. (`rand_distr`'s sampler was tried first: its set-up
/// overflows for populations of a few thousand.)
fn hypergeometric(rng: &mut SplitMix64, population: u64, marked: u64, draws: u64) -> u64 {
    let lowest = (draws + marked).saturating_sub(population);
    let highest = draws.min(marked);
    let mode = (((draws + 1) as f64 * (marked + 1) as f64 / (population + 2) as f64) as u64)
        .clamp(lowest, highest);
    let (n, k, d) = (population as f64, marked as f64, draws as f64);
    // p(x + 1) / p(x) and p(x - 1) / p(x).
    let up = |x: f64| (k - x) * (d - x) / ((x + 1.0) * (n - k - d + x + 1.0));
    let down = |x: f64| x * (n - k - d + x) / ((k - x + 1.0) * (d - x + 1.0));
    let at_mode = (ln_binomial(marked, mode) + ln_binomial(population - marked, draws - mode)
        - ln_binomial(population, draws))
    .exp();
    let mut left = rng.next_f64() - at_mode;
    let (mut above, mut p_above) = (mode, at_mode);
    let (mut below, mut p_below) = (mode, at_mode);
    while left >= 0.0 && (above < highest || below > lowest) {
        if above < highest {
            p_above *= up(above as f64);
            above += 1;
            left -= p_above;
            if left < 0.0 {
                return above;
            }
        }
        if below > lowest {
            p_below *= down(below as f64);
            below -= 1;
            left -= p_below;
            if left < 0.0 {
                return below;
            }
        }
    }
    // Every outcome was walked and rounding left a sliver of probability: the mode.
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_the_smallest_expected_count() {
        // Smallest column 10 of 200, smaller row 100: expected 5.
        assert!(asymptotic_holds(&[95, 5], &[95, 5], MIN_EXPECTED_CHI2));
        // Smallest column 9: expected 4.5.
        assert!(!asymptotic_holds(&[96, 4], &[95, 5], MIN_EXPECTED_CHI2));
        // Columns empty on both sides take no part.
        assert!(asymptotic_holds(
            &[95, 0, 5],
            &[95, 0, 5],
            MIN_EXPECTED_CHI2
        ));
    }

    #[test]
    fn draws_keep_the_margins() {
        let margins = Margins::of(&[500, 30, 0, 7, 1], &[40, 3, 0, 2, 5]);
        let mut rng = SplitMix64::new(7);
        let (mut r, mut c) = (vec![0; 5], vec![0; 5]);
        for _ in 0..200 {
            margins.draw(&mut rng, &mut r, &mut c);
            assert_eq!(c.iter().sum::<u64>(), 50);
            assert_eq!(r.iter().sum::<u64>(), 538);
            for j in 0..5 {
                assert_eq!(r[j] + c[j], margins.columns[j]);
            }
        }
    }

    #[test]
    fn a_column_count_follows_the_hypergeometric_mean() {
        // Column 0 holds 540 of 588 pooled values; 50 are current: mean 50 · 540 / 588.
        let margins = Margins::of(&[500, 38], &[40, 10]);
        let mut rng = SplitMix64::new(11);
        let (mut r, mut c) = (vec![0; 2], vec![0; 2]);
        let rounds = 20_000;
        let mut total = 0u64;
        for _ in 0..rounds {
            margins.draw(&mut rng, &mut r, &mut c);
            total += c[0];
        }
        let mean = total as f64 / rounds as f64;
        let expected = 50.0 * 540.0 / 588.0;
        assert!(
            (mean - expected).abs() < 0.05,
            "mean {mean}, expected {expected}"
        );
    }

    /// Draws against the exact probabilities, small and large populations, both tails.
    #[test]
    fn hypergeometric_draws_follow_the_distribution() {
        let mut rng = SplitMix64::new(3);
        for (population, marked, draws) in [
            (10, 4, 5),
            (588, 48, 50),
            (20_100, 19_000, 100),
            (20_100, 3, 100),
            (120_000, 40_000, 10_000),
            (30, 30, 7),
        ] {
            let rounds = 40_000;
            let mut seen = std::collections::BTreeMap::<u64, u64>::new();
            for _ in 0..rounds {
                *seen
                    .entry(hypergeometric(&mut rng, population, marked, draws))
                    .or_default() += 1;
            }
            let pmf = |x: u64| {
                if x + population < marked + draws {
                    return 0.0;
                }
                (ln_binomial(marked, x) + ln_binomial(population - marked, draws - x)
                    - ln_binomial(population, draws))
                .exp()
            };
            let distance: f64 = (0..=draws.min(marked))
                .map(|x| {
                    let share = *seen.get(&x).unwrap_or(&0) as f64 / rounds as f64;
                    (share - pmf(x)).abs()
                })
                .sum::<f64>()
                / 2.0;
            let support = (0..=draws.min(marked)).filter(|&x| pmf(x) > 1e-6).count();
            // Total variation of a 40,000-draw empirical distribution: about sqrt(support / rounds).
            let tolerance = 0.6 * (support as f64 / rounds as f64).sqrt() + 0.002;
            assert!(
                distance < tolerance,
                "({population}, {marked}, {draws}): total variation {distance} >= {tolerance}"
            );
        }
    }

    #[test]
    fn draws_are_enough_for_the_strictest_level() {
        assert_eq!(default_draws(0.05, Correction::None, 50), MIN_DRAWS);
        assert_eq!(default_draws(0.05, Correction::BenjaminiHochberg, 50), 2000);
        assert_eq!(default_draws(0.01, Correction::Bonferroni, 100), 20_000);
    }
}
