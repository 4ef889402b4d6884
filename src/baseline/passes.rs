//! How many reads of a training file a baseline build takes to keep its decoded numeric
//! values within a memory budget: one when they fit, else one per group of numeric features
//! that does (categorical features, whose counts are small, go with the first group).

use std::io::Read;
use std::path::Path;

use crate::decode::{FeatureKind, Schema};

/// Bytes a numeric value takes once decoded.
const VALUE_BYTES: u64 = 8;

/// The schemas to read `input` with, one per pass, so that each pass's numeric values take at
/// most `budget` bytes (a single feature per pass at the least).
pub(super) fn plan(
    input: &Path,
    schema: &Schema,
    budget: Option<u64>,
) -> std::io::Result<Vec<Schema>> {
    let numeric = (schema.features.iter()).filter(|f| f.kind == FeatureKind::Numeric);
    let numeric: Vec<_> = numeric.cloned().collect();
    let Some(budget) = budget.filter(|_| numeric.len() > 1) else {
        return Ok(vec![schema.clone()]);
    };
    // A value takes at least two bytes of text ("1,"), so the values take at most four times
    // the file: when that fits, no need to count.
    let size = std::fs::metadata(input)?.len();
    if size.saturating_mul(4) <= budget {
        return Ok(vec![schema.clone()]);
    }
    let rows = count_lines(input)?;
    let fit = (budget / rows.saturating_mul(VALUE_BYTES).max(1)).max(1);
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    if fit >= numeric.len() {
        return Ok(vec![schema.clone()]);
    }
    let categorical = (schema.features.iter()).filter(|f| f.kind == FeatureKind::Categorical);
    let mut passes: Vec<Schema> = numeric
        .chunks(fit)
        .map(|group| Schema {
            features: group.to_vec(),
        })
        .collect();
    passes[0].features.extend(categorical.cloned());
    Ok(passes)
}

/// The lines of a file: an estimate of its records (a JSONL line holding a batch counts once).
fn count_lines(path: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 8 << 20];
    let mut lines = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(lines.max(1));
        }
        lines += memchr::memchr_iter(b'\n', &buffer[..read]).count() as u64;
    }
}

/// The memory the system has available (Linux's `MemAvailable`), if it says.
pub(super) fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FeatureKind::{Categorical, Numeric};

    fn names(passes: &[Schema]) -> Vec<Vec<String>> {
        let names = |s: &Schema| s.features.iter().map(|f| f.name.clone()).collect();
        passes.iter().map(names).collect()
    }

    #[test]
    fn values_that_do_not_fit_are_read_a_group_of_features_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let rows: String = (0..100).map(|i| format!("{i},{i},a,{i}\n")).collect();
        std::fs::write(&path, format!("x,y,c,z\n{rows}")).unwrap();
        let schema = Schema::of(&[
            ("x", Numeric),
            ("y", Numeric),
            ("c", Categorical),
            ("z", Numeric),
        ]);
        let plan = |budget| names(&plan(&path, &schema, budget).unwrap());
        let whole = vec![vec!["x", "y", "c", "z"]];
        assert_eq!(plan(None), whole);
        assert_eq!(plan(Some(1 << 30)), whole, "fits without counting");
        // 101 lines: a feature's values take 808 bytes.
        assert_eq!(plan(Some(808 * 3)), whole);
        assert_eq!(plan(Some(808 * 2)), vec![vec!["x", "y", "c"], vec!["z"]]);
        assert_eq!(plan(Some(1)), vec![vec!["x", "c"], vec!["y"], vec!["z"]]);
    }
}
