//! Model outputs watched (issue 19, part 3): a baseline profiles the training data's
//! `prediction` and `label`, windows compare theirs with it, and policies trigger on it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Dataset, FeatureKind, FeatureSpec, Outputs, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{JudgedWindow, Message, StreamProcessor, WindowPart};
use driftgate::policy::{
    Criterion, InFlight, Metric, Model, Outcome, Policy, Rule, Signal, Source, WindowRule,
};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

const WINDOW: usize = 500;
/// Windows from this one on get predictions one higher (the features do not change).
const SHIFT_FROM: usize = 4;

/// A record: feature `x`, a numeric `prediction` (shifted by `shift`), a string `label`.
fn record(rng: &mut SplitMix64, shift: f64, ts: i64) -> serde_json::Value {
    let prediction = ((rng.normal() + shift) * 1000.0).round() / 1000.0;
    let label = ["yes", "no"][usize::from(rng.next_f64() < 0.7)];
    serde_json::json!({"ts": ts, "x": rng.normal(), "prediction": prediction, "label": label})
}

fn schema() -> Schema {
    Schema {
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
    }
}

fn baseline() -> Baseline {
    let mut rng = SplitMix64::new(1);
    let (mut data, mut outputs) = (Dataset::new(schema()), Outputs::adaptive());
    for i in 0..4000 {
        let record = record(&mut rng, 0.0, i);
        data.push_json_record(record.as_object().unwrap());
        outputs.push_json(record.as_object().unwrap());
    }
    let mut baseline =
        Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap();
    baseline.profile_outputs(outputs);
    baseline.id = baseline.content_id();
    baseline
}

fn processor(window: WindowSpec) -> StreamProcessor {
    let settings = StreamSettings {
        name: "scores".into(),
        topic: "scores.features".into(),
        baseline_path: "baseline.npz".into(),
        baseline: Arc::new(baseline()),
        schema: schema(),
        window,
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: None,
        summarise_after: None,
        multivariate: Default::default(),
        since_retrain: None,
    };
    with_policies(StreamProcessor::new(settings, None).unwrap())
}

/// The processor with model `m`, triggered by its predictions' drift.
fn with_policies(mut processor: StreamProcessor) -> StreamProcessor {
    let model = Model {
        name: "m".into(),
        stream: "scores".into(),
        features: vec!["x".into()],
        dag: None,
    };
    let policy = Policy {
        name: "predictions".into(),
        model: "m".into(),
        when: Rule::Signal(Signal {
            source: Source::Output("prediction".into()),
            metric: Metric::Detected,
            criterion: Criterion::IsTrue,
            reference: Default::default(),
        }),
        windows: WindowRule::Consecutive { k: 1 },
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Trigger,
    };
    processor.set_policies(&[model], &[policy]);
    processor
}

/// Eight windows' records, the later ones' predictions shifted; each message holds 100.
fn messages() -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(2);
    let records: Vec<_> = (0..8 * WINDOW)
        .map(|i| {
            let shift = if i / WINDOW >= SHIFT_FROM { 1.0 } else { 0.0 };
            record(&mut rng, shift, 1_700_000_000_000 + i as i64)
        })
        .collect();
    records
        .chunks(100)
        .map(|chunk| serde_json::to_vec(chunk).unwrap())
        .collect()
}

fn message(partition: i32, offset: usize, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "scores.features",
        partition,
        offset: offset as i64,
        timestamp_ms: None,
        payload: Some(payload),
    }
}

fn output<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    let outputs = report["outputs"].as_array().expect("an outputs list");
    outputs.iter().find(|o| o["name"] == name).unwrap()
}

#[test]
fn windows_compare_their_predictions_and_labels_with_the_baseline() {
    let mut processor = processor(WindowSpec::Records(WINDOW as u64));
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (offset, payload) in messages().iter().enumerate() {
        windows.extend(processor.process(message(0, offset, payload)).closed);
    }
    assert_eq!(windows.len(), 8);
    for (i, window) in windows.iter().enumerate() {
        let report = serde_json::to_value(&window.report).unwrap();
        let shifted = i >= SHIFT_FROM;
        let prediction = output(&report, "prediction");
        assert_eq!(prediction["kind"], "numeric");
        assert_eq!(prediction["n_current"], WINDOW);
        assert_eq!(prediction["drift"]["detected"], shifted, "window {i}");
        let label = output(&report, "label");
        assert_eq!(label["kind"], "categorical");
        assert_eq!(
            label["drift"]["detected"], false,
            "window {i}: labels never change"
        );
        // The features are not the outputs: `x` never drifts, and is the only feature.
        assert_eq!(report["dataset"]["features"], 1);
        assert_eq!(report["dataset"]["detected"], false);
        let triggered = window.decisions[0].outcome == Outcome::Triggered;
        assert_eq!(
            triggered, shifted,
            "window {i}: {}",
            window.decisions[0].reason
        );
    }
}

#[test]
fn a_restored_checkpoint_and_merged_parts_keep_the_outputs() {
    let messages = messages();
    let mut straight = processor(WindowSpec::Records(WINDOW as u64));
    let mut restarted = processor(WindowSpec::Records(WINDOW as u64));
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for (offset, payload) in messages.iter().enumerate() {
        expected.extend(straight.process(message(0, offset, payload)).closed);
        got.extend(restarted.process(message(0, offset, payload)).closed);
        if offset == 7 {
            // Mid-window: the open window's outputs travel in the checkpoint.
            let checkpoint = restarted.checkpoint();
            let settings = restarted.settings().clone();
            restarted = with_policies(StreamProcessor::new(settings, Some(checkpoint)).unwrap());
        }
    }
    let reports = |w: &[JudgedWindow]| -> Vec<serde_json::Value> {
        w.iter()
            .map(|w| serde_json::to_value(&w.report).unwrap()["outputs"].clone())
            .collect()
    };
    assert_eq!(reports(&got), reports(&expected));
    // Two partitions' parts of one minute-long interval, merged: the same outputs as one
    // processor reading both.
    let minute = WindowSpec::DurationMs(60_000);
    let mut whole = processor(minute);
    let mut parts: Vec<WindowPart> = Vec::new();
    for (partition, range) in [(0, 0..20), (1, 20..40)] {
        let mut part = processor(minute);
        part.cut_parts().unwrap();
        for offset in range {
            whole.process(message(partition, offset, &messages[offset]));
            part.process(message(partition, offset, &messages[offset]));
        }
        parts.extend(part.tick_parts(i64::MAX / 2));
    }
    let expected = whole.tick(i64::MAX / 2).remove(0);
    let merged = processor(minute).judge_parts(0, parts).unwrap();
    let outputs = |w: &JudgedWindow| serde_json::to_value(&w.report).unwrap()["outputs"].clone();
    assert_eq!(outputs(&merged), outputs(&expected));
    let report = serde_json::to_value(&merged.report).unwrap();
    assert_eq!(output(&report, "prediction")["n_current"], 8 * WINDOW);
}

fn driftgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn baseline_build_profiles_the_outputs_of_jsonl_and_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(3);
    let (mut jsonl, mut csv) = (String::new(), String::from("x,prediction,label\n"));
    for i in 0..1000 {
        let record = record(&mut rng, 0.0, i);
        jsonl.push_str(&format!("{record}\n"));
        csv.push_str(&format!(
            "{},{},{}\n",
            record["x"],
            record["prediction"],
            record["label"].as_str().unwrap()
        ));
    }
    let shows: Vec<String> = [("train.jsonl", jsonl), ("train.csv", csv)]
        .into_iter()
        .map(|(name, text)| {
            let input = dir.path().join(name);
            std::fs::write(&input, text).unwrap();
            let output = dir.path().join(format!("{name}.npz"));
            let built = driftgate(&[
                "baseline",
                "build",
                "--input",
                s(&input),
                "--output",
                s(&output),
            ]);
            assert!(
                built.contains("output prediction (numeric), output label (categorical)"),
                "{built}"
            );
            let json = dir.path().join(format!("{name}.json"));
            driftgate(&["baseline", "convert", s(&output), s(&json)]);
            let show = driftgate(&["baseline", "show", s(&json)]);
            assert_eq!(
                show.lines().next(),
                driftgate(&["baseline", "show", s(&output)]).lines().next()
            );
            show
        })
        .collect();
    for show in &shows {
        let outputs = show.split("  model outputs:\n").nth(1).expect(show);
        assert!(
            outputs.contains("prediction") && outputs.contains("numeric"),
            "{show}"
        );
        assert!(
            outputs.contains("label") && outputs.contains("2 categories"),
            "{show}"
        );
    }
    // The same records as JSONL and as CSV: the same outputs.
    let outputs = |show: &str| show.split("  model outputs:\n").nth(1).unwrap().to_string();
    assert_eq!(outputs(&shows[0]), outputs(&shows[1]));
}
