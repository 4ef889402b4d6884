//! Instances sharing a PostgreSQL store: this instance's lineage and its lease, the partitions
//! it claims on assignment and gives up on revocation (see [`crate::store::Fence`]).
//!
//! A lost lease or partition is fatal: the process stops with an error and writes nothing more
//! (its supervisor restarts it, and it takes its lineage back). That is what makes a stopped
//! process that wakes up after the group moved on harmless.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use rdkafka::TopicPartitionList;

use super::{Service, ServiceError};
use crate::config::ServiceConfig;
use crate::locks::lock;
use crate::store::{Fence, Store, StoreError};

/// Why this instance must stop, set by the lease's renewals or a failed partition claim.
pub(super) type Lost = Arc<Mutex<Option<String>>>;

/// The process the executor and sink workers take shared work for, with a shared store.
pub(super) fn holder(fence: Option<&Fence>) -> Option<crate::store::Holder> {
    fence.map(|fence| crate::store::Holder {
        owner: fence.owner.clone(),
        lease_ms: fence.lease_ms,
    })
}

/// Takes this instance's lineage when the store is shared; its window identities are tagged
/// with it from then on.
pub(super) fn join(config: &ServiceConfig, store: &mut Store) -> Result<Option<Fence>, StoreError> {
    if !config.store.is_shared() {
        return Ok(None);
    }
    let owner = format!(
        "{}/{}/{}",
        config.instance,
        std::process::id(),
        crate::store::now_ms()
    );
    let lease_ms = config.lease.as_millis() as i64;
    let fence = store.claim_lineage(&config.instance, &owner, lease_ms)?;
    tracing::info!(instance = %fence.lineage, epoch = fence.epoch,
        "joined the shared store: this instance's windows are tagged {}", fence.tag());
    Ok(Some(fence))
}

/// Renews the lease every third of its length on a connection of its own, until `stop`; a
/// lease another process took is recorded in `lost`. An unreachable database is retried (the
/// lease may run out meanwhile; the next commit then says so).
pub(super) fn heartbeat(config: &ServiceConfig, fence: &Fence, stop: &AtomicBool, lost: &Lost) {
    let every = config.lease / 3;
    let mut store = None;
    while pause(stop, every) {
        if store.is_none() {
            store = Store::open_read_only(&config.store)
                .map_err(
                    |err| tracing::warn!(error = %err, "cannot reach the store to renew the lease"),
                )
                .ok();
        }
        let Some(connection) = &store else { continue };
        let renewed = connection
            .renew_lease(fence)
            .and_then(|()| connection.renew_leases(&fence.owner, fence.lease_ms));
        match renewed {
            Ok(()) => {}
            Err(StoreError::Fenced(why)) => {
                *lock(lost) = Some(why);
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot renew the lease; retrying");
                store = None;
            }
        }
    }
}

impl Service {
    /// Claims the assigned partitions of each stream in the shared store: each resumes where
    /// the store says (its last owner's checkpoint), which positioning then uses. Without a
    /// shared store, nothing to do.
    pub(super) fn claim_assigned(&mut self, assigned: &TopicPartitionList) {
        for (index, parts) in self.parts_by_stream(assigned) {
            let stream = self.streams.processors[index].settings().name.clone();
            let claimed = match self.store.claim_partitions(&stream, &parts) {
                Ok(claimed) => claimed,
                Err(err) => {
                    self.lose(format!("cannot claim partitions of {stream}: {err}"));
                    return;
                }
            };
            for (part, next) in claimed {
                if self.streams.spanning[index].is_some() {
                    if let Err(err) = self.open_slot(index, &part) {
                        self.lose(format!(
                            "cannot read the state of partition {part} of {stream}: {err}"
                        ));
                        return;
                    }
                }
                if let Some(next) = next {
                    self.streams
                        .processor_for(index, &part)
                        .resume_partition_at(&part, next);
                }
            }
        }
    }

    /// Switches every stream to the baseline the store says is active when another instance
    /// rotated it in (its file is under `runs.dir`, which instances share). A version that
    /// cannot be loaded or no longer fits is logged once per check, and the current one stays.
    pub(super) fn follow_rotations(&mut self) {
        for index in 0..self.streams.processors.len() {
            let processor = &self.streams.processors[index];
            let stream = processor.settings().name.clone();
            let active = match self.store.active_baseline(&stream) {
                Ok(Some(active)) if active.version != processor.settings().baseline.id => active,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(stream = %stream, error = %err, "cannot read the active baseline");
                    continue;
                }
            };
            let path = std::path::PathBuf::from(&active.path);
            match crate::baseline::Baseline::load(&path) {
                Ok(baseline)
                    if baseline
                        .mismatches(&self.streams.processors[index].settings().schema.features)
                        .is_empty() =>
                {
                    tracing::info!(stream = %stream, version = %active.version,
                        "switched to the baseline another instance rotated in");
                    self.set_baseline(index, path, std::sync::Arc::new(baseline));
                }
                Ok(_) => tracing::error!(stream = %stream, path = %active.path,
                    "the rotated baseline does not fit the stream's features; the current one stays"),
                Err(err) => tracing::error!(stream = %stream, error = %err,
                    "cannot load the rotated baseline (is runs.dir shared?); the current one stays"),
            }
        }
    }

    /// Gives up revoked partitions (after the revoke's checkpoint).
    pub(super) fn release_revoked(&mut self, revoked: &TopicPartitionList) {
        for (index, parts) in self.parts_by_stream(revoked) {
            let stream = self.streams.processors[index].settings().name.clone();
            self.store.release_partitions(&stream, &parts);
            self.close_slots(index, &parts);
        }
    }

    /// Records why this instance must stop; the loop stops at its next turn.
    pub(super) fn lose(&self, why: String) {
        tracing::error!(reason = %why, "this instance lost its place in the shared store; stopping");
        *lock(&self.lost) = Some(why);
    }

    /// Why this instance must stop, if it must.
    pub(super) fn lost(&self) -> Result<(), ServiceError> {
        match lock(&self.lost).clone() {
            Some(why) => Err(ServiceError::Store(StoreError::Fenced(why))),
            None => Ok(()),
        }
    }

    /// The partitions in `list` by stream index, as `topic/partition`.
    fn parts_by_stream(&self, list: &TopicPartitionList) -> Vec<(usize, Vec<String>)> {
        let mut by_stream: Vec<(usize, Vec<String>)> = Vec::new();
        for element in list.elements() {
            let Some(&index) = self.streams.by_topic.get(element.topic()) else {
                continue;
            };
            let part = format!("{}/{}", element.topic(), element.partition());
            match by_stream.iter_mut().find(|(i, _)| *i == index) {
                Some((_, parts)) => parts.push(part),
                None => by_stream.push((index, vec![part])),
            }
        }
        by_stream
    }
}

/// Waits `length` in short steps; false as soon as `stop` is set.
fn pause(stop: &AtomicBool, length: std::time::Duration) -> bool {
    let step = std::time::Duration::from_millis(100);
    let start = std::time::Instant::now();
    while start.elapsed() < length {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(step.min(length));
    }
    !stop.load(std::sync::atomic::Ordering::SeqCst)
}
