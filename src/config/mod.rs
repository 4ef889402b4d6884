//! Service configuration: a TOML file plus `DRIFTGATE__SECTION__KEY` environment overrides.
//!
//! Parse → validate → use. [`raw`] holds the serde types exactly as users write them (unknown
//! keys are errors: a typo must not silently fall back to a default). [`validate`] checks the
//! whole file and reports every problem at once, each with its key path, and produces the typed
//! [`ServiceConfig`] the service runs on.

pub mod alerts;
pub mod dags;
pub mod policies;
pub mod raw;
mod validate;

pub use validate::{ConfigProblem, RunSettings, ServiceConfig, StreamSettings};

use std::path::{Path, PathBuf};

/// Why a configuration could not be used. The user is at fault; fix the file and retry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or an override) could not be read or parsed into the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message, naming the key when it can.
        message: String,
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
        problems,
    })
}
