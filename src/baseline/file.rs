//! The baseline file: written once, read and checked at every start and rotation.
//!
//! A baseline's id is the SHA-256 of its canonical content, the compact JSON
//! `{"format_version":V,"settings":S,"features":F}` (then `,"outputs":O` and `,"joint":J`
//! before the closing brace when the baseline has model outputs or a joint sample of rows). The
//! file holds `S`, `F`, `O` and `J` as exactly
//! those bytes, so the id is computed on the bytes as they are written and checked on the bytes
//! as they are read: nothing is serialised again. A file whose JSON was re-formatted (another
//! tool pretty-printed it) still loads: its id is then checked the slow way, on the parsed
//! content serialised again.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{Baseline, BaselineError, BaselineSource, FeatureProfile, FORMAT, FORMAT_VERSION};

/// SHA-256 of the canonical content from the compact JSON of the settings, the features and
/// the optional parts present (`outputs`, `joint`), in that order.
fn content_hash(
    format_version: u32,
    settings: &[u8],
    features: &[u8],
    optional: &[(&str, &[u8])],
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"{\"format_version\":");
    hasher.update(format_version.to_string().as_bytes());
    hasher.update(b",\"settings\":");
    hasher.update(settings);
    hasher.update(b",\"features\":");
    hasher.update(features);
    for (name, bytes) in optional {
        hasher.update(format!(",\"{name}\":").as_bytes());
        hasher.update(bytes);
    }
    hasher.update(b"}");
    hex(&hasher.finalize())
}

/// The fields before the content, in the order the file has them.
#[derive(Serialize)]
struct Header<'a> {
    format: &'a str,
    format_version: u32,
    id: &'a str,
    created_at: &'a str,
    source: &'a BaselineSource,
}

/// What the first pass over a file reads: the header, and the content as raw bytes.
#[derive(Deserialize)]
struct Raw<'a> {
    format: Option<String>,
    format_version: Option<u32>,
    #[serde(borrow)]
    settings: Option<&'a RawValue>,
    #[serde(borrow)]
    features: Option<&'a RawValue>,
    #[serde(borrow)]
    outputs: Option<&'a RawValue>,
    #[serde(borrow)]
    joint: Option<&'a RawValue>,
}

impl Raw<'_> {
    /// The optional parts present, as read.
    fn optional(&self) -> Vec<(&'static str, &[u8])> {
        let parts = [("outputs", self.outputs), ("joint", self.joint)];
        (parts.into_iter())
            .filter_map(|(name, raw)| raw.map(|raw| (name, raw.get().as_bytes())))
            .collect()
    }
}

/// A hasher taking serialised bytes as they are written, so that hashing a baseline needs no
/// copy of its JSON.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Baseline {
    /// SHA-256 of the canonical content, serialising it (into the hasher, not into memory).
    pub fn content_id(&self) -> String {
        let mut hasher = HashWriter(Sha256::new());
        hasher.0.update(b"{\"format_version\":");
        hasher.0.update(self.format_version.to_string().as_bytes());
        hasher.0.update(b",\"settings\":");
        serde_json::to_writer(&mut hasher, &self.settings).expect("settings serialise");
        hasher.0.update(b",\"features\":");
        serde_json::to_writer(&mut hasher, &self.features).expect("a baseline serialises");
        for (name, bytes) in self.optional_parts() {
            hasher.0.update(format!(",\"{name}\":").as_bytes());
            hasher.0.update(&bytes);
        }
        hasher.0.update(b"}");
        hex(&hasher.0.finalize())
    }

    /// The optional parts present (model outputs, the joint sample), as compact JSON, in the
    /// order the canonical content has them.
    fn optional_parts(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut parts = Vec::new();
        if !self.outputs.is_empty() {
            let outputs = serde_json::to_vec(&self.outputs).expect("a baseline serialises");
            parts.push(("outputs", outputs));
        }
        if let Some(joint) = &self.joint {
            parts.push((
                "joint",
                serde_json::to_vec(joint).expect("a sample serialises"),
            ));
        }
        parts
    }

    /// Writes the profile, setting its id from its content: as compact JSON when `path` ends
    /// in `.json`, otherwise in the binary NPZ layout (see [`super::npz`]), which loads
    /// without parsing text.
    pub fn save(&mut self, path: &Path) -> Result<(), BaselineError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(BaselineError::io(path))?;
        }
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            return self.save_json(path);
        }
        self.id = self.content_id();
        super::npz::save(self, path)
    }

    /// Writes the profile as compact JSON (samples run to millions of values; `baseline show`
    /// is the readable view), setting its id from the content bytes written.
    fn save_json(&mut self, path: &Path) -> Result<(), BaselineError> {
        let io = BaselineError::io(path);
        let settings = serde_json::to_vec(&self.settings).expect("settings serialise");
        let features = serde_json::to_vec(&self.features).expect("a baseline serialises");
        let optional = self.optional_parts();
        let borrowed: Vec<(&str, &[u8])> =
            optional.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        self.id = content_hash(self.format_version, &settings, &features, &borrowed);
        let header = Header {
            format: &self.format,
            format_version: self.format_version,
            id: &self.id,
            created_at: &self.created_at,
            source: &self.source,
        };
        let mut json = serde_json::to_vec(&header).expect("a header serialises");
        json.pop(); // its closing brace: the content follows
        json.reserve(settings.len() + features.len() + 32);
        json.extend_from_slice(b",\"settings\":");
        json.extend_from_slice(&settings);
        json.extend_from_slice(b",\"features\":");
        json.extend_from_slice(&features);
        for (name, bytes) in &optional {
            json.extend_from_slice(format!(",\"{name}\":").as_bytes());
            json.extend_from_slice(bytes);
        }
        json.extend_from_slice(b"}\n");
        // Write then rename, so a crash never leaves half a baseline under the final name.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads and checks a profile, JSON or NPZ (told apart by their first bytes): format tag,
    /// version, integrity (the JSON file's content hash, the NPZ entries' CRC-32s) and internal
    /// consistency.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let baseline = if super::npz::is_npz(&head(path)) {
            super::npz::load(path)?
        } else {
            load_json(path)?
        };
        // Checked on every core: the checks read every sample value.
        let checks = crate::parallel::map_in_order(&baseline.features, FeatureProfile::check);
        let outputs = baseline.outputs.iter().map(|o| (o, o.check()));
        for (feature, check) in baseline.features.iter().zip(checks).chain(outputs) {
            check.map_err(|message| BaselineError::Invalid {
                path: path.to_path_buf(),
                feature: feature.name().to_string(),
                message,
            })?;
        }
        if let Some(joint) = &baseline.joint {
            joint.check().map_err(|message| BaselineError::Invalid {
                path: path.to_path_buf(),
                feature: joint.features.join(", "),
                message,
            })?;
        }
        Ok(baseline)
    }

    /// True when the file looks like a baseline (an NPZ archive, or JSON whose first bytes
    /// carry the format tag), so `--reference` can take either a baseline or a data file.
    pub fn sniff(path: &Path) -> bool {
        let head = head(path);
        if super::npz::is_npz(&head) {
            return true;
        }
        let head = String::from_utf8_lossy(&head);
        head.trim_start().starts_with('{') && head.contains(&format!("\"{FORMAT}\""))
    }
}

/// Whether the file at `path` is in the NPZ layout (by its first bytes).
pub fn is_npz_file(path: &Path) -> bool {
    super::npz::is_npz(&head(path))
}

/// A file's first bytes (fewer when it is shorter or cannot be read).
fn head(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(512).read_to_end(&mut head);
    }
    head
}

/// Checks a baseline's `format` tag and `format_version` (of either layout).
pub(super) fn check_header(
    path: &Path,
    format: Option<&str>,
    version: Option<u32>,
) -> Result<(), BaselineError> {
    let parse_error = BaselineError::parse(path);
    if format != Some(FORMAT) {
        return Err(parse_error(format!(
            "the `format` field is not \"{FORMAT}\""
        )));
    }
    match version {
        Some(FORMAT_VERSION) => Ok(()),
        Some(found) => Err(BaselineError::Version {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        }),
        None => Err(parse_error("the `format_version` field is missing".into())),
    }
}

/// Reads a JSON profile and checks its content hash.
fn load_json(path: &Path) -> Result<Baseline, BaselineError> {
    let bytes = std::fs::read(path).map_err(BaselineError::io(path))?;
    let parse_error = BaselineError::parse(path);
    // The header first, so a newer version gives a version error, not a shape error.
    let raw: Raw = serde_json::from_slice(&bytes).map_err(|err| parse_error(err.to_string()))?;
    check_header(path, raw.format.as_deref(), raw.format_version)?;
    // The content's bytes are hashed on another core while the file is parsed.
    let (as_read, parsed) = std::thread::scope(|scope| {
        let hash = scope.spawn(|| match (raw.settings, raw.features) {
            (Some(s), Some(f)) => Some(content_hash(
                FORMAT_VERSION,
                s.get().as_bytes(),
                f.get().as_bytes(),
                &raw.optional(),
            )),
            _ => None,
        });
        let parsed = serde_json::from_slice::<Baseline>(&bytes);
        (hash.join().unwrap_or(None), parsed)
    });
    let baseline = parsed.map_err(|err| parse_error(err.to_string()))?;
    if as_read.as_deref() != Some(baseline.id.as_str()) {
        let actual = baseline.content_id();
        if actual != baseline.id {
            return Err(BaselineError::Checksum {
                path: path.to_path_buf(),
                expected: baseline.id,
                actual,
            });
        }
    }
    Ok(baseline)
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BuildSettings;
    use crate::decode::{Dataset, Schema};

    fn baseline() -> Baseline {
        let schema: Schema = serde_json::from_value(serde_json::json!({"features": [
            {"name": "amount", "kind": "numeric"}, {"name": "country", "kind": "categorical"},
        ]}))
        .unwrap();
        let mut data = Dataset::new(schema);
        let mut rng = crate::rng::SplitMix64::new(3);
        for i in 0..500 {
            let country = ["FR", "DE"][i % 2];
            let record = serde_json::json!({"amount": rng.normal(), "country": country});
            data.push_json_record(record.as_object().unwrap());
        }
        Baseline::profile(&data, BuildSettings::default(), BaselineSource::default()).unwrap()
    }

    #[test]
    fn issue_23_the_id_is_the_hash_of_the_bytes_written_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut written = baseline();
        assert!(written.id.is_empty(), "a profile is not hashed until saved");
        written.save(&path).unwrap();
        assert_eq!(
            written.id,
            written.content_id(),
            "the canonical content's hash"
        );
        let bytes = std::fs::read(&path).unwrap();
        let raw: Raw = serde_json::from_slice(&bytes).unwrap();
        let as_read = content_hash(
            FORMAT_VERSION,
            raw.settings.unwrap().get().as_bytes(),
            raw.features.unwrap().get().as_bytes(),
            &[],
        );
        assert_eq!(as_read, written.id);
        assert_eq!(Baseline::load(&path).unwrap(), written);
    }

    #[test]
    fn issue_23_a_reformatted_file_loads_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut written = baseline();
        written.save(&path).unwrap();
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        assert_eq!(
            Baseline::load(&path).unwrap().id,
            written.id,
            "pretty-printed"
        );
        value["features"][1]["counts"]["FR"] = serde_json::json!(1);
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        match Baseline::load(&path) {
            Err(BaselineError::Checksum { expected, .. }) => assert_eq!(expected, written.id),
            other => panic!("a changed count must be refused: {other:?}"),
        }
    }
}
