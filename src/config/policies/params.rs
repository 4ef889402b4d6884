//! The parameters of detector and regret rules (`page_hinkley`, `adwin`, `regret`), checked.

use super::duration;
use super::raw::{RawAdwin, RawPageHinkley, RawRegret};
use crate::config::problems::Problems;
use crate::policy::detectors::{AdwinParams, DetectorParams, PageHinkleyParams};
use crate::policy::{Regret, RegretMeasure, RetrainCost};

/// Page-Hinkley's parameters, checked against their ranges.
pub(super) fn page_hinkley_params(
    raw: &RawPageHinkley,
    key: &str,
    problems: &mut Problems,
) -> Option<DetectorParams> {
    let defaults = PageHinkleyParams::default();
    let params = PageHinkleyParams {
        min_instances: raw.min_instances.unwrap_or(defaults.min_instances),
        delta: raw.delta.unwrap_or(defaults.delta),
        threshold: raw.threshold.unwrap_or(defaults.threshold),
        alpha: raw.alpha.unwrap_or(defaults.alpha),
        mode: raw.mode.unwrap_or(defaults.mode),
    };
    let checks = [
        (
            "threshold",
            params.threshold.is_finite() && params.threshold > 0.0,
            "must be a positive number",
        ),
        (
            "delta",
            params.delta.is_finite() && params.delta >= 0.0,
            "must be zero or more",
        ),
        (
            "alpha",
            params.alpha > 0.0 && params.alpha <= 1.0,
            "must be in (0, 1]",
        ),
        (
            "min_instances",
            params.min_instances > 0,
            "must be at least 1",
        ),
    ];
    detector_checks(key, "page_hinkley", &checks, problems)
        .then_some(DetectorParams::PageHinkley(params))
}

pub(super) fn adwin_params(
    raw: &RawAdwin,
    key: &str,
    problems: &mut Problems,
) -> Option<DetectorParams> {
    let defaults = AdwinParams::default();
    let params = AdwinParams {
        delta: raw.delta.unwrap_or(defaults.delta),
        clock: raw.clock.unwrap_or(defaults.clock),
        max_buckets: raw.max_buckets.unwrap_or(defaults.max_buckets),
        min_window_length: raw.min_window_length.unwrap_or(defaults.min_window_length),
        grace_period: raw.grace_period.unwrap_or(defaults.grace_period),
    };
    let checks = [
        (
            "delta",
            params.delta > 0.0 && params.delta < 1.0,
            "must be in (0, 1)",
        ),
        ("clock", params.clock > 0, "must be at least 1"),
        ("max_buckets", params.max_buckets > 0, "must be at least 1"),
        (
            "min_window_length",
            params.min_window_length > 0,
            "must be at least 1",
        ),
    ];
    detector_checks(key, "adwin", &checks, problems).then_some(DetectorParams::Adwin(params))
}

/// Records a problem for each failed check of a detector's parameters; true when all passed.
fn detector_checks(
    key: &str,
    detector: &str,
    checks: &[(&str, bool, &str)],
    problems: &mut Problems,
) -> bool {
    for (field, ok, message) in checks {
        if !ok {
            problems.add(format!("{key}.{detector}.{field}"), *message);
        }
    }
    checks.iter().all(|(_, ok, _)| *ok)
}

pub(super) fn regret_of(raw: &RawRegret, key: &str, problems: &mut Problems) -> Option<Regret> {
    let measure = match raw.of.as_str() {
        "drifted_records" => Some(RegretMeasure::DriftedRecords),
        "errors" => Some(RegretMeasure::Errors),
        other => {
            problems.add(
                format!("{key}.of"),
                format!("{other:?} is not a regret measure: use drifted_records or errors"),
            );
            None
        }
    };
    let positive = |value: f64, field: &str, problems: &mut Problems| {
        let ok = value.is_finite() && value > 0.0;
        if !ok {
            problems.add(format!("{key}.{field}"), "must be a positive number");
        }
        ok.then_some(value)
    };
    let forecast_fields = raw.initial_run_time.is_some() || raw.over.is_some();
    let cost = match (raw.cost, raw.cost_per_run_second) {
        (Some(cost), None) => {
            if forecast_fields {
                problems.add(
                    key,
                    "`initial_run_time` and `over` go with `cost_per_run_second`, not `cost`",
                );
                return None;
            }
            positive(cost, "cost", problems).map(RetrainCost::Fixed)
        }
        (None, Some(per_second)) => {
            let per_run_second = positive(per_second, "cost_per_run_second", problems);
            let initial = match &raw.initial_run_time {
                Some(text) => duration(text, &format!("{key}.initial_run_time"), false, problems),
                None => Some(std::time::Duration::from_secs(600)),
            };
            let over = raw.over.unwrap_or(5);
            if over == 0 || over > 100 {
                problems.add(format!("{key}.over"), "must be between 1 and 100");
            }
            match (per_run_second, initial) {
                (Some(per_run_second), Some(initial)) if (1..=100).contains(&over) => {
                    Some(RetrainCost::Forecast {
                        per_run_second,
                        initial_run_seconds: initial.as_secs_f64(),
                        over,
                    })
                }
                _ => None,
            }
        }
        _ => {
            problems.add(
                key,
                "set one of `cost` (fixed) or `cost_per_run_second` (forecast from past runs)",
            );
            None
        }
    };
    Some(Regret {
        measure: measure?,
        cost: cost?,
    })
}
