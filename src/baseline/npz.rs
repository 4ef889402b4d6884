//! The binary baseline file: numpy's NPZ layout (a zip archive of `.npy` arrays, stored
//! uncompressed, as `numpy.savez` writes it), so that loading copies the samples instead of
//! parsing text, and numpy alone reads it.
//!
//! Entries:
//! - `meta`: `uint8`, the UTF-8 JSON of the baseline as the JSON file holds it (same fields,
//!   same format version), with every `sample` empty, no `sample_counts`, and no `values` in
//!   the joint sample;
//! - `sample_{i}`: `<f8`, numeric feature `i`'s sorted reference sample (`i` counts every
//!   feature, in `meta`'s order);
//! - `sample_counts_{i}`: `<u8`, present when that sample is stored as distinct values with
//!   counts;
//! - `joint`: `<f8`, rows × columns, the joint sample's rows, present when the baseline keeps
//!   one.
//!
//! Archives written before the `joint` entry existed hold the rows in `meta` as the JSON file
//! does; they still load. A `meta` whose joint sample lacks `values` sends the reader to the
//! entry, and makes a reader from before refuse the archive rather than take no rows.
//!
//! The id is the JSON file's (SHA-256 of the canonical JSON content), computed when the file is
//! written, so converting between the two keeps it. Each entry carries zip's CRC-32, checked as
//! it is read: a damaged file is refused. `baseline show` also recomputes the id.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek};
use std::path::Path;

use ndarray::{Array1, Array2};
use ndarray_npy::{NpzReader, NpzWriter};
use serde_json::Value;

use super::{Baseline, BaselineError, FeatureProfile};

/// The first bytes of a zip archive, hence of an NPZ file.
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Whether `head` (a file's first bytes) starts an NPZ archive.
pub(super) fn is_npz(head: &[u8]) -> bool {
    head.starts_with(ZIP_MAGIC)
}

/// Writes `baseline` (its id already set) as NPZ to `path`.
pub(super) fn save(baseline: &mut Baseline, path: &Path) -> Result<(), BaselineError> {
    let io = BaselineError::io(path);
    let zip_error = |err: ndarray_npy::WriteNpzError| BaselineError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(err.to_string()),
    };
    // The samples leave the profile while its metadata is serialised, and come back after.
    let samples: Vec<Sample> = baseline
        .features
        .iter_mut()
        .map(|feature| match feature {
            FeatureProfile::Numeric(p) => (
                std::mem::take(&mut p.sample),
                std::mem::take(&mut p.sample_counts),
            ),
            FeatureProfile::Categorical(_) => (Vec::new(), Vec::new()),
        })
        .collect();
    let joint = baseline
        .joint
        .as_mut()
        .map(|joint| std::mem::take(&mut joint.values));
    let mut meta = serde_json::to_value(&*baseline).expect("a baseline serialises");
    if let Some(joint) = meta.get_mut("joint").and_then(Value::as_object_mut) {
        joint.remove("values");
    }
    let meta = serde_json::to_vec(&meta).expect("a baseline serialises");
    for (feature, (sample, counts)) in baseline.features.iter_mut().zip(samples) {
        if let FeatureProfile::Numeric(p) = feature {
            p.sample = sample;
            p.sample_counts = counts;
        }
    }
    if let (Some(sample), Some(values)) = (baseline.joint.as_mut(), joint) {
        sample.values = values;
    }
    let tmp = path.with_extension("npz.tmp");
    let mut npz = NpzWriter::new(BufWriter::new(File::create(&tmp).map_err(io)?));
    npz.add_array("meta", &Array1::from(meta))
        .map_err(zip_error)?;
    if let Some(joint) = &baseline.joint {
        npz.add_array("joint", &joint.rows()).map_err(zip_error)?;
    }
    for (i, feature) in baseline.features.iter().enumerate() {
        let FeatureProfile::Numeric(p) = feature else {
            continue;
        };
        npz.add_array(format!("sample_{i}"), &ndarray::aview1(&p.sample))
            .map_err(zip_error)?;
        if !p.sample_counts.is_empty() {
            npz.add_array(
                format!("sample_counts_{i}"),
                &ndarray::aview1(&p.sample_counts),
            )
            .map_err(zip_error)?;
        }
    }
    let file = npz.finish().map_err(zip_error)?;
    file.into_inner()
        .map_err(|err| io(err.into_error()))?
        .sync_all()
        .map_err(io)?;
    // Renamed into place, so a crash never leaves half a baseline under the final name.
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads an NPZ baseline: its metadata on one core while the others read the samples (which
/// features have one is known from the archive's entry names), then puts them together.
pub(super) fn load(path: &Path) -> Result<Baseline, BaselineError> {
    let parse_error = BaselineError::parse(path);
    let mut npz = open(path)?;
    let names: HashSet<String> = npz
        .names()
        .map_err(|err| parse_error(err.to_string()))?
        .into_iter()
        .collect();
    let mut sampled: Vec<usize> = names.iter().filter_map(|name| sample_index(name)).collect();
    sampled.sort_unstable();
    let (baseline, samples) = std::thread::scope(|scope| {
        let meta = scope.spawn(|| read_meta(&mut npz, path));
        let samples = read_samples(path, &sampled, &names);
        let meta = meta
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (meta, samples)
    });
    let mut baseline = baseline?;
    let mut samples = sampled.into_iter().zip(samples?);
    for (i, feature) in baseline.features.iter_mut().enumerate() {
        let FeatureProfile::Numeric(p) = feature else {
            continue;
        };
        let Some((_, (sample, counts))) = samples.find(|(at, _)| *at == i) else {
            return Err(parse_error(format!(
                "entry `sample_{i}`: not in the archive"
            )));
        };
        p.sample = sample;
        p.sample_counts = counts;
    }
    Ok(baseline)
}

fn open(path: &Path) -> Result<NpzReader<File>, BaselineError> {
    let file = File::open(path).map_err(BaselineError::io(path))?;
    NpzReader::new(file).map_err(|err| BaselineError::parse(path)(err.to_string()))
}

/// The feature index of a `sample_{i}` entry (numpy may list it with its `.npy` suffix).
fn sample_index(name: &str) -> Option<usize> {
    let index = name.strip_prefix("sample_")?;
    let index = index.strip_suffix(".npy").unwrap_or(index);
    index
        .parse()
        .ok()
        .filter(|_| index.bytes().all(|b| b.is_ascii_digit()))
}

/// The baseline of the `meta` entry with its joint sample's rows (its samples still empty).
fn read_meta(npz: &mut NpzReader<File>, path: &Path) -> Result<Baseline, BaselineError> {
    let parse_error = BaselineError::parse(path);
    let meta: Array1<u8> = entry_array(npz, "meta", &parse_error)?;
    let mut meta: Value = serde_json::from_slice(&meta.into_raw_vec_and_offset().0)
        .map_err(|err| parse_error(format!("entry `meta`: {err}")))?;
    let field = |name: &str| meta.get(name);
    super::file::check_header(
        path,
        field("format").and_then(Value::as_str),
        field("format_version")
            .and_then(Value::as_u64)
            .and_then(|version| u32::try_from(version).ok()),
    )?;
    let rows_apart = match meta.get_mut("joint").and_then(Value::as_object_mut) {
        Some(joint) if !joint.contains_key("values") => {
            joint.insert("values".into(), Value::from(""));
            true
        }
        _ => false,
    };
    let mut baseline: Baseline =
        serde_json::from_value(meta).map_err(|err| parse_error(format!("entry `meta`: {err}")))?;
    if let (true, Some(joint)) = (rows_apart, baseline.joint.as_mut()) {
        let rows: Array2<f64> = entry_array(npz, "joint", &parse_error)?;
        if rows.ncols() != joint.width() {
            return Err(parse_error(format!(
                "entry `joint`: {} columns for a joint sample of {}",
                rows.ncols(),
                joint.width()
            )));
        }
        joint.values = match rows.is_standard_layout() {
            true => rows.into_raw_vec_and_offset().0,
            false => rows.iter().copied().collect(),
        };
    }
    Ok(baseline)
}

/// The samples of the features `sampled` and their counts, in that order, read on every core:
/// a share of the features each, through one handle on the file per share (opening one reads
/// the archive's whole directory).
fn read_samples(
    path: &Path,
    sampled: &[usize],
    names: &HashSet<String>,
) -> Result<Vec<Sample>, BaselineError> {
    let parse_error = BaselineError::parse(path);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let shares: Vec<&[usize]> = sampled
        .chunks(sampled.len().div_ceil(cores).max(1))
        .collect();
    let read = crate::parallel::map_in_order(&shares, |share| {
        let mut npz = open(path)?;
        (share.iter())
            .map(|&i| sample(&mut npz, i, names, &parse_error))
            .collect::<Result<Vec<_>, _>>()
    });
    let mut samples = Vec::with_capacity(sampled.len());
    for share in read {
        samples.extend(share?);
    }
    Ok(samples)
}

/// A numeric feature's sample and its counts (empty when stored once each).
type Sample = (Vec<f64>, Vec<u64>);

/// Numeric feature `i`'s sample and its counts (empty when the archive has none).
fn sample(
    npz: &mut NpzReader<File>,
    i: usize,
    names: &HashSet<String>,
    parse_error: &impl Fn(String) -> BaselineError,
) -> Result<Sample, BaselineError> {
    let sample = entry(npz, &format!("sample_{i}"), parse_error)?;
    let counts = format!("sample_counts_{i}");
    let counts = if names.contains(&counts) || names.contains(&format!("{counts}.npy")) {
        entry(npz, &counts, parse_error)?
    } else {
        Vec::new()
    };
    Ok((sample, counts))
}

/// One array entry, as a vector.
fn entry<R: Read + Seek, T: ndarray_npy::ReadableElement>(
    npz: &mut NpzReader<R>,
    name: &str,
    parse_error: &impl Fn(String) -> BaselineError,
) -> Result<Vec<T>, BaselineError> {
    let array: Array1<T> = entry_array(npz, name, parse_error)?;
    Ok(array.into_raw_vec_and_offset().0)
}

/// One array entry.
fn entry_array<R: Read + Seek, T: ndarray_npy::ReadableElement, D: ndarray::Dimension>(
    npz: &mut NpzReader<R>,
    name: &str,
    parse_error: &impl Fn(String) -> BaselineError,
) -> Result<ndarray::Array<T, D>, BaselineError> {
    npz.by_name(name)
        .map_err(|err| parse_error(format!("entry `{name}`: {err}")))
}
