//! Riding out a store that cannot be reached: ingestion pauses, nothing is dropped or half
//! written, and it resumes where it stopped once the store answers again.
//!
//! When a write fails because the database is out of reach ([`StoreError::is_unavailable`]),
//! what it was writing — closed windows with their consequences, dead letters — is held in
//! memory, in order, and the loop pauses the assigned partitions (it keeps polling, so the
//! instance stays in its consumer group). No checkpoint is made and no offset committed
//! meanwhile, so a crash during the outage loses nothing either: the next start resumes from
//! the store's last checkpoint. The store is tried again every [`RETRY`]; once it answers, the
//! held dead letters and windows are written (each window with its stream's current checkpoint,
//! in one transaction as always), `/readyz` says ready again and the partitions resume.
//!
//! With a shared store, partitions moving during an outage cannot be claimed or released, so
//! an assignment or a revocation then stops the instance (see [`super::shared`]).

use std::time::{Duration, Instant};

use super::{Service, ServiceError};
use crate::pipeline::JudgedWindow;
use crate::store::{DeadLetter, StoreError};

/// How often an unreachable store is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What waits for the store.
pub(super) struct Outage {
    /// Why the store is out of reach (the first failure).
    reason: String,
    since: Instant,
    /// When to try the store again.
    next_try: Instant,
    /// Per stream index: closed windows not yet stored, in the order they closed.
    windows: Vec<Vec<JudgedWindow>>,
    /// Dead letters not yet stored, with their stream's index, in order.
    letters: Vec<(usize, DeadLetter)>,
}

impl Outage {
    fn new(reason: String, streams: usize) -> Outage {
        let now = Instant::now();
        Outage {
            reason,
            since: now,
            next_try: now + RETRY,
            windows: vec![Vec::new(); streams],
            letters: Vec::new(),
        }
    }

    /// Keeps closed windows of stream `index` until the store answers.
    pub(super) fn hold_windows(&mut self, index: usize, closed: Vec<JudgedWindow>) {
        self.windows[index].extend(closed);
    }

    /// Keeps a dead letter of stream `index` until the store answers.
    pub(super) fn hold_letter(&mut self, index: usize, letter: DeadLetter) {
        self.letters.push((index, letter));
    }
}

impl Service {
    /// Takes a failed store write: an unreachable store starts (or continues) an outage and is
    /// not an error; anything else is.
    pub(super) fn unreachable(&mut self, err: StoreError) -> Result<&mut Outage, ServiceError> {
        if !err.is_unavailable() {
            return Err(err.into());
        }
        let streams = self.streams.processors.len();
        let outage = self.outage.get_or_insert_with(|| {
            let reason = format!(
                "the store cannot be written ({}); ingestion is paused, nothing is dropped, and it resumes when the store answers",
                crate::redact::secrets(&err.to_string())
            );
            tracing::error!("{reason}");
            Outage::new(reason, streams)
        });
        self.readiness.ingestion(Some(outage.reason.clone()));
        self.metrics.ingestion_paused(true);
        Ok(outage)
    }

    /// Whether ingestion is paused for an outage.
    pub(super) fn paused(&self) -> bool {
        self.outage.is_some()
    }

    /// At a stop during an outage: says what is not written. Nothing is lost: no offset was
    /// committed past the store's last checkpoint, so the next start reads it again.
    pub(super) fn stopping(&self) {
        if let Some(outage) = &self.outage {
            let windows: usize = outage.windows.iter().map(Vec::len).sum();
            tracing::warn!(windows, dead_letters = outage.letters.len(),
                "stopping while the store cannot be reached: what waited for it is not written, and is read again from Kafka at the next start");
        }
    }

    /// During an outage, when due: tries the store, writes what was held and ends the outage.
    /// True while ingestion stays paused.
    pub(super) fn ride_out(&mut self) -> Result<bool, ServiceError> {
        let Some(outage) = &mut self.outage else {
            return Ok(false);
        };
        if Instant::now() < outage.next_try {
            return Ok(true);
        }
        outage.next_try = Instant::now() + RETRY;
        match self.write_held() {
            Ok(()) => {}
            Err(err) if err.is_unavailable() => return Ok(true),
            Err(err) => return Err(err.into()),
        }
        let since = self.outage.take().map(|o| o.since.elapsed());
        tracing::info!(after = ?since.unwrap_or_default(), "the store answers again; ingestion resumes");
        self.readiness.ingestion(None);
        self.metrics.ingestion_paused(false);
        Ok(false)
    }

    /// Writes the held dead letters, then each stream's held windows; what was written is no
    /// longer held, so a failure part way resumes where it stopped.
    fn write_held(&mut self) -> Result<(), StoreError> {
        self.store.reachable()?;
        let letters = match &mut self.outage {
            Some(outage) => std::mem::take(&mut outage.letters),
            None => return Ok(()),
        };
        let mut letters = letters.into_iter();
        while let Some((index, letter)) = letters.next() {
            if let Err(err) = self.store_letter(index, &letter) {
                if let Some(outage) = &mut self.outage {
                    outage.letters = std::iter::once((index, letter)).chain(letters).collect();
                }
                return Err(err);
            }
        }
        for index in 0..self.streams.processors.len() {
            let held = match &mut self.outage {
                Some(outage) => std::mem::take(&mut outage.windows[index]),
                None => return Ok(()),
            };
            if held.is_empty() {
                continue;
            }
            if let Err((err, held)) = self.store_closed(index, held) {
                if let Some(outage) = &mut self.outage {
                    outage.windows[index] = held;
                }
                return Err(err);
            }
        }
        Ok(())
    }
}
