//! CSV files read in large blocks, each block's lines parsed on all cores at once.
//!
//! This path takes the common file: no quotes, lines ending in `\n` or `\r\n`, valid UTF-8,
//! every line with the header's number of fields. It reads the file in [`Blocks`] of whole
//! lines, splits each block's lines among the cores, decodes
//! each share into columns of its own (every cell as [`Cell::from_csv`] and
//! [`Column::push`](crate::decode::Column::push) take it on the `csv` crate path) and appends the
//! shares in file order, so the result is the other path's, value for value and in the same
//! order. Anything else in a block — a quote, a lone `\r`, a short row, bytes that are not UTF-8 —
//! gives the file back to the `csv` crate's reader, which also names the line at fault.

use std::path::Path;

use super::blocks::{file_length, Blocks, Input, Sizes, SIZES};
use super::file::{resolve_headers, Target};
use crate::decode::{add_label_counts, Cell, Column, Dataset, DecodeError, LabelCounts};

/// The file decoded into `empty`'s columns, or `None` when it needs the `csv` crate's reader.
pub(super) fn read(
    path: &Path,
    input: Input<'_>,
    empty: Dataset,
) -> Result<Option<Dataset>, DecodeError> {
    read_in(path, input, empty, SIZES)
}

fn read_in(
    path: &Path,
    input: Input<'_>,
    empty: Dataset,
    sizes: Sizes,
) -> Result<Option<Dataset>, DecodeError> {
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let length = file_length(path);
    let mut blocks = Blocks::new(input, sizes);
    // The first block holds the header line whole.
    let Some(first) = blocks.next_lines().map_err(io)? else {
        return Ok(None);
    };
    let Some((header, names)) = header(first) else {
        return Ok(None);
    };
    let targets = resolve_headers(names.iter().map(String::as_str), &empty);
    let mut dataset = empty;
    let mut parts = Vec::new();
    let shares = sizes.shares(&first[header..]);
    if !decode_block(&shares, &targets, &names, &mut dataset, &mut parts) {
        return Ok(None);
    }
    dataset.reserve(blocks.records_left(dataset.records, length));
    while let Some(lines) = blocks.next_lines().map_err(io)? {
        let shares = sizes.shares(lines);
        if !decode_block(&shares, &targets, &names, &mut dataset, &mut parts) {
            return Ok(None);
        }
    }
    Ok(Some(dataset))
}

/// The header line's length (with its line end) and its names, read by the `csv` crate (which
/// also drops a byte-order mark); `None` for a header this path does not take.
pub(super) fn header(block: &[u8]) -> Option<(usize, Vec<String>)> {
    let end = block
        .iter()
        .position(|b| *b == b'\n')
        .map_or(block.len(), |at| at + 1);
    let line = &block[..end];
    // A quote, or a carriage return ending a record before the line's end, is not plain.
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if line.contains(&b'"') || body.contains(&b'\r') {
        return None;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(line);
    let names = reader.headers().ok()?.iter().map(str::to_string).collect();
    Some((end, names))
}

/// Decodes a block's shares of whole lines into `dataset`, each on its own core into one of
/// `parts` (kept from block to block, so their room is reused); false when a line needs the
/// `csv` crate's reader.
fn decode_block(
    shares: &[&[u8]],
    targets: &[Target],
    names: &[String],
    dataset: &mut Dataset,
    parts: &mut Vec<Dataset>,
) -> bool {
    parts.resize_with(shares.len(), || Dataset::new(dataset.schema.clone()));
    let jobs: Vec<(&[u8], &mut Dataset)> = shares.iter().copied().zip(parts.iter_mut()).collect();
    let decoded = crate::parallel::map_owned_in_order(jobs, |(share, part)| {
        decode_lines(share, targets, names, part)
    });
    if decoded.contains(&false) {
        return false;
    }
    dataset.append_all(&mut parts[..shares.len()]);
    true
}

/// Whether `bytes` is plain: no quote, a carriage return only as part of a CRLF line end.
pub(super) fn plain(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_none()
        && memchr::memchr_iter(b'\r', bytes).all(|at| bytes.get(at + 1) == Some(&b'\n'))
}

/// Decodes `bytes`' lines into `part`; false at a line this path does not take.
fn decode_lines(bytes: &[u8], targets: &[Target], names: &[String], part: &mut Dataset) -> bool {
    if !plain(bytes) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let absent: Vec<usize> = (0..part.columns.len())
        .filter(|i| {
            !targets
                .iter()
                .any(|t| matches!(t, Target::Feature(f) if f == i))
        })
        .collect();
    let mut rows = 0u64;
    let mut labels: Vec<LabelCounts<'_>> = (part.columns.iter())
        .map(|_| LabelCounts::default())
        .collect();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]);
    for end in ends {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if !decode_line(line, targets, &mut part.columns, &mut labels) {
            return false; // not the header's number of fields
        }
        rows += 1;
    }
    part.records = rows;
    add_label_counts(&mut part.columns, labels);
    for i in absent {
        for _ in 0..rows {
            part.columns[i].push(Cell::Missing);
        }
    }
    for (target, name) in targets.iter().zip(names) {
        if matches!(target, Target::Unknown) && rows > 0 {
            *part.unknown_fields.entry(name.clone()).or_insert(0) += rows;
        }
    }
    true
}

/// Decodes one line's fields into `columns` (plain labels into `labels`, by column); false
/// when it has more or fewer fields than `targets`.
fn decode_line<'t>(
    line: &'t str,
    targets: &[Target],
    columns: &mut [Column],
    labels: &mut [LabelCounts<'t>],
) -> bool {
    let bytes = line.as_bytes();
    let mut start = 0;
    for target in targets {
        if start > bytes.len() {
            return false;
        }
        let end = match *target {
            Target::Feature(i) => push_field(line, start, &mut columns[i], &mut labels[i]),
            Target::Unknown | Target::Reserved => field_end(bytes, start),
        };
        start = end + 1;
    }
    start > bytes.len()
}

/// Pushes the field that starts at `start` into `column`; where it ends (its comma, or the
/// line's end).
fn push_field<'t>(
    line: &'t str,
    start: usize,
    column: &mut Column,
    labels: &mut LabelCounts<'t>,
) -> usize {
    let bytes = line.as_bytes();
    // The usual numeric cell is a number running up to the comma: read in the same pass that
    // finds the comma.
    if let Column::Numeric(numbers) = column {
        if let Some((value, length)) = number_field(&bytes[start..]) {
            numbers.push(value);
            return start + length;
        }
    }
    let end = field_end(bytes, start);
    let field = &line[start..end];
    // The usual categorical cell is a word: a label as it is written.
    if matches!(column, Column::Categorical(_)) && is_word(field.as_bytes()) {
        *labels.entry(field).or_insert(0) += 1;
    } else {
        column.push_csv(field);
    }
    end
}

/// Whether a CSV field is certainly text to [`Cell::from_csv`]: it starts with an ASCII
/// character that is neither white space nor one a number can start with (`str::parse`'s
/// grammar: a sign, a digit, a point, `inf`, `infinity` or `nan` in any case).
fn is_word(field: &[u8]) -> bool {
    field
        .first()
        .is_some_and(|&first| first.is_ascii_graphic() && !b"+-.0123456789iInN".contains(&first))
}

/// The number that fills the field at the start of `rest` (running up to a comma or the line's
/// end), with its length; `None` for any other field. `fast_float2`'s grammar and correctly
/// rounded values are `str::parse`'s, so the value is the general path's, bit for bit.
fn number_field(rest: &[u8]) -> Option<(f64, usize)> {
    let (value, length) = fast_float2::parse_partial::<f64, _>(rest).ok()?;
    matches!(rest.get(length), None | Some(b',')).then_some((value, length))
}

/// Where the field that starts at `start` ends: its comma, or the line's end.
fn field_end(bytes: &[u8], start: usize) -> usize {
    memchr::memchr(b',', &bytes[start..]).map_or(bytes.len(), |at| start + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::blocks::test_input;
    use crate::source::file::read_records;
    use crate::source::{DataFormat, ReadOptions};
    use proptest::prelude::*;

    fn schema() -> crate::decode::Schema {
        serde_json::from_value(serde_json::json!({"features": [
            {"name": "x", "kind": "numeric"},
            {"name": "c", "kind": "categorical"},
            {"name": "absent", "kind": "numeric"},
        ]}))
        .unwrap()
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (-1e6f64..1e6).prop_map(|v| format!("{v}")),
            2 => (-99i32..99).prop_map(|v| format!(" {v} ")),
            1 => Just(String::new()),
            1 => Just("NaN".to_string()),
            1 => Just("inf".to_string()),
            1 => Just("1e400".to_string()),
            2 => "[a-c]{1,3}".prop_map(|s| s),
            1 => Just("é".to_string()),
        ]
    }

    /// A CSV text: header `x,ts,c,extra`, rows of cells; some blank lines, CRLF line ends, and
    /// now and then a row the block reader leaves to the `csv` crate.
    fn text() -> impl Strategy<Value = String> {
        let row = (cell(), cell(), cell(), 0u8..40);
        let shape = (any::<bool>(), any::<bool>());
        (prop::collection::vec(row, 0..120), shape).prop_map(|(rows, (crlf, open_end))| {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("x,ts,c,extra{end}");
            for (x, c, extra, odd) in rows {
                match odd {
                    0 => text.push_str(end),
                    1 => text.push_str(&format!("{x},1,\"{c}\",{extra}{end}")),
                    2 => text.push_str(&format!("{x},1,{c}{end}")),
                    _ => text.push_str(&format!("{x},1,{c},{extra}{end}")),
                }
            }
            if open_end {
                // No line end after the last line.
                text.truncate(text.trim_end_matches(['\r', '\n']).len());
            }
            text
        })
    }

    #[test]
    fn a_carriage_return_inside_the_header_line_goes_to_the_csv_crate() {
        let text = "x,c\r1,a\n2,b\n";
        let sizes = Sizes {
            block: 64,
            parallel: 0,
        };
        let read = read_in(
            Path::new("d.csv"),
            test_input(text, false),
            Dataset::new(schema()),
            sizes,
        );
        assert!(read.unwrap().is_none(), "the first record ends at the CR");
    }

    /// A CSV field that looks more or less like a number, or like a word.
    fn field() -> impl Strategy<Value = String> {
        let number = "[-+]?[0-9]{0,22}(\\.[0-9]{0,22})?([eE][-+]?[0-9]{0,4})?";
        let special = "[-+]?(inf|INF|Infinity|nan|NaN|infx|na)";
        let word = "[ a-zA-Z\u{a0}é_.][a-z0-9 ]{0,4}";
        prop_oneof![4 => number, 1 => special, 2 => word, 1 => " ?[0-9.]{1,5} ?"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_field_read_in_one_pass_is_what_the_general_path_reads(
            field in field(),
            rest in prop_oneof![Just(""), Just(",x"), Just(",1.5")],
        ) {
            let line = format!("{field}{rest}");
            let general = Cell::from_csv(&field);
            if let Some((value, length)) = number_field(line.as_bytes()) {
                prop_assert_eq!(length, field.len());
                let expected: f64 = field.parse().unwrap();
                prop_assert!(value.to_bits() == expected.to_bits() || value.is_nan() && expected.is_nan());
            }
            if is_word(field.as_bytes()) {
                prop_assert!(matches!(general, Cell::Text(text) if text == field), "{:?}", field);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn blocks_read_what_the_csv_crate_reads(
            text in text(),
            block in 8usize..200,
            mapped: bool,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("d.csv");
            std::fs::write(&path, &text).unwrap();
            let options = ReadOptions { skip_invalid: true, ..Default::default() };
            let expected = read_records(&path, DataFormat::Csv, schema(), &options).unwrap();
            let sizes = Sizes { block, parallel: 0 };
            let read = read_in(&path, test_input(&text, mapped), Dataset::new(schema()), sizes)
                .unwrap();
            let plain = !text.contains('"') && expected.invalid_lines == 0;
            match read {
                Some(read) => prop_assert_eq!(read, expected),
                None => prop_assert!(!plain, "a plain file is read by blocks"),
            }
        }
    }
}
