//! Issue 23: a numeric reference with many repeated values is stored exactly, as distinct
//! values with counts, however many rows it has: the report from the baseline is the report
//! from the raw data, and the file stays small.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn driftgate(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `rows` records: `price` in cents up to 40.00 (4,000 distinct values), `age` whole years,
/// `score` continuous (every value distinct), shifted by `shift`.
fn write_csv(path: &Path, rows: usize, seed: u64, shift: f64) {
    let mut state = seed;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = String::from("price,age,score\n");
    for _ in 0..rows {
        let price = ((uniform() * 4000.0 + shift * 300.0).floor() / 100.0).min(39.99);
        let age = (18.0 + uniform() * 60.0 + shift * 2.0).floor();
        let score = uniform() + shift * 0.01;
        text.push_str(&format!("{price},{age},{score}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// The report's entries for `price` and `age` (`score` is sampled in the baseline).
fn exact_features(report: &Value) -> Vec<Value> {
    let all = report["features"].as_array().unwrap();
    ["price", "age"]
        .iter()
        .map(|name| all.iter().find(|f| f["name"] == *name).unwrap().clone())
        .collect()
}

#[test]
fn a_reference_with_repeated_values_is_exact_and_small_above_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (train, current, baseline) = (
        dir.path().join("train.csv"),
        dir.path().join("current.csv"),
        dir.path().join("baseline.json"),
    );
    write_csv(&train, 60_000, 1, 0.0);
    write_csv(&current, 5_000, 2, 0.4);
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let built = driftgate(&[
        "baseline",
        "build",
        "--input",
        &path(&train),
        "--output",
        &path(&baseline),
        "--sample-cap",
        "10000",
        // The size below is the per-feature samples'; no joint sample of rows beside them.
        "--joint-rows",
        "0",
    ]);
    let said = String::from_utf8_lossy(&built.stdout);
    assert!(
        said.contains("1 numeric feature(s) with more distinct values than the sample cap"),
        "only `score` is sampled: {said}"
    );

    let file: Value = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    let stored = |name: &str| {
        let f = file["features"].as_array().unwrap();
        f.iter().find(|f| f["name"] == name).unwrap().clone()
    };
    for name in ["price", "age"] {
        assert_eq!(stored(name)["sampled"], false, "{name} is exact");
        assert!(
            stored(name)["sample_counts"].is_string(),
            "{name} has counts"
        );
    }
    assert_eq!(stored("score")["sampled"], true);
    assert!(stored("score").get("sample_counts").is_none());
    // 4,000 + 60 distinct values with counts and a 10,000-value sample: about 200 kB, where the
    // listed values of the exact baseline would take 2 × 640 kB more.
    let size = std::fs::metadata(&baseline).unwrap().len();
    assert!(size < 250_000, "the baseline takes {size} bytes");

    let shown = driftgate(&["baseline", "show", &path(&baseline)]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("(exact: 4000 distinct values with counts)"),
        "{shown}"
    );
    assert!(
        shown.contains("(exact: 60 distinct values with counts)"),
        "{shown}"
    );
    assert!(shown.contains("(sampled: 10000 values)"), "{shown}");

    let drift = |reference: &Path| {
        let out = driftgate(&[
            "drift",
            "--reference",
            &path(reference),
            "--current",
            &path(&current),
            "--format",
            "json",
        ]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (from_baseline, from_data) = (drift(&baseline), drift(&train));
    assert_eq!(exact_features(&from_baseline), exact_features(&from_data));
    let price = &exact_features(&from_baseline)[0];
    assert_eq!(price["n_reference"], 60_000);
    assert_eq!(price["drift"]["detected"], true, "{price}");
}
