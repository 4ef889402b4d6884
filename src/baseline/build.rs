//! A baseline from a training file: read it, profile it, save the profile. `baseline build`, the
//! demo and the built-in `baseline` task all go through here, so all three record the file's
//! path, digest and malformed-line count the same way.

use std::path::{Path, PathBuf};

use super::{
    file_sha256, Baseline, BaselineError, BaselineSource, BuildSettings, FeatureProfile, OneHot,
};
use crate::decode::DecodeError;
use crate::decode::FeatureKind;
use crate::source::{read_dataset, read_extras, schema_of, ReadOptions};

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

/// Profiles the data file `input` (JSONL or CSV) and saves the baseline to `output`, within
/// half the memory the system has available (see [`build_from_file_within`]).
pub fn build_from_file(
    input: &Path,
    options: &ReadOptions,
    settings: BuildSettings,
    output: &Path,
) -> Result<Baseline, BuildError> {
    let budget = super::passes::available_memory().map(|bytes| bytes / 2);
    build_from_file_within(input, options, settings, output, budget)
}

/// [`build_from_file`] keeping the decoded numeric values within `budget` bytes (no limit when
/// `None`): a file whose values would not fit is read once per group of numeric features that
/// does. Each feature's profile is the one a single pass would make, so the baseline is the
/// same, id included.
pub fn build_from_file_within(
    input: &Path,
    options: &ReadOptions,
    settings: BuildSettings,
    output: &Path,
    budget: Option<u64>,
) -> Result<Baseline, BuildError> {
    let schema = schema_of(input, options)?;
    let passes = super::passes::plan(input, &schema, budget).map_err(|source| {
        BuildError::Read(DecodeError::Io {
            path: input.to_path_buf(),
            source,
        })
    })?;
    if passes.len() > 1 {
        tracing::info!(file = %input.display(), passes = passes.len(),
            "the values would not fit the memory budget: one read per group of features");
    }
    let mut features = Vec::with_capacity(schema.features.len());
    let mut source = None;
    for pass in passes {
        let read = ReadOptions {
            schema: Some(pass),
            ..options.clone()
        };
        let dataset = read_dataset(input, &read)?;
        if dataset.records == 0 {
            return Err(BuildError::Empty(input.to_path_buf()));
        }
        source.get_or_insert_with(|| BaselineSource {
            path: Some(input.display().to_string()),
            sha256: file_sha256(input).ok(),
            records: dataset.records,
            invalid_lines: dataset.invalid_lines,
        });
        let part = Baseline::profile_owned(dataset, settings, BaselineSource::default())?;
        features.extend(part.features);
    }
    // Back in the schema's order.
    features.sort_by_key(|f| schema.features.iter().position(|s| s.name == f.name()));
    let source = source.unwrap_or_default();
    // The id comes from the bytes written.
    let mut baseline = Baseline::of(features, settings, source);
    let numeric: Vec<String> = (schema.features.iter())
        .filter(|f| f.kind == FeatureKind::Numeric)
        .map(|f| f.name.clone())
        .collect();
    let onehot: Vec<OneHot> = (baseline.features.iter())
        .filter_map(|f| match f {
            FeatureProfile::Categorical(p) => OneHot::of(&p.name, &p.counts),
            FeatureProfile::Numeric(_) => None,
        })
        .collect();
    let extras = read_extras(
        input,
        options,
        &numeric,
        &onehot,
        settings.joint_rows,
        settings.seed,
    );
    let (outputs, joint) = extras?;
    baseline.profile_outputs(outputs);
    baseline.joint = joint;
    baseline.save(output)?;
    Ok(baseline)
}
