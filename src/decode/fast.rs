//! A scanner for the payloads producers send most: flat records of numbers and plain strings,
//! one at a time, in an array, or under `{"records": [...]}`.
//!
//! It is tried before the general decoder and gives up (returns `false`) on anything it does
//! not handle itself: nested values (a `"features"` object included), escapes in strings, a
//! number in a categorical feature, a number out of range, a negative `ts`, invalid
//! JSON, and every error case. The general decoder then decodes the payload from scratch, so
//! the scanner only has to be right about what it accepts: the same cells and times the
//! general decoder would produce (a property test checks the two against the tree decoder).

use super::batch::{BatchDecoder, RecordBatch, Slot, Truth};
use super::lex::Cursor;
use super::message::parse_time_ms;
use super::number::Number;
use super::FeatureKind;

/// Decodes `payload` (already checked to be UTF-8) into `batch` (already cleared) when it has
/// the common shape. On `false` the batch holds partial results and must be cleared.
pub(super) fn decode(decoder: &BatchDecoder, payload: &[u8], batch: &mut RecordBatch) -> bool {
    let mut scanner = Scanner {
        cursor: Cursor::at(payload, 0),
        decoder,
        batch,
        guess: 0,
    };
    scanner.payload().is_some() && !scanner.batch.is_empty()
}

struct Scanner<'a> {
    cursor: Cursor<'a>,
    decoder: &'a BatchDecoder,
    batch: &'a mut RecordBatch,
    guess: usize,
}

/// What a scalar value is, with its text span in the payload.
enum Scalar {
    Null,
    Bool(bool),
    /// A number: its span, how it is written, and its digits.
    Number(Number),
    /// A string without escapes: the span between the quotes.
    Text {
        start: usize,
        end: usize,
    },
}

impl<'a> Scanner<'a> {
    fn payload(&mut self) -> Option<()> {
        self.cursor.ws();
        match self.cursor.peek()? {
            b'[' => self.records()?,
            b'{' => {
                let start = self.cursor.pos;
                self.cursor.pos += 1;
                self.cursor.ws();
                let (key_start, key_end) = self.cursor.string()?;
                if &self.cursor.bytes[key_start..key_end] == b"records" {
                    self.cursor.colon()?;
                    self.records()?;
                    self.cursor.ws();
                    self.cursor.expect(b'}')?;
                } else {
                    self.cursor.pos = start;
                    self.record()?;
                }
            }
            _ => return None,
        }
        self.cursor.ws();
        (self.cursor.pos == self.cursor.bytes.len()).then_some(())
    }

    /// `[record, ...]`
    fn records(&mut self) -> Option<()> {
        self.cursor.expect(b'[')?;
        self.cursor.ws();
        if self.cursor.peek()? == b']' {
            return None;
        }
        loop {
            self.record()?;
            self.cursor.ws();
            match self.cursor.next()? {
                b',' => self.cursor.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// `{"name": scalar, ...}`
    fn record(&mut self) -> Option<()> {
        self.cursor.expect(b'{')?;
        self.batch.begin_record();
        self.guess = 0;
        let record = self.batch.len() - 1;
        self.cursor.ws();
        if self.cursor.peek()? == b'}' {
            self.cursor.pos += 1;
            return Some(());
        }
        loop {
            // The expected feature's key, or any other key's span.
            let key = match self.expected_key() {
                Some(i) => Ok(i),
                None => Err(self.cursor.string()?),
            };
            self.cursor.colon()?;
            let value = self.scalar()?;
            match key {
                Ok(i) => self.feature(record, i, value)?,
                Err((start, end)) => self.field(record, &self.cursor.bytes[start..end], value)?,
            }
            self.cursor.ws();
            match self.cursor.next()? {
                b',' => self.cursor.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn field(&mut self, record: usize, key: &[u8], value: Scalar) -> Option<()> {
        match key {
            b"ts" => {
                let time = match value {
                    // Negative times take the general decoder's path (`-0` is a float there).
                    Scalar::Number(n) if n.negative => return None,
                    // Beyond u64, serde_json reads a float: no time, as for fractions.
                    Scalar::Number(n) if n.integer => n
                        .unsigned(self.cursor.bytes)
                        .and_then(|m| i64::try_from(m).ok()),
                    Scalar::Number(_) | Scalar::Null | Scalar::Bool(_) => None,
                    Scalar::Text { start, end } => parse_time_ms(self.text(start, end)).ok(),
                };
                self.batch.set_time(record, time);
            }
            b"prediction" | b"label" => {
                let truth = match value {
                    Scalar::Null => None,
                    Scalar::Bool(b) => Some(Truth::Bool(b)),
                    Scalar::Number(number) => {
                        let value = number.value(self.cursor.bytes)?;
                        if value.is_infinite() {
                            return None;
                        }
                        Some(Truth::Number(value))
                    }
                    Scalar::Text { start, end } => {
                        let (start, end) = self.batch.push_text(self.text(start, end));
                        Some(Truth::Text(start, end))
                    }
                };
                self.batch
                    .set_truth(record, usize::from(key == b"label"), truth);
            }
            // A scalar `features` is ignored; an object is not scanned here.
            b"features" => {}
            _ => match self.decoder.position(key, &mut self.guess) {
                Some(i) => self.feature(record, i, value)?,
                // The value of an unknown field is only checked to be JSON, as the general
                // decoder does.
                None => self
                    .batch
                    .push_unknown(record, std::str::from_utf8(key).ok()?),
            },
        }
        Some(())
    }

    /// The field of feature `i`, whose key was read.
    fn feature(&mut self, record: usize, i: usize, value: Scalar) -> Option<()> {
        let slot = match value {
            Scalar::Null => Slot::Missing,
            Scalar::Bool(b) => Slot::Bool(b),
            Scalar::Text { start, end } => {
                let text = self.batch.push_text(self.text(start, end));
                Slot::Text(text.0, text.1)
            }
            Scalar::Number(number) => {
                if self.decoder.kind(i) == FeatureKind::Categorical {
                    // Its label is the number as serde_json writes it.
                    return None;
                }
                let value = number.value(self.cursor.bytes)?;
                if value.is_infinite() {
                    // Out of range: an error for the general decoder to word.
                    return None;
                }
                let text = if self.decoder.keeps_number_text() {
                    self.batch.push_text(self.text(number.start, number.end))
                } else {
                    (0, 0)
                };
                Slot::Number { value, text }
            }
        };
        self.batch.set_slot(record, i, slot);
        Some(())
    }

    /// Reads the key of the feature expected next (the one after the previous field's, as
    /// records of a stream usually list their fields in the schema's order) when it comes next
    /// as written in the schema; which feature it is.
    fn expected_key(&mut self) -> Option<usize> {
        let i = self.guess;
        let name = self.decoder.plain_name(i)?;
        self.cursor.quoted(name).then(|| {
            self.guess = i + 1;
            i
        })
    }

    fn scalar(&mut self) -> Option<Scalar> {
        match self.cursor.peek()? {
            b'"' => {
                let (start, end) = self.cursor.string()?;
                Some(Scalar::Text { start, end })
            }
            b't' => self.cursor.literal(b"true").map(|()| Scalar::Bool(true)),
            b'f' => self.cursor.literal(b"false").map(|()| Scalar::Bool(false)),
            b'n' => self.cursor.literal(b"null").map(|()| Scalar::Null),
            b'-' | b'0'..=b'9' => self.cursor.number().map(Scalar::Number),
            _ => None,
        }
    }

    fn text(&self, start: usize, end: usize) -> &'a str {
        // Spans are cut at ASCII delimiters of a payload checked to be UTF-8.
        std::str::from_utf8(&self.cursor.bytes[start..end]).unwrap_or_default()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Cell, FeatureSpec, Schema};

    fn decoder() -> BatchDecoder {
        BatchDecoder::new(&Schema {
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
        })
    }

    fn scan(payload: &str) -> Option<RecordBatch> {
        let mut batch = RecordBatch::new();
        batch.clear(2);
        decode(&decoder(), payload.as_bytes(), &mut batch).then_some(batch)
    }

    #[test]
    fn issue_21_a_number_out_of_range_is_one_wrong_value_not_a_lost_batch() {
        let payload = b"[{\"x\": 1}, {\"x\": 1e400, \"c\": -1E+999}, {\"x\": 2}]";
        let mut batch = RecordBatch::new();
        decoder().decode(payload, &mut batch).unwrap();
        assert_eq!(batch.len(), 3);
        let cells: Vec<Vec<Cell<'_>>> = (0..3).map(|i| batch.record(i).cells().collect()).collect();
        assert!(matches!(cells[0][0], Cell::Number { value, .. } if value == 1.0));
        assert_eq!(cells[1][0], Cell::Text("1e400"), "a wrong-typed value");
        assert_eq!(cells[1][1], Cell::Text("-1E+999"));
        assert!(matches!(cells[2][0], Cell::Number { value, .. } if value == 2.0));
        let records = crate::decode::decode_payload(payload).unwrap();
        assert_eq!(records[1]["x"], "1e400", "the tree decoder agrees");
    }

    #[test]
    fn takes_the_common_shapes() {
        for payload in [
            r#"{"x": 1.5, "c": "a", "ts": 1700000000000}"#,
            r#"[{"x": 1.5, "c": "a"}, {"x": -2e3, "c": null, "other": true}]"#,
            " {\"records\" :\n [ {\"x\":\"3\"} ] } ",
            r#"{"x": 0, "c": "é", "prediction": 1, "label": "a", "ts": "2023-11-14T22:13:20Z"}"#,
        ] {
            assert!(scan(payload).is_some(), "{payload}");
        }
        let batch = scan(r#"[{"x": 1.5, "c": "a", "ts": 7}, {"x": -2e3, "zz": 1}]"#).unwrap();
        assert_eq!(batch.len(), 2);
        let first = batch.record(0);
        assert_eq!(first.event_time_ms(), Some(7));
        assert_eq!(
            first.cells().collect::<Vec<_>>()[1],
            Cell::Text("a"),
            "labels are kept"
        );
        let second = batch.record(1);
        assert!(
            matches!(second.cells().next(), Some(Cell::Number { value, .. }) if value == -2000.0)
        );
        assert_eq!(second.cells().nth(1), Some(Cell::Missing));
        assert_eq!(second.unknown_fields().collect::<Vec<_>>(), ["zz"]);
    }

    #[test]
    fn leaves_everything_else_to_the_general_decoder() {
        for payload in [
            // Not JSON numbers, though Rust's float parser takes some of them.
            r#"{"x": 1.}"#,
            r#"{"x": .5}"#,
            r#"{"x": 01}"#,
            r#"{"x": +1}"#,
            r#"{"x": -}"#,
            r#"{"x": 1e}"#,
            r#"{"x": 1e400}"#,
            r#"{"x": NaN}"#,
            // Escapes and raw control characters.
            r#"{"x": 1, "c": "a\"b"}"#,
            "{\"x\": 1, \"c\": \"a\u{1}b\"}",
            // Trailing data, structure errors, empty batches.
            r#"{"x": 1} x"#,
            r#"{"x": 1,}"#,
            r#"[{"x": 1},]"#,
            r#"[]"#,
            r#"{"records": []}"#,
            r#"{"records": [{"x": 1}], "y": 2}"#,
            r#"{}"#,
            // Nested values, numbers as labels, negative event times.
            r#"{"features": {"x": 1}}"#,
            r#"{"x": [1]}"#,
            r#"{"c": 5}"#,
            r#"{"x": 1, "ts": -5}"#,
        ] {
            assert!(scan(payload).is_none(), "{payload}");
        }
    }

    proptest::proptest! {
        #[test]
        fn numbers_are_read_exactly_as_the_standard_parser_reads_them(
            negative in proptest::bool::ANY,
            whole in "0|[1-9][0-9]{0,20}",
            fraction in proptest::option::of("[0-9]{1,20}"),
            exponent in proptest::option::of(-40i32..40),
        ) {
            let mut text = format!("{}{whole}", if negative { "-" } else { "" });
            if let Some(fraction) = fraction {
                text += &format!(".{fraction}");
            }
            if let Some(exponent) = exponent {
                text += &format!("e{exponent}");
            }
            let batch = scan(&format!(r#"{{"x": {text}}}"#)).expect("a plain number");
            let Some(Cell::Number { value, .. }) = batch.record(0).cells().next() else {
                panic!("not a number");
            };
            let expected: f64 = text.parse().unwrap();
            proptest::prop_assert_eq!(value.to_bits(), expected.to_bits(), "{}", text);
        }
    }
}
