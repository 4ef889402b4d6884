//! Typed feature columns and the counters for values that are not usable.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{record_features, Cell, FeatureKind, FeatureSpec, RecordView, Schema};

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NumericColumn {
    /// Finite values.
    pub values: Vec<f64>,
    /// What was not usable.
    pub quality: QualityCounts,
}

/// The usable values of a categorical feature, as counts per label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// One feature's values. Serialises (for window checkpoints) tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
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

    /// The column's feature kind.
    pub fn kind(&self) -> FeatureKind {
        match self {
            Column::Numeric(_) => FeatureKind::Numeric,
            Column::Categorical(_) => FeatureKind::Categorical,
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
                Cell::Number { value, .. } => col.push(value),
                Cell::Text(text) => match text.trim().parse::<f64>() {
                    Ok(value) => col.push(value),
                    Err(_) => col.quality.invalid += 1,
                },
                Cell::Bool(_) | Cell::Nested => col.quality.invalid += 1,
            },
            Column::Categorical(col) => match cell {
                Cell::Missing => col.quality.missing += 1,
                Cell::Number { value, .. } if value.is_nan() => col.quality.nan += 1,
                Cell::Number { text, .. } => text.with_str(|text| col.add(text, 1)),
                Cell::Text(text) => col.add(text, 1),
                Cell::Bool(true) => col.add("true", 1),
                Cell::Bool(false) => col.add("false", 1),
                Cell::Nested => col.quality.invalid += 1,
            },
        }
    }
}

impl Column {
    /// Adds a CSV field: what `push(Cell::from_csv(field))` does, without building the cell for
    /// a numeric column (the CSV reader's inner loop).
    pub fn push_csv(&mut self, field: &str) {
        match self {
            Column::Numeric(col) => {
                // The usual cell is a plain number, read by `fast_float2`, whose grammar and
                // correctly rounded value are `str::parse`'s; anything else takes the general
                // path.
                if let Ok(value) = fast_float2::parse::<f64, _>(field) {
                    col.push(value);
                    return;
                }
                let trimmed = field.trim();
                if trimmed.is_empty() {
                    col.quality.missing += 1;
                } else if let Ok(value) = trimmed.parse::<f64>() {
                    col.push(value);
                } else {
                    col.quality.invalid += 1;
                }
            }
            Column::Categorical(_) => self.push(Cell::from_csv(field)),
        }
    }
}

impl NumericColumn {
    /// Keeps a finite value; counts NaN or an infinity as `nan`.
    pub fn push(&mut self, value: f64) {
        if value.is_finite() {
            self.values.push(value);
        } else {
            self.quality.nan += 1;
        }
    }
}

impl CategoricalColumn {
    /// Counts `n` values of `label`.
    pub fn add(&mut self, label: &str, n: u64) {
        // Avoid allocating for labels already seen: the common case.
        if let Some(count) = self.counts.get_mut(label) {
            *count += n;
        } else {
            self.counts.insert(label.to_string(), n);
        }
    }
}

/// A share's count of each label of a categorical column, keyed by its text in the share: the
/// file readers count labels this way while they read, then add them with [`add_label_counts`].
pub(crate) type LabelCounts<'t> = HashMap<&'t str, u64, foldhash::fast::RandomState>;

/// Adds each column's label counts (by position) to the categorical columns of `columns`.
pub(crate) fn add_label_counts(columns: &mut [Column], counts: Vec<LabelCounts<'_>>) {
    for (column, counts) in columns.iter_mut().zip(counts) {
        if let Column::Categorical(column) = column {
            counts
                .into_iter()
                .for_each(|(label, n)| column.add(label, n));
        }
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
    /// Feature name → column position, derived from the schema.
    index: HashMap<String, usize>,
}

impl Dataset {
    /// An empty data set for a schema.
    pub fn new(schema: Schema) -> Dataset {
        let columns = schema
            .features
            .iter()
            .map(|f| Column::new(f.kind))
            .collect();
        let index = schema
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Dataset {
            index,
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
        let index = *self.index.get(name)?;
        Some((&self.schema.features[index], &self.columns[index]))
    }

    /// The column position of a feature by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Adds one JSON record: its feature fields go to their columns, features it lacks count as
    /// missing, fields the schema does not know are counted in `unknown_fields`.
    pub fn push_json_record(&mut self, record: &Map<String, Value>) {
        self.records += 1;
        let mut seen = vec![false; self.columns.len()];
        for (name, value) in record_features(record) {
            match self.index.get(name) {
                Some(&i) => {
                    seen[i] = true;
                    self.columns[i].push(Cell::from_json(value));
                }
                None => *self.unknown_fields.entry(name.to_string()).or_insert(0) += 1,
            }
        }
        self.count_absent_as_missing(&seen);
    }

    /// Adds one record decoded by a [`BatchDecoder`](super::BatchDecoder).
    pub fn push_record(&mut self, record: RecordView<'_>) {
        self.records += 1;
        for (i, column) in self.columns.iter_mut().enumerate() {
            // Numbers in numeric features and strings in categorical ones go straight in; any
            // other cell takes the general path.
            let pushed = match column {
                Column::Numeric(numbers) => record.number(i).map(|v| numbers.push(v)),
                Column::Categorical(labels) => record.label(i).map(|l| labels.add(l, 1)),
            };
            if pushed.is_none() {
                column.push(record.cell(i));
            }
        }
        for name in record.unknown_fields() {
            match self.unknown_fields.get_mut(name) {
                Some(count) => *count += 1,
                None => {
                    self.unknown_fields.insert(name.to_string(), 1);
                }
            }
        }
    }

    /// Moves the records of `parts`, data sets of the same schema read after this one's, to
    /// its end in order (values keep their order, counts add up), the columns shared
    /// among the cores. The parts are left empty, their room kept for the next read.
    pub(crate) fn append_all(&mut self, parts: &mut [Dataset]) {
        let mut by_column: Vec<Vec<&mut Column>> =
            self.columns.iter().map(|_| Vec::new()).collect();
        for part in parts.iter_mut() {
            debug_assert_eq!(self.schema, part.schema, "parts of one read");
            self.records += std::mem::take(&mut part.records);
            for (name, n) in std::mem::take(&mut part.unknown_fields) {
                *self.unknown_fields.entry(name).or_insert(0) += n;
            }
            for (column, more) in by_column.iter_mut().zip(&mut part.columns) {
                column.push(more);
            }
        }
        let jobs: Vec<_> = self.columns.iter_mut().zip(by_column).collect();
        crate::parallel::map_owned_in_order(jobs, |(column, parts)| {
            for more in parts {
                drain_column(column, more).expect("parts of one read follow one schema");
            }
        });
    }

    /// Makes room for about `records` more values in each numeric column, so that appending
    /// them moves no values already read (room not filled costs address space, not memory).
    pub(crate) fn reserve(&mut self, records: usize) {
        for column in &mut self.columns {
            if let Column::Numeric(numbers) = column {
                numbers.values.reserve(records);
            }
        }
    }

    /// A feature a record did not carry is a missing value of that feature.
    pub(crate) fn count_absent_as_missing(&mut self, seen: &[bool]) {
        for (column, _) in self
            .columns
            .iter_mut()
            .zip(seen)
            .filter(|(_, seen)| !**seen)
        {
            column.push(Cell::Missing);
        }
    }
}

/// Appends `more`'s values to `column` (values in order, counts added); an error when their
/// kinds differ.
pub(crate) fn append_column(column: &mut Column, mut more: Column) -> Result<(), String> {
    drain_column(column, &mut more)
}

/// Moves `more`'s values to the end of `column` (values in order, counts added), leaving it
/// empty with its room kept; an error when their kinds differ.
fn drain_column(column: &mut Column, more: &mut Column) -> Result<(), String> {
    match (column, more) {
        (Column::Numeric(to), Column::Numeric(from)) => {
            to.values.extend_from_slice(&from.values);
            from.values.clear();
            to.quality.add(std::mem::take(&mut from.quality));
        }
        (Column::Categorical(to), Column::Categorical(from)) => {
            for (label, n) in std::mem::take(&mut from.counts) {
                *to.counts.entry(label).or_insert(0) += n;
            }
            to.quality.add(std::mem::take(&mut from.quality));
        }
        (to, from) => {
            return Err(format!(
                "a {} column cannot take {} values",
                to.kind().as_str(),
                from.kind().as_str()
            ))
        }
    }
    Ok(())
}
