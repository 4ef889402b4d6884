//! A succeeded run's baseline output, made ready to rotate in off the consumer loop: loaded,
//! checked against the stream's features and kept under the store's directory on the
//! executor's thread, so that the loop only records it and switches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::baseline::Baseline;
use crate::decode::FeatureSpec;

/// A baseline ready to rotate in.
pub(crate) struct Prepared {
    /// The kept copy the stream switches to.
    pub kept: PathBuf,
    /// It, loaded.
    pub baseline: Arc<Baseline>,
    /// How long loading, checking and copying took.
    pub millis: u64,
}

/// Loads the run's baseline `output`, checks it against the stream's `features` and keeps it
/// as `dir/STREAM/ID.npz` (or `.json`, as the run wrote it); why not, in words.
pub(crate) fn prepare(
    output: &Path,
    stream: &str,
    features: &[FeatureSpec],
    dir: &Path,
) -> Result<Prepared, String> {
    let started = Instant::now();
    let baseline = Baseline::load(output).map_err(|e| e.to_string())?;
    let mismatches = baseline.mismatches(features);
    if !mismatches.is_empty() {
        return Err(mismatches.join("; "));
    }
    let dir = dir.join(stream);
    crate::files::create_private_dir(&dir).map_err(|e| e.to_string())?;
    // Kept in the run's layout (NPZ or JSON), under its id.
    let layout = output.extension().and_then(|e| e.to_str()).unwrap_or("npz");
    let kept = dir.join(format!("{}.{layout}", baseline.id));
    std::fs::copy(output, &kept).map_err(|e| e.to_string())?;
    Ok(Prepared {
        kept,
        baseline: Arc::new(baseline),
        millis: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{BaselineSource, BuildSettings};
    use crate::decode::{Dataset, FeatureKind, Schema};

    fn saved(dir: &Path) -> PathBuf {
        let schema = Schema::of(&[("amount", FeatureKind::Numeric)]);
        let mut data = Dataset::new(schema);
        for i in 0..300 {
            data.push_json_record(serde_json::json!({"amount": i}).as_object().unwrap());
        }
        let settings = BuildSettings::default();
        let mut baseline = Baseline::profile(&data, settings, BaselineSource::default()).unwrap();
        let path = dir.join("out").join("baseline.npz");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        baseline.save(&path).unwrap();
        path
    }

    #[test]
    fn a_fitting_baseline_is_kept_under_its_id_and_one_that_does_not_fit_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let output = saved(dir.path());
        let kept_dir = dir.path().join("baselines");
        let amount = Schema::of(&[("amount", FeatureKind::Numeric)]).features;
        let prepared = prepare(&output, "payments", &amount, &kept_dir).unwrap();
        let id = &prepared.baseline.id;
        assert_eq!(
            prepared.kept,
            kept_dir.join("payments").join(format!("{id}.npz"))
        );
        assert_eq!(
            std::fs::read(&prepared.kept).unwrap(),
            std::fs::read(&output).unwrap()
        );

        let other = Schema::of(&[("amount", FeatureKind::Categorical)]).features;
        let why = prepare(&output, "checkout", &other, &kept_dir)
            .err()
            .unwrap();
        assert!(
            why.contains("`amount` is categorical here but numeric"),
            "{why}"
        );
        assert!(
            !kept_dir.join("checkout").exists(),
            "nothing kept for a misfit"
        );
    }
}
