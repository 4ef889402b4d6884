//! Tumbling windows by record count or by duration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::joint::WindowRows;
use super::state::{dataset_of, empty_state, ClosedWindow, OffsetRange, OpenWindow, WindowError};
use super::summary::{Layouts, WindowSummaries};
use crate::decode::{Column, Dataset, FeatureSpec, Outputs, RecordView, Schema};

/// How a stream is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSpec {
    /// A window closes after this many records.
    Records(u64),
    /// Windows of this many milliseconds, aligned to multiples of it since the Unix epoch.
    DurationMs(u64),
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The message offset (all records of a batch message share it).
    pub offset: i64,
    /// The broker timestamp in epoch milliseconds, when the message has one.
    pub broker_time_ms: Option<i64>,
}

/// Cuts one stream's records into tumbling windows.
#[derive(Debug, Clone)]
pub struct Windower {
    spec: WindowSpec,
    open: Dataset,
    state: OpenWindow,
    /// Reused `topic/partition` key, so adding a record allocates nothing in the common case.
    key: String,
    /// The position (topic, partition, offset) of the last record added to the open window:
    /// the records after it from the same message change no offset range.
    last_position: Option<(String, i32, i64)>,
    /// Whether windows keep their records as JSON lines.
    keep_records: bool,
    /// The features' names written as JSON strings, for those lines.
    row_names: Vec<String>,
    /// The layouts the open window's numeric columns are folded on.
    layouts: Option<Arc<Layouts>>,
    /// Layouts waiting for the open window to close, whose summaries are on others.
    next_layouts: Option<Option<Arc<Layouts>>>,
    /// The record count at which the open window's columns are next looked at for folding.
    fold_check: u64,
    /// The model outputs windows keep (none unless the baseline profiles them), empty.
    outputs: Outputs,
    /// The sample of complete rows windows keep (none without multivariate tests), empty.
    joint: Option<WindowRows>,
}

/// Records between two looks at whether a column has grown enough to be folded.
const FOLD_CHECK_EVERY: u64 = 1024;

impl Windower {
    /// A windower whose first window has index `first_index`.
    pub fn new(spec: WindowSpec, schema: Schema, first_index: u64) -> Windower {
        let open = Dataset::new(schema);
        let state = empty_state(first_index, &open);
        Windower {
            spec,
            row_names: row_names(&open.schema),
            open,
            state,
            key: String::new(),
            last_position: None,
            keep_records: false,
            layouts: None,
            next_layouts: None,
            fold_check: FOLD_CHECK_EVERY,
            outputs: Outputs::default(),
            joint: None,
        }
    }

    /// Continues from a checkpointed open window.
    pub fn restore(
        spec: WindowSpec,
        schema: Schema,
        state: OpenWindow,
    ) -> Result<Windower, WindowError> {
        let open = dataset_of(schema, &state)?;
        Ok(Windower {
            spec,
            row_names: row_names(&open.schema),
            keep_records: state.rows.is_some(),
            outputs: Outputs::of(&state.outputs.schema().features),
            joint: state.joint.as_ref().map(WindowRows::emptied),
            open,
            state,
            key: String::new(),
            last_position: None,
            layouts: None,
            next_layouts: None,
            fold_check: 0,
        })
    }

    /// Folds the numeric columns of windows into summaries on `layouts` once they grow past
    /// the size where a summary is the smaller ([`Layouts::fold_at`]), so a window's memory
    /// stops growing with its record count; `None` keeps every value. A window already folded
    /// on other layouts keeps them until it closes.
    pub fn summarise_on(&mut self, layouts: Option<Arc<Layouts>>) {
        let fits = match (&self.state.summaries, &layouts) {
            (None, _) => true,
            (Some(summaries), Some(layouts)) => layouts.fit(summaries),
            (Some(_), None) => false,
        };
        if fits {
            self.layouts = layouts;
            self.next_layouts = None;
            self.fold_check = 0;
        } else {
            self.next_layouts = Some(layouts);
        }
    }

    /// Keeps these model outputs (`prediction`, `label`; the baseline's) in windows: at once
    /// when the open window is empty, else from the next window, so that a window's outputs
    /// are all of its records'.
    pub fn keep_outputs(&mut self, specs: &[FeatureSpec]) {
        self.outputs = Outputs::of(specs);
        if self.open.records == 0 {
            self.state.outputs = self.outputs.clone();
        }
    }

    /// Keeps a sample of complete rows like `sample` (empty) in windows, or none: at once when
    /// the open window is empty, else from the next window, so that a window's sample is of
    /// all its records.
    pub fn keep_joint(&mut self, sample: Option<WindowRows>) {
        self.joint = sample;
        if self.open.records == 0 {
            self.state.joint = self.joint.clone();
        }
    }

    /// Gives the open window the layouts its restored summaries are on (see
    /// [`unresolved`](Self::unresolved)), when they fit them.
    pub fn attach(&mut self, layouts: &Arc<Layouts>) {
        if self
            .state
            .summaries
            .as_ref()
            .is_some_and(|s| layouts.fit(s))
        {
            self.layouts = Some(Arc::clone(layouts));
            self.fold_check = 0;
        }
    }

    /// The layouts the open window's numeric columns are folded on, if any.
    pub fn layouts(&self) -> Option<&Arc<Layouts>> {
        self.layouts.as_ref()
    }

    /// The open window's summaries, when their layouts are not loaded: a window restored from
    /// a checkpoint taken under an earlier baseline (or other bins).
    pub fn unresolved(&self) -> Option<&WindowSummaries> {
        let summaries = self.state.summaries.as_ref()?;
        match &self.layouts {
            Some(layouts) if layouts.fit(summaries) => None,
            _ => Some(summaries),
        }
    }

    /// The open window's state, for a checkpoint.
    pub fn snapshot(&self) -> OpenWindow {
        OpenWindow {
            columns: self.open.columns.clone(),
            unknown_fields: self.open.unknown_fields.clone(),
            records: self.open.records,
            ..self.state.clone()
        }
    }

    /// Whether windows keep their records as JSON lines (for a retraining run to export).
    /// Switched on, it takes effect at once when the open window is empty and from the next
    /// window otherwise, so a window's lines are always all of its records.
    pub fn keep_records(&mut self, keep: bool) {
        self.keep_records = keep;
        if !keep {
            self.state.rows = None;
        } else if self.state.rows.is_none() && self.open.records == 0 {
            self.state.rows = Some(String::new());
        }
    }

    /// The open window's index.
    pub fn open_index(&self) -> u64 {
        self.state.index
    }

    /// Adds a record. Its time is its event time, else its message's broker time. Returns the
    /// window it closed, if any: a duration window closes when a record at or past its end
    /// arrives (that record opens the next window); a count window closes with its last record.
    pub fn push(
        &mut self,
        position: RecordPosition<'_>,
        record: RecordView<'_>,
    ) -> Option<ClosedWindow> {
        let time = record.event_time_ms().or(position.broker_time_ms);
        let mut closed = None;
        if let WindowSpec::DurationMs(length) = self.spec {
            if let Some(time) = time {
                let length = length as i64;
                match self.state.end_ms {
                    Some(end) if time >= end => {
                        closed = self.close();
                        self.align(time, length);
                    }
                    None => self.align(time, length),
                    _ => {}
                }
                if self.state.start_ms.is_some_and(|start| time < start) {
                    self.state.late_records += 1;
                }
            }
        }
        self.add(position, time, record);
        if let WindowSpec::Records(size) = self.spec {
            if self.open.records >= size {
                closed = self.close();
            }
        }
        closed
    }

    /// Closes a duration window whose end lies `grace_ms` or more in the past of `now_ms`, so
    /// a stream that goes quiet still gets its last window reported. Count windows wait for
    /// their records.
    pub fn tick(&mut self, now_ms: i64, grace_ms: i64) -> Option<ClosedWindow> {
        match (self.spec, self.state.end_ms) {
            (WindowSpec::DurationMs(_), Some(end)) if now_ms >= end.saturating_add(grace_ms) => {
                self.close()
            }
            _ => None,
        }
    }

    fn align(&mut self, time: i64, length: i64) {
        let start = time.div_euclid(length) * length;
        self.state.start_ms = Some(start);
        self.state.end_ms = Some(start.saturating_add(length));
    }

    fn add(&mut self, position: RecordPosition<'_>, time: Option<i64>, record: RecordView<'_>) {
        self.open.push_record(record);
        if self.open.records >= self.fold_check {
            self.fold();
        }
        if let Some(rows) = &mut self.state.rows {
            record.write_json_line(&self.row_names, time, rows);
        }
        if !self.state.outputs.is_empty() {
            self.state.outputs.push_record(&record);
        }
        if let Some(joint) = &mut self.state.joint {
            joint.offer(position.partition, position.offset, &record);
        }
        if let Some(error) = record.prediction_error() {
            self.state.labelled += 1;
            self.state.correct += u64::from(!error.wrong());
            self.state.residuals.add(error);
        }
        if let (WindowSpec::Records(_), Some(time)) = (self.spec, time) {
            self.state.start_ms = Some(self.state.start_ms.map_or(time, |s| s.min(time)));
            self.state.end_ms = Some(self.state.end_ms.map_or(time, |e| e.max(time)));
        }
        // The records of one message share its position: the window's ranges already hold it
        // after the first of them.
        if self
            .last_position
            .as_ref()
            .is_some_and(|(topic, partition, offset)| {
                *partition == position.partition
                    && *offset == position.offset
                    && crate::decode::same_bytes(topic.as_bytes(), position.topic.as_bytes())
            })
        {
            return;
        }
        self.last_position = Some((
            position.topic.to_string(),
            position.partition,
            position.offset,
        ));
        use std::fmt::Write;
        self.key.clear();
        let _ = write!(self.key, "{}/{}", position.topic, position.partition);
        match self.state.offsets.get_mut(self.key.as_str()) {
            Some(range) => {
                range.first = range.first.min(position.offset);
                range.last = range.last.max(position.offset);
            }
            None => {
                let range = OffsetRange {
                    first: position.offset,
                    last: position.offset,
                };
                self.state.offsets.insert(self.key.clone(), range);
            }
        }
    }

    /// Emits the open window (when it holds records) and opens the next one.
    fn close(&mut self) -> Option<ClosedWindow> {
        if self.open.records == 0 {
            // An empty duration window is not a window: keep the index for the next one.
            self.state.start_ms = None;
            self.state.end_ms = None;
            return None;
        }
        let next = Dataset::new(self.open.schema.clone());
        let data = std::mem::replace(&mut self.open, next);
        self.last_position = None;
        let mut next_state = empty_state(self.state.index + 1, &self.open);
        next_state.outputs = self.outputs.clone();
        next_state.joint = self.joint.clone();
        if self.keep_records {
            // The next window is likely as large as this one: grow once, not by doubling.
            let capacity = self.state.rows.as_ref().map_or(0, String::len);
            next_state.rows = Some(String::with_capacity(capacity + capacity / 8));
        }
        let state = std::mem::replace(&mut self.state, next_state);
        let mut closed = ClosedWindow::of(state, data);
        if closed.summaries.is_some() {
            closed.layouts = self.layouts.clone();
        }
        if let Some(next) = self.next_layouts.take() {
            self.layouts = next;
        }
        self.fold_check = 0;
        Some(closed)
    }

    /// Folds every numeric column that has grown past its layout's size into its summary.
    fn fold(&mut self) {
        let Some(layouts) = &self.layouts else {
            self.fold_check = u64::MAX;
            return;
        };
        let mut next = FOLD_CHECK_EVERY;
        for (at, column) in self.open.columns.iter_mut().enumerate() {
            let (Column::Numeric(column), Some(limit)) = (column, layouts.fold_at(at)) else {
                continue;
            };
            if column.values.len() >= limit {
                let summaries = self.state.summaries.get_or_insert_with(|| layouts.start());
                summaries.fold(layouts, at, &mut column.values);
            }
            next = next.min(limit.saturating_sub(column.values.len()) as u64);
        }
        self.fold_check = self.open.records + next.max(1);
    }
}

fn row_names(schema: &Schema) -> Vec<String> {
    schema
        .features
        .iter()
        .map(|f| serde_json::to_string(&f.name).expect("strings serialise"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{FeatureKind, FeatureSpec};

    fn schema() -> Schema {
        Schema {
            features: vec![
                FeatureSpec {
                    name: "x".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "c".into(),
                    kind: FeatureKind::Categorical,
                },
            ],
        }
    }

    /// Pushes the record `{"x": x, "c": "a"}` (with `ts` when given) through the decoder.
    fn push(
        w: &mut Windower,
        at: RecordPosition<'_>,
        ts: Option<i64>,
        x: f64,
    ) -> Option<ClosedWindow> {
        let mut record = serde_json::json!({"x": x, "c": "a"});
        if let Some(ts) = ts {
            record["ts"] = ts.into();
        }
        let mut batch = crate::decode::RecordBatch::new();
        crate::decode::BatchDecoder::new(&schema())
            .decode(record.to_string().as_bytes(), &mut batch)
            .unwrap();
        w.push(at, batch.record(0))
    }

    fn at(offset: i64, time: i64) -> RecordPosition<'static> {
        RecordPosition {
            topic: "t",
            partition: 0,
            offset,
            broker_time_ms: Some(time),
        }
    }

    #[test]
    fn count_windows_hold_exactly_n_records_with_consecutive_indices() {
        let mut w = Windower::new(WindowSpec::Records(3), schema(), 7);
        let mut closed = Vec::new();
        for i in 0..10 {
            closed.extend(push(&mut w, at(i, 1000 + i), None, i as f64));
        }
        assert_eq!(
            closed.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert!(closed.iter().all(|c| c.records == 3));
        assert_eq!(closed[1].offsets["t/0"], OffsetRange { first: 3, last: 5 });
        assert_eq!(
            (closed[1].start_ms, closed[1].end_ms),
            (Some(1003), Some(1005))
        );
        assert_eq!(w.snapshot().records, 1);
        assert_eq!(w.open_index(), 10);
    }

    #[test]
    fn duration_windows_align_close_on_later_records_and_count_late_ones() {
        let mut w = Windower::new(WindowSpec::DurationMs(1000), schema(), 0);
        assert!(push(&mut w, at(0, 5_100), None, 1.0).is_none());
        assert!(push(&mut w, at(1, 5_900), None, 2.0).is_none());
        // Event time wins over the broker time; 4_500 is before the window: late.
        assert!(push(&mut w, at(2, 5_950), Some(4_500), 3.0).is_none());
        let first = push(&mut w, at(3, 7_200), None, 4.0).expect("closes [5000, 6000)");
        assert_eq!((first.start_ms, first.end_ms), (Some(5_000), Some(6_000)));
        assert_eq!((first.records, first.late_records), (3, 1));
        assert_eq!(first.index, 0);
        // The record that closed it opened [7000, 8000), skipping the empty [6000, 7000).
        let second = w.tick(8_500, 1_000);
        assert!(second.is_none(), "grace not over yet");
        let second = w
            .tick(9_000, 1_000)
            .expect("idle window closes after grace");
        assert_eq!(
            (second.index, second.records, second.start_ms),
            (1, 1, Some(7_000))
        );
        assert!(w.tick(20_000, 0).is_none(), "no empty windows");
    }

    #[test]
    fn a_restored_window_continues_exactly() {
        let mut straight = Windower::new(WindowSpec::Records(4), schema(), 0);
        let mut crashing = Windower::new(WindowSpec::Records(4), schema(), 0);
        let mut from_straight = Vec::new();
        let mut from_crashing = Vec::new();
        for i in 0..6 {
            from_straight.extend(push(&mut straight, at(i, i), None, i as f64));
            from_crashing.extend(push(&mut crashing, at(i, i), None, i as f64));
        }
        // Checkpoint through JSON, as the store will, and continue in a new windower.
        let json = serde_json::to_string(&crashing.snapshot()).unwrap();
        let state: OpenWindow = serde_json::from_str(&json).unwrap();
        let mut restored = Windower::restore(WindowSpec::Records(4), schema(), state).unwrap();
        for i in 6..12 {
            from_straight.extend(push(&mut straight, at(i, i), None, i as f64));
            from_crashing.extend(push(&mut restored, at(i, i), None, i as f64));
        }
        assert_eq!(from_straight, from_crashing);
        assert_eq!(from_crashing.len(), 3);
    }

    #[test]
    fn a_checkpoint_for_another_schema_is_refused() {
        let w = Windower::new(WindowSpec::Records(4), schema(), 0);
        let mut other = schema();
        other.features[0].kind = FeatureKind::Categorical;
        assert!(Windower::restore(WindowSpec::Records(4), other, w.snapshot()).is_err());
    }
}
