//! Baseline profiles: what the model was trained on, precomputed once at training time.
//!
//! `driftgate baseline build` turns training data into a versioned JSON file; the drift stage
//! compares each window of production data against it. A profile keeps, per numeric feature,
//! summary statistics, the quantile bins with their counts, and the reference sample (every value
//! while the feature has at most a cap of distinct values, as distinct values with counts when
//! that is smaller; above the cap, a seeded uniform reservoir); per categorical feature, the
//! category counts.
//! A raw data file used as a reference goes through the same code with no cap, which is why a
//! profile under the cap gives exactly the results of the data it was built from.

mod build;
mod file;
mod joint;
mod npz;
mod passes;
mod profile;
mod reservoir;
mod sample;

pub use build::{build_from_file, build_from_file_within, BuildError};
pub use file::{file_sha256, is_npz_file};
pub use joint::{JointSample, OneHot, RowReservoir, DEFAULT_JOINT_ROWS};
pub use profile::{
    Baseline, BaselineSource, BuildSettings, CategoricalProfile, FeatureProfile, NumericProfile,
    DEFAULT_SAMPLE_CAP, FORMAT, FORMAT_VERSION,
};
pub use reservoir::Reservoir;
pub(crate) use sample::f64_base64;

use std::path::{Path, PathBuf};

/// Why a baseline could not be built, read or written. The user is at fault (wrong or damaged
/// file); retrying won't help.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read or written.
    #[error("cannot access baseline {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the baseline shape.
    #[error("{path} is not a valid driftgate baseline: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file is a baseline of a format version this build cannot read.
    #[error("{path} is baseline format version {found}; this driftgate reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The content does not match its id: the file was edited or damaged.
    #[error("{path} is damaged: its content hashes to {actual}, but its id says {expected}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The id written in the file.
        expected: String,
        /// The hash of the content as read.
        actual: String,
    },
    /// The content is inconsistent (e.g. unsorted sample, bin counts of the wrong length).
    #[error("{path}: feature `{feature}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The feature at fault.
        feature: String,
        /// What is wrong.
        message: String,
    },
    /// The settings for building are unusable.
    #[error("invalid baseline settings: {0}")]
    Settings(String),
}

impl BaselineError {
    /// Turns an operating system error on `path` into [`BaselineError::Io`].
    pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> BaselineError + Copy + '_ {
        move |source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Turns a message about `path`'s content into [`BaselineError::Parse`].
    pub(crate) fn parse(path: &Path) -> impl Fn(String) -> BaselineError + Copy + '_ {
        move |message| BaselineError::Parse {
            path: path.to_path_buf(),
            message,
        }
    }
}
