//! Kafka payloads decoded straight into per-record cells, without building JSON trees.
//!
//! [`decode_payload`](super::decode_payload) parses a payload into `serde_json` maps, which
//! allocates a map, a key and a value per field. The service decodes every message, so it uses
//! [`BatchDecoder`] instead: one pass of the JSON parser that writes each feature's value into a
//! dense row of cells (one cell per schema feature) and each label into a shared text buffer,
//! all reused from message to message. The two decoders agree on every payload: same records,
//! same cells, same event times, same errors (a property test holds them to it).

mod visit;

use super::{Cell, FeatureKind, NumberText, PayloadError, PredictionError, Schema};
use visit::Shape;

/// Decodes payloads for one schema.
#[derive(Debug, Clone)]
pub struct BatchDecoder {
    names: Vec<String>,
    kinds: Vec<FeatureKind>,
    /// Per feature: whether its name, quoted, is how a record writes its key (no escapes
    /// needed) and no reserved field has it, so that the fast path may match the key's bytes.
    plain: Vec<bool>,
    /// Keep numeric features' text as written (for records kept as JSON lines).
    keep_number_text: bool,
}

impl BatchDecoder {
    /// A decoder for the schema's features.
    pub fn new(schema: &Schema) -> BatchDecoder {
        BatchDecoder {
            names: schema.features.iter().map(|f| f.name.clone()).collect(),
            kinds: schema.features.iter().map(|f| f.kind).collect(),
            plain: schema.features.iter().map(|f| plain(&f.name)).collect(),
            keep_number_text: false,
        }
    }

    /// Whether numeric features keep the text they were written as, so that
    /// [`RecordView::write_json_line`] copies it instead of formatting the value again (where
    /// the fast path decodes the payload).
    pub fn keep_number_text(&mut self, keep: bool) {
        self.keep_number_text = keep;
    }

    pub(super) fn keeps_number_text(&self) -> bool {
        self.keep_number_text
    }

    /// Decodes a payload into `batch`, replacing what it held. On error the batch is empty.
    pub fn decode(&self, payload: &[u8], batch: &mut RecordBatch) -> Result<(), PayloadError> {
        batch.clear(self.names.len());
        // JSON is UTF-8. Checked once here: the fast path relies on it, and serde_json does not
        // check the strings inside values it skips.
        if let Err(err) = std::str::from_utf8(payload) {
            return Err(PayloadError::InvalidJson(format!(
                "invalid UTF-8 at byte {}",
                err.valid_up_to()
            )));
        }
        if super::fast::decode(self, payload, batch) {
            return Ok(());
        }
        batch.clear(self.names.len());
        let result = self.decode_into(payload, batch);
        if result.is_err() {
            batch.clear(self.names.len());
        }
        result
    }

    fn decode_into(&self, payload: &[u8], batch: &mut RecordBatch) -> Result<(), PayloadError> {
        if payload.trim_ascii().is_empty() {
            return Err(PayloadError::Empty);
        }
        let invalid = |err: serde_json::Error| PayloadError::InvalidJson(err.to_string());
        let shape = super::message::with_huge_numbers_quoted(payload, |p| {
            batch.clear(self.names.len());
            visit::parse(self, p, batch)
        })
        .map_err(invalid)?;
        match shape {
            Shape::Records => {}
            Shape::NotARecord(found) => return Err(PayloadError::NotARecord(found)),
            Shape::BadElement { index, found } => {
                return Err(PayloadError::BatchElement { index, found })
            }
        }
        if batch.is_empty() {
            return Err(PayloadError::Empty);
        }
        Ok(())
    }

    /// The schema position of a feature name (as bytes, so the fast path need not make it a
    /// `str`). Records of a stream usually list their fields in the same order, so the position
    /// after the previous match is tried first.
    pub(super) fn position(&self, name: &[u8], guess: &mut usize) -> Option<usize> {
        let found = match self.names.get(*guess) {
            Some(candidate) if same_bytes(candidate.as_bytes(), name) => Some(*guess),
            _ => self
                .names
                .iter()
                .position(|n| same_bytes(n.as_bytes(), name)),
        };
        if let Some(i) = found {
            *guess = i + 1;
        }
        found
    }

    /// The kind of feature `i`.
    /// Feature `i`'s name when a record writes it as is (see `plain`).
    pub(super) fn plain_name(&self, i: usize) -> Option<&[u8]> {
        self.plain
            .get(i)
            .filter(|plain| **plain)
            .map(|_| self.names[i].as_bytes())
    }

    pub(super) fn kind(&self, i: usize) -> FeatureKind {
        self.kinds[i]
    }

    /// The kind of the feature with this name; numeric when there is none (the value is then
    /// an unknown field and its cell is dropped).
    fn kind_of(&self, name: &str) -> FeatureKind {
        self.position(name.as_bytes(), &mut 0)
            .map_or(FeatureKind::Numeric, |i| self.kinds[i])
    }
}

/// A slot as a cell, its text read from the batch's buffer.
fn cell(slot: Slot, text: &str) -> Cell<'_> {
    match slot {
        Slot::Missing => Cell::Missing,
        Slot::Number {
            value,
            text: (start, end),
        } => Cell::Number {
            value,
            text: NumberText::Raw(&text[start..end]),
        },
        Slot::Text(start, end) => Cell::Text(&text[start..end]),
        Slot::Bool(b) => Cell::Bool(b),
        Slot::Nested => Cell::Nested,
    }
}

/// Whether `name` is written in JSON without escapes and is not a field the decoders read
/// before features (`ts`, `prediction`, `label`, `features`).
pub(super) fn plain(name: &str) -> bool {
    let reserved = super::RESERVED_FIELDS.contains(&name);
    !reserved && !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Byte equality without a call into `memcmp`, for short names (fields, topics) compared once
/// per value.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The records of one payload: a row of cells per record, in schema order.
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    width: usize,
    slots: Vec<Slot>,
    times: Vec<Option<i64>>,
    /// Per record: `prediction` and `label`, when they are scalars.
    truths: Vec<[Option<Truth>; 2]>,
    /// Unknown field names: (record, start, end) in `text`.
    unknown: Vec<(usize, usize, usize)>,
    /// Labels and unknown field names.
    text: String,
}

/// One cell, with text as a range of the batch's text buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Slot {
    Missing,
    Number { value: f64, text: (usize, usize) },
    Text(usize, usize),
    Bool(bool),
    Nested,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> RecordBatch {
        RecordBatch::default()
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Record `i`.
    ///
    /// # Panics
    /// When `i` is not below [`len`](RecordBatch::len).
    pub fn record(&self, i: usize) -> RecordView<'_> {
        let start = self.unknown.partition_point(|(record, ..)| *record < i);
        let end = self.unknown.partition_point(|(record, ..)| *record <= i);
        RecordView {
            slots: &self.slots[i * self.width..(i + 1) * self.width],
            event_time_ms: self.times[i],
            truth: self.truths[i],
            unknown: &self.unknown[start..end],
            text: &self.text,
        }
    }

    pub(super) fn clear(&mut self, width: usize) {
        self.width = width;
        self.slots.clear();
        self.times.clear();
        self.truths.clear();
        self.unknown.clear();
        self.text.clear();
    }

    pub(super) fn begin_record(&mut self) {
        self.slots
            .extend(std::iter::repeat_n(Slot::Missing, self.width));
        self.times.push(None);
        self.truths.push([None, None]);
    }

    /// Forgets the current record's features and unknown fields (its `"features"` object wins).
    fn reset_record(&mut self) {
        let record = self.times.len() - 1;
        let row = record * self.width;
        self.slots[row..].fill(Slot::Missing);
        while self.unknown.last().is_some_and(|(r, ..)| *r == record) {
            self.unknown.pop();
        }
    }

    pub(super) fn set_time(&mut self, record: usize, time: Option<i64>) {
        self.times[record] = time;
    }

    /// Sets the record's `prediction` (`which` = 0) or `label` (1).
    pub(super) fn set_truth(&mut self, record: usize, which: usize, value: Option<Truth>) {
        self.truths[record][which] = value;
    }

    pub(super) fn set_slot(&mut self, record: usize, feature: usize, slot: Slot) {
        self.slots[record * self.width + feature] = slot;
    }

    pub(super) fn push_unknown(&mut self, record: usize, name: &str) {
        let (start, end) = self.push_text(name);
        self.unknown.push((record, start, end));
    }

    pub(super) fn push_text(&mut self, text: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }
}

/// One decoded record.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    slots: &'a [Slot],
    event_time_ms: Option<i64>,
    truth: [Option<Truth>; 2],
    unknown: &'a [(usize, usize, usize)],
    text: &'a str,
}

/// A `prediction` or `label` value: a scalar, with text in the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Truth {
    Number(f64),
    Text(usize, usize),
    Bool(bool),
}

impl<'a> RecordView<'a> {
    /// The record's event time from `"ts"`, in epoch milliseconds; `None` when absent or
    /// unreadable (the record then takes its message's broker time).
    pub fn event_time_ms(&self) -> Option<i64> {
        self.event_time_ms
    }

    /// Whether the record's `prediction` equals its `label` (numbers by value, strings and
    /// booleans exactly; a number never equals a string). `None` unless both are scalars.
    pub fn prediction_correct(&self) -> Option<bool> {
        let [Some(prediction), Some(label)] = self.truth else {
            return None;
        };
        Some(match (prediction, label) {
            (Truth::Number(a), Truth::Number(b)) => a == b,
            (Truth::Bool(a), Truth::Bool(b)) => a == b,
            (Truth::Text(s1, e1), Truth::Text(s2, e2)) => self.text[s1..e1] == self.text[s2..e2],
            _ => false,
        })
    }

    /// The record's prediction error: a residual when `prediction` and `label` are both
    /// numbers, else whether they differ ([`prediction_correct`](Self::prediction_correct)).
    /// `None` unless both are scalars.
    pub fn prediction_error(&self) -> Option<PredictionError> {
        match self.truth {
            [Some(Truth::Number(prediction)), Some(Truth::Number(label))] => {
                Some(PredictionError::residual(prediction, label))
            }
            _ => self
                .prediction_correct()
                .map(|correct| PredictionError::Wrong(!correct)),
        }
    }

    /// The record's `prediction` (`which` 0) or `label` (1) as a cell.
    pub fn output(&self, which: usize) -> Cell<'a> {
        match self.truth[which] {
            None => Cell::Missing,
            Some(Truth::Number(value)) => Cell::Number {
                value,
                text: NumberText::Value(value),
            },
            Some(Truth::Text(start, end)) => Cell::Text(&self.text[start..end]),
            Some(Truth::Bool(b)) => Cell::Bool(b),
        }
    }

    /// The cells, one per schema feature in schema order; an absent feature is
    /// [`Cell::Missing`].
    pub fn cells(&self) -> impl Iterator<Item = Cell<'a>> + 'a {
        let text = self.text;
        self.slots.iter().map(move |slot| cell(*slot, text))
    }

    /// Feature `i`'s value when it is a number: the common case, without building its cell.
    #[inline]
    pub(super) fn number(&self, i: usize) -> Option<f64> {
        match self.slots[i] {
            Slot::Number { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Feature `i`'s value when it is a string: the common case of a categorical feature.
    #[inline]
    pub(super) fn label(&self, i: usize) -> Option<&'a str> {
        match self.slots[i] {
            Slot::Text(start, end) => Some(&self.text[start..end]),
            _ => None,
        }
    }

    /// Feature `i`'s cell.
    pub fn cell(&self, i: usize) -> Cell<'a> {
        cell(self.slots[i], self.text)
    }

    /// Appends the record to `out` as one line of JSON: `"ts"` (epoch milliseconds, when
    /// `time` is known), the features it carries in schema order (`names` holds each feature's
    /// name already written as a JSON string), then `"prediction"` and `"label"` when present.
    pub fn write_json_line(&self, names: &[String], time: Option<i64>, out: &mut String) {
        use std::fmt::Write;
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(name);
            out.push(':');
        };
        if let Some(time) = time {
            key(out, "\"ts\"");
            let _ = write!(out, "{time}");
        }
        for (name, slot) in names.iter().zip(self.slots) {
            match *slot {
                Slot::Missing | Slot::Nested => {}
                Slot::Number {
                    value,
                    text: (start, end),
                } => {
                    key(out, name);
                    if end > start {
                        out.push_str(&self.text[start..end]);
                    } else {
                        write_json_number(out, value);
                    }
                }
                Slot::Text(start, end) => {
                    key(out, name);
                    write_json_string(out, &self.text[start..end]);
                }
                Slot::Bool(b) => {
                    key(out, name);
                    out.push_str(if b { "true" } else { "false" });
                }
            }
        }
        for (name, truth) in ["\"prediction\"", "\"label\""].into_iter().zip(self.truth) {
            match truth {
                None => {}
                Some(Truth::Number(value)) => {
                    key(out, name);
                    write_json_number(out, value);
                }
                Some(Truth::Text(start, end)) => {
                    key(out, name);
                    write_json_string(out, &self.text[start..end]);
                }
                Some(Truth::Bool(b)) => {
                    key(out, name);
                    out.push_str(if b { "true" } else { "false" });
                }
            }
        }
        if first {
            out.push('{');
        }
        out.push_str("}\n");
    }

    /// Fields that are not features (once per occurrence).
    pub fn unknown_fields(&self) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text;
        self.unknown
            .iter()
            .map(move |(_, start, end)| &text[*start..*end])
    }
}

/// A number as `serde_json` writes it, a whole one without a fraction (labels stay `1`, not
/// `1.0`); a non-finite one as `null`.
fn write_json_number(out: &mut String, value: f64) {
    use std::fmt::Write;
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        let _ = write!(out, "{}", value as i64);
    } else if value.is_finite() {
        // The shortest text that reads back as the same number, as serde_json writes it.
        out.push_str(ryu::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

/// A string as a JSON string literal.
fn write_json_string(out: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(literal) => out.push_str(&literal),
        Err(_) => out.push_str("null"),
    }
}
