//! The parts of a stored window report the pages draw, read leniently: a field an older
//! report lacks (say, `histogram`) is simply absent, never an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A window report as the pages read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Report {
    /// The stream.
    pub stream: String,
    /// Which records the window held.
    pub window: Meta,
    /// Prediction quality.
    pub performance: Performance,
    /// The reference side.
    pub reference: Side,
    /// The current side.
    pub current: Side,
    /// The settings the decisions used.
    pub settings: Settings,
    /// One entry per feature.
    pub features: Vec<Feature>,
    /// The model outputs (`prediction`, `label`) against the baseline's, read like features.
    pub outputs: Vec<Feature>,
    /// The multivariate tests, by method (`mmd`, `pca`).
    pub multivariate: BTreeMap<String, Joint>,
    /// The dataset-level verdict.
    pub dataset: Dataset,
    /// The window against the data since the last retrain, when the stream keeps it.
    pub since_retrain: Option<SinceRetrain>,
}

/// A window against the data its stream saw since the last retrain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SinceRetrain {
    /// Records of the windows since the retrain.
    pub records: u64,
    /// Windows since the retrain.
    pub windows: u64,
    /// One entry per feature.
    pub features: Vec<Feature>,
    /// The dataset-level verdict.
    pub dataset: Dataset,
}

impl Report {
    /// Reads a report document; `None` when it is not one.
    pub fn from_text(text: &str) -> Option<Report> {
        serde_json::from_str(text).ok()
    }

    /// The features whose drift was detected.
    pub fn drifted(&self) -> impl Iterator<Item = &Feature> {
        self.features.iter().filter(|f| f.drift.detected)
    }

    /// Records per second of event time, when the window has a time span.
    pub fn records_per_second(&self) -> Option<f64> {
        records_per_second(std::slice::from_ref(self))
    }
}

/// Records per second of event time over consecutive windows, newest first: their records
/// over the time from the oldest one's start to the newest one's end.
pub fn records_per_second(reports: &[Report]) -> Option<f64> {
    let end = reports.first()?.window.end.as_deref().and_then(epoch_ms)?;
    let start = reports.last()?.window.start.as_deref().and_then(epoch_ms)?;
    let records: u64 = reports.iter().map(|r| r.window.records).sum();
    (end > start).then(|| records as f64 * 1000.0 / (end - start) as f64)
}

/// A multivariate test's outcome.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Joint {
    /// MMD², or the mean reconstruction error.
    pub statistic: f64,
    /// The p-value under "no drift".
    pub p_value: f64,
    /// The statistic's critical value.
    pub threshold: f64,
    /// Whether drift was detected.
    pub drift: bool,
    /// Columns tested (numeric features and categorical levels).
    pub features: u64,
    /// Reference rows used.
    pub reference_rows: u64,
    /// Window rows used.
    pub current_rows: u64,
}

/// A window's metadata.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Records whose time was before the window's start.
    pub late_records: u64,
    /// Start, RFC 3339.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// Offsets per `topic/partition`.
    pub offsets: BTreeMap<String, Offsets>,
}

/// The first and last offset a window holds of one partition.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Offsets {
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
}

/// Prediction quality in a window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Performance {
    /// Records with both a prediction and a label.
    pub labelled: u64,
    /// Share predicted right.
    pub accuracy: Option<f64>,
    /// Mean absolute error, over numeric labels.
    pub mae: Option<f64>,
    /// Root mean squared error, over numeric labels.
    pub rmse: Option<f64>,
}

/// One side of the comparison.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Side {
    /// Where it came from.
    pub source: Option<String>,
    /// The baseline's id, for a baseline.
    pub baseline_id: Option<String>,
    /// Records read.
    pub records: u64,
}

/// The decision settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Family-wise significance level.
    pub alpha: f64,
    /// Numeric method.
    pub numeric_method: String,
    /// Categorical method.
    pub categorical_method: String,
    /// Multiple-testing correction.
    pub correction: String,
}

/// One feature's results.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Feature {
    /// Name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// `ok` or `insufficient_data`.
    pub status: String,
    /// Why it was not tested.
    pub reason: Option<String>,
    /// Usable reference values.
    pub n_reference: u64,
    /// Usable current values.
    pub n_current: u64,
    /// Missing current values.
    pub missing_current: u64,
    /// NaN or infinite current values.
    pub nan_current: u64,
    /// Current values of the wrong type.
    pub invalid_current: u64,
    /// Every statistic, as the report has them (read when shown: most pages need none).
    pub tests: Option<Box<RawValue>>,
    /// Both sides' distributions (read when shown).
    pub histogram: Option<Box<RawValue>>,
    /// The decision.
    pub drift: Outcome,
}

impl Feature {
    /// How close the feature is to its threshold: 1 at the threshold, above it past it. For
    /// p-values `log p / log threshold`, for distances `score / threshold`.
    pub fn evidence(&self) -> Option<f64> {
        let score = self.drift.score?;
        let threshold = self.drift.threshold?;
        let ratio = if self.drift.is_test() {
            if threshold <= 0.0 || threshold >= 1.0 {
                return None;
            }
            score.max(1e-300).ln() / threshold.ln()
        } else if threshold > 0.0 {
            score / threshold
        } else {
            return None;
        };
        ratio.is_finite().then_some(ratio.max(0.0))
    }

    /// Both sides' distributions, when the report has them.
    pub fn histogram(&self) -> Option<Histogram> {
        serde_json::from_str(self.histogram.as_ref()?.get()).ok()
    }

    /// The named statistics with their values, e.g. `ks.statistic`, for a table.
    pub fn statistics(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let tests = self
            .tests
            .as_ref()
            .and_then(|t| serde_json::from_str(t.get()).ok());
        if let Some(serde_json::Value::Object(tests)) = tests {
            for (test, fields) in &tests {
                if let serde_json::Value::Object(fields) = fields {
                    for (field, value) in fields {
                        if let Some(value) = value.as_f64() {
                            out.push((format!("{test}.{field}"), value));
                        }
                    }
                }
            }
        }
        out
    }
}

/// A feature's distribution on both sides over the same bins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Histogram {
    /// Numeric: the bin edges.
    pub edges: Option<Vec<f64>>,
    /// Categorical: the slots' labels.
    pub labels: Option<Vec<String>>,
    /// Reference counts per slot.
    pub reference: Vec<u64>,
    /// Current counts per slot.
    pub current: Vec<u64>,
}

/// A feature's decision.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Outcome {
    /// The method decided on.
    pub method: String,
    /// The p-value (tests) or the distance.
    pub score: Option<f64>,
    /// What the score is compared with.
    pub threshold: Option<f64>,
    /// Drift detected.
    pub detected: bool,
    /// The p-value under "no drift".
    pub p_value: Option<f64>,
}

impl Outcome {
    /// Whether the score is a p-value (small means drift) rather than a distance.
    pub fn is_test(&self) -> bool {
        matches!(self.method.as_str(), "ks" | "chi2")
    }
}

/// The dataset-level verdict.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Dataset {
    /// Features tested.
    pub features: usize,
    /// Features with drift.
    pub drifted: usize,
    /// Dataset drift detected.
    pub detected: bool,
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn epoch_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}
