//! A stream's settings as the pipeline needs them: what `config` validates and hands down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::baseline::Baseline;
use crate::decode::Schema;
use crate::drift::DriftSettings;
use crate::window::WindowSpec;

/// A validated stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Unique name.
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// Where the baseline was loaded from.
    pub baseline_path: PathBuf,
    /// The loaded, checked baseline.
    pub baseline: Arc<Baseline>,
    /// The monitored features.
    pub schema: Schema,
    /// How windows are cut.
    pub window: WindowSpec,
    /// Idle grace for duration windows.
    pub grace: Duration,
    /// Dead-letter topic, if any.
    pub dead_letter_topic: Option<String>,
    /// Drift decision settings.
    pub drift: DriftSettings,
    /// Keep windows' records for export; `None`: when a model of the stream has a DAG.
    pub keep_records: Option<bool>,
    /// Values per numeric feature a window holds before folding them into a summary; `None`:
    /// where the summary is the smaller; `Some(0)`: never.
    pub summarise_after: Option<u64>,
    /// Multivariate tests of the windows' numeric features together.
    pub multivariate: super::MultivariateSettings,
    /// Compare every window also with the data since the last retrain, keeping this many
    /// values per numeric feature of it; `None`: with the baseline only.
    pub since_retrain: Option<usize>,
}
