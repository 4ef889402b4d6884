//! Throughput of the pipeline without a broker: the same message bytes through
//! decode → window → detect, and through `serde_json` alone, two ways: parsing each message into
//! a `serde_json::Value` (what a program that parses JSON does), and only checking its syntax
//! (`IgnoredAny`: no values built at all, the floor no JSON pipeline can beat). Driven by
//! `scripts/bench_pipeline.py`, which also runs the Python comparison.
//!
//! Usage: pipeline_throughput MESSAGES.jsonl BASELINE.json WINDOW_RECORDS
//! (one Kafka message payload per line). Prints one JSON line of figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgate::baseline::Baseline;
use driftgate::config::StreamSettings;
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{Message, StreamProcessor};
use driftgate::window::WindowSpec;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, messages, baseline, window] = args.as_slice() else {
        eprintln!("usage: pipeline_throughput MESSAGES.jsonl BASELINE.json WINDOW_RECORDS");
        std::process::exit(2);
    };
    let bytes = std::fs::read(messages).expect("messages file");
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let baseline = Baseline::load(std::path::Path::new(baseline)).expect("baseline");
    let window: u64 = window.parse().expect("window records");

    // Parse only: every message into a serde_json value, nothing else.
    let started = Instant::now();
    let mut parsed_records = 0usize;
    for line in &lines {
        let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        parsed_records += value["records"].as_array().map_or(1, Vec::len);
    }
    let parse_only = started.elapsed();

    // Syntax only: every message checked, nothing built.
    let started = Instant::now();
    for line in &lines {
        let _: serde::de::IgnoredAny = serde_json::from_slice(line).expect("valid JSON");
    }
    let syntax_only = started.elapsed();

    // The pipeline: decode, window, drift report per window.
    let settings = StreamSettings {
        name: "bench".into(),
        topic: "bench".into(),
        baseline_path: "baseline.json".into(),
        schema: baseline.schema(),
        baseline: Arc::new(baseline),
        window: WindowSpec::Records(window),
        grace: Duration::ZERO,
        dead_letter_topic: None,
        drift: DriftSettings::default(),
    };
    let mut processor = StreamProcessor::new(settings, None).expect("processor");
    let started = Instant::now();
    let (mut records, mut windows) = (0u64, 0usize);
    for (offset, line) in lines.iter().enumerate() {
        let outcome = processor.process(Message {
            topic: "bench",
            partition: 0,
            offset: offset as i64,
            timestamp_ms: None,
            payload: Some(line),
        });
        records += outcome.records;
        windows += outcome.closed.len();
    }
    let pipeline = started.elapsed();
    assert_eq!(records as usize, parsed_records);

    println!(
        "{}",
        serde_json::json!({
            "messages": lines.len(),
            "records": records,
            "windows": windows,
            "parse_only_seconds": parse_only.as_secs_f64(),
            "syntax_only_seconds": syntax_only.as_secs_f64(),
            "pipeline_seconds": pipeline.as_secs_f64(),
            "parse_only_records_per_second": parsed_records as f64 / parse_only.as_secs_f64(),
            "syntax_only_records_per_second": parsed_records as f64 / syntax_only.as_secs_f64(),
            "pipeline_records_per_second": records as f64 / pipeline.as_secs_f64(),
            "peak_rss_mib": peak_rss_mib(),
        })
    );
}

/// Peak resident set size (VmHWM) in MiB, from /proc.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
