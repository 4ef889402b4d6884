//! Flat JSON lines read straight into a data set's columns: the file reader's path for the
//! lines nearly every JSONL file holds.
//!
//! A line is taken when it is one object whose fields are numbers in numeric features, plain
//! strings (no escapes) in categorical ones, `null`s, reserved fields with the scalar values the
//! fast scanner takes, and fields the schema lacks with scalar values. Anything else (arrays,
//! nested objects, escapes, a number in a categorical feature, a string in a numeric one, a
//! repeated key, an empty object, invalid JSON) leaves the data set as it was and the line to the
//! [`BatchDecoder`](super::BatchDecoder), which reads every line. What a line taken here adds is
//! what that decoder's record adds through [`Dataset::push_record`] (a property test holds the
//! two to it).

use super::lex::Cursor;
use super::{Column, Dataset, FeatureSpec, LabelCounts};

/// Reads flat lines of one text into a data set.
pub(crate) struct FlatLines<'t> {
    /// Feature names as a record writes them, when that needs no escapes; reserved names and
    /// names with escapes are `None` (only the general lookup finds them).
    names: Vec<Option<&'t [u8]>>,
    labels: Vec<LabelCounts<'t>>,
    line: Line<'t>,
}

/// What the line being read added so far, to undo it or complete it.
#[derive(Default)]
struct Line<'t> {
    /// What each feature got.
    got: Vec<Got>,
    /// Features that got something.
    seen: usize,
    /// Labels, added once the line is taken.
    labels: Vec<(usize, &'t str)>,
    /// Fields the schema lacks, counted once the line is taken.
    unknown: Vec<&'t str>,
}

/// What a feature got from the line being read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Got {
    /// Nothing yet.
    #[default]
    Nothing,
    /// A value, pushed to its numeric column.
    Number,
    /// A label, pending.
    Label,
    /// A `null`, counted as missing.
    Null,
}

/// A scalar value as read.
enum Value<'t> {
    Null,
    Bool,
    Number { value: f64, negative: bool },
    Text(&'t str),
}

impl<'t> FlatLines<'t> {
    /// A reader into data sets whose schema has these features.
    pub(crate) fn new(features: &'t [FeatureSpec]) -> FlatLines<'t> {
        let names = features
            .iter()
            .map(|f| super::batch::plain(&f.name).then_some(f.name.as_bytes()))
            .collect();
        FlatLines {
            names,
            labels: features.iter().map(|_| LabelCounts::default()).collect(),
            line: Line {
                got: vec![Got::Nothing; features.len()],
                ..Line::default()
            },
        }
    }

    /// Adds `line` (without its line end) to `part` when it is a flat record; false, with
    /// `part` as it was, when it is not.
    pub(crate) fn read(&mut self, line: &'t str, part: &mut Dataset) -> bool {
        let taken = self.fields(line, part).is_some();
        if taken {
            self.take(part);
        } else {
            self.undo(part);
        }
        taken
    }

    /// Adds the labels counted to `part`'s categorical columns.
    pub(crate) fn finish(self, part: &mut Dataset) {
        super::add_label_counts(&mut part.columns, self.labels);
    }

    fn fields(&mut self, line: &'t str, part: &mut Dataset) -> Option<()> {
        let mut reader = Reader {
            text: line,
            cursor: Cursor::at(line.as_bytes(), 0),
        };
        reader.cursor.ws();
        reader.cursor.expect(b'{')?;
        let mut expected = 0;
        let mut first = true;
        loop {
            reader.cursor.ws();
            let mut key_is_ts = false;
            let feature = match self.names.get(expected).copied().flatten() {
                Some(name) if reader.cursor.quoted(name) => Some(expected),
                _ => {
                    let key = reader.string()?;
                    key_is_ts = key == "ts";
                    self.other_key(key, first, part)?
                }
            };
            first = false;
            reader.cursor.colon()?;
            let value = reader.value()?;
            match feature {
                Some(i) => {
                    self.feature(i, value, part)?;
                    expected = i + 1;
                }
                None => kept_out(key_is_ts, value)?,
            }
            reader.cursor.ws();
            match reader.cursor.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        reader.cursor.ws();
        (reader.cursor.pos == reader.cursor.bytes.len()).then_some(())
    }

    /// A key other than the expected feature's: another feature's position, `None` for a
    /// reserved field or one the schema lacks (noted), nothing for keys left to the decoder.
    fn other_key(&mut self, key: &'t str, first: bool, part: &Dataset) -> Option<Option<usize>> {
        match key {
            // An object of records, or nested features.
            "records" if first => None,
            "features" => None,
            "ts" | "prediction" | "label" => Some(None),
            _ => match part.position(key) {
                Some(i) => Some(Some(i)),
                None => {
                    self.line.unknown.push(key);
                    Some(None)
                }
            },
        }
    }

    /// The value of feature `i`.
    fn feature(&mut self, i: usize, value: Value<'t>, part: &mut Dataset) -> Option<()> {
        let got = self.line.got.get_mut(i)?;
        if *got != Got::Nothing {
            return None; // a repeated key: the last value wins, as the decoder has it
        }
        *got = match (&mut part.columns[i], value) {
            (column, Value::Null) => {
                quality(column).missing += 1;
                Got::Null
            }
            (Column::Numeric(numbers), Value::Number { value, .. }) if value.is_finite() => {
                numbers.values.push(value);
                Got::Number
            }
            (Column::Categorical(_), Value::Text(label)) => {
                self.line.labels.push((i, label));
                Got::Label
            }
            _ => return None,
        };
        self.line.seen += 1;
        Some(())
    }

    /// Completes the line read: its labels, absent features and unknown fields.
    fn take(&mut self, part: &mut Dataset) {
        part.records += 1;
        let line = &mut self.line;
        for (i, label) in line.labels.drain(..) {
            *self.labels[i].entry(label).or_insert(0) += 1;
        }
        if line.seen < part.columns.len() {
            for (column, got) in part.columns.iter_mut().zip(&line.got) {
                if *got == Got::Nothing {
                    quality(column).missing += 1;
                }
            }
        }
        for name in line.unknown.drain(..) {
            match part.unknown_fields.get_mut(name) {
                Some(count) => *count += 1,
                None => {
                    part.unknown_fields.insert(name.to_string(), 1);
                }
            }
        }
        line.got.fill(Got::Nothing);
        line.seen = 0;
    }

    /// Takes back what the line added.
    fn undo(&mut self, part: &mut Dataset) {
        let line = &mut self.line;
        for (column, got) in part.columns.iter_mut().zip(&mut line.got) {
            match (column, *got) {
                (Column::Numeric(numbers), Got::Number) => {
                    numbers.values.pop();
                }
                (column, Got::Null) => quality(column).missing -= 1,
                _ => {}
            }
            *got = Got::Nothing;
        }
        line.seen = 0;
        line.labels.clear();
        line.unknown.clear();
    }
}

/// A reserved field's value or that of a field the schema lacks: read, not kept. The values the
/// fast scanner leaves to the general decoder (a negative `ts`, a number out of range) are left
/// to it here too.
fn kept_out(ts: bool, value: Value<'_>) -> Option<()> {
    match value {
        Value::Number { negative: true, .. } if ts => None,
        Value::Number { value, .. } if value.is_infinite() => None,
        _ => Some(()),
    }
}

fn quality(column: &mut Column) -> &mut super::QualityCounts {
    match column {
        Column::Numeric(c) => &mut c.quality,
        Column::Categorical(c) => &mut c.quality,
    }
}

/// A position in a line, and the line.
struct Reader<'t> {
    text: &'t str,
    cursor: Cursor<'t>,
}

impl<'t> Reader<'t> {
    /// A string without escapes or control characters; its text between the quotes.
    fn string(&mut self) -> Option<&'t str> {
        let (start, end) = self.cursor.string()?;
        self.text.get(start..end)
    }

    /// A scalar value.
    fn value(&mut self) -> Option<Value<'t>> {
        if self.cursor.peek()? == b'"' {
            return self.string().map(Value::Text);
        }
        let cursor = &mut self.cursor;
        match cursor.peek()? {
            b'-' | b'0'..=b'9' => {
                let number = cursor.number()?;
                Some(Value::Number {
                    value: number.value(cursor.bytes)?,
                    negative: number.negative,
                })
            }
            b't' => cursor.literal(b"true").map(|()| Value::Bool),
            b'f' => cursor.literal(b"false").map(|()| Value::Bool),
            b'n' => cursor.literal(b"null").map(|()| Value::Null),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{BatchDecoder, RecordBatch, Schema};
    use proptest::prelude::*;

    fn schema() -> Schema {
        use FeatureKind::{Categorical, Numeric};
        Schema::of(&[
            ("x", Numeric),
            ("y", Numeric),
            ("c", Categorical),
            ("ts", Numeric),
        ])
    }

    use super::super::FeatureKind;

    fn field() -> impl Strategy<Value = String> {
        let keys = prop::sample::select(vec![
            "x",
            "y",
            "c",
            "ts",
            "prediction",
            "label",
            "other",
            "features",
            "records",
            "x\\u0041",
        ]);
        let values = prop::sample::select(vec![
            "1",
            "-2.5e3",
            "0.125",
            "1e400",
            "-7",
            "\"a\"",
            "\"b\"",
            "\"\"",
            "\"é\"",
            "\"b\\n\"",
            "null",
            "true",
            "[1]",
            "{}",
            "{\"x\": 1}",
            "\"3\"",
            "-0",
            "01",
            "1.",
            "\"2023-11-14T22:13:20Z\"",
        ]);
        (keys, values, prop::sample::select(vec!["", " ", "\t"]))
            .prop_map(|(key, value, space)| format!("{space}\"{key}\"{space}:{space}{value}"))
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::collection::vec(field(), 0..6).prop_map(|fields| format!("{{{}}}", fields.join(","))),
            1 => Just(r#"{"x": 1, "y": 2, "c": "a"}"#.to_string()),
            1 => Just(r#"[{"x": 1}]"#.to_string()),
            1 => Just(r#"{"x": 1} x"#.to_string()),
            1 => Just(r#"{"x": 1,}"#.to_string()),
        ]
    }

    /// The lines through the decoder alone, and through the flat reader first: the same data set.
    fn both(lines: &[String]) -> (Dataset, Dataset, usize) {
        let schema = schema();
        let decoder = BatchDecoder::new(&schema);
        let mut batch = RecordBatch::new();
        let mut expected = Dataset::new(schema.clone());
        let mut got = Dataset::new(schema.clone());
        let mut flat = FlatLines::new(&schema.features);
        let mut taken = 0;
        for line in lines {
            if decoder.decode(line.as_bytes(), &mut batch).is_ok() {
                (0..batch.len()).for_each(|i| expected.push_record(batch.record(i)));
            }
            if flat.read(line, &mut got) {
                taken += 1;
            } else if decoder.decode(line.as_bytes(), &mut batch).is_ok() {
                (0..batch.len()).for_each(|i| got.push_record(batch.record(i)));
            }
        }
        flat.finish(&mut got);
        (expected, got, taken)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_line_taken_adds_what_the_decoder_adds(lines in prop::collection::vec(line(), 1..12)) {
            let (expected, got, _) = both(&lines);
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn the_usual_lines_are_taken_and_the_rest_left() {
        let lines = [
            r#"{"x": 1.5, "y": -2, "c": "a", "ts": 1700000000000, "other": "z"}"#,
            r#"{"c":"b","x":3,"prediction":0.5,"label":"yes"}"#,
            r#"{"x": null, "y": 1}"#,
            r#"{"x": 1, "x": 2}"#,
            r#"{"x": 1, "c": 5}"#,
            r#"{"x": "1"}"#,
            r#"{"features": {"x": 1}}"#,
            r#"{"x": 1, "ts": -5}"#,
            r#"{}"#,
        ]
        .map(String::from);
        let (expected, got, taken) = both(&lines);
        assert_eq!(got, expected);
        assert_eq!(taken, 3, "the first three lines are flat");
        let Column::Categorical(labels) = &got.columns[2] else {
            panic!("categorical");
        };
        assert_eq!(labels.counts.get("a"), Some(&1));
        assert_eq!(got.unknown_fields.get("other"), Some(&1));
    }
}
