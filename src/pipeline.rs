//! One stream's processing, without I/O: message → records → window → drift report.
//!
//! The Kafka shell feeds messages in offset order per partition and writes what comes out to
//! the store. Invariants:
//! * a message below the partition's next offset was already counted (it is in a stored window
//!   or in the checkpointed open window) and is skipped: re-reading after a crash or a lagging
//!   Kafka commit never double-counts;
//! * the [`Checkpoint`] taken after a message covers exactly the messages processed so far.
//!
//! Reports in the background ([`StreamProcessor::report_in_background`]): a closed window's
//! report (its drift statistics, the expensive part, and its JSON) is made on a thread of its
//! own while the next messages are decoded. The window is judged by the policies, and returned in
//! an [`Outcome`], once its report is ready: at the next message that finds it done, when the
//! next window closes, or at [`StreamProcessor::flush`]. Nothing else changes:
//! * windows come out in index order, each once;
//! * the policies see exactly what they see when reports are made inline: a window's
//!   judgement, then the prediction errors of the records after it (those errors wait for it);
//! * a checkpoint taken while a window's report is being made holds that window and the errors
//!   waiting for it, and a processor restored from it reports the window again.
//!
//! A window is judged by the policies in force when its report is ready: after a reload that
//! lands while it is being made, by the reloaded ones.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;

use serde::Serialize;

use crate::baseline::Baseline;
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
    /// Whether closed windows' reports are made on the report thread.
    background: bool,
    /// The closed window whose report is being made, when reports are in the background.
    pending: Option<PendingReport>,
    /// Prediction errors (`true` = wrong) seen since `pending` closed, in order: the policies
    /// get them after judging it.
    deferred_errors: Vec<bool>,
    /// The thread making reports in the background, started with the first of them.
    reporter: Option<Reporter>,
}

/// A report's JSON, or the panic that interrupted making it (a bug, raised again by the caller).
type ReportResult = std::thread::Result<serde_json::Value>;

/// A closed window and where its report will come from.
struct PendingReport {
    window: Arc<ClosedWindow>,
    /// `None` for a window restored from a checkpoint: its report is made when it is judged,
    /// against the baseline in use then.
    report: Option<mpsc::Receiver<ReportResult>>,
}

/// One thread that makes reports in turn, fed through a channel; it ends when the processor
/// (the sending side) is dropped.
struct Reporter {
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Reporter {
    fn start() -> Reporter {
        let (jobs, queue) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("driftgate-report".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .expect("the report thread starts");
        Reporter { jobs }
    }
}

impl StreamProcessor {
    /// Starts fresh or from a checkpoint.
    pub fn new(
        settings: StreamSettings,
        checkpoint: Option<Checkpoint>,
    ) -> Result<StreamProcessor, crate::window::WindowError> {
        let mut policies = Engine::default();
        let mut unreported = None;
        let mut deferred_errors = Vec::new();
        let (windower, next_offsets) = match checkpoint {
            Some(checkpoint) => {
                policies.restore(checkpoint.policies);
                if let Some(state) = checkpoint.unreported_window {
                    unreported = Some(ClosedWindow::restore(settings.schema.clone(), state)?);
                    deferred_errors = checkpoint.deferred_errors;
                }
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
        let mut processor = StreamProcessor {
            decoder: BatchDecoder::new(&settings.schema),
            batch: RecordBatch::new(),
            policies,
            settings,
            windower,
            next_offsets,
            background: false,
            pending: None,
            deferred_errors,
            reporter: None,
        };
        // A window closed before the checkpoint but not reported is reported first, once the
        // policies and the baseline are set.
        if let Some(window) = unreported {
            processor.pending = Some(PendingReport {
                window: Arc::new(window),
                report: None,
            });
        }
        Ok(processor)
    }

    /// Makes closed windows' reports on a thread of their own, so that the next messages are
    /// decoded meanwhile (see the module docs). Windows then come out of
    /// [`process`](Self::process) later than the message that closed them;
    /// [`flush`](Self::flush) waits for the last one.
    pub fn report_in_background(&mut self) {
        self.background = true;
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
                observe_error(
                    self.pending.is_some(),
                    &mut self.deferred_errors,
                    &mut self.policies,
                    wrong,
                );
            }
            if let Some(closed) = self.windower.push(position, record) {
                self.close(closed, &mut outcome.closed);
            }
            if let (Some(wrong), true) = (wrong, after_push) {
                observe_error(
                    self.pending.is_some(),
                    &mut self.deferred_errors,
                    &mut self.policies,
                    wrong,
                );
            }
        }
        outcome.closed.extend(self.ready());
        outcome.records = self.batch.len() as u64;
        outcome
    }

    /// The window whose report was being made, judged, when its report is done; never waits.
    pub fn ready(&mut self) -> Option<StoredWindow> {
        let report = match &self.pending.as_ref()?.report {
            Some(receiver) => match receiver.try_recv() {
                Ok(report) => Some(report),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => panic!("the report thread is gone"),
            },
            None => None,
        };
        self.finish_pending_with(report)
    }

    /// Waits for the window whose report is being made, if any, and returns it judged.
    pub fn flush(&mut self) -> Vec<StoredWindow> {
        self.finish_pending().into_iter().collect()
    }

    /// For a quiet stream: waits for the window whose report is being made, then closes an idle
    /// duration window by the wall clock.
    pub fn tick(&mut self, now_ms: i64) -> Vec<StoredWindow> {
        let grace = self.settings.grace.as_millis() as i64;
        let mut closed = self.flush();
        if let Some(window) = self.windower.tick(now_ms, grace) {
            let report = self.report(&window);
            closed.push(self.judge(window, report));
        }
        closed
    }

    /// The state covering every message processed so far.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            open_window: self.windower.snapshot(),
            next_offsets: self.next_offsets.clone(),
            policies: self.policies.stream_state(&self.settings.name),
            unreported_window: self.pending.as_ref().map(|p| p.window.snapshot()),
            deferred_errors: self.deferred_errors.clone(),
        }
    }

    /// A window closed: reported at once, or started in the background after the previous one
    /// is judged.
    fn close(&mut self, window: ClosedWindow, closed: &mut Vec<StoredWindow>) {
        closed.extend(self.finish_pending());
        if self.background {
            self.pending = Some(self.start_report(window));
        } else {
            let report = self.report(&window);
            closed.push(self.judge(window, report));
        }
    }

    fn start_report(&mut self, window: ClosedWindow) -> PendingReport {
        let window = Arc::new(window);
        let (reply, report) = mpsc::channel();
        let job = {
            let window = Arc::clone(&window);
            let maker = ReportMaker {
                threads: drift::Threads::Caller,
                ..self.report_maker()
            };
            move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    maker.report(&window)
                }));
                // The window is judged only after its last reference here is gone, so it can
                // be taken back without a copy.
                drop(window);
                // The receiver is gone only when the processor is: nobody wants the report.
                let _ = reply.send(result);
            }
        };
        let reporter = self.reporter.get_or_insert_with(Reporter::start);
        reporter
            .jobs
            .send(Box::new(job))
            .expect("the report thread takes jobs while the processor lives");
        PendingReport {
            window,
            report: Some(report),
        }
    }

    /// Waits for the window whose report is being made, if any, and judges it.
    fn finish_pending(&mut self) -> Option<StoredWindow> {
        let report = self.pending.as_ref()?.report.as_ref().map(|receiver| {
            receiver
                .recv()
                .expect("the report thread answers every job")
        });
        self.finish_pending_with(report)
    }

    /// Judges the window being reported with its report (made here when there is none), then
    /// gives the policies the errors that waited for it.
    fn finish_pending_with(&mut self, report: Option<ReportResult>) -> Option<StoredWindow> {
        let pending = self.pending.take()?;
        let report = match report {
            // A panic while making the report is a bug: raise it here, as an inline report
            // would.
            Some(result) => result.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => self.report(&pending.window),
        };
        let window = Arc::unwrap_or_clone(pending.window);
        let stored = self.judge(window, report);
        for wrong in std::mem::take(&mut self.deferred_errors) {
            self.policies.observe_error(wrong);
        }
        Some(stored)
    }

    /// What making a report needs, detached from the processor.
    fn report_maker(&self) -> ReportMaker {
        ReportMaker {
            stream: self.settings.name.clone(),
            topic: self.settings.topic.clone(),
            baseline: Arc::clone(&self.settings.baseline),
            baseline_source: self.settings.baseline_path.display().to_string(),
            settings: self.settings.drift.clone(),
            threads: drift::Threads::Spread,
        }
    }

    fn report(&self, window: &ClosedWindow) -> serde_json::Value {
        self.report_maker().report(window)
    }

    /// The policies' decisions on a window's report.
    fn judge(&mut self, window: ClosedWindow, report: serde_json::Value) -> StoredWindow {
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

/// Gives the policies a record's prediction error, or keeps it for them until the window being
/// reported (`pending`) is judged.
fn observe_error(pending: bool, deferred: &mut Vec<bool>, policies: &mut Engine, wrong: bool) {
    if pending {
        deferred.push(wrong);
    } else {
        policies.observe_error(wrong);
    }
}

/// Everything a window's report is made from besides the window: the stream, its baseline and
/// the drift settings.
struct ReportMaker {
    stream: String,
    topic: String,
    baseline: Arc<Baseline>,
    baseline_source: String,
    settings: drift::DriftSettings,
    /// Inline reports spread the features over the cores; background reports keep to their
    /// thread, beside the one decoding.
    threads: drift::Threads,
}

impl ReportMaker {
    /// The window's report document: its drift statistics against the baseline (the pure,
    /// expensive part), its metadata and its prediction quality, as JSON.
    fn report(&self, window: &ClosedWindow) -> serde_json::Value {
        let baseline = &self.baseline;
        let reference = DataInfo {
            source: Some(self.baseline_source.clone()),
            baseline_id: Some(baseline.id.clone()),
            records: baseline.source.records,
            invalid_lines: baseline.source.invalid_lines,
            unknown_fields: BTreeMap::new(),
        };
        let current = DataInfo {
            source: Some(self.topic.clone()),
            baseline_id: None,
            records: window.records,
            invalid_lines: 0,
            unknown_fields: window.data.unknown_fields.clone(),
        };
        let report = drift::compare_on(
            self.threads,
            baseline,
            &window.data,
            &self.settings,
            reference,
            current,
        );
        let accuracy =
            (window.labelled > 0).then(|| window.correct as f64 / window.labelled as f64);
        let document = WindowReport {
            stream: &self.stream,
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
                offsets: window.offsets.clone(),
            },
            report,
        };
        serde_json::to_value(&document).expect("reports serialise")
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
