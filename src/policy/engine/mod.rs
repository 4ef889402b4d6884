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
//!
//! Layout: `judge.rs` (steps 1 and 3–5 for one policy), `signals.rs` (step 2: values,
//! thresholds, sentences), `words.rs` (numbers and times in sentences); the decision and state
//! types live in [`decision`](super::decision) and [`state`](super::state).

mod judge;
mod signals;
#[cfg(test)]
mod tests;
pub(crate) mod words;

use std::collections::BTreeSet;

use crate::decode::PredictionError;

use super::detectors::{Detector, DetectorParams};
use super::loss::Loss;
use super::readings::Readings;

pub use super::decision::{Decision, Outcome, SignalReading};
use super::spec::{Model, Policy, Source};
pub use super::state::{EngineState, PolicyState};
pub use signals::{mean_std, quantile};

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

/// Run durations kept per model for cost forecasts.
const RUNS_KEPT: usize = 100;

/// Models and policies with their state.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    models: Vec<Model>,
    policies: Vec<Policy>,
    state: EngineState,
    in_flight: BTreeSet<String>,
    /// The policies' error-stream detectors (policy, series, parameters, loss), derived from
    /// the policies once rather than per record.
    error_detectors: Vec<(String, String, DetectorParams, Loss)>,
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
                        Source::Detector(params, loss) => {
                            Some((policy.name.clone(), signal.series(), params, loss))
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

    /// Feeds one labelled record's prediction error to every error-stream detector of the
    /// stream's policies, scored by each detector's loss (a detector whose loss does not apply
    /// to the record, such as an absolute loss on a string label, does not see it).
    pub fn observe_error(&mut self, error: PredictionError) {
        for (policy, series, params, loss) in &self.error_detectors {
            let Some(value) = loss.of(error) else {
                continue;
            };
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
            if detector.update(value) {
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
            decisions.push(judge::judge(
                policy,
                model,
                state,
                busy.as_deref(),
                runs,
                window,
            ));
        }
        decisions
    }
}
