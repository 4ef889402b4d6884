//! Throughput of the pipeline without a broker: the same message bytes through
//! decode → window → detect (with reports in the background, as the service makes them), and
//! through `serde_json` alone, two ways: parsing each message into
//! a `serde_json::Value` (what a program that parses JSON does), and only checking its syntax
//! (`IgnoredAny`: no values built at all, the floor no JSON pipeline can beat). Driven by
//! `scripts/bench_pipeline.py`, which also runs the Python comparison.
//!
//! Usage: pipeline_throughput MESSAGES.jsonl BASELINE.json WINDOW_RECORDS [--pipeline-only]
//! (one Kafka message payload per line, read as a stream). Prints one JSON line of figures.
//! `--pipeline-only` skips the two serde_json runs, for profiling the pipeline alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgate::baseline::Baseline;
use driftgate::config::StreamSettings;
use driftgate::drift::DriftSettings;
use driftgate::pipeline::{Message, StreamProcessor};
use driftgate::window::WindowSpec;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (messages, baseline, window, pipeline_only) = match args.as_slice() {
        [_, messages, baseline, window] => (messages, baseline, window, false),
        [_, messages, baseline, window, flag] if flag == "--pipeline-only" => {
            (messages, baseline, window, true)
        }
        _ => {
            eprintln!(
                "usage: pipeline_throughput MESSAGES.jsonl BASELINE.json WINDOW_RECORDS [--pipeline-only]"
            );
            std::process::exit(2);
        }
    };
    let messages = std::path::Path::new(messages);
    let baseline = Baseline::load(std::path::Path::new(baseline)).expect("baseline");
    let window: u64 = window.parse().expect("window records");

    // Parse only: every message into a serde_json value, nothing else.
    let started = Instant::now();
    let mut parsed_records = 0usize;
    let mut count = 0usize;
    if !pipeline_only {
        for_each_line(messages, |line| {
            let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
            parsed_records += value["records"].as_array().map_or(1, Vec::len);
            count += 1;
        });
    }
    let parse_only = started.elapsed();

    // Syntax only: every message checked, nothing built.
    let started = Instant::now();
    if !pipeline_only {
        for_each_line(messages, |line| {
            let _: serde::de::IgnoredAny = serde_json::from_slice(line).expect("valid JSON");
        });
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
        keep_records: None,
        summarise_after: None,
        multivariate: Default::default(),
        since_retrain: None,
    };
    let mut processor = StreamProcessor::new(settings, None).expect("processor");
    // As the service runs it: window statistics computed while the next messages are decoded.
    processor.report_in_background();
    let started = Instant::now();
    let (mut records, mut windows) = (0u64, 0usize);
    let mut offset = 0;
    for_each_line(messages, |line| {
        let outcome = processor.process(Message {
            topic: "bench",
            partition: 0,
            offset,
            timestamp_ms: None,
            payload: Some(line),
        });
        offset += 1;
        records += outcome.records;
        windows += outcome.closed.len();
    });
    windows += processor.flush().len();
    let pipeline = started.elapsed();
    if pipeline_only {
        (parsed_records, count) = (records as usize, offset as usize);
    }
    assert_eq!(records as usize, parsed_records);

    println!(
        "{}",
        serde_json::json!({
            "messages": count,
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

/// Calls `f` with each non-empty line of the file, read through one reused buffer, so that
/// memory figures are the pipeline's and not the input's.
fn for_each_line(path: &std::path::Path, mut f: impl FnMut(&[u8])) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).expect("messages file"));
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("readable") == 0 {
            return;
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        if !trimmed.is_empty() {
            f(trimmed);
        }
    }
}

/// Peak resident set size (VmHWM) in MiB, from /proc.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
