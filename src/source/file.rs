//! JSONL and CSV files of feature records.
//!
//! A JSONL file holds one record per line, a JSON object (blank lines are ignored), or a batch
//! as a Kafka message may hold one (an array of records, or `{"records": [...]}`); it is decoded
//! by the service's own decoder, straight into columns. A CSV file has a header row naming the
//! fields. When no schema is given, the first [`INFERENCE_RECORDS`] records are
//! read once to infer each feature's kind (numbers only → numeric, any string or boolean →
//! categorical), then the whole file is decoded with that schema. A label that turns up later in
//! a column inferred as numeric is counted as `invalid` for that feature, never dropped silently;
//! pass a schema to fix kinds outright.
//!
//! A malformed line stops the read with an error naming the file and line, unless
//! `skip_invalid` is set: then it is counted and the first few reasons are kept for the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::blocks::{map_file, Input};
pub use super::infer::INFERENCE_RECORDS;
use crate::baseline::{JointSample, OneHot, RowReservoir};
use crate::decode::{
    BatchDecoder, Cell, Dataset, DecodeError, FeatureSpec, KindTally, Outputs, RecordBatch,
    RecordView, Schema, OUTPUT_FIELDS, RESERVED_FIELDS,
};

/// How many reasons for skipped lines a dataset keeps.
const MAX_INVALID_EXAMPLES: usize = 10;

/// The layout of a data file, chosen from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    JsonLines,
    /// Comma-separated with a header row (`.csv`).
    Csv,
}

impl DataFormat {
    /// The format a file's extension names, if any.
    pub fn from_path(path: &Path) -> Option<DataFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(DataFormat::JsonLines),
            "csv" => Some(DataFormat::Csv),
            _ => None,
        }
    }
}

/// Options for reading a data file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Fixes the features and their kinds; inferred from the file when absent.
    pub schema: Option<Schema>,
    /// Count malformed lines and go on, instead of failing on the first one.
    pub skip_invalid: bool,
    /// A progress bar for people at a terminal (it shows only for slow reads).
    pub progress: Option<super::progress::FileProgress>,
}

/// The format a file's extension names, or the error that says it names none.
fn format_of(path: &Path) -> Result<DataFormat, DecodeError> {
    DataFormat::from_path(path).ok_or_else(|| DecodeError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

/// The schema a read with `options` uses: the one given, or the one inferred from the file.
pub fn schema_of(path: &Path, options: &ReadOptions) -> Result<Schema, DecodeError> {
    let format = format_of(path)?;
    match &options.schema {
        Some(schema) => Ok(schema.clone()),
        None => infer_schema(path, format, options),
    }
}

/// Reads a whole data file into typed columns.
pub fn read_dataset(path: &Path, options: &ReadOptions) -> Result<Dataset, DecodeError> {
    let format = format_of(path)?;
    let schema = schema_of(path, options)?;
    if format == DataFormat::Csv {
        // The common file goes through the block reader; the rest through the `csv` crate's.
        let input = open_blocks(path, options, "reading")?;
        if let Some(dataset) = super::csv_blocks::read(path, input, Dataset::new(schema.clone()))? {
            return Ok(dataset);
        }
    }
    read_records(path, format, schema, options)
}

/// Reads a file record by record: JSONL through the service's decoder, CSV through the `csv`
/// crate's reader.
pub(super) fn read_records(
    path: &Path,
    format: DataFormat,
    schema: Schema,
    options: &ReadOptions,
) -> Result<Dataset, DecodeError> {
    let mut dataset = Dataset::new(schema);
    // CSV headers are fixed per file: resolve each column to its feature once.
    let mut csv_targets: Option<Vec<Target>> = None;
    let mut csv_rows = |Record { headers, row }: Record<'_>| {
        let targets = csv_targets.get_or_insert_with(|| resolve_headers(headers.iter(), &dataset));
        push_csv_row(&mut dataset, targets, headers, row);
        Flow::Continue
    };
    let skipped = match format {
        DataFormat::Csv => scan_csv(path, options, "reading", &mut csv_rows)?,
        DataFormat::JsonLines => decode_jsonl(path, options, &mut dataset)?,
    };
    dataset.invalid_lines = skipped.count;
    dataset.invalid_examples = skipped.examples;
    Ok(dataset)
}

/// The first pass: every non-reserved field, in order of first appearance, with its kind.
fn infer_schema(
    path: &Path,
    format: DataFormat,
    options: &ReadOptions,
) -> Result<Schema, DecodeError> {
    const WHAT: &str = "inferring the schema of";
    let input = open_blocks(path, options, WHAT)?;
    if let Some(schema) = super::infer::infer(path, format, input, options.skip_invalid)? {
        return Ok(schema);
    }
    // A CSV file that is not plain: the `csv` crate reads it.
    let mut order: Vec<String> = Vec::new();
    let mut tallies: BTreeMap<String, KindTally> = BTreeMap::new();
    let mut records = 0u64;
    let mut sink = |record: Record<'_>| {
        records += 1;
        if records > INFERENCE_RECORDS {
            return Flow::Stop;
        }
        record.for_each_cell(|name, cell| {
            // Looked up before inserting: a name is new once, seen again on every record.
            if let Some(tally) = tallies.get_mut(name) {
                tally.observe(&cell);
                return;
            }
            order.push(name.to_string());
            let mut tally = KindTally::default();
            tally.observe(&cell);
            tallies.insert(name.to_string(), tally);
        });
        Flow::Continue
    };
    scan_csv(path, options, WHAT, &mut sink)?;
    if order.is_empty() {
        return Err(DecodeError::NoFeatures {
            path: path.to_path_buf(),
        });
    }
    let features = order
        .into_iter()
        .map(|name| {
            let kind = tallies[&name].kind();
            FeatureSpec { name, kind }
        })
        .collect();
    Ok(Schema { features })
}

/// Where each CSV column goes, by its header name.
pub(super) fn resolve_headers<'a>(
    names: impl IntoIterator<Item = &'a str>,
    dataset: &Dataset,
) -> Vec<Target> {
    names
        .into_iter()
        .map(|name| {
            if RESERVED_FIELDS.contains(&name) {
                Target::Reserved
            } else {
                dataset
                    .position(name)
                    .map_or(Target::Unknown, Target::Feature)
            }
        })
        .collect()
}

/// Where a CSV column goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    /// The feature at this position.
    Feature(usize),
    /// A field the schema does not have.
    Unknown,
    /// A reserved field ([`RESERVED_FIELDS`]).
    Reserved,
}

fn push_csv_row(
    dataset: &mut Dataset,
    targets: &[Target],
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
) {
    dataset.records += 1;
    let mut seen = vec![false; dataset.columns.len()];
    for ((target, text), name) in targets.iter().zip(row.iter()).zip(headers.iter()) {
        match *target {
            Target::Feature(i) => {
                seen[i] = true;
                dataset.columns[i].push(Cell::from_csv(text));
            }
            Target::Unknown => *dataset.unknown_fields.entry(name.to_string()).or_insert(0) += 1,
            Target::Reserved => {}
        }
    }
    dataset.count_absent_as_missing(&seen);
}

/// Whether a scan should go on after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// One decoded CSV row with its header.
struct Record<'a> {
    headers: &'a csv::StringRecord,
    row: &'a csv::StringRecord,
}

impl Record<'_> {
    fn for_each_cell(&self, mut f: impl FnMut(&str, Cell<'_>)) {
        for (name, text) in self.headers.iter().zip(self.row.iter()) {
            if !RESERVED_FIELDS.contains(&name) {
                f(name, Cell::from_csv(text));
            }
        }
    }
}

/// Malformed lines counted (when skipping) and the first few reasons.
#[derive(Debug, Default)]
pub(super) struct Skipped {
    /// Lines skipped.
    pub count: u64,
    /// `file:line: reason` for the first [`MAX_INVALID_EXAMPLES`].
    pub examples: Vec<String>,
}

impl Skipped {
    /// Counts a malformed line when skipping, or turns it into the error that stops the read.
    pub(super) fn handle(
        &mut self,
        skip: bool,
        path: &Path,
        line: u64,
        message: String,
    ) -> Result<(), DecodeError> {
        if !skip {
            return Err(DecodeError::Malformed {
                path: path.to_path_buf(),
                line,
                message,
            });
        }
        self.count += 1;
        if self.examples.len() < MAX_INVALID_EXAMPLES {
            self.examples
                .push(format!("{}:{line}: {message}", path.display()));
        }
        Ok(())
    }
}

/// Opens `path` for one pass (`what` it is for), moving the progress bar when there is one.
fn open(path: &Path, options: &ReadOptions, what: &str) -> Result<Box<dyn Read>, DecodeError> {
    let file = open_file(path)?;
    Ok(with_progress(file, path, options, what))
}

/// Opens `path` for one pass in blocks: mapped into memory when it can be (see
/// [`map_file`]), read otherwise.
fn open_blocks(
    path: &Path,
    options: &ReadOptions,
    what: &str,
) -> Result<Input<'static>, DecodeError> {
    let file = open_file(path)?;
    Ok(match map_file(&file) {
        Some(map) => {
            let pass = options.progress.as_ref().map(|bar| bar.pass(what, path));
            Input::Mapped(map, pass)
        }
        None => Input::Read(with_progress(file, path, options, what)),
    })
}

fn open_file(path: &Path) -> Result<File, DecodeError> {
    File::open(path).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn with_progress(file: File, path: &Path, options: &ReadOptions, what: &str) -> Box<dyn Read> {
    match &options.progress {
        Some(progress) => Box::new(progress.wrap(what, path, file)),
        None => Box::new(file),
    }
}

/// What a baseline keeps besides the features' profiles, read in one more pass over a data
/// file: the model's outputs (its records' `prediction` and `label`, each numeric while its values
/// are numbers, see [`Outputs::adaptive`]) and a uniform sample of at most `joint_rows` complete
/// rows of the numeric `features` and the `onehot` categorical ones (records lacking a usable
/// value of one are passed over; `None` when fewer than two rows or columns). Lines that do not
/// decode are passed over: reading the features counts or refuses them.
pub fn read_extras(
    path: &Path,
    options: &ReadOptions,
    features: &[String],
    onehot: &[OneHot],
    joint_rows: usize,
    seed: u64,
) -> Result<(Outputs, Option<JointSample>), DecodeError> {
    const WHAT: &str = "reading the outputs and rows of";
    let mut outputs = Outputs::adaptive();
    let mut sample =
        RowReservoir::new(features.to_vec(), joint_rows, seed).with_onehot(onehot.to_vec());
    let numeric = features.len();
    let number = |cell: Cell<'_>| cell.number();
    match format_of(path)? {
        DataFormat::Csv => {
            let names: Vec<&str> = (OUTPUT_FIELDS.iter().copied())
                .chain(features.iter().map(String::as_str))
                .chain(onehot.iter().map(|o| o.feature.as_str()))
                .collect();
            each_csv_row(path, options, WHAT, &names, |fields| {
                outputs.push_csv([fields[0], fields[1]]);
                fn cells<'a>(field: &Option<&'a str>) -> Cell<'a> {
                    field.map_or(Cell::Missing, Cell::from_csv)
                }
                let (numbers, labels) = fields[2..].split_at(numeric);
                let numbers = numbers.iter().map(|f| number(cells(f)));
                sample.offer_cells(numbers, labels.iter().map(cells));
            })?;
        }
        DataFormat::JsonLines => {
            let spec = |name: &str, kind| FeatureSpec {
                name: name.to_string(),
                kind,
            };
            let schema = Schema {
                features: (features.iter())
                    .map(|name| spec(name, crate::decode::FeatureKind::Numeric))
                    .chain(
                        (onehot.iter())
                            .map(|o| spec(&o.feature, crate::decode::FeatureKind::Categorical)),
                    )
                    .collect(),
            };
            each_jsonl_record(path, options, WHAT, &schema, |record| {
                outputs.push_record(&record);
                let (numbers, labels) =
                    (record.cells().take(numeric), record.cells().skip(numeric));
                sample.offer_cells(numbers.map(number), labels);
            })?;
        }
    }
    Ok((outputs, sample.finish()))
}

/// Calls `f` with each CSV row's fields of `names`, in that order (`None` for a column the file
/// lacks); rows that cannot be read are passed over (the read of the features counts or
/// refuses them).
fn each_csv_row(
    path: &Path,
    options: &ReadOptions,
    what: &str,
    names: &[&str],
    mut f: impl FnMut(&[Option<&str>]),
) -> Result<(), DecodeError> {
    let mut at: Option<Vec<Option<usize>>> = None;
    let mut sink = |Record { headers, row }: Record<'_>| {
        let at = at.get_or_insert_with(|| {
            (names.iter())
                .map(|name| headers.iter().position(|h| h == *name))
                .collect()
        });
        let fields: Vec<Option<&str>> = at.iter().map(|i| i.and_then(|i| row.get(i))).collect();
        f(&fields);
        Flow::Continue
    };
    let lenient = ReadOptions {
        skip_invalid: true,
        ..options.clone()
    };
    scan_csv(path, &lenient, what, &mut sink)?;
    Ok(())
}

/// Calls `f` with each record of a JSONL file decoded by `schema`, in order; lines that do not
/// decode are passed over (the read of the features counts or refuses them).
fn each_jsonl_record(
    path: &Path,
    options: &ReadOptions,
    what: &str,
    schema: &Schema,
    mut f: impl FnMut(RecordView<'_>),
) -> Result<(), DecodeError> {
    let decoder = BatchDecoder::new(schema);
    let mut batch = RecordBatch::new();
    let input = BufReader::with_capacity(1 << 20, open(path, options, what)?);
    for line in std::io::BufRead::split(input, b'\n') {
        let line = line.map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if decoder.decode(&line, &mut batch).is_ok() {
            (0..batch.len()).for_each(|i| f(batch.record(i)));
        }
    }
    Ok(())
}

/// Decodes a JSONL file into `dataset` with the service's decoder, on every core (see
/// [`super::jsonl_blocks`]).
fn decode_jsonl(
    path: &Path,
    options: &ReadOptions,
    dataset: &mut Dataset,
) -> Result<Skipped, DecodeError> {
    let input = open_blocks(path, options, "reading")?;
    super::jsonl_blocks::decode(path, input, dataset, options.skip_invalid)
}

fn scan_csv(
    path: &Path,
    options: &ReadOptions,
    what: &str,
    sink: &mut dyn FnMut(Record<'_>) -> Flow,
) -> Result<Skipped, DecodeError> {
    let skip_invalid = options.skip_invalid;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::with_capacity(
            1 << 16,
            open(path, options, what)?,
        ));
    let headers = reader
        .headers()
        .map_err(|err| DecodeError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            message: format!("cannot read the CSV header: {err}"),
        })?
        .clone();
    let mut skipped = Skipped::default();
    let mut row = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut row) {
            Ok(true) => {
                let record = Record {
                    headers: &headers,
                    row: &row,
                };
                if sink(record) == Flow::Stop {
                    break;
                }
            }
            Ok(false) => break,
            Err(err) => {
                if let csv::ErrorKind::Io(_) = err.kind() {
                    return Err(DecodeError::Malformed {
                        path: path.to_path_buf(),
                        line: err.position().map_or(0, |p| p.line()),
                        message: err.to_string(),
                    });
                }
                let line = err.position().map_or(0, |p| p.line());
                skipped.handle(skip_invalid, path, line, csv_error_message(&err))?;
            }
        }
    }
    Ok(skipped)
}

fn csv_error_message(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
        _ => err.to_string(),
    }
}
