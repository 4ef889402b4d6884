//! Criterion benchmarks for reading from files (issue 22): loading a 50-feature baseline
//! (40 numeric features of 100,000 distinct values, 10 categorical) in the NPZ and the JSON
//! layout, and reading a 100,000-row CSV of the same features. Files are written outside the
//! timed loop. Run: `cargo bench --bench files`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::source::{read_dataset, ReadOptions};
use driftgate::SplitMix64;
use std::fmt::Write;

const NUMERIC: usize = 40;
const CATEGORICAL: usize = 10;
const ROWS: usize = 100_000;

/// A CSV of `ROWS` rows: numbers with six decimals, labels of up to 30 levels.
fn csv(rng: &mut SplitMix64) -> String {
    let mut text = String::new();
    let names: Vec<String> = (0..NUMERIC)
        .map(|i| format!("n{i:02}"))
        .chain((0..CATEGORICAL).map(|i| format!("c{i:02}")))
        .collect();
    text.push_str(&names.join(","));
    text.push('\n');
    for _ in 0..ROWS {
        for _ in 0..NUMERIC {
            let _ = write!(text, "{:.6},", rng.normal());
        }
        for i in 0..CATEGORICAL {
            let levels = 5 + (i * 7) % 26;
            let _ = write!(text, "L{}", rng.below(levels as u64));
            text.push(if i + 1 == CATEGORICAL { '\n' } else { ',' });
        }
    }
    text
}

fn files(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reference.csv");
    let text = csv(&mut SplitMix64::new(5));
    std::fs::write(&data, &text).unwrap();
    let dataset = read_dataset(&data, &ReadOptions::default()).unwrap();
    let mut baseline = Baseline::profile(
        &dataset,
        BuildSettings::default(),
        BaselineSource::default(),
    )
    .unwrap();
    let (npz, json) = (dir.path().join("b.npz"), dir.path().join("b.json"));
    baseline.save(&npz).unwrap();
    baseline.save(&json).unwrap();

    let mut group = c.benchmark_group("files");
    group.sample_size(10);
    group.bench_function("baseline_load_npz_50_features", |b| {
        b.iter(|| Baseline::load(black_box(&npz)).unwrap())
    });
    group.bench_function("baseline_load_json_50_features", |b| {
        b.iter(|| Baseline::load(black_box(&json)).unwrap())
    });
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("read_csv_100k_rows_50_features", |b| {
        b.iter(|| read_dataset(black_box(&data), &ReadOptions::default()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, files);
criterion_main!(benches);
