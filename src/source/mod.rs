//! Sources of feature records: files (JSONL and CSV) for `drift` and `baseline build`, and the
//! Kafka clients of the running service.

mod blocks;
mod csv_blocks;
mod file;
mod infer;
mod jsonl_blocks;
pub mod kafka;
pub mod progress;
pub mod range;
pub mod readiness;

pub use file::{read_dataset, read_extras, schema_of, DataFormat, ReadOptions};
