//! Per-stream processing in the service: messages into windows, dead letters to their topic or
//! the store, closed windows committed with their consequences, checkpoints, lag.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::{consequences, Service, ServiceError};
use crate::config::ServiceConfig;
use crate::pipeline::JudgedWindow;
use crate::pipeline::{Message, MessageCounts, StreamProcessor};
use crate::policy::Outcome;
use crate::source::kafka;
use crate::store::Store;

/// A stream is idle (its open duration window may close by the clock) only after this long
/// without a message, even with `grace = "0s"`.
pub(super) const MIN_IDLE: Duration = Duration::from_secs(1);

/// The streams' processors and what the loop tracks about each.
pub(super) struct Streams {
    /// One per configured stream, in configuration order.
    pub(super) processors: Vec<StreamProcessor>,
    pub(super) by_topic: HashMap<String, usize>,
    /// The dead-letter producer and its delivery reports, when a stream has a topic.
    dead_letters: Option<(
        BaseProducer<kafka::DeadLetterContext>,
        kafka::DeadLetterReports,
    )>,
    pub(super) keep_windows: u64,
    /// When each stream last received a message (wall clock), for closing idle windows.
    last_message: Vec<Instant>,
    /// Per stream: messages and dead letters since its last window closed.
    since_window: Vec<MessageCounts>,
    /// Partitions positioned at their checkpoint by the last assignment whose first message
    /// has not come yet (see `positions`).
    pub(super) positioned: std::collections::HashSet<String>,
    /// Per stream: the next offsets of its last checkpoint the store holds, the only ones that
    /// may be committed to Kafka (a partition the store has no checkpoint for resumes from the
    /// group's committed offset).
    durable: Vec<std::collections::BTreeMap<String, i64>>,
    /// Per stream: its partitions' processors when its windows span instances
    /// ([`super::spanning`]).
    pub(super) spanning: Vec<Option<super::spanning::Spanning>>,
}

impl Streams {
    /// Whether any stream's closed window is having its report made.
    pub(super) fn report_pending(&self) -> bool {
        self.processors.iter().any(StreamProcessor::report_pending)
    }

    /// The processors, resumed from their checkpoints and with the baselines runs rotated in,
    /// and the dead-letter producer when a stream has a dead-letter topic.
    pub(super) fn open(
        config: &ServiceConfig,
        store: &Store,
        servers: &str,
    ) -> Result<Streams, ServiceError> {
        let mut processors = Vec::new();
        let mut by_topic = HashMap::new();
        let mut spanning = Vec::new();
        let mut since_window = Vec::new();
        for stream in &config.streams {
            by_topic.insert(stream.topic.clone(), processors.len());
            let spans = spans_instances(config, stream);
            let (processor, counts) = open_processor(config, stream, store, spans)?;
            processors.push(processor);
            since_window.push(counts);
            spanning.push(spans.then(super::spanning::Spanning::default));
        }
        let durable = processors
            .iter()
            .map(|p| p.next_offsets().clone())
            .collect();
        let dead_letters = if config.streams.iter().any(|s| s.dead_letter_topic.is_some()) {
            Some(kafka::dead_letter_producer(
                servers,
                &config.kafka_properties,
            )?)
        } else {
            None
        };
        Ok(Streams {
            processors,
            by_topic,
            dead_letters,
            keep_windows: config.keep_windows,
            last_message: vec![Instant::now(); config.streams.len()],
            since_window,
            positioned: std::collections::HashSet::new(),
            durable,
            spanning,
        })
    }

    /// Tags the window identities of every stream whose windows are this instance's own with
    /// `@instance` (a shared store); windows spanning instances are the stream's.
    pub(super) fn tag(&mut self, tag: &str) {
        for (processor, spanning) in self.processors.iter_mut().zip(&self.spanning) {
            if spanning.is_none() {
                processor.set_tag(tag.to_string());
            }
        }
    }

    /// The processor that reads partition `key` of stream `index`: the partition's own when
    /// the stream's windows span instances and it is held, else the stream's.
    pub(super) fn processor_for(&mut self, index: usize, key: &str) -> &mut StreamProcessor {
        match self.spanning[index]
            .as_mut()
            .and_then(|s| s.slots.get_mut(key))
        {
            Some(slot) => &mut slot.processor,
            None => &mut self.processors[index],
        }
    }

    /// Every processor: the streams' and their partitions'.
    pub(super) fn all_processors(&mut self) -> impl Iterator<Item = &mut StreamProcessor> {
        let slots = self
            .spanning
            .iter_mut()
            .flatten()
            .flat_map(|s| s.slots.values_mut().map(|slot| &mut slot.processor));
        self.processors.iter_mut().chain(slots)
    }

    /// The index of the stream named `name`.
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.processors
            .iter()
            .position(|p| p.settings().name == name)
    }
}

/// Whether a stream's windows span instances: duration windows on a shared store. (Count
/// windows stay each instance's own, tagged `@instance`: a count of records has no meaning
/// across partitions read at different speeds.)
fn spans_instances(config: &ServiceConfig, stream: &crate::config::StreamSettings) -> bool {
    config.store.is_shared() && matches!(stream.window, crate::window::WindowSpec::DurationMs(_))
}

/// One stream's processor, resumed from its checkpoint, reporting in the background, with the
/// configured policies and the baseline a run rotated in (which outlives restarts); with the
/// messages its checkpoint counted since the last window closed.
fn open_processor(
    config: &ServiceConfig,
    stream: &crate::config::StreamSettings,
    store: &Store,
    spans: bool,
) -> Result<(StreamProcessor, MessageCounts), ServiceError> {
    // A stream spanning instances keeps its state per partition and with its merger.
    let checkpoint = if spans {
        None
    } else {
        store.checkpoint(&stream.name)?
    };
    if let Some(checkpoint) = &checkpoint {
        tracing::info!(stream = %stream.name, window = checkpoint.open_window.index,
            records = checkpoint.open_window.records, "resuming from checkpoint");
    }
    let counts = checkpoint
        .as_ref()
        .map_or_else(MessageCounts::default, |c| c.messages);
    let mut processor = StreamProcessor::new(stream.clone(), checkpoint).map_err(|source| {
        ServiceError::Checkpoint {
            stream: stream.name.clone(),
            source,
        }
    })?;
    // Window statistics are computed while the next messages are decoded.
    processor.report_in_background();
    processor.set_policies(&config.models, &config.policies);
    if let Some(active) = store.active_baseline(&stream.name)? {
        match crate::baseline::Baseline::load(Path::new(&active.path)) {
            Ok(baseline) if baseline.mismatches(&stream.schema.features).is_empty() => {
                tracing::info!(stream = %stream.name, version = %active.version, "using the rotated baseline");
                processor.set_baseline(PathBuf::from(&active.path), Arc::new(baseline));
            }
            Ok(_) => tracing::error!(stream = %stream.name, path = %active.path,
                "the rotated baseline no longer fits the stream's features; using the configured one"),
            Err(err) => tracing::error!(stream = %stream.name, error = %err,
                "cannot load the rotated baseline; using the configured one"),
        }
    }
    for id in processor.wanted_baselines() {
        provide_earlier_baseline(&mut processor, stream, store, &id)?;
    }
    Ok((processor, counts))
}

/// Loads baseline `id` (the configured one, or a version a run rotated in) for a restored
/// window whose values were summarised on it before a rotation.
pub(super) fn provide_earlier_baseline(
    processor: &mut StreamProcessor,
    stream: &crate::config::StreamSettings,
    store: &Store,
    id: &str,
) -> Result<(), crate::store::StoreError> {
    if stream.baseline.id == id {
        processor.provide_baseline(Arc::clone(&stream.baseline));
        return Ok(());
    }
    let kept = store.baselines(&stream.name)?;
    let loaded = kept
        .iter()
        .filter(|version| version.version == id)
        .find_map(|version| crate::baseline::Baseline::load(Path::new(&version.path)).ok());
    match loaded {
        Some(baseline) => processor.provide_baseline(Arc::new(baseline)),
        None => tracing::error!(stream = %stream.name, baseline = %id,
            "the restored window's values were summarised on a baseline that cannot be loaded; \
             its summarised features are reported untested"),
    }
    Ok(())
}

impl Service {
    /// Processes one message; true when a window closed (its offsets may be committed).
    pub(super) fn handle(
        &mut self,
        message: Message<'_>,
        end: super::positions::PartitionEnd<'_>,
    ) -> Result<bool, ServiceError> {
        let Some(&index) = self.streams.by_topic.get(message.topic) else {
            return Ok(false);
        };
        self.check_reset(index, &message, end);
        self.streams.last_message[index] = Instant::now();
        let (outcome, published) = if self.streams.spanning[index].is_some() {
            self.process_spanning(index, message)?
        } else {
            (self.streams.processors[index].process(message), false)
        };
        self.streams.since_window[index].count(outcome.dead_letter.is_some());
        let stream = self.streams.processors[index].settings().name.clone();
        self.metrics.records(&stream, outcome.records);
        if let Some(letter) = &outcome.dead_letter {
            self.dead_letter(index, letter)?;
        }
        if published {
            return Ok(true);
        }
        if outcome.closed.is_empty() {
            return Ok(false);
        }
        self.settle_dead_letters(Duration::ZERO);
        self.commit_closed(index, outcome.closed)
    }

    /// Keeps an undecodable message in the store and sends it to the stream's dead-letter
    /// topic, if any; it is forgotten once the broker confirmed it (see
    /// [`settle_dead_letters`](Self::settle_dead_letters)), so no offset is ever committed past
    /// a dead letter that is neither on its topic nor in the store. While the store cannot be
    /// reached it is held in memory ([`super::outage`]).
    fn dead_letter(
        &mut self,
        index: usize,
        letter: &crate::store::DeadLetter,
    ) -> Result<(), ServiceError> {
        let stream = &self.streams.processors[index].settings().name;
        self.metrics.dead_letter(stream, &letter.reason);
        tracing::warn!(stream = %stream, reason = %letter.reason, topic = %letter.topic,
            partition = letter.partition, offset = letter.offset, "dead letter");
        if let Some(outage) = &mut self.outage {
            outage.hold_letter(index, letter.clone());
            return Ok(());
        }
        if let Err(err) = self.store_letter(index, letter) {
            self.unreachable(err)?.hold_letter(index, letter.clone());
        }
        Ok(())
    }

    /// Stores a dead letter of stream `index` and sends it to the stream's topic, if any.
    pub(super) fn store_letter(
        &mut self,
        index: usize,
        letter: &crate::store::DeadLetter,
    ) -> Result<(), crate::store::StoreError> {
        let settings = self.streams.processors[index].settings();
        let stream = &settings.name;
        let id = self.store.add_dead_letter(stream, letter)?;
        if let (Some(topic), Some((producer, _))) =
            (&settings.dead_letter_topic, &self.streams.dead_letters)
        {
            if let Err(err) = kafka::send_dead_letter(producer, topic, letter, id) {
                self.metrics.dead_letter_kept();
                tracing::error!(stream = %stream, topic = %topic, error = %err,
                    "cannot send a dead letter; it stays in the store");
            }
        }
        Ok(())
    }

    /// Reads the broker's answers about dead letters (waiting up to `wait` for those in
    /// flight): a confirmed one leaves the store; a refused one stays there, counted and logged.
    pub(super) fn settle_dead_letters(&self, wait: Duration) {
        let Some((producer, reports)) = &self.streams.dead_letters else {
            return;
        };
        if wait.is_zero() {
            producer.poll(Duration::ZERO);
        } else if let Err(err) = producer.flush(wait) {
            tracing::warn!(error = %err, "dead letters still in flight stay in the store");
        }
        let answers = std::mem::take(&mut *crate::locks::lock(reports));
        for (id, answer) in answers {
            match answer {
                Ok(()) => {
                    if let Err(err) = self.store.forget_dead_letter(id) {
                        tracing::warn!(error = %err, "a delivered dead letter stays in the store");
                    }
                }
                Err(err) => {
                    self.metrics.dead_letter_kept();
                    tracing::error!(error = %err,
                        "the dead-letter topic refused a dead letter; it stays in the store");
                }
            }
        }
    }

    /// Commits closed windows of stream `index` ([`store_closed`](Self::store_closed)), or
    /// holds them while the store cannot be reached; true when they were stored (their offsets
    /// may be committed).
    fn commit_closed(
        &mut self,
        index: usize,
        closed: Vec<JudgedWindow>,
    ) -> Result<bool, ServiceError> {
        if let Some(outage) = &mut self.outage {
            outage.hold_windows(index, closed);
            return Ok(false);
        }
        match self.store_closed(index, closed) {
            Ok(()) => Ok(true),
            Err((err, closed)) => {
                self.unreachable(err)?.hold_windows(index, closed);
                Ok(false)
            }
        }
    }

    /// Stores closed windows of stream `index` with the checkpoint after them, the alerts
    /// they raise and the runs their triggers start, in one transaction; then wakes the sink
    /// workers and the executor, and logs and counts the windows as committed (a shared store
    /// may have turned a trigger into a suppression). On failure the windows come back, to be
    /// tried again.
    pub(super) fn store_closed(
        &mut self,
        index: usize,
        mut closed: Vec<JudgedWindow>,
    ) -> Result<(), (crate::store::StoreError, Vec<JudgedWindow>)> {
        let processor = &self.streams.processors[index];
        let settings = processor.settings();
        let stream = consequences::Stream::of(&self.alerts, processor);
        let runs_dir = &self.runs.dir;
        let counts = &mut self.streams.since_window[index];
        // The message counts go with the first window stored; a failed attempt gives them back.
        let before = *counts;
        let checkpoint = processor.checkpoint();
        let out = self.store.commit_with_outbox(
            &settings.name,
            &mut closed,
            &checkpoint,
            self.streams.keep_windows,
            processor.policies().policies(),
            |closed| {
                consequences::of(&stream, closed, counts, |id, data| {
                    consequences::export(runs_dir, id, data)
                })
            },
        );
        let out = match out {
            Ok(out) => out,
            Err(err) => {
                self.streams.since_window[index] = before;
                return Err((err, closed));
            }
        };
        self.streams.durable[index] = checkpoint.next_offsets;
        if !out.is_empty() {
            self.wake.notify();
        }
        let name = settings.name.clone();
        for window in &closed {
            self.observe(&name, window);
        }
        Ok(())
    }

    /// Metrics and logs for a closed window and the decisions on it.
    pub(super) fn observe(&self, stream: &str, window: &JudgedWindow) {
        self.metrics.window(stream, &window.report);
        tracing::info!(stream = %stream, window = window.index,
            drifted = window.report.drift.dataset.drifted,
            detected = window.report.drift.dataset.detected, "window closed");
        for decision in &window.decisions {
            self.metrics
                .decision(&decision.model, &decision.policy, decision.outcome);
            if decision.outcome != Outcome::NotTriggered {
                tracing::info!(policy = %decision.policy, model = %decision.model,
                    window = decision.window, outcome = decision.outcome.as_str(),
                    reason = %decision.reason, "decision");
            }
        }
    }

    /// Closes what the clock closes and commits reports finished in the background; true when a
    /// window closed.
    pub(super) fn tick(
        &mut self,
        now_ms: i64,
        ends: super::positions::CachedEnds<'_>,
    ) -> Result<bool, ServiceError> {
        let mut closed_any = false;
        for i in 0..self.streams.processors.len() {
            if self.streams.spanning[i].is_some() {
                closed_any |= self.tick_spanning(i, now_ms, ends)?;
                continue;
            }
            // A stream still receiving records is not idle, whatever its event times say (a
            // backfill of old data must not close a window per message). A window reported in
            // the background is committed once its report is ready, waited for when idle.
            let processor = &mut self.streams.processors[i];
            let idle = processor.settings().grace.max(MIN_IDLE);
            let closed = if self.streams.last_message[i].elapsed() < idle {
                processor.ready().into_iter().collect()
            } else {
                processor.tick(now_ms)
            };
            if closed.is_empty() {
                continue;
            }
            closed_any |= self.commit_closed(i, closed)?;
        }
        Ok(closed_any)
    }

    /// Checkpoints every stream and returns the offsets that may now be committed: none while
    /// the store cannot be reached.
    pub(super) fn checkpoint(&mut self) -> Result<TopicPartitionList, ServiceError> {
        if self.paused() {
            return Ok(TopicPartitionList::new());
        }
        self.settle_dead_letters(Duration::ZERO);
        match self.store.pending_alerts() {
            Ok(pending) => {
                for sink in &self.alerts.sinks {
                    let n = pending
                        .iter()
                        .find(|(s, _)| *s == sink.name)
                        .map_or(0, |(_, n)| *n);
                    self.metrics.alerts_pending(&sink.name, n);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot count pending alerts"),
        }
        for index in 0..self.streams.processors.len() {
            if self.streams.spanning[index].is_some() {
                if !self.checkpoint_spanning(index)? {
                    return Ok(TopicPartitionList::new());
                }
                continue;
            }
            let processor = &self.streams.processors[index];
            let stream = &processor.settings().name;
            let mut checkpoint = processor.checkpoint();
            checkpoint.messages = self.streams.since_window[index];
            let stored = self
                .store
                .commit(stream, &[], &checkpoint, self.streams.keep_windows);
            match stored {
                Ok(()) => self.streams.durable[index] = checkpoint.next_offsets,
                Err(err) => {
                    self.unreachable(err)?;
                    return Ok(TopicPartitionList::new());
                }
            }
        }
        Ok(self.committable())
    }

    /// The next offset of every partition in the checkpoints the store holds: never one only
    /// this process's memory holds.
    pub(super) fn committable(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        let streams = self.streams.processors.iter().zip(&self.streams.durable);
        for ((processor, durable), spanning) in streams.zip(&self.streams.spanning) {
            let stream = &processor.settings().name;
            let held: Vec<(&String, i64)> = match spanning {
                Some(spanning) => spanning.durable().collect(),
                None => durable.iter().map(|(key, next)| (key, *next)).collect(),
            };
            for (key, next) in held {
                // A partition another instance claimed is its to commit.
                if !self.store.holds(stream, key) {
                    continue;
                }
                if let Some((topic, partition)) = key.rsplit_once('/') {
                    if let Ok(partition) = partition.parse::<i32>() {
                        let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
                    }
                }
            }
        }
        list
    }

    /// Lag per partition from librdkafka's statistics: its high watermark minus the next offset
    /// this instance will process.
    pub(super) fn update_lag(&self, statistics: &rdkafka::statistics::Statistics) {
        for (topic, stats) in &statistics.topics {
            let Some(&index) = self.streams.by_topic.get(topic) else {
                continue;
            };
            let processor = &self.streams.processors[index];
            let spanning = self.streams.spanning[index].as_ref();
            for (&partition, partition_stats) in &stats.partitions {
                // librdkafka reports an internal "unassigned" partition as -1.
                if partition < 0 || partition_stats.hi_offset < 0 {
                    continue;
                }
                let key = format!("{topic}/{partition}");
                let reader = spanning
                    .and_then(|s| s.slots.get(&key))
                    .map_or(processor, |slot| &slot.processor);
                let Some(&next) = reader.next_offsets().get(&key) else {
                    continue;
                };
                self.metrics.lag(
                    &processor.settings().name,
                    partition,
                    partition_stats.hi_offset - next,
                );
            }
        }
    }
}
