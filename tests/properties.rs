//! Properties that hold for any data: identical samples show no drift, symmetric metrics are
//! symmetric, results stay in range, and no input makes the decoder panic.

use driftgate::drift::bins::QuantileBins;
use driftgate::drift::chi2::chi2_homogeneity;
use driftgate::drift::hellinger::hellinger_distance;
use driftgate::drift::jensen_shannon::jensen_shannon_distance;
use driftgate::drift::ks::ks_2samp;
use driftgate::drift::psi::psi;
use driftgate::drift::wasserstein::wasserstein_distance;
use driftgate::source::{read_dataset, ReadOptions};
use proptest::prelude::*;

fn sample() -> impl Strategy<Value = Vec<f64>> {
    // Coarse values on purpose: ties are where implementations go wrong.
    prop::collection::vec(
        prop_oneof![
            (-1000i32..1000).prop_map(|v| f64::from(v) / 8.0),
            -1e6f64..1e6
        ],
        1..300,
    )
}

fn counts() -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (1usize..12).prop_flat_map(|k| {
        (
            prop::collection::vec(0u64..500, k),
            prop::collection::vec(0u64..500, k),
        )
            .prop_filter("both sides non-empty", |(a, b)| {
                a.iter().sum::<u64>() > 0 && b.iter().sum::<u64>() > 0
            })
    })
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn relative_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()) + 1e-300
}

proptest! {
    #[test]
    fn identical_samples_show_no_drift(values in sample()) {
        let values = sorted(values);
        let ks = ks_2samp(&values, &values).unwrap();
        prop_assert_eq!(ks.statistic, 0.0);
        prop_assert_eq!(ks.p_value, 1.0);
        prop_assert_eq!(wasserstein_distance(&values, &values), 0.0);
        let bins = QuantileBins::from_sorted(&values, 10).unwrap();
        let counts = bins.histogram(&values);
        prop_assert_eq!(psi(&counts, &counts), 0.0);
        prop_assert_eq!(jensen_shannon_distance(&counts, &counts), 0.0);
        prop_assert_eq!(hellinger_distance(&counts, &counts), 0.0);
    }

    #[test]
    fn sample_metrics_are_symmetric_and_in_range(a in sample(), b in sample()) {
        let (a, b) = (sorted(a), sorted(b));
        let ab = ks_2samp(&a, &b).unwrap();
        let ba = ks_2samp(&b, &a).unwrap();
        prop_assert_eq!(ab.statistic, ba.statistic);
        prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&ab.p_value));
        prop_assert!((0.0..=1.0).contains(&ab.statistic));
        let w_ab = wasserstein_distance(&a, &b);
        let w_ba = wasserstein_distance(&b, &a);
        prop_assert!(relative_eq(w_ab, w_ba), "{} vs {}", w_ab, w_ba);
        prop_assert!(w_ab >= 0.0);
    }

    #[test]
    fn binned_metrics_are_symmetric_and_in_range((a, b) in counts()) {
        let js = jensen_shannon_distance(&a, &b);
        prop_assert!(relative_eq(js, jensen_shannon_distance(&b, &a)));
        prop_assert!((0.0..=1.0).contains(&js));
        let h = hellinger_distance(&a, &b);
        prop_assert!(relative_eq(h, hellinger_distance(&b, &a)));
        prop_assert!((0.0..=1.0).contains(&h));
        let p = psi(&a, &b);
        prop_assert!(relative_eq(p, psi(&b, &a)));
        prop_assert!(p >= 0.0);
        let chi_ab = chi2_homogeneity(&a, &b).unwrap();
        let chi_ba = chi2_homogeneity(&b, &a).unwrap();
        prop_assert!(relative_eq(chi_ab.statistic, chi_ba.statistic));
        prop_assert!((0.0..=1.0).contains(&chi_ab.p_value));
    }

    #[test]
    fn no_line_makes_the_reader_panic(lines in prop::collection::vec(any::<String>(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["f.jsonl", "f.csv"] {
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n")).unwrap();
            let options = ReadOptions { schema: None, skip_invalid: true, ..Default::default() };
            // Errors are fine (e.g. no features); panics are not.
            let _ = read_dataset(&path, &options);
        }
    }
}

mod payloads {
    //! The service's streaming decoder against the tree decoder (`serde_json::Value`), which
    //! the file reader uses: on any payload, the same records, cells, times and errors.

    use driftgate::decode::{
        decode_payload, event_time_ms, prediction_correct, prediction_error, BatchDecoder, Dataset,
        FeatureKind, FeatureSpec, PayloadError, RecordBatch, Schema,
    };
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn schema() -> Schema {
        let feature = |name: &str, kind| FeatureSpec {
            name: name.into(),
            kind,
        };
        Schema {
            features: vec![
                feature("x", FeatureKind::Numeric),
                feature("c", FeatureKind::Categorical),
                feature("records", FeatureKind::Categorical),
                // Only reachable under "features": at the top level `ts` is the event time.
                feature("ts", FeatureKind::Numeric),
            ],
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("x"),
            Just("c"),
            Just("ts"),
            Just("label"),
            Just("prediction"),
            Just("features"),
            Just("records"),
            Just("other"),
            Just("quoted \"name\""),
        ]
        .prop_map(String::from)
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            (0u32..5).prop_map(|v| Value::from(f64::from(v))),
            prop_oneof![
                Just("1.5"),
                Just(" 2 "),
                Just("abc"),
                Just(""),
                Just("NaN"),
                Just("inf"),
                Just("2023-11-14T22:13:20.123Z"),
                Just("é\n\"x\""),
            ]
            .prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn record() -> impl Strategy<Value = Value> {
        prop::collection::vec((key(), value()), 0..7)
            .prop_map(|fields| Value::Object(fields.into_iter().collect()))
    }

    /// Records of scalars only: the shape producers send most, which the decoder's fast path
    /// takes.
    fn flat_record() -> impl Strategy<Value = Value> {
        prop::collection::vec((key(), leaf()), 0..7)
            .prop_map(|fields| Value::Object(fields.into_iter().collect()))
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let batch = prop::collection::vec(
            prop_oneof![4 => record(), 4 => flat_record(), 1 => leaf()],
            0..5,
        );
        let compact = prop_oneof![
            record(),
            flat_record(),
            batch.clone().prop_map(Value::Array),
            batch
                .clone()
                .prop_map(|records| serde_json::json!({ "records": records })),
            (batch, key(), leaf()).prop_map(|(records, key, extra)| {
                let mut object = Map::new();
                object.insert("records".into(), Value::Array(records));
                object.insert(key, extra);
                Value::Object(object)
            }),
            value(),
        ]
        .prop_map(|v| v.to_string().into_bytes());
        // Pretty-printed, for whitespace between tokens.
        let pretty = prop::collection::vec(flat_record(), 1..4).prop_map(|records| {
            serde_json::to_vec_pretty(&serde_json::json!({ "records": records })).unwrap()
        });
        let shaped = prop_oneof![3 => compact, 1 => pretty];
        // Cut some payloads short, overwrite or append a byte (with a raw control character among
        // others): invalid JSON must fail the same way.
        let damage = prop::sample::select(vec![0x01u8, b'\n', b'"', b'\\', b'}', b'0', b'x']);
        (shaped, any::<prop::sample::Index>(), 0u8..6, damage).prop_map(
            |(mut bytes, at, how, byte)| {
                if !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    match how {
                        0 => bytes.truncate(at),
                        1 => bytes[at] = byte,
                        2 => bytes.push(byte),
                        _ => {}
                    }
                }
                bytes
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn the_streaming_decoder_agrees_with_the_tree_decoder(payload in payload()) {
            let schema = schema();
            let mut batch = RecordBatch::new();
            let streamed = BatchDecoder::new(&schema).decode(&payload, &mut batch);
            match decode_payload(&payload) {
                // serde_json words a few syntax errors inside skipped values differently
                // ("invalid number" for "EOF while parsing a value"): the reason is the same.
                Err(PayloadError::InvalidJson(_)) => {
                    prop_assert!(matches!(streamed, Err(PayloadError::InvalidJson(_))));
                }
                Err(expected) => prop_assert_eq!(streamed, Err(expected)),
                Ok(records) => {
                    prop_assert_eq!(streamed, Ok(()));
                    let mut tree = Dataset::new(schema.clone());
                    let mut stream = Dataset::new(schema.clone());
                    prop_assert_eq!(batch.len(), records.len());
                    for (i, record) in records.iter().enumerate() {
                        tree.push_json_record(record);
                        stream.push_record(batch.record(i));
                        let time = event_time_ms(record).ok().flatten();
                        prop_assert_eq!(batch.record(i).event_time_ms(), time);
                        prop_assert_eq!(
                            batch.record(i).prediction_correct(),
                            prediction_correct(record)
                        );
                        prop_assert_eq!(
                            batch.record(i).prediction_error(),
                            prediction_error(record)
                        );
                    }
                    prop_assert_eq!(stream, tree);
                }
            }
        }
    }
}

mod policies {
    //! Whatever the windows, a policy never triggers inside its cooldown, never beyond its
    //! budget, and never twice for one idempotency key.

    use std::collections::HashSet;
    use std::time::Duration;

    use driftgate::policy::{
        Budget, Criterion, Engine, InFlight, Metric, Model, Outcome, Policy, Rule, Signal, Source,
        WindowFacts, WindowRule,
    };
    use proptest::prelude::*;

    fn policy(cooldown_s: u64, budget: Option<(u32, u64)>, k: u32, n: u32) -> Policy {
        Policy {
            name: "p".into(),
            model: "m".into(),
            when: Rule::Signal(Signal {
                source: Source::Dataset,
                metric: Metric::Share,
                criterion: Criterion::Above { threshold: 0.5 },
                reference: Default::default(),
            }),
            windows: if k == n {
                WindowRule::Consecutive { k }
            } else {
                WindowRule::KOfN { k, n }
            },
            min_records: 0,
            cooldown: Duration::from_secs(cooldown_s),
            budget: budget.map(|(max_runs, per)| Budget {
                max_runs,
                per: Duration::from_secs(per),
            }),
            in_flight: InFlight::Suppress,
        }
    }

    proptest! {
        #[test]
        fn cooldown_and_budget_always_hold(
            windows in prop::collection::vec((any::<bool>(), 0i64..600), 1..200),
            cooldown_s in 0u64..1200,
            budget in proptest::option::of((1u32..4, 1u64..3600)),
            (k, n) in (1u32..4).prop_flat_map(|k| (Just(k), k..6)),
        ) {
            let policy = policy(cooldown_s, budget, k, n);
            let model = Model {
                name: "m".into(),
                stream: "s".into(),
                features: vec![],
                dag: None,
            };
            let mut engine = Engine::new(vec![model], vec![policy]);
            let mut at_ms = 0i64;
            let mut triggers: Vec<i64> = Vec::new();
            let mut keys = HashSet::new();
            for (index, (hot, step_s)) in windows.into_iter().enumerate() {
                at_ms += step_s * 1000;
                let report = crate::Share(if hot { 0.9 } else { 0.1 });
                for decision in engine.evaluate(&WindowFacts {
                    stream: "s",
                    index: index as u64,
                    records: 1,
                    at_ms,
                    report: &report,
                }) {
                    if decision.outcome == Outcome::Triggered {
                        prop_assert!(keys.insert(decision.key.clone()));
                        if let Some(last) = triggers.last() {
                            prop_assert!(at_ms - last >= cooldown_s as i64 * 1000);
                        }
                        triggers.push(at_ms);
                        if let Some((max_runs, per)) = budget {
                            let in_period = triggers
                                .iter()
                                .filter(|t| at_ms - **t < per as i64 * 1000)
                                .count();
                            prop_assert!(in_period <= max_runs as usize);
                        }
                    }
                }
            }
        }
    }
}

/// A window report reduced to the data set's drift share, all these policies read.
#[derive(Debug)]
struct Share(f64);

impl driftgate::policy::Readings for Share {
    fn value(
        &self,
        source: &driftgate::policy::Source,
        metric: driftgate::policy::Metric,
    ) -> Option<f64> {
        use driftgate::policy::{Metric, Source};
        matches!((source, metric), (Source::Dataset, Metric::Share)).then_some(self.0)
    }

    fn since_retrain(
        &self,
        _: &driftgate::policy::Source,
        _: driftgate::policy::Metric,
    ) -> Option<f64> {
        None
    }

    fn drifted(&self, _: &str) -> bool {
        false
    }

    fn errors(&self) -> u64 {
        0
    }

    fn span(&self) -> driftgate::policy::WindowSpan {
        driftgate::policy::WindowSpan::default()
    }
}

/// Issue 17: a window summarised on the reference's points gives the raw values' statistics.
mod summaries {
    use driftgate::drift::bins::QuantileBins;
    use driftgate::drift::ecdf::compare_sorted;
    use driftgate::drift::ks::ks_test;
    use driftgate::drift::summary::{compare, histogram};
    use driftgate::window::summary::Layout;
    use proptest::prelude::*;

    use super::{sample, sorted};

    /// A window that overlaps the reference, ties with it, and spills past both ends.
    fn window() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![
                (-1200i32..1200).prop_map(|v| f64::from(v) / 8.0),
                (-1200i32..1200).prop_map(|v| f64::from(v) / 8.0 + 0.0625),
                -2e6f64..2e6
            ],
            1..400,
        )
    }

    proptest! {
        #[test]
        fn summaries_give_the_raw_ks_bins_and_wasserstein(
            reference in sample(), current in window(), bins in 1usize..12,
        ) {
            let reference = sorted(reference);
            let current = sorted(current);
            let bins = QuantileBins::from_sorted(&reference, bins).unwrap();
            let layout = Layout::new(&reference, &bins.edges);
            let summary = layout.summarise(&current);
            let raw = compare_sorted(&reference, &current);
            let merged = compare(&layout, &summary);
            prop_assert_eq!(merged.ks_statistic.to_bits(), raw.ks_statistic.to_bits());
            let (n1, n2) = (reference.len() as u64, current.len() as u64);
            let (a, b) = (ks_test(n1, n2, raw.ks_statistic), ks_test(n1, n2, merged.ks_statistic));
            prop_assert_eq!(a.p_value.to_bits(), b.p_value.to_bits());
            prop_assert_eq!(histogram(&layout, &summary, &bins), bins.histogram_sorted(&current));
            let error = (merged.wasserstein - raw.wasserstein).abs();
            let rounding = 1e-9 * raw.wasserstein.max(1e-300);
            prop_assert!(
                error <= merged.wasserstein_bound + rounding,
                "W1 {} vs {} (bound {})", merged.wasserstein, raw.wasserstein, merged.wasserstein_bound
            );
        }

        #[test]
        fn summaries_merge_in_any_order(
            reference in sample(), parts in prop::collection::vec(window(), 1..5),
        ) {
            let reference = sorted(reference);
            let layout = Layout::new(&reference, &[]);
            let summaries: Vec<_> = parts.iter().map(|p| layout.summarise(p)).collect();
            let whole = layout.summarise(&parts.concat());
            let mut forward = layout.empty();
            for s in &summaries {
                forward.merge(s);
            }
            let mut backward = layout.empty();
            for s in summaries.iter().rev() {
                backward.merge(s);
            }
            let (f, b, w) = (
                compare(&layout, &forward),
                compare(&layout, &backward),
                compare(&layout, &whole),
            );
            prop_assert_eq!(forward.len(), whole.len());
            prop_assert_eq!(f.ks_statistic.to_bits(), w.ks_statistic.to_bits());
            prop_assert_eq!(b.ks_statistic.to_bits(), w.ks_statistic.to_bits());
            for other in [f, b] {
                let scale = w.wasserstein.max(1e-300);
                prop_assert!((other.wasserstein - w.wasserstein).abs() <= 1e-9 * scale);
            }
        }
    }

    #[test]
    fn a_gap_the_ecdfs_cross_inside_is_bounded_and_the_others_are_exact() {
        // Reference 0 and 10; current 1, 2 and 9 all in the inner gap: after the point 0 the
        // difference is +3 (×n1·n2 units), it crosses zero inside the gap.
        let layout = Layout::new(&[0.0, 10.0], &[]);
        let crossing = compare(&layout, &layout.summarise(&[1.0, 2.0, 9.0]));
        let raw = compare_sorted(&[0.0, 10.0], &[1.0, 2.0, 9.0]);
        assert!(crossing.wasserstein_bound > 0.0);
        assert!((crossing.wasserstein - raw.wasserstein).abs() <= crossing.wasserstein_bound);
        // All current values below the reference: no crossing, exact.
        let below = compare(&layout, &layout.summarise(&[-3.0, -1.0]));
        let raw = compare_sorted(&[0.0, 10.0], &[-3.0, -1.0]);
        assert_eq!(below.wasserstein_bound, 0.0);
        assert!((below.wasserstein - raw.wasserstein).abs() <= 1e-12 * raw.wasserstein);
    }

    /// A one-feature data set of `values` named `x`.
    fn dataset(values: &[f64]) -> driftgate::decode::Dataset {
        let schema = driftgate::decode::Schema {
            features: vec![driftgate::decode::FeatureSpec {
                name: "x".into(),
                kind: driftgate::decode::FeatureKind::Numeric,
            }],
        };
        let mut data = driftgate::decode::Dataset::new(schema);
        for value in values {
            data.push_json_record(serde_json::json!({ "x": value }).as_object().unwrap());
        }
        data
    }

    /// The report as JSON with each feature's Wasserstein entry taken out and returned apart.
    fn without_wasserstein(
        report: &driftgate::drift::DriftReport,
    ) -> (serde_json::Value, serde_json::Value) {
        let mut report = serde_json::to_value(report).unwrap();
        let w1 = report["features"][0]["tests"]
            .as_object_mut()
            .and_then(|t| t.remove("wasserstein"))
            .unwrap_or_default();
        (report, w1)
    }

    proptest! {
        #[test]
        fn reports_of_folded_windows_equal_reports_of_raw_ones(
            reference in sample(), current in window(), fold_at in 1usize..60,
            method in prop_oneof![
                Just(driftgate::drift::Method::Ks),
                Just(driftgate::drift::Method::Psi),
                Just(driftgate::drift::Method::Hellinger),
            ],
        ) {
            use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
            use driftgate::drift::{compare_on, compare_window, DriftSettings, Folded, Threads};
            use driftgate::window::summary::Layouts;
            let baseline = std::sync::Arc::new(
                Baseline::build(&dataset(&reference), BuildSettings::default(), BaselineSource::default()).unwrap(),
            );
            let settings = DriftSettings { numeric_method: method, ..DriftSettings::default() };
            let raw = dataset(&current);
            let layouts = Layouts::new(baseline.clone(), &raw.schema, settings.bins).folding_at(fold_at);
            // Fold every whole multiple of `fold_at` values, in parts, as a window does.
            let mut tail = raw.clone();
            let mut summaries = layouts.start();
            let driftgate::decode::Column::Numeric(column) = &mut tail.columns[0] else { unreachable!() };
            let folded = current.len() / fold_at * fold_at;
            for part in current[..folded].chunks(fold_at) {
                summaries.fold(&layouts, 0, &mut part.to_vec());
            }
            column.values.drain(..folded);
            let info = driftgate::drift::DataInfo::default;
            let expected = compare_on(Threads::Caller, &baseline, &raw, &settings, info(), info());
            let folded = Folded { summaries: &summaries, layouts: Some(&layouts) };
            let got = compare_window(Threads::Caller, &baseline, &tail, Some(folded), &settings, info(), info());
            let ((expected, exact), (got, bounded)) = (without_wasserstein(&expected), without_wasserstein(&got));
            prop_assert_eq!(got, expected);
            let bound = bounded["bound"].as_f64().unwrap_or(0.0);
            let error = (bounded["distance"].as_f64().unwrap() - exact["distance"].as_f64().unwrap()).abs();
            prop_assert!(error <= bound + 1e-9 * exact["distance"].as_f64().unwrap().max(1e-300));
        }
    }

    /// Values on a grid of `step`: a reference with many ties.
    fn tied(step: f64) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((-40i32..40).prop_map(move |v| f64::from(v) * step), 1..600)
    }

    proptest! {
        #[test]
        fn a_reference_stored_with_counts_reports_what_every_value_reports(
            reference in tied(0.25), current in tied(0.125), bins in 1usize..14, seed in 0u64..4,
            method in prop_oneof![
                Just(driftgate::drift::Method::Ks),
                Just(driftgate::drift::Method::Wasserstein),
                Just(driftgate::drift::Method::Psi),
                Just(driftgate::drift::Method::JensenShannon),
            ],
        ) {
            use driftgate::baseline::{Baseline, BaselineSource, BuildSettings, FeatureProfile};
            use driftgate::drift::{compare_on, DriftSettings, Threads};
            // A cap below the row count but above the distinct values: exact, with counts.
            let build = BuildSettings { sample_cap: 100, ..BuildSettings::default() };
            let compact = Baseline::build(&dataset(&reference), build, BaselineSource::default()).unwrap();
            let mut listed = compact.clone();
            let FeatureProfile::Numeric(p) = &mut listed.features[0] else { unreachable!() };
            prop_assert!(!p.sampled);
            prop_assert_eq!(p.reference_len(), reference.len() as u64);
            p.sample = p.expanded_sample().into_owned();
            p.sample_counts.clear();
            let settings = DriftSettings {
                numeric_method: method, bins, permutations: 50, seed, ..DriftSettings::default()
            };
            let current = dataset(&current);
            let info = driftgate::drift::DataInfo::default;
            let report = |baseline: &Baseline| serde_json::to_value(compare_on(
                Threads::Caller, baseline, &current, &settings, info(), info(),
            )).unwrap();
            prop_assert_eq!(report(&compact), report(&listed));
        }
    }
}

mod readers {
    //! The file readers: a JSONL file goes through the service's decoder, a CSV file through
    //! the CSV reader. The same numbers and labels written both ways read as the same data set,
    //! and the JSONL reader equals the tree decoder record by record.

    use driftgate::decode::{decode_payload, Dataset};
    use driftgate::source::{read_dataset, ReadOptions};
    use proptest::prelude::*;

    fn number() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            1 => Just(None),
            4 => (-1e6f64..1e6).prop_map(Some),
            2 => (-2000i32..2000).prop_map(|v| Some(f64::from(v) / 16.0)),
            1 => (1e-300f64..1e300).prop_map(Some),
        ]
    }

    fn row() -> impl Strategy<Value = (Option<f64>, Option<f64>, u8)> {
        (number(), number(), 0u8..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn csv_and_jsonl_files_of_the_same_values_read_the_same(
            rows in prop::collection::vec(row(), 1..200)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut csv, mut jsonl) = (String::from("x,y,c\n"), String::new());
            let text = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:?}"));
            let json = |v: Option<f64>| v.map_or_else(|| "null".to_string(), |v| format!("{v:?}"));
            for (x, y, c) in &rows {
                csv.push_str(&format!("{},{},level{c}\n", text(*x), text(*y)));
                jsonl.push_str(&format!(
                    "{{\"x\": {}, \"y\": {}, \"c\": \"level{c}\"}}\n", json(*x), json(*y)
                ));
            }
            let (csv_path, jsonl_path) = (dir.path().join("d.csv"), dir.path().join("d.jsonl"));
            std::fs::write(&csv_path, &csv).unwrap();
            std::fs::write(&jsonl_path, &jsonl).unwrap();
            // One schema for both: inference would see a column of nothing but empty CSV
            // cells as categorical.
            let schema = read_dataset(&jsonl_path, &ReadOptions::default()).unwrap().schema;
            let options = ReadOptions { schema: Some(schema.clone()), ..Default::default() };
            let from_csv = read_dataset(&csv_path, &options).unwrap();
            let from_jsonl = read_dataset(&jsonl_path, &options).unwrap();
            prop_assert_eq!(&from_csv, &from_jsonl);
            let mut tree = Dataset::new(schema);
            for line in jsonl.lines() {
                for record in decode_payload(line.as_bytes()).unwrap() {
                    tree.push_json_record(&record);
                }
            }
            prop_assert_eq!(&from_jsonl, &tree);
        }
    }
}
