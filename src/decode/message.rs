//! Kafka message payloads → records.
//!
//! A payload holds one JSON record, a JSON array of records, or an object `{"records": [...]}`.
//! A payload that is none of these is rejected whole with a [`PayloadError`], whose
//! [`reason`](PayloadError::reason) is a short, bounded label for dead-letter headers and metric
//! labels; the service goes on with the next message.

use serde_json::{Map, Value};

/// Why a payload could not be decoded into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not valid JSON (or not UTF-8).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON, but neither a record, an array of records nor `{"records": [...]}`.
    #[error("expected a JSON object, an array of objects or {{\"records\": [...]}}, found {0}")]
    NotARecord(&'static str),
    /// An element of a batch is not a JSON object; the whole batch is rejected so that it can
    /// be replayed from the dead-letter topic as it was.
    #[error("batch element {index} is {found}, not a JSON object")]
    BatchElement {
        /// Position in the batch.
        index: usize,
        /// What it was instead.
        found: &'static str,
    },
    /// An empty batch or an empty payload.
    #[error("the payload holds no record")]
    Empty,
}

impl PayloadError {
    /// A bounded label for headers and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::InvalidJson(_) => "invalid_json",
            PayloadError::NotARecord(_) => "not_a_record",
            PayloadError::BatchElement { .. } => "invalid_batch_element",
            PayloadError::Empty => "empty",
        }
    }
}

/// The most numbers out of `f64`'s range one payload may hold (each costs a parse).
const MAX_HUGE_NUMBERS: usize = 16;

/// `parse(payload)`, where a number out of `f64`'s range (`1e400`) is read as the string it is
/// written as: one wrong-typed value in its record, not an unreadable payload. serde_json
/// refuses such a number outright, so each one is quoted in a copy and the copy parsed again.
pub(crate) fn with_huge_numbers_quoted<T>(
    payload: &[u8],
    mut parse: impl FnMut(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error> {
    let mut patched: Option<Vec<u8>> = None;
    for _ in 0..=MAX_HUGE_NUMBERS {
        let bytes = patched.as_deref().unwrap_or(payload);
        let err = match parse(bytes) {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let Some(quoted) = quote_number_at(bytes, &err) else {
            return Err(err);
        };
        patched = Some(quoted);
    }
    parse(patched.as_deref().unwrap_or(payload))
}

/// `bytes` with the out-of-range number `err` points at quoted, or `None` when `err` is
/// another error.
fn quote_number_at(bytes: &[u8], err: &serde_json::Error) -> Option<Vec<u8>> {
    if !err.to_string().starts_with("number out of range") {
        return None;
    }
    let line_start = match err.line() {
        1 => 0,
        n => {
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 2)?
                .0
                + 1
        }
    };
    let at = (line_start + err.column()).min(bytes.len());
    let number = |b: &u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E');
    let start = bytes[..at]
        .iter()
        .rposition(|b| !number(b))
        .map_or(0, |i| i + 1);
    let end = at
        + bytes[at..]
            .iter()
            .position(|b| !number(b))
            .unwrap_or(bytes.len() - at);
    if start >= end {
        return None;
    }
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.extend_from_slice(&bytes[..start]);
    quoted.push(b'"');
    quoted.extend_from_slice(&bytes[start..end]);
    quoted.push(b'"');
    quoted.extend_from_slice(&bytes[end..]);
    Some(quoted)
}

/// Decodes a payload into its records, in order.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Map<String, Value>>, PayloadError> {
    if payload.trim_ascii().is_empty() {
        return Err(PayloadError::Empty);
    }
    let value: Value = with_huge_numbers_quoted(payload, |p| serde_json::from_slice(p))
        .map_err(|err| PayloadError::InvalidJson(err.to_string()))?;
    let records = match value {
        Value::Object(mut object) => match object.remove("records") {
            Some(Value::Array(batch)) if object.is_empty() => batch,
            Some(other) => {
                // `records` is an ordinary field of a single record after all.
                object.insert("records".to_string(), other);
                return Ok(vec![object]);
            }
            None => return Ok(vec![object]),
        },
        Value::Array(batch) => batch,
        other => return Err(PayloadError::NotARecord(json_type_name(&other))),
    };
    if records.is_empty() {
        return Err(PayloadError::Empty);
    }
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| match record {
            Value::Object(object) => Ok(object),
            other => Err(PayloadError::BatchElement {
                index,
                found: json_type_name(&other),
            }),
        })
        .collect()
}

/// The record's event time in milliseconds since the Unix epoch, from `"ts"`: an RFC 3339
/// string or an integer of epoch milliseconds. `Ok(None)` when absent or `null`.
pub fn event_time_ms(record: &Map<String, Value>) -> Result<Option<i64>, String> {
    match record.get("ts") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => Ok(Some(ms)),
            None => Err(format!("`ts` {n} is not an integer of epoch milliseconds")),
        },
        Some(Value::String(text)) => parse_time_ms(text).map(Some),
        Some(other) => Err(format!("`ts` is {}, not a time", json_type_name(other))),
    }
}

/// Whether a record's `prediction` equals its `label`: numbers by value, strings and booleans
/// exactly, a number never equals a string; `None` unless both are present and scalar.
pub fn prediction_correct(record: &Map<String, Value>) -> Option<bool> {
    let scalar = |v: &Value| match v {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(other.clone()),
    };
    let prediction = record.get("prediction").and_then(scalar)?;
    let label = record.get("label").and_then(scalar)?;
    Some(match (&prediction, &label) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    })
}

/// A labelled record's prediction error: what accuracy, MAE and RMSE count and what the
/// error-stream detectors watch (through their loss).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PredictionError {
    /// `prediction - label`, when both are numbers (finite: a difference too large for a
    /// double is held at the largest one).
    Residual(f64),
    /// Whether the prediction was wrong, when either is a string or a boolean.
    Wrong(bool),
}

impl PredictionError {
    /// The error of a prediction against a label that are both numbers.
    pub fn residual(prediction: f64, label: f64) -> PredictionError {
        PredictionError::Residual((prediction - label).clamp(f64::MIN, f64::MAX))
    }

    /// Whether the prediction differs from the label.
    pub fn wrong(self) -> bool {
        match self {
            PredictionError::Residual(r) => r != 0.0,
            PredictionError::Wrong(wrong) => wrong,
        }
    }
}

/// A record's prediction error ([`prediction_correct`]'s rules; a residual when both are
/// numbers); `None` unless both are present and scalar.
pub fn prediction_error(record: &Map<String, Value>) -> Option<PredictionError> {
    let number = |key: &str| record.get(key).and_then(Value::as_f64);
    if let (Some(prediction), Some(label)) = (number("prediction"), number("label")) {
        return Some(PredictionError::residual(prediction, label));
    }
    prediction_correct(record).map(|correct| PredictionError::Wrong(!correct))
}

/// An RFC 3339 time in milliseconds since the Unix epoch.
pub(crate) fn parse_time_ms(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|err| format!("`ts` {text:?} is not RFC 3339: {err}"))?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`ts` {text:?} is before 1970"))?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| format!("`ts` {text:?} is out of range"))
}

/// "a string", "an array", … for messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_errors_read_checkpoints_of_before_residuals() {
        // Checkpoints used to hold errors as `true` (wrong) / `false`; they still load.
        let errors: Vec<PredictionError> = serde_json::from_str("[true, false, -0.5]").unwrap();
        let expected = [
            PredictionError::Wrong(true),
            PredictionError::Wrong(false),
            PredictionError::Residual(-0.5),
        ];
        assert_eq!(errors, expected);
        assert_eq!(
            serde_json::to_string(&expected).unwrap(),
            "[true,false,-0.5]"
        );
        let record = |json: &str| serde_json::from_str::<Map<String, Value>>(json).unwrap();
        let error = |json: &str| prediction_error(&record(json));
        assert_eq!(
            error(r#"{"prediction": 3, "label": 1.5}"#),
            Some(PredictionError::Residual(1.5))
        );
        assert_eq!(
            error(r#"{"prediction": "a", "label": "a"}"#),
            Some(PredictionError::Wrong(false))
        );
        assert_eq!(
            error(r#"{"prediction": 1, "label": true}"#),
            Some(PredictionError::Wrong(true))
        );
        assert_eq!(error(r#"{"prediction": 1}"#), None);
        let huge = error(r#"{"prediction": 1e308, "label": -1e308}"#).unwrap();
        assert_eq!(
            huge,
            PredictionError::Residual(f64::MAX),
            "finite, so JSON holds it"
        );
    }

    #[test]
    fn three_payload_shapes() {
        assert_eq!(decode_payload(br#"{"a": 1}"#).unwrap().len(), 1);
        assert_eq!(decode_payload(br#"[{"a": 1}, {"a": 2}]"#).unwrap().len(), 2);
        let batch = decode_payload(br#"{"records": [{"a": 1}, {"a": 2}, {"a": 3}]}"#).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[2]["a"], 3);
    }

    #[test]
    fn a_records_field_beside_others_is_a_feature() {
        let records = decode_payload(br#"{"records": 5, "b": 1}"#).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["records"], 5);
    }

    #[test]
    fn bad_payloads_have_bounded_reasons() {
        let reason = |bytes: &[u8]| decode_payload(bytes).unwrap_err().reason();
        assert_eq!(reason(b"{not json"), "invalid_json");
        assert_eq!(reason(b"\xff\xfe"), "invalid_json");
        assert_eq!(reason(b"42"), "not_a_record");
        assert_eq!(reason(br#"[{"a": 1}, 2]"#), "invalid_batch_element");
        assert_eq!(reason(b"[]"), "empty");
        assert_eq!(reason(b"  "), "empty");
        assert_eq!(reason(br#"{"records": []}"#), "empty");
    }

    #[test]
    fn event_times() {
        let record = |json: &str| decode_payload(json.as_bytes()).unwrap().remove(0);
        assert_eq!(
            event_time_ms(&record(r#"{"ts": 1700000000123}"#)),
            Ok(Some(1_700_000_000_123))
        );
        assert_eq!(
            event_time_ms(&record(r#"{"ts": "2023-11-14T22:13:20.123Z"}"#)),
            Ok(Some(1_700_000_000_123))
        );
        assert_eq!(event_time_ms(&record(r#"{"a": 1}"#)), Ok(None));
        assert!(event_time_ms(&record(r#"{"ts": "yesterday"}"#)).is_err());
        assert!(event_time_ms(&record(r#"{"ts": 1.5}"#)).is_err());
        assert!(event_time_ms(&record(r#"{"ts": true}"#)).is_err());
    }
}
