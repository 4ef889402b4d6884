//! The store: the service's source of truth, on SQLite (one instance, embedded) or PostgreSQL
//! (several instances sharing it).
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
//! Files: `db` (the two databases behind one query interface), `schema` (tables and
//! migrations), `connect` (PostgreSQL connections), `windows` (checkpoints, windows, dead
//! letters), `decisions`, `outbox`, `runs` (runs, tasks, attempts, baselines), `status` (run
//! and task states), `pool` (the API's connections); for instances sharing a store, `fence`
//! (lineages and partitions), `arbiter` (triggers confirmed across instances), `leases` (work
//! one instance does at a time), `summary` (`store check`).

mod arbiter;
mod connect;
pub(crate) mod db;
mod decisions;
mod fence;
mod leases;
mod outbox;
mod parts;
mod pool;
mod runs;
pub mod schema;
mod status;
mod summary;
#[cfg(test)]
pub(crate) mod testing;
mod windows;

pub use crate::pipeline::Checkpoint;
pub use connect::PostgresSettings;
pub use decisions::{DecisionFilter, DecisionPage};
pub use fence::Fence;
pub use leases::Holder;
pub use outbox::{AlertStatus, Delivery};
pub use parts::{Merger, ReadyInterval, StoredPart};
pub use pool::{Pool, Pooled};
pub use runs::{Artifact, AttemptRecord, BaselineVersion, RunRecord, RunRequest, TaskRecord};
pub use status::{RunStatus, TaskStatus};
pub use windows::{DeadLetter, Outbox, WindowRow};

use std::path::PathBuf;

use db::Db;

/// Where the store is: `store.url` (or `store.path`) in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreUrl {
    /// A SQLite file (`sqlite:PATH`), created with its directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://…`), shared by instances.
    Postgres {
        /// The connection URL (it may hold a password: shown only through `Display`).
        url: String,
        /// Timeouts and TLS.
        settings: PostgresSettings,
    },
}

impl StoreUrl {
    /// A SQLite file.
    pub fn sqlite(path: impl AsRef<std::path::Path>) -> StoreUrl {
        StoreUrl::Sqlite(path.as_ref().to_path_buf())
    }

    /// Reads `sqlite:PATH`, `postgres://…` or `postgresql://…`; anything else is an error
    /// naming the accepted forms.
    pub fn parse(text: &str, settings: PostgresSettings) -> Result<StoreUrl, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, e.g. `sqlite:var/driftgate.db`".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres {
                url: text.to_string(),
                settings,
            });
        }
        Err(format!(
            "`{}` is not a store URL: use `sqlite:PATH` or `postgres://USER@HOST:PORT/DATABASE`",
            crate::redact::secrets(text)
        ))
    }

    /// Whether several instances can share this store.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreUrl::Postgres { .. })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres { url, .. } => f.write_str(&crate::redact::secrets(url)),
        }
    }
}

/// The store: one connection to its database.
pub struct Store {
    pub(crate) db: Db,
    /// What this connection's instance holds, when instances share the store.
    fence: Option<Fence>,
    /// The process this connection takes shared work for (sinks, runs).
    holder: Option<Holder>,
}

impl Store {
    /// Opens the store, creating it (SQLite) or its tables (both) and migrating older schemas.
    pub fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        let db = match url {
            StoreUrl::Sqlite(path) => schema::open_sqlite(path)?,
            StoreUrl::Postgres { url, settings } => schema::open_postgres(url, settings)?,
        };
        Ok(Store {
            db,
            fence: None,
            holder: None,
        })
    }

    /// Opens an existing store for reading (the API's view while the service writes). On
    /// PostgreSQL it is an ordinary connection; nothing in the API's read path writes.
    pub fn open_read_only(url: &StoreUrl) -> Result<Store, StoreError> {
        let db = match url {
            StoreUrl::Sqlite(path) => schema::open_sqlite_read_only(path)?,
            StoreUrl::Postgres { url, settings } => Db::Postgres(db::Pg::new(
                connect::connect(url, settings).map_err(|message| StoreError::Open {
                    location: crate::redact::secrets(url),
                    message: crate::redact::secrets(&message),
                })?,
                url,
                settings,
            )),
        };
        Ok(Store {
            db,
            fence: None,
            holder: None,
        })
    }

    /// Whether the store answers a query (for readiness).
    pub fn reachable(&self) -> Result<(), StoreError> {
        use db::Sql;
        self.db.query("SELECT 1", &[])?;
        Ok(())
    }
}

impl StoreError {
    /// Whether the database is out of reach for now (a broken or refused connection, a server
    /// shutting down or restarting, too many connections, a cancelled statement, a busy SQLite
    /// file): what failed can be tried again later unchanged. Anything else (a damaged row, a
    /// full disk, a fenced write) would fail again.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Postgres(err) => postgres_unavailable(err),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => matches!(
                err.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// A closed connection, an I/O error, or a server answer of SQLSTATE class 08 (connection
/// exception), 53 (insufficient resources), 57 (operator intervention: shutdown, cancelled
/// statement) or a serialization failure or deadlock (class 40).
fn postgres_unavailable(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        return ["08", "53", "57", "40"]
            .iter()
            .any(|class| code.code().starts_with(class));
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    // Timeouts and failed connects carry no cause.
    let text = err.to_string();
    text.starts_with("timeout") || text.starts_with("error connecting")
}

/// Whether `err` leaves its connection unusable: no answer from the server (a broken or closed
/// connection, a timeout) or an answer of class 08 (connection exception) or 57P0x (the server
/// is shutting down or cannot take connections).
fn breaks_connection(err: &postgres::Error) -> bool {
    match err.code() {
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P0"),
        None => postgres_unavailable(err),
    }
}

/// Wall-clock time, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Why the store failed. Usually the disk or the file (permissions, full disk, a damaged or
/// foreign file); retrying may help for a busy database, not otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the store {location}: {message}")]
    Open {
        /// The SQLite file or the PostgreSQL URL (its password masked).
        location: String,
        /// Why.
        message: String,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL query failed or the connection broke.
    #[error("store query failed: {0}")]
    Postgres(#[from] postgres::Error),
    /// The connection broke and connecting again failed.
    #[error("the store cannot be reached: {0}")]
    Unreachable(String),
    /// Another process holds this instance's lineage or one of its partitions now: what this
    /// one was about to write is refused, and it must stop (its supervisor restarts it).
    #[error("fenced: {0}")]
    Fenced(String),
    /// Stored JSON could not be read back (a damaged row).
    #[error("stored {what} is damaged: {message}")]
    Damaged {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
}
