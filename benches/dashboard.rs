//! The dashboard's page speed on a big store: 10,000 windows of a 50-feature stream (real
//! reports, with their histograms) and three policies' decisions on each, in a SQLite store.
//! Each page is asked for through the service's own router, as a browser would ask for it.
//! Run: `cargo bench --bench dashboard`. Run as a test (`cargo test --benches`), the store
//! holds 500 windows, to keep the suite quick.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use criterion::{criterion_group, criterion_main, Criterion};
use driftgate::api::{ApiState, StreamInfo};
use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::reload::Catalog;
use driftgate::decode::{Column, Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::{compare, DataInfo, DriftSettings};
use driftgate::policy::Model;
use driftgate::store::{Store, StoreUrl};
use driftgate::SplitMix64;
use tower::ServiceExt;

const FEATURES: usize = 50;
const POLICIES: [&str; 3] = ["drift", "quality", "share"];

fn dataset(rows: usize, rng: &mut SplitMix64, shift: f64) -> Dataset {
    let schema = Schema {
        features: (0..FEATURES)
            .map(|i| FeatureSpec {
                name: format!("f{i:02}"),
                kind: if i % 5 == 4 {
                    FeatureKind::Categorical
                } else {
                    FeatureKind::Numeric
                },
            })
            .collect(),
    };
    let mut data = Dataset::new(schema);
    data.records = rows as u64;
    for column in data.columns.iter_mut() {
        match column {
            Column::Numeric(column) => {
                column.values = (0..rows).map(|_| rng.normal() + shift).collect();
            }
            Column::Categorical(column) => {
                for _ in 0..rows {
                    let level = format!("c{}", (rng.normal().abs() * 4.0) as u32);
                    *column.counts.entry(level).or_insert(0) += 1;
                }
            }
        }
    }
    data
}

/// One window report as the service stores it.
fn report_template() -> serde_json::Value {
    let mut rng = SplitMix64::new(7);
    let reference = dataset(20_000, &mut rng, 0.0);
    let current = dataset(2_000, &mut rng, 0.05);
    let baseline = Baseline::build(
        &reference,
        BuildSettings::default(),
        BaselineSource::default(),
    )
    .unwrap();
    let drift = compare(
        &baseline,
        &current,
        &DriftSettings::default(),
        DataInfo::default(),
        DataInfo::default(),
    );
    let mut report = serde_json::to_value(drift).unwrap();
    report["stream"] = "payments".into();
    report["performance"] =
        serde_json::json!({"labelled": 2000, "correct": 1800, "accuracy": 0.9, "error_rate": 0.1});
    report
}

/// A store of `windows` windows with three decisions each; its path.
fn fill(dir: &std::path::Path, windows: u64) -> std::path::PathBuf {
    let path = dir.join("store.db");
    drop(Store::open(&StoreUrl::sqlite(&path)).unwrap());
    let template = report_template();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    for index in 0..windows {
        let mut report = template.clone();
        let end = 1_700_000_000_000 + index as i64 * 60_000;
        report["window"] = serde_json::json!({"index": index, "records": 2000, "late_records": 0,
            "start": rfc3339(end - 60_000), "end": rfc3339(end), "offsets": {}});
        tx.execute(
            "INSERT INTO windows (stream, idx, tag, report, created_at) VALUES ('payments', ?1, '', ?2, 0)",
            rusqlite::params![index as i64, report.to_string()],
        )
        .unwrap();
        for policy in POLICIES {
            let decision = serde_json::json!({"key": format!("{policy}/fraud/payments/{index}"),
                "policy": policy, "model": "fraud", "dag": null, "stream": "payments", "window": index,
                "at_ms": end, "outcome": "not_triggered", "reason": "not met", "drifted_features": [],
                "signals": [{"subject": "f00", "metric": "ks.p_value", "value": 0.3, "threshold": 0.01,
                    "hit": false, "text": "f00: ks.p_value 0.3"}]});
            tx.execute(
                "INSERT INTO decisions (key, policy, model, stream, window_idx, outcome, decision, at_ms, created_at)
                 VALUES (?1, ?2, 'fraud', 'payments', ?3, 'not_triggered', ?4, ?5, 0)",
                rusqlite::params![decision["key"].as_str(), policy, index as i64, decision.to_string(), end],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    path
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn state(path: &std::path::Path) -> ApiState {
    ApiState {
        metrics: Arc::default(),
        readiness: Arc::new(driftgate::source::readiness::Readiness::new(
            "127.0.0.1:9092",
        )),
        store: driftgate::store::Pool::new(&StoreUrl::sqlite(path), 4),
        runs_dir: path.parent().unwrap().join("runs"),
        streams: Arc::new(vec![StreamInfo {
            name: "payments".into(),
            topic: "payments.features".into(),
            window: "2000 records".into(),
            baseline_id: "b".repeat(64),
            features: (0..FEATURES).map(|i| format!("f{i:02}")).collect(),
        }]),
        catalog: Arc::new(RwLock::new(Catalog {
            models: vec![Model {
                name: "fraud".into(),
                stream: "payments".into(),
                features: vec!["f00".into()],
                dag: None,
            }],
            dags: Vec::new(),
        })),
        reload: std::sync::mpsc::channel().0,
        run_token: None,
        baselines: Arc::new(BTreeMap::new()),
        wake: Arc::default(),
    }
}

fn pages(c: &mut Criterion) {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let windows = if benchmarking { 10_000 } else { 500 };
    let dir = tempfile::tempdir().unwrap();
    let path = fill(dir.path(), windows);
    let router = driftgate::api::router(state(&path));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |uri: &str| {
        let request = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), 200, "{uri}");
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap()
    };
    let last = windows - 1;
    let mut group = c.benchmark_group(format!("page_{windows}_windows_x_{FEATURES}_features"));
    group.sample_size(20);
    for (name, uri) in [
        ("stream", "/streams/payments".to_string()),
        ("stream_500_windows", "/streams/payments?windows=500".into()),
        ("window", format!("/streams/payments/windows/{last}")),
        ("model", "/models/fraud".into()),
        ("overview", "/".into()),
    ] {
        group.bench_function(name, |b| b.iter(|| get(&uri)));
    }
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
