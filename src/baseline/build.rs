//! A baseline from a training file: read it, profile it, save the profile. `baseline build`, the
//! demo and the built-in `baseline` task all go through here, so all three record the file's
//! path, digest and malformed-line count the same way.

use std::path::{Path, PathBuf};

use super::{file_sha256, Baseline, BaselineError, BaselineSource, BuildSettings};
use crate::decode::DecodeError;
use crate::source::{read_dataset, ReadOptions};

/// Why a baseline could not be built from a file.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The training file could not be read or decoded.
    #[error(transparent)]
    Read(#[from] DecodeError),
    /// The training file has no usable record.
    #[error("{}: 0 usable record(s), 1 needed; nothing to compare", .0.display())]
    Empty(PathBuf),
    /// The profile could not be built or saved.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

/// Profiles the data file `input` (JSONL or CSV) and saves the baseline to `output`.
pub fn build_from_file(
    input: &Path,
    options: &ReadOptions,
    settings: BuildSettings,
    output: &Path,
) -> Result<Baseline, BuildError> {
    let dataset = read_dataset(input, options)?;
    if dataset.records == 0 {
        return Err(BuildError::Empty(input.to_path_buf()));
    }
    let source = BaselineSource {
        path: Some(input.display().to_string()),
        sha256: file_sha256(input).ok(),
        records: dataset.records,
        invalid_lines: dataset.invalid_lines,
    };
    // The id comes from the bytes written.
    let mut baseline = Baseline::profile_owned(dataset, settings, source)?;
    baseline.save(output)?;
    Ok(baseline)
}
