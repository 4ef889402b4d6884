//! Streams whose windows span instances: duration windows on a shared store.
//!
//! Each partition this instance holds has a processor of its own in part mode
//! ([`crate::pipeline::parts`]), restored from the state the partition's last owner committed.
//! Its parts and state are committed together ([`crate::store::Store::commit_partition`]) as
//! soon as a part closes and at every checkpoint; its offsets are committed to Kafka only once
//! the store holds them. One instance per stream, elected through the store, merges each
//! interval once every partition is past it, and judges and commits the stream's window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{consequences, Service, ServiceError};
use crate::pipeline::{JudgedWindow, Message, MessageCounts, Outcome, StreamProcessor, WindowPart};
use crate::store::{Merger, ReadyInterval, StoreError};

/// How often the merger looks for ready intervals (and renews its lease).
const MERGE_EVERY: Duration = Duration::from_millis(200);

/// A spanning stream's state on this instance.
#[derive(Default)]
pub(super) struct Spanning {
    /// The held partitions' processors, by `topic/partition`.
    pub(super) slots: BTreeMap<String, Slot>,
    /// The merging of the stream, when this instance holds it.
    merger: Option<Merger>,
    last_merge: Option<Instant>,
}

/// One held partition.
pub(super) struct Slot {
    pub(super) processor: StreamProcessor,
    /// Parts closed and not committed yet.
    unpublished: Vec<WindowPart>,
    last_message: Instant,
    /// The next offset the store holds for it.
    durable: Option<i64>,
    /// The event time before which its records are all in parts or its open part.
    watermark: Option<i64>,
    /// Whether it has been read to the end the consumer last heard of.
    caught_up: bool,
    /// Messages and dead letters since its open part began.
    counts: MessageCounts,
}

impl Spanning {
    /// The next offsets the store holds for the held partitions.
    pub(super) fn durable(&self) -> impl Iterator<Item = (&String, i64)> {
        self.slots
            .iter()
            .filter_map(|(key, slot)| slot.durable.map(|next| (key, next)))
    }
}

/// A partition's watermark: its open window's start; with none open, once it has been read to
/// its end and silent for `idle` (the stream's grace, at least a second), the wall clock less
/// that; until then, the last one known. A partition silent that long counts as past every
/// interval before, and what it reads later for them joins the next window as late records.
fn watermark(slot: &Slot, checkpoint: &crate::pipeline::Checkpoint, idle: Duration) -> Option<i64> {
    if let Some(start) = checkpoint.open_window.start_ms {
        return Some(start);
    }
    if slot.caught_up && slot.last_message.elapsed() >= idle {
        return Some(crate::store::now_ms() - idle.as_millis() as i64);
    }
    slot.watermark
}

/// Keeps `merger` in the stream's spanning state.
fn spanning_merger(spanning: &mut Option<Spanning>, merger: Merger) {
    if let Some(spanning) = spanning.as_mut() {
        spanning.merger = Some(merger);
    }
}

/// Whether partition `key` was read to the end the consumer last heard of: its next offset at
/// or past the high watermark; never read, an empty partition (low = high). Unknown ends are
/// not caught up.
fn caught_up(key: &str, next: Option<&i64>, ends: super::positions::CachedEnds<'_>) -> bool {
    let Some((topic, partition)) = key.rsplit_once('/') else {
        return false;
    };
    let Ok(partition) = partition.parse::<i32>() else {
        return false;
    };
    match (next, ends(topic, partition)) {
        (_, (_, high)) if high < 0 => false,
        (Some(next), (_, high)) => *next >= high,
        (None, (low, high)) => low >= 0 && high <= low,
    }
}

impl Service {
    /// How long a partition of stream `index` must be silent to count as idle.
    fn idle_after(&self, index: usize) -> Duration {
        self.streams.processors[index]
            .settings()
            .grace
            .max(super::streams::MIN_IDLE)
    }

    /// Gives partition `key` of spanning stream `index` a processor, from the state its last
    /// owner committed.
    pub(super) fn open_slot(&mut self, index: usize, key: &str) -> Result<(), StoreError> {
        let main = &self.streams.processors[index];
        let stream = main.settings().name.clone();
        let checkpoint = self.store.partition_state(&stream, key)?;
        let counts = checkpoint
            .as_ref()
            .map_or_else(MessageCounts::default, |c| c.messages);
        let mut processor = match StreamProcessor::new(main.settings().clone(), checkpoint) {
            Ok(processor) => processor,
            Err(err) => {
                tracing::error!(stream = %stream, partition = %key, error = %err,
                    "the partition's stored state does not fit the stream; starting it afresh");
                StreamProcessor::new(main.settings().clone(), None).expect("a fresh processor")
            }
        };
        processor
            .cut_parts()
            .expect("spanning streams have duration windows");
        processor.set_policies(main.policies().models(), main.policies().policies());
        for id in processor.wanted_baselines() {
            let settings = main.settings();
            super::streams::provide_earlier_baseline(&mut processor, settings, &self.store, &id)?;
        }
        let durable = processor.next_offsets().get(key).copied();
        let slot = Slot {
            processor,
            unpublished: Vec::new(),
            last_message: Instant::now(),
            durable,
            watermark: None,
            caught_up: false,
            counts,
        };
        if let Some(spanning) = self.streams.spanning[index].as_mut() {
            spanning.slots.insert(key.to_string(), slot);
        }
        Ok(())
    }

    /// Drops the processors of revoked partitions (their state was committed on revoke).
    pub(super) fn close_slots(&mut self, index: usize, keys: &[String]) {
        if let Some(spanning) = self.streams.spanning[index].as_mut() {
            for key in keys {
                spanning.slots.remove(key);
            }
        }
    }

    /// Processes a message of spanning stream `index` with its partition's processor; true
    /// when parts were committed (offsets may be committed).
    pub(super) fn process_spanning(
        &mut self,
        index: usize,
        message: Message<'_>,
    ) -> Result<(Outcome, bool), ServiceError> {
        let key = format!("{}/{}", message.topic, message.partition);
        let spanning = self.streams.spanning[index]
            .as_mut()
            .expect("a spanning stream");
        // A partition not held (a message fetched before its revoke) is its next owner's: it
        // reads it again from the state the store holds.
        let Some(slot) = spanning.slots.get_mut(&key) else {
            tracing::debug!(partition = %key, offset = message.offset, "message of a partition not held; skipped");
            let skipped = Outcome {
                skipped: true,
                ..Outcome::default()
            };
            return Ok((skipped, false));
        };
        slot.last_message = Instant::now();
        let mut outcome = slot.processor.process(message);
        // The messages before this one go with the part it closed, this one with the next: a
        // dead letter, which has no time, counts in the part its partition has open.
        if let Some(closed) = outcome.parts.first_mut() {
            slot.counts.give_to(closed);
        }
        slot.counts.count(outcome.dead_letter.is_some());
        slot.unpublished.append(&mut outcome.parts);
        if slot.unpublished.is_empty() {
            return Ok((outcome, false));
        }
        let published = self.publish(index, &key)?;
        Ok((outcome, published))
    }

    /// Commits partition `key`'s state and unpublished parts; true when the store holds them.
    /// A store that cannot be reached pauses ingestion (the parts wait in memory); a partition
    /// another instance claimed stops this one.
    pub(super) fn publish(&mut self, index: usize, key: &str) -> Result<bool, ServiceError> {
        let stream = self.streams.processors[index].settings().name.clone();
        let idle = self.idle_after(index);
        let Some(slot) = self.streams.spanning[index]
            .as_mut()
            .and_then(|s| s.slots.get_mut(key))
        else {
            return Ok(false);
        };
        let mut checkpoint = slot.processor.checkpoint();
        checkpoint.messages = slot.counts;
        slot.watermark = watermark(slot, &checkpoint, idle);
        let parts = slot.unpublished.len();
        match self.store.commit_partition(
            &stream,
            key,
            &checkpoint,
            slot.watermark,
            &slot.unpublished,
        ) {
            Ok(()) => {
                slot.unpublished.clear();
                slot.durable = checkpoint.next_offsets.get(key).copied();
                if parts > 0 {
                    tracing::debug!(stream = %stream, partition = %key, parts, "window parts committed");
                }
                Ok(true)
            }
            Err(StoreError::Fenced(why)) => {
                self.lose(why);
                Ok(false)
            }
            Err(err) => {
                self.unreachable(err)?;
                Ok(false)
            }
        }
    }

    /// Commits every held partition of spanning stream `index`; false when one could not be.
    pub(super) fn checkpoint_spanning(&mut self, index: usize) -> Result<bool, ServiceError> {
        let keys: Vec<String> = match &self.streams.spanning[index] {
            Some(spanning) => spanning.slots.keys().cloned().collect(),
            None => return Ok(true),
        };
        for key in keys {
            if !self.publish(index, &key)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Closes the idle partitions' intervals by the clock, and merges what is ready when this
    /// instance merges the stream; true when something was committed.
    pub(super) fn tick_spanning(
        &mut self,
        index: usize,
        now_ms: i64,
        ends: super::positions::CachedEnds<'_>,
    ) -> Result<bool, ServiceError> {
        let idle = self.idle_after(index);
        let mut closed = Vec::new();
        if let Some(spanning) = self.streams.spanning[index].as_mut() {
            for (key, slot) in &mut spanning.slots {
                slot.caught_up = caught_up(key, slot.processor.next_offsets().get(key), ends);
                if !slot.caught_up || slot.last_message.elapsed() < idle {
                    continue;
                }
                if let Some(mut part) = slot.processor.tick_parts(now_ms) {
                    slot.counts.give_to(&mut part);
                    slot.unpublished.push(part);
                    closed.push(key.clone());
                }
            }
        }
        let mut committed = false;
        for key in closed {
            committed |= self.publish(index, &key)?;
        }
        Ok(self.merge(index)? | committed)
    }

    /// When due: takes or renews the merging of spanning stream `index`, then merges, judges
    /// and commits every ready interval; true when a window was committed.
    fn merge(&mut self, index: usize) -> Result<bool, ServiceError> {
        let Some(spanning) = self.streams.spanning[index].as_mut() else {
            return Ok(false);
        };
        if spanning
            .last_merge
            .is_some_and(|t| t.elapsed() < MERGE_EVERY)
            || self.outage.is_some()
        {
            return Ok(false);
        }
        spanning.last_merge = Some(Instant::now());
        let held = spanning.merger.take();
        let stream = self.streams.processors[index].settings().name.clone();
        let merger = match self.store.claim_merger(&stream, held.as_ref()) {
            Ok(merger) => merger,
            Err(err) => {
                tracing::warn!(stream = %stream, error = %err, "cannot take or renew the merging of the stream's windows");
                return Ok(false);
            }
        };
        let Some(mut merger) = merger else {
            if held.is_some() {
                tracing::warn!(stream = %stream, "another instance merges the stream's windows now");
            }
            return Ok(false);
        };
        if held.is_none() {
            tracing::info!(stream = %stream, next_window = merger.next_index,
                "this instance merges the stream's windows");
            let processor = &mut self.streams.processors[index];
            processor.policies_mut().restore(merger.policies.clone());
            processor.restore_since_retrain(merger.since_retrain.clone());
        }
        let topic = &self.streams.processors[index].settings().topic;
        let Some(partitions) = self.partition_counts.of(topic) else {
            tracing::debug!(stream = %stream, "the topic's partition count is not known yet; merging waits");
            spanning_merger(&mut self.streams.spanning[index], merger);
            return Ok(false);
        };
        let mut committed = false;
        loop {
            let ready = match self.store.ready_interval(&merger, partitions) {
                Ok(Some(ready)) => ready,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(stream = %stream, error = %err, "cannot read the window parts");
                    break;
                }
            };
            match self.merge_interval(index, &mut merger, ready) {
                Ok(()) => committed = true,
                Err(StoreError::Fenced(why)) => {
                    tracing::warn!(stream = %stream, reason = %why, "lost the merging of the stream's windows");
                    return Ok(committed);
                }
                Err(err) => {
                    tracing::warn!(stream = %stream, error = %err, "cannot merge or commit a window; trying again");
                    break;
                }
            }
        }
        spanning_merger(&mut self.streams.spanning[index], merger);
        Ok(committed)
    }

    /// Merges, judges and commits one ready interval, moving `merger` past it.
    fn merge_interval(
        &mut self,
        index: usize,
        merger: &mut Merger,
        ready: ReadyInterval,
    ) -> Result<(), StoreError> {
        let mut parts: Vec<WindowPart> = ready.parts.iter().map(|p| p.part_data.clone()).collect();
        for late in &ready.late {
            parts.push(
                late.part_data
                    .clone()
                    .late_into(ready.start_ms, ready.end_ms),
            );
        }
        let processor = &mut self.streams.processors[index];
        let judged = processor.judge_parts(merger.next_index, parts);
        let mut window = judged.map_err(|err| StoreError::Damaged {
            what: "window parts",
            message: err.to_string(),
        })?;
        let after = Merger {
            next_index: merger.next_index + 1,
            merged_until: Some(ready.end_ms),
            policies: processor.policies().stream_state(&merger.stream),
            since_retrain: processor.since_retrain().cloned(),
            ..merger.clone()
        };
        let consumed: Vec<_> = ready.parts.into_iter().chain(ready.late).collect();
        if let Err(err) = self.commit_merged(index, &after, &mut window, &consumed) {
            // Not committed: the policies and the data since the last retrain forget the
            // window, judged again next time.
            let processor = &mut self.streams.processors[index];
            processor.policies_mut().restore(merger.policies.clone());
            processor.restore_since_retrain(merger.since_retrain.clone());
            return Err(err);
        }
        *merger = after;
        let stream = merger.stream.clone();
        self.observe(&stream, &window);
        Ok(())
    }

    /// Commits a merged window with its consequences (alerts, runs), as
    /// [`store_closed`](Self::store_closed) does for an instance's own windows.
    fn commit_merged(
        &mut self,
        index: usize,
        merger: &Merger,
        window: &mut JudgedWindow,
        consumed: &[crate::store::StoredPart],
    ) -> Result<(), StoreError> {
        let processor = &self.streams.processors[index];
        let stream = consequences::Stream::of(&self.alerts, processor);
        let runs_dir = &self.runs.dir;
        let mut counts = MessageCounts {
            messages: consumed.iter().map(|p| p.part_data.messages).sum(),
            dead: consumed.iter().map(|p| p.part_data.dead_letters).sum(),
        };
        let out = self.store.commit_merged(
            merger,
            window,
            consumed,
            self.streams.keep_windows,
            processor.policies().policies(),
            |closed| {
                consequences::of(&stream, closed, &mut counts, |id, data| {
                    consequences::export(runs_dir, id, data)
                })
            },
        )?;
        if !out.is_empty() {
            self.wake.notify();
        }
        Ok(())
    }
}

impl Service {
    /// Gives up the merging of every stream this instance merges (it is stopping), so another
    /// instance takes it over at once instead of when the lease runs out.
    pub(super) fn release_mergers(&mut self) {
        for spanning in self.streams.spanning.iter_mut().flatten() {
            if let Some(merger) = spanning.merger.take() {
                match self.store.release_merger(&merger) {
                    Ok(()) => {
                        tracing::info!(stream = %merger.stream, "gave the merging of the stream's windows up")
                    }
                    Err(err) => tracing::warn!(stream = %merger.stream, error = %err,
                        "cannot give the merging up; another instance takes it when the lease runs out"),
                }
            }
        }
    }

    /// Switches stream `index` to another baseline: its processor and, when its windows span
    /// instances, its partitions' (their next intervals fold on it).
    pub(super) fn set_baseline(
        &mut self,
        index: usize,
        path: std::path::PathBuf,
        baseline: Arc<crate::baseline::Baseline>,
    ) {
        if let Some(spanning) = self.streams.spanning[index].as_mut() {
            for slot in spanning.slots.values_mut() {
                slot.processor
                    .set_baseline(path.clone(), Arc::clone(&baseline));
            }
        }
        self.streams.processors[index].set_baseline(path, baseline);
    }
}
