//! Service metrics, rendered in the Prometheus text format. Names follow
//! `driftgate_<noun>[_<unit>][_total]`; labels are bounded (streams, partitions and features
//! come from the configuration, dead-letter reasons from a fixed list). Every part of the
//! service counts into one shared [`Metrics`]; `/metrics` renders it, with `process` adding the
//! process families.

mod drift;
mod process;

pub use drift::{
    DATASET_DRIFT, FEATURE_DRIFT_DETECTED, FEATURE_DRIFT_DISTANCE, FEATURE_DRIFT_P_VALUE,
    MULTIVARIATE_DRIFT_DETECTED, MULTIVARIATE_DRIFT_P_VALUE, MULTIVARIATE_DRIFT_STATISTIC,
    OUTPUT_DRIFT_DETECTED, OUTPUT_DRIFT_DISTANCE, OUTPUT_DRIFT_P_VALUE,
};

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::pipeline::WindowReport;
use crate::store::RunStatus;

/// Records decoded and windowed, by stream.
pub const RECORDS_TOTAL: &str = "driftgate_records_total";
/// Windows closed and reported, by stream.
pub const WINDOWS_TOTAL: &str = "driftgate_windows_total";
/// Messages that could not be decoded, by stream and reason.
pub const DEAD_LETTERS_TOTAL: &str = "driftgate_dead_letters_total";
/// Partitions whose checkpoint was beyond their end, by stream.
pub const OFFSET_RESETS_TOTAL: &str = "driftgate_offset_resets_total";
/// Dead letters their dead-letter topic did not take, kept in the store instead.
pub const DEAD_LETTERS_KEPT_TOTAL: &str = "driftgate_dead_letters_kept_total";
/// Whether ingestion is paused because the store cannot be reached (1) or not (0).
pub const INGESTION_PAUSED: &str = "driftgate_ingestion_paused";
/// Messages between the partition's high watermark and the next one to process.
pub const CONSUMER_LAG: &str = "driftgate_consumer_lag";
/// Always 1, labelled with the running version.
pub const BUILD_INFO: &str = "driftgate_build_info";
/// Policy decisions, by model, policy and outcome.
pub const DECISIONS_TOTAL: &str = "driftgate_decisions_total";
/// Reloads of models and policies, by outcome (`applied`, `refused`).
pub const CONFIG_RELOADS_TOTAL: &str = "driftgate_config_reloads_total";
/// Alert delivery attempts, by sink, kind and outcome (`delivered`, `retried`, `dead`).
pub const ALERTS_TOTAL: &str = "driftgate_alerts_total";
/// Seconds from an alert being raised to its delivery, by sink (a histogram).
pub const ALERT_DELIVERY_SECONDS: &str = "driftgate_alert_delivery_seconds";
/// Alerts waiting in the outbox, by sink: the back-pressure a slow sink builds up.
pub const ALERTS_PENDING: &str = "driftgate_alerts_pending";
/// Counter: retraining runs finished, by model and final status.
pub const RUNS_TOTAL: &str = "driftgate_runs_total";
/// Summary (sum and count): wall-clock seconds of succeeded runs, by model.
pub const RUN_SECONDS: &str = "driftgate_run_seconds";

/// Upper bounds of the delivery-latency histogram's buckets, seconds.
const DELIVERY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0];

#[derive(Default)]
struct Values {
    records: BTreeMap<String, u64>,
    windows: BTreeMap<String, u64>,
    dead_letters: BTreeMap<(String, String), u64>,
    dead_letters_kept: u64,
    ingestion_paused: bool,
    offset_resets: BTreeMap<String, u64>,
    lag: BTreeMap<(String, i32), i64>,
    /// The latest window's drift per stream, feature, output and multivariate test.
    drift: drift::DriftGauges,
    decisions: BTreeMap<(String, String, &'static str), u64>,
    reloads: BTreeMap<&'static str, u64>,
    alerts: BTreeMap<(String, String, &'static str), u64>,
    /// Per sink: bucket counts, sum, count.
    delivery: BTreeMap<String, ([u64; DELIVERY_BUCKETS.len()], f64, u64)>,
    pending: BTreeMap<String, u64>,
    runs: BTreeMap<(String, String), u64>,
    /// Per model: seconds summed, succeeded runs.
    run_seconds: BTreeMap<String, (f64, u64)>,
}

/// All metrics of a running service.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Values) -> R) -> R {
        f(&mut crate::locks::lock(&self.values))
    }

    /// Makes a stream's series exist from the start (at zero).
    pub fn register_stream(&self, stream: &str) {
        self.with(|v| {
            v.records.entry(stream.to_string()).or_insert(0);
            v.windows.entry(stream.to_string()).or_insert(0);
        });
    }

    /// Makes a policy's decision series exist from the start (at zero), one per outcome.
    pub fn register_policy(&self, model: &str, policy: &str) {
        self.with(|v| {
            for outcome in crate::policy::Outcome::ALL {
                v.decisions
                    .entry((model.to_string(), policy.to_string(), outcome.as_str()))
                    .or_insert(0);
            }
        });
    }

    /// Counts a policy decision.
    pub fn decision(&self, model: &str, policy: &str, outcome: crate::policy::Outcome) {
        self.with(|v| {
            *v.decisions
                .entry((model.to_string(), policy.to_string(), outcome.as_str()))
                .or_insert(0) += 1
        });
    }

    /// Makes a model's run series exist from the start (at zero).
    pub fn register_run_model(&self, model: &str) {
        self.with(|v| {
            for status in [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled,
            ] {
                v.runs
                    .entry((model.to_string(), status.to_string()))
                    .or_insert(0);
            }
            v.run_seconds.entry(model.to_string()).or_default();
        });
    }

    /// Counts a finished run; `seconds` for a succeeded one.
    pub fn run_finished(&self, model: &str, status: RunStatus, seconds: Option<f64>) {
        self.with(|v| {
            *v.runs
                .entry((model.to_string(), status.to_string()))
                .or_insert(0) += 1;
            if let Some(seconds) = seconds {
                let (sum, count) = v.run_seconds.entry(model.to_string()).or_default();
                *sum += seconds;
                *count += 1;
            }
        });
    }

    /// Counts a reload of models and policies.
    pub fn reload(&self, applied: bool) {
        self.with(|v| {
            v.reloads.entry("applied").or_insert(0);
            v.reloads.entry("refused").or_insert(0);
            *v.reloads
                .entry(if applied { "applied" } else { "refused" })
                .or_insert(0) += 1;
        });
    }

    /// Makes a sink's series exist from the start.
    pub fn register_sink(&self, sink: &str) {
        self.with(|v| {
            v.delivery.entry(sink.to_string()).or_default();
            v.pending.entry(sink.to_string()).or_insert(0);
        });
    }

    /// Counts an alert delivery attempt.
    pub fn alert(&self, sink: &str, kind: &str, outcome: &'static str) {
        self.with(|v| {
            *v.alerts
                .entry((sink.to_string(), kind.to_string(), outcome))
                .or_insert(0) += 1
        });
    }

    /// Records a delivered alert's latency from being raised.
    pub fn alert_delivery(&self, sink: &str, seconds: f64) {
        self.with(|v| {
            let (buckets, sum, count) = v.delivery.entry(sink.to_string()).or_default();
            for (bucket, bound) in buckets.iter_mut().zip(DELIVERY_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            *sum += seconds;
            *count += 1;
        });
    }

    /// Sets the alerts waiting per sink.
    pub fn alerts_pending(&self, sink: &str, pending: u64) {
        self.with(|v| {
            v.pending.insert(sink.to_string(), pending);
        });
    }

    /// Counts decoded records.
    pub fn records(&self, stream: &str, count: u64) {
        self.with(|v| *v.records.entry(stream.to_string()).or_insert(0) += count);
    }

    /// Counts a dead letter.
    pub fn dead_letter(&self, stream: &str, reason: &str) {
        self.with(|v| {
            *v.dead_letters
                .entry((stream.to_string(), reason.to_string()))
                .or_insert(0) += 1
        });
    }

    /// Counts a partition of `stream` resumed because its checkpoint was beyond its end.
    pub fn offset_reset(&self, stream: &str) {
        self.with(|v| *v.offset_resets.entry(stream.to_string()).or_insert(0) += 1);
    }

    /// Counts a dead letter its topic did not take (it is kept in the store).
    pub fn dead_letter_kept(&self) {
        self.with(|v| v.dead_letters_kept += 1);
    }

    /// Ingestion paused (the store cannot be reached) or resumed.
    pub fn ingestion_paused(&self, paused: bool) {
        self.with(|v| v.ingestion_paused = paused);
    }

    /// Records a closed window's report.
    pub fn window(&self, stream: &str, report: &WindowReport) {
        self.with(|v| {
            *v.windows.entry(stream.to_string()).or_insert(0) += 1;
            v.drift.record(stream, report);
        });
    }

    /// Sets a partition's lag.
    pub fn lag(&self, stream: &str, partition: i32, lag: i64) {
        self.with(|v| {
            v.lag.insert((stream.to_string(), partition), lag.max(0));
        });
    }

    /// Records decoded so far for a stream.
    pub fn records_of(&self, stream: &str) -> u64 {
        self.with(|v| v.records.get(stream).copied().unwrap_or(0))
    }

    /// Dead letters so far for a stream, every reason.
    pub fn dead_letters_of(&self, stream: &str) -> u64 {
        self.with(|v| {
            v.dead_letters
                .iter()
                .filter(|((s, _), _)| s == stream)
                .map(|(_, count)| count)
                .sum()
        })
    }

    /// Windows reported so far for a stream.
    pub fn windows_of(&self, stream: &str) -> u64 {
        self.with(|v| v.windows.get(stream).copied().unwrap_or(0))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            v.render_streams(&mut out);
            v.render_decisions(&mut out);
            v.render_alerts(&mut out);
            v.render_runs(&mut out);
            process::render(&mut out);
            out
        })
    }
}
impl Values {
    /// Records, windows, dead letters, lag and drift per stream.
    fn render_streams(&self, out: &mut String) {
        let records = (RECORDS_TOTAL, "Records decoded and windowed.");
        per_stream_counter(out, records, &self.records);
        let windows = (WINDOWS_TOTAL, "Windows closed and reported.");
        per_stream_counter(out, windows, &self.windows);
        family(
            out,
            DEAD_LETTERS_TOTAL,
            "counter",
            "Messages that could not be decoded.",
        );
        for ((stream, reason), n) in &self.dead_letters {
            let _ = writeln!(
                out,
                "{DEAD_LETTERS_TOTAL}{{stream=\"{}\",reason=\"{}\"}} {n}",
                escape(stream),
                escape(reason)
            );
        }
        family(
            out,
            DEAD_LETTERS_KEPT_TOTAL,
            "counter",
            "Dead letters their topic did not take, kept in the store.",
        );
        let _ = writeln!(out, "{DEAD_LETTERS_KEPT_TOTAL} {}", self.dead_letters_kept);
        family(
            out,
            INGESTION_PAUSED,
            "gauge",
            "1 while ingestion is paused because the store cannot be reached.",
        );
        let _ = writeln!(
            out,
            "{INGESTION_PAUSED} {}",
            u8::from(self.ingestion_paused)
        );
        let resets = (
            OFFSET_RESETS_TOTAL,
            "Partitions resumed because the broker no longer had their checkpoint.",
        );
        per_stream_counter(out, resets, &self.offset_resets);
        family(
            out,
            CONSUMER_LAG,
            "gauge",
            "Messages not yet processed per partition.",
        );
        for ((stream, partition), lag) in &self.lag {
            let _ = writeln!(
                out,
                "{CONSUMER_LAG}{{stream=\"{}\",partition=\"{partition}\"}} {lag}",
                escape(stream)
            );
        }
        self.drift.render(out);
    }

    /// Policy decisions and configuration reloads.
    fn render_decisions(&self, out: &mut String) {
        family(
            out,
            DECISIONS_TOTAL,
            "counter",
            "Policy decisions by model and outcome.",
        );
        for ((model, policy, outcome), n) in &self.decisions {
            let _ = writeln!(
                out,
                "{DECISIONS_TOTAL}{{model=\"{}\",policy=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(model),
                escape(policy)
            );
        }
        family(
            out,
            CONFIG_RELOADS_TOTAL,
            "counter",
            "Reloads of models and policies by outcome.",
        );
        for outcome in ["applied", "refused"] {
            let n = self.reloads.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "{CONFIG_RELOADS_TOTAL}{{outcome=\"{outcome}\"}} {n}");
        }
    }

    /// Alert deliveries, their latency and the outbox.
    fn render_alerts(&self, out: &mut String) {
        family(
            out,
            ALERTS_TOTAL,
            "counter",
            "Alert delivery attempts by sink, kind and outcome.",
        );
        for ((sink, kind, outcome), n) in &self.alerts {
            let _ = writeln!(
                out,
                "{ALERTS_TOTAL}{{sink=\"{}\",kind=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(sink),
                escape(kind)
            );
        }
        family(
            out,
            ALERT_DELIVERY_SECONDS,
            "histogram",
            "Seconds from an alert being raised to its delivery.",
        );
        for (sink, (buckets, sum, count)) in &self.delivery {
            let sink = escape(sink);
            for (n, bound) in buckets.iter().zip(DELIVERY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "{ALERT_DELIVERY_SECONDS}_bucket{{sink=\"{sink}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "{ALERT_DELIVERY_SECONDS}_bucket{{sink=\"{sink}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{ALERT_DELIVERY_SECONDS}_sum{{sink=\"{sink}\"}} {sum}");
            let _ = writeln!(
                out,
                "{ALERT_DELIVERY_SECONDS}_count{{sink=\"{sink}\"}} {count}"
            );
        }
        family(
            out,
            ALERTS_PENDING,
            "gauge",
            "Alerts waiting in the outbox per sink.",
        );
        for (sink, n) in &self.pending {
            let _ = writeln!(out, "{ALERTS_PENDING}{{sink=\"{}\"}} {n}", escape(sink));
        }
    }

    /// Retraining runs and their durations.
    fn render_runs(&self, out: &mut String) {
        family(
            out,
            RUNS_TOTAL,
            "counter",
            "Retraining runs finished, by model and status.",
        );
        for ((model, status), n) in &self.runs {
            let _ = writeln!(
                out,
                "{RUNS_TOTAL}{{model=\"{}\",status=\"{}\"}} {n}",
                escape(model),
                escape(status)
            );
        }
        family(
            out,
            RUN_SECONDS,
            "summary",
            "Wall-clock seconds of succeeded retraining runs, by model.",
        );
        for (model, (sum, count)) in &self.run_seconds {
            let model = escape(model);
            let _ = writeln!(out, "{RUN_SECONDS}_sum{{model=\"{model}\"}} {sum}");
            let _ = writeln!(out, "{RUN_SECONDS}_count{{model=\"{model}\"}} {count}");
        }
    }
}

/// A counter family with one series per stream: `(name, help)` and the values.
fn per_stream_counter(
    out: &mut String,
    (name, help): (&str, &str),
    values: &BTreeMap<String, u64>,
) {
    family(out, name, "counter", help);
    for (stream, n) in values {
        let _ = writeln!(out, "{name}{{stream=\"{}\"}} {n}", escape(stream));
    }
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.register_stream("payments");
        metrics.records("payments", 5);
        metrics.dead_letter("payments", "invalid_json");
        metrics.lag("payments", 3, 7);
        let report = {
            use crate::drift::multivariate::{Multivariate, MultivariateOutcome};
            use crate::drift::Method;
            use crate::pipeline::report::fixture::{feature, report};
            let mut report = report(
                10,
                vec![
                    feature("amount", Method::Psi, 0.5, true),
                    feature("country", Method::Chi2, 0.001, false),
                ],
            );
            report.outputs = vec![feature("prediction", Method::Ks, 0.01, true)];
            let mmd = MultivariateOutcome {
                statistic: 0.125,
                p_value: 0.0099,
                threshold: 0.05,
                drift: true,
                features: 2,
                reference_rows: 500,
                current_rows: 10,
            };
            report.multivariate.insert(Multivariate::Mmd, mmd);
            report
        };
        metrics.register_policy("m", "p");
        metrics.decision("m", "p", crate::policy::Outcome::Triggered);
        metrics.window("payments", &report);
        let text = metrics.render();
        for line in [
            "driftgate_records_total{stream=\"payments\"} 5",
            "driftgate_windows_total{stream=\"payments\"} 1",
            "driftgate_dead_letters_total{stream=\"payments\",reason=\"invalid_json\"} 1",
            "driftgate_consumer_lag{stream=\"payments\",partition=\"3\"} 7",
            "driftgate_feature_drift_distance{stream=\"payments\",feature=\"amount\",method=\"psi\"} 0.5",
            "driftgate_feature_drift_detected{stream=\"payments\",feature=\"amount\"} 1",
            "driftgate_feature_drift_p_value{stream=\"payments\",feature=\"country\",method=\"chi2\"} 0.001",
            "driftgate_decisions_total{model=\"m\",policy=\"p\",outcome=\"triggered\"} 1",
            "driftgate_decisions_total{model=\"m\",policy=\"p\",outcome=\"not_triggered\"} 0",
            "driftgate_dataset_drift{stream=\"payments\"} 1",
            "driftgate_output_drift_p_value{stream=\"payments\",output=\"prediction\",method=\"ks\"} 0.01",
            "driftgate_output_drift_detected{stream=\"payments\",output=\"prediction\"} 1",
            "driftgate_multivariate_drift_statistic{stream=\"payments\",method=\"mmd\"} 0.125",
            "driftgate_multivariate_drift_p_value{stream=\"payments\",method=\"mmd\"} 0.0099",
            "driftgate_multivariate_drift_detected{stream=\"payments\",method=\"mmd\"} 1",
            "# TYPE driftgate_records_total counter",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
