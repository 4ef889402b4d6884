//! The typed window report and how it is made; what policies read from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::baseline::Baseline;
use crate::drift::multivariate::{Multivariate, MultivariateOutcome};
use crate::drift::{self, DataInfo, DatasetSummary, DriftReport, FeatureReport, Tests};
use crate::policy::{Metric, Readings, Source, WindowSpan};
use crate::window::{ClosedWindow, OffsetRange};

use super::since_retrain::SinceRetrainReport;

/// A closed window's report: the drift report plus the window's metadata and prediction
/// quality. Owned and typed inside the process; serialised (its JSON shape is the contract in
/// the README) only where it leaves: the store's row, the API, the CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowReport {
    /// The stream.
    pub stream: String,
    /// Which records the window holds.
    pub window: WindowMeta,
    /// How well the model predicted, from records carrying `prediction` and `label`.
    pub performance: Performance,
    /// The drift of the model's outputs (`prediction`, `label`) against the baseline's
    /// profiles of them, each a feature report; absent when the baseline has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<FeatureReport>,
    /// The multivariate tests of the numeric features together, by method (`mmd`, `pca`);
    /// absent when the stream runs none or the window has too few complete rows.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub multivariate: BTreeMap<Multivariate, MultivariateOutcome>,
    /// The drift report, as `driftgate drift` prints it.
    #[serde(flatten)]
    pub drift: DriftReport,
    /// The window's features compared with the data its stream saw since its models' last
    /// retrain (`drift.since_retrain`); absent when the stream does not keep that data or saw
    /// none since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_retrain: Option<SinceRetrainReport>,
}

/// Prediction quality in a window, from the records that carry both `prediction` and `label`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Performance {
    /// Records with both.
    pub labelled: u64,
    /// Records whose prediction equals the label.
    pub correct: u64,
    /// `correct / labelled`; null without labelled records.
    pub accuracy: Option<f64>,
    /// `1 - accuracy`; null without labelled records.
    pub error_rate: Option<f64>,
    /// Labelled records whose prediction and label are both numbers (regression).
    pub numeric_labelled: u64,
    /// Their mean absolute error, `mean |prediction - label|`; null without them.
    pub mae: Option<f64>,
    /// Their root mean squared error, `sqrt(mean (prediction - label)²)`; null without them.
    pub rmse: Option<f64>,
}

/// A window's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowMeta {
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
    pub offsets: BTreeMap<String, OffsetRange>,
}

/// Everything a window's report is made from besides the window: the stream, its baseline and
/// the drift settings.
pub(super) struct ReportMaker {
    pub(super) stream: String,
    pub(super) topic: String,
    pub(super) baseline: Arc<Baseline>,
    pub(super) baseline_source: String,
    pub(super) settings: drift::DriftSettings,
    /// The stream's multivariate tests, if any.
    pub(super) multivariate: Option<Arc<super::MultivariatePlan>>,
    /// The data since the last retrain, when the stream keeps it and saw some.
    pub(super) since_retrain: Option<super::since_retrain::Snapshot>,
    /// Inline reports spread the features over the cores; background reports keep to their
    /// thread, beside the one decoding.
    pub(super) threads: drift::Threads,
}

impl ReportMaker {
    /// The window's report document: its drift statistics against the baseline (the pure,
    /// expensive part), its metadata and its prediction quality.
    ///
    /// A window whose values were folded into summaries on an earlier baseline's layouts (a
    /// rotation while it was open) is compared with that baseline: its values are not there
    /// to compare with the new one.
    pub(super) fn report(&self, window: &ClosedWindow) -> WindowReport {
        let baseline = match (&window.summaries, &window.layouts) {
            (Some(_), Some(layouts)) => layouts.baseline(),
            _ => &self.baseline,
        };
        let source = if baseline.id == self.baseline.id {
            self.baseline_source.clone()
        } else {
            format!("baseline {}", baseline.id)
        };
        let reference = DataInfo {
            source: Some(source),
            baseline_id: Some(baseline.id.clone()),
            records: baseline.source.records,
            invalid_lines: baseline.source.invalid_lines,
            unknown_fields: BTreeMap::new(),
        };
        let current = DataInfo {
            source: Some(self.topic.clone()),
            baseline_id: None,
            records: window.records,
            invalid_lines: 0,
            unknown_fields: window.data.unknown_fields.clone(),
        };
        let folded = window.summaries.as_ref().map(|summaries| drift::Folded {
            summaries,
            layouts: window.layouts.as_deref(),
        });
        let drift = drift::compare_window(
            self.threads,
            baseline,
            &window.data,
            folded,
            &self.settings,
            reference,
            current,
        );
        let accuracy =
            (window.labelled > 0).then(|| window.correct as f64 / window.labelled as f64);
        let outputs = super::outputs::outputs_drift(
            self.threads,
            baseline,
            &window.outputs,
            window.records,
            &self.settings,
        );
        let multivariate = (self.multivariate.as_ref())
            .map(|plan| plan.outcomes(window, &self.settings))
            .unwrap_or_default();
        let since_retrain = (self.since_retrain.as_ref())
            .and_then(|r| r.compare(window, &self.settings, self.threads, &self.topic));
        WindowReport {
            since_retrain,
            stream: self.stream.clone(),
            outputs,
            multivariate,
            performance: Performance {
                labelled: window.labelled,
                correct: window.correct,
                accuracy,
                error_rate: accuracy.map(|a| 1.0 - a),
                numeric_labelled: window.residuals.count,
                mae: window.residuals.mae(),
                rmse: window.residuals.rmse(),
            },
            window: WindowMeta {
                index: window.index,
                records: window.records,
                late_records: window.late_records,
                start: window.start_ms.map(rfc3339),
                end: window.end_ms.map(rfc3339),
                offsets: window.offsets.clone(),
            },
            drift,
        }
    }
}

impl WindowReport {
    /// The report of one feature, by name.
    pub fn feature(&self, name: &str) -> Option<&FeatureReport> {
        self.drift.features.iter().find(|f| f.name == name)
    }

    /// The features whose drift was detected, in report order.
    pub fn drifted_features(&self) -> impl Iterator<Item = &FeatureReport> {
        self.drift.features.iter().filter(|f| f.drift.detected)
    }

    /// The window's report as the JSON the store keeps and the API serves.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("reports serialise")
    }
}

impl Readings for WindowReport {
    fn value(&self, source: &Source, metric: Metric) -> Option<f64> {
        let value = match source {
            Source::Feature(_) | Source::Dataset => drift_value(&self.drift, source, metric),
            Source::Performance => performance_value(&self.performance, metric),
            Source::Output(name) => {
                let output = self.outputs.iter().find(|f| f.name == *name)?;
                feature_value(output, metric)
            }
            Source::Multivariate(method) => {
                let outcome = self.multivariate.get(method)?;
                match metric {
                    Metric::Detected => Some(f64::from(u8::from(outcome.drift))),
                    Metric::PValue => Some(outcome.p_value),
                    Metric::Statistic => Some(outcome.statistic),
                    _ => None,
                }
            }
            _ => None,
        };
        // JSON has no NaN or infinity: a statistic that is not finite reads as none.
        value.filter(|v| v.is_finite())
    }

    fn since_retrain(&self, source: &Source, metric: Metric) -> Option<f64> {
        let drift = &self.since_retrain.as_ref()?.drift;
        drift_value(drift, source, metric).filter(|v| v.is_finite())
    }

    fn drifted(&self, feature: &str) -> bool {
        self.feature(feature).is_some_and(|f| f.drift.detected)
    }

    fn errors(&self) -> u64 {
        self.performance
            .labelled
            .saturating_sub(self.performance.correct)
    }

    fn span(&self) -> WindowSpan {
        WindowSpan {
            start: self.window.start.clone(),
            end: self.window.end.clone(),
            offsets: self.window.offsets.clone(),
        }
    }
}

/// A feature's or the data set's value of a metric in a drift report (against the baseline or
/// against the data since the last retrain); `None` for other sources.
fn drift_value(drift: &DriftReport, source: &Source, metric: Metric) -> Option<f64> {
    match source {
        Source::Feature(name) => {
            feature_value(drift.features.iter().find(|f| f.name == *name)?, metric)
        }
        Source::Dataset => dataset_value(&drift.dataset, metric),
        _ => None,
    }
}

/// A verdict as a number.
fn flag(detected: bool) -> Option<f64> {
    Some(f64::from(u8::from(detected)))
}

/// A feature's value of a metric; `None` when the metric is not a feature's or not of its kind.
fn feature_value(feature: &FeatureReport, metric: Metric) -> Option<f64> {
    let drift = &feature.drift;
    let tests = feature.tests.as_ref();
    let numeric = match tests {
        Some(Tests::Numeric(t)) => Some(t),
        _ => None,
    };
    let categorical = match tests {
        Some(Tests::Categorical(t)) => Some(t),
        _ => None,
    };
    match metric {
        Metric::Detected => flag(drift.detected),
        Metric::Score => drift.score,
        Metric::PValue => drift.p_value,
        Metric::KsStatistic => numeric.map(|t| t.ks.statistic),
        Metric::KsPValue => numeric.map(|t| t.ks.p_value),
        Metric::Wasserstein => numeric.map(|t| t.wasserstein.distance),
        Metric::WassersteinNormed => numeric.map(|t| t.wasserstein.normed),
        Metric::Chi2Statistic => categorical.map(|t| t.chi2.statistic),
        Metric::Chi2PValue => categorical.map(|t| t.chi2.p_value),
        Metric::Psi => tests.map(|t| t.psi().value),
        Metric::JensenShannon => tests.map(|t| t.jensen_shannon().distance),
        Metric::Hellinger => tests.map(|t| t.hellinger().distance),
        _ => None,
    }
}

/// The data set's value of a metric.
fn dataset_value(dataset: &DatasetSummary, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Detected => flag(dataset.detected),
        Metric::Share => Some(dataset.share),
        Metric::Drifted => Some(dataset.drifted as f64),
        _ => None,
    }
}

/// The prediction quality's value of a metric.
fn performance_value(performance: &Performance, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Accuracy => performance.accuracy,
        Metric::ErrorRate => performance.error_rate,
        Metric::Labelled => Some(performance.labelled as f64),
        Metric::Mae => performance.mae,
        Metric::Rmse => performance.rmse,
        _ => None,
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Hand-made reports for tests of what reads them.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::decode::FeatureKind;
    use crate::drift::report::{DriftOutcome, FeatureStatus};
    use crate::drift::{Correction, DriftSettings, Method};

    /// A tested feature decided by `method` with this score; `detected` as given.
    pub(crate) fn feature(name: &str, method: Method, score: f64, detected: bool) -> FeatureReport {
        let kind = if method.applies_to(true) {
            FeatureKind::Numeric
        } else {
            FeatureKind::Categorical
        };
        FeatureReport {
            name: name.into(),
            kind,
            status: FeatureStatus::Ok,
            reason: None,
            n_reference: 1000,
            n_current: 1000,
            missing_reference: 0,
            missing_current: 0,
            nan_current: 0,
            invalid_current: 0,
            reference_sampled: false,
            tests: None,
            histogram: None,
            drift: DriftOutcome {
                method,
                score: Some(score),
                threshold: Some(0.05),
                detected,
                p_value: Some(score),
                level: Some(0.05),
                p_value_by: Some(crate::drift::PValueBy::Test),
                permutations: None,
            },
        }
    }

    /// Window 7 of `payments` with these features and `records` records.
    pub(crate) fn report(records: u64, features: Vec<FeatureReport>) -> WindowReport {
        let drifted = features.iter().filter(|f| f.drift.detected).count();
        let tested = features.len();
        WindowReport {
            since_retrain: None,
            outputs: Vec::new(),
            multivariate: BTreeMap::new(),
            stream: "payments".into(),
            window: WindowMeta {
                index: 7,
                records,
                late_records: 0,
                start: Some("2026-11-23T08:00:00Z".into()),
                end: Some("2026-11-23T08:05:00Z".into()),
                offsets: BTreeMap::from([("t/0".into(), OffsetRange { first: 0, last: 9 })]),
            },
            performance: Performance {
                labelled: 0,
                correct: 0,
                accuracy: None,
                error_rate: None,
                numeric_labelled: 0,
                mae: None,
                rmse: None,
            },
            drift: DriftReport {
                reference: DataInfo::default(),
                current: DataInfo::default(),
                settings: DriftSettings::default(),
                features,
                dataset: DatasetSummary {
                    features: tested,
                    drifted,
                    share: drifted as f64 / tested.max(1) as f64,
                    detected: drifted > 0,
                    correction: Correction::None,
                    alpha: 0.05,
                    drift_share: None,
                    insufficient_data: 0,
                },
                multivariate: BTreeMap::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::baseline::{BaselineSource, BuildSettings};
    use crate::decode::{Dataset, FeatureKind, FeatureSpec, Schema};
    use crate::rng::SplitMix64;

    /// A real report of a numeric and a categorical feature, the second shifted.
    fn real_report() -> WindowReport {
        let schema = Schema {
            features: vec![
                FeatureSpec {
                    name: "amount".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "country".into(),
                    kind: FeatureKind::Categorical,
                },
            ],
        };
        let mut rng = SplitMix64::new(5);
        // `skewed`: half the countries are DE; amounts keep their distribution.
        let mut data = |n: usize, skewed: bool| {
            let mut data = Dataset::new(schema.clone());
            for _ in 0..n {
                let uniform = ["DE", "FR", "US"][rng.below(3) as usize];
                let country = if skewed && rng.below(2) == 0 {
                    "DE"
                } else {
                    uniform
                };
                let record = serde_json::json!({"amount": rng.normal(), "country": country});
                data.push_json_record(record.as_object().unwrap());
            }
            data
        };
        let reference = data(2000, false);
        let current = data(300, true);
        let baseline = Arc::new(
            Baseline::build(
                &reference,
                BuildSettings::default(),
                BaselineSource::default(),
            )
            .unwrap(),
        );
        let drift = drift::compare(
            &baseline,
            &current,
            &drift::DriftSettings::default(),
            DataInfo::default(),
            DataInfo::default(),
        );
        let mut report = fixture::report(300, Vec::new());
        report.drift = drift;
        report.performance = Performance {
            labelled: 10,
            correct: 7,
            accuracy: Some(0.7),
            error_rate: Some(0.3),
            numeric_labelled: 10,
            mae: Some(1.5),
            rmse: Some(2.25),
        };
        // An output reads like a feature: the numeric one's report, named `prediction`.
        let mut prediction = report.drift.features[0].clone();
        prediction.name = "prediction".into();
        report.outputs = vec![prediction];
        let outcome = MultivariateOutcome {
            statistic: 0.25,
            p_value: 0.01,
            threshold: 0.1,
            drift: true,
            features: 2,
            reference_rows: 500,
            current_rows: 300,
        };
        report.multivariate.insert(Multivariate::Mmd, outcome);
        // Against the data since the retrain: the same features, other numbers.
        let mut since = report.drift.clone();
        since.features.reverse();
        since.features[0].name = "amount".into();
        since.features.truncate(1);
        report.since_retrain = Some(SinceRetrainReport {
            records: 800,
            windows: 2,
            drift: since,
        });
        report
    }

    /// Every metric of every source reads the same from the typed report as from its JSON by
    /// the metric's JSON pointer: the typed accessors and the documented report shape agree.
    #[test]
    fn typed_readings_equal_the_json_pointers() {
        use crate::policy::spec::Metric as M;
        let report = real_report();
        assert!(report.drifted("country") && !report.drifted("amount"));
        let json = serde_json::to_value(&report).unwrap();
        let metrics = [
            M::Detected,
            M::Score,
            M::PValue,
            M::KsStatistic,
            M::KsPValue,
            M::Wasserstein,
            M::WassersteinNormed,
            M::Chi2Statistic,
            M::Chi2PValue,
            M::Psi,
            M::JensenShannon,
            M::Hellinger,
            M::Share,
            M::Drifted,
            M::Accuracy,
            M::ErrorRate,
            M::Labelled,
            M::Statistic,
        ];
        let sources = [
            Source::Feature("amount".into()),
            Source::Feature("country".into()),
            Source::Feature("absent".into()),
            Source::Dataset,
            Source::Performance,
            Source::Output("prediction".into()),
            Source::Multivariate(Multivariate::Mmd),
            Source::Multivariate(Multivariate::Pca),
        ];
        let (mut read, mut since_read) = (0, 0);
        for source in &sources {
            for metric in metrics {
                let typed = report.value(source, metric);
                assert_eq!(typed, json.value(source, metric), "{source:?} {metric:?}");
                read += usize::from(typed.is_some());
                let since = report.since_retrain(source, metric);
                assert_eq!(
                    since,
                    json.since_retrain(source, metric),
                    "{source:?} {metric:?}"
                );
                since_read += usize::from(since.is_some());
            }
            assert_eq!(report.drifted(&name(source)), json.drifted(&name(source)));
        }
        assert!(read >= 20, "only {read} values read");
        // `amount` (the categorical report renamed: its categorical metrics) and the data set.
        assert!(
            since_read >= 8,
            "only {since_read} values read since the retrain"
        );
        let chi2 =
            |r: &dyn Readings| r.since_retrain(&Source::Feature("amount".into()), M::Chi2PValue);
        assert!(
            chi2(&report).is_some()
                && report
                    .value(&Source::Feature("amount".into()), M::Chi2PValue)
                    .is_none()
        );
        assert_eq!(report.errors(), json.errors());
        assert_eq!(report.errors(), 3);
        assert_eq!(report.span(), json.span());
    }

    fn name(source: &Source) -> String {
        match source {
            Source::Feature(name) => name.clone(),
            _ => String::new(),
        }
    }
}
