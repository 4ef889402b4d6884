//! Trigger policies: when a model's windows call for retraining.
//!
//! [`spec`] holds validated models and policies (parsed from the service file and the policy
//! files it includes, see [`crate::config`]); [`engine`] evaluates them on every closed window
//! and explains each decision, reading the window's report through [`readings`]. Pure: no clock (times come from the windows), no I/O.

pub mod decision;
pub mod detectors;
pub mod engine;
pub mod loss;
pub mod readings;
pub mod reference;
pub mod series;
pub mod spec;
pub mod state;

pub use decision::{Decision, Outcome, SignalReading};
pub use engine::{Engine, WindowFacts};
pub use loss::Loss;
pub use readings::{Readings, WindowSpan};
pub use reference::Reference;
pub use spec::{
    Budget, Criterion, CronSchedule, InFlight, Metric, Model, Policy, Regret, RegretMeasure,
    RetrainCost, Rule, Side, Signal, Source, WindowRule,
};
pub use state::{EngineState, PolicyState};
