//! Numeric labels (issue 19, part 3): windows report MAE and RMSE beside accuracy, policies
//! read them, and the error-stream detectors watch the loss a policy chooses.

use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{JudgedWindow, Message, StreamProcessor, WindowPart};
use driftgate::policy::detectors::{AdwinParams, DetectorParams};
use driftgate::policy::{
    Criterion, InFlight, Loss, Metric, Model, Outcome, Policy, Rule, Signal, Source, WindowRule,
};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

const WINDOW: usize = 400;
/// Records before the model's errors grow from σ = 0.5 to σ = 2.
const CHANGE: usize = 1600;

fn schema() -> Schema {
    Schema {
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
    }
}

fn settings(window: WindowSpec) -> StreamSettings {
    let mut rng = SplitMix64::new(5);
    let mut data = Dataset::new(schema());
    for _ in 0..2000 {
        let record = serde_json::json!({"x": rng.normal()});
        data.push_json_record(record.as_object().unwrap());
    }
    let baseline =
        Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap();
    StreamSettings {
        name: "prices".into(),
        topic: "prices.features".into(),
        baseline_path: "baseline.json".into(),
        baseline: Arc::new(baseline),
        schema: schema(),
        window,
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: None,
        summarise_after: None,
        multivariate: Default::default(),
        since_retrain: None,
    }
}

/// Records of a regression model predicting `2x`; its residuals have σ = 0.5 before
/// [`CHANGE`] and σ = 2 after. Returned with each record's residual.
fn records(count: usize) -> Vec<(serde_json::Value, f64)> {
    let mut rng = SplitMix64::new(9);
    (0..count)
        .map(|i| {
            let x = rng.normal();
            let noise = rng.normal() * if i >= CHANGE { 2.0 } else { 0.5 };
            let (prediction, label) = (2.0 * x, 2.0 * x + noise);
            let record = serde_json::json!({"x": x, "prediction": prediction, "label": label,
                "ts": 1_700_000_000_000i64 + i as i64});
            (record, prediction - label)
        })
        .collect()
}

/// A policy of its own model (so no policy's trigger holds another's back) on one signal,
/// judged window by window.
fn policy(name: &str, signal: Signal) -> Policy {
    Policy {
        name: name.into(),
        model: name.into(),
        when: Rule::Signal(signal),
        windows: WindowRule::Consecutive { k: 1 },
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Suppress,
    }
}

fn detector(loss: Loss) -> Signal {
    Signal {
        source: Source::Detector(DetectorParams::Adwin(AdwinParams::default()), loss),
        metric: Metric::Changes,
        criterion: Criterion::AtLeast { threshold: 1.0 },
        reference: Default::default(),
    }
}

fn processor(window: WindowSpec) -> StreamProcessor {
    let mut processor = StreamProcessor::new(settings(window), None).unwrap();
    let model = |name: &str| Model {
        name: name.into(),
        stream: "prices".into(),
        features: vec!["x".into()],
        dag: None,
    };
    let mae = Signal {
        source: Source::Performance,
        metric: Metric::Mae,
        criterion: Criterion::Above { threshold: 1.0 },
        reference: Default::default(),
    };
    processor.set_policies(
        &[model("mae"), model("absolute"), model("zero-one")],
        &[
            policy("mae", mae),
            policy("absolute", detector(Loss::Absolute)),
            policy("zero-one", detector(Loss::ZeroOne)),
        ],
    );
    processor
}

fn message(partition: i32, offset: usize, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "prices.features",
        partition,
        offset: offset as i64,
        timestamp_ms: Some(1_700_000_000_000 + offset as i64),
        payload: Some(payload),
    }
}

/// The windows of `records` sent to `partition`, 100 to a message.
fn run(
    processor: &mut StreamProcessor,
    partition: i32,
    records: &[(serde_json::Value, f64)],
) -> Vec<JudgedWindow> {
    let mut windows = Vec::new();
    for (offset, chunk) in records.chunks(100).enumerate() {
        let batch: Vec<_> = chunk.iter().map(|(record, _)| record).collect();
        let payload = serde_json::to_vec(&batch).unwrap();
        windows.extend(
            processor
                .process(message(partition, offset, &payload))
                .closed,
        );
    }
    windows
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn windows_report_mae_and_rmse_of_numeric_labels() {
    let records = records(8 * WINDOW);
    let windows = run(
        &mut processor(WindowSpec::Records(WINDOW as u64)),
        0,
        &records,
    );
    assert_eq!(windows.len(), 8);
    for (window, chunk) in windows.iter().zip(records.chunks(WINDOW)) {
        let n = chunk.len() as f64;
        let mae = chunk.iter().map(|(_, r)| r.abs()).sum::<f64>() / n;
        let rmse = (chunk.iter().map(|(_, r)| r * r).sum::<f64>() / n).sqrt();
        let report = serde_json::to_value(&window.report).unwrap();
        let performance = &report["performance"];
        assert_eq!(performance["labelled"], 400);
        assert_eq!(performance["numeric_labelled"], 400);
        // A regression model's predictions are never exactly right.
        assert_eq!(performance["accuracy"], 0.0);
        let got = |key: &str| performance[key].as_f64().unwrap();
        assert!(close(got("mae"), mae), "{} vs {mae}", got("mae"));
        assert!(close(got("rmse"), rmse), "{} vs {rmse}", got("rmse"));
    }
}

#[test]
fn policies_read_mae_and_detectors_watch_their_loss() {
    let records = records(8 * WINDOW);
    let windows = run(
        &mut processor(WindowSpec::Records(WINDOW as u64)),
        0,
        &records,
    );
    let outcomes = |name: &str| -> Vec<bool> {
        windows
            .iter()
            .map(|w| {
                let decision = w.decisions.iter().find(|d| d.policy == name).unwrap();
                decision.outcome == Outcome::Triggered
            })
            .collect()
    };
    // MAE is about 0.4 before the change and 1.6 after it.
    let after: Vec<bool> = (0..8).map(|w| w * WINDOW >= CHANGE).collect();
    assert_eq!(outcomes("mae"), after);
    // Every prediction is wrong: the zero-one stream is constant, so it never changes; the
    // absolute errors quadruple, and ADWIN sees it in the first window after the change.
    assert_eq!(outcomes("zero-one"), vec![false; 8]);
    let absolute = outcomes("absolute");
    assert!(
        !absolute[..CHANGE / WINDOW].iter().any(|t| *t),
        "{absolute:?}"
    );
    assert!(absolute[CHANGE / WINDOW], "{absolute:?}");
}

#[test]
fn a_window_merged_from_parts_has_the_whole_windows_errors() {
    // Two partitions' parts of one minute-long interval, merged, against the same records read
    // by one processor.
    let records = records(2400);
    let minute = WindowSpec::DurationMs(60_000);
    let mut whole = processor(minute);
    run(&mut whole, 0, &records);
    let mut closed = whole.tick(i64::MAX / 2);
    assert_eq!(closed.len(), 1);
    let expected = closed.remove(0);
    let mut parts: Vec<WindowPart> = Vec::new();
    for (partition, half) in [(0, &records[..1000]), (1, &records[1000..])] {
        let mut part = processor(minute);
        part.cut_parts().unwrap();
        run(&mut part, partition, half);
        parts.extend(part.tick_parts(i64::MAX / 2));
    }
    assert_eq!(parts.len(), 2);
    let mut judge = processor(minute);
    let merged = judge.judge_parts(0, parts).unwrap();
    let (got, want) = (&merged.report.performance, &expected.report.performance);
    assert_eq!(got.numeric_labelled, 2400);
    assert_eq!(got.numeric_labelled, want.numeric_labelled);
    assert!(close(got.mae.unwrap(), want.mae.unwrap()));
    assert!(close(got.rmse.unwrap(), want.rmse.unwrap()));
    let judged =
        |w: &JudgedWindow| -> Vec<Outcome> { w.decisions.iter().map(|d| d.outcome).collect() };
    assert_eq!(judged(&merged), judged(&expected));
    // The parts' residuals reach the detector in time order: it sees the change.
    let absolute = merged.decisions.iter().find(|d| d.policy == "absolute");
    assert_eq!(absolute.unwrap().outcome, Outcome::Triggered);
}
