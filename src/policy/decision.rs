//! What evaluating a policy on a window yields: a decision that explains itself.

use serde::{Deserialize, Serialize};

use super::readings::WindowSpan;

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
