//! Two-sample Kolmogorov–Smirnov test, two-sided, as `scipy.stats.ks_2samp(reference, current)`
//! with its default `method="auto"`.
//!
//! * Statistic: `D = max |F_ref(x) - F_cur(x)|` over all observed `x`, the empirical CDFs counting
//!   values `<= x`.
//! * `auto` is exact when both samples have at most 10,000 values, asymptotic beyond. The exact
//!   p-value counts lattice paths (Hodges 1958, with Viehmann's 1-p recursion); it rounds `D` to
//!   the lattice `h / lcm(n1, n2)` and reports that rounded value as the statistic, as scipy does.
//!   If the exact computation leaves [0, 1] it falls back to the asymptotic one.
//! * Asymptotic: `P(D_n >= D)` of the one-sample distribution with `n = round(n1·n2/(n1+n2))`
//!   ([`super::kolmogorov`]).

use serde::Serialize;

use super::kolmogorov::kolmogorov_sf;

/// Above this many values in either sample, the p-value is asymptotic (scipy's `MAX_AUTO_N`).
pub const MAX_EXACT_N: usize = 10_000;

/// How a KS p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KsMethod {
    /// Exact lattice-path count.
    Exact,
    /// The one-sample distribution at the effective sample size.
    Asymptotic,
}

/// The result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsResult {
    /// The statistic `D`.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: KsMethod,
}

/// The raw statistic `D` of two sorted, non-empty samples, exactly as scipy computes it in
/// floating point (one walk over both ECDFs, shared with Wasserstein: [`super::ecdf`]).
pub fn ks_statistic(reference: &[f64], current: &[f64]) -> f64 {
    super::ecdf::compare_sorted(reference, current).ks_statistic
}

/// The two-sided test on two sorted, non-empty samples. `None` when either is empty.
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> Option<KsResult> {
    if reference.is_empty() || current.is_empty() {
        return None;
    }
    let d = ks_statistic(reference, current);
    Some(ks_test(reference.len() as u64, current.len() as u64, d))
}

/// The test for a raw statistic `d` (from [`ks_statistic`] or a fused ECDF walk) between samples
/// of `n1` and `n2` values, both non-zero.
pub fn ks_test(n1: u64, n2: u64, d: f64) -> KsResult {
    debug_assert!(n1 > 0 && n2 > 0);
    let mut statistic = d;
    if n1.max(n2) as usize <= MAX_EXACT_N {
        let (rounded, p_value) = exact_p_value(n1, n2, d);
        statistic = rounded;
        if (0.0..=1.0).contains(&p_value) {
            return KsResult {
                statistic,
                p_value,
                method: KsMethod::Exact,
            };
        }
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let effective_n = (m * n / (m + n)).round_ties_even() as u64;
    KsResult {
        statistic,
        p_value: kolmogorov_sf(effective_n, statistic).clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Rounds `d` to the lattice of attainable values and returns it with the exact p-value
/// (NaN or out of [0, 1] when the computation failed numerically).
fn exact_p_value(n1: u64, n2: u64, d: f64) -> (f64, f64) {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return (d, 1.0);
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        prob_outside_band(n1, n2, g, h)
    };
    (d, if p.is_finite() { p } else { f64::NAN })
}

/// Equal sizes: the share of lattice paths that leave the band `|x - y| < h`, by the reflection
/// series evaluated Horner-style to avoid cancellation.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let mut term = 1.0;
        // For the largest k the numerator reaches zero (and the term stays zero) before it
        // could turn negative.
        for j in 0..h {
            term = (n - k * h - j) as f64 * term / (n + k * h + j + 1) as f64;
        }
        p = term * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// Unequal sizes: one minus the share of lattice paths from (0,0) to (m,n) that stay strictly
/// inside `|x/m - y/n| < h/lcm`, computed column by column as 1-p directly (Viehmann 2021).
fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let mut min_j = 0i64;
    let mut max_j = ceil_div(h, mg).min(n + 1);
    let mut current_len = max_j - min_j;
    let len_a = (2 * max_j + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for slot in a.iter_mut().take(max_j as usize) {
        *slot = 0.0;
    }
    for i in 1..=m {
        let (last_min_j, last_len) = (min_j, current_len);
        min_j = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        max_j = ceil_div(ng * i + h, mg).min(n + 1);
        if max_j <= min_j {
            return 1.0;
        }
        let mut value = if min_j == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(max_j - min_j) {
            let j = (jj + min_j) as f64;
            let carried = a[(jj + min_j - last_min_j) as usize];
            value = (carried * fi + value * j) / (fi + j);
            a[jj as usize] = value;
        }
        current_len = max_j - min_j;
        if last_len > current_len {
            let from = (max_j - min_j) as usize;
            let to = (from + (last_len - current_len) as usize).min(len_a);
            a[from..to].iter_mut().for_each(|x| *x = 1.0);
        }
    }
    a[(max_j - min_j - 1) as usize]
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_have_zero_statistic() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let r = ks_2samp(&a, &a).unwrap();
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn disjoint_samples_have_statistic_one() {
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0]).unwrap();
        assert_eq!(r.statistic, 1.0);
        // Exactly 2 of the C(5,2)=10 orderings are this extreme.
        assert!((r.p_value - 0.2).abs() < 1e-15, "{}", r.p_value);
    }

    #[test]
    fn empty_sample_gives_none() {
        assert!(ks_2samp(&[], &[1.0]).is_none());
    }
}
