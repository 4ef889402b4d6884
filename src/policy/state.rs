//! The policies' memory between windows: plain data, checkpointed with the stream's window so
//! a restart continues exactly where it stopped.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::detectors::Detector;

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

impl PolicyState {
    /// Counts a judged window into the current period (and into the drift, when the model's
    /// features drifted in it).
    pub(crate) fn count_window(&mut self, at_ms: i64, records: u64, drifted: bool, errors: u64) {
        self.period_start_ms.get_or_insert(at_ms);
        self.period_records += records;
        if drifted {
            self.drift_start_ms.get_or_insert(at_ms);
            self.drifted_records += records;
        }
        self.period_errors += errors;
    }

    /// A trigger at `at_ms`: a new period begins and the next trigger needs its own windows.
    pub(crate) fn triggered(&mut self, at_ms: i64) {
        self.triggers.push_back(at_ms);
        self.recent.clear();
        self.period_start_ms = Some(at_ms);
        self.period_records = 0;
        self.drift_start_ms = None;
        self.drifted_records = 0;
        self.period_errors = 0;
    }

    /// Forgets the trigger times older than `horizon_ms` before `at_ms` (keeping the last one).
    pub(crate) fn forget_triggers(&mut self, at_ms: i64, horizon_ms: i64) {
        while self.triggers.len() > 1
            && self
                .triggers
                .front()
                .is_some_and(|t| at_ms - t >= horizon_ms)
        {
            self.triggers.pop_front();
        }
    }
}
