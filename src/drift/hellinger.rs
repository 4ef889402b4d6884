//! Hellinger distance between the reference and current bin shares:
//! `H = sqrt(sum_i (sqrt(p_i) - sqrt(q_i))² / 2)`, in [0, 1]. Zero shares need no special case.

use super::sum::Neumaier;

/// The distance between two non-empty count vectors of equal length.
pub fn hellinger_distance(reference: &[u64], current: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), current.len());
    let n1: u64 = reference.iter().sum();
    let n2: u64 = current.iter().sum();
    let (n1, n2) = (n1 as f64, n2 as f64);
    let mut total = Neumaier::default();
    for (&r, &c) in reference.iter().zip(current) {
        let diff = (r as f64 / n1).sqrt() - (c as f64 / n2).sqrt();
        total.add(diff * diff);
    }
    (total.total() / 2.0).sqrt().min(1.0)
}
