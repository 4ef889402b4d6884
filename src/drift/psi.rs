//! Population Stability Index over bins fixed on the reference:
//! `PSI = sum_i (q_i - p_i) · ln(q_i / p_i)` with `p_i`, `q_i` the reference and current shares
//! of bin `i`. A share that is exactly zero is replaced by 0.0001 first (Evidently's rule), so a
//! bin empty on one side contributes a large but finite term and a bin empty on both sides
//! contributes nothing.

use super::sum::Neumaier;

/// The value that replaces a zero share.
pub const ZERO_SHARE: f64 = 1e-4;

/// PSI between two non-empty count vectors of equal length.
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), current.len());
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let mut total = Neumaier::default();
    for (&r, &c) in reference.iter().zip(current) {
        let p = share(r, n1);
        let q = share(c, n2);
        total.add((q - p) * (q / p).ln());
    }
    total.total()
}

fn share(count: u64, total: u64) -> f64 {
    if count == 0 {
        ZERO_SHARE
    } else {
        count as f64 / total as f64
    }
}
