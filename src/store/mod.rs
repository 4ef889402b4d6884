//! The SQLite store: the service's source of truth.
//!
//! It holds, per stream, the checkpoint (the open window's contents and the next offset to read
//! per partition), the closed windows' reports and the policies' decisions on them, dead letters
//! when a stream has no dead-letter topic, the alert outbox with each sink's deliveries, the
//! retraining runs with their tasks and attempts, and the baseline versions runs rotated in.
//! A closed window's report, its decisions, the alerts and runs it sets off and the checkpoint
//! that follows are written in one transaction, so after any crash the store holds either all or
//! none of them: a window is never lost and never reported twice, and a trigger never launches
//! twice. Offsets are committed to Kafka only after that transaction.
//!
//! Files: `sqlite` (the connection, checkpoints, windows, dead letters), `decisions`, `outbox`,
//! `runs` (runs, tasks, attempts, baselines), `status` (run and task states).

mod decisions;
mod outbox;
mod runs;
mod sqlite;
mod status;

pub use crate::pipeline::Checkpoint;
pub use decisions::{DecisionFilter, DecisionPage};
pub use outbox::{AlertStatus, Delivery};
pub use runs::{Artifact, AttemptRecord, BaselineVersion, RunRecord, RunRequest, TaskRecord};
pub use sqlite::{now_ms, DeadLetter, Store, WindowRow};
pub use status::{RunStatus, TaskStatus};

use std::path::PathBuf;

/// Why the store failed. Usually the disk or the file (permissions, full disk, a damaged or
/// foreign file); retrying may help for a busy database, not otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the store {path}: {message}")]
    Open {
        /// The SQLite file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored JSON could not be read back (a damaged row).
    #[error("stored {what} is damaged: {message}")]
    Damaged {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
}
