//! Issue 17: processors that each read one partition cut parts of the stream's intervals; the
//! parts of an interval, merged and judged by one processor, give the window, report and
//! decisions of one processor reading the whole stream in time order — also when a partition
//! moves to another processor mid-interval (checkpoint, restore) and when windows are folded
//! into summaries.

use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Dataset, FeatureKind, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{JudgedWindow, Message, StreamProcessor, WindowPart};
use driftgate::policy::{
    Criterion, InFlight, Metric, Model, Policy, Rule, Signal, Source, WindowRule,
};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

const PARTITIONS: usize = 3;
const TOPIC: &str = "payments.features";

fn schema() -> Schema {
    Schema::of(&[
        ("amount", FeatureKind::Numeric),
        ("country", FeatureKind::Categorical),
    ])
}

/// A record of partition `country`: each has its own amounts and its own error rate, which
/// rises in the second half of the stream.
fn record(rng: &mut SplitMix64, country: usize, ts: i64, late: bool) -> serde_json::Value {
    let amount = ((rng.normal() + country as f64) * 8.0).round() / 8.0;
    let wrong = rng.next_f64()
        < if late {
            0.1 + 0.2 * country as f64
        } else {
            0.05
        };
    let name = ["DE", "FR", "US"][country];
    serde_json::json!({"ts": ts, "amount": amount, "country": name,
        "prediction": 1, "label": if wrong { 0 } else { 1 }})
}

fn settings(summarise_after: Option<u64>) -> StreamSettings {
    let mut rng = SplitMix64::new(1);
    let mut data = Dataset::new(schema());
    for i in 0..3000 {
        let country = rng.below(PARTITIONS as u64) as usize;
        data.push_json_record(record(&mut rng, country, i, false).as_object().unwrap());
    }
    let baseline = Baseline::build(&data, BuildSettings::default(), BaselineSource::default());
    StreamSettings {
        name: "payments".into(),
        topic: TOPIC.into(),
        baseline_path: "baseline.json".into(),
        baseline: Arc::new(baseline.unwrap()),
        schema: schema(),
        window: WindowSpec::DurationMs(1000),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: Some(true),
        summarise_after,
        multivariate: Default::default(),
        since_retrain: None,
    }
}

/// Judged by an error-rate policy and by a Page-Hinkley detector on the errors, so the order
/// the errors arrive in shows in the decisions.
fn processor(
    settings: &StreamSettings,
    checkpoint: Option<driftgate::store::Checkpoint>,
) -> StreamProcessor {
    use driftgate::policy::detectors::{DetectorParams, Direction, PageHinkleyParams};
    let mut processor = StreamProcessor::new(settings.clone(), checkpoint).unwrap();
    let model = Model {
        name: "fraud".into(),
        stream: "payments".into(),
        features: vec!["amount".into()],
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
    let detector = DetectorParams::PageHinkley(PageHinkleyParams {
        threshold: 5.0,
        mode: Direction::Up,
        ..PageHinkleyParams::default()
    });
    processor.set_policies(
        &[model],
        &[
            policy(
                "quality",
                Source::Performance,
                Metric::ErrorRate,
                Criterion::Above { threshold: 0.2 },
            ),
            policy(
                "errors",
                Source::Detector(detector, driftgate::policy::Loss::ZeroOne),
                Metric::Changes,
                Criterion::AtLeast { threshold: 1.0 },
            ),
        ],
    );
    processor
}

/// The stream in time order: `(partition, offset in it, payload)`, one record per message,
/// every record at its own millisecond over six one-second intervals.
fn stream() -> Vec<(usize, i64, Vec<u8>)> {
    let mut rng = SplitMix64::new(2);
    let mut next = [0i64; PARTITIONS];
    (0..3000)
        .map(|i| {
            let ts = 1_700_000_000_000 + i * 2;
            let partition = rng.below(PARTITIONS as u64) as usize;
            let record = record(&mut rng, partition, ts, i >= 1500);
            let offset = next[partition];
            next[partition] += 1;
            (partition, offset, serde_json::to_vec(&record).unwrap())
        })
        .collect()
}

fn message(partition: usize, offset: i64, payload: &[u8]) -> Message<'_> {
    Message {
        topic: TOPIC,
        partition: partition as i32,
        offset,
        timestamp_ms: None,
        payload: Some(payload),
    }
}

/// One processor over the whole stream.
fn whole(settings: &StreamSettings) -> Vec<JudgedWindow> {
    let mut one = processor(settings, None);
    let mut windows = Vec::new();
    for (partition, offset, payload) in &stream() {
        windows.extend(one.process(message(*partition, *offset, payload)).closed);
    }
    windows.extend(one.tick(i64::MAX / 2));
    windows
}

/// One part-cutting processor per partition; partition 1 moves to a new processor (from the
/// old one's checkpoint) after `move_at` of its messages. Parts by interval start.
fn parts(settings: &StreamSettings, move_at: i64) -> Vec<Vec<WindowPart>> {
    let mut cutters: Vec<StreamProcessor> = (0..PARTITIONS)
        .map(|_| {
            let mut p = processor(settings, None);
            p.cut_parts().unwrap();
            p
        })
        .collect();
    let mut parts: Vec<WindowPart> = Vec::new();
    for (partition, offset, payload) in &stream() {
        if *partition == 1 && *offset == move_at {
            let checkpoint = cutters[1].checkpoint();
            cutters[1] = processor(settings, Some(checkpoint));
            cutters[1].cut_parts().unwrap();
        }
        let outcome = cutters[*partition].process(message(*partition, *offset, payload));
        assert!(outcome.closed.is_empty(), "part mode reports nothing");
        parts.extend(outcome.parts);
    }
    parts.extend(
        cutters
            .iter_mut()
            .filter_map(|c| c.tick_parts(i64::MAX / 2)),
    );
    let mut starts: Vec<i64> = parts.iter().filter_map(WindowPart::start_ms).collect();
    starts.sort();
    starts.dedup();
    starts
        .iter()
        .map(|start| {
            let mut of: Vec<WindowPart> = parts
                .iter()
                .filter(|p| p.start_ms() == Some(*start))
                .cloned()
                .collect();
            of.sort_by_key(|p| p.window.offsets.keys().next().cloned());
            of
        })
        .collect()
}

fn merged(settings: &StreamSettings, intervals: Vec<Vec<WindowPart>>) -> Vec<JudgedWindow> {
    let mut merger = processor(settings, None);
    intervals
        .into_iter()
        .enumerate()
        .map(|(index, parts)| merger.judge_parts(index as u64, parts).unwrap())
        .collect()
}

/// The same window: identity, report, decisions, and the kept data (the records in time
/// order; each column's values in any order — a merged column holds them by partition).
fn assert_same_window(got: &JudgedWindow, expected: &JudgedWindow, case: &str) {
    let at = format!("{case}, window {}", expected.index);
    assert_eq!(
        (got.index, &got.tag),
        (expected.index, &expected.tag),
        "{at}"
    );
    assert_eq!(got.report, expected.report, "{at}: report");
    assert_eq!(got.decisions, expected.decisions, "{at}: decisions");
    let (Some(got), Some(expected)) = (&got.data, &expected.data) else {
        assert_eq!(
            got.data.is_some(),
            expected.data.is_some(),
            "{at}: data kept"
        );
        return;
    };
    assert_eq!(got.records, expected.records, "{at}: records");
    // Numeric values: sorted when kept raw; when folded, where the fold falls differs, so
    // only the counts are compared (the reports above prove the summaries equal).
    let values = |data: &driftgate::window::WindowData| -> Vec<String> {
        let folded = |k: usize| {
            data.summaries
                .as_ref()
                .and_then(|s| s.columns[k].as_ref())
                .map_or(0, |s| s.len())
        };
        data.columns
            .columns
            .iter()
            .enumerate()
            .map(|(k, c)| match c {
                driftgate::decode::Column::Numeric(c) if data.summaries.is_some() => {
                    format!(
                        "{} values {:?}",
                        c.values.len() as u64 + folded(k),
                        c.quality
                    )
                }
                driftgate::decode::Column::Numeric(c) => {
                    let mut v = c.values.clone();
                    v.sort_by(f64::total_cmp);
                    format!("{v:?} {:?}", c.quality)
                }
                other => format!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(values(got), values(expected), "{at}: columns");
}

#[test]
fn merged_parts_judge_like_one_processor_reading_the_whole_stream() {
    // Never folded, or folded on both sides (a folded window's report adds the Wasserstein bound).
    for summarise_after in [Some(0), Some(50)] {
        let settings = settings(summarise_after);
        let expected = whole(&settings);
        assert_eq!(expected.len(), 6);
        let fired = |windows: &[JudgedWindow], policy: &str| {
            windows
                .iter()
                .filter(|w| {
                    w.decisions.iter().any(|d| {
                        d.policy == policy && d.outcome == driftgate::policy::Outcome::Triggered
                    })
                })
                .count()
        };
        assert!(fired(&expected, "errors") > 0, "the detector fires");
        assert!(fired(&expected, "errors") < 6, "and not on every window");
        for move_at in [0, 130, 400] {
            let intervals = parts(&settings, move_at);
            assert!(intervals.iter().all(|parts| parts.len() == PARTITIONS));
            let got = merged(&settings, intervals);
            let case = format!("summarise after {summarise_after:?}, moved at {move_at}");
            assert_eq!(got.len(), expected.len(), "{case}");
            for (got, expected) in got.iter().zip(&expected) {
                assert_same_window(got, expected, &case);
            }
        }
    }
}

#[test]
fn only_duration_windows_are_cut_into_parts() {
    let mut settings = settings(None);
    settings.window = WindowSpec::Records(100);
    let mut processor = StreamProcessor::new(settings, None).unwrap();
    let refused = processor.cut_parts().unwrap_err();
    assert!(refused.contains("only duration windows"), "{refused}");
    assert!(!processor.cuts_parts());
}

#[test]
fn a_part_published_after_its_interval_was_merged_joins_the_next_window_as_late_records() {
    let settings = settings(Some(0));
    let intervals = parts(&settings, 0);
    let (first, second) = (&intervals[0], &intervals[1]);
    let (start, end) = (
        second[0].window.start_ms.unwrap(),
        second[0].window.end_ms.unwrap(),
    );
    let late = first[1].clone().late_into(start, end);
    let late_records = late.window.records;
    let mut with_late = second.clone();
    with_late.push(late);
    let mut merger = processor(&settings, None);
    let window = merger.judge_parts(1, with_late).unwrap();
    let on_time: u64 = second.iter().map(|p| p.window.records).sum();
    assert_eq!(window.report.window.records, on_time + late_records);
    assert_eq!(window.report.window.late_records, late_records);
    // The late part's partition covers both its parts' offsets.
    let key = first[1].window.offsets.keys().next().unwrap();
    let span = window.report.window.offsets[key];
    assert_eq!(span.first, first[1].window.offsets[key].first);
    let own = second
        .iter()
        .find(|p| p.window.offsets.contains_key(key))
        .unwrap();
    assert_eq!(span.last, own.window.offsets[key].last);
    // Two on-time parts of one partition are still refused.
    let twice = vec![second[0].clone(), second[0].clone()];
    assert!(merger.judge_parts(2, twice).is_err());
}
