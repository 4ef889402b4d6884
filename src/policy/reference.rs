//! Which data a signal's number compares the window with: the training data (the baseline) or
//! the data since the last retrain.

use serde::Serialize;

/// What a window is compared with, for the numbers of its features and its data set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The stream's baseline: the data the model was trained on (the default).
    #[default]
    Training,
    /// The data the stream saw since its models' last succeeded retraining run (Modyn's
    /// "since the last trigger"), when the stream keeps it (`drift.since_retrain`).
    SinceRetrain,
}

impl Reference {
    /// Whether this is the default reference.
    pub fn is_training(&self) -> bool {
        *self == Reference::Training
    }

    /// The reference of a policy file's name.
    pub fn parse(name: &str) -> Option<Reference> {
        match name {
            "training" => Some(Reference::Training),
            "since_retrain" => Some(Reference::SinceRetrain),
            _ => None,
        }
    }
}
