//! Jensen–Shannon distance, base 2, as `scipy.spatial.distance.jensenshannon(p, q, base=2)` on
//! two count vectors over the same bins: `p` and `q` are normalised to sum to one,
//! `m = (p + q) / 2`, and the distance is `sqrt((KL(p‖m) + KL(q‖m)) / (2 ln 2))` with
//! `0 · ln(0/m) = 0`. It lies in [0, 1]. A rounding-negative divergence is reported as 0 (scipy
//! would return NaN there).

use super::sum::Neumaier;

/// The distance between two non-empty count vectors of equal length.
pub fn jensen_shannon_distance(reference: &[u64], current: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), current.len());
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let (n1, n2) = (n1 as f64, n2 as f64);
    let mut left = Neumaier::default();
    let mut right = Neumaier::default();
    for (&r, &c) in reference.iter().zip(current) {
        let p = r as f64 / n1;
        let q = c as f64 / n2;
        let m = (p + q) / 2.0;
        left.add(relative_entropy(p, m));
        right.add(relative_entropy(q, m));
    }
    let divergence = (left.total() + right.total()) / std::f64::consts::LN_2;
    (divergence / 2.0).max(0.0).sqrt()
}

/// `x ln(x/y)`, with `0 ln(0/y) = 0` (scipy `special.rel_entr`).
fn relative_entropy(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}
