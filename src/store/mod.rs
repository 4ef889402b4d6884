//! The SQLite store: the service's source of truth.
//!
//! It holds, per stream, the checkpoint (the open window's contents and the next offset to read
//! per partition) and the closed windows' reports, plus dead letters when a stream has no
//! dead-letter topic. A closed window's report and the checkpoint that follows it are written in
//! one transaction, so after any crash the store holds either both or neither: a window is never
//! lost and never reported twice. Offsets are committed to Kafka only after that transaction.

mod decisions;
mod outbox;
mod runs;
mod sqlite;
mod status;

pub use decisions::{DecisionFilter, DecisionPage};
pub use outbox::{AlertStatus, Delivery};
pub use runs::{Artifact, AttemptRecord, BaselineVersion, RunRecord, RunRequest, TaskRecord};
pub use sqlite::{now_ms, Checkpoint, DeadLetter, Store, StoredWindow};
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
