//! The stream processor without a broker: batches in, windows with drift reports out, bad
//! messages as dead letters, and a replay from a checkpoint that counts nothing twice.

use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Column, Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::JudgedWindow;
use driftgate::pipeline::{Message, StreamProcessor};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

fn schema() -> Schema {
    Schema {
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
    }
}

fn settings() -> StreamSettings {
    let mut rng = SplitMix64::new(11);
    let mut data = Dataset::new(schema());
    for _ in 0..5000 {
        let country = ["DE", "FR", "US"][rng.below(3) as usize];
        let record = serde_json::json!({"amount": rng.normal(), "country": country});
        data.push_json_record(record.as_object().unwrap());
    }
    assert!(matches!(data.columns[0], Column::Numeric(_)));
    let baseline =
        Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap();
    StreamSettings {
        name: "payments".into(),
        topic: "payments.features".into(),
        baseline_path: "baseline.json".into(),
        baseline: Arc::new(baseline),
        schema: schema(),
        window: WindowSpec::Records(400),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: None,
        summarise_after: None,
        multivariate: Default::default(),
        since_retrain: None,
    }
}

/// Messages of 100 records each; `amount` shifts by `shift` from message `shift_from` on.
fn payloads(messages: usize, shift_from: usize, shift: f64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(12);
    (0..messages)
        .map(|m| {
            let records: Vec<_> = (0..100)
                .map(|_| {
                    let amount = rng.normal() + if m >= shift_from { shift } else { 0.0 };
                    let country = ["DE", "FR", "US"][rng.below(3) as usize];
                    serde_json::json!({"amount": amount, "country": country})
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap()
        })
        .collect()
}

fn message(offset: i64, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "payments.features",
        partition: 0,
        offset,
        timestamp_ms: Some(1_700_000_000_000 + offset),
        payload: Some(payload),
    }
}

#[test]
fn windows_flag_exactly_the_shifted_ones() {
    let payloads = payloads(24, 12, 1.0);
    let mut processor = StreamProcessor::new(settings(), None).unwrap();
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (offset, payload) in payloads.iter().enumerate() {
        windows.extend(processor.process(message(offset as i64, payload)).closed);
    }
    assert_eq!(windows.len(), 6);
    for (i, window) in windows.iter().enumerate() {
        // The report as it leaves the process: its JSON contract.
        let report = &serde_json::to_value(&window.report).unwrap();
        assert_eq!(report["stream"], "payments");
        assert_eq!(report["window"]["index"], i as u64);
        assert_eq!(report["window"]["records"], 400);
        let first = (i * 4) as i64;
        assert_eq!(
            report["window"]["offsets"]["payments.features/0"]["first"],
            first
        );
        assert_eq!(
            report["window"]["offsets"]["payments.features/0"]["last"],
            first + 3
        );
        let amount = &report["features"][0];
        assert_eq!(amount["name"], "amount");
        assert_eq!(
            amount["drift"]["detected"],
            i >= 3,
            "window {i}: {}",
            amount["drift"]
        );
        assert_eq!(
            report["features"][1]["drift"]["detected"], false,
            "window {i}"
        );
    }
}

#[test]
fn bad_messages_become_dead_letters_and_processing_goes_on() {
    let good = payloads(1, 99, 0.0).remove(0);
    let mut processor = StreamProcessor::new(settings(), None).unwrap();
    assert_eq!(processor.process(message(0, &good)).records, 100);
    let outcome = processor.process(message(1, b"{broken"));
    let letter = outcome.dead_letter.expect("a dead letter");
    assert_eq!((letter.reason.as_str(), letter.offset), ("invalid_json", 1));
    assert_eq!(letter.payload.as_deref(), Some(&b"{broken"[..]));
    assert_eq!(processor.process(message(2, &good)).records, 100);
    assert_eq!(processor.checkpoint().open_window.records, 200);
}

#[test]
fn replay_after_a_checkpoint_counts_nothing_twice() {
    let payloads = payloads(10, 99, 0.0);
    let mut straight = StreamProcessor::new(settings(), None).unwrap();
    let expected: Vec<JudgedWindow> = payloads
        .iter()
        .enumerate()
        .flat_map(|(o, p)| straight.process(message(o as i64, p)).closed)
        .collect();

    let mut first = StreamProcessor::new(settings(), None).unwrap();
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (offset, payload) in payloads.iter().enumerate().take(6) {
        windows.extend(first.process(message(offset as i64, payload)).closed);
    }
    // The checkpoint is taken after message 5; Kafka's commit lagged, so a restart re-reads
    // from message 3.
    let checkpoint = first.checkpoint();
    let mut restarted = StreamProcessor::new(settings(), Some(checkpoint)).unwrap();
    for (offset, payload) in payloads.iter().enumerate().skip(3) {
        let outcome = restarted.process(message(offset as i64, payload));
        assert_eq!(outcome.skipped, offset < 6, "offset {offset}");
        windows.extend(outcome.closed);
    }
    assert_eq!(windows, expected);
    assert_eq!(windows.len(), 2);
}

#[test]
fn labelled_records_give_each_window_its_accuracy_and_policies_can_judge_it() {
    use driftgate::policy::{
        Criterion, InFlight, Metric, Model, Outcome, Policy, Rule, Signal, Source, WindowRule,
    };
    let mut processor = StreamProcessor::new(settings(), None).unwrap();
    let model = Model {
        name: "fraud".into(),
        stream: "payments".into(),
        features: vec!["amount".into()],
        // A model with a DAG makes the stream keep its records for the run's export.
        dag: Some("retrain".into()),
    };
    let policy = Policy {
        name: "quality".into(),
        model: "fraud".into(),
        when: Rule::Signal(Signal {
            source: Source::Performance,
            metric: Metric::ErrorRate,
            criterion: Criterion::Above { threshold: 0.2 },
            reference: Default::default(),
        }),
        windows: WindowRule::Consecutive { k: 1 },
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Suppress,
    };
    processor.set_policies(&[model], &[policy]);
    // Window 0: 9 of 10 labelled records right (labels as strings, numbers and booleans);
    // window 1: half right. Records without both fields do not count.
    let record = |prediction: serde_json::Value, label: serde_json::Value| serde_json::json!({"amount": 0.1, "country": "DE", "prediction": prediction, "label": label});
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (right, wrong) in [(9, 1), (5, 5)] {
        let mut records = Vec::new();
        for i in 0..right {
            records.push(match i % 3 {
                0 => record("fraud".into(), "fraud".into()),
                1 => record(1.into(), serde_json::json!(1.0)),
                _ => record(true.into(), true.into()),
            });
        }
        for _ in 0..wrong {
            records.push(record(1.into(), "1".into()));
        }
        while records.len() < 400 {
            records.push(serde_json::json!({"amount": 0.1, "country": "DE", "label": "x"}));
        }
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
        let offset = windows.len() as i64;
        windows.extend(processor.process(message(offset, &payload)).closed);
    }
    let performance: Vec<_> = windows
        .iter()
        .map(|w| {
            let p = &w.report.performance;
            (p.labelled, p.accuracy.unwrap())
        })
        .collect();
    assert_eq!(performance, [(10, 0.9), (10, 0.5)]);
    let outcomes: Vec<Outcome> = windows.iter().map(|w| w.decisions[0].outcome).collect();
    assert_eq!(outcomes, [Outcome::NotTriggered, Outcome::Triggered]);
    assert_eq!(
        windows[1].decisions[0].reason,
        "performance: error_rate 0.5 > 0.2 in this window"
    );
    // The triggering window's records, one JSON line each, as they arrived (time is the
    // broker's, as the records carry no `ts`).
    let data = windows[1]
        .data
        .as_deref()
        .expect("a triggered window keeps its data");
    let lines: Vec<serde_json::Value> = data
        .records
        .as_deref()
        .expect("records kept")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 400);
    let ts = 1_700_000_000_001_i64;
    assert_eq!(
        lines[0],
        serde_json::json!({"ts": ts, "amount": 0.1, "country": "DE", "prediction": "fraud", "label": "fraud"})
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"ts": ts, "amount": 0.1, "country": "DE", "prediction": 1, "label": 1})
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"ts": ts, "amount": 0.1, "country": "DE", "prediction": true, "label": true})
    );
    assert_eq!(
        lines[399],
        serde_json::json!({"ts": ts, "amount": 0.1, "country": "DE", "label": "x"})
    );
    assert!(
        windows[0].data.is_none(),
        "an untriggered window keeps nothing"
    );
}

#[test]
fn kept_records_continue_across_a_checkpoint_and_are_escaped() {
    let mut with_records = settings();
    with_records.keep_records = Some(true);
    let mut processor = StreamProcessor::new(with_records.clone(), None).unwrap();
    processor.set_policies(&[], &[]);
    let payloads = payloads(2, 99, 0.0);
    processor.process(message(0, &payloads[0]));
    let checkpoint = processor.checkpoint();
    let before = checkpoint.open_window.rows.clone().expect("rows kept");
    assert_eq!(before.lines().count(), 100);

    let mut restarted = StreamProcessor::new(with_records, Some(checkpoint)).unwrap();
    restarted.set_policies(&[], &[]);
    restarted.process(message(1, &payloads[1]));
    let odd = serde_json::json!([{"amount": 2.5, "country": "a \"quoted\"\nline; $(touch /tmp/x)", "ts": 1_700_000_123_456_i64}]);
    restarted.process(message(2, &serde_json::to_vec(&odd).unwrap()));
    // Numbers keep the text they arrived in (no reformatting on the hot path).
    restarted.process(message(3, br#"[{"amount": 12.50, "country": "DE"}]"#));
    let after = restarted.checkpoint().open_window.rows.expect("rows kept");
    assert!(
        after.lines().last().unwrap().contains(r#""amount":12.50,"#),
        "{}",
        after.lines().last().unwrap()
    );
    let after: String = after.lines().take(201).map(|l| format!("{l}\n")).collect();
    assert!(after.starts_with(&before));
    let lines: Vec<serde_json::Value> = after
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 201);
    assert_eq!(
        lines[200],
        serde_json::json!({"ts": 1_700_000_123_456_i64, "amount": 2.5, "country": "a \"quoted\"\nline; $(touch /tmp/x)"})
    );

    // By default a stream without a DAG-bound model keeps none.
    let mut plain = StreamProcessor::new(settings(), None).unwrap();
    plain.set_policies(&[], &[]);
    plain.process(message(0, &payloads[0]));
    assert_eq!(plain.checkpoint().open_window.rows, None);
}

#[test]
fn an_error_stream_detector_policy_triggers_in_the_window_where_the_errors_change() {
    use driftgate::policy::detectors::{
        AdwinParams, Detector, DetectorParams, Direction, PageHinkleyParams,
    };
    use driftgate::policy::Outcome;
    for params in [
        DetectorParams::PageHinkley(PageHinkleyParams {
            threshold: 10.0,
            mode: Direction::Up,
            ..PageHinkleyParams::default()
        }),
        DetectorParams::Adwin(AdwinParams::default()),
    ] {
        let mut processor = judged_processor(params, None);
        // 8 windows of 400 labelled records: 5% wrong, then 40% wrong from window 4.
        let mut rng = SplitMix64::new(61);
        let mut errors = Vec::new();
        let mut outcomes = Vec::new();
        for w in 0..8 {
            let rate = if w < 4 { 0.05 } else { 0.4 };
            let records: Vec<_> = (0..400)
                .map(|_| {
                    let wrong = rng.next_f64() <= rate;
                    errors.push(if wrong { 1.0 } else { 0.0 });
                    serde_json::json!({"amount": 0.1, "country": "DE", "prediction": 1, "label": if wrong { 0 } else { 1 }})
                })
                .collect();
            let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
            for window in processor.process(message(w, &payload)).closed {
                outcomes.push(window.decisions[0].outcome);
            }
        }
        let mut detector = Detector::new(params);
        let first = errors
            .iter()
            .position(|e| detector.update(*e))
            .expect("the detector sees the change");
        assert!(
            first >= 1600,
            "{}: no false alarm before the change ({first})",
            params.name()
        );
        let expected: Vec<Outcome> = (0..8)
            .map(|w| {
                if w == first / 400 {
                    Outcome::Triggered
                } else {
                    Outcome::NotTriggered
                }
            })
            .collect();
        // After the first detection the detector starts afresh on a stream that stays at 40%.
        assert_eq!(
            outcomes[..=first / 400],
            expected[..=first / 400],
            "{}",
            params.name()
        );
    }
}

/// A processor whose `fraud` model is triggered by a change detector on prediction errors (one
/// change in a window is enough), so the order in which the policies see errors and windows
/// shows in the decisions.
fn judged_processor(
    detector: driftgate::policy::detectors::DetectorParams,
    checkpoint: Option<driftgate::store::Checkpoint>,
) -> StreamProcessor {
    use driftgate::policy::{
        Criterion, InFlight, Metric, Model, Policy, Rule, Signal, Source, WindowRule,
    };
    let mut processor = StreamProcessor::new(settings(), checkpoint).unwrap();
    processor.set_policies(
        &[Model {
            name: "fraud".into(),
            stream: "payments".into(),
            features: vec!["amount".into()],
            dag: None,
        }],
        &[Policy {
            name: "errors".into(),
            model: "fraud".into(),
            when: Rule::Signal(Signal {
                source: Source::Detector(detector, driftgate::policy::Loss::ZeroOne),
                metric: Metric::Changes,
                criterion: Criterion::AtLeast { threshold: 1.0 },
                reference: Default::default(),
            }),
            windows: WindowRule::Consecutive { k: 1 },
            min_records: 0,
            cooldown: Duration::ZERO,
            budget: None,
            in_flight: InFlight::Suppress,
        }],
    );
    processor
}

/// A Page-Hinkley detector quick to see the errors rise in [`labelled_payloads`].
fn page_hinkley() -> driftgate::policy::detectors::DetectorParams {
    use driftgate::policy::detectors::{DetectorParams, Direction, PageHinkleyParams};
    DetectorParams::PageHinkley(PageHinkleyParams {
        threshold: 5.0,
        mode: Direction::Up,
        ..PageHinkleyParams::default()
    })
}

/// Messages of `size` labelled records; `amount` shifts and errors rise from record 1,500 on.
fn labelled_payloads(messages: usize, size: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(71);
    (0..messages)
        .map(|m| {
            let records: Vec<_> = (0..size)
                .map(|r| {
                    let late = m * size + r >= 1500;
                    let wrong = rng.next_f64() < if late { 0.5 } else { 0.05 };
                    let amount = rng.normal() + if late { 0.8 } else { 0.0 };
                    serde_json::json!({"amount": amount, "country": "DE",
                        "prediction": 1, "label": if wrong { 0 } else { 1 }})
                })
                .collect();
            serde_json::to_vec(&records).unwrap()
        })
        .collect()
}

#[test]
fn background_reports_give_the_inline_reports_and_decisions() {
    // 150-record messages and 400-record windows: windows close mid-message, so errors of the
    // same message's later records must wait for the window before them to be judged.
    let payloads = labelled_payloads(30, 150);
    let mut inline = judged_processor(page_hinkley(), None);
    let mut background = judged_processor(page_hinkley(), None);
    background.report_in_background();
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for (offset, payload) in payloads.iter().enumerate() {
        expected.extend(inline.process(message(offset as i64, payload)).closed);
        got.extend(background.process(message(offset as i64, payload)).closed);
    }
    assert!(inline.flush().is_empty(), "inline reports never wait");
    got.extend(background.flush());
    assert_eq!(expected.len(), 11);
    assert!(
        expected
            .iter()
            .any(|w| w.decisions[0].outcome == driftgate::policy::Outcome::Triggered),
        "the detector fires, so the order of errors and windows matters"
    );
    assert_eq!(got, expected);
    assert_eq!(background.checkpoint(), inline.checkpoint());
}

#[test]
fn a_checkpoint_taken_while_a_report_is_made_holds_its_window() {
    // 100-record messages, 400-record windows: each fourth message closes a window with its
    // last record, so the checkpoint right after it finds the report still being made.
    let payloads = labelled_payloads(24, 100);
    let mut straight = judged_processor(page_hinkley(), None);
    let mut expected: Vec<JudgedWindow> = payloads
        .iter()
        .enumerate()
        .flat_map(|(o, p)| straight.process(message(o as i64, p)).closed)
        .collect();
    expected.extend(straight.flush());
    assert_eq!(expected.len(), 6);

    let mut held = 0;
    for stop in [3, 4, 7, 11, 15, 19] {
        let mut first = judged_processor(page_hinkley(), None);
        first.report_in_background();
        let mut windows = Vec::new();
        for (offset, payload) in payloads.iter().enumerate().take(stop + 1) {
            windows.extend(first.process(message(offset as i64, payload)).closed);
        }
        // Through the store's format, as a restart reads it; the first instance is then lost.
        let checkpoint = serde_json::to_string(&first.checkpoint()).unwrap();
        let checkpoint: driftgate::store::Checkpoint = serde_json::from_str(&checkpoint).unwrap();
        held += usize::from(checkpoint.unreported_window.is_some());
        drop(first);
        let mut restarted = judged_processor(page_hinkley(), Some(checkpoint));
        restarted.report_in_background();
        for (offset, payload) in payloads.iter().enumerate() {
            let outcome = restarted.process(message(offset as i64, payload));
            assert_eq!(outcome.skipped, offset <= stop, "message {offset}");
            windows.extend(outcome.closed);
        }
        windows.extend(restarted.flush());
        assert_eq!(windows, expected, "checkpoint after message {stop}");
    }
    assert!(
        held > 0,
        "some checkpoint held a window whose report was being made"
    );
}

/// The bytes that leave the process for each closed window — the store's report row, the
/// decisions as stored and the alerts as sent — equal a committed snapshot, so that changing
/// how the report is carried inside the process cannot change them. Regenerate (after a change
/// meant to alter them) with `DRIFTGATE_BLESS=1 cargo test --test pipeline`.
#[test]
fn window_outputs_match_the_snapshot() {
    use driftgate::alert::{from_window, AlertSettings};
    use driftgate::policy::{
        Criterion, InFlight, Metric, Model, Policy, Rule, Signal, Source, WindowRule,
    };
    let model = Model {
        name: "fraud".into(),
        stream: "payments".into(),
        features: vec!["amount".into(), "country".into()],
        dag: None,
    };
    let policy = |name: &str, source: Source, metric: Metric, criterion: Criterion| Policy {
        name: name.into(),
        model: "fraud".into(),
        when: Rule::Signal(Signal {
            source,
            metric,
            criterion,
            reference: Default::default(),
        }),
        windows: WindowRule::Consecutive { k: 1 },
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Suppress,
    };
    let policies = [
        policy(
            "ks",
            Source::Feature("amount".into()),
            Metric::KsPValue,
            Criterion::Below { threshold: 0.01 },
        ),
        policy(
            "share",
            Source::Dataset,
            Metric::Share,
            Criterion::AtLeast { threshold: 0.5 },
        ),
        policy(
            "quality",
            Source::Performance,
            Metric::ErrorRate,
            Criterion::Above { threshold: 0.3 },
        ),
    ];
    let mut processor = StreamProcessor::new(settings(), None).unwrap();
    processor.set_policies(std::slice::from_ref(&model), &policies);
    let mut payloads = payloads(24, 12, 1.0);
    // Missing values and labelled records in the last window.
    let extra: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"amount": if i % 4 == 0 { serde_json::Value::Null } else { (i as f64).into() }, "country": "DE", "prediction": i % 2, "label": i % 3 == 0}))
        .collect();
    payloads[23] = serde_json::to_vec(&serde_json::json!({ "records": extra })).unwrap();
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (offset, payload) in payloads.iter().enumerate() {
        windows.extend(processor.process(message(offset as i64, payload)).closed);
    }
    let alert_settings = AlertSettings {
        link_base: "http://127.0.0.1:9464".into(),
        missing_rate: 0.05,
        dead_letter_rate: 0.01,
        sinks: Vec::new(),
    };
    let mut lines = String::new();
    for window in &windows {
        lines.push_str(&window.report.to_json());
        lines.push('\n');
        lines.push_str(&serde_json::to_string(&window.decisions).unwrap());
        lines.push('\n');
        let mut alerts = from_window(
            &alert_settings,
            "payments",
            std::slice::from_ref(&model),
            window,
            4,
            0,
        );
        for alert in &mut alerts {
            alert.at = "2026-01-01T00:00:00.000Z".into();
        }
        lines.push_str(&serde_json::to_string(&alerts).unwrap());
        lines.push('\n');
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snapshots/window_outputs.jsonl");
    if std::env::var_os("DRIFTGATE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &lines).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (DRIFTGATE_BLESS=1 writes it)", path.display()));
    for (i, (got, want)) in lines.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {} of {}", i + 1, path.display());
    }
    assert_eq!(lines.lines().count(), expected.lines().count());
}
