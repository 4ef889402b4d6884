//! Seeded permutation tests for any distance: pool both samples, relabel them at random many
//! times, and see how often a relabelled split is at least as far apart as the real one.
//!
//! The pooled values are sorted (or binned) once; each permutation only shuffles the labels, so
//! a permutation costs one pass over the pool. The generator is seeded per feature name, so
//! results are reproducible and do not depend on feature order.

use crate::rng::SplitMix64;

/// The observed statistic, its p-value and the sorted permuted statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct PermutationOutcome {
    /// The statistic on the real split.
    pub observed: f64,
    /// `(1 + #{permuted >= observed}) / (1 + permutations)`.
    pub p_value: f64,
    /// Permuted statistics, ascending.
    pub permuted: Vec<f64>,
}

/// Runs a permutation test. `labels` holds `true` for the reference items of the pool;
/// `statistic` computes the distance for a labelling.
pub fn permutation_test(
    labels: &[bool],
    permutations: usize,
    rng: &mut SplitMix64,
    mut statistic: impl FnMut(&[bool]) -> f64,
) -> PermutationOutcome {
    let observed = statistic(labels);
    let mut shuffled = labels.to_vec();
    let mut permuted = Vec::with_capacity(permutations);
    for _ in 0..permutations {
        rng.shuffle(&mut shuffled);
        permuted.push(statistic(&shuffled));
    }
    permuted.sort_by(f64::total_cmp);
    // A relative tolerance, so an identical split that rounds differently still counts as "as
    // extreme" (otherwise p-values for no drift would be biased low).
    let tolerance = observed.abs() * 1e-12;
    let as_extreme = permuted
        .iter()
        .filter(|p| **p >= observed - tolerance)
        .count();
    PermutationOutcome {
        observed,
        p_value: (1 + as_extreme) as f64 / (1 + permutations) as f64,
        permuted,
    }
}

/// Counts pooled items per slot for each label.
pub fn split_counts(slots: &[usize], labels: &[bool], slot_count: usize) -> (Vec<u64>, Vec<u64>) {
    let mut reference = vec![0u64; slot_count];
    let mut current = vec![0u64; slot_count];
    for (&slot, &is_reference) in slots.iter().zip(labels) {
        if is_reference {
            reference[slot] += 1;
        } else {
            current[slot] += 1;
        }
    }
    (reference, current)
}
