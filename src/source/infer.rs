//! A file's features and their kinds, inferred from its first [`INFERENCE_RECORDS`] records.
//!
//! The head of the file is read in [`Blocks`], each block's lines split among the cores. A share
//! notes, for every field, the record (and place in it) where the field first appears and the
//! first record where it holds a label. Shares are then put together in file
//! order with their record offsets, so the result is what one pass over the first records would
//! infer: the features in order of first appearance, numeric unless a label turns up. A CSV file
//! that is not plain (see [`super::csv_blocks`]) is read by the `csv` crate instead.

use std::collections::HashMap;
use std::path::Path;

use super::blocks::{each_line, Blocks, Input, Sizes, HEAD_SIZES};
use super::file::{DataFormat, Skipped};
use crate::decode::{
    decode_payload, record_features, BatchDecoder, Cell, DecodeError, FeatureKind, FeatureSpec,
    RecordBatch, Schema, RESERVED_FIELDS,
};

/// Records read to infer feature kinds when no schema is given.
pub const INFERENCE_RECORDS: u64 = 10_000;

/// The schema of a JSONL file, or of a plain CSV file (`None` for a CSV file that is not).
pub(super) fn infer(
    path: &Path,
    format: DataFormat,
    input: Input<'_>,
    skip_invalid: bool,
) -> Result<Option<Schema>, DecodeError> {
    infer_in(
        path,
        format,
        input,
        skip_invalid,
        (HEAD_SIZES, INFERENCE_RECORDS),
    )
}

fn infer_in(
    path: &Path,
    format: DataFormat,
    input: Input<'_>,
    skip_invalid: bool,
    (sizes, cut): (Sizes, u64),
) -> Result<Option<Schema>, DecodeError> {
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut blocks = Blocks::new(input, sizes);
    let mut head = Head {
        cut,
        ..Head::default()
    };
    let mut csv_names = None;
    while head.records <= cut {
        let Some(mut block) = blocks.next_lines().map_err(io)? else {
            break;
        };
        if format == DataFormat::Csv && csv_names.is_none() {
            let Some((end, names)) = super::csv_blocks::header(block) else {
                return Ok(None);
            };
            block = &block[end..];
            head.lines += 1;
            csv_names = Some(names);
        }
        if !head.read(path, block, csv_names.as_deref(), skip_invalid, sizes)? {
            return Ok(None);
        }
    }
    head.schema(path).map(Some)
}

/// The first `n` lines of `text` (all of it when it has fewer), and the rest.
fn first_lines(text: &[u8], n: u64) -> (&[u8], &[u8]) {
    let nth = usize::try_from(n - 1).unwrap_or(usize::MAX);
    let end = memchr::memchr_iter(b'\n', text)
        .nth(nth)
        .map_or(text.len(), |at| at + 1);
    text.split_at(end)
}

/// Where a field turned up in the head of a file.
#[derive(Debug, Clone, Copy)]
struct Field {
    /// The record it first appears in, and its place among that record's fields.
    first: (u64, usize),
    /// The first record where it holds a label (a string or a boolean): it is categorical if
    /// that is before the cut.
    label: Option<u64>,
}

/// What one share of lines saw, records numbered from the share's start.
#[derive(Debug, Default)]
struct Seen {
    records: u64,
    lines: u64,
    fields: HashMap<String, Field>,
    /// The first malformed line (when they are not skipped): its number in the share, the
    /// records before it in the share, the reason.
    malformed: Option<(u64, u64, String)>,
    /// The records before the first CSV row without the header's number of fields.
    irregular: Option<u64>,
}

impl Seen {
    /// A share of JSONL lines, up to `left` records (those before the cut, counted from the
    /// block's start). Once a record was decoded as JSON, lines are first decoded by the
    /// service's decoder with its fields as the schema: a line whose records hold no other
    /// field tells the same cells, in a fraction of the time. Any other line is decoded as JSON.
    fn jsonl(text: &[u8], skip_invalid: bool, left: u64) -> Seen {
        let mut seen = Seen::default();
        let mut known: Option<Known> = None;
        let mut batch = RecordBatch::new();
        let lines = each_line(text, |number, line| {
            if seen.records > left {
                return false;
            }
            if line.is_empty() {
                return true;
            }
            if let Some(known) = &mut known {
                if known.decode(line, &mut batch) {
                    for i in 0..batch.len() {
                        let record = seen.records;
                        seen.records += 1;
                        if record < left {
                            known.record(record, batch.record(i).cells());
                        }
                    }
                    return true;
                }
            }
            match decode_payload(line) {
                Ok(records) => records.iter().for_each(|record| {
                    let cells = record_features(record).map(|(n, v)| (n, Cell::from_json(v)));
                    seen.record(cells, left);
                    known.get_or_insert_with(|| Known::of(record));
                }),
                Err(_) if skip_invalid => {}
                Err(err) => {
                    seen.malformed = Some((number, seen.records, err.to_string()));
                    return false;
                }
            }
            true
        });
        seen.lines = lines;
        if let Some(known) = known {
            known.add_labels(&mut seen);
        }
        seen
    }

    /// A share of a plain CSV file's lines, up to `left` records; `None` at a line the `csv`
    /// crate must read. What [`Seen::record`] notes of each row's cells, by column: a column
    /// already known to hold a label is not looked at again.
    fn csv(text: &[u8], names: &[String], left: u64) -> Option<Seen> {
        std::str::from_utf8(text).ok()?;
        if !super::csv_blocks::plain(text) {
            return None;
        }
        let kept: Vec<bool> = (names.iter())
            .map(|name| !RESERVED_FIELDS.contains(&name.as_str()))
            .collect();
        let mut labels: Vec<Option<u64>> = vec![None; names.len()];
        let mut seen = Seen::default();
        seen.lines = each_line(text, |_, line| {
            if seen.records > left || line.is_empty() {
                return seen.records <= left;
            }
            if memchr::memchr_iter(b',', line).count() + 1 != names.len() {
                seen.irregular = Some(seen.records);
                return false;
            }
            let record = seen.records;
            seen.records += 1;
            if record < left {
                let fields = line.split(|b| *b == b',');
                for ((label, kept), field) in labels.iter_mut().zip(&kept).zip(fields) {
                    if label.is_none() && *kept && is_label(field) {
                        *label = Some(record);
                    }
                }
            }
            true
        });
        if seen.records.min(left) > 0 {
            let kept_names = (names.iter().zip(labels))
                .zip(kept)
                .filter(|(_, kept)| *kept);
            for (place, ((name, label), _)) in kept_names.enumerate() {
                let field = seen.fields.entry(name.clone()).or_insert(Field {
                    first: (0, place),
                    label: None,
                });
                field.label = earliest(field.label, label);
            }
        }
        Some(seen)
    }

    /// One record's fields, in order (only counted from the `left`-th on).
    fn record<'a>(&mut self, cells: impl Iterator<Item = (&'a str, Cell<'a>)>, left: u64) {
        let record = self.records;
        self.records += 1;
        if record >= left {
            return;
        }
        for (place, (name, cell)) in cells.enumerate() {
            let field = match self.fields.get_mut(name) {
                Some(field) => field,
                None => self.fields.entry(name.to_string()).or_insert(Field {
                    first: (record, place),
                    label: None,
                }),
            };
            if matches!(cell, Cell::Text(_) | Cell::Bool(_)) {
                field.label.get_or_insert(record);
            }
        }
    }
}

/// The fields of a share's first record, the decoder that reads them, and the first record
/// where each holds a label among the records that decoder read.
struct Known {
    names: Vec<String>,
    decoder: BatchDecoder,
    labels: Vec<Option<u64>>,
}

impl Known {
    fn of(record: &serde_json::Map<String, serde_json::Value>) -> Known {
        let names: Vec<String> = record_features(record)
            .map(|(n, _)| n.to_string())
            .collect();
        let features = (names.iter())
            .map(|name| FeatureSpec {
                name: name.clone(),
                kind: FeatureKind::Numeric,
            })
            .collect();
        let decoder = BatchDecoder::new(&Schema { features });
        let labels = vec![None; names.len()];
        Known {
            names,
            decoder,
            labels,
        }
    }

    /// Notes which fields of record number `record` hold a label. Its fields were all noted
    /// by the share before (the record the decoder was made from), so labels are all it tells.
    fn record<'a>(&mut self, record: u64, cells: impl Iterator<Item = Cell<'a>>) {
        for (label, cell) in self.labels.iter_mut().zip(cells) {
            if label.is_none() && matches!(cell, Cell::Text(_) | Cell::Bool(_)) {
                *label = Some(record);
            }
        }
    }

    /// Adds the labels noted to the share's fields.
    fn add_labels(self, seen: &mut Seen) {
        for (name, label) in self.names.iter().zip(self.labels) {
            if let Some(field) = seen.fields.get_mut(name) {
                field.label = earliest(field.label, label);
            }
        }
    }

    /// Decodes `line` into `batch`: true when it decodes and its records hold no field but
    /// the known ones (a numeric feature keeps a string or a boolean as such).
    fn decode(&self, line: &[u8], batch: &mut RecordBatch) -> bool {
        self.decoder.decode(line, batch).is_ok()
            && (0..batch.len()).all(|i| batch.record(i).unknown_fields().next().is_none())
    }
}

/// The shares put together in file order, records numbered from the file's start.
#[derive(Debug, Default)]
struct Head {
    /// Records looked at: those numbered below it.
    cut: u64,
    records: u64,
    lines: u64,
    fields: HashMap<String, Field>,
}

impl Head {
    /// Reads a block's lines up to the cut, on every core (CSV rows when `csv_names` are
    /// given); false when one pass would meet a CSV row that needs the `csv` crate's reader.
    fn read(
        &mut self,
        path: &Path,
        mut block: &[u8],
        csv_names: Option<&[String]>,
        skip_invalid: bool,
        sizes: Sizes,
    ) -> Result<bool, DecodeError> {
        while !block.is_empty() && self.records <= self.cut {
            // Lines enough for the records up to the cut (or more: a line may hold several).
            let left = self.cut - self.records;
            let (lines, rest) = first_lines(block, left + 1);
            block = rest;
            let shares = sizes.shares(lines);
            let seen = crate::parallel::map_in_order(&shares, |share| match csv_names {
                Some(names) => Seen::csv(share, names, left),
                None => Some(Seen::jsonl(share, skip_invalid, left)),
            });
            for share in seen {
                if !share.map_or(Ok(false), |share| self.add(path, share))? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Adds the next share: false when one pass would meet a CSV row that needs the `csv`
    /// crate's reader. A malformed line one pass would meet stops the inference.
    fn add(&mut self, path: &Path, share: Seen) -> Result<bool, DecodeError> {
        // One pass reads on until the record after the cut.
        let met = |before: u64| self.records + before <= self.cut;
        if share.irregular.is_some_and(met) {
            return Ok(false);
        }
        if let Some((line, before, message)) = share.malformed {
            if met(before) {
                let mut skipped = Skipped::default();
                skipped.handle(false, path, self.lines + line, message)?;
            }
        }
        if self.records > self.cut {
            return Ok(true);
        }
        let offset = self.records;
        for (name, field) in share.fields {
            let shifted = Field {
                first: (field.first.0 + offset, field.first.1),
                label: field.label.map(|r| r + offset),
            };
            let kept = self.fields.entry(name).or_insert(shifted);
            kept.first = kept.first.min(shifted.first);
            kept.label = earliest(kept.label, shifted.label);
        }
        self.records += share.records;
        self.lines += share.lines;
        Ok(true)
    }

    /// The features seen in the first records, in order of first appearance.
    fn schema(self, path: &Path) -> Result<Schema, DecodeError> {
        let cut = self.cut;
        let within = |record: Option<u64>| record.is_some_and(|r| r < cut);
        let mut fields: Vec<(String, Field)> = self
            .fields
            .into_iter()
            .filter(|(_, field)| field.first.0 < cut)
            .collect();
        if fields.is_empty() {
            return Err(DecodeError::NoFeatures {
                path: path.to_path_buf(),
            });
        }
        fields.sort_by_key(|(_, field)| field.first);
        let features = fields
            .into_iter()
            .map(|(name, field)| {
                let kind = if within(field.label) {
                    FeatureKind::Categorical
                } else {
                    FeatureKind::Numeric
                };
                FeatureSpec { name, kind }
            })
            .collect();
        Ok(Schema { features })
    }
}

/// Whether a CSV cell (valid UTF-8) holds a label: the usual number is told by `fast_float2`
/// (`str::parse`'s grammar), anything else as [`Cell::from_csv`] tells it.
fn is_label(field: &[u8]) -> bool {
    if fast_float2::parse::<f64, _>(field).is_ok() {
        return false;
    }
    let text = std::str::from_utf8(field).unwrap_or_default();
    matches!(Cell::from_csv(text), Cell::Text(_) | Cell::Bool(_))
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::KindTally;
    use crate::source::blocks::test_input;
    use proptest::prelude::*;

    /// What one pass over the lines infers: features in order of first appearance among the
    /// first `cut` records, or the number of the malformed line that stops it.
    fn one_pass(text: &str, skip: bool, cut: u64) -> Result<Vec<(String, FeatureKind)>, u64> {
        let mut order: Vec<(String, KindTally)> = Vec::new();
        let mut records = 0;
        'lines: for (i, line) in text.split('\n').enumerate() {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match decode_payload(line.as_bytes()) {
                Ok(batch) => {
                    for record in &batch {
                        records += 1;
                        if records > cut {
                            break 'lines;
                        }
                        for (name, value) in record_features(record) {
                            let at = match order.iter().position(|(n, _)| n == name) {
                                Some(at) => at,
                                None => {
                                    order.push((name.to_string(), KindTally::default()));
                                    order.len() - 1
                                }
                            };
                            order[at].1.observe(&Cell::from_json(value));
                        }
                    }
                }
                Err(_) if skip => {}
                Err(_) => return Err(i as u64 + 1),
            }
        }
        Ok(order.into_iter().map(|(n, t)| (n, t.kind())).collect())
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => ("[a-d]", 0u8..4).prop_map(|(name, value)| match value {
                0 => format!(r#"{{"{name}": 1.5, "ts": 1}}"#),
                1 => format!(r#"{{"{name}": "x", "z": 2}}"#),
                2 => format!(r#"[{{"{name}": "y"}}, {{"{name}": 2}}]"#),
                _ => format!(r#"{{"features": {{"{name}": null, "e": true}}}}"#),
            }),
            1 => Just(String::new()),
            1 => Just(r#"[{"f": 1}, {"g": "y", "a": 2}]"#.to_string()),
            1 => Just(r#"{"a": "#.to_string()),
        ]
    }

    fn inferred(
        text: &str,
        skip: bool,
        (block, mapped): (usize, bool),
        cut: u64,
    ) -> Result<Vec<(String, FeatureKind)>, String> {
        let sizes = Sizes { block, parallel: 0 };
        let schema = infer_in(
            Path::new("d.jsonl"),
            DataFormat::JsonLines,
            test_input(text, mapped),
            skip,
            (sizes, cut),
        );
        match schema {
            Ok(schema) => Ok(schema
                .unwrap()
                .features
                .into_iter()
                .map(|f| (f.name, f.kind))
                .collect()),
            Err(err) => Err(err.to_string()),
        }
    }

    fn csv(text: &str, cut: u64) -> Option<Vec<(String, FeatureKind)>> {
        let sizes = Sizes {
            block: 8,
            parallel: 0,
        };
        let path = Path::new("d.csv");
        let input = test_input(text, false);
        let schema = infer_in(path, DataFormat::Csv, input, false, (sizes, cut));
        let features = schema.unwrap()?.features.into_iter();
        Some(features.map(|f| (f.name, f.kind)).collect())
    }

    #[test]
    fn a_plain_csv_file_is_inferred_up_to_the_cut_and_the_rest_goes_to_the_csv_crate() {
        use FeatureKind::{Categorical, Numeric};
        let text = "x,ts,c\r\n1,1,2\r\n\r\n2,1,3\r\n3,1,a\r\n";
        let expected = |c| Some(vec![("x".to_string(), Numeric), ("c".to_string(), c)]);
        assert_eq!(csv(text, 2), expected(Numeric));
        assert_eq!(csv(text, 3), expected(Categorical));
        assert_eq!(csv("x,c\n1,\"a\"\n", 10), None, "quotes");
        assert_eq!(csv("x,c\n1,a,3\n", 10), None, "a long row");
        // One pass stops at the record after the cut, so a short row right after it is an
        // error (the `csv` crate's reader names it) and one after that is not looked at.
        assert_eq!(csv("x,c\n1,a\n2\n", 1), None);
        assert_eq!(csv("x,c\n1,a\n2,b\n3\n", 1), expected(Categorical));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn shares_infer_what_one_pass_infers(
            lines in prop::collection::vec(line(), 0..40),
            skip: bool,
            block in 4usize..120,
            mapped: bool,
            cut in 1u64..12,
        ) {
            let block = (block, mapped);
            let text = lines.join("\n");
            match one_pass(&text, skip, cut) {
                Ok(features) if features.is_empty() => {
                    let err = inferred(&text, skip, block, cut).unwrap_err();
                    prop_assert!(err.contains("no features"), "{}", err);
                }
                Ok(features) => prop_assert_eq!(inferred(&text, skip, block, cut), Ok(features)),
                Err(line) => {
                    let err = inferred(&text, skip, block, cut).unwrap_err();
                    prop_assert!(err.starts_with(&format!("d.jsonl:{line}: ")), "{}", err);
                }
            }
        }
    }
}
