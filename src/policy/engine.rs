//! Evaluating policies on closed windows: pure, with time passed in.
//!
//! For each window of a stream, every policy of every model on that stream yields one
//! [`Decision`]. A policy's state (recent rule outcomes, histories for dynamic thresholds, past
//! trigger times) is plain data in [`EngineState`], checkpointed with the stream's window so a
//! restart continues exactly where it stopped.
//!
//! Order of judgement for one window:
//! 1. a window with fewer than `min_records` records is not judged (`not_triggered`, state
//!    untouched);
//! 2. every signal is read from the report and checked against its criterion; dynamic criteria
//!    compare with the history *before* adding the current value;
//! 3. the rule's outcome joins the recent outcomes; the window rule (`consecutive` or k-of-n)
//!    decides whether the policy would trigger;
//! 4. a would-be trigger is suppressed while a run is in flight (unless the policy allows it),
//!    within the cooldown of the last trigger, or beyond the budget, in that order;
//! 5. a trigger clears the recent outcomes: the next one needs its own run of windows.
//!
//! Times are the window's end in milliseconds since the epoch (event time, else broker time),
//! so replaying the same records decides the same way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::detectors::{Detector, DetectorParams};
use super::readings::{Readings, WindowSpan};
use super::spec::{
    Criterion, Metric, Model, Policy, RegretMeasure, RetrainCost, Rule, Side, Signal, Source,
};

/// What a window offers the engine.
#[derive(Debug, Clone, Copy)]
pub struct WindowFacts<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The window's index in the stream.
    pub index: u64,
    /// Records in the window.
    pub records: u64,
    /// The decision time: the window's end, epoch milliseconds.
    pub at_ms: i64,
    /// What the window's report says.
    pub report: &'a dyn Readings,
}

/// The outcome of one evaluation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The policy fired: a retraining run should start.
    Triggered,
    /// The policy's conditions were not met.
    NotTriggered,
    /// It would have fired, but the cooldown after the last trigger was still running.
    SuppressedCooldown,
    /// It would have fired, but the budget of runs per period was spent.
    SuppressedBudget,
    /// It would have fired, but a run of the model was in flight.
    SuppressedInFlight,
}

impl Outcome {
    /// The label used in the API, the store and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Triggered => "triggered",
            Outcome::NotTriggered => "not_triggered",
            Outcome::SuppressedCooldown => "suppressed_cooldown",
            Outcome::SuppressedBudget => "suppressed_budget",
            Outcome::SuppressedInFlight => "suppressed_in_flight",
        }
    }

    /// Every outcome, for metrics that list them all.
    pub const ALL: [Outcome; 5] = [
        Outcome::Triggered,
        Outcome::NotTriggered,
        Outcome::SuppressedCooldown,
        Outcome::SuppressedBudget,
        Outcome::SuppressedInFlight,
    ];
}

/// One signal as the engine saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignalReading {
    /// The feature, or `dataset`.
    pub subject: String,
    /// The metric's name.
    pub metric: String,
    /// Its value in this window, when the report has one.
    pub value: Option<f64>,
    /// The threshold it was compared with (for dynamic criteria, computed from the history).
    pub threshold: Option<f64>,
    /// Whether it counts as a hit.
    pub hit: bool,
    /// The reading in words: `amount: ks.p_value 1.2e-9 < 0.01`.
    pub text: String,
}

/// One policy's verdict on one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// Idempotency key: `policy/model/stream/window`. The store holds at most one triggered
    /// decision per key.
    pub key: String,
    /// The policy.
    pub policy: String,
    /// The model.
    pub model: String,
    /// The DAG that retrains the model, if configured.
    pub dag: Option<String>,
    /// The stream.
    pub stream: String,
    /// The window's index.
    pub window: u64,
    /// Decision time (the window's end), epoch milliseconds.
    pub at_ms: i64,
    /// What happened.
    pub outcome: Outcome,
    /// Why, in a sentence a person can read.
    pub reason: String,
    /// Which records the window held: its time span and offsets per `topic/partition`.
    #[serde(default)]
    pub span: WindowSpan,
    /// The model's features whose drift was detected in this window.
    pub drifted_features: Vec<String>,
    /// Every signal the policy looked at.
    pub signals: Vec<SignalReading>,
}

/// One policy's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    /// Rule outcomes of recent judged windows, oldest first.
    pub recent: VecDeque<bool>,
    /// Past values per signal series, oldest first, for dynamic criteria.
    pub series: BTreeMap<String, VecDeque<f64>>,
    /// Times of past triggers still relevant to the cooldown or the budget.
    pub triggers: VecDeque<i64>,
    /// Start of the current schedule period: the last trigger, or the first judged window.
    #[serde(default)]
    pub period_start_ms: Option<i64>,
    /// Records judged since the period started.
    #[serde(default)]
    pub period_records: u64,
    /// Change detectors on the error stream, by signal series, with the changes they signalled
    /// since the last judged window.
    #[serde(default)]
    pub detectors: BTreeMap<String, (Detector, u64)>,
    /// For regret: when the model's features began to drift (the first judged window with
    /// drift since the last trigger).
    #[serde(default)]
    pub drift_start_ms: Option<i64>,
    /// For regret: records of judged windows with drift since the drift began.
    #[serde(default)]
    pub drifted_records: u64,
    /// For regret: wrong predictions in judged windows since the period started.
    #[serde(default)]
    pub period_errors: u64,
}

/// The memory of every policy, by policy name. Serialisable: it is checkpointed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// By policy name.
    pub policies: BTreeMap<String, PolicyState>,
    /// Durations in seconds of the latest retraining runs, by model, oldest first: they
    /// forecast the cost of the next run for cost-aware policies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub run_seconds: BTreeMap<String, Vec<f64>>,
}

/// Run durations kept per model for cost forecasts.
const RUNS_KEPT: usize = 100;

/// Models and policies with their state.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    models: Vec<Model>,
    policies: Vec<Policy>,
    state: EngineState,
    in_flight: BTreeSet<String>,
    /// The policies' error-stream detectors (policy, series, parameters), derived from the
    /// policies once rather than per record.
    error_detectors: Vec<(String, String, DetectorParams)>,
}

impl Engine {
    /// An engine with fresh state.
    pub fn new(models: Vec<Model>, policies: Vec<Policy>) -> Engine {
        let mut engine = Engine::default();
        engine.replace(models, policies);
        engine
    }

    /// Swaps in new models and policies. Policies keep their state by name (so a reload never
    /// resets a cooldown or a budget), and runs in flight stay in flight.
    pub fn replace(&mut self, models: Vec<Model>, policies: Vec<Policy>) {
        self.error_detectors = policies
            .iter()
            .flat_map(|policy| {
                policy
                    .when
                    .signals()
                    .into_iter()
                    .filter_map(|signal| match signal.source {
                        Source::Detector(params) => {
                            Some((policy.name.clone(), signal.series(), params))
                        }
                        _ => None,
                    })
            })
            .collect();
        self.models = models;
        self.policies = policies;
    }

    /// Continues from checkpointed state. State of policies the engine does not have is kept
    /// until the next checkpoint, which writes only current policies' state
    /// ([`stream_state`](Engine::stream_state)).
    pub fn restore(&mut self, state: EngineState) {
        self.state = state;
    }

    /// The state, for a checkpoint.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The state of the policies on one stream, for that stream's checkpoint.
    pub fn stream_state(&self, stream: &str) -> EngineState {
        let policies = self
            .policies
            .iter()
            .filter(|p| self.model(&p.model).is_some_and(|m| m.stream == stream))
            .filter_map(|p| {
                self.state
                    .policies
                    .get(&p.name)
                    .map(|s| (p.name.clone(), s.clone()))
            })
            .collect();
        let run_seconds = self
            .state
            .run_seconds
            .iter()
            .filter(|(model, _)| self.model(model).is_some_and(|m| m.stream == stream))
            .map(|(model, runs)| (model.clone(), runs.clone()))
            .collect();
        EngineState {
            policies,
            run_seconds,
        }
    }

    /// Records how long a finished retraining run of `model` took, for cost forecasts.
    pub fn record_run(&mut self, model: &str, seconds: f64) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        let runs = self.state.run_seconds.entry(model.to_string()).or_default();
        runs.push(seconds);
        if runs.len() > RUNS_KEPT {
            runs.remove(0);
        }
    }

    /// The models.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The policies.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Feeds one labelled record's outcome to every error-stream detector of the stream's
    /// policies (1 for a wrong prediction, 0 for a right one).
    pub fn observe_error(&mut self, wrong: bool) {
        let error = if wrong { 1.0 } else { 0.0 };
        for (policy, series, params) in &self.error_detectors {
            // Keys are cloned only the first time: this runs for every labelled record.
            if !self.state.policies.contains_key(policy) {
                self.state
                    .policies
                    .insert(policy.clone(), PolicyState::default());
            }
            let state = self.state.policies.get_mut(policy).expect("inserted");
            if !state.detectors.contains_key(series) {
                state
                    .detectors
                    .insert(series.clone(), (Detector::new(*params), 0));
            }
            let (detector, changes) = state.detectors.get_mut(series).expect("inserted");
            if detector.update(error) {
                *changes += 1;
            }
        }
    }

    /// True when any policy watches the error stream (so records' outcomes are worth feeding).
    pub fn watches_errors(&self) -> bool {
        !self.error_detectors.is_empty()
    }

    /// Marks a run of `model` as in flight or finished.
    pub fn set_in_flight(&mut self, model: &str, in_flight: bool) {
        if in_flight {
            self.in_flight.insert(model.to_string());
        } else {
            self.in_flight.remove(model);
        }
    }

    fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Evaluates every policy on the window's stream, in configuration order. Once a policy
    /// triggers a model, the model counts as in flight for the later policies of the same
    /// window: one window starts at most one run per model (unless a policy says
    /// `in_flight = "trigger"`).
    pub fn evaluate(&mut self, window: &WindowFacts<'_>) -> Vec<Decision> {
        let mut decisions: Vec<Decision> = Vec::new();
        for policy in &self.policies {
            let Some(model) = self.models.iter().find(|m| m.name == policy.model) else {
                continue;
            };
            if model.stream != window.stream {
                continue;
            }
            let runs = self.state.run_seconds.get(&model.name).map(Vec::as_slice);
            let state = self.state.policies.entry(policy.name.clone()).or_default();
            let busy = if self.in_flight.contains(&model.name) {
                Some(format!("a run of model {} is in flight", model.name))
            } else {
                decisions
                    .iter()
                    .find(|d| d.model == model.name && d.outcome == Outcome::Triggered)
                    .map(|d| {
                        format!(
                            "policy {} triggered model {} in this window",
                            d.policy, model.name
                        )
                    })
            };
            decisions.push(judge(policy, model, state, busy.as_deref(), runs, window));
        }
        decisions
    }
}

fn judge(
    policy: &Policy,
    model: &Model,
    state: &mut PolicyState,
    busy: Option<&str>,
    runs: Option<&[f64]>,
    window: &WindowFacts<'_>,
) -> Decision {
    let mut decision = Decision {
        key: format!(
            "{}/{}/{}/{}",
            policy.name, model.name, window.stream, window.index
        ),
        policy: policy.name.clone(),
        model: model.name.clone(),
        dag: model.dag.clone(),
        stream: window.stream.to_string(),
        window: window.index,
        at_ms: window.at_ms,
        outcome: Outcome::NotTriggered,
        reason: String::new(),
        span: window.report.span(),
        drifted_features: drifted_features(model, window.report),
        signals: Vec::new(),
    };
    if window.records < policy.min_records {
        decision.reason = format!(
            "window {} has {} records; this policy judges windows of at least {}",
            window.index, window.records, policy.min_records
        );
        return decision;
    }
    state.period_start_ms.get_or_insert(window.at_ms);
    state.period_records += window.records;
    if !decision.drifted_features.is_empty() {
        state.drift_start_ms.get_or_insert(window.at_ms);
        state.drifted_records += window.records;
    }
    state.period_errors += window.report.errors();
    let schedule = Schedule {
        elapsed_seconds: (window.at_ms - state.period_start_ms.unwrap_or(window.at_ms)) as f64
            / 1000.0,
        records: state.period_records as f64,
        start_ms: state.period_start_ms.unwrap_or(window.at_ms),
        now_ms: window.at_ms,
        drift_start_ms: state.drift_start_ms,
        drifted_records: state.drifted_records,
        errors: state.period_errors,
        runs: runs.unwrap_or_default(),
    };
    let met = evaluate_rule(
        &policy.when,
        state,
        window.report,
        schedule,
        &mut decision.signals,
    );
    state.recent.push_back(met);
    while state.recent.len() > policy.windows.span() {
        state.recent.pop_front();
    }
    let hits: Vec<&str> = decision
        .signals
        .iter()
        .filter(|s| s.hit)
        .map(|s| s.text.as_str())
        .collect();
    let misses: Vec<&str> = decision
        .signals
        .iter()
        .filter(|s| !s.hit)
        .map(|s| s.text.as_str())
        .collect();
    if !policy.windows.holds(state.recent.make_contiguous()) {
        decision.reason = if met {
            let so_far = state.recent.iter().rev().take_while(|m| **m).count();
            format!(
                "{}; met in {so_far} window(s) so far, needs to be met {}",
                hits.join("; "),
                policy.windows.describe()
            )
        } else {
            format!("not met: {}", misses.join("; "))
        };
        return decision;
    }
    let would = format!("{} {}", hits.join("; "), policy.windows.describe());
    let last = state.triggers.back().copied();
    let cooldown_ms = policy.cooldown.as_millis() as i64;
    let suppress_busy = policy.in_flight == super::spec::InFlight::Suppress;
    decision.outcome = if let Some(busy) = busy.filter(|_| suppress_busy) {
        decision.reason = format!("{would}, but {busy}");
        Outcome::SuppressedInFlight
    } else if let Some(last) = last.filter(|last| window.at_ms - last < cooldown_ms) {
        decision.reason = format!(
            "{would}, but the last trigger was {} ago and the cooldown is {}",
            human(window.at_ms - last),
            human(cooldown_ms)
        );
        Outcome::SuppressedCooldown
    } else if let Some(budget) = policy.budget.filter(|budget| {
        let per = budget.per.as_millis() as i64;
        let recent = state
            .triggers
            .iter()
            .filter(|t| window.at_ms - **t < per)
            .count();
        recent >= budget.max_runs as usize
    }) {
        decision.reason = format!(
            "{would}, but the budget of {} run(s) per {} is spent",
            budget.max_runs,
            human(budget.per.as_millis() as i64)
        );
        Outcome::SuppressedBudget
    } else {
        decision.reason = would;
        state.triggers.push_back(window.at_ms);
        state.recent.clear();
        state.period_start_ms = Some(window.at_ms);
        state.period_records = 0;
        state.drift_start_ms = None;
        state.drifted_records = 0;
        state.period_errors = 0;
        Outcome::Triggered
    };
    // Keep only the trigger times the cooldown or the budget can still look at.
    let horizon = policy
        .budget
        .map_or(0, |b| b.per.as_millis() as i64)
        .max(cooldown_ms);
    while state.triggers.len() > 1
        && state
            .triggers
            .front()
            .is_some_and(|t| window.at_ms - t >= horizon)
    {
        state.triggers.pop_front();
    }
    decision
}

/// The model's features whose drift the report detected.
fn drifted_features(model: &Model, report: &dyn Readings) -> Vec<String> {
    model
        .features
        .iter()
        .filter(|name| report.drifted(name))
        .cloned()
        .collect()
}

/// The policy's own counters, for schedule and regret signals.
#[derive(Debug, Clone, Copy)]
struct Schedule<'a> {
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
        match cost {
            RetrainCost::Fixed(cost) => (cost, String::new()),
            RetrainCost::Forecast {
                per_run_second,
                initial_run_seconds,
                over,
            } => {
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
                (
                    per_run_second * seconds,
                    format!(
                        " ({} per run second × {}, {basis})",
                        short(per_run_second),
                        human((seconds * 1000.0) as i64)
                    ),
                )
            }
        }
    }
}

fn evaluate_rule(
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

fn evaluate_signal(
    signal: &Signal,
    state: &mut PolicyState,
    report: &dyn Readings,
    schedule: Schedule<'_>,
) -> SignalReading {
    let value = match (&signal.source, signal.metric) {
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
        (Source::Detector(_), _) => Some(
            state
                .detectors
                .get_mut(&signal.series())
                .map_or(0, |(_, changes)| std::mem::take(changes)) as f64,
        ),
        _ => report.value(&signal.source, signal.metric),
    };
    let subject = signal.subject();
    let metric = signal.metric.name();
    let mut reading = SignalReading {
        subject: subject.to_string(),
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
    let compare = |threshold: f64, side: Side| match side {
        Side::Above => (value > threshold, ">", "<="),
        Side::Below => (value < threshold, "<", ">="),
    };
    let fixed = |threshold: f64, side: Side| {
        let (hit, yes, no) = compare(threshold, side);
        (
            hit,
            Some(threshold),
            if hit { yes } else { no },
            String::new(),
        )
    };
    // A regret's threshold is the cost of a run, which a forecast re-reads every window.
    let criterion = match &signal.source {
        Source::Regret(regret) => Criterion::AtLeast {
            threshold: schedule.cost(regret.cost).0,
        },
        _ => signal.criterion,
    };
    let (hit, threshold, op, note) = match criterion {
        Criterion::IsTrue => (value > 0.5, None, "", String::new()),
        Criterion::Above { threshold } => fixed(threshold, Side::Above),
        Criterion::Below { threshold } => fixed(threshold, Side::Below),
        Criterion::AtLeast { threshold } => {
            let hit = value >= threshold;
            let op = if hit { ">=" } else { "<" };
            (hit, Some(threshold), op, String::new())
        }
        Criterion::Quantile {
            q, warmup, side, ..
        } => match warm(series, warmup) {
            Some(history) => {
                let threshold = quantile(history, q);
                let (hit, yes, no) = compare(threshold, side);
                let note = format!(" (the {q} quantile of the last {} values)", history.len());
                (hit, Some(threshold), if hit { yes } else { no }, note)
            }
            None => (false, None, "", warming(series.len(), warmup)),
        },
        Criterion::Rolling {
            deviations,
            warmup,
            side,
            ..
        } => match warm(series, warmup) {
            Some(history) => {
                let (mean, std) = mean_std(history);
                let threshold = match side {
                    Side::Above => mean + deviations * std,
                    Side::Below => mean - deviations * std,
                };
                let (hit, yes, no) = compare(threshold, side);
                let note = format!(
                    " (mean {} {} {deviations} standard deviations of the last {} values)",
                    short(mean),
                    if side == Side::Above { "+" } else { "-" },
                    history.len()
                );
                (hit, Some(threshold), if hit { yes } else { no }, note)
            }
            None => (false, None, "", warming(series.len(), warmup)),
        },
    };
    reading.hit = hit;
    reading.threshold = threshold;
    reading.text = match (signal.criterion, threshold) {
        (_, Some(threshold)) if signal.metric == Metric::ElapsedSeconds => format!(
            "{} since the last trigger {op} {}",
            human((value * 1000.0) as i64),
            human((threshold * 1000.0) as i64)
        ),
        (_, Some(_)) if signal.metric == Metric::Changes => {
            if hit {
                format!("{subject}: signalled {value} change(s) in the error rate")
            } else {
                format!("{subject}: no change in the error rate")
            }
        }
        (_, Some(threshold)) if signal.metric == Metric::Regret => {
            let Source::Regret(regret) = &signal.source else {
                unreachable!("only regret signals measure regret")
            };
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
        (_, Some(_)) if signal.metric == Metric::Due => {
            let Source::Cron(cron) = &signal.source else {
                unreachable!("only cron signals are due")
            };
            let next = cron.next_after(schedule.start_ms);
            match next {
                Some(t) if hit => format!(
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
            }
        }
        (_, Some(threshold)) if signal.metric == Metric::Records => {
            format!("{value} records since the last trigger {op} {threshold}")
        }
        (Criterion::IsTrue, _) => format!(
            "{subject}: drift {}",
            if hit { "detected" } else { "not detected" }
        ),
        (_, Some(threshold)) => {
            format!(
                "{subject}: {metric} {} {op} {}{note}",
                short(value),
                short(threshold)
            )
        }
        (_, None) => format!("{subject}: {metric} {}{note}", short(value)),
    };
    let keep = signal.criterion.history();
    if keep > 0 {
        series.push_back(value);
        while series.len() > keep {
            series.pop_front();
        }
    }
    reading
}

fn warm(series: &mut VecDeque<f64>, warmup: usize) -> Option<&[f64]> {
    (series.len() >= warmup.max(1)).then(|| &*series.make_contiguous())
}

fn warming(have: usize, warmup: usize) -> String {
    format!(" (warming up: {have} of {warmup} values)")
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

/// Numbers in sentences: four significant digits, scientific when tiny or huge.
fn short(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_string()
    } else {
        format!("{value:.2e}")
    }
}

/// Unix milliseconds as an RFC 3339 UTC time, to the second.
fn utc(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Milliseconds as "1h 30m", "45s".
fn human(ms: i64) -> String {
    let seconds = (ms.max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::spec::{Budget, CronSchedule, InFlight, WindowRule};
    use serde_json::Value;
    use std::time::Duration;

    const MINUTE: i64 = 60_000;

    fn model() -> Model {
        Model {
            name: "fraud".into(),
            stream: "payments".into(),
            features: vec!["amount".into(), "country".into()],
            dag: Some("retrain".into()),
        }
    }

    fn ks_below(feature: &str, threshold: f64) -> Rule {
        Rule::Signal(Signal {
            source: Source::Feature(feature.into()),
            metric: Metric::KsPValue,
            criterion: Criterion::Below { threshold },
        })
    }

    fn policy(windows: WindowRule) -> Policy {
        Policy {
            name: "p".into(),
            model: "fraud".into(),
            when: Rule::Any(vec![ks_below("amount", 0.01)]),
            windows,
            min_records: 0,
            cooldown: Duration::ZERO,
            budget: None,
            in_flight: InFlight::Suppress,
        }
    }

    /// A window report where `amount` has this KS p-value.
    fn report(p_value: f64) -> Value {
        serde_json::json!({
            "features": [
                {"name": "amount", "tests": {"ks": {"p_value": p_value, "statistic": 0.2}},
                 "drift": {"detected": p_value < 0.05, "score": p_value}},
                {"name": "country", "tests": {"chi2": {"p_value": 0.5}},
                 "drift": {"detected": false}},
            ],
            "dataset": {"share": 0.5, "drifted": 1, "detected": p_value < 0.05}
        })
    }

    /// Runs windows with these p-values, one minute apart; returns the outcomes.
    fn run(engine: &mut Engine, p_values: &[f64]) -> Vec<Outcome> {
        run_from(engine, 0, p_values)
    }

    fn run_from(engine: &mut Engine, first: u64, p_values: &[f64]) -> Vec<Outcome> {
        p_values
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let index = first + i as u64;
                let report = report(*p);
                let decisions = engine.evaluate(&WindowFacts {
                    stream: "payments",
                    index,
                    records: 1000,
                    at_ms: index as i64 * MINUTE,
                    report: &report,
                });
                assert_eq!(decisions.len(), 1);
                decisions[0].outcome
            })
            .collect()
    }

    use Outcome::{NotTriggered as N, SuppressedCooldown as C, Triggered as T};

    #[test]
    fn consecutive_windows_then_a_fresh_run_after_each_trigger() {
        let mut engine = Engine::new(
            vec![model()],
            vec![policy(WindowRule::Consecutive { k: 2 })],
        );
        let outcomes = run(
            &mut engine,
            &[0.001, 0.5, 0.001, 0.001, 0.001, 0.001, 0.001],
        );
        assert_eq!(outcomes, [N, N, N, T, N, T, N]);
    }

    #[test]
    fn k_of_n_windows() {
        let mut engine = Engine::new(vec![model()], vec![policy(WindowRule::KOfN { k: 2, n: 3 })]);
        let outcomes = run(&mut engine, &[0.001, 0.5, 0.001, 0.5, 0.5, 0.001]);
        assert_eq!(outcomes, [N, N, T, N, N, N]);
    }

    #[test]
    fn cooldown_budget_and_in_flight_suppress_with_reasons() {
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.cooldown = Duration::from_secs(150);
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        let outcomes = run(&mut engine, &[0.001; 7]);
        assert_eq!(outcomes, [T, C, C, T, C, C, T]);

        p.cooldown = Duration::ZERO;
        p.budget = Some(Budget {
            max_runs: 2,
            per: Duration::from_secs(300),
        });
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        let outcomes = run(&mut engine, &[0.001; 7]);
        use Outcome::SuppressedBudget as B;
        assert_eq!(outcomes, [T, T, B, B, B, T, T]);

        let mut engine = Engine::new(
            vec![model()],
            vec![policy(WindowRule::Consecutive { k: 1 })],
        );
        engine.set_in_flight("fraud", true);
        let report = report(1e-9);
        let facts = WindowFacts {
            stream: "payments",
            index: 4,
            records: 1000,
            at_ms: 0,
            report: &report,
        };
        let decision = engine.evaluate(&facts).remove(0);
        assert_eq!(decision.outcome, Outcome::SuppressedInFlight);
        assert_eq!(
            decision.reason,
            "amount: ks.p_value 1.00e-9 < 0.01 in this window, but a run of model fraud is in flight"
        );
        assert_eq!(decision.key, "p/fraud/payments/4");
        assert_eq!(decision.drifted_features, ["amount"]);
        engine.set_in_flight("fraud", false);
        assert_eq!(engine.evaluate(&facts)[0].outcome, Outcome::Triggered);
    }

    #[test]
    fn two_policies_triggering_one_window_start_one_run() {
        let first = policy(WindowRule::Consecutive { k: 1 });
        let mut second = first.clone();
        second.name = "q".into();
        let mut eager = first.clone();
        eager.name = "r".into();
        eager.in_flight = InFlight::Trigger;
        let mut engine = Engine::new(vec![model()], vec![first, second, eager]);
        let report = report(1e-9);
        let decisions = engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 4,
            records: 1000,
            at_ms: 0,
            report: &report,
        });
        let outcomes: Vec<Outcome> = decisions.iter().map(|d| d.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Triggered,
                Outcome::SuppressedInFlight,
                Outcome::Triggered
            ]
        );
        assert!(
            decisions[1]
                .reason
                .ends_with("but policy p triggered model fraud in this window"),
            "{}",
            decisions[1].reason
        );
    }

    #[test]
    fn reasons_name_values_thresholds_and_windows() {
        let mut engine = Engine::new(
            vec![model()],
            vec![policy(WindowRule::Consecutive { k: 2 })],
        );
        let report = |p| report(p);
        let mut decide = |index: u64, p: f64| {
            let report = report(p);
            engine
                .evaluate(&WindowFacts {
                    stream: "payments",
                    index,
                    records: 1000,
                    at_ms: 0,
                    report: &report,
                })
                .remove(0)
        };
        assert_eq!(
            decide(0, 0.3).reason,
            "not met: amount: ks.p_value 0.3 >= 0.01"
        );
        assert_eq!(
            decide(1, 1.2e-9).reason,
            "amount: ks.p_value 1.20e-9 < 0.01; met in 1 window(s) so far, needs to be met in 2 consecutive windows"
        );
        let triggered = decide(2, 1.2e-9);
        assert_eq!(triggered.outcome, Outcome::Triggered);
        assert_eq!(
            triggered.reason,
            "amount: ks.p_value 1.20e-9 < 0.01 in 2 consecutive windows"
        );
        assert_eq!(triggered.signals[0].threshold, Some(0.01));
    }

    #[test]
    fn small_windows_are_not_judged() {
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.min_records = 5000;
        let mut engine = Engine::new(vec![model()], vec![p]);
        let decision = engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 0,
            records: 1000,
            at_ms: 0,
            report: &report(1e-9),
        });
        assert_eq!(decision[0].outcome, Outcome::NotTriggered);
        assert!(decision[0].reason.contains("at least 5000"));
        assert!(engine.state().policies["p"].recent.is_empty());
    }

    #[test]
    fn dynamic_thresholds_warm_up_then_follow_the_history() {
        let signal = |criterion| {
            Rule::Signal(Signal {
                source: Source::Feature("amount".into()),
                metric: Metric::KsStatistic,
                criterion,
            })
        };
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.when = signal(Criterion::Quantile {
            q: 0.5,
            over: 3,
            warmup: 2,
            side: Side::Above,
        });
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        let statistic = |s: f64| serde_json::json!({"features": [{"name": "amount", "tests": {"ks": {"statistic": s}}}]});
        let decide = |engine: &mut Engine, s: f64| {
            let report = statistic(s);
            engine
                .evaluate(&WindowFacts {
                    stream: "payments",
                    index: 0,
                    records: 1,
                    at_ms: 0,
                    report: &report,
                })
                .remove(0)
        };
        let first = decide(&mut engine, 0.9);
        assert!(
            first.reason.contains("warming up: 0 of 2"),
            "{}",
            first.reason
        );
        assert_eq!(decide(&mut engine, 0.1).outcome, N);
        // History [0.9, 0.1]: median 0.5.
        let third = decide(&mut engine, 0.6);
        assert_eq!(third.outcome, T);
        assert_eq!(third.signals[0].threshold, Some(0.5));
        // History keeps the last 3: [0.9, 0.1, 0.6], median 0.6; 0.6 is not above it.
        assert_eq!(decide(&mut engine, 0.6).outcome, N);

        p.when = signal(Criterion::Rolling {
            deviations: 2.0,
            over: 4,
            warmup: 4,
            side: Side::Above,
        });
        let mut engine = Engine::new(vec![model()], vec![p]);
        for s in [0.1, 0.2, 0.1, 0.2] {
            assert_eq!(decide(&mut engine, s).outcome, N);
        }
        // Mean 0.15, std 0.05: the threshold is 0.25.
        let spike = decide(&mut engine, 0.3);
        assert_eq!(spike.outcome, T);
        assert!((spike.signals[0].threshold.unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn combinators_read_every_signal() {
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        let country = Rule::Signal(Signal {
            source: Source::Feature("country".into()),
            metric: Metric::Chi2PValue,
            criterion: Criterion::Below { threshold: 0.01 },
        });
        let share = Rule::Signal(Signal {
            source: Source::Dataset,
            metric: Metric::Share,
            criterion: Criterion::Above { threshold: 0.4 },
        });
        p.when = Rule::AtLeast {
            n: 2,
            of: vec![ks_below("amount", 0.01), country.clone(), share.clone()],
        };
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        let decision = &engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 0,
            records: 1,
            at_ms: 0,
            report: &report(1e-3),
        })[0];
        assert_eq!(decision.outcome, T, "amount and the share hold");
        assert_eq!(decision.signals.len(), 3);
        p.when = Rule::All(vec![ks_below("amount", 0.01), country]);
        let mut engine = Engine::new(vec![model()], vec![p]);
        let decision = &engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 0,
            records: 1,
            at_ms: 0,
            report: &report(1e-3),
        })[0];
        assert_eq!(decision.outcome, N);
        assert_eq!(decision.signals.len(), 2);
    }

    #[test]
    fn other_streams_and_restored_state() {
        let mut engine = Engine::new(
            vec![model()],
            vec![policy(WindowRule::Consecutive { k: 2 })],
        );
        let report = report(1e-9);
        let other = WindowFacts {
            stream: "other",
            index: 0,
            records: 1,
            at_ms: 0,
            report: &report,
        };
        assert!(engine.evaluate(&other).is_empty());
        assert_eq!(run(&mut engine, &[1e-9]), [N]);
        // Through JSON, as the checkpoint stores it.
        let saved: EngineState =
            serde_json::from_str(&serde_json::to_string(&engine.stream_state("payments")).unwrap())
                .unwrap();
        let mut restored = Engine::new(
            vec![model()],
            vec![policy(WindowRule::Consecutive { k: 2 })],
        );
        restored.restore(saved);
        assert_eq!(run_from(&mut restored, 1, &[1e-9]), [T]);
    }

    #[test]
    fn schedules_count_time_and_records_since_the_last_trigger() {
        let schedule = |metric, threshold| {
            Rule::Signal(Signal {
                source: Source::Schedule,
                metric,
                criterion: Criterion::AtLeast { threshold },
            })
        };
        // Every 3 minutes of window time; windows are a minute apart, starting at 0.
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.when = schedule(Metric::ElapsedSeconds, 180.0);
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        assert_eq!(run(&mut engine, &[0.5; 7]), [N, N, N, T, N, N, T]);
        let report = report(0.5);
        let reason = engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 7,
            records: 1000,
            at_ms: 7 * MINUTE,
            report: &report,
        })[0]
            .reason
            .clone();
        assert_eq!(reason, "not met: 1m since the last trigger < 3m");

        // Every 3000 records, windows of 1000.
        p.when = schedule(Metric::Records, 3000.0);
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        assert_eq!(run(&mut engine, &[0.5; 6]), [N, N, T, N, N, T]);

        // An ensemble: drift, or else every 4 minutes; a drift trigger restarts the schedule.
        p.when = Rule::Any(vec![
            ks_below("amount", 0.01),
            schedule(Metric::ElapsedSeconds, 240.0),
        ]);
        let mut engine = Engine::new(vec![model()], vec![p]);
        let outcomes = run(&mut engine, &[0.5, 0.5, 0.001, 0.5, 0.5, 0.5, 0.5, 0.5]);
        assert_eq!(outcomes, [N, N, T, N, N, N, T, N]);
    }

    #[test]
    fn cron_schedules_are_due_once_a_time_passed_since_the_last_trigger() {
        // "At minute 0 and 30 of every hour"; windows one minute apart starting at 00:00 UTC
        // on 1 January 1970, so the first time after the first window is 00:30.
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.when = Rule::Signal(Signal {
            source: Source::Cron(CronSchedule::parse("0,30 * * * *").unwrap()),
            metric: Metric::Due,
            criterion: Criterion::AtLeast { threshold: 1.0 },
        });
        let mut engine = Engine::new(vec![model()], vec![p.clone()]);
        let outcomes = run(&mut engine, &[0.5; 95]);
        let triggered: Vec<usize> = (0..outcomes.len()).filter(|i| outcomes[*i] == T).collect();
        assert_eq!(triggered, [30, 60, 90]);
        let report = report(0.5);
        let facts = |index: u64| WindowFacts {
            stream: "payments",
            index,
            records: 1000,
            at_ms: index as i64 * MINUTE,
            report: &report,
        };
        assert_eq!(
            engine.evaluate(&facts(95))[0].reason,
            "not met: cron \"0,30 * * * *\" is next due at 1970-01-01T02:00:00Z (UTC)"
        );

        // A cooldown holds a due schedule back; it fires at the first window after it.
        p.cooldown = Duration::from_secs(45 * 60);
        p.when = Rule::Any(vec![
            ks_below("amount", 0.01),
            Rule::Signal(Signal {
                source: Source::Cron(CronSchedule::parse("0 * * * *").unwrap()),
                metric: Metric::Due,
                criterion: Criterion::AtLeast { threshold: 1.0 },
            }),
        ]);
        let mut engine = Engine::new(vec![model()], vec![p]);
        let mut p_values = vec![0.5; 80];
        p_values[20] = 0.001; // a drift trigger at 00:20
        let outcomes = run(&mut engine, &p_values);
        assert_eq!(outcomes[20], T);
        // 01:00 is due, but within 45 minutes of 00:20: suppressed until 01:05.
        assert_eq!(outcomes[60..66], [C, C, C, C, C, T]);
        assert_eq!(outcomes.iter().filter(|o| **o == T).count(), 2);
        let reason = engine.evaluate(&facts(125))[0].reason.clone();
        assert_eq!(
            reason,
            "cron \"0 * * * *\" was due at 1970-01-01T02:00:00Z (UTC), after the period began \
             at 1970-01-01T01:05:00Z in this window"
        );
    }

    #[test]
    fn regret_accumulates_until_it_reaches_the_cost_of_a_run() {
        use crate::policy::spec::{Regret, RegretMeasure, RetrainCost};
        let regret = |measure, cost| {
            Rule::Signal(Signal {
                source: Source::Regret(Regret { measure, cost }),
                metric: Metric::Regret,
                criterion: Criterion::AtLeast { threshold: 0.0 },
            })
        };
        // Drifted records × seconds since the drift began, windows of 1000 records a minute
        // apart: drift from window 2 (regret 0), 2000 × 60 s, 2000 × 120 s (window 4 is clean
        // but the drift is not over), 3000 × 180 s = 540000 >= 500000 at window 5.
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.when = regret(RegretMeasure::DriftedRecords, RetrainCost::Fixed(500_000.0));
        let mut engine = Engine::new(vec![model()], vec![p]);
        let outcomes = run(&mut engine, &[0.5, 0.5, 0.01, 0.01, 0.5, 0.01, 0.5, 0.5]);
        assert_eq!(outcomes, [N, N, N, N, N, T, N, N]);
        let drifted = report(0.01);
        let decision = &engine.evaluate(&WindowFacts {
            stream: "payments",
            index: 8,
            records: 1000,
            at_ms: 8 * MINUTE,
            report: &drifted,
        })[0];
        assert_eq!(
            decision.reason,
            "not met: regret: 1000 drifted records × 0s since the drift began = 0 < cost 5.00e5"
        );

        // Errors × seconds since the last trigger against a cost forecast from run durations:
        // 10 per run second × 60 s before any run, then × the mean of the recorded runs.
        let mut p = policy(WindowRule::Consecutive { k: 1 });
        p.when = regret(
            RegretMeasure::Errors,
            RetrainCost::Forecast {
                per_run_second: 10.0,
                initial_run_seconds: 60.0,
                over: 2,
            },
        );
        let mut engine = Engine::new(vec![model()], vec![p]);
        let mut labelled = report(0.5);
        labelled["performance"] = serde_json::json!({"labelled": 100, "correct": 90});
        let mut outcomes = Vec::new();
        let mut reasons = Vec::new();
        for index in 0..8 {
            if index == 2 {
                // Runs of 1000 s, then 200 s and 1000 s: the mean of the last two is 600 s.
                engine.record_run("fraud", 1000.0);
                engine.record_run("fraud", 200.0);
                engine.record_run("fraud", 1000.0);
            }
            let decision = engine
                .evaluate(&WindowFacts {
                    stream: "payments",
                    index,
                    records: 1000,
                    at_ms: index as i64 * MINUTE,
                    report: &labelled,
                })
                .remove(0);
            outcomes.push(decision.outcome);
            reasons.push(decision.reason);
        }
        // Window 1: 20 errors × 60 s = 1200 >= 600. From window 1: 10·j errors × 60·j s
        // against 6000: 5400 at j = 3, 9600 at j = 4 (window 5).
        assert_eq!(outcomes, [N, T, N, N, N, T, N, N]);
        assert_eq!(
            reasons[1],
            "regret: 20 errors × 1m since the last trigger = 1200 >= cost 600 (10 per run \
             second × 1m, the assumed duration before any run) in this window"
        );
        assert_eq!(
            reasons[4],
            "not met: regret: 30 errors × 3m since the last trigger = 5400 < cost 6000 (10 per \
             run second × 10m, the mean of the last 2 run(s))"
        );
        // Run durations are checkpointed with the stream's state.
        assert_eq!(
            engine.stream_state("payments").run_seconds["fraud"].len(),
            3
        );
        assert!(engine.stream_state("elsewhere").run_seconds.is_empty());
    }
}
