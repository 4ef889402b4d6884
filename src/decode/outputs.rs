//! A model's outputs as columns: the records' `prediction` and `label`, kept beside the
//! features so that their distributions are profiled in a baseline and compared window by
//! window like a feature's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Cell, Column, FeatureKind, FeatureSpec, NumberText, RecordView, Schema};

/// The two outputs, in this order.
pub const OUTPUT_FIELDS: [&str; 2] = ["prediction", "label"];

/// The outputs a data set or a window keeps, each as a column named `prediction` or `label`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    /// The kept outputs, in [`OUTPUT_FIELDS`] order.
    pub columns: Vec<OutputColumn>,
    /// Training data: a numeric column turns categorical at its first string or boolean
    /// (windows keep the kinds their baseline has).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adapt: bool,
}

/// One output's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputColumn {
    /// `prediction` or `label`.
    pub name: String,
    /// The values.
    pub column: Column,
}

impl Outputs {
    /// Both outputs, each numeric until a value says otherwise: for reading training data,
    /// whose output kinds nobody declared.
    pub fn adaptive() -> Outputs {
        let columns = OUTPUT_FIELDS
            .iter()
            .map(|name| OutputColumn {
                name: name.to_string(),
                column: Column::new(FeatureKind::Numeric),
            })
            .collect();
        Outputs {
            columns,
            adapt: true,
        }
    }

    /// The outputs of `specs` (those named `prediction` or `label`), with their kinds.
    pub fn of(specs: &[FeatureSpec]) -> Outputs {
        let columns = OUTPUT_FIELDS
            .iter()
            .filter_map(|name| specs.iter().find(|s| s.name == *name))
            .map(|spec| OutputColumn {
                name: spec.name.clone(),
                column: Column::new(spec.kind),
            })
            .collect();
        Outputs {
            columns,
            adapt: false,
        }
    }

    /// Whether no output is kept.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The kept outputs as a schema (for comparing them with a baseline's).
    pub fn schema(&self) -> Schema {
        Schema {
            features: (self.columns.iter())
                .map(|o| FeatureSpec {
                    name: o.name.clone(),
                    kind: o.column.kind(),
                })
                .collect(),
        }
    }

    /// Adds a decoded record's outputs.
    pub fn push_record(&mut self, record: &RecordView<'_>) {
        for i in 0..self.columns.len() {
            let which = self.which(i);
            self.push(i, record.output(which));
        }
    }

    /// Adds a JSON record's outputs.
    pub fn push_json(&mut self, record: &Map<String, Value>) {
        for i in 0..self.columns.len() {
            let cell = match record.get(self.columns[i].name.as_str()) {
                None => Cell::Missing,
                Some(value) => Cell::from_json(value),
            };
            self.push(i, cell);
        }
    }

    /// Adds a CSV row's outputs (`None` for a column the file does not have).
    pub fn push_csv(&mut self, fields: [Option<&str>; 2]) {
        for i in 0..self.columns.len() {
            let cell = fields[self.which(i)].map_or(Cell::Missing, Cell::from_csv);
            self.push(i, cell);
        }
    }

    /// Adds another part's values, output by output (parts of one window share their kinds).
    pub fn append(&mut self, other: Outputs) -> Result<(), String> {
        for more in other.columns {
            match self.columns.iter_mut().find(|o| o.name == more.name) {
                Some(into) => super::columns::append_column(&mut into.column, more.column)?,
                None => self.columns.push(more),
            }
        }
        Ok(())
    }

    /// 0 for `prediction`, 1 for `label`.
    fn which(&self, i: usize) -> usize {
        usize::from(self.columns[i].name == OUTPUT_FIELDS[1])
    }

    fn push(&mut self, i: usize, cell: Cell<'_>) {
        // A number's label is its value's shortest form, however it was written (`1`, `1.0`).
        let cell = match cell {
            Cell::Number { value, .. } => Cell::Number {
                value,
                text: NumberText::Value(value),
            },
            other => other,
        };
        let column = &mut self.columns[i].column;
        if self.adapt && matches!(cell, Cell::Text(_) | Cell::Bool(_)) {
            if let Column::Numeric(numbers) = column {
                let mut labels = Column::new(FeatureKind::Categorical);
                for value in std::mem::take(&mut numbers.values) {
                    labels.push(Cell::Number {
                        value,
                        text: NumberText::Value(value),
                    });
                }
                if let Column::Categorical(c) = &mut labels {
                    c.quality = numbers.quality;
                }
                *column = labels;
            }
        }
        column.push(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_outputs_stay_numeric_until_a_string_arrives() {
        let mut outputs = Outputs::adaptive();
        outputs.push_csv([Some("0.5"), Some("1")]);
        outputs.push_csv([Some("2"), Some("cat")]);
        outputs.push_csv([None, Some("1")]);
        let schema = outputs.schema();
        assert_eq!(schema.features[0].kind, FeatureKind::Numeric);
        assert_eq!(schema.features[1].kind, FeatureKind::Categorical);
        let Column::Categorical(labels) = &outputs.columns[1].column else {
            panic!("categorical");
        };
        let counts: Vec<(&str, u64)> = labels
            .counts
            .iter()
            .map(|(l, n)| (l.as_str(), *n))
            .collect();
        assert_eq!(counts, [("1", 2), ("cat", 1)]);
        let Column::Numeric(predictions) = &outputs.columns[0].column else {
            panic!("numeric");
        };
        assert_eq!(predictions.values, [0.5, 2.0]);
        assert_eq!(predictions.quality.missing, 1);
    }

    #[test]
    fn windows_keep_their_baselines_kinds() {
        let spec = |name: &str, kind| FeatureSpec {
            name: name.into(),
            kind,
        };
        let mut outputs = Outputs::of(&[spec("label", FeatureKind::Numeric)]);
        let record = |json: &str| serde_json::from_str::<Map<String, Value>>(json).unwrap();
        outputs.push_json(&record(r#"{"prediction": 1, "label": "x"}"#));
        outputs.push_json(&record(r#"{"label": 3}"#));
        assert_eq!(outputs.columns.len(), 1);
        let Column::Numeric(labels) = &outputs.columns[0].column else {
            panic!("numeric");
        };
        assert_eq!(labels.values, [3.0]);
        assert_eq!(
            labels.quality.invalid, 1,
            "a string in a numeric output is invalid"
        );
    }
}
