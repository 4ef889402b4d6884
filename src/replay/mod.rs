//! Replay: the service's windows, detectors and policies over recorded data, without a service.
//!
//! Each line of a JSONL file is one message, exactly as a producer would send it (a record, an
//! array of records or `{"records": [...]}`); each row of a CSV file is a one-record message.
//! Messages go through the same [`StreamProcessor`] the service runs, in file order, as if they
//! came from one partition: same windows, same reports, same decisions. Times come from the
//! records' `ts` (there is no broker time), so cooldowns and budgets play out as they would have.
//! A topic's offset range ([`replay_topic`]) is read the same way, with broker times.
//! A duration stream's last window is closed at the end of the input; a count stream's partial
//! last window is left open, as the service would leave it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::ServiceConfig;
use crate::pipeline::{Message, StreamProcessor};
use crate::policy::{Decision, Outcome};

mod chart;
mod table;

pub use chart::{chart, P_VALUE_FLOOR};
pub use table::table;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The configuration has no such stream, or several and none was named.
    #[error("{0}")]
    Stream(String),
    /// The input could not be read.
    #[error("cannot read {path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// One window as replayed.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayWindow {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Start, RFC 3339, when the records carry times.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// Share of the stream's tested features that drifted.
    pub drift_share: f64,
    /// Drift score per feature (the stream's drift method: p-value or distance).
    pub scores: BTreeMap<String, Option<f64>>,
    /// Features whose drift was detected.
    pub drifted: Vec<String>,
    /// Every policy's decision on this window.
    pub decisions: Vec<Decision>,
}

/// A whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The stream replayed.
    pub stream: String,
    /// Messages read.
    pub messages: u64,
    /// Records windowed.
    pub records: u64,
    /// Messages that could not be decoded (the service would dead-letter them), with reasons.
    pub dead_letters: BTreeMap<String, u64>,
    /// Records left in the open (unjudged) window at the end.
    pub open_records: u64,
    /// The closed windows, in order.
    pub windows: Vec<ReplayWindow>,
    /// Triggers per policy.
    pub triggers: BTreeMap<String, u64>,
    /// Retraining runs the triggers would have started, per model.
    pub retrains: BTreeMap<String, u64>,
}

impl Replay {
    /// Retraining runs in all.
    pub fn total_retrains(&self) -> u64 {
        self.retrains.values().sum()
    }
}

/// The stream a replay runs through: the named one, or the configuration's only stream.
pub(crate) fn stream_settings<'c>(
    config: &'c ServiceConfig,
    stream: Option<&str>,
) -> Result<&'c crate::config::StreamSettings, ReplayError> {
    match stream {
        Some(name) => config
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                ReplayError::Stream(format!(
                    "no stream `{name}` in the configuration (streams: {})",
                    names(config)
                ))
            }),
        None if config.streams.len() == 1 => Ok(&config.streams[0]),
        None => Err(ReplayError::Stream(format!(
            "the configuration has several streams; name one with --stream ({})",
            names(config)
        ))),
    }
}

/// A stream's processor with the replay it builds: messages in, windows and decisions out.
struct Replayer {
    processor: StreamProcessor,
    replay: Replay,
}

impl Replayer {
    fn new(config: &ServiceConfig, stream: Option<&str>) -> Result<Replayer, ReplayError> {
        let settings = stream_settings(config, stream)?;
        let mut processor = StreamProcessor::new(settings.clone(), None)
            .expect("a fresh processor has no checkpoint to mismatch");
        processor.set_policies(&config.models, &config.policies);
        let triggers = processor
            .policies()
            .policies()
            .iter()
            .map(|p| (p.name.clone(), 0))
            .collect();
        Ok(Replayer {
            processor,
            replay: Replay {
                stream: settings.name.clone(),
                messages: 0,
                records: 0,
                dead_letters: BTreeMap::new(),
                open_records: 0,
                windows: Vec::new(),
                triggers,
                retrains: BTreeMap::new(),
            },
        })
    }

    fn feed(&mut self, message: Message<'_>) {
        let outcome = self.processor.process(message);
        self.replay.messages += 1;
        self.replay.records += outcome.records;
        if let Some(letter) = outcome.dead_letter {
            *self.replay.dead_letters.entry(letter.reason).or_insert(0) += 1;
        }
        for window in outcome.closed {
            self.replay.add(window);
        }
    }

    fn finish(mut self) -> Replay {
        for last in self.processor.tick(i64::MAX) {
            self.replay.add(last);
        }
        self.replay.open_records = self.processor.checkpoint().open_window.records;
        self.replay
    }
}

/// Replays `input` through `stream` (or the configuration's only stream). `progress` is called
/// with the bytes read so far and the input's size.
pub fn replay(
    config: &ServiceConfig,
    input: &Path,
    stream: Option<&str>,
    progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    let mut replayer = Replayer::new(config, stream)?;
    let topic = replayer.processor.settings().topic.clone();
    let read = read_messages(input, &topic, progress, |message| {
        replayer.feed(message);
        Ok::<(), std::convert::Infallible>(())
    });
    read.map_err(|message| ReplayError::Input {
        path: input.display().to_string(),
        message,
    })?
    .unwrap_or_else(|never| match never {});
    Ok(replayer.finish())
}

/// Hands `handle` each message of a recorded file, in order, until it fails, as if it came from
/// partition 0 of `topic` at offsets 0, 1, … without a broker time: a JSONL line as it is, a
/// CSV row as the JSON record the file reader would see. `progress` is called with the bytes
/// read so far and the file's size. The outer error says why the file could not be read; the
/// inner one is `handle`'s.
pub(crate) fn read_messages<E>(
    input: &Path,
    topic: &str,
    mut progress: impl FnMut(u64, u64),
    mut each: impl FnMut(Message<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, String> {
    let mut offset = 0;
    let mut handle = |payload: &[u8]| {
        offset += 1;
        each(Message {
            topic,
            partition: 0,
            offset: offset - 1,
            timestamp_ms: None,
            payload: Some(payload),
        })
    };
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let is_csv = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut reader = csv::Reader::from_path(input).map_err(|e| e.to_string())?;
        let headers = reader.headers().map_err(|e| e.to_string())?.clone();
        let mut read = 0u64;
        for row in reader.records() {
            let row = row.map_err(|e| e.to_string())?;
            let payload = csv_record(&headers, &row);
            if let Err(err) = handle(payload.as_bytes()) {
                return Ok(Err(err));
            }
            read = row.position().map_or(read, |p| p.byte());
            progress(read, size);
        }
    } else {
        use std::io::BufRead;
        let file = std::fs::File::open(input).map_err(|e| e.to_string())?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        let mut read = 0u64;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            read += n as u64;
            let payload = line.trim_ascii();
            if !payload.is_empty() {
                if let Err(err) = handle(payload) {
                    return Ok(Err(err));
                }
            }
            progress(read, size);
        }
    }
    Ok(Ok(()))
}

/// Replays a range of `topic` (usually the stream's own; by default everything it holds now)
/// through the stream, reading with the service's Kafka settings but without joining its group
/// or committing anything. Partitions are merged by broker timestamp (ties by partition, then
/// offset); one partition is read in offset order, exactly as the service reads it.
/// `progress` is called with the messages read so far and the range's size.
pub fn replay_topic(
    config: &ServiceConfig,
    stream: Option<&str>,
    topic: &str,
    range: &TopicRange,
    mut progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    let mut replayer = Replayer::new(config, stream)?;
    let bootstrap = brokers(config).map_err(ReplayError::Stream)?;
    crate::source::range::read_range(
        bootstrap,
        &config.kafka_properties,
        topic,
        range,
        |message, read, total| {
            replayer.feed(message);
            progress(read, total);
        },
    )
    .map_err(|message| ReplayError::Input {
        path: format!("topic {topic}"),
        message,
    })?;
    Ok(replayer.finish())
}

pub use crate::source::range::{OffsetBound, TopicRange};

/// The brokers a topic is read from; why there are none.
pub(crate) fn brokers(config: &ServiceConfig) -> Result<&str, String> {
    config.bootstrap_servers.as_deref().ok_or_else(|| {
        "the configuration uses the embedded broker; reading a topic needs \
         kafka.bootstrap_servers"
            .to_string()
    })
}

impl Replay {
    fn add(&mut self, window: crate::pipeline::JudgedWindow) {
        let report = &window.report;
        let scores = report
            .drift
            .features
            .iter()
            .map(|f| (f.name.clone(), f.drift.score.filter(|s| s.is_finite())))
            .collect();
        let drifted = report.drifted_features().map(|f| f.name.clone()).collect();
        for decision in &window.decisions {
            if decision.outcome == Outcome::Triggered {
                *self.triggers.entry(decision.policy.clone()).or_insert(0) += 1;
                *self.retrains.entry(decision.model.clone()).or_insert(0) += 1;
            }
        }
        self.windows.push(ReplayWindow {
            index: window.index,
            records: report.window.records,
            start: report.window.start.clone(),
            end: report.window.end.clone(),
            drift_share: report.drift.dataset.share,
            scores,
            drifted,
            decisions: window.decisions,
        });
    }
}

fn names(config: &ServiceConfig) -> String {
    config
        .streams
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CSV row as the JSON record the file reader would see: empty cells are null, numbers are
/// numbers, the rest is text.
fn csv_record(headers: &csv::StringRecord, row: &csv::StringRecord) -> String {
    let record: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .zip(row.iter())
        .map(|(name, cell)| {
            let value = match crate::decode::Cell::from_csv(cell) {
                crate::decode::Cell::Missing => serde_json::Value::Null,
                crate::decode::Cell::Number { value, .. } => serde_json::Number::from_f64(value)
                    .map_or_else(|| cell.trim().into(), serde_json::Value::Number),
                _ => cell.into(),
            };
            (name.to_string(), value)
        })
        .collect();
    serde_json::Value::Object(record).to_string()
}
