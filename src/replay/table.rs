//! The replay as a text table: a row per window with its drift scores and each policy's
//! outcome, then the triggers and totals.

use std::fmt::Write;

use super::{Replay, ReplayWindow};
use crate::policy::Outcome;

/// The decision timeline as a table: per window its records, time, drift share and per-feature
/// scores, and each policy's outcome; then the triggers and retrains.
pub fn table(replay: &Replay) -> String {
    let features: Vec<&String> = replay
        .windows
        .first()
        .map(|w| w.scores.keys().collect())
        .unwrap_or_default();
    let policies: Vec<&String> = replay.triggers.keys().collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>6} {:>8} {:<24} {:>6}",
        "window", "records", "end", "share"
    );
    for feature in &features {
        let _ = write!(out, " {:>12}", clip(feature, 12));
    }
    for policy in &policies {
        let _ = write!(out, " {:<16}", clip(policy, 16));
    }
    out.push('\n');
    for window in &replay.windows {
        row(window, &features, &policies, &mut out);
    }
    footer(replay, &mut out);
    out
}

/// A window's row: its drift scores (`*` where drift was detected) and the policies' outcomes.
fn row(window: &ReplayWindow, features: &[&String], policies: &[&String], out: &mut String) {
    let _ = write!(
        out,
        "{:>6} {:>8} {:<24} {:>6.2}",
        window.index,
        window.records,
        window.end.as_deref().unwrap_or("-"),
        window.drift_share
    );
    for feature in features {
        let score = window.scores.get(*feature).copied().flatten();
        let mark = if window.drifted.contains(feature) {
            "*"
        } else {
            " "
        };
        let _ = write!(
            out,
            " {:>11}{mark}",
            score.map_or("-".to_string(), |s| format!("{s:.3e}"))
        );
    }
    for policy in policies {
        let outcome = window
            .decisions
            .iter()
            .find(|d| &&d.policy == policy)
            .map_or("-", |d| match d.outcome {
                Outcome::Triggered => "TRIGGERED",
                Outcome::NotTriggered => ".",
                Outcome::SuppressedCooldown => "cooldown",
                Outcome::SuppressedBudget => "budget",
                Outcome::SuppressedInFlight => "in flight",
            });
        let _ = write!(out, " {outcome:<16}");
    }
    out.push('\n');
}

/// Totals, undecodable messages, every trigger with its reason, triggers per policy.
fn footer(replay: &Replay, out: &mut String) {
    let _ = writeln!(
        out,
        "\n{} messages, {} records, {} windows ({} records left in the open window); * = drift detected",
        replay.messages,
        replay.records,
        replay.windows.len(),
        replay.open_records
    );
    if !replay.dead_letters.is_empty() {
        let letters: Vec<String> = replay
            .dead_letters
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(out, "undecodable messages: {}", letters.join(", "));
    }
    for window in &replay.windows {
        for decision in &window.decisions {
            if decision.outcome == Outcome::Triggered {
                let _ = writeln!(
                    out,
                    "window {}: {} triggers {}: {}",
                    window.index, decision.policy, decision.model, decision.reason
                );
            }
        }
    }
    let triggers: Vec<String> = replay
        .triggers
        .iter()
        .map(|(policy, n)| format!("{policy} {n}"))
        .collect();
    let _ = writeln!(out, "triggers: {}", triggers.join(", "));
    let _ = writeln!(out, "retrains: {}", replay.total_retrains());
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let kept: String = text.chars().take(width - 1).collect();
        format!("{kept}…")
    }
}
