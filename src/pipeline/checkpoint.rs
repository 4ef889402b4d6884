//! The pipeline's checkpoint: everything needed to go on after a restart exactly where the
//! last processed message left off.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::since_retrain::SinceRetrain;
use super::StreamProcessor;
use crate::decode::PredictionError;
use crate::policy::{Engine, EngineState};
use crate::window::{ClosedWindow, OpenWindow, WindowError, Windower};

/// A stream's checkpoint: its open window, per `topic/partition` the next offset to read, and
/// the state of the policies judging the stream's windows; also a closed window whose report
/// was still being made (with the errors seen after it, which the policies get once it is
/// judged), so that it is reported after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The open window's full state.
    pub open_window: OpenWindow,
    /// Next offset to process per `topic/partition`; messages below it were already counted.
    pub next_offsets: BTreeMap<String, i64>,
    /// The policies' memory (recent outcomes, dynamic thresholds' histories, trigger times).
    #[serde(default)]
    pub policies: EngineState,
    /// A closed window not reported yet (its report was being made off the ingest thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreported_window: Option<OpenWindow>,
    /// Prediction errors of records after `unreported_window`, in order, for the policies
    /// once that window is judged: a residual for numeric labels, `true` for a wrong class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_errors: Vec<PredictionError>,
    /// In part mode (see [`super::parts`]): the open window's prediction errors with their
    /// times; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_errors: Option<Vec<(i64, PredictionError)>>,
    /// Messages read since the last window (in part mode: part) closed, so that a restart
    /// after this checkpoint still counts them into that window's dead-letter rate.
    #[serde(default, skip_serializing_if = "MessageCounts::is_empty")]
    pub messages: MessageCounts,
    /// What the stream saw since its models' last retrain, when it keeps it
    /// (`drift.since_retrain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_retrain: Option<SinceRetrain>,
}

/// Messages read and dead letters among them, since a window (or part) opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Messages read.
    pub messages: u64,
    /// Of which dead letters.
    pub dead: u64,
}

impl MessageCounts {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == MessageCounts::default()
    }

    /// Counts one message, a dead letter or not.
    pub fn count(&mut self, dead_letter: bool) {
        self.messages += 1;
        self.dead += u64::from(dead_letter);
    }

    /// Moves the counts into a part that closed (they start again at zero).
    pub fn give_to(&mut self, part: &mut super::WindowPart) {
        let MessageCounts { messages, dead } = std::mem::take(self);
        part.messages = messages;
        part.dead_letters = dead;
    }
}

/// A processor's state, fresh or restored from a checkpoint.
pub(super) struct Restored {
    pub(super) windower: Windower,
    pub(super) next_offsets: BTreeMap<String, i64>,
    pub(super) policies: Engine,
    /// A window closed before the checkpoint but not reported.
    pub(super) unreported: Option<ClosedWindow>,
    pub(super) deferred_errors: Vec<PredictionError>,
    pub(super) open_errors: Option<Vec<(i64, PredictionError)>>,
    /// What the stream saw since the last retrain, when it keeps it.
    pub(super) since_retrain: Option<SinceRetrain>,
}

impl Restored {
    /// The state a processor with these settings starts from.
    pub(super) fn new(
        settings: &super::StreamSettings,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Restored, WindowError> {
        let Some(checkpoint) = checkpoint else {
            return Ok(Restored {
                windower: Windower::new(settings.window, settings.schema.clone(), 0),
                next_offsets: BTreeMap::new(),
                policies: Engine::default(),
                unreported: None,
                deferred_errors: Vec::new(),
                open_errors: None,
                since_retrain: since_retrain(settings, None),
            });
        };
        let mut policies = Engine::default();
        policies.restore(checkpoint.policies);
        let unreported = checkpoint
            .unreported_window
            .map(|state| ClosedWindow::restore(settings.schema.clone(), state))
            .transpose()?;
        let deferred_errors = match unreported {
            Some(_) => checkpoint.deferred_errors,
            None => Vec::new(),
        };
        Ok(Restored {
            windower: Windower::restore(
                settings.window,
                settings.schema.clone(),
                checkpoint.open_window,
            )?,
            next_offsets: checkpoint.next_offsets,
            policies,
            unreported,
            deferred_errors,
            open_errors: checkpoint.open_errors,
            since_retrain: since_retrain(settings, checkpoint.since_retrain),
        })
    }
}

/// The data since the last retrain for a stream that keeps it: the checkpoint's when it was
/// kept for the same features, else nothing seen yet.
pub(super) fn since_retrain(
    settings: &super::StreamSettings,
    kept: Option<SinceRetrain>,
) -> Option<SinceRetrain> {
    let sample = settings.since_retrain?;
    let kept = kept.filter(|kept| kept.fits(&settings.schema));
    Some(kept.unwrap_or_else(|| SinceRetrain::new(&settings.schema, sample, settings.drift.seed)))
}

impl StreamProcessor {
    /// The state covering every message processed so far.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            open_window: self.windower.snapshot(),
            next_offsets: self.next_offsets.clone(),
            policies: self.policies.stream_state(&self.settings.name),
            unreported_window: self.pending.as_ref().map(|p| p.window.snapshot()),
            deferred_errors: self.deferred_errors.clone(),
            open_errors: self.open_errors.clone(),
            messages: MessageCounts::default(),
            since_retrain: self.since_retrain.clone(),
        }
    }
}
