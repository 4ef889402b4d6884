//! The latest window's drift as gauges: per feature, per model output (`prediction`,
//! `label`), per multivariate test, and the data set's verdict.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{escape, family};
use crate::drift::report::DriftOutcome;
use crate::pipeline::WindowReport;

/// The latest window's p-value per feature (tests: ks, chi2, and permutation tests), by method.
pub const FEATURE_DRIFT_P_VALUE: &str = "driftgate_feature_drift_p_value";
/// The latest window's distance per feature (wasserstein, psi, jensen_shannon, hellinger), by
/// method.
pub const FEATURE_DRIFT_DISTANCE: &str = "driftgate_feature_drift_distance";
/// Whether the latest window's drift of a feature was detected (1) or not (0).
pub const FEATURE_DRIFT_DETECTED: &str = "driftgate_feature_drift_detected";
/// The latest window's p-value per model output (`prediction`, `label`), by method.
pub const OUTPUT_DRIFT_P_VALUE: &str = "driftgate_output_drift_p_value";
/// The latest window's distance per model output, by method.
pub const OUTPUT_DRIFT_DISTANCE: &str = "driftgate_output_drift_distance";
/// Whether the latest window's drift of a model output was detected (1) or not (0).
pub const OUTPUT_DRIFT_DETECTED: &str = "driftgate_output_drift_detected";
/// The latest window's multivariate statistic (MMD², mean reconstruction error), by method.
pub const MULTIVARIATE_DRIFT_STATISTIC: &str = "driftgate_multivariate_drift_statistic";
/// The latest window's multivariate p-value, by method.
pub const MULTIVARIATE_DRIFT_P_VALUE: &str = "driftgate_multivariate_drift_p_value";
/// Whether the latest window's multivariate test detected drift (1) or not (0), by method.
pub const MULTIVARIATE_DRIFT_DETECTED: &str = "driftgate_multivariate_drift_detected";
/// Whether the latest window of a stream showed dataset drift (1) or not (0).
pub const DATASET_DRIFT: &str = "driftgate_dataset_drift";

/// One feature's (or output's) drift in the latest window.
#[derive(Default)]
struct FeatureDrift {
    method: String,
    p_value: Option<f64>,
    distance: Option<f64>,
    detected: bool,
}

impl FeatureDrift {
    /// From a feature's decision in a window report; values that are not finite are left out.
    fn of(drift: &DriftOutcome) -> FeatureDrift {
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        FeatureDrift {
            p_value: finite(drift.p_value),
            // A test's score is its p-value; the other methods' score is a distance.
            distance: finite(drift.score).filter(|_| !drift.method.is_test()),
            detected: drift.detected,
            method: drift.method.as_str().to_string(),
        }
    }
}

/// One multivariate test in the latest window.
struct JointDrift {
    statistic: f64,
    p_value: f64,
    detected: bool,
}

/// The drift gauges of every stream.
#[derive(Default)]
pub(super) struct DriftGauges {
    /// Per (stream, feature).
    features: BTreeMap<(String, String), FeatureDrift>,
    /// Per (stream, output).
    outputs: BTreeMap<(String, String), FeatureDrift>,
    /// Per (stream, method).
    multivariate: BTreeMap<(String, &'static str), JointDrift>,
    dataset: BTreeMap<String, bool>,
}

/// The names, help subject and label of a family group.
struct Group {
    p_value: &'static str,
    distance: &'static str,
    detected: &'static str,
    /// "feature" or "model output".
    what: &'static str,
    /// The label naming the feature or output.
    label: &'static str,
}

const FEATURES: Group = Group {
    p_value: FEATURE_DRIFT_P_VALUE,
    distance: FEATURE_DRIFT_DISTANCE,
    detected: FEATURE_DRIFT_DETECTED,
    what: "feature",
    label: "feature",
};

const OUTPUTS: Group = Group {
    p_value: OUTPUT_DRIFT_P_VALUE,
    distance: OUTPUT_DRIFT_DISTANCE,
    detected: OUTPUT_DRIFT_DETECTED,
    what: "model output",
    label: "output",
};

impl DriftGauges {
    /// Sets the gauges of `stream` from its latest window's report. A multivariate test or an
    /// output missing from it (too few rows) keeps its last value.
    pub(super) fn record(&mut self, stream: &str, report: &WindowReport) {
        self.dataset
            .insert(stream.to_string(), report.drift.dataset.detected);
        let key = |name: &str| (stream.to_string(), name.to_string());
        for feature in &report.drift.features {
            (self.features).insert(key(&feature.name), FeatureDrift::of(&feature.drift));
        }
        for output in &report.outputs {
            (self.outputs).insert(key(&output.name), FeatureDrift::of(&output.drift));
        }
        for (method, outcome) in &report.multivariate {
            let gauge = JointDrift {
                statistic: outcome.statistic,
                p_value: outcome.p_value,
                detected: outcome.drift,
            };
            (self.multivariate).insert((stream.to_string(), method.as_str()), gauge);
        }
    }

    /// The families, in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        render_group(out, &FEATURES, &self.features);
        render_group(out, &OUTPUTS, &self.outputs);
        self.render_multivariate(out);
        family(
            out,
            DATASET_DRIFT,
            "gauge",
            "Latest window showed dataset drift.",
        );
        for (stream, drift) in &self.dataset {
            let stream = escape(stream);
            let _ = writeln!(
                out,
                "{DATASET_DRIFT}{{stream=\"{stream}\"}} {}",
                u8::from(*drift)
            );
        }
    }

    fn render_multivariate(&self, out: &mut String) {
        let families: [(&str, &str, JointMeasure); 3] = [
            (MULTIVARIATE_DRIFT_STATISTIC, "statistic", |d| d.statistic),
            (MULTIVARIATE_DRIFT_P_VALUE, "p-value", |d| d.p_value),
            (
                MULTIVARIATE_DRIFT_DETECTED,
                "drift detected (1) or not (0)",
                |d| f64::from(u8::from(d.detected)),
            ),
        ];
        for (name, what, value) in families {
            let help = format!("Latest window's multivariate test {what}, by method.");
            family(out, name, "gauge", &help);
            for ((stream, method), d) in &self.multivariate {
                let (stream, value) = (escape(stream), value(d));
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{stream}\",method=\"{method}\"}} {value}"
                );
            }
        }
    }
}

/// One number of a multivariate test's outcome.
type JointMeasure = fn(&JointDrift) -> f64;

/// One number of a feature's drift, when the method has it.
type Measure = fn(&FeatureDrift) -> Option<f64>;

/// A group's families: p-values, distances and detection, each unambiguous.
fn render_group(out: &mut String, group: &Group, drift: &BTreeMap<(String, String), FeatureDrift>) {
    let labels = |stream: &str, name: &str| {
        format!(
            "stream=\"{}\",{}=\"{}\"",
            escape(stream),
            group.label,
            escape(name)
        )
    };
    let measures: [(&str, &str, Measure); 2] = [
        (group.p_value, "p-value", |d| d.p_value),
        (group.distance, "distance", |d| d.distance),
    ];
    for (name, what, measure) in measures {
        let help = format!("Latest window's drift {what} per {}.", group.what);
        family(out, name, "gauge", &help);
        for ((stream, feature), d) in drift {
            if let Some(value) = measure(d) {
                let (labels, method) = (labels(stream, feature), escape(&d.method));
                let _ = writeln!(out, "{name}{{{labels},method=\"{method}\"}} {value}");
            }
        }
    }
    let help = format!("Latest window's drift of the {} was detected.", group.what);
    family(out, group.detected, "gauge", &help);
    for ((stream, feature), d) in drift {
        let labels = labels(stream, feature);
        let _ = writeln!(
            out,
            "{}{{{labels}}} {}",
            group.detected,
            u8::from(d.detected)
        );
    }
}
