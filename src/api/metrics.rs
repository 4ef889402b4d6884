//! Service metrics, rendered in the Prometheus text format. Names follow
//! `driftgate_<noun>[_<unit>][_total]`; labels are bounded (streams, partitions and features
//! come from the configuration, dead-letter reasons from a fixed list).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Records decoded and windowed, by stream.
pub const RECORDS_TOTAL: &str = "driftgate_records_total";
/// Windows closed and reported, by stream.
pub const WINDOWS_TOTAL: &str = "driftgate_windows_total";
/// Messages that could not be decoded, by stream and reason.
pub const DEAD_LETTERS_TOTAL: &str = "driftgate_dead_letters_total";
/// Messages between the partition's high watermark and the next one to process.
pub const CONSUMER_LAG: &str = "driftgate_consumer_lag";
/// The latest window's drift score per feature (p-value for ks/chi2, distance otherwise).
pub const FEATURE_DRIFT_SCORE: &str = "driftgate_feature_drift_score";
/// Whether the latest window of a stream showed dataset drift (1) or not (0).
pub const DATASET_DRIFT: &str = "driftgate_dataset_drift";
/// Policy decisions, by model and outcome.
pub const DECISIONS_TOTAL: &str = "driftgate_decisions_total";
/// Reloads of models and policies, by outcome (`applied`, `refused`).
pub const CONFIG_RELOADS_TOTAL: &str = "driftgate_config_reloads_total";

#[derive(Default)]
struct Values {
    records: BTreeMap<String, u64>,
    windows: BTreeMap<String, u64>,
    dead_letters: BTreeMap<(String, String), u64>,
    lag: BTreeMap<(String, i32), i64>,
    drift_score: BTreeMap<(String, String), f64>,
    dataset_drift: BTreeMap<String, bool>,
    decisions: BTreeMap<(String, &'static str), u64>,
    reloads: BTreeMap<&'static str, u64>,
}

/// All metrics of a running service.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Values) -> R) -> R {
        f(&mut self.values.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes a stream's series exist from the start (at zero).
    pub fn register_stream(&self, stream: &str) {
        self.with(|v| {
            v.records.entry(stream.to_string()).or_insert(0);
            v.windows.entry(stream.to_string()).or_insert(0);
        });
    }

    /// Makes a model's decision series exist from the start (at zero), one per outcome.
    pub fn register_model(&self, model: &str) {
        self.with(|v| {
            for outcome in crate::policy::Outcome::ALL {
                v.decisions
                    .entry((model.to_string(), outcome.as_str()))
                    .or_insert(0);
            }
        });
    }

    /// Counts a policy decision.
    pub fn decision(&self, model: &str, outcome: crate::policy::Outcome) {
        self.with(|v| {
            *v.decisions
                .entry((model.to_string(), outcome.as_str()))
                .or_insert(0) += 1
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

    /// Records a closed window's report.
    pub fn window(&self, stream: &str, report: &serde_json::Value) {
        self.with(|v| {
            *v.windows.entry(stream.to_string()).or_insert(0) += 1;
            v.dataset_drift.insert(
                stream.to_string(),
                report["dataset"]["detected"].as_bool().unwrap_or(false),
            );
            for feature in report["features"].as_array().into_iter().flatten() {
                if let (Some(name), Some(score)) =
                    (feature["name"].as_str(), feature["drift"]["score"].as_f64())
                {
                    v.drift_score
                        .insert((stream.to_string(), name.to_string()), score);
                }
            }
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

    /// Windows reported so far for a stream.
    pub fn windows_of(&self, stream: &str) -> u64 {
        self.with(|v| v.windows.get(stream).copied().unwrap_or(0))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            family(
                &mut out,
                RECORDS_TOTAL,
                "counter",
                "Records decoded and windowed.",
            );
            for (stream, n) in &v.records {
                let _ = writeln!(out, "{RECORDS_TOTAL}{{stream=\"{}\"}} {n}", escape(stream));
            }
            family(
                &mut out,
                WINDOWS_TOTAL,
                "counter",
                "Windows closed and reported.",
            );
            for (stream, n) in &v.windows {
                let _ = writeln!(out, "{WINDOWS_TOTAL}{{stream=\"{}\"}} {n}", escape(stream));
            }
            family(
                &mut out,
                DEAD_LETTERS_TOTAL,
                "counter",
                "Messages that could not be decoded.",
            );
            for ((stream, reason), n) in &v.dead_letters {
                let _ = writeln!(
                    out,
                    "{DEAD_LETTERS_TOTAL}{{stream=\"{}\",reason=\"{}\"}} {n}",
                    escape(stream),
                    escape(reason)
                );
            }
            family(
                &mut out,
                CONSUMER_LAG,
                "gauge",
                "Messages not yet processed per partition.",
            );
            for ((stream, partition), lag) in &v.lag {
                let _ = writeln!(
                    out,
                    "{CONSUMER_LAG}{{stream=\"{}\",partition=\"{partition}\"}} {lag}",
                    escape(stream)
                );
            }
            family(
                &mut out,
                FEATURE_DRIFT_SCORE,
                "gauge",
                "Latest window's drift score per feature.",
            );
            for ((stream, feature), score) in &v.drift_score {
                let _ = writeln!(
                    out,
                    "{FEATURE_DRIFT_SCORE}{{stream=\"{}\",feature=\"{}\"}} {score}",
                    escape(stream),
                    escape(feature)
                );
            }
            family(
                &mut out,
                DATASET_DRIFT,
                "gauge",
                "Latest window showed dataset drift.",
            );
            for (stream, drift) in &v.dataset_drift {
                let _ = writeln!(
                    out,
                    "{DATASET_DRIFT}{{stream=\"{}\"}} {}",
                    escape(stream),
                    u8::from(*drift)
                );
            }
            family(
                &mut out,
                DECISIONS_TOTAL,
                "counter",
                "Policy decisions by model and outcome.",
            );
            for ((model, outcome), n) in &v.decisions {
                let _ = writeln!(
                    out,
                    "{DECISIONS_TOTAL}{{model=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(model)
                );
            }
            family(
                &mut out,
                CONFIG_RELOADS_TOTAL,
                "counter",
                "Reloads of models and policies by outcome.",
            );
            for outcome in ["applied", "refused"] {
                let n = v.reloads.get(outcome).copied().unwrap_or(0);
                let _ = writeln!(out, "{CONFIG_RELOADS_TOTAL}{{outcome=\"{outcome}\"}} {n}");
            }
            out
        })
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn escape(value: &str) -> String {
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
        let report = serde_json::json!({
            "dataset": {"detected": true},
            "features": [{"name": "amount", "drift": {"score": 0.5}}]
        });
        metrics.window("payments", &report);
        let text = metrics.render();
        for line in [
            "driftgate_records_total{stream=\"payments\"} 5",
            "driftgate_windows_total{stream=\"payments\"} 1",
            "driftgate_dead_letters_total{stream=\"payments\",reason=\"invalid_json\"} 1",
            "driftgate_consumer_lag{stream=\"payments\",partition=\"3\"} 7",
            "driftgate_feature_drift_score{stream=\"payments\",feature=\"amount\"} 0.5",
            "driftgate_dataset_drift{stream=\"payments\"} 1",
            "# TYPE driftgate_records_total counter",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
