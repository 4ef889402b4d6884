//! What the demo shows while it runs and sums up at the end, read back from the service's
//! store, its API and the webhook receiver.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::produce::Phase;
use super::{data, fail, receiver, stamp, wait_until, DemoError, BEFORE, SCORED_MODEL};
use crate::store::{RunStatus, Store, TaskStatus};

/// What the demo saw, read back from the service's store and the receiver.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Windows reported.
    pub windows: u64,
    /// The first window with injected drift.
    pub drift_from: u64,
    /// The features the drift was injected into.
    pub injected: Vec<String>,
    /// Every feature flagged in some window, with the windows.
    pub drifted: BTreeMap<String, Vec<u64>>,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: u64,
    /// Decisions per outcome (`triggered`, `suppressed_in_flight`, …; not `not_triggered`).
    pub decisions: BTreeMap<String, u64>,
    /// The triggered decisions: `policy → model in window N`.
    pub triggers: Vec<String>,
    /// Every run.
    pub runs: Vec<RunSummary>,
    /// The models retrained because of drift.
    pub retrained: Vec<String>,
    /// Mean window accuracy of the scored model before the drift, during it, and after the
    /// retrained champion took over.
    pub accuracy: Accuracy,
    /// Alerts the webhook received, per kind.
    pub alerts: BTreeMap<String, u64>,
    /// Alert requests whose signature did not verify.
    pub bad_signatures: u64,
    /// The window the new champion started scoring, when one was promoted.
    pub promoted_from: Option<u64>,
    /// Per window, in order: how many windows the stream's data since the last retrain held
    /// when the window was compared with it (`null`: none, right after a start or a retrain).
    pub since_retrain: Vec<Option<u64>>,
    /// The windows before which that data started again (see [`restarts`]).
    pub since_retrain_restarts: Vec<usize>,
}

/// Window accuracies by phase.
#[derive(Debug, Default, Serialize)]
pub struct Accuracy {
    /// Before the drift.
    pub before: Option<f64>,
    /// During the drift, scored by the old champion.
    pub drifted: Option<f64>,
    /// During the drift, scored by the retrained champion.
    pub retrained: Option<f64>,
}

/// One run, as the summary shows it.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Its id.
    pub id: String,
    /// The model.
    pub model: String,
    /// `manual` or the triggering policy and window.
    pub trigger: String,
    /// Final status.
    pub status: RunStatus,
    /// Tasks that ran.
    pub ran: Vec<String>,
    /// Tasks whose outputs came from the cache.
    pub cached: Vec<String>,
    /// Tasks skipped (a `when` gate, or upstream of it).
    pub skipped: Vec<String>,
}

/// Prints the latest window's accuracy, drifted features and the decisions that did something.
pub(super) fn show_latest_window(
    store: &Store,
    stream: &str,
    started: Instant,
) -> Result<(), DemoError> {
    let windows = store
        .latest_windows(stream, 1)
        .map_err(fail("cannot read windows"))?;
    let Some(window) = windows.first() else {
        return Ok(());
    };
    let index = window.index;
    let drifted = drifted_features(&window.report);
    let accuracy = window.report["performance"]["accuracy"]
        .as_f64()
        .map_or("-".to_string(), |a| format!("{a:.3}"));
    println!(
        "{} window {index}: {} records, {SCORED_MODEL} accuracy {accuracy}, drift: {}",
        stamp(started),
        window.report["window"]["records"],
        if drifted.is_empty() {
            "none".to_string()
        } else {
            drifted.join(", ")
        }
    );
    let decisions = store
        .latest_decisions(None, 200)
        .map_err(fail("cannot read decisions"))?;
    for decision in decisions.iter().rev().filter(|d| d.window == index) {
        if decision.outcome != crate::policy::Outcome::NotTriggered {
            println!(
                "{}   {} → {}: {}: {}",
                stamp(started),
                decision.policy,
                decision.model,
                decision.outcome.as_str(),
                decision.reason
            );
        }
    }
    Ok(())
}

fn drifted_features(report: &serde_json::Value) -> Vec<String> {
    report["features"]
        .as_array()
        .map(|features| {
            features
                .iter()
                .filter(|f| f["drift"]["detected"] == true)
                .filter_map(|f| f["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until no run is queued or running, then prints the runs that finished (those not in
/// `shown` yet).
pub(super) fn wait_for_runs(
    stop: &AtomicBool,
    store: &Store,
    started: Instant,
    shown: &mut std::collections::BTreeSet<String>,
) -> Result<(), DemoError> {
    // A triggered decision's run is queued in the window's own transaction, so it is visible
    // by now; the executor picks it up within its poll.
    wait_until(stop, "the runs to finish", Duration::from_secs(120), || {
        [RunStatus::Queued, RunStatus::Running]
            .into_iter()
            .all(|s| store.runs_with_status(s).is_ok_and(|r| r.is_empty()))
    })?;
    let mut runs = store.runs(None, 100).map_err(fail("cannot read runs"))?;
    runs.reverse();
    for run in runs {
        if !shown.insert(run.id.clone()) {
            continue;
        }
        let summary = run_summary(store, &run)?;
        println!(
            "{}   run {} ({}, {}): {} — ran {}; cached {}; skipped {}",
            stamp(started),
            run.id,
            run.model,
            summary.trigger,
            run.status,
            list(&summary.ran),
            list(&summary.cached),
            list(&summary.skipped)
        );
        if let Some(metrics) = task_output(store, &run.id, "evaluate", "metrics.json") {
            println!(
                "{}     evaluate: challenger {:.3} vs champion {} on {} held-out records",
                stamp(started),
                metrics["challenger_accuracy"].as_f64().unwrap_or(f64::NAN),
                metrics["champion_accuracy"]
                    .as_f64()
                    .map_or("none".to_string(), |a| format!("{a:.3}")),
                metrics["holdout_records"]
            );
        }
        if let Some(error) = &run.error {
            println!("{}     {error}", stamp(started));
        }
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// A task's JSON output in a run.
fn task_output(store: &Store, run: &str, task: &str, file: &str) -> Option<serde_json::Value> {
    let tasks = store.run_tasks(run).ok()?;
    let output = tasks
        .iter()
        .find(|t| t.task == task)?
        .outputs
        .iter()
        .find(|a| a.file == file)?
        .path
        .clone();
    serde_json::from_slice(&std::fs::read(output).ok()?).ok()
}

fn run_summary(store: &Store, run: &crate::store::RunRecord) -> Result<RunSummary, DemoError> {
    let tasks = store
        .run_tasks(&run.id)
        .map_err(fail("cannot read tasks"))?;
    let with = |status: TaskStatus| -> Vec<String> {
        tasks
            .iter()
            .filter(|t| t.status == status)
            .map(|t| t.task.clone())
            .collect()
    };
    let trigger = match run.request.decision.get("policy").and_then(|p| p.as_str()) {
        Some(policy) => format!(
            "{policy} in window {}",
            run.request
                .window
                .map_or("?".to_string(), |w| w.to_string())
        ),
        None => "manual".to_string(),
    };
    Ok(RunSummary {
        id: run.id.clone(),
        model: run.model.clone(),
        trigger,
        status: run.status,
        ran: with(TaskStatus::Succeeded),
        cached: with(TaskStatus::Cached),
        skipped: with(TaskStatus::Skipped),
    })
}

/// The whole demo, read back from the store and the receiver.
pub(super) fn summarise(
    store: &Store,
    stream: &str,
    phases: &[Phase],
    promoted_from: Option<u64>,
    receiver: &receiver::Receiver,
    dead_letters: u64,
) -> Result<Summary, DemoError> {
    let mut windows = store
        .latest_windows(stream, phases.len() as u64 + 10)
        .map_err(fail("cannot read windows"))?;
    windows.reverse();
    let (drifted, accuracy) = window_drift_and_accuracy(&windows, phases);
    let since_retrain: Vec<Option<u64>> = (windows.iter())
        .map(|w| w.report["since_retrain"]["windows"].as_u64())
        .collect();
    let (decisions, triggers) = decisions(store)?;
    let mut records = store.runs(None, 1000).map_err(fail("cannot read runs"))?;
    records.reverse();
    let runs = records
        .iter()
        .map(|run| run_summary(store, run))
        .collect::<Result<Vec<_>, _>>()?;
    let mut retrained: Vec<String> = runs
        .iter()
        .filter(|r| r.trigger != "manual" && r.status == RunStatus::Succeeded)
        .map(|r| r.model.clone())
        .collect();
    retrained.sort();
    retrained.dedup();
    let mut alerts: BTreeMap<String, u64> = BTreeMap::new();
    for alert in receiver.alerts() {
        *alerts.entry(alert.kind).or_default() += 1;
    }
    Ok(Summary {
        windows: windows.len() as u64,
        drift_from: BEFORE,
        injected: data::DRIFTED.iter().map(|s| s.to_string()).collect(),
        drifted,
        dead_letters,
        decisions,
        triggers,
        runs,
        retrained,
        accuracy,
        alerts,
        bad_signatures: receiver.bad_signatures(),
        promoted_from,
        since_retrain_restarts: restarts(&since_retrain),
        since_retrain,
    })
}

/// The windows each feature drifted in, and the scored model's mean accuracy per phase.
fn window_drift_and_accuracy(
    windows: &[crate::store::WindowRow],
    phases: &[Phase],
) -> (BTreeMap<String, Vec<u64>>, Accuracy) {
    let mut drifted: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut accuracies: BTreeMap<Phase, Vec<f64>> = BTreeMap::new();
    for window in windows {
        for feature in drifted_features(&window.report) {
            drifted.entry(feature).or_default().push(window.index);
        }
        let Some(phase) = phases.get(window.index as usize) else {
            continue;
        };
        if let Some(a) = window.report["performance"]["accuracy"].as_f64() {
            accuracies.entry(*phase).or_default().push(a);
        }
    }
    let mean = |phase: Phase| {
        accuracies
            .get(&phase)
            .map(|a| a.iter().sum::<f64>() / a.len() as f64)
    };
    let accuracy = Accuracy {
        before: mean(Phase::Before),
        drifted: mean(Phase::Drifted),
        retrained: mean(Phase::Retrained),
    };
    (drifted, accuracy)
}

/// Decisions per outcome that did something, and the triggers in words.
fn decisions(store: &Store) -> Result<(BTreeMap<String, u64>, Vec<String>), DemoError> {
    let decisions = store
        .latest_decisions(None, 100_000)
        .map_err(fail("cannot read decisions"))?;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut triggers = Vec::new();
    for decision in decisions.iter().rev() {
        if decision.outcome == crate::policy::Outcome::NotTriggered {
            continue;
        }
        *outcomes
            .entry(decision.outcome.as_str().to_string())
            .or_default() += 1;
        if decision.outcome == crate::policy::Outcome::Triggered {
            triggers.push(format!(
                "{} → {} in window {}",
                decision.policy, decision.model, decision.window
            ));
        }
    }
    Ok((outcomes, triggers))
}

/// Dead letters so far, from the service's metrics.
pub(super) fn dead_letters(api: &str) -> u64 {
    let answer = reqwest::blocking::get(format!("http://{api}/metrics"));
    let Ok(response) = answer else {
        return 0;
    };
    let text = response.text().unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("driftgate_dead_letters_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub(super) fn print_summary(summary: &Summary) {
    let accuracy = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{a:.3}"));
    println!("\nSummary");
    println!(
        "  windows: {}, drift injected into {} from window {}",
        summary.windows,
        summary.injected.join(", "),
        summary.drift_from
    );
    for (feature, windows) in &summary.drifted {
        println!("  drifted: {feature} in windows {windows:?}");
    }
    if summary.drifted.is_empty() {
        println!("  drifted: nothing");
    }
    println!(
        "  decisions: {}",
        summary
            .decisions
            .iter()
            .map(|(o, n)| format!("{n} {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for trigger in &summary.triggers {
        println!("    {trigger}");
    }
    println!("  runs:");
    for run in &summary.runs {
        println!(
            "    {} {} ({}): {} — {} ran, {} cached, {} skipped",
            run.id,
            run.model,
            run.trigger,
            run.status,
            run.ran.len(),
            run.cached.len(),
            run.skipped.len()
        );
    }
    println!(
        "  retrained because of drift: {}",
        if summary.retrained.is_empty() {
            "none".to_string()
        } else {
            summary.retrained.join(", ")
        }
    );
    println!(
        "  {SCORED_MODEL} accuracy: {} before the drift, {} after it, {} after retraining",
        accuracy(summary.accuracy.before),
        accuracy(summary.accuracy.drifted),
        accuracy(summary.accuracy.retrained)
    );
    println!(
        "  alerts delivered to the webhook: {} ({})",
        summary.alerts.values().sum::<u64>(),
        summary
            .alerts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  dead letters: {}", summary.dead_letters);
    let restarts = &summary.since_retrain_restarts;
    if !restarts.is_empty() {
        println!("  data since the last retrain: started again before windows {restarts:?}");
    }
}

/// The windows before which the data since the last retrain started again: those compared
/// with fewer windows than the window before them plus itself.
fn restarts(since_retrain: &[Option<u64>]) -> Vec<usize> {
    let held = |i: usize| since_retrain[i].unwrap_or(0);
    (1..since_retrain.len())
        .filter(|&i| held(i) < held(i - 1) + 1)
        .collect()
}
