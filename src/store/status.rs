//! The states of runs and tasks. They are stored and served as their snake_case names
//! (`queued`, `succeeded`, …), which the API, alerts and dashboards already know; in the code
//! they are enums, so a misspelt state does not compile.

use super::db::{FromValue, Value};
use serde::{Deserialize, Serialize};

/// Defines a state enum with its names, its text conversions and its stored form.
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

        impl From<$name> for Value {
            fn from(state: $name) -> Value {
                Value::from(state.as_str())
            }
        }

        impl FromValue for $name {
            fn from_value(value: Value) -> Result<$name, String> {
                let text = String::from_value(value)?;
                $name::parse(&text)
                    .ok_or_else(|| format!("`{text}` is not a {} state", stringify!($name)))
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
    fn names_round_trip_through_text_serde_and_stored_values() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            let back = RunStatus::from_value(Value::from(*status)).unwrap();
            assert_eq!(back, *status);
        }
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(*status));
        }
        let bad = RunStatus::from_value(Value::from("done"));
        assert_eq!(bad.unwrap_err(), "`done` is not a RunStatus state");
    }
}
