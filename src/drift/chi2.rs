//! Chi-square test of homogeneity on a 2×k table of category counts, as
//! `scipy.stats.chi2_contingency([reference, current], correction=False)` over the categories
//! seen in either sample: expected counts `row_total · column_total / total`, statistic
//! `sum (observed - expected)² / expected`, `k - 1` degrees of freedom, p-value from the
//! chi-square survival function. With one category there is nothing to test: statistic 0, p 1.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::sum::Neumaier;

/// The result of a chi-square test of homogeneity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chi2Result {
    /// Pearson's statistic.
    pub statistic: f64,
    /// `P(chi2_dof >= statistic)`.
    pub p_value: f64,
    /// Degrees of freedom: categories seen in either sample, minus one.
    pub dof: u64,
}

/// The test on aligned count vectors. Columns empty in both samples are left out. `None` when
/// either sample is empty.
pub fn chi2_homogeneity(reference: &[u64], current: &[u64]) -> Option<Chi2Result> {
    debug_assert_eq!(reference.len(), current.len());
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let columns = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .count() as u64;
    let dof = columns - 1;
    if dof == 0 {
        return Some(Chi2Result {
            statistic: 0.0,
            p_value: 1.0,
            dof,
        });
    }
    let statistic = pearson_statistic(reference, current);
    Some(Chi2Result {
        statistic,
        p_value: chi2_sf(statistic, dof as f64),
        dof,
    })
}

/// Pearson's statistic `sum (observed - expected)² / expected` over the columns seen in either
/// sample; both samples non-empty.
pub fn pearson_statistic(reference: &[u64], current: &[u64]) -> f64 {
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let total = (n1 + n2) as f64;
    let mut statistic = Neumaier::default();
    for (&r, &c) in reference.iter().zip(current) {
        if r == 0 && c == 0 {
            continue;
        }
        let column_total = (r + c) as f64;
        for (observed, row_total) in [(r, n1), (c, n2)] {
            let expected = row_total as f64 * column_total / total;
            let diff = observed as f64 - expected;
            statistic.add(diff * diff / expected);
        }
    }
    statistic.total()
}

/// `P(chi2_dof >= x)`.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    match ChiSquared::new(dof) {
        Ok(dist) => dist.sf(x).clamp(0.0, 1.0),
        Err(_) => f64::NAN,
    }
}

/// The `1 - level` quantile of chi-square with `dof` degrees of freedom: the critical value.
pub fn chi2_critical(level: f64, dof: f64) -> f64 {
    match ChiSquared::new(dof) {
        Ok(dist) => dist.inverse_cdf(1.0 - level),
        Err(_) => f64::NAN,
    }
}
