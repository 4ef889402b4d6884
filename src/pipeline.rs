//! One stream's processing, without I/O: message → records → window → drift report.
//!
//! The Kafka shell feeds messages in offset order per partition and writes what comes out to
//! the store. Invariants:
//! * a message below the partition's next offset was already counted (it is in a stored window
//!   or in the checkpointed open window) and is skipped: re-reading after a crash or a lagging
//!   Kafka commit never double-counts;
//! * the [`Checkpoint`] taken after a message covers exactly the messages processed so far.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::StreamSettings;
use crate::decode::{BatchDecoder, RecordBatch};
use crate::drift::{self, DataInfo, DriftReport};
use crate::policy::{Engine, Model, Policy, WindowFacts};
use crate::store::{Checkpoint, DeadLetter, StoredWindow};
use crate::window::{ClosedWindow, OffsetRange, RecordPosition, WindowSpec, Windower};

/// One Kafka message as the processor needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The payload, if any.
    pub payload: Option<&'a [u8]>,
}

/// What processing one message produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records decoded and windowed.
    pub records: u64,
    /// Windows closed by this message, with their reports.
    pub closed: Vec<StoredWindow>,
    /// The message, when it could not be decoded.
    pub dead_letter: Option<DeadLetter>,
    /// True when the message was below the checkpoint and skipped.
    pub skipped: bool,
}

/// A window's report: the drift report plus the window's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport<'a> {
    /// The stream.
    pub stream: &'a str,
    /// Which records the window holds.
    pub window: WindowMeta,
    /// How well the model predicted, from records carrying `prediction` and `label`.
    pub performance: Performance,
    /// The drift report, as `driftgate drift` prints it.
    #[serde(flatten)]
    pub report: DriftReport,
}

/// Prediction quality in a window, from the records that carry both `prediction` and `label`.
#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    /// Records with both.
    pub labelled: u64,
    /// Records whose prediction equals the label.
    pub correct: u64,
    /// `correct / labelled`; null without labelled records.
    pub accuracy: Option<f64>,
    /// `1 - accuracy`; null without labelled records.
    pub error_rate: Option<f64>,
}

/// A window's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct WindowMeta {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Records whose time was before the window's start.
    pub late_records: u64,
    /// Start, RFC 3339.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// Offsets per `topic/partition`.
    pub offsets: BTreeMap<String, OffsetRange>,
}

/// One stream's processor.
pub struct StreamProcessor {
    settings: StreamSettings,
    windower: Windower,
    next_offsets: BTreeMap<String, i64>,
    decoder: BatchDecoder,
    /// The current message's records, reused from message to message.
    batch: RecordBatch,
    /// The policies judging this stream's windows.
    policies: Engine,
}

impl StreamProcessor {
    /// Starts fresh or from a checkpoint.
    pub fn new(
        settings: StreamSettings,
        checkpoint: Option<Checkpoint>,
    ) -> Result<StreamProcessor, crate::window::WindowError> {
        let mut policies = Engine::default();
        let (windower, next_offsets) = match checkpoint {
            Some(checkpoint) => {
                policies.restore(checkpoint.policies);
                (
                    Windower::restore(
                        settings.window,
                        settings.schema.clone(),
                        checkpoint.open_window,
                    )?,
                    checkpoint.next_offsets,
                )
            }
            None => (
                Windower::new(settings.window, settings.schema.clone(), 0),
                BTreeMap::new(),
            ),
        };
        Ok(StreamProcessor {
            decoder: BatchDecoder::new(&settings.schema),
            batch: RecordBatch::new(),
            policies,
            settings,
            windower,
            next_offsets,
        })
    }

    /// Sets the models and policies; those on this stream judge its windows from now on.
    /// Policies keep their state (recent windows, histories, trigger times) by name.
    pub fn set_policies(&mut self, models: &[Model], policies: &[Policy]) {
        let models: Vec<Model> = models
            .iter()
            .filter(|m| m.stream == self.settings.name)
            .cloned()
            .collect();
        let policies = policies
            .iter()
            .filter(|p| models.iter().any(|m| m.name == p.model))
            .cloned()
            .collect();
        let keep =
            (self.settings.keep_records).unwrap_or_else(|| models.iter().any(|m| m.dag.is_some()));
        self.windower.keep_records(keep);
        self.decoder.keep_number_text(keep);
        self.policies.replace(models, policies);
    }

    /// The policies judging this stream, to tell them about runs (in flight, durations).
    pub fn policies_mut(&mut self) -> &mut Engine {
        &mut self.policies
    }

    /// The policies judging this stream.
    pub fn policies(&self) -> &Engine {
        &self.policies
    }

    /// Switches the stream's detectors to another baseline (from the next window report on).
    pub fn set_baseline(
        &mut self,
        path: std::path::PathBuf,
        baseline: std::sync::Arc<crate::baseline::Baseline>,
    ) {
        self.settings.baseline_path = path;
        self.settings.baseline = baseline;
    }

    /// The stream's settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The next offset to read per `topic/partition`.
    pub fn next_offsets(&self) -> &BTreeMap<String, i64> {
        &self.next_offsets
    }

    /// Processes one message.
    pub fn process(&mut self, message: Message<'_>) -> Outcome {
        let key = format!("{}/{}", message.topic, message.partition);
        if self
            .next_offsets
            .get(&key)
            .is_some_and(|next| message.offset < *next)
        {
            return Outcome {
                skipped: true,
                ..Outcome::default()
            };
        }
        self.next_offsets.insert(key, message.offset + 1);
        let mut outcome = Outcome::default();
        let payload = message.payload.unwrap_or_default();
        if let Err(err) = self.decoder.decode(payload, &mut self.batch) {
            outcome.dead_letter = Some(DeadLetter {
                topic: message.topic.to_string(),
                partition: message.partition,
                offset: message.offset,
                reason: err.reason().to_string(),
                detail: err.to_string(),
                payload: message.payload.map(<[u8]>::to_vec),
            });
            return outcome;
        }
        let position = RecordPosition {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            broker_time_ms: message.timestamp_ms,
        };
        // An unreadable `ts` falls back to the broker timestamp; the record still counts.
        let watches_errors = self.policies.watches_errors();
        // A record's error goes to the detectors while its own window is open: before the push
        // that may close a count window with it, after the push that may close the previous
        // duration window before it.
        let after_push = matches!(self.settings.window, WindowSpec::DurationMs(_));
        for i in 0..self.batch.len() {
            let record = self.batch.record(i);
            let wrong = watches_errors
                .then(|| record.prediction_correct().map(|correct| !correct))
                .flatten();
            if let (Some(wrong), false) = (wrong, after_push) {
                self.policies.observe_error(wrong);
            }
            if let Some(closed) = self.windower.push(position, record) {
                outcome.closed.push(self.report(closed));
            }
            if let (Some(wrong), true) = (wrong, after_push) {
                self.policies.observe_error(wrong);
            }
        }
        outcome.records = self.batch.len() as u64;
        outcome
    }

    /// Closes an idle duration window by the wall clock.
    pub fn tick(&mut self, now_ms: i64) -> Option<StoredWindow> {
        let grace = self.settings.grace.as_millis() as i64;
        self.windower
            .tick(now_ms, grace)
            .map(|closed| self.report(closed))
    }

    /// The state covering every message processed so far.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            open_window: self.windower.snapshot(),
            next_offsets: self.next_offsets.clone(),
            policies: self.policies.stream_state(&self.settings.name),
        }
    }

    fn report(&mut self, window: ClosedWindow) -> StoredWindow {
        let baseline = &self.settings.baseline;
        let reference = DataInfo {
            source: Some(self.settings.baseline_path.display().to_string()),
            baseline_id: Some(baseline.id.clone()),
            records: baseline.source.records,
            invalid_lines: baseline.source.invalid_lines,
            unknown_fields: BTreeMap::new(),
        };
        let current = DataInfo {
            source: Some(self.settings.topic.clone()),
            baseline_id: None,
            records: window.records,
            invalid_lines: 0,
            unknown_fields: window.data.unknown_fields.clone(),
        };
        let report = drift::compare(
            baseline,
            &window.data,
            &self.settings.drift,
            reference,
            current,
        );
        let accuracy =
            (window.labelled > 0).then(|| window.correct as f64 / window.labelled as f64);
        let document = WindowReport {
            stream: &self.settings.name,
            performance: Performance {
                labelled: window.labelled,
                correct: window.correct,
                accuracy,
                error_rate: accuracy.map(|a| 1.0 - a),
            },
            window: WindowMeta {
                index: window.index,
                records: window.records,
                late_records: window.late_records,
                start: window.start_ms.map(rfc3339),
                end: window.end_ms.map(rfc3339),
                offsets: window.offsets,
            },
            report,
        };
        let report = serde_json::to_value(&document).expect("reports serialise");
        let decisions = self.policies.evaluate(&WindowFacts {
            stream: &self.settings.name,
            index: window.index,
            records: window.records,
            // Windows carry event or broker time; without any, time-based limits count from 0.
            at_ms: window.end_ms.or(window.start_ms).unwrap_or(0),
            report: &report,
        });
        // A trigger starts a run, which gets the window's data.
        let triggered = decisions
            .iter()
            .any(|d| d.outcome == crate::policy::Outcome::Triggered);
        StoredWindow {
            index: window.index,
            report,
            decisions,
            data: triggered.then(|| {
                std::sync::Arc::new(crate::window::WindowData {
                    columns: window.data,
                    records: window.rows,
                })
            }),
        }
    }
}

fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
