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
    sequential(observed, permutations, None, || {
        rng.shuffle(&mut shuffled);
        statistic(&shuffled)
    })
}

/// Up to `permutations` permuted statistics from `permuted`, compared with `observed`;
/// stops once `stop_at` of them were at least as extreme (see [`stop_at`]).
pub(crate) fn sequential(
    observed: f64,
    permutations: usize,
    stop_at: Option<usize>,
    mut permuted: impl FnMut() -> f64,
) -> PermutationOutcome {
    // A relative tolerance, so an identical split that rounds differently still counts as "as
    // extreme" (otherwise p-values for no drift would be biased low).
    let tolerance = observed.abs() * 1e-12;
    let mut values = Vec::with_capacity(permutations);
    let mut as_extreme = 0usize;
    for _ in 0..permutations {
        let value = permuted();
        as_extreme += usize::from(value >= observed - tolerance);
        values.push(value);
        if stop_at.is_some_and(|stop| as_extreme >= stop) {
            break;
        }
    }
    values.sort_by(f64::total_cmp);
    PermutationOutcome {
        observed,
        p_value: (1 + as_extreme) as f64 / (1 + values.len()) as f64,
        permuted: values,
    }
}

/// How many permuted statistics at least as extreme as the observed one settle a test of
/// `permutations` relabellings at significance `alpha`: with that many, the full test's p-value
/// `(1 + count) / (1 + permutations)` is above `alpha` whatever the rest give, and so is the
/// estimate `(1 + count) / (1 + done)` reported instead. Every corrected level is at most
/// `alpha`, so stopping there never changes a decision.
pub fn stop_at(alpha: f64, permutations: usize) -> usize {
    ((alpha * (permutations + 1) as f64).floor() as usize).max(1)
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
