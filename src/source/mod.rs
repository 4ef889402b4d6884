//! Sources of feature records. Today: files (JSONL and CSV) for `drift` and `baseline build`;
//! the Kafka consumer joins here in the streaming stage.

mod file;

pub use file::{read_dataset, DataFormat, ReadOptions};
