//! The states of runs and tasks. They are stored and served as their snake_case names
//! (`queued`, `succeeded`, …), which the API, alerts and dashboards already know; in the code
//! they are enums, so a misspelt state does not compile.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// Defines a state enum with its names, its text conversions and its SQLite mapping.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every state, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and served name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The state of a stored name.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|s| s.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<$name> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("`{text}` is not a {} state", stringify!($name)).into())
                })
            }
        }
    };
}

states! {
    /// Where a run is in its life.
    RunStatus {
        /// Waiting for the executor (or for its model's run in flight).
        Queued => "queued",
        /// Its tasks are running.
        Running => "running",
        /// Every task succeeded, was cached or was skipped by a gate.
        Succeeded => "succeeded",
        /// A task failed for good, or the run could not start.
        Failed => "failed",
        /// Cancelled on request.
        Cancelled => "cancelled",
        /// Not run: a run of the model was in flight and the DAG says `when_busy = "skip"`.
        Skipped => "skipped",
    }
}

states! {
    /// Where a task of a run is.
    TaskStatus {
        /// Waiting for the tasks it needs.
        Pending => "pending",
        /// Its process is running.
        Running => "running",
        /// An attempt failed; the next one starts when its back-off is over.
        Waiting => "waiting",
        /// It ran and exited 0.
        Succeeded => "succeeded",
        /// Its outputs came from the cache of an earlier run with the same inputs.
        Cached => "cached",
        /// Not run: a gate's condition was false, or the plan left it out.
        Skipped => "skipped",
        /// It failed on its last attempt.
        Failed => "failed",
        /// The run was cancelled before or while it ran.
        Cancelled => "cancelled",
    }
}

impl RunStatus {
    /// Whether the run is over (nothing more will happen to it).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl TaskStatus {
    /// Whether the task has outputs the tasks after it can use.
    pub fn has_outputs(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_serde_and_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            let back: RunStatus = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(back, *status);
        }
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(*status));
        }
        let bad: rusqlite::Result<RunStatus> = conn.query_row("SELECT 'done'", [], |r| r.get(0));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("`done` is not a RunStatus state"));
    }
}
