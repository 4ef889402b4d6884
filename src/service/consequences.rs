//! What closed windows set off: the alerts they raise and the runs their triggered decisions
//! start. Pure but for the window export, which the caller passes in, so the choice of what
//! happens is unit-tested here and the store commits it with the windows in one transaction.

use std::path::Path;

use crate::config::alerts::AlertSettings;
use crate::dag::request::{self, WindowFiles};
use crate::pipeline::{JudgedWindow, MessageCounts};
use crate::policy::{Model, Outcome};
use crate::store::{Outbox, RunRequest};
use crate::window::WindowData;

/// The stream the windows closed on, as their consequences need it.
pub(super) struct Stream<'a> {
    /// Alert sinks and thresholds.
    pub alerts: &'a AlertSettings,
    /// The stream's name.
    pub name: &'a str,
    /// The models judged on the stream.
    pub models: &'a [Model],
    /// The baseline the windows were judged against.
    pub baseline_id: &'a str,
}

impl<'a> Stream<'a> {
    /// The stream `processor` judges, alerting through `alerts`.
    pub(super) fn of(
        alerts: &'a AlertSettings,
        processor: &'a crate::pipeline::StreamProcessor,
    ) -> Stream<'a> {
        let settings = processor.settings();
        Stream {
            alerts,
            name: &settings.name,
            models: processor.policies().models(),
            baseline_id: &settings.baseline.id,
        }
    }
}

/// The consequences of `closed`. The message counts go with the first window and start again
/// (`counts` is left at zero). `export` writes a window's data for a run and says where.
pub(super) fn of(
    stream: &Stream<'_>,
    closed: &[JudgedWindow],
    counts: &mut MessageCounts,
    mut export: impl FnMut(&str, &WindowData) -> WindowFiles,
) -> Outbox {
    let mut alerts = Vec::new();
    for window in closed {
        let MessageCounts { messages, dead } = std::mem::take(counts);
        alerts.extend(crate::alert::from_window(
            stream.alerts,
            stream.name,
            stream.models,
            window,
            messages,
            dead,
        ));
    }
    Outbox {
        alerts: crate::alert::route(stream.alerts, alerts),
        runs: triggered_runs(closed, stream.baseline_id, &mut export),
    }
}

/// One run per triggered decision whose model has a DAG, with the window's data exported
/// when the window kept it.
fn triggered_runs(
    closed: &[JudgedWindow],
    baseline_id: &str,
    export: &mut impl FnMut(&str, &WindowData) -> WindowFiles,
) -> Vec<RunRequest> {
    let mut runs = Vec::new();
    for window in closed {
        for decision in &window.decisions {
            let Some(dag) = &decision.dag else { continue };
            if decision.outcome != Outcome::Triggered {
                continue;
            }
            let files = match window.data.as_deref() {
                Some(data) => export(&crate::dag::run_id(&decision.key), data),
                None => WindowFiles::default(),
            };
            runs.push(request::triggered(decision, dag, baseline_id, files));
        }
    }
    runs
}

/// Writes a window's data into run `id`'s directory under `runs_dir`; on failure the run
/// starts without it.
pub(super) fn export(runs_dir: &Path, id: &str, data: &WindowData) -> WindowFiles {
    match crate::dag::executor::export_window(data, &runs_dir.join(id)) {
        Ok((window, records)) => WindowFiles {
            window: Some(window),
            records,
        },
        Err(err) => {
            tracing::error!(run = %id, error = %err, "cannot export the window; the run starts without it");
            WindowFiles::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(key: &str, outcome: &str, dag: Option<&str>) -> crate::policy::Decision {
        serde_json::from_value(serde_json::json!({
            "key": key, "policy": "p", "model": "fraud", "dag": dag, "stream": "payments",
            "window": 7, "at_ms": 0, "outcome": outcome, "reason": "because",
            "drifted_features": ["amount"], "signals": [],
        }))
        .unwrap()
    }

    fn window(decisions: Vec<crate::policy::Decision>, data: bool) -> JudgedWindow {
        JudgedWindow {
            index: 7,
            tag: String::new(),
            report: crate::pipeline::report::fixture::report(10, Vec::new()),
            decisions,
            data: data.then(|| {
                std::sync::Arc::new(WindowData {
                    columns: crate::decode::Dataset::new(Default::default()),
                    records: None,
                    summaries: None,
                })
            }),
        }
    }

    fn settings() -> AlertSettings {
        AlertSettings {
            link_base: "http://driftgate.test".into(),
            missing_rate: 1.0,
            dead_letter_rate: 1.0,
            sinks: Vec::new(),
        }
    }

    #[test]
    fn only_triggered_decisions_with_a_dag_start_runs_with_their_window() {
        let settings = settings();
        let stream = Stream {
            alerts: &settings,
            name: "payments",
            models: &[],
            baseline_id: "b1",
        };
        let closed = [
            window(
                vec![
                    decision("a", "triggered", Some("retrain")),
                    decision("b", "triggered", None),
                    decision("c", "not_triggered", Some("retrain")),
                    decision("d", "suppressed_cooldown", Some("retrain")),
                ],
                true,
            ),
            window(vec![decision("e", "triggered", Some("retrain"))], false),
        ];
        let mut exported = Vec::new();
        let mut counts = MessageCounts {
            messages: 5,
            dead: 1,
        };
        let out = of(&stream, &closed, &mut counts, |id, _| {
            exported.push(id.to_string());
            WindowFiles {
                window: Some(format!("{id}/window.json")),
                records: None,
            }
        });
        assert_eq!(counts, MessageCounts::default(), "the counts start again");
        let keys: Vec<&str> = out.runs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "e"]);
        let first = &out.runs[0];
        assert_eq!(
            exported,
            std::slice::from_ref(&first.id),
            "only a window with data is exported"
        );
        assert_eq!(first.window_file, Some(format!("{}/window.json", first.id)));
        assert_eq!(first.window, Some(7));
        assert_eq!(first.baseline.as_deref(), Some("b1"));
        assert_eq!(first.dag, "retrain");
        assert_eq!(out.runs[1].window_file, None);
        // Every decision but the quiet one is told (triggered or suppressed); no model's
        // features drifted, so there is no drift alert.
        let ids: Vec<&str> = out.alerts.iter().map(|r| r.alert.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "retrain_triggered:a",
                "retrain_triggered:b",
                "retrain_suppressed:d",
                "retrain_triggered:e"
            ]
        );
    }
}
