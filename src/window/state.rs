//! A window's state: the open window as a checkpoint holds it, and a closed window ready for
//! its report.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::joint::WindowRows;
use super::residuals::Residuals;
use super::summary::{Layouts, WindowSummaries};
use crate::decode::{Column, Dataset, Outputs, Schema};

/// The offsets a window covers in one partition (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OffsetRange {
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
}

/// The open window: everything needed to continue it after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// This window's index in the stream.
    pub index: u64,
    /// Records so far.
    pub records: u64,
    /// Records whose time was before the window's start.
    pub late_records: u64,
    /// Records with both a `prediction` and a `label`.
    #[serde(default)]
    pub labelled: u64,
    /// Of those, the ones whose prediction equals the label.
    #[serde(default)]
    pub correct: u64,
    /// Of those, the ones with a numeric prediction and label: their error sums.
    #[serde(default, skip_serializing_if = "Residuals::is_empty")]
    pub residuals: Residuals,
    /// The records' `prediction` and `label` values, when the baseline profiles them.
    #[serde(default, skip_serializing_if = "Outputs::is_empty")]
    pub outputs: Outputs,
    /// A sample of complete numeric rows, when the stream runs multivariate tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint: Option<WindowRows>,
    /// Start time (duration windows: the aligned start; count windows: the earliest record).
    pub start_ms: Option<i64>,
    /// End time (duration windows: the aligned end, exclusive; count windows: the latest record).
    pub end_ms: Option<i64>,
    /// Offsets covered, per `topic/partition`.
    pub offsets: BTreeMap<String, OffsetRange>,
    /// The feature columns so far, in schema order.
    pub columns: Vec<Column>,
    /// Fields seen that are not features, with counts.
    pub unknown_fields: BTreeMap<String, u64>,
    /// The records themselves as JSON lines, when the stream keeps them for export (see
    /// [`Windower::keep_records`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// The numeric values folded into summaries so far (see [`Windower::summarise_on`]); the
    /// columns hold the values after the last fold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summaries: Option<WindowSummaries>,
}

/// A window that is complete, ready for its drift report.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Late records in it.
    pub late_records: u64,
    /// Records with both a `prediction` and a `label`.
    pub labelled: u64,
    /// Of those, correctly predicted.
    pub correct: u64,
    /// Of those, the ones with a numeric prediction and label: their error sums.
    pub residuals: Residuals,
    /// The records' `prediction` and `label` values, when the baseline profiles them.
    pub outputs: Outputs,
    /// A sample of complete numeric rows, when the stream runs multivariate tests.
    pub joint: Option<WindowRows>,
    /// Start time, epoch milliseconds.
    pub start_ms: Option<i64>,
    /// End time, epoch milliseconds.
    pub end_ms: Option<i64>,
    /// Offsets covered, per `topic/partition`.
    pub offsets: BTreeMap<String, OffsetRange>,
    /// The data, decoded by the stream's schema.
    pub data: Dataset,
    /// Every record as one line of JSON, when the window kept them all.
    pub rows: Option<String>,
    /// The numeric values folded into summaries; `data` holds those after the last fold.
    pub summaries: Option<WindowSummaries>,
    /// The layouts the summaries are on, when their baseline is known.
    pub layouts: Option<Arc<Layouts>>,
}

impl ClosedWindow {
    /// The window's whole state, for a checkpoint taken before its report is made.
    pub fn snapshot(&self) -> OpenWindow {
        OpenWindow {
            index: self.index,
            records: self.records,
            late_records: self.late_records,
            labelled: self.labelled,
            correct: self.correct,
            residuals: self.residuals,
            outputs: self.outputs.clone(),
            joint: self.joint.clone(),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            offsets: self.offsets.clone(),
            columns: self.data.columns.clone(),
            unknown_fields: self.data.unknown_fields.clone(),
            rows: self.rows.clone(),
            summaries: self.summaries.clone(),
        }
    }

    /// The closed window a [`snapshot`](Self::snapshot) was taken of, checked against the
    /// stream's schema.
    pub fn restore(schema: Schema, state: OpenWindow) -> Result<ClosedWindow, WindowError> {
        let data = dataset_of(schema, &state)?;
        Ok(ClosedWindow::of(state, data))
    }

    /// The closed window of a window's state and its data.
    pub(super) fn of(state: OpenWindow, data: Dataset) -> ClosedWindow {
        ClosedWindow {
            index: state.index,
            records: data.records,
            late_records: state.late_records,
            labelled: state.labelled,
            correct: state.correct,
            residuals: state.residuals,
            outputs: state.outputs,
            joint: state.joint,
            start_ms: state.start_ms,
            end_ms: state.end_ms,
            offsets: state.offsets,
            data,
            rows: state.rows,
            summaries: state.summaries,
            layouts: None,
        }
    }

    /// Gives the window the layouts its summaries are on, when they fit them.
    pub fn attach(&mut self, layouts: &Arc<Layouts>) {
        if self.summaries.as_ref().is_some_and(|s| layouts.fit(s)) {
            self.layouts = Some(Arc::clone(layouts));
        }
    }

    /// The window's summaries, when they have no layouts yet (their baseline says which).
    pub fn unresolved(&self) -> Option<&WindowSummaries> {
        match (&self.summaries, &self.layouts) {
            (Some(summaries), None) => Some(summaries),
            _ => None,
        }
    }
}

/// A window's columns as a data set of the schema, when they fit it.
pub(super) fn dataset_of(schema: Schema, state: &OpenWindow) -> Result<Dataset, WindowError> {
    if state.columns.len() != schema.features.len() {
        return Err(WindowError(format!(
            "{} columns for {} features",
            state.columns.len(),
            schema.features.len()
        )));
    }
    for (column, feature) in state.columns.iter().zip(&schema.features) {
        if column.kind() != feature.kind {
            return Err(WindowError(format!(
                "feature `{}` is {} now but was {}",
                feature.name,
                feature.kind.as_str(),
                column.kind().as_str()
            )));
        }
    }
    if let Some(summaries) = &state.summaries {
        if summaries.columns.len() != state.columns.len() {
            return Err(WindowError(format!(
                "{} summaries for {} columns",
                summaries.columns.len(),
                state.columns.len()
            )));
        }
    }
    let mut data = Dataset::new(schema);
    data.columns = state.columns.clone();
    data.records = state.records;
    data.unknown_fields = state.unknown_fields.clone();
    Ok(data)
}

/// A checkpoint that does not fit the stream's current schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the checkpointed window does not match the stream's schema: {0}")]
pub struct WindowError(String);

pub(super) fn empty_state(index: u64, open: &Dataset) -> OpenWindow {
    OpenWindow {
        index,
        records: 0,
        late_records: 0,
        labelled: 0,
        correct: 0,
        residuals: Residuals::default(),
        outputs: Outputs::default(),
        joint: None,
        start_ms: None,
        end_ms: None,
        offsets: BTreeMap::new(),
        columns: open.columns.clone(),
        unknown_fields: BTreeMap::new(),
        rows: None,
        summaries: None,
    }
}
