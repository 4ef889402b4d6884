//! What the engine reads from a closed window's report, as a trait.
//!
//! The pipeline's typed window report implements [`Readings`]; the engine never sees the
//! report's shape, so a renamed report field is a compile error, not a signal that silently
//! reads nothing. The metric names of policy files map to report fields in one place, the
//! implementation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{Metric, Source};
use crate::window::OffsetRange;

/// What a window's report tells the policies.
pub trait Readings: std::fmt::Debug {
    /// The value of `metric` for a feature, the data set or the performance (`source`): a
    /// number, or 1/0 for a verdict. `None` when the report has none: the feature was not
    /// tested, the metric does not apply to its kind, there were no labelled records, or the
    /// value is not finite. Other sources (schedules, regret, detectors) are the engine's own
    /// and read `None` here.
    fn value(&self, source: &Source, metric: Metric) -> Option<f64>;

    /// [`value`](Self::value) for a feature or the data set compared with the data the stream
    /// saw since its models' last retraining run instead of with the baseline; `None` when the
    /// window was not compared with it (the stream does not keep that data, or nothing was seen
    /// since the retrain yet).
    fn since_retrain(&self, source: &Source, metric: Metric) -> Option<f64>;

    /// Whether the feature's drift was detected in the window.
    fn drifted(&self, feature: &str) -> bool;

    /// Wrong predictions in the window: labelled records whose prediction is not the label.
    fn errors(&self) -> u64;

    /// The records the window holds.
    fn span(&self) -> WindowSpan;
}

/// The records a decision is about: the window's time span and offsets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowSpan {
    /// Start, RFC 3339, when the records carry times.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// First and last offset per `topic/partition`.
    pub offsets: BTreeMap<String, OffsetRange>,
}

/// The report as JSON, read by the pointers of [`Metric::pointer`]: how tests hand the engine a
/// partial report, and the yardstick the typed report's readings are checked against.
#[cfg(test)]
mod json {
    use serde_json::Value;

    use super::{Metric, Readings, Source, WindowSpan};

    fn feature<'r>(report: &'r Value, name: &str) -> Option<&'r Value> {
        report
            .get("features")?
            .as_array()?
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
    }

    impl Readings for Value {
        fn value(&self, source: &Source, metric: Metric) -> Option<f64> {
            read(self, source, metric)
        }

        fn since_retrain(&self, source: &Source, metric: Metric) -> Option<f64> {
            read(self.get("since_retrain")?, source, metric)
        }

        fn drifted(&self, name: &str) -> bool {
            feature(self, name)
                .and_then(|f| f.pointer("/drift/detected"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        }

        fn errors(&self) -> u64 {
            let count = |name: &str| {
                self.pointer(&format!("/performance/{name}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            count("labelled").saturating_sub(count("correct"))
        }

        fn span(&self) -> WindowSpan {
            let window = &self["window"];
            WindowSpan {
                start: window["start"].as_str().map(str::to_string),
                end: window["end"].as_str().map(str::to_string),
                offsets: serde_json::from_value(window["offsets"].clone()).unwrap_or_default(),
            }
        }
    }

    /// A metric of a report's JSON, by the metric's pointer.
    fn read(report: &Value, source: &Source, metric: Metric) -> Option<f64> {
        let base = match source {
            Source::Feature(name) => feature(report, name)?,
            Source::Dataset => report.get("dataset")?,
            Source::Performance => report.get("performance")?,
            Source::Output(name) => (report.get("outputs")?.as_array()?.iter())
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name))?,
            Source::Multivariate(method) => report.get("multivariate")?.get(method.as_str())?,
            _ => return None,
        };
        let pointer = match (source, metric) {
            (Source::Dataset, Metric::Detected) => "/detected",
            (Source::Multivariate(_), Metric::Detected) => "/drift",
            (Source::Multivariate(_), Metric::PValue) => "/p_value",
            (_, metric) => metric.pointer(),
        };
        match base.pointer(pointer)? {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            value => value.as_f64(),
        }
    }
}
