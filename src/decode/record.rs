//! One record's fields as cells, for JSON objects and CSV rows alike.

use serde_json::{Map, Value};

use super::RESERVED_FIELDS;

/// One field value of a record, before it is typed by the schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// JSON `null`, an absent field or an empty CSV cell.
    Missing,
    /// A number; `text` is how it was written (used only when the feature is categorical).
    Number {
        /// The parsed value; may be NaN or infinite when a CSV cell says so.
        value: f64,
        /// The original text, formatted only when needed.
        text: NumberText<'a>,
    },
    /// A string.
    Text(&'a str),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON array or object, which no feature kind accepts.
    Nested,
}

/// How a number was written. JSON numbers are formatted lazily: numeric features (the common
/// case) never need their text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumberText<'a> {
    /// A CSV cell's text.
    Raw(&'a str),
    /// A JSON number.
    Json(&'a serde_json::Number),
    /// A number known only by its value, written in its shortest form.
    Value(f64),
}

impl NumberText<'_> {
    /// Calls `f` with the text.
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            NumberText::Raw(text) => f(text),
            NumberText::Json(number) => f(&number.to_string()),
            NumberText::Value(value) => f(&value.to_string()),
        }
    }
}

impl<'a> Cell<'a> {
    /// The cell's number: a number, or text that reads as one (how the joint samples of
    /// baselines and windows read a numeric feature's row value).
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Number { value, .. } => Some(*value),
            Cell::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// Classifies a CSV cell: empty is missing, anything `f64` parses is a number, else text.
    pub fn from_csv(text: &'a str) -> Cell<'a> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Cell::Missing;
        }
        match trimmed.parse::<f64>() {
            Ok(value) => Cell::Number {
                value,
                text: NumberText::Raw(trimmed),
            },
            Err(_) => Cell::Text(text),
        }
    }

    /// Classifies a JSON value.
    pub fn from_json(value: &'a Value) -> Cell<'a> {
        match value {
            Value::Null => Cell::Missing,
            Value::Bool(b) => Cell::Bool(*b),
            Value::String(s) => Cell::Text(s),
            Value::Number(number) => Cell::Number {
                value: number.as_f64().unwrap_or(f64::NAN),
                text: NumberText::Json(number),
            },
            Value::Array(_) | Value::Object(_) => Cell::Nested,
        }
    }
}

/// The feature fields of a JSON record: the `"features"` object when there is one, otherwise
/// the top-level fields other than the reserved ones (`ts`, `prediction`, `label`).
pub fn record_features(record: &Map<String, Value>) -> impl Iterator<Item = (&str, &Value)> {
    let nested = match record.get("features") {
        Some(Value::Object(features)) => Some(features),
        _ => None,
    };
    let top_level = nested.is_none().then_some(record);
    nested
        .into_iter()
        .flatten()
        .chain(
            top_level
                .into_iter()
                .flatten()
                .filter(|(key, _)| !RESERVED_FIELDS.contains(&key.as_str())),
        )
        .map(|(key, value)| (key.as_str(), value))
}

/// What kinds of values a field has shown, for inferring its feature kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindTally {
    /// At least one number.
    pub numbers: bool,
    /// At least one string or boolean that is not a number.
    pub labels: bool,
}

impl KindTally {
    /// Records one cell.
    pub fn observe(&mut self, cell: &Cell<'_>) {
        match cell {
            Cell::Number { .. } => self.numbers = true,
            Cell::Text(_) | Cell::Bool(_) => self.labels = true,
            Cell::Missing | Cell::Nested => {}
        }
    }

    /// Numbers only → numeric; any label → categorical; nothing seen → numeric (all missing).
    pub fn kind(self) -> super::FeatureKind {
        if self.labels {
            super::FeatureKind::Categorical
        } else {
            super::FeatureKind::Numeric
        }
    }
}
