//! Multivariate tests in the service (issue 19): a stream's windows are tested jointly against
//! the baseline's sample of rows, a correlation flip with unchanged marginals is caught, the
//! outcome survives a restart and is the same when two partitions' parts are merged, and
//! policies trigger on it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings, OneHot, RowReservoir};
use driftgate::config::StreamSettings;
use driftgate::decode::{Cell, Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::multivariate::Multivariate;
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{
    JudgedWindow, Message, MultivariateSettings, StreamProcessor, WindowPart,
};
use driftgate::policy::{
    Criterion, InFlight, Metric, Model, Outcome, Policy, Rule, Signal, Source, WindowRule,
};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

const WINDOW: usize = 1000;
/// Windows from this one on have the correlation of `x` and `y` flipped.
const FLIP_FROM: usize = 4;
const WINDOWS: usize = 8;

/// A record: `x` and `y` standard normal with correlation `rho`, a label `c`.
fn record(rng: &mut SplitMix64, rho: f64, ts: i64) -> serde_json::Value {
    let (a, b) = (rng.normal(), rng.normal());
    let y = rho * a + (1.0 - rho * rho).sqrt() * b;
    let c = ["a", "b", "c"][rng.below(3) as usize];
    serde_json::json!({"ts": ts, "x": a, "y": y, "c": c})
}

fn schema() -> Schema {
    let spec = |name: &str, kind| FeatureSpec {
        name: name.into(),
        kind,
    };
    Schema {
        features: vec![
            spec("x", FeatureKind::Numeric),
            spec("c", FeatureKind::Categorical),
            spec("y", FeatureKind::Numeric),
        ],
    }
}

/// A baseline of 5,000 records at correlation 0.8, with a sample of 2,000 of their rows (`c`
/// one-hot).
fn baseline() -> Baseline {
    let mut rng = SplitMix64::new(1);
    let mut data = Dataset::new(schema());
    let levels = vec!["a".into(), "b".into(), "c".into()];
    let c = OneHot {
        feature: "c".into(),
        levels,
    };
    let mut rows = RowReservoir::new(vec!["x".into(), "y".into()], 2000, 5).with_onehot(vec![c]);
    for i in 0..5000 {
        let record = record(&mut rng, 0.8, i);
        data.push_json_record(record.as_object().unwrap());
        let label = Cell::Text(record["c"].as_str().unwrap());
        let numbers = [record["x"].as_f64(), record["y"].as_f64()];
        rows.offer_cells(numbers.into_iter(), [label].into_iter());
    }
    let mut baseline =
        Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).unwrap();
    baseline.joint = rows.finish();
    baseline.id = baseline.content_id();
    baseline
}

fn processor(window: WindowSpec) -> StreamProcessor {
    let settings = StreamSettings {
        name: "pairs".into(),
        topic: "pairs.features".into(),
        baseline_path: "baseline.npz".into(),
        baseline: Arc::new(baseline()),
        schema: schema(),
        window,
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: None,
        summarise_after: None,
        multivariate: MultivariateSettings {
            methods: vec![Multivariate::Mmd, Multivariate::Pca],
            ..Default::default()
        },
        since_retrain: None,
    };
    with_policies(StreamProcessor::new(settings, None).unwrap())
}

/// The processor with model `m`, triggered when MMD's p-value is below 0.02.
fn with_policies(mut processor: StreamProcessor) -> StreamProcessor {
    let model = Model {
        name: "m".into(),
        stream: "pairs".into(),
        features: vec!["x".into(), "y".into()],
        dag: None,
    };
    let policy = Policy {
        name: "joint".into(),
        model: "m".into(),
        when: Rule::Signal(Signal {
            source: Source::Multivariate(Multivariate::Mmd),
            metric: Metric::PValue,
            criterion: Criterion::Below { threshold: 0.02 },
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

/// The windows' records, the later ones' correlation flipped; each message holds 100.
fn messages() -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(2);
    let records: Vec<_> = (0..WINDOWS * WINDOW)
        .map(|i| {
            let rho = if i / WINDOW >= FLIP_FROM { -0.8 } else { 0.8 };
            record(&mut rng, rho, 1_700_000_000_000 + i as i64)
        })
        .collect();
    records
        .chunks(100)
        .map(|chunk| serde_json::to_vec(chunk).unwrap())
        .collect()
}

fn message(partition: i32, offset: usize, payload: &[u8]) -> Message<'_> {
    Message {
        topic: "pairs.features",
        partition,
        offset: offset as i64,
        timestamp_ms: None,
        payload: Some(payload),
    }
}

fn multivariate(window: &JudgedWindow) -> serde_json::Value {
    serde_json::to_value(&window.report).unwrap()["multivariate"].clone()
}

#[test]
fn a_correlation_flip_is_caught_by_mmd_and_pca_and_triggers_the_policy() {
    let mut processor = processor(WindowSpec::Records(WINDOW as u64));
    let mut windows: Vec<JudgedWindow> = Vec::new();
    for (offset, payload) in messages().iter().enumerate() {
        windows.extend(processor.process(message(0, offset, payload)).closed);
    }
    assert_eq!(windows.len(), WINDOWS);
    let (mut univariate, mut false_alarms) = (0, Vec::new());
    for (i, window) in windows.iter().enumerate() {
        let flipped = i >= FLIP_FROM;
        let tests = multivariate(window);
        for method in ["mmd", "pca"] {
            let outcome = &tests[method];
            if flipped {
                assert_eq!(outcome["drift"], true, "window {i} {method}: {outcome}");
            } else if outcome["drift"] == true {
                false_alarms.push((i, method));
            }
            assert_eq!(outcome["features"], 5, "x, y and the three levels of c");
        }
        assert_eq!(tests["pca"]["current_rows"], WINDOW, "every row is sampled");
        assert_eq!(
            tests["pca"]["reference_rows"], 2000,
            "the baseline's sample"
        );
        assert_eq!(tests["mmd"]["current_rows"], 500, "MMD compares 500 a side");
        univariate += usize::from(window.report.drift.dataset.detected);
        let triggered = window.decisions[0].outcome == Outcome::Triggered;
        assert_eq!(
            triggered, flipped,
            "window {i}: {}",
            window.decisions[0].reason
        );
    }
    // At alpha 0.05, eight tests of unchanged windows leave room for a false alarm.
    assert!(false_alarms.len() <= 1, "false alarms: {false_alarms:?}");
    // The marginals never change: the per-feature tests see (almost) nothing.
    assert!(
        univariate <= 1,
        "{univariate} windows flagged by the features"
    );
}

#[test]
fn a_restart_and_merged_parts_give_the_same_multivariate_outcome() {
    let messages = messages();
    let mut straight = processor(WindowSpec::Records(WINDOW as u64));
    let mut restarted = processor(WindowSpec::Records(WINDOW as u64));
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for (offset, payload) in messages.iter().enumerate() {
        expected.extend(straight.process(message(0, offset, payload)).closed);
        got.extend(restarted.process(message(0, offset, payload)).closed);
        if offset == 45 {
            // Mid-window: the open window's sample of rows travels in the checkpoint.
            let checkpoint = restarted.checkpoint();
            let settings = restarted.settings().clone();
            restarted = with_policies(StreamProcessor::new(settings, Some(checkpoint)).unwrap());
        }
    }
    let outcomes = |w: &[JudgedWindow]| w.iter().map(multivariate).collect::<Vec<_>>();
    assert_eq!(outcomes(&got), outcomes(&expected));
    // Two partitions' parts of one interval, merged, with fewer rows kept than there are:
    // the same sample, hence the same outcome, as one processor reading both.
    let minute = WindowSpec::DurationMs(60_000);
    let small = |window| {
        let mut settings = processor(window).settings().clone();
        settings.multivariate.rows = 700;
        with_policies(StreamProcessor::new(settings, None).unwrap())
    };
    let mut whole = small(minute);
    let mut parts: Vec<WindowPart> = Vec::new();
    for (partition, range) in [(0, 30..50), (1, 50..80)] {
        let mut part = small(minute);
        part.cut_parts().unwrap();
        for offset in range {
            whole.process(message(partition, offset, &messages[offset]));
            part.process(message(partition, offset, &messages[offset]));
        }
        parts.extend(part.tick_parts(i64::MAX / 2));
    }
    let expected = whole.tick(i64::MAX / 2).remove(0);
    let merged = small(minute).judge_parts(0, parts).unwrap();
    assert_eq!(multivariate(&merged), multivariate(&expected));
    assert_eq!(multivariate(&merged)["pca"]["current_rows"], 700);
    assert_eq!(
        multivariate(&merged)["mmd"]["drift"],
        true,
        "most rows are flipped"
    );
}

/// `driftgate config check` of a stream of `x` and `y` on `baseline` with model `m`'s policy.
fn check(dir: &Path, stream_extra: &str, policy: &str, baseline: &str) -> String {
    let features = [("x", "numeric"), ("y", "numeric")];
    common::config::check(dir, Path::new(baseline), &features, stream_extra, policy)
}

#[test]
fn the_configuration_names_what_multivariate_tests_need() {
    let dir = tempfile::tempdir().unwrap();
    let with_rows = dir.path().join("rows.json");
    std::fs::write(&with_rows, serde_json::to_string(&baseline()).unwrap()).unwrap();
    let mut without = baseline();
    without.joint = None;
    without.id = without.content_id();
    let no_rows = dir.path().join("no-rows.json");
    std::fs::write(&no_rows, serde_json::to_string(&without).unwrap()).unwrap();
    let (with_rows, no_rows) = (with_rows.to_str().unwrap(), no_rows.to_str().unwrap());
    let mmd = r#"{ multivariate = "mmd", metric = "p_value", below = 0.02 }"#;
    let runs = "drift = { multivariate = [\"mmd\"] }";
    let ok = check(dir.path(), runs, mmd, with_rows);
    assert!(ok.contains("policy p: model m"), "{ok}");
    let no_sample = check(dir.path(), runs, mmd, no_rows);
    assert!(
        no_sample.contains("streams[0].drift.multivariate: the baseline")
            && no_sample.contains("keeps no sample of complete rows"),
        "{no_sample}"
    );
    let not_run = check(dir.path(), "", mmd, with_rows);
    assert!(
        not_run.contains("does not run mmd: add it to the stream's drift.multivariate"),
        "{not_run}"
    );
    let pca = r#"{ multivariate = "pca", metric = "psi", above = 1 }"#;
    let bad_metric = check(
        dir.path(),
        "drift = { multivariate = [\"pca\"] }",
        pca,
        with_rows,
    );
    assert!(
        bad_metric.contains("\"psi\" is not a multivariate metric"),
        "{bad_metric}"
    );
}
