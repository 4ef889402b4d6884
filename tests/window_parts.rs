//! Issue 17: a stream's duration window merged from its partitions' parts reports exactly what
//! one windower over the whole stream reports, whatever the order the parts are merged in and
//! whether their values were summarised.

use std::sync::Arc;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::decode::{BatchDecoder, Dataset, FeatureKind, RecordBatch, Schema};
use driftgate::drift::{compare_window, DataInfo, DriftReport, DriftSettings, Folded, Threads};
use driftgate::window::summary::Layouts;
use driftgate::window::{merge_parts, ClosedWindow, RecordPosition, WindowSpec, Windower};
use driftgate::SplitMix64;

const PARTITIONS: i32 = 3;
const INTERVAL_MS: i64 = 1000;

fn schema() -> Schema {
    Schema::of(&[
        ("amount", FeatureKind::Numeric),
        ("country", FeatureKind::Categorical),
    ])
}

/// A record keyed by country: each country's amounts have their own mean, so each partition's
/// part differs from the stream's window.
fn record(rng: &mut SplitMix64, ts: i64) -> (i32, serde_json::Value) {
    let country = rng.below(PARTITIONS as u64) as i32;
    let amount = ((rng.normal() + f64::from(country)) * 4.0).round() / 4.0;
    let label = ["DE", "FR", "US"][country as usize];
    (
        country,
        serde_json::json!({"ts": ts, "amount": amount, "country": label}),
    )
}

fn baseline() -> Arc<Baseline> {
    let mut rng = SplitMix64::new(1);
    let mut data = Dataset::new(schema());
    for i in 0..4000 {
        data.push_json_record(record(&mut rng, i).1.as_object().unwrap());
    }
    Arc::new(Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap())
}

/// Five intervals of 600 records in time order, each record with its partition.
fn stream() -> Vec<(i32, i64, serde_json::Value)> {
    let mut rng = SplitMix64::new(2);
    (0..3000)
        .map(|i| {
            let ts = i * 5 * INTERVAL_MS / 3000;
            let (partition, record) = record(&mut rng, ts);
            (partition, i, record)
        })
        .collect()
}

fn push(
    windower: &mut Windower,
    partition: i32,
    offset: i64,
    record: &serde_json::Value,
) -> Option<ClosedWindow> {
    let mut batch = RecordBatch::new();
    BatchDecoder::new(&schema())
        .decode(record.to_string().as_bytes(), &mut batch)
        .unwrap();
    let at = RecordPosition {
        topic: "t",
        partition,
        offset,
        broker_time_ms: None,
    };
    windower.push(at, batch.record(0))
}

fn windower(layouts: &Option<Arc<Layouts>>) -> Windower {
    let mut windower = Windower::new(WindowSpec::DurationMs(INTERVAL_MS as u64), schema(), 0);
    windower.summarise_on(layouts.clone());
    windower
}

/// Every window of one windower over the stream, and every part of one windower per partition
/// (the last ones closed by the idle tick, as an owner does).
fn windows_and_parts(layouts: Option<Arc<Layouts>>) -> (Vec<ClosedWindow>, Vec<ClosedWindow>) {
    let mut whole = windower(&layouts);
    let mut by_partition: Vec<Windower> = (0..PARTITIONS).map(|_| windower(&layouts)).collect();
    let (mut windows, mut parts) = (Vec::new(), Vec::new());
    for (partition, offset, record) in stream() {
        windows.extend(push(&mut whole, partition, offset, &record));
        parts.extend(push(
            &mut by_partition[partition as usize],
            partition,
            offset,
            &record,
        ));
    }
    windows.extend(whole.tick(i64::MAX / 2, 0));
    parts.extend(
        by_partition
            .iter_mut()
            .filter_map(|w| w.tick(i64::MAX / 2, 0)),
    );
    (windows, parts)
}

fn report(baseline: &Baseline, window: &ClosedWindow) -> DriftReport {
    let folded = window.summaries.as_ref().map(|summaries| Folded {
        summaries,
        layouts: window.layouts.as_deref(),
    });
    let info = DataInfo::default;
    compare_window(
        Threads::Caller,
        baseline,
        &window.data,
        folded,
        &DriftSettings::default(),
        info(),
        info(),
    )
}

/// The parts of window `start_ms`, in the given partition order.
fn parts_of(parts: &[ClosedWindow], start_ms: Option<i64>, order: &[usize]) -> Vec<ClosedWindow> {
    let of_interval: Vec<&ClosedWindow> = parts.iter().filter(|p| p.start_ms == start_ms).collect();
    order
        .iter()
        .filter_map(|&i| of_interval.get(i).copied().cloned())
        .collect()
}

#[test]
fn merged_parts_report_what_one_windower_over_the_stream_reports() {
    let baseline = baseline();
    let schema = schema();
    for layouts in [
        None,
        Some(Arc::new(
            Layouts::new(baseline.clone(), &schema, 10).folding_at(40),
        )),
    ] {
        let summarised = layouts.is_some();
        let (windows, parts) = windows_and_parts(layouts);
        assert_eq!(windows.len(), 5);
        assert_eq!(
            parts.len(),
            15,
            "every partition has a part of every interval"
        );
        for window in &windows {
            let expected = report(&baseline, window);
            for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
                let merged =
                    merge_parts(window.index, parts_of(&parts, window.start_ms, &order)).unwrap();
                assert_eq!(merged.records, window.records);
                assert_eq!(merged.offsets, window.offsets);
                assert_eq!(merged.data.records, window.data.records);
                assert_eq!(merged.summaries.is_some(), summarised);
                let got = report(&baseline, &merged);
                assert_eq!(
                    got.features[1], expected.features[1],
                    "categorical counts add"
                );
                let (mut got, mut expected) = (got.clone(), expected.clone());
                // Wasserstein from summaries is bounded, not exact (see tests/window_summaries.rs).
                for report in [&mut got, &mut expected] {
                    if let Some(driftgate::drift::Tests::Numeric(tests)) =
                        &mut report.features[0].tests
                    {
                        tests.wasserstein.distance = 0.0;
                        tests.wasserstein.normed = 0.0;
                        tests.wasserstein.bound = None;
                    }
                }
                assert_eq!(
                    got, expected,
                    "window {} merged in order {order:?}",
                    window.index
                );
            }
        }
        // Each part alone looks drifted (each partition holds one country), the stream does not.
        let alone = report(&baseline, &parts[0]);
        assert!(alone.dataset.detected, "a part alone is not the stream");
        assert!(!report(&baseline, &windows[0]).dataset.detected);
    }
}

#[test]
fn parts_that_cannot_make_one_window_are_refused() {
    let (_, parts) = windows_and_parts(None);
    let first = parts_of(&parts, parts[0].start_ms, &[0]);
    let other = parts
        .iter()
        .find(|p| p.start_ms != parts[0].start_ms)
        .unwrap()
        .clone();
    let cases = [
        (Vec::new(), "no parts"),
        ([first.clone(), vec![other]].concat(), "different intervals"),
        ([first.clone(), first].concat(), "two parts of partition"),
    ];
    for (parts, expected) in cases {
        let err = merge_parts(0, parts).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn kept_records_of_merged_parts_are_in_event_time_order() {
    let mut by_partition: Vec<Windower> = (0..PARTITIONS)
        .map(|_| {
            let mut w = windower(&None);
            w.keep_records(true);
            w
        })
        .collect();
    let mut parts = Vec::new();
    for (partition, offset, record) in stream().into_iter().take(600) {
        parts.extend(push(
            &mut by_partition[partition as usize],
            partition,
            offset,
            &record,
        ));
    }
    parts.extend(
        by_partition
            .iter_mut()
            .filter_map(|w| w.tick(i64::MAX / 2, 0)),
    );
    let merged = merge_parts(0, parts).unwrap();
    let times: Vec<i64> = merged
        .rows
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(times.len(), 600);
    assert!(times.is_sorted(), "lines in event-time order");
}
