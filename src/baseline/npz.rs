//! The binary baseline file: numpy's NPZ layout (a zip archive of `.npy` arrays, stored
//! uncompressed, as `numpy.savez` writes it), so that loading copies the samples instead of
//! parsing text, and numpy alone reads it.
//!
//! Entries:
//! - `meta`: `uint8`, the UTF-8 JSON of the baseline as the JSON file holds it (same fields,
//!   same format version), with every `sample` empty and no `sample_counts`;
//! - `sample_{i}`: `<f8`, numeric feature `i`'s sorted reference sample (`i` counts every
//!   feature, in `meta`'s order);
//! - `sample_counts_{i}`: `<u8`, present when that sample is stored as distinct values with
//!   counts.
//!
//! The id is the JSON file's (SHA-256 of the canonical JSON content), computed when the file is
//! written, so converting between the two keeps it. Each entry carries zip's CRC-32, checked as
//! it is read: a damaged file is refused. `baseline show` also recomputes the id.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek};
use std::path::Path;

use ndarray::Array1;
use ndarray_npy::{NpzReader, NpzWriter};

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
    let samples: Vec<(Vec<f64>, Vec<u64>)> = baseline
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
    let meta = serde_json::to_vec(&*baseline).expect("a baseline serialises");
    for (feature, (sample, counts)) in baseline.features.iter_mut().zip(samples) {
        if let FeatureProfile::Numeric(p) = feature {
            p.sample = sample;
            p.sample_counts = counts;
        }
    }
    let tmp = path.with_extension("npz.tmp");
    let mut npz = NpzWriter::new(BufWriter::new(File::create(&tmp).map_err(io)?));
    npz.add_array("meta", &Array1::from(meta))
        .map_err(zip_error)?;
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

/// Reads an NPZ baseline: its metadata, then each numeric feature's sample.
pub(super) fn load(path: &Path) -> Result<Baseline, BaselineError> {
    let file = File::open(path).map_err(BaselineError::io(path))?;
    let parse_error = BaselineError::parse(path);
    let mut npz = NpzReader::new(file).map_err(|err| parse_error(err.to_string()))?;
    let meta: Array1<u8> = npz
        .by_name("meta")
        .map_err(|err| parse_error(format!("entry `meta`: {err}")))?;
    let mut baseline = parse_meta(path, &meta.into_raw_vec_and_offset().0)?;
    let names = npz.names().map_err(|err| parse_error(err.to_string()))?;
    let numeric: Vec<usize> = (0..baseline.features.len())
        .filter(|&i| matches!(baseline.features[i], FeatureProfile::Numeric(_)))
        .collect();
    let names: HashSet<String> = names.into_iter().collect();
    // The samples are read on every core: a share of the features each, through one handle
    // on the file per share (opening one reads the archive's whole directory).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let shares: Vec<&[usize]> = numeric
        .chunks(numeric.len().div_ceil(cores).max(1))
        .collect();
    let read = crate::parallel::map_in_order(&shares, |share| {
        let file = File::open(path).map_err(|err| parse_error(err.to_string()))?;
        let mut npz = NpzReader::new(file).map_err(|err| parse_error(err.to_string()))?;
        (share.iter())
            .map(|&i| sample(&mut npz, i, &names, &parse_error))
            .collect::<Result<Vec<_>, _>>()
    });
    let mut samples = Vec::with_capacity(numeric.len());
    for share in read {
        samples.extend(share?);
    }
    for (i, (sample, counts)) in numeric.into_iter().zip(samples) {
        if let FeatureProfile::Numeric(p) = &mut baseline.features[i] {
            p.sample = sample;
            p.sample_counts = counts;
        }
    }
    Ok(baseline)
}

/// Numeric feature `i`'s sample and its counts (empty when the archive has none).
fn sample(
    npz: &mut NpzReader<File>,
    i: usize,
    names: &HashSet<String>,
    parse_error: &impl Fn(String) -> BaselineError,
) -> Result<(Vec<f64>, Vec<u64>), BaselineError> {
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
    let array: Array1<T> = npz
        .by_name(name)
        .map_err(|err| parse_error(format!("entry `{name}`: {err}")))?;
    Ok(array.into_raw_vec_and_offset().0)
}

/// The baseline of the `meta` entry, its format and version checked first.
fn parse_meta(path: &Path, meta: &[u8]) -> Result<Baseline, BaselineError> {
    let parse_error = BaselineError::parse(path);
    #[derive(serde::Deserialize)]
    struct Header {
        format: Option<String>,
        format_version: Option<u32>,
    }
    let header: Header =
        serde_json::from_slice(meta).map_err(|err| parse_error(format!("entry `meta`: {err}")))?;
    super::file::check_header(path, header.format.as_deref(), header.format_version)?;
    serde_json::from_slice(meta).map_err(|err| parse_error(format!("entry `meta`: {err}")))
}
