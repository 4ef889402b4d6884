//! Service configuration: a TOML file plus `DRIFTGATE__SECTION__KEY` environment overrides.
//!
//! Parse → validate → use. [`raw`] holds the serde types exactly as users write them (unknown
//! keys are errors: a typo must not silently fall back to a default). `validate` checks the
//! whole file and reports every problem at once, each with its key path (collected in
//! [`problems`]), and produces the typed
//! [`ServiceConfig`] the service runs on.

pub mod alerts;
pub mod dags;
pub mod policies;
pub mod problems;
pub mod raw;
pub mod reload;
mod streams;
pub mod toml_error;
mod validate;

pub use validate::{ConfigProblem, RunSettings, ServiceConfig, StreamSettings};

use std::path::{Path, PathBuf};

/// Why a configuration could not be used. The user is at fault; fix the file and retry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file, or an environment override, does not have the expected shape: the message
    /// names the place (`file:line:column`, or the variable) and the key path.
    #[error("{message}")]
    Shape {
        /// The whole message: place, key path and what is wrong.
        message: String,
        /// The place and key path alone (see [`ConfigError::public`]).
        at: String,
    },
    /// The file parsed, but some values are invalid; every problem is listed.
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

/// What the public form of a configuration error says instead of the values.
const SEE_DETAILS: &str =
    "the values are not repeated here; `driftgate config check FILE` says what is wrong";

impl ConfigError {
    /// The error as it may leave the host — in the reload API's answer, an alert, the alerts
    /// API: files, lines and key paths, never a value or a line of a file (a file may hold
    /// secrets, or be a symlink to one). The full message (`Display`) goes to the log and to
    /// `driftgate check`, which only the file's reader sees.
    pub fn public(&self) -> String {
        match self {
            ConfigError::Parse { path, message } => format!("{}: {message}", path.display()),
            ConfigError::Shape { at, .. } => {
                format!("{at}: not the expected shape ({SEE_DETAILS})")
            }
            ConfigError::Invalid { path, problems } => {
                let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
                format!(
                    "{}: {} problem(s) at {} ({SEE_DETAILS})",
                    path.display(),
                    problems.len(),
                    keys.join(", ")
                )
            }
        }
    }
}

/// Parses a duration like `"30s"`, `"5m"` or `"1d"`; zero only when `zero_ok`. The error is
/// the message a configuration problem shows.
pub(crate) fn duration(text: &str, zero_ok: bool) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() && !zero_ok => Err("must be longer than zero".to_string()),
        Ok(d) => Ok(d),
        Err(err) => Err(format!(
            "{text:?} is not a duration like \"30s\", \"5m\" or \"1d\": {err}"
        )),
    }
}

/// Reads, overrides from the environment and validates a service configuration file.
pub fn load(path: &Path) -> Result<ServiceConfig, ConfigError> {
    let raw = raw::RawConfig::load(path)?;
    validate::validate(raw, path).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems: problems.into_iter().map(name_override).collect(),
    })
}

/// [`load`] for a backtest, which delivers no alert and serves no API: the alert sinks and the
/// run token are left out (their secrets need not be set), and with `set`, the `[[policies]]`
/// of that policy set file take the place of every policy of the file and its includes.
pub fn load_for_backtest(path: &Path, set: Option<&Path>) -> Result<ServiceConfig, ConfigError> {
    let mut raw = raw::RawConfig::load(path)?;
    raw.alerts.sinks.clear();
    raw.runs.token_env = None;
    raw.policy_set = set.map(Path::to_path_buf);
    validate::validate(raw, path).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems: problems.into_iter().map(name_override).collect(),
    })
}

/// A problem with a value that an environment variable set names that variable: the file is
/// not where to fix it.
fn name_override(mut problem: ConfigProblem) -> ConfigProblem {
    for name in raw::environment_overrides().keys() {
        let key = raw::override_key(name);
        if problem.key == key || problem.key.starts_with(&format!("{key}.")) {
            problem.message = format!(
                "{} (set by the environment variable {name})",
                problem.message
            );
        }
    }
    problem
}
