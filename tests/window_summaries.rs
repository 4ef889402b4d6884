//! Issue 17: windows whose numeric columns are folded into summaries on the baseline report
//! what windows that keep every value report — same KS bits, same binned metrics, same
//! decisions, Wasserstein within its stated bound — through checkpoints and baseline rotations.

use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Dataset, FeatureKind, Schema};
use driftgate::drift::{DriftSettings, Method};
use driftgate::pipeline::{JudgedWindow, Message, StreamProcessor};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

fn schema() -> Schema {
    Schema::of(&[
        ("amount", FeatureKind::Numeric),
        ("age", FeatureKind::Numeric),
        ("country", FeatureKind::Categorical),
    ])
}

/// A record whose `amount` is on a coarse grid (ties with the baseline) shifted by `shift`, and
/// whose `age` is continuous (no ties).
fn record(rng: &mut SplitMix64, shift: f64) -> serde_json::Value {
    let amount = ((rng.normal() + shift) * 8.0).round() / 8.0;
    let country = ["DE", "FR", "US"][rng.below(3) as usize];
    serde_json::json!({"amount": amount, "age": 40.0 + 9.0 * rng.normal(), "country": country})
}

fn baseline(seed: u64, shift: f64) -> Arc<Baseline> {
    let mut rng = SplitMix64::new(seed);
    let mut data = Dataset::new(schema());
    for _ in 0..3000 {
        data.push_json_record(record(&mut rng, shift).as_object().unwrap());
    }
    Arc::new(Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap())
}

fn settings(summarise_after: u64, method: Method) -> StreamSettings {
    StreamSettings {
        name: "payments".into(),
        topic: "payments.features".into(),
        baseline_path: "baseline.json".into(),
        baseline: baseline(1, 0.0),
        schema: schema(),
        window: WindowSpec::Records(1000),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings {
            numeric_method: method,
            ..DriftSettings::default()
        },
        keep_records: Some(false),
        summarise_after: Some(summarise_after),
        multivariate: Default::default(),
        since_retrain: None,
    }
}

/// Messages of 250 records; from message `shift_from` on, `amount` shifts by 0.2.
fn payloads(messages: usize, shift_from: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(2);
    (0..messages)
        .map(|m| {
            let shift = if m >= shift_from { 0.2 } else { 0.0 };
            let records: Vec<_> = (0..250).map(|_| record(&mut rng, shift)).collect();
            serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap()
        })
        .collect()
}

fn message(offset: usize, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "payments.features",
        partition: 0,
        offset: offset as i64,
        timestamp_ms: Some(1_700_000_000_000 + offset as i64),
        payload: Some(payload),
    }
}

/// Processes `payloads[from..to]` as the messages at those offsets.
fn run(
    processor: &mut StreamProcessor,
    payloads: &[Vec<u8>],
    range: std::ops::Range<usize>,
) -> Vec<JudgedWindow> {
    let mut windows: Vec<JudgedWindow> = range
        .flat_map(|o| processor.process(message(o, &payloads[o])).closed)
        .collect();
    windows.extend(processor.flush());
    windows
}

/// The report as JSON without the Wasserstein entries, and those entries apart.
fn split_wasserstein(window: &JudgedWindow) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut report = serde_json::to_value(&window.report).unwrap();
    let mut distances = Vec::new();
    for feature in report["features"].as_array_mut().unwrap() {
        if let Some(tests) = feature["tests"].as_object_mut() {
            distances.extend(tests.remove("wasserstein"));
        }
    }
    (report, distances)
}

/// Asserts that summarised windows report what raw ones do.
fn assert_same_reports(raw: &[JudgedWindow], summarised: &[JudgedWindow]) -> usize {
    assert_eq!(raw.len(), summarised.len());
    let mut crossing = 0;
    for (raw, summarised) in raw.iter().zip(summarised) {
        let (raw_report, raw_w1) = split_wasserstein(raw);
        let (report, w1) = split_wasserstein(summarised);
        assert_eq!(report, raw_report, "window {}", raw.index);
        assert_eq!(summarised.decisions, raw.decisions);
        for (exact, folded) in raw_w1.iter().zip(&w1) {
            assert!(exact.get("bound").is_none(), "raw windows have no bound");
            let bound = folded["bound"]
                .as_f64()
                .expect("summarised windows say their bound");
            let error =
                (exact["distance"].as_f64().unwrap() - folded["distance"].as_f64().unwrap()).abs();
            assert!(error <= bound + 1e-12, "W1 off by {error}, bound {bound}");
            crossing += usize::from(bound > 0.0);
        }
    }
    crossing
}

#[test]
fn summarised_windows_report_what_raw_windows_report() {
    let payloads = payloads(24, 12);
    // The binned metrics' permutation tests draw tables from the bins' counts, so they too come
    // out of a summary exactly.
    for (method, permutations) in [
        (Method::Ks, 0),
        (Method::Psi, 0),
        (Method::JensenShannon, 0),
        (Method::Hellinger, 0),
        (Method::Psi, 200),
    ] {
        let with = |summarise_after| {
            let mut settings = settings(summarise_after, method);
            settings.drift.permutations = permutations;
            settings
        };
        let mut raw = StreamProcessor::new(with(0), None).unwrap();
        let mut folded = StreamProcessor::new(with(97), None).unwrap();
        let (expected, got) = (
            run(&mut raw, &payloads, 0..24),
            run(&mut folded, &payloads, 0..24),
        );
        assert_eq!(expected.len(), 6);
        assert!(
            expected.iter().any(|w| w.report.drift.dataset.detected),
            "{method:?}: the shift is detected, so decisions are compared on both outcomes"
        );
        assert_same_reports(&expected, &got);
        // Every window was folded: its exported data counts the summarised values.
        let report = serde_json::to_value(&got[0].report).unwrap();
        assert_eq!(report["features"][0]["n_current"], 1000);
    }
}

#[test]
fn a_window_folds_its_values_and_holds_at_most_the_threshold_raw() {
    let payloads = payloads(3, 99);
    let mut processor = StreamProcessor::new(settings(300, Method::Ks), None).unwrap();
    for (offset, payload) in payloads.iter().enumerate() {
        assert!(processor
            .process(message(offset, payload))
            .closed
            .is_empty());
    }
    let open = processor.checkpoint().open_window;
    assert_eq!(open.records, 750);
    let summaries = open
        .summaries
        .expect("750 values passed the threshold of 300");
    for at in [0, 1] {
        let driftgate::decode::Column::Numeric(column) = &open.columns[at] else {
            panic!("numeric");
        };
        assert!(
            column.values.len() < 300,
            "{} raw values",
            column.values.len()
        );
        assert_eq!(summaries.count(at) + column.values.len() as u64, 750);
    }
    assert_eq!(
        summaries.count(2),
        0,
        "categorical counts are summaries already"
    );
}

#[test]
fn wasserstein_keeps_the_values() {
    let payloads = payloads(3, 99);
    for drift in [
        DriftSettings {
            numeric_method: Method::Wasserstein,
            threshold: Some(0.1),
            ..DriftSettings::default()
        },
        DriftSettings {
            numeric_method: Method::Wasserstein,
            permutations: 50,
            ..DriftSettings::default()
        },
    ] {
        let mut settings = settings(10, Method::Ks);
        settings.drift = drift;
        let mut processor = StreamProcessor::new(settings, None).unwrap();
        for (offset, payload) in payloads.iter().enumerate() {
            processor.process(message(offset, payload));
        }
        assert_eq!(processor.checkpoint().open_window.summaries, None);
    }
}

#[test]
fn a_checkpoint_mid_window_carries_its_summaries() {
    let payloads = payloads(16, 8);
    let mut straight = StreamProcessor::new(settings(97, Method::Ks), None).unwrap();
    let expected = run(&mut straight, &payloads, 0..16);
    for stop in [1, 2, 5, 10] {
        let mut first = StreamProcessor::new(settings(97, Method::Ks), None).unwrap();
        let mut windows = run(&mut first, &payloads, 0..stop + 1);
        // Through the store's format, as a restart reads it.
        let text = serde_json::to_string(&first.checkpoint()).unwrap();
        let checkpoint: driftgate::store::Checkpoint = serde_json::from_str(&text).unwrap();
        assert!(checkpoint.open_window.summaries.is_some(), "stop {stop}");
        let mut restarted =
            StreamProcessor::new(settings(97, Method::Ks), Some(checkpoint)).unwrap();
        assert!(restarted.wanted_baselines().is_empty());
        windows.extend(run(&mut restarted, &payloads, 0..16));
        assert_eq!(windows, expected, "checkpoint after message {stop}");
    }
}

#[test]
fn a_window_open_across_a_rotation_is_reported_against_the_baseline_it_was_folded_on() {
    let payloads = payloads(8, 99);
    let old = settings(97, Method::Ks);
    let new = baseline(7, 0.5);
    let mut processor = StreamProcessor::new(old.clone(), None).unwrap();
    let mut windows = run(&mut processor, &payloads, 0..2);
    processor.set_baseline("rotated.json".into(), Arc::clone(&new));
    windows.extend(run(&mut processor, &payloads, 2..8));
    assert_eq!(windows.len(), 2);
    let ids: Vec<_> = windows
        .iter()
        .map(|w| w.report.drift.reference.baseline_id.clone().unwrap())
        .collect();
    assert_eq!(ids, [old.baseline.id.clone(), new.id.clone()]);
    assert_eq!(
        windows[0].report.drift.reference.source.as_deref(),
        Some(format!("baseline {}", old.baseline.id).as_str())
    );
    // The rotated baseline is shifted: the window after the rotation sees the difference.
    assert!(windows[1].report.drift.features[0].drift.detected);
}

#[test]
fn a_restored_window_asks_for_the_earlier_baseline_its_summaries_are_on() {
    let payloads = payloads(6, 99);
    let old = settings(97, Method::Ks);
    let mut first = StreamProcessor::new(old.clone(), None).unwrap();
    run(&mut first, &payloads, 0..2);
    let checkpoint = first.checkpoint();
    let mut expected = StreamProcessor::new(old.clone(), None).unwrap();
    let expected = run(&mut expected, &payloads, 0..4);

    let mut rotated = old.clone();
    rotated.baseline = baseline(7, 0.5);
    for provide in [true, false] {
        let mut restarted =
            StreamProcessor::new(rotated.clone(), Some(checkpoint.clone())).unwrap();
        assert_eq!(
            restarted.wanted_baselines(),
            std::slice::from_ref(&old.baseline.id)
        );
        if provide {
            restarted.provide_baseline(Arc::clone(&old.baseline));
            assert!(restarted.wanted_baselines().is_empty());
        }
        let windows = run(&mut restarted, &payloads, 2..4);
        let amount = &windows[0].report.drift.features[0];
        if provide {
            let (got, want) = (&windows[0].report.drift, &expected[0].report.drift);
            assert_eq!(
                (&got.features, &got.dataset),
                (&want.features, &want.dataset)
            );
            assert_eq!(got.reference.baseline_id, want.reference.baseline_id);
        } else {
            // Without the values or their baseline the feature cannot be tested; it says so.
            let reason = amount.reason.as_deref().unwrap();
            assert!(reason.contains(&old.baseline.id), "{reason}");
            assert!(amount.tests.is_none());
        }
    }
}

#[test]
fn a_window_restored_under_other_bins_gets_layouts_with_its_own_bins() {
    let payloads = payloads(6, 99);
    let settings = settings(97, Method::Ks);
    let mut first = StreamProcessor::new(settings.clone(), None).unwrap();
    run(&mut first, &payloads, 0..2);
    let mut rebinned = settings.clone();
    rebinned.drift.bins = 7;
    let mut restarted = StreamProcessor::new(rebinned, Some(first.checkpoint())).unwrap();
    assert_eq!(
        restarted.wanted_baselines(),
        std::slice::from_ref(&settings.baseline.id)
    );
    restarted.provide_baseline(Arc::clone(&settings.baseline));
    assert!(restarted.wanted_baselines().is_empty());
    let windows = run(&mut restarted, &payloads, 2..4);
    assert!(windows[0].report.drift.features[0].tests.is_some());
}
