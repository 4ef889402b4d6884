//! One policy judging one window: steps 1 and 3–5 of the order in [`engine`](super).

use super::signals::{evaluate_rule, Schedule};
use super::words::human;
use super::WindowFacts;
use crate::policy::decision::{Decision, Outcome};
use crate::policy::spec::{InFlight, Model, Policy};
use crate::policy::state::PolicyState;

/// The policy's decision on the window; `busy` says why a run of the model is in flight, `runs`
/// holds the model's recent run durations.
pub(super) fn judge(
    policy: &Policy,
    model: &Model,
    state: &mut PolicyState,
    busy: Option<&str>,
    runs: Option<&[f64]>,
    window: &WindowFacts<'_>,
) -> Decision {
    let mut decision = blank(policy, model, window);
    if window.records < policy.min_records {
        decision.reason = format!(
            "window {} has {} records; this policy judges windows of at least {}",
            window.index, window.records, policy.min_records
        );
        return decision;
    }
    let drifted = !decision.drifted_features.is_empty();
    state.count_window(
        window.at_ms,
        window.records,
        drifted,
        window.report.errors(),
    );
    let schedule = Schedule::of(state, window.at_ms, runs.unwrap_or_default());
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
    if !policy.windows.holds(state.recent.make_contiguous()) {
        decision.reason = not_yet(policy, state, &decision, met);
        return decision;
    }
    let would = format!(
        "{} {}",
        texts(&decision, true).join("; "),
        policy.windows.describe()
    );
    let (outcome, reason) = gate(policy, state, busy, window.at_ms, would);
    if outcome == Outcome::Triggered {
        state.triggered(window.at_ms);
    }
    (decision.outcome, decision.reason) = (outcome, reason);
    // Keep only the trigger times the cooldown or the budget can still look at.
    let horizon = policy
        .budget
        .map_or(0, |b| b.per.as_millis() as i64)
        .max(policy.cooldown.as_millis() as i64);
    state.forget_triggers(window.at_ms, horizon);
    decision
}

/// A `not_triggered` decision about this window, with no reason yet.
fn blank(policy: &Policy, model: &Model, window: &WindowFacts<'_>) -> Decision {
    Decision {
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
        drifted_features: model
            .features
            .iter()
            .filter(|name| window.report.drifted(name))
            .cloned()
            .collect(),
        signals: Vec::new(),
    }
}

/// The texts of the signals that hit (`hit`) or missed.
fn texts(decision: &Decision, hit: bool) -> Vec<&str> {
    decision
        .signals
        .iter()
        .filter(|s| s.hit == hit)
        .map(|s| s.text.as_str())
        .collect()
}

/// Why the window rule does not hold yet: met so far in a run of windows, or not met.
fn not_yet(policy: &Policy, state: &PolicyState, decision: &Decision, met: bool) -> String {
    if met {
        let so_far = state.recent.iter().rev().take_while(|m| **m).count();
        format!(
            "{}; met in {so_far} window(s) so far, needs to be met {}",
            texts(decision, true).join("; "),
            policy.windows.describe()
        )
    } else {
        format!("not met: {}", texts(decision, false).join("; "))
    }
}

/// A would-be trigger, suppressed while a run is in flight, within the cooldown or beyond the
/// budget (in that order), or triggered; with the reason.
fn gate(
    policy: &Policy,
    state: &PolicyState,
    busy: Option<&str>,
    at_ms: i64,
    would: String,
) -> (Outcome, String) {
    let cooldown_ms = policy.cooldown.as_millis() as i64;
    let last = state.triggers.back().copied();
    if let Some(busy) = busy.filter(|_| policy.in_flight == InFlight::Suppress) {
        return (Outcome::SuppressedInFlight, format!("{would}, but {busy}"));
    }
    if let Some(last) = last.filter(|last| at_ms - last < cooldown_ms) {
        let reason = format!(
            "{would}, but the last trigger was {} ago and the cooldown is {}",
            human(at_ms - last),
            human(cooldown_ms)
        );
        return (Outcome::SuppressedCooldown, reason);
    }
    if let Some(budget) = policy.budget {
        let per = budget.per.as_millis() as i64;
        let recent = state.triggers.iter().filter(|t| at_ms - **t < per).count();
        if recent >= budget.max_runs as usize {
            let reason = format!(
                "{would}, but the budget of {} run(s) per {} is spent",
                budget.max_runs,
                human(per)
            );
            return (Outcome::SuppressedBudget, reason);
        }
    }
    (Outcome::Triggered, would)
}
