//! Issue 18, part 4: a stream that keeps the data since its models' last retrain compares every
//! window with it as well as with the baseline, starts it again on a retrain, keeps it across a
//! restart, and policies read either reference.

mod common;

use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{Checkpoint, JudgedWindow, Message, StreamProcessor};
use driftgate::policy::{
    Criterion, InFlight, Metric, Model, Outcome, Policy, Reference, Rule, Signal, Source,
    WindowRule,
};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

/// Records per window; every message holds a quarter of one.
const WINDOW: usize = 400;
/// Windows from which `x` is shifted by one standard deviation.
const SHIFT_FROM: u64 = 4;
/// The window after which a run of the stream's model succeeds.
const RETRAINED_AFTER: u64 = 5;

fn schema() -> Schema {
    let feature = |name: &str, kind| FeatureSpec {
        name: name.into(),
        kind,
    };
    Schema {
        features: vec![
            feature("x", FeatureKind::Numeric),
            feature("colour", FeatureKind::Categorical),
        ],
    }
}

/// `n` records of `x` around `mean` and a colour that never changes.
fn records(rng: &mut SplitMix64, n: usize, mean: f64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|_| {
            let colour = ["red", "green", "blue"][rng.below(3) as usize];
            serde_json::json!({"x": rng.normal() + mean, "colour": colour})
        })
        .collect()
}

fn settings() -> StreamSettings {
    let mut rng = SplitMix64::new(40);
    let mut data = Dataset::new(schema());
    for record in records(&mut rng, 4000, 0.0) {
        data.push_json_record(record.as_object().unwrap());
    }
    let baseline =
        Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap();
    StreamSettings {
        name: "s".into(),
        topic: "s.features".into(),
        baseline_path: "baseline.json".into(),
        baseline: Arc::new(baseline),
        schema: schema(),
        window: WindowSpec::Records(WINDOW as u64),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: None,
        summarise_after: None,
        multivariate: Default::default(),
        since_retrain: Some(1000),
    }
}

/// A policy of model `m` on `x`'s KS p-value against `reference`.
fn policy(name: &str, reference: Reference) -> Policy {
    Policy {
        name: name.into(),
        model: "m".into(),
        when: Rule::Signal(Signal {
            source: Source::Feature("x".into()),
            metric: Metric::KsPValue,
            criterion: Criterion::Below { threshold: 0.001 },
            reference,
        }),
        windows: WindowRule::Consecutive { k: 1 },
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Trigger,
    }
}

fn processor(checkpoint: Option<Checkpoint>) -> StreamProcessor {
    let mut processor = StreamProcessor::new(settings(), checkpoint).unwrap();
    let model = Model {
        name: "m".into(),
        stream: "s".into(),
        features: vec!["x".into(), "colour".into()],
        dag: None,
    };
    let policies = [
        policy("training", Reference::Training),
        policy("since", Reference::SinceRetrain),
    ];
    processor.set_policies(&[model], &policies);
    processor
}

/// Ten windows' messages, `x` shifted from window [`SHIFT_FROM`] on.
fn payloads() -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(41);
    (0..40)
        .map(|m| {
            let mean = if m / 4 >= SHIFT_FROM as usize {
                1.0
            } else {
                0.0
            };
            serde_json::to_vec(&records(&mut rng, WINDOW / 4, mean)).unwrap()
        })
        .collect()
}

fn message(offset: usize, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "s.features",
        partition: 0,
        offset: offset as i64,
        timestamp_ms: None,
        payload: Some(payload),
    }
}

/// Feeds messages `range`, telling the processor of the retrain once its window is judged.
fn feed(
    processor: &mut StreamProcessor,
    payloads: &[Vec<u8>],
    range: std::ops::Range<usize>,
) -> Vec<JudgedWindow> {
    let mut windows = Vec::new();
    for offset in range {
        for window in processor.process(message(offset, &payloads[offset])).closed {
            if window.index == RETRAINED_AFTER {
                processor.retrained();
            }
            windows.push(window);
        }
    }
    windows
}

/// `x`'s KS p-value against the baseline, and against the data since the retrain.
fn p_values(window: &JudgedWindow) -> (f64, Option<f64>) {
    let x = |features: &[driftgate::drift::FeatureReport]| {
        let feature = features.iter().find(|f| f.name == "x").unwrap();
        feature.drift.p_value.unwrap()
    };
    let report = &window.report;
    let since = report.since_retrain.as_ref().map(|s| x(&s.drift.features));
    (x(&report.drift.features), since)
}

fn triggered(window: &JudgedWindow, policy: &str) -> bool {
    let decision = window
        .decisions
        .iter()
        .find(|d| d.policy == policy)
        .unwrap();
    decision.outcome == Outcome::Triggered
}

#[test]
fn windows_are_compared_with_the_data_since_the_last_retrain_too() {
    let payloads = payloads();
    let mut processor = processor(None);
    let windows = feed(&mut processor, &payloads, 0..40);
    assert_eq!(windows.len(), 10);
    for window in &windows {
        let i = window.index;
        let (training, since) = p_values(window);
        let seen = window
            .report
            .since_retrain
            .as_ref()
            .map(|s| (s.windows, s.records));
        // Windows judged since the start, or since the retrain after window 5.
        let expected = if i > RETRAINED_AFTER {
            i - RETRAINED_AFTER - 1
        } else {
            i
        };
        let expected = (expected > 0).then_some((expected, expected * WINDOW as u64));
        assert_eq!(seen, expected, "window {i}");
        // Against the baseline, `x` drifts from the shift on.
        assert_eq!(training < 1e-6, i >= SHIFT_FROM, "window {i}: p {training}");
        assert_eq!(triggered(window, "training"), i >= SHIFT_FROM, "window {i}");
        // Against the data since the retrain: not before the shift; then, until the retrain,
        // against data mostly from before it; after the retrain, against shifted data only.
        let moved = (SHIFT_FROM..=RETRAINED_AFTER).contains(&i);
        if let Some(since) = since {
            assert_eq!(since < 1e-6, moved, "window {i}: p {since}");
            assert_eq!(since > 0.001, !moved, "window {i}: p {since}");
        }
        assert_eq!(triggered(window, "since"), moved, "window {i}");
    }
    // The signal on the second reference says which one it read.
    let reading = &windows[4].decisions.iter().find(|d| d.policy == "since");
    let text = &reading.unwrap().signals[0].text;
    assert!(text.starts_with("x (since retrain): ks.p_value"), "{text}");
    // With nothing since the retrain, the signal has no value and no hit.
    let after = &windows[RETRAINED_AFTER as usize + 1].decisions;
    let reading = &after.iter().find(|d| d.policy == "since").unwrap().signals[0];
    assert_eq!(reading.value, None);
}

#[test]
fn the_data_since_the_retrain_outlives_a_restart() {
    let payloads = payloads();
    let mut whole = processor(None);
    let mut before = feed(&mut whole, &payloads, 0..34);
    let checkpoint = whole.checkpoint();
    let kept = checkpoint.since_retrain.clone().unwrap();
    assert_eq!((kept.windows, kept.records), (2, 2 * WINDOW as u64));
    // Through the checkpoint's JSON, as the store keeps it.
    let json = serde_json::to_string(&checkpoint).unwrap();
    assert!(json.contains("\"since_retrain\""));
    let mut restored = processor(Some(serde_json::from_str(&json).unwrap()));
    assert_eq!(restored.since_retrain(), whole.since_retrain());
    let after = feed(&mut restored, &payloads, 34..40);
    let uninterrupted = feed(&mut whole, &payloads, 34..40);
    assert_eq!(after.len(), 2);
    for (a, b) in after.iter().zip(&uninterrupted) {
        assert_eq!(a.report.since_retrain, b.report.since_retrain);
        assert!(a.report.since_retrain.is_some());
    }
    before.extend(after);
    assert_eq!(before.len(), 10);
}

/// `driftgate config check` of the stream of `x` and `colour`, with `stream_extra`, and model
/// `m`'s policy `when`.
fn check(dir: &std::path::Path, stream_extra: &str, when: &str) -> String {
    let baseline = dir.join("baseline.json");
    std::fs::write(
        &baseline,
        serde_json::to_string(&*settings().baseline).unwrap(),
    )
    .unwrap();
    let features = [("x", "numeric"), ("colour", "categorical")];
    common::config::check(dir, &baseline, &features, stream_extra, when)
}

#[test]
fn the_configuration_says_what_the_second_reference_needs() {
    let dir = tempfile::tempdir().unwrap();
    let keeps = "drift = { since_retrain = true, since_retrain_sample = 2000 }";
    let since =
        r#"{ feature = "*", metric = "p_value", below = 0.001, reference = "since_retrain" }"#;
    let ok = check(dir.path(), keeps, since);
    assert!(
        ok.starts_with("exit Some(0)") && ok.contains("policy p: model m, 2 signal(s)"),
        "{ok}"
    );
    let dataset = r#"{ dataset = "share", above = 0.5, reference = "since_retrain" }"#;
    assert!(check(dir.path(), keeps, dataset).starts_with("exit Some(0)"));
    let training = r#"{ feature = "x", reference = "training" }"#;
    assert!(check(dir.path(), "", training).starts_with("exit Some(0)"));

    let not_kept = check(dir.path(), "", since);
    assert!(
        not_kept.contains("policies[0].when.reference: the stream of model `m` does not keep the data since the last retrain: set drift.since_retrain = true on it"),
        "{not_kept}"
    );
    let performance = r#"{ performance = "accuracy", below = 0.9, reference = "since_retrain" }"#;
    let other_form = check(dir.path(), keeps, performance);
    assert!(
        other_form.contains("only `feature` and `dataset` signals take a reference"),
        "{other_form}"
    );
    let unknown = check(
        dir.path(),
        keeps,
        r#"{ feature = "x", reference = "yesterday" }"#,
    );
    assert!(
        unknown.contains("\"yesterday\" is not a reference: use training or since_retrain"),
        "{unknown}"
    );
    let summarised = format!("summarise_after = 1000\n{keeps}");
    let both = check(dir.path(), &summarised, r#"{ feature = "x" }"#);
    assert!(
        both.contains(
            "streams[0].summarise_after: windows are never summarised with drift.since_retrain"
        ),
        "{both}"
    );
    let empty = "drift = { since_retrain = true, since_retrain_sample = 0 }";
    let no_sample = check(dir.path(), empty, r#"{ feature = "x" }"#);
    assert!(
        no_sample.contains("streams[0].drift.since_retrain_sample: must be at least 1"),
        "{no_sample}"
    );
}
