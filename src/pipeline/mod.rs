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
//! report (its drift statistics, the expensive part) is made on a thread of its
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

//!
//! Layout: [`output`] (what goes in and comes out), [`report`] (the typed window report and
//! what policies read from it), [`checkpoint`], [`settings`], and the background reporter.

mod background;
pub mod checkpoint;
pub mod multivariate;
pub mod output;
mod outputs;
pub mod parts;
pub mod report;
pub mod settings;
pub mod since_retrain;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::decode::{BatchDecoder, PredictionError, RecordBatch};
use crate::drift;
use crate::policy::{Engine, Model, Policy, WindowFacts};
use crate::store::DeadLetter;
use crate::window::summary::{Layouts, WindowSummaries};
use crate::window::{ClosedWindow, RecordPosition, WindowSpec, Windower};
use background::{PendingReport, Reporter};
use checkpoint::Restored;
use report::ReportMaker;

pub use checkpoint::{Checkpoint, MessageCounts};
pub use multivariate::{MultivariatePlan, MultivariateSettings};
pub use output::{JudgedWindow, Message, Outcome};
pub use parts::WindowPart;
pub(crate) use report::rfc3339;
pub use report::{Performance, WindowMeta, WindowReport};
pub use settings::StreamSettings;
pub use since_retrain::{SinceRetrain, SinceRetrainReport, DEFAULT_SINCE_RETRAIN_SAMPLE};

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
    /// Prediction errors seen since `pending` closed, in order: the policies get them after
    /// judging it.
    deferred_errors: Vec<PredictionError>,
    /// The thread making reports in the background, started with the first of them.
    reporter: Option<Reporter>,
    /// `@instance` when instances share the store: part of every window's identity.
    tag: String,
    /// In part mode ([`parts`]): the open window's prediction errors with their times, for its
    /// part.
    open_errors: Option<Vec<(i64, PredictionError)>>,
    /// The multivariate tests on the current baseline, when the stream runs any.
    multivariate: Option<Arc<MultivariatePlan>>,
    /// What the stream saw since its models' last retrain, when it keeps it
    /// ([`since_retrain`]).
    since_retrain: Option<SinceRetrain>,
}

impl StreamProcessor {
    /// Starts fresh or from a checkpoint.
    pub fn new(
        settings: StreamSettings,
        checkpoint: Option<Checkpoint>,
    ) -> Result<StreamProcessor, crate::window::WindowError> {
        let restored = Restored::new(&settings, checkpoint)?;
        let mut processor = StreamProcessor {
            decoder: BatchDecoder::new(&settings.schema),
            batch: RecordBatch::new(),
            policies: restored.policies,
            settings,
            windower: restored.windower,
            next_offsets: restored.next_offsets,
            background: false,
            pending: None,
            deferred_errors: restored.deferred_errors,
            reporter: None,
            tag: String::new(),
            open_errors: restored.open_errors,
            multivariate: None,
            since_retrain: restored.since_retrain,
        };
        // A window closed before the checkpoint but not reported is reported first, once the
        // policies and the baseline are set.
        if let Some(window) = restored.unreported {
            processor.pending = Some(PendingReport {
                window: Arc::new(window),
                report: None,
            });
        }
        processor.summarise();
        processor.keep_outputs();
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

    /// A run of one of the stream's models succeeded: the data since the last retrain starts
    /// again, empty, with the next window.
    pub fn retrained(&mut self) {
        if self.since_retrain.is_some() {
            self.restore_since_retrain(None);
        }
    }

    /// What the stream saw since its models' last retrain, when it keeps it.
    pub fn since_retrain(&self) -> Option<&SinceRetrain> {
        self.since_retrain.as_ref()
    }

    /// Takes up the data since the last retrain kept elsewhere (a merger's row) when the
    /// stream keeps it and `kept` fits its features; else starts it empty.
    pub fn restore_since_retrain(&mut self, kept: Option<SinceRetrain>) {
        self.since_retrain = checkpoint::since_retrain(&self.settings, kept);
    }

    /// Switches the stream's detectors to another baseline (from the next window report on).
    pub fn set_baseline(
        &mut self,
        path: std::path::PathBuf,
        baseline: std::sync::Arc<crate::baseline::Baseline>,
    ) {
        self.settings.baseline_path = path;
        self.settings.baseline = baseline;
        self.summarise();
        self.keep_outputs();
    }

    /// Windows keep the model outputs the baseline profiles, to compare them with it, and the
    /// sample of rows the multivariate tests on it need.
    fn keep_outputs(&mut self) {
        let outputs = self.settings.baseline.outputs_schema();
        self.windower.keep_outputs(&outputs.features);
        self.multivariate = multivariate::plan_of(&self.settings).map(Arc::new);
        let sample = (self.multivariate.as_ref()).map(|plan| plan.sample(self.settings.drift.seed));
        self.windower.keep_joint(sample);
    }

    /// Folds big windows' numeric columns into summaries on the current baseline, when the
    /// drift settings decide the same from a summary as from the values and the windows need
    /// not be compared with the data since the last retrain too (which needs their values).
    fn summarise(&mut self) {
        let wanted = self.settings.drift.exact_from_summaries()
            && self.settings.summarise_after != Some(0)
            && self.settings.since_retrain.is_none();
        let bins = self.settings.drift.bins;
        let layouts = wanted.then(|| self.layouts_of(Arc::clone(&self.settings.baseline), bins));
        if let Some(layouts) = &layouts {
            self.attach(layouts);
        }
        self.windower.summarise_on(layouts);
    }

    /// Layouts of `baseline` with the edges of `bins` bins.
    fn layouts_of(&self, baseline: Arc<crate::baseline::Baseline>, bins: usize) -> Arc<Layouts> {
        let layouts = Layouts::new(baseline, &self.settings.schema, bins);
        Arc::new(match self.settings.summarise_after {
            Some(values) => layouts.folding_at(values as usize),
            None => layouts,
        })
    }

    /// Gives restored windows whose values were summarised on `layouts` their layouts.
    fn attach(&mut self, layouts: &Arc<Layouts>) {
        self.windower.attach(layouts);
        if let Some(window) = self
            .pending
            .as_mut()
            .and_then(|p| Arc::get_mut(&mut p.window))
        {
            window.attach(layouts);
        }
    }

    /// Restored windows' summaries whose layouts are not loaded.
    fn unresolved(&self) -> impl Iterator<Item = &WindowSummaries> {
        let pending = self.pending.as_ref().and_then(|p| p.window.unresolved());
        pending.into_iter().chain(self.windower.unresolved())
    }

    /// The ids of the baselines that restored windows' summaries are on and whose layouts are
    /// not loaded (an earlier baseline, or the current one under other bins): give them with
    /// [`provide_baseline`](Self::provide_baseline), or those windows' summarised features
    /// are reported untested.
    pub fn wanted_baselines(&self) -> Vec<String> {
        let mut wanted: Vec<String> = self.unresolved().map(|s| s.baseline.clone()).collect();
        wanted.dedup();
        wanted
    }

    /// A baseline that restored windows' summaries are on (see
    /// [`wanted_baselines`](Self::wanted_baselines)).
    pub fn provide_baseline(&mut self, baseline: Arc<crate::baseline::Baseline>) {
        let bins: Vec<usize> = self
            .unresolved()
            .filter(|s| s.baseline == baseline.id)
            .map(|s| s.bins)
            .collect();
        for bins in bins {
            let layouts = self.layouts_of(Arc::clone(&baseline), bins);
            self.attach(&layouts);
        }
    }

    /// The stream's settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The next offset to read per `topic/partition`.
    pub fn next_offsets(&self) -> &BTreeMap<String, i64> {
        &self.next_offsets
    }

    /// Makes `@instance` part of every later window's identity (decision keys, alert ids), for
    /// instances sharing a store: each numbers its own windows.
    pub fn set_tag(&mut self, tag: String) {
        self.tag = tag;
    }

    /// Resumes `topic/partition` at `offset`: messages from there on are processed, also below
    /// the checkpoint (for a partition whose log was lost and begun again).
    pub fn resume_partition_at(&mut self, key: &str, offset: i64) {
        self.next_offsets.insert(key.to_string(), offset);
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
            let error = watches_errors.then(|| record.prediction_error()).flatten();
            if let (Some(error), false) = (error, after_push) {
                let pending = self.pending.is_some();
                let errors = (&mut self.deferred_errors, &mut self.policies);
                observe_error(&mut self.open_errors, pending, errors, error, None);
            }
            // Parts keep each error's time, for the merge to order them.
            let time = (error.is_some() && self.open_errors.is_some())
                .then(|| record.event_time_ms().or(position.broker_time_ms))
                .flatten();
            if let Some(closed) = self.windower.push(position, record) {
                self.close(closed, &mut outcome);
            }
            if let (Some(error), true) = (error, after_push) {
                let pending = self.pending.is_some();
                let errors = (&mut self.deferred_errors, &mut self.policies);
                observe_error(&mut self.open_errors, pending, errors, error, time);
            }
        }
        outcome.closed.extend(self.ready());
        outcome.records = self.batch.len() as u64;
        outcome
    }

    /// Whether a closed window's report is being made in the background.
    pub fn report_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Waits for the window whose report is being made, if any, and returns it judged.
    pub fn flush(&mut self) -> Vec<JudgedWindow> {
        self.finish_pending().into_iter().collect()
    }

    /// For a quiet stream: waits for the window whose report is being made, then closes an idle
    /// duration window by the wall clock. In part mode, nothing: see
    /// [`tick_parts`](Self::tick_parts).
    pub fn tick(&mut self, now_ms: i64) -> Vec<JudgedWindow> {
        if self.cuts_parts() {
            return Vec::new();
        }
        let grace = self.settings.grace.as_millis() as i64;
        let mut closed = self.flush();
        if let Some(window) = self.windower.tick(now_ms, grace) {
            let report = self.report(&window);
            closed.push(self.judge(window, report));
        }
        closed
    }

    /// A window closed: a part in part mode; else reported at once, or started in the
    /// background after the previous one is judged.
    fn close(&mut self, window: ClosedWindow, outcome: &mut Outcome) {
        if self.open_errors.is_some() {
            let part = self.part_of(window);
            outcome.parts.push(part);
            return;
        }
        let closed = &mut outcome.closed;
        closed.extend(self.finish_pending());
        if self.background {
            self.pending = Some(self.start_report(window));
        } else {
            let report = self.report(&window);
            closed.push(self.judge(window, report));
        }
    }

    /// What making a report needs, detached from the processor.
    fn report_maker(&self) -> ReportMaker {
        ReportMaker {
            stream: self.settings.name.clone(),
            topic: self.settings.topic.clone(),
            baseline: Arc::clone(&self.settings.baseline),
            baseline_source: self.settings.baseline_path.display().to_string(),
            settings: self.settings.drift.clone(),
            multivariate: self.multivariate.clone(),
            since_retrain: (self.since_retrain.as_ref())
                .and_then(|kept| kept.reference(&self.settings.schema)),
            threads: drift::Threads::Spread,
        }
    }

    fn report(&self, window: &ClosedWindow) -> WindowReport {
        self.report_maker().report(window)
    }

    /// The policies' decisions on a window's report.
    fn judge(&mut self, window: ClosedWindow, report: WindowReport) -> JudgedWindow {
        let mut decisions = self.policies.evaluate(&WindowFacts {
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
        for decision in &mut decisions {
            decision.key.push_str(&self.tag);
        }
        if let Some(kept) = &mut self.since_retrain {
            kept.add(&window.data);
        }
        JudgedWindow {
            index: window.index,
            tag: self.tag.clone(),
            report,
            decisions,
            data: triggered.then(|| {
                std::sync::Arc::new(crate::window::WindowData {
                    columns: window.data,
                    records: window.rows,
                    summaries: window.summaries,
                })
            }),
        }
    }
}

/// Gives the policies a record's prediction error, or keeps it for them (`deferred`) until the
/// window being reported (`pending`) is judged; in part mode (`open` is some), keeps it with its
/// time for the open window's part.
fn observe_error(
    open: &mut Option<Vec<(i64, PredictionError)>>,
    pending: bool,
    (deferred, policies): (&mut Vec<PredictionError>, &mut Engine),
    error: PredictionError,
    time: Option<i64>,
) {
    if let Some(errors) = open {
        errors.push((time.unwrap_or(0), error));
    } else if pending {
        deferred.push(error);
    } else {
        policies.observe_error(error);
    }
}
