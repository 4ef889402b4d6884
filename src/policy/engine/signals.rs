//! Reading a policy's rule on a window: every signal's value, its threshold (fixed, dynamic
//! from the signal's history, or a run's cost), whether it hits, and a sentence saying so.

use std::collections::VecDeque;

use super::words::{human, short, utc};
use crate::policy::decision::SignalReading;
use crate::policy::loss::Loss;
use crate::policy::readings::Readings;
use crate::policy::reference::Reference;
use crate::policy::spec::{
    Criterion, Metric, RegretMeasure, RetrainCost, Rule, Side, Signal, Source,
};
use crate::policy::state::PolicyState;

/// The policy's own counters, for schedule and regret signals.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule<'a> {
    elapsed_seconds: f64,
    records: f64,
    start_ms: i64,
    now_ms: i64,
    drift_start_ms: Option<i64>,
    drifted_records: u64,
    errors: u64,
    /// The model's recent run durations, oldest first.
    runs: &'a [f64],
}

impl Schedule<'_> {
    /// The counters of a policy whose state counted the window judged at `now_ms`.
    pub(super) fn of<'a>(state: &PolicyState, now_ms: i64, runs: &'a [f64]) -> Schedule<'a> {
        let start_ms = state.period_start_ms.unwrap_or(now_ms);
        Schedule {
            elapsed_seconds: (now_ms - start_ms) as f64 / 1000.0,
            records: state.period_records as f64,
            start_ms,
            now_ms,
            drift_start_ms: state.drift_start_ms,
            drifted_records: state.drifted_records,
            errors: state.period_errors,
            runs,
        }
    }

    /// Regret so far, with its parts: (harm units, seconds, regret).
    fn regret(&self, measure: RegretMeasure) -> (u64, f64, f64) {
        let (units, since) = match measure {
            RegretMeasure::DriftedRecords => (self.drifted_records, self.drift_start_ms),
            RegretMeasure::Errors => (self.errors, Some(self.start_ms)),
        };
        let seconds = since.map_or(0.0, |start| (self.now_ms - start).max(0) as f64 / 1000.0);
        (units, seconds, units as f64 * seconds)
    }

    /// The cost of a run, with how it was reached.
    fn cost(&self, cost: RetrainCost) -> (f64, String) {
        let (per_run_second, initial_run_seconds, over) = match cost {
            RetrainCost::Fixed(cost) => return (cost, String::new()),
            RetrainCost::Forecast {
                per_run_second,
                initial_run_seconds,
                over,
            } => (per_run_second, initial_run_seconds, over),
        };
        let recent = &self.runs[self.runs.len().saturating_sub(over)..];
        let (seconds, basis) = if recent.is_empty() {
            (
                initial_run_seconds,
                "the assumed duration before any run".to_string(),
            )
        } else {
            (
                recent.iter().sum::<f64>() / recent.len() as f64,
                format!("the mean of the last {} run(s)", recent.len()),
            )
        };
        let how = format!(
            " ({} per run second × {}, {basis})",
            short(per_run_second),
            human((seconds * 1000.0) as i64)
        );
        (per_run_second * seconds, how)
    }
}

/// Whether the rule is met; every signal read is added to `readings`.
pub(super) fn evaluate_rule(
    rule: &Rule,
    state: &mut PolicyState,
    report: &dyn Readings,
    schedule: Schedule<'_>,
    readings: &mut Vec<SignalReading>,
) -> bool {
    match rule {
        // Every signal is read (no short-circuit), so dynamic histories advance in every window
        // and the decision lists everything the policy looked at.
        Rule::Any(rules) => rules
            .iter()
            .map(|r| evaluate_rule(r, state, report, schedule, readings))
            .fold(false, |a, b| a | b),
        Rule::All(rules) => rules
            .iter()
            .map(|r| evaluate_rule(r, state, report, schedule, readings))
            .fold(true, |a, b| a & b),
        Rule::AtLeast { n, of } => {
            of.iter()
                .filter(|r| evaluate_rule(r, state, report, schedule, readings))
                .count()
                >= *n
        }
        Rule::Signal(signal) => {
            let reading = evaluate_signal(signal, state, report, schedule);
            let hit = reading.hit;
            readings.push(reading);
            hit
        }
    }
}

/// One signal's reading; its value joins the signal's history when its criterion keeps one.
fn evaluate_signal(
    signal: &Signal,
    state: &mut PolicyState,
    report: &dyn Readings,
    schedule: Schedule<'_>,
) -> SignalReading {
    let value = value_of(signal, state, report, schedule);
    let subject = subject(signal);
    let metric = signal.metric.name();
    let mut reading = SignalReading {
        subject: subject.clone(),
        metric: metric.to_string(),
        value,
        threshold: None,
        hit: false,
        text: String::new(),
    };
    let Some(value) = value else {
        reading.text = format!("{subject}: no {metric} in this window");
        return reading;
    };
    let series = state.series.entry(signal.series()).or_default();
    // A regret's threshold is the cost of a run, which a forecast re-reads every window.
    let criterion = match &signal.source {
        Source::Regret(regret) => Criterion::AtLeast {
            threshold: schedule.cost(regret.cost).0,
        },
        _ => signal.criterion,
    };
    let verdict = Verdict::of(criterion, value, series);
    reading.text = text(signal, value, &verdict, schedule);
    (reading.hit, reading.threshold) = (verdict.hit, verdict.threshold);
    let keep = signal.criterion.history();
    if keep > 0 {
        series.push_back(value);
        while series.len() > keep {
            series.pop_front();
        }
    }
    reading
}

/// The signal's value in this window: from the report, or from the policy's own counters.
fn value_of(
    signal: &Signal,
    state: &mut PolicyState,
    report: &dyn Readings,
    schedule: Schedule<'_>,
) -> Option<f64> {
    match (&signal.source, signal.metric) {
        (Source::Schedule, Metric::ElapsedSeconds) => Some(schedule.elapsed_seconds),
        (Source::Schedule, _) => Some(schedule.records),
        (Source::Regret(regret), _) => Some(schedule.regret(regret.measure).2),
        (Source::Cron(cron), _) => {
            let due = cron
                .next_after(schedule.start_ms)
                .is_some_and(|t| t <= schedule.now_ms);
            Some(f64::from(u8::from(due)))
        }
        // Changes signalled since the last judged window; counting starts again.
        (Source::Detector(..), _) => Some(
            state
                .detectors
                .get_mut(&signal.series())
                .map_or(0, |(_, changes)| std::mem::take(changes)) as f64,
        ),
        _ => match signal.reference {
            Reference::Training => report.value(&signal.source, signal.metric),
            Reference::SinceRetrain => report.since_retrain(&signal.source, signal.metric),
        },
    }
}

/// A value against its criterion.
struct Verdict {
    hit: bool,
    threshold: Option<f64>,
    /// The comparison that holds, for the sentence (`>`, `<=`, …).
    op: &'static str,
    /// How a dynamic threshold was reached, or why there is none yet.
    note: String,
}

impl Verdict {
    /// Compares `value` with a fixed threshold, or with one from the signal's `history`
    /// (before the value joins it).
    fn of(criterion: Criterion, value: f64, history: &mut VecDeque<f64>) -> Verdict {
        match criterion {
            Criterion::IsTrue => Verdict::plain(value > 0.5, None, ""),
            Criterion::Above { threshold } => Verdict::side(value, threshold, Side::Above),
            Criterion::Below { threshold } => Verdict::side(value, threshold, Side::Below),
            Criterion::AtLeast { threshold } => {
                let hit = value >= threshold;
                Verdict::plain(hit, Some(threshold), if hit { ">=" } else { "<" })
            }
            Criterion::Quantile {
                q, warmup, side, ..
            } => match warm(history, warmup) {
                Some(past) => Verdict {
                    note: format!(" (the {q} quantile of the last {} values)", past.len()),
                    ..Verdict::side(value, quantile(past, q), side)
                },
                None => Verdict::warming(history.len(), warmup),
            },
            Criterion::Rolling {
                deviations,
                warmup,
                side,
                ..
            } => match warm(history, warmup) {
                Some(past) => Verdict::rolling(value, past, deviations, side),
                None => Verdict::warming(history.len(), warmup),
            },
        }
    }

    fn plain(hit: bool, threshold: Option<f64>, op: &'static str) -> Verdict {
        Verdict {
            hit,
            threshold,
            op,
            note: String::new(),
        }
    }

    /// Strictly above or below `threshold`.
    fn side(value: f64, threshold: f64, side: Side) -> Verdict {
        let (hit, yes, no) = match side {
            Side::Above => (value > threshold, ">", "<="),
            Side::Below => (value < threshold, "<", ">="),
        };
        Verdict::plain(hit, Some(threshold), if hit { yes } else { no })
    }

    /// Beyond the mean of the past values by `deviations` standard deviations.
    fn rolling(value: f64, past: &[f64], deviations: f64, side: Side) -> Verdict {
        let (mean, std) = mean_std(past);
        let (threshold, sign) = match side {
            Side::Above => (mean + deviations * std, "+"),
            Side::Below => (mean - deviations * std, "-"),
        };
        Verdict {
            note: format!(
                " (mean {} {sign} {deviations} standard deviations of the last {} values)",
                short(mean),
                past.len()
            ),
            ..Verdict::side(value, threshold, side)
        }
    }

    /// No threshold yet: too few past values.
    fn warming(have: usize, warmup: usize) -> Verdict {
        Verdict {
            note: format!(" (warming up: {have} of {warmup} values)"),
            ..Verdict::plain(false, None, "")
        }
    }
}

/// What a signal is about, in sentences: its subject, marked when it compares the window with
/// the data since the last retrain.
fn subject(signal: &Signal) -> String {
    match signal.reference {
        Reference::Training => signal.subject().to_string(),
        Reference::SinceRetrain => format!("{} (since retrain)", signal.subject()),
    }
}

/// The sentence a signal's reading shows.
fn text(signal: &Signal, value: f64, verdict: &Verdict, schedule: Schedule<'_>) -> String {
    let subject = subject(signal);
    let (metric, op) = (signal.metric.name(), verdict.op);
    if let Some(threshold) = verdict.threshold {
        if let Some(text) = counter_text(signal, value, threshold, verdict, schedule) {
            return text;
        }
    }
    match (signal.criterion, verdict.threshold) {
        (Criterion::IsTrue, _) => format!(
            "{subject}: drift {}",
            if verdict.hit {
                "detected"
            } else {
                "not detected"
            }
        ),
        (_, Some(threshold)) => format!(
            "{subject}: {metric} {} {op} {}{}",
            short(value),
            short(threshold),
            verdict.note
        ),
        (_, None) => format!("{subject}: {metric} {}{}", short(value), verdict.note),
    }
}

/// The sentence of a signal on the policy's own counters (schedules, detectors, regret,
/// cron), which read as time, records or changes rather than as a statistic.
fn counter_text(
    signal: &Signal,
    value: f64,
    threshold: f64,
    verdict: &Verdict,
    schedule: Schedule<'_>,
) -> Option<String> {
    let op = verdict.op;
    let text = match (signal.metric, &signal.source) {
        (Metric::ElapsedSeconds, _) => format!(
            "{} since the last trigger {op} {}",
            human((value * 1000.0) as i64),
            human((threshold * 1000.0) as i64)
        ),
        (Metric::Changes, source) => {
            // A zero-one loss's mean is the error rate; other losses' subjects name the errors.
            let mean = match source {
                Source::Detector(_, Loss::Absolute | Loss::Squared) => "their mean",
                _ => "the error rate",
            };
            match verdict.hit {
                true => format!(
                    "{}: signalled {value} change(s) in {mean}",
                    signal.subject()
                ),
                false => format!("{}: no change in {mean}", signal.subject()),
            }
        }
        (Metric::Regret, Source::Regret(regret)) => {
            let (units, seconds, _) = schedule.regret(regret.measure);
            let (_, basis) = schedule.cost(regret.cost);
            let (what, since) = match regret.measure {
                RegretMeasure::DriftedRecords => ("drifted records", "since the drift began"),
                RegretMeasure::Errors => ("errors", "since the last trigger"),
            };
            format!(
                "regret: {units} {what} × {} {since} = {} {op} cost {}{basis}",
                human((seconds * 1000.0) as i64),
                short(value),
                short(threshold)
            )
        }
        (Metric::Due, Source::Cron(cron)) => match cron.next_after(schedule.start_ms) {
            Some(t) if verdict.hit => format!(
                "cron \"{}\" was due at {} (UTC), after the period began at {}",
                cron.expression(),
                utc(t),
                utc(schedule.start_ms)
            ),
            Some(t) => format!(
                "cron \"{}\" is next due at {} (UTC)",
                cron.expression(),
                utc(t)
            ),
            None => format!("cron \"{}\" has no later time", cron.expression()),
        },
        (Metric::Records, _) => {
            format!("{value} records since the last trigger {op} {threshold}")
        }
        _ => return None,
    };
    Some(text)
}

fn warm(series: &mut VecDeque<f64>, warmup: usize) -> Option<&[f64]> {
    (series.len() >= warmup.max(1)).then(|| &*series.make_contiguous())
}

/// The `q`-quantile with linear interpolation between order statistics (numpy's default).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// Mean and population standard deviation (numpy's `std`, `ddof=0`).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, variance.sqrt())
}
