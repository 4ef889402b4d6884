//! The JSON parser's visitors: a payload's shape (a record, an array of them, or
//! `{"records": [...]}`), each record's fields into the batch's cells, labels, predictions and
//! event times; everything else skipped without building values.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::message::parse_time_ms;
use super::{BatchDecoder, RecordBatch, Slot, Truth};
use crate::decode::FeatureKind;

/// What the payload turned out to be, when it is valid JSON.
/// Parses one payload into `batch`; returns its shape.
pub(super) fn parse(
    decoder: &BatchDecoder,
    payload: &[u8],
    batch: &mut RecordBatch,
) -> Result<Shape, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let mut state = State {
        decoder,
        batch,
        key: String::new(),
        guess: 0,
    };
    let shape = deserializer.deserialize_any(PayloadVisitor(&mut state))?;
    deserializer.end()?;
    Ok(shape)
}

/// What a payload turned out to be.
pub(super) enum Shape {
    Records,
    NotARecord(&'static str),
    BadElement { index: usize, found: &'static str },
}

struct State<'s> {
    decoder: &'s BatchDecoder,
    batch: &'s mut RecordBatch,
    /// The current key, reused.
    key: String,
    /// Where the next feature name is expected in the schema.
    guess: usize,
}

impl State<'_> {
    fn begin_record(&mut self) {
        self.batch.begin_record();
        self.guess = 0;
    }

    /// Reads one field's value into the current record: a feature's cell, an unknown field, or
    /// (at the top level) `ts` and the other reserved fields.
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        top_level: bool,
        nested_seen: &mut bool,
    ) -> Result<(), A::Error> {
        let record = self.batch.times.len() - 1;
        if top_level {
            match self.key.as_str() {
                "ts" => {
                    let time = map.next_value_seed(TimeSeed)?;
                    self.batch.times[record] = time;
                    return Ok(());
                }
                "features" => {
                    return map.next_value_seed(NestedSeed {
                        state: self,
                        nested_seen,
                    });
                }
                "prediction" | "label" => {
                    let which = usize::from(self.key == "label");
                    let truth = map.next_value_seed(TruthSeed(self.batch))?;
                    self.batch.set_truth(record, which, truth);
                    return Ok(());
                }
                _ if *nested_seen => return map.next_value::<IgnoredAny>().map(drop),
                _ => {}
            }
        }
        match self.decoder.position(self.key.as_bytes(), &mut self.guess) {
            Some(i) => {
                let kind = self.decoder.kinds[i];
                let slot = map.next_value_seed(CellSeed {
                    batch: self.batch,
                    kind,
                })?;
                self.batch.slots[record * self.batch.width + i] = slot;
            }
            None => {
                map.next_value::<IgnoredAny>()?;
                let (start, end) = self.batch.push_text(&self.key);
                self.batch.unknown.push((record, start, end));
            }
        }
        Ok(())
    }

    /// Reads the rest of a record whose first key is already in `self.key`.
    fn record_fields<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        mut nested_seen: bool,
    ) -> Result<(), A::Error> {
        loop {
            self.field(map, true, &mut nested_seen)?;
            if map.next_key_seed(KeySeed(&mut self.key))?.is_none() {
                return Ok(());
            }
        }
    }
}

/// The payload: an object (a record, or `{"records": [...]}`), an array of records, or
/// something else.
struct PayloadVisitor<'a, 's>(&'a mut State<'s>);

impl<'de> Visitor<'de> for PayloadVisitor<'_, '_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let state = self.0;
        if map.next_key_seed(KeySeed(&mut state.key))?.is_none() {
            // `{}`: one record without fields.
            state.begin_record();
            return Ok(Shape::Records);
        }
        if state.key != "records" {
            state.begin_record();
            state.record_fields(&mut map, false)?;
            return Ok(Shape::Records);
        }
        // `{"records": ...}`: a batch when it is an array and the only field; otherwise
        // `records` is an ordinary field of a single record.
        let records_kind = state.decoder.kind_of("records");
        let (slot, more) = match map.next_value_seed(RecordsSeed {
            state: &mut *state,
            kind: records_kind,
        })? {
            RecordsField::Batch(error) => {
                if map.next_key_seed(KeySeed(&mut state.key))?.is_none() {
                    return Ok(error.unwrap_or(Shape::Records));
                }
                state.batch.clear(state.decoder.names.len());
                (Slot::Nested, true)
            }
            RecordsField::Value(slot) => {
                let more = map.next_key_seed(KeySeed(&mut state.key))?.is_some();
                (slot, more)
            }
        };
        state.begin_record();
        match state.decoder.position(b"records", &mut state.guess) {
            Some(i) => state.batch.slots[i] = slot,
            None => {
                let (start, end) = state.batch.push_text("records");
                state.batch.unknown.push((0, start, end));
            }
        }
        if more {
            state.record_fields(&mut map, false)?;
        }
        Ok(Shape::Records)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let error = read_records(self.0, &mut seq)?;
        Ok(error.unwrap_or(Shape::Records))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::NotARecord("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::NotARecord("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::NotARecord("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::NotARecord("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::NotARecord("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::NotARecord("null"))
    }
}

/// Reads the elements of a batch array as records. Returns the first element that is not an
/// object, after reading the whole array (invalid JSON later on takes precedence).
fn read_records<'de, A: SeqAccess<'de>>(
    state: &mut State<'_>,
    seq: &mut A,
) -> Result<Option<Shape>, A::Error> {
    let mut first_error = None;
    let mut index = 0;
    while let Some(found) = seq.next_element_seed(RecordSeed(&mut *state))? {
        if let (Some(found), None) = (found, &first_error) {
            first_error = Some(Shape::BadElement { index, found });
        }
        index += 1;
    }
    Ok(first_error)
}

/// One element of a batch: a record, or the name of what it is instead.
struct RecordSeed<'a, 's>(&'a mut State<'s>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let state = self.0;
        state.begin_record();
        if map.next_key_seed(KeySeed(&mut state.key))?.is_some() {
            state.record_fields(&mut map, false)?;
        }
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Some("an array"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
}

/// The value of a leading `"records"` key: a batch when it is an array, else a field value.
enum RecordsField {
    Batch(Option<Shape>),
    Value(Slot),
}

struct RecordsSeed<'a, 's> {
    state: &'a mut State<'s>,
    /// The kind of a feature named `records`, if there is one.
    kind: FeatureKind,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = RecordsField;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = RecordsField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a batch of records or a value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        read_records(self.state, &mut seq).map(RecordsField::Batch)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.cell().visit_map(map).map(RecordsField::Value)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.cell().visit_bool(v).map(RecordsField::Value)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.cell().visit_i64(v).map(RecordsField::Value)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.cell().visit_u64(v).map(RecordsField::Value)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.cell().visit_f64(v).map(RecordsField::Value)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.cell().visit_str(v).map(RecordsField::Value)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.cell().visit_unit().map(RecordsField::Value)
    }
}

impl<'a> RecordsSeed<'a, '_> {
    fn cell(self) -> CellSeed<'a> {
        CellSeed {
            batch: &mut *self.state.batch,
            kind: self.kind,
        }
    }
}

/// A field value for a feature of a known kind.
struct CellSeed<'a> {
    batch: &'a mut RecordBatch,
    kind: FeatureKind,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Slot;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl CellSeed<'_> {
    /// A number; its written form is kept only for categorical features, which use it as the
    /// label (written as `serde_json` writes numbers, like the tree decoder).
    fn number(self, value: f64, written: impl fmt::Display) -> Slot {
        let text = match self.kind {
            FeatureKind::Numeric => (0, 0),
            FeatureKind::Categorical => {
                use std::fmt::Write;
                let start = self.batch.text.len();
                let _ = write!(self.batch.text, "{written}");
                (start, self.batch.text.len())
            }
        };
        Slot::Number { value, text }
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a feature value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Slot, E> {
        Ok(Slot::Missing)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Slot, E> {
        Ok(Slot::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Slot, E> {
        Ok(self.number(v as f64, v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Slot, E> {
        Ok(self.number(v as f64, v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Slot, E> {
        match serde_json::Number::from_f64(v) {
            Some(number) => Ok(self.number(v, number)),
            None => Ok(self.number(v, v)),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot, E> {
        let (start, end) = self.batch.push_text(v);
        Ok(Slot::Text(start, end))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot, A::Error> {
        skip_seq(seq)?;
        Ok(Slot::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot, A::Error> {
        skip_map(map)?;
        Ok(Slot::Nested)
    }
}

/// The `"features"` field: when it is an object, its fields are the record's features and the
/// top-level fields are not.
struct NestedSeed<'a, 's> {
    state: &'a mut State<'s>,
    nested_seen: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        state.batch.reset_record();
        *self.nested_seen = true;
        state.guess = 0;
        let mut nested = true;
        while map.next_key_seed(KeySeed(&mut state.key))?.is_some() {
            state.field(&mut map, false, &mut nested)?;
        }
        Ok(())
    }

    // Anything else is not a features object and is ignored, like the other reserved fields.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `"prediction"` and `"label"`: a scalar, or nothing.
struct TruthSeed<'a>(&'a mut RecordBatch);

impl<'de> DeserializeSeed<'de> for TruthSeed<'_> {
    type Value = Option<Truth>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TruthSeed<'_> {
    type Value = Option<Truth>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a prediction or label")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Truth::Number(v as f64)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Truth::Number(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Truth::Number(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let (start, end) = self.0.push_text(v);
        Ok(Some(Truth::Text(start, end)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Truth::Bool(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| None)
    }
}

/// `"ts"`: epoch milliseconds or RFC 3339; anything else reads as no time.
struct TimeSeed;

impl<'de> DeserializeSeed<'de> for TimeSeed {
    type Value = Option<i64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a time")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).ok())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(parse_time_ms(v).ok())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| None)
    }
}

/// An object key, written into a reused buffer.
struct KeySeed<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}
