//! JSONL files decoded in large blocks, each block's lines on all cores at once.
//!
//! Each core decodes its share of a block's lines with the service's decoder
//! ([`BatchDecoder`]) into columns of its own; the shares are appended in file order, so values
//! keep the file's order. Malformed lines are numbered as in the file (blank lines count) and
//! reported in file order: the first one stops the read, unless they are skipped and counted.

use std::path::Path;

use super::blocks::{each_line, file_length, Blocks, Input, Sizes, SIZES};
use super::file::Skipped;
use crate::decode::{BatchDecoder, Dataset, DecodeError, FlatLines, RecordBatch};

/// Decodes the JSONL `input` into `dataset`; `skip_invalid` counts malformed lines instead of
/// failing on the first.
pub(super) fn decode(
    path: &Path,
    input: Input<'_>,
    dataset: &mut Dataset,
    skip_invalid: bool,
) -> Result<Skipped, DecodeError> {
    decode_in(path, input, dataset, skip_invalid, SIZES)
}

fn decode_in(
    path: &Path,
    input: Input<'_>,
    dataset: &mut Dataset,
    skip_invalid: bool,
    sizes: Sizes,
) -> Result<Skipped, DecodeError> {
    let decoder = BatchDecoder::new(&dataset.schema);
    let length = file_length(path);
    let mut blocks = Blocks::new(input, sizes);
    let mut first = true;
    let mut skipped = Skipped::default();
    // Lines before the current block.
    let mut lines_before = 0u64;
    while let Some(block) = blocks.next_lines().map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })? {
        let shares = sizes.shares(block);
        let decoded = crate::parallel::map_in_order(&shares, |share| {
            Share::decode(share, &decoder, &dataset.schema, skip_invalid)
        });
        let mut parts = Vec::with_capacity(decoded.len());
        for share in decoded {
            for (line, message) in share.malformed {
                skipped.handle(skip_invalid, path, lines_before + line, message)?;
            }
            skipped.count += share.more_malformed;
            lines_before += share.lines;
            parts.push(share.part);
        }
        dataset.append_all(&mut parts);
        if first {
            dataset.reserve(blocks.records_left(dataset.records, length));
            first = false;
        }
    }
    Ok(skipped)
}

/// One core's share of a block, decoded.
struct Share {
    part: Dataset,
    /// Lines in the share (blank ones too).
    lines: u64,
    /// The first malformed lines: number within the share (from 1) and reason.
    malformed: Vec<(u64, String)>,
    /// Malformed lines past those kept.
    more_malformed: u64,
}

impl Share {
    /// Reasons kept per share (the file keeps fewer).
    const KEPT: usize = 16;

    fn decode(
        text: &[u8],
        decoder: &BatchDecoder,
        schema: &crate::decode::Schema,
        skip_invalid: bool,
    ) -> Share {
        let mut batch = RecordBatch::new();
        let mut part = Dataset::new(schema.clone());
        let mut malformed = Vec::new();
        let mut more_malformed = 0;
        // Valid UTF-8 throughout, the share's flat lines go straight into columns; the decoder
        // reads the others (and words what is wrong with the malformed).
        let valid = std::str::from_utf8(text).ok();
        let mut flat = valid.map(|text| (text, FlatLines::new(&schema.features)));
        let lines = each_line(text, |number, line| {
            if line.is_empty() {
                return true;
            }
            if let Some((valid, flat)) = &mut flat {
                // The line's place in the share, cut at ASCII bytes: valid text too.
                let start = line.as_ptr() as usize - text.as_ptr() as usize;
                let line = valid.get(start..start + line.len()).unwrap_or_default();
                if flat.read(line, &mut part) {
                    return true;
                }
            }
            match decoder.decode(line, &mut batch) {
                Ok(()) => (0..batch.len()).for_each(|i| part.push_record(batch.record(i))),
                Err(_) if malformed.len() >= Share::KEPT => more_malformed += 1,
                Err(err) => {
                    malformed.push((number, err.to_string()));
                    return skip_invalid;
                }
            }
            true
        });
        if let Some((_, flat)) = flat {
            flat.finish(&mut part);
        }
        Share {
            part,
            lines,
            malformed,
            more_malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::blocks::test_input;
    use proptest::prelude::*;

    fn schema() -> crate::decode::Schema {
        use crate::decode::FeatureKind::{Categorical, Numeric};
        crate::decode::Schema::of(&[("x", Numeric), ("c", Categorical)])
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (-1e6f64..1e6, "[a-c]{1,2}")
                .prop_map(|(x, c)| format!(r#"{{"x": {x}, "c": "{c}", "ts": 1}}"#)),
            1 => Just(String::new()),
            1 => Just("  ".to_string()),
            1 => Just(r#"[{"x": 1}, {"c": "é", "other": 2}]"#.to_string()),
            1 => Just(r#"{"records": [{"x": "a"}]}"#.to_string()),
            1 => Just(r#"{"x": 1"#.to_string()),
        ]
    }

    /// The whole input on one thread in one block: the reference the blocks must equal.
    fn one_block(text: &str, skip: bool) -> (Result<Skipped, String>, Dataset) {
        let mut dataset = Dataset::new(schema());
        let sizes = Sizes {
            block: text.len() + 1,
            parallel: usize::MAX,
        };
        let skipped = decode_in(
            Path::new("d.jsonl"),
            test_input(text, false),
            &mut dataset,
            skip,
            sizes,
        );
        (skipped.map_err(|e| e.to_string()), dataset)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn blocks_on_many_cores_decode_what_one_pass_decodes(
            lines in prop::collection::vec(line(), 0..150),
            crlf: bool,
            block in 4usize..300,
            skip: bool,
            mapped: bool,
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            let (expected, expected_data) = one_block(&text, skip);
            let mut dataset = Dataset::new(schema());
            let sizes = Sizes { block, parallel: 0 };
            let input = test_input(&text, mapped);
            let got = decode_in(Path::new("d.jsonl"), input, &mut dataset, skip, sizes)
                .map_err(|e| e.to_string());
            prop_assert_eq!(got.as_ref().map(|s| (s.count, &s.examples)),
                expected.as_ref().map(|s| (s.count, &s.examples)));
            if expected.is_ok() {
                prop_assert_eq!(dataset, expected_data);
            }
        }
    }

    #[test]
    fn a_malformed_line_is_named_by_its_number_in_the_file() {
        let text = "{\"x\": 1}\n\n{\"x\": 2}\n{\"x\": \n{\"x\": 3}\n";
        for (block, mapped) in [(3, false), (8, true), (100, false), (100, true)] {
            let mut dataset = Dataset::new(schema());
            let sizes = Sizes { block, parallel: 0 };
            let err = decode_in(
                Path::new("d.jsonl"),
                test_input(text, mapped),
                &mut dataset,
                false,
                sizes,
            )
            .unwrap_err();
            assert!(err.to_string().starts_with("d.jsonl:4: "), "{err}");
        }
    }
}
