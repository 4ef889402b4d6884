//! Windows that span instances: a processor that cuts one partition's part of each interval,
//! and the processor that merges an interval's parts into the stream's window and judges it.
//!
//! With several instances sharing a store, each partition's records go through a processor in
//! *part mode* ([`StreamProcessor::cut_parts`]): its duration windows are not reported but come
//! out as [`WindowPart`]s, the partition's share of a stream-wide interval, with the labelled
//! records' prediction errors and their times. One processor per stream then merges the parts
//! of an interval ([`StreamProcessor::judge_parts`]): one window, one report, and the policies
//! see the interval's errors in event-time order before judging it — what one processor
//! reading the whole stream in time order would have seen.

use serde::{Deserialize, Serialize};

use super::{JudgedWindow, StreamProcessor};
use crate::decode::PredictionError;
use crate::window::{merge_parts, ClosedWindow, MergeError, OpenWindow, WindowSpec};

/// A partition's part of one interval of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPart {
    /// The partition's window for the interval, as a checkpoint holds it.
    pub window: OpenWindow,
    /// The labelled records' prediction errors as `(time, error)`, in the partition's order:
    /// the time is the record's event time, else its message's broker time (0 without either).
    /// Kept only when a policy watches errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<(i64, PredictionError)>,
    /// Messages the partition's reader took while the part was open, for the window's
    /// dead-letter rate (set by the service, which sees the messages).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Of those, the ones that went to the dead letters.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dead_letters: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl WindowPart {
    /// The interval's start, epoch milliseconds (parts always have one: they are cut from
    /// duration windows of records with a time).
    pub fn start_ms(&self) -> Option<i64> {
        self.window.start_ms
    }

    /// The part as late records of the interval `start_ms..end_ms`: for a part published after
    /// its own interval was merged (its partition had nothing open when the interval was
    /// judged complete). Its records count as the later window's late records.
    pub fn late_into(mut self, start_ms: i64, end_ms: i64) -> WindowPart {
        self.window.start_ms = Some(start_ms);
        self.window.end_ms = Some(end_ms);
        self.window.late_records = self.window.records;
        self
    }
}

impl StreamProcessor {
    /// Puts the processor in part mode: its closed windows come out as parts in
    /// [`Outcome::parts`](super::Outcome::parts) (and from [`tick_parts`](Self::tick_parts))
    /// instead of being reported and judged. Only duration windows have parts.
    pub fn cut_parts(&mut self) -> Result<(), String> {
        if !matches!(self.settings.window, WindowSpec::DurationMs(_)) {
            return Err(format!(
                "stream {}: only duration windows can span instances",
                self.settings.name
            ));
        }
        self.open_errors.get_or_insert_with(Vec::new);
        // Parts are not judged: the data since the last retrain is the merger's.
        self.since_retrain = None;
        Ok(())
    }

    /// Whether the processor cuts parts.
    pub fn cuts_parts(&self) -> bool {
        self.open_errors.is_some()
    }

    /// In part mode: closes an idle interval by the wall clock, as [`tick`](Self::tick) does.
    pub fn tick_parts(&mut self, now_ms: i64) -> Option<WindowPart> {
        let grace = self.settings.grace.as_millis() as i64;
        let closed = self.windower.tick(now_ms, grace)?;
        Some(self.part_of(closed))
    }

    /// The part a closed window makes, with the errors seen while it was open.
    pub(super) fn part_of(&mut self, window: ClosedWindow) -> WindowPart {
        let errors = self.open_errors.as_mut().map(std::mem::take);
        WindowPart {
            window: window.snapshot(),
            errors: errors.unwrap_or_default(),
            messages: 0,
            dead_letters: 0,
        }
    }

    /// Merges the parts of one interval into the stream's window `index`, reports it, gives
    /// the policies the parts' prediction errors in event-time order (equal times in the order
    /// the parts are given) and judges the window. The parts' summaries must be on this
    /// stream's current baseline (rotations apply at interval boundaries).
    pub fn judge_parts(
        &mut self,
        index: u64,
        parts: Vec<WindowPart>,
    ) -> Result<JudgedWindow, MergeError> {
        let mut errors: Vec<(i64, PredictionError)> = Vec::new();
        let mut windows = Vec::with_capacity(parts.len());
        let layouts = self.windower.layouts().cloned();
        for part in parts {
            errors.extend(part.errors);
            let mut window = ClosedWindow::restore(self.settings.schema.clone(), part.window)
                .map_err(|err| MergeError::new(err.to_string()))?;
            if let Some(layouts) = &layouts {
                window.attach(layouts);
            }
            windows.push(window);
        }
        let window = merge_parts(index, windows)?;
        errors.sort_by_key(|(time, _)| *time);
        for (_, error) in errors {
            self.policies.observe_error(error);
        }
        let report = self.report(&window);
        Ok(self.judge(window, report))
    }
}
