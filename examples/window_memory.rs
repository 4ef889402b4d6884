//! Window memory and checkpoint size against window size, with numeric columns summarised
//! (the default) or kept raw (`summarise_after = 0`).
//!
//! Usage: window_memory RECORDS auto|off
//!
//! Builds a 20-feature numeric baseline (100,000-value samples, the default cap), then pushes
//! RECORDS records of 20 normal features through one stream's processor in 1,000-record
//! messages, all into one open window, and prints one JSON line: the bytes the open window's
//! numeric data holds (raw values plus summaries), its checkpoint's size as the store writes it
//! (JSON), the process's peak RSS, and the time taken. `scripts/bench_window_memory.sh` runs
//! it over window sizes.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::config::StreamSettings;
use driftgate::decode::{Column, Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{Message, StreamProcessor};
use driftgate::window::WindowSpec;
use driftgate::SplitMix64;

const FEATURES: usize = 20;
const PER_MESSAGE: usize = 1000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (records, summarise) = match args.as_slice() {
        [_, records, mode] if mode == "auto" || mode == "off" => {
            (records.parse::<usize>().expect("RECORDS"), mode == "auto")
        }
        _ => {
            eprintln!("usage: window_memory RECORDS auto|off");
            std::process::exit(2);
        }
    };
    let schema = Schema {
        features: (0..FEATURES)
            .map(|i| FeatureSpec {
                name: format!("f{i}"),
                kind: FeatureKind::Numeric,
            })
            .collect(),
    };
    let mut rng = SplitMix64::new(5);
    let settings = StreamSettings {
        name: "bench".into(),
        topic: "bench".into(),
        baseline_path: "baseline.json".into(),
        baseline: Arc::new(baseline(&schema, &mut rng)),
        schema,
        window: WindowSpec::Records(u64::MAX),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
        keep_records: Some(false),
        summarise_after: (!summarise).then_some(0),
        multivariate: Default::default(),
        since_retrain: None,
    };
    // A hundred distinct messages, sent over and over at increasing offsets.
    let messages: Vec<Vec<u8>> = (0..100).map(|_| message(&mut rng)).collect();
    let mut processor = StreamProcessor::new(settings, None).expect("processor");
    let started = Instant::now();
    for offset in 0..records.div_ceil(PER_MESSAGE) {
        let outcome = processor.process(Message {
            topic: "bench",
            partition: 0,
            offset: offset as i64,
            timestamp_ms: None,
            payload: Some(&messages[offset % messages.len()]),
        });
        assert!(outcome.closed.is_empty() && outcome.dead_letter.is_none());
    }
    let elapsed = started.elapsed();
    let checkpoint = processor.checkpoint();
    let window = &checkpoint.open_window;
    let raw: usize = window
        .columns
        .iter()
        .map(|c| match c {
            Column::Numeric(c) => c.values.len() * 8,
            Column::Categorical(_) => 0,
        })
        .sum();
    let summaries = window.summaries.as_ref().map_or(0, |s| {
        s.columns.iter().flatten().map(|c| c.size_bytes()).sum()
    });
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, &checkpoint).expect("checkpoint serialises");
    println!(
        "{}",
        serde_json::json!({
            "records": window.records,
            "summarise": summarise,
            "window_bytes": raw + summaries,
            "raw_bytes": raw,
            "summary_bytes": summaries,
            "checkpoint_bytes": counter.0,
            "peak_rss_bytes": peak_rss(),
            "seconds": elapsed.as_secs_f64(),
        })
    );
}

/// A baseline of `schema`'s features, each with 200,000 normal values (sampled to 100,000).
fn baseline(schema: &Schema, rng: &mut SplitMix64) -> Baseline {
    let mut data = Dataset::new(schema.clone());
    let mut record = serde_json::Map::new();
    for _ in 0..200_000 {
        for feature in &schema.features {
            record.insert(feature.name.clone(), rng.normal().into());
        }
        data.push_json_record(&record);
    }
    Baseline::build(&data, BuildSettings::default(), BaselineSource::default()).expect("baseline")
}

fn message(rng: &mut SplitMix64) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..PER_MESSAGE)
        .map(|_| {
            (0..FEATURES)
                .map(|i| (format!("f{i}"), serde_json::Value::from(rng.normal())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "records": records })).expect("message")
}

/// Peak resident set size from `/proc/self/status`, in bytes (0 where unavailable).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Counts the bytes written to it.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
