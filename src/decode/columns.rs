//! Typed feature columns and the counters for values that are not usable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Cell, FeatureKind, FeatureSpec, Schema};

/// Values of a feature that could not be used, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityCounts {
    /// Absent, `null` or empty.
    pub missing: u64,
    /// NaN or infinite numbers.
    pub nan: u64,
    /// A value of the wrong type (text in a numeric feature, an array or object anywhere).
    pub invalid: u64,
}

impl QualityCounts {
    /// Adds another set of counts.
    pub fn add(&mut self, other: QualityCounts) {
        self.missing += other.missing;
        self.nan += other.nan;
        self.invalid += other.invalid;
    }
}

/// The usable values of a numeric feature: finite numbers only, in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumericColumn {
    /// Finite values.
    pub values: Vec<f64>,
    /// What was not usable.
    pub quality: QualityCounts,
}

/// The usable values of a categorical feature, as counts per label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CategoricalColumn {
    /// Count per label. Ordered, so reports and fixtures are deterministic.
    pub counts: BTreeMap<String, u64>,
    /// What was not usable.
    pub quality: QualityCounts,
}

impl CategoricalColumn {
    /// The number of usable values.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// One feature's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// A numeric feature.
    Numeric(NumericColumn),
    /// A categorical feature.
    Categorical(CategoricalColumn),
}

impl Column {
    /// An empty column of the given kind.
    pub fn new(kind: FeatureKind) -> Column {
        match kind {
            FeatureKind::Numeric => Column::Numeric(NumericColumn::default()),
            FeatureKind::Categorical => Column::Categorical(CategoricalColumn::default()),
        }
    }

    /// The counters of unusable values.
    pub fn quality(&self) -> QualityCounts {
        match self {
            Column::Numeric(c) => c.quality,
            Column::Categorical(c) => c.quality,
        }
    }

    /// The number of usable values.
    pub fn len(&self) -> u64 {
        match self {
            Column::Numeric(c) => c.values.len() as u64,
            Column::Categorical(c) => c.total(),
        }
    }

    /// True when no value is usable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Column {
    /// Adds one cell according to the column's kind.
    ///
    /// Numeric: finite numbers are kept, NaN/infinity counted as `nan`, strings that parse as a
    /// number are accepted (producers often quote numbers), other text and booleans are `invalid`.
    /// Categorical: text as is, numbers by their written form, booleans as `true`/`false`.
    pub fn push(&mut self, cell: Cell<'_>) {
        match self {
            Column::Numeric(col) => match cell {
                Cell::Missing => col.quality.missing += 1,
                Cell::Number { value, .. } => push_number(col, value),
                Cell::Text(text) => match text.trim().parse::<f64>() {
                    Ok(value) => push_number(col, value),
                    Err(_) => col.quality.invalid += 1,
                },
                Cell::Bool(_) | Cell::Nested => col.quality.invalid += 1,
            },
            Column::Categorical(col) => match cell {
                Cell::Missing => col.quality.missing += 1,
                Cell::Number { value, .. } if value.is_nan() => col.quality.nan += 1,
                Cell::Number { text, .. } | Cell::Text(text) => add_label(col, text),
                Cell::Bool(true) => add_label(col, "true"),
                Cell::Bool(false) => add_label(col, "false"),
                Cell::Nested => col.quality.invalid += 1,
            },
        }
    }
}

fn push_number(col: &mut NumericColumn, value: f64) {
    if value.is_finite() {
        col.values.push(value);
    } else {
        col.quality.nan += 1;
    }
}

fn add_label(col: &mut CategoricalColumn, label: &str) {
    // Avoid allocating for labels already seen: the common case.
    if let Some(count) = col.counts.get_mut(label) {
        *count += 1;
    } else {
        col.counts.insert(label.to_string(), 1);
    }
}

/// A decoded data set: one column per schema feature, plus what did not fit the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The schema the columns follow.
    pub schema: Schema,
    /// One column per feature, in schema order.
    pub columns: Vec<Column>,
    /// Records decoded.
    pub records: u64,
    /// Lines skipped as malformed (only with `skip_invalid`), with the first few reasons.
    pub invalid_lines: u64,
    /// Up to ten `file:line: reason` strings for skipped lines.
    pub invalid_examples: Vec<String>,
    /// Fields present in records but not in the schema, with how often they appeared.
    pub unknown_fields: BTreeMap<String, u64>,
}

impl Dataset {
    /// An empty data set for a schema.
    pub fn new(schema: Schema) -> Dataset {
        let columns = schema
            .features
            .iter()
            .map(|f| Column::new(f.kind))
            .collect();
        Dataset {
            schema,
            columns,
            records: 0,
            invalid_lines: 0,
            invalid_examples: Vec::new(),
            unknown_fields: BTreeMap::new(),
        }
    }

    /// The feature spec and column of a feature by name.
    pub fn feature(&self, name: &str) -> Option<(&FeatureSpec, &Column)> {
        let index = self.schema.index_of(name)?;
        Some((&self.schema.features[index], &self.columns[index]))
    }
}
