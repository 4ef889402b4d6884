//! Sources of feature records: files (JSONL and CSV) for `drift` and `baseline build`, and the
//! Kafka clients of the running service.

mod csv_blocks;
mod file;
pub mod kafka;
pub mod progress;
pub mod range;
pub mod readiness;

pub use file::{read_dataset, DataFormat, ReadOptions};
