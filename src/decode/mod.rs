//! Decoding: feature records (JSON objects or CSV rows) into typed columns.
//!
//! This is the stage between a source (a Kafka message or a file) and the windows the drift
//! detectors judge.
//! Every value lands somewhere: a number or label in its column, or one of the counters in
//! [`QualityCounts`] (missing, NaN, wrong type). Nothing is dropped silently, and nothing here
//! panics on data.

mod batch;
mod columns;
mod fast;
mod flat;
mod lex;
mod message;
pub(crate) mod number;
mod outputs;
mod record;
mod schema;

pub(crate) use batch::same_bytes;
pub use batch::{BatchDecoder, RecordBatch, RecordView};
pub(crate) use columns::{add_label_counts, LabelCounts};
pub use columns::{CategoricalColumn, Column, Dataset, NumericColumn, QualityCounts};
pub(crate) use flat::FlatLines;
pub use message::{
    decode_payload, event_time_ms, json_type_name, prediction_correct, prediction_error,
    PayloadError, PredictionError,
};
pub use outputs::{OutputColumn, Outputs, OUTPUT_FIELDS};
pub use record::{record_features, Cell, KindTally, NumberText};
pub use schema::{FeatureKind, FeatureSpec, Schema};

use std::path::PathBuf;

/// Record fields that carry metadata, never features.
pub const RESERVED_FIELDS: &[&str] = &["ts", "prediction", "label", "features"];

/// Why data could not be decoded. The user is at fault (bad file or schema); retrying won't help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line or row could not be decoded.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The schema file is invalid.
    #[error("invalid schema {path}: {message}")]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The data holds no feature at all.
    #[error("{path}: no features found (is the file empty, or are all fields reserved: ts, prediction, label?)")]
    NoFeatures {
        /// The file.
        path: PathBuf,
    },
    /// The file's extension names no format this reader knows.
    #[error("{path}: unknown data format (use a .jsonl, .ndjson, .json or .csv file)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
}
