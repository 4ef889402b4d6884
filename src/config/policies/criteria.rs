//! A signal's criterion, checked: a fixed threshold (`above`, `below`) or a dynamic one
//! (`quantile`, `rolling`) over the signal's own recent values.

use super::raw::{RawQuantile, RawRolling, RawRule};
use crate::config::problems::Problems;
use crate::policy::{Criterion, Metric};

/// The criterion fields of a signal: at most one; `None` inside means none was given.
pub(super) fn criterion(
    raw: &RawRule,
    key: &str,
    problems: &mut Problems,
) -> Option<Option<Criterion>> {
    let given = [
        raw.above.is_some(),
        raw.below.is_some(),
        raw.quantile.is_some(),
        raw.rolling.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        problems.add(
            key,
            "set one criterion: `above`, `below`, `quantile` or `rolling`",
        );
        return None;
    }
    let finite = |value: f64, name: &str, problems: &mut Problems| {
        if value.is_finite() {
            Some(value)
        } else {
            problems.add(format!("{key}.{name}"), "must be a finite number");
            None
        }
    };
    if let Some(threshold) = raw.above {
        return Some(Some(Criterion::Above {
            threshold: finite(threshold, "above", problems)?,
        }));
    }
    if let Some(threshold) = raw.below {
        return Some(Some(Criterion::Below {
            threshold: finite(threshold, "below", problems)?,
        }));
    }
    if let Some(q) = &raw.quantile {
        return quantile(q, key, problems).map(Some);
    }
    if let Some(r) = &raw.rolling {
        return rolling(r, key, problems).map(Some);
    }
    Some(None)
}

/// A threshold at a quantile of the signal's recent values.
fn quantile(q: &RawQuantile, key: &str, problems: &mut Problems) -> Option<Criterion> {
    let warmup = q.warmup.unwrap_or(q.over);
    let before = problems.len();
    if !(q.q > 0.0 && q.q < 1.0) {
        problems.add(format!("{key}.quantile.q"), "must be between 0 and 1");
    }
    if q.over == 0 || q.over > 10_000 {
        problems.add(
            format!("{key}.quantile.over"),
            "must be between 1 and 10000",
        );
    }
    if warmup == 0 || warmup > q.over {
        problems.add(
            format!("{key}.quantile.warmup"),
            "must be between 1 and `over`",
        );
    }
    (problems.len() == before).then_some(Criterion::Quantile {
        q: q.q,
        over: q.over,
        warmup,
        side: q.side,
    })
}

/// A threshold some standard deviations from the mean of the signal's recent values.
fn rolling(r: &RawRolling, key: &str, problems: &mut Problems) -> Option<Criterion> {
    let warmup = r.warmup.unwrap_or(r.over);
    let before = problems.len();
    if !(r.deviations.is_finite() && r.deviations > 0.0) {
        problems.add(
            format!("{key}.rolling.deviations"),
            "must be a positive number",
        );
    }
    if r.over < 2 || r.over > 10_000 {
        problems.add(format!("{key}.rolling.over"), "must be between 2 and 10000");
    }
    if warmup < 2 || warmup > r.over {
        problems.add(
            format!("{key}.rolling.warmup"),
            "must be between 2 and `over`",
        );
    }
    (problems.len() == before).then_some(Criterion::Rolling {
        deviations: r.deviations,
        over: r.over,
        warmup,
        side: r.side,
    })
}

/// A signal's criterion: a verdict needs none; a number needs one.
pub(super) fn signal_criterion(
    metric: Metric,
    criterion: Option<Criterion>,
    key: &str,
    problems: &mut Problems,
) -> Option<Criterion> {
    match (metric, criterion) {
        (_, Some(criterion)) => Some(criterion),
        (Metric::Detected, None) => Some(Criterion::IsTrue),
        (metric, None) => {
            problems.add(
                key,
                format!(
                    "{} needs a criterion: `above`, `below`, `quantile` or `rolling`",
                    metric.name()
                ),
            );
            None
        }
    }
}
