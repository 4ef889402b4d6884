//! Windows: cutting a stream of records into the chunks that each get a drift report.
//!
//! Tumbling windows, by record count or by duration. The core here is pure: it never reads the
//! clock or touches Kafka; times arrive as arguments (event time from `ts`, else the broker
//! timestamp) and the async shell calls [`Windower::tick`] with the wall clock so an idle
//! duration window still closes.
//!
//! Invariants:
//! * every record pushed belongs to exactly one window: the open one when it is pushed;
//! * window indices are consecutive, starting where the checkpoint left off;
//! * the open window's whole state is [`OpenWindow`], which serialises: checkpointing it with the
//!   consumed offsets, and restoring it after a crash, continues indices and counts exactly.
//!
//! Big windows: a numeric column that grows past the size where an exact summary on the
//! baseline's sample is smaller ([`summary`]) is folded into it, so a window's memory stops
//! growing with its record count while its report stays the raw values' (see
//! [`Windower::summarise_on`]).
//!
//! Late records (duration windows): a record whose time is before the open window's start is
//! counted in the open window and in its `late_records`. Windows are never reopened, so nothing
//! is reported twice.

pub mod joint;
mod merge;
mod residuals;
mod state;
pub mod summary;
mod tumbling;

pub use joint::{WindowRows, DEFAULT_WINDOW_ROWS};
pub use merge::{merge_parts, MergeError};
pub use residuals::Residuals;
pub use state::{ClosedWindow, OffsetRange, OpenWindow, WindowError};
pub use tumbling::{RecordPosition, WindowSpec, Windower};

/// A closed window's data, kept for the run its decision triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowData {
    /// The decoded feature columns.
    pub columns: crate::decode::Dataset,
    /// Every record as one line of JSON, when the stream keeps records.
    pub records: Option<String>,
    /// The numeric values folded into summaries (the columns hold the rest).
    pub summaries: Option<summary::WindowSummaries>,
}
