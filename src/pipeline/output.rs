//! What the pipeline takes in and hands out: a message, what processing it produced, and a
//! judged window.

use super::report::WindowReport;
use crate::policy::Decision;
use crate::store::DeadLetter;

/// One Kafka message as the processor needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The payload, if any.
    pub payload: Option<&'a [u8]>,
}

/// What processing one message produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records decoded and windowed.
    pub records: u64,
    /// Windows closed by this message, with their reports.
    pub closed: Vec<JudgedWindow>,
    /// In part mode, the parts closed by this message instead (see [`super::parts`]).
    pub parts: Vec<super::WindowPart>,
    /// The message, when it could not be decoded.
    pub dead_letter: Option<DeadLetter>,
    /// True when the message was below the checkpoint and skipped.
    pub skipped: bool,
}

/// A closed window judged: its report and the policies' decisions on it.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedWindow {
    /// Window index in the stream.
    pub index: u64,
    /// `@instance` when instances share the store (each numbers its own windows), else empty:
    /// the window's identity is its index and this tag.
    pub tag: String,
    /// The report.
    pub report: WindowReport,
    /// One decision per policy judging the stream.
    pub decisions: Vec<Decision>,
    /// The window's data, kept only when a decision triggered (a run exports it); not stored.
    pub data: Option<std::sync::Arc<crate::window::WindowData>>,
}
