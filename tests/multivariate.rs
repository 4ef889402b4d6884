//! Multivariate drift statistics against the reference libraries: the PCA reconstruction error
//! equals numpy's, scikit-learn's and NannyML's on `tests/fixtures/multivariate.json` (written
//! by `scripts/gen_multivariate_fixtures.py`), MMD² and its median-heuristic bandwidth equal
//! alibi-detect's formulas in numpy, and both see a correlation flip that every per-feature test
//! misses.

use driftgate::drift::reconstruction::{
    chunk_band, held_out_errors, ErrorNull, Reconstruction, DEFAULT_MULTIPLIER, FOLDS,
};
use ndarray::{s, Array2};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/multivariate.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix(rows: &Value) -> Array2<f64> {
    let rows = rows.as_array().unwrap();
    let columns = rows[0].as_array().unwrap().len();
    Array2::from_shape_fn((rows.len(), columns), |(i, j)| rows[i][j].as_f64().unwrap())
}

fn numbers(values: &Value) -> Vec<f64> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_close(got: f64, want: f64, what: &str) {
    let tolerance = 1e-10 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn reconstruction_error_equals_numpy_sklearn_and_nannyml() {
    let fixture = fixture();
    let (reference, current) = (matrix(&fixture["reference"]), matrix(&fixture["current"]));
    let chunk = fixture["chunk"].as_u64().unwrap() as usize;
    let model =
        Reconstruction::fit(reference.view(), fixture["variance"].as_f64().unwrap()).unwrap();
    let band = chunk_band(&model, reference.view(), chunk, DEFAULT_MULTIPLIER).unwrap();
    let errors = model.errors(current.view());
    let chunks: Vec<f64> = (0..current.nrows() / chunk)
        .map(|c| model.mean_error(current.slice(s![c * chunk..(c + 1) * chunk, ..])))
        .collect();

    let numpy = &fixture["numpy"];
    for (got, want) in model.explained.iter().zip(numbers(&numpy["explained"])) {
        assert_close(*got, want, "explained variance");
    }
    assert_eq!(
        model.components.nrows() as u64,
        numpy["kept"].as_u64().unwrap()
    );
    for (i, (got, want)) in errors
        .iter()
        .zip(numbers(&numpy["current_errors"]))
        .enumerate()
    {
        assert_close(*got, want, &format!("numpy error of row {i}"));
    }
    let peers = [("numpy", numpy), ("nannyml", &fixture["nannyml"])];
    for (name, peer) in peers.into_iter().filter(|(_, p)| !p.is_null()) {
        for (got, want) in chunks.iter().zip(numbers(&peer["current_chunks"])) {
            assert_close(*got, want, &format!("{name} chunk mean error"));
        }
        assert_close(
            band.lower,
            peer["lower"].as_f64().unwrap(),
            &format!("{name} lower"),
        );
        assert_close(
            band.upper,
            peer["upper"].as_f64().unwrap(),
            &format!("{name} upper"),
        );
    }
    let sklearn = &fixture["sklearn"];
    if !sklearn.is_null() {
        assert_eq!(
            model.components.nrows() as u64,
            sklearn["kept"].as_u64().unwrap()
        );
        for (got, want) in errors.iter().zip(numbers(&sklearn["current_errors"])) {
            assert_close(*got, want, "sklearn error");
        }
    }
    // The flipped correlation of f0 and f1 is outside the band in both chunks.
    assert!(
        chunks.iter().all(|&c| band.drifted(c)),
        "{chunks:?} vs {band:?}"
    );
}

/// `rows` rows of 20 standard normal features; the first two correlated `rho`.
fn twenty_features(rng: &mut driftgate::SplitMix64, rows: usize, rho: f64) -> Array2<f64> {
    let mut data = Array2::zeros((rows, 20));
    for mut row in data.rows_mut() {
        for value in row.iter_mut() {
            *value = rng.normal();
        }
        row[1] = rho * row[0] + (1.0 - rho * rho).sqrt() * row[1];
    }
    data
}

#[test]
fn reconstruction_error_sees_a_correlation_flip_among_twenty_features() {
    let mut rng = driftgate::SplitMix64::new(23);
    let reference = twenty_features(&mut rng, 10_000, 0.8);
    let model = Reconstruction::fit(reference.view(), 0.65).unwrap();
    let nannyml = chunk_band(&model, reference.view(), 1000, DEFAULT_MULTIPLIER).unwrap();
    let null = ErrorNull::of(&held_out_errors(reference.view(), 0.65, FOLDS).unwrap());
    let windows = 400;
    let (mut in_sample, mut held_out) = ([0usize; 2], [0usize; 2]);
    for (case, rho) in [0.8, -0.8].into_iter().enumerate() {
        for _ in 0..windows {
            let error = model.mean_error(twenty_features(&mut rng, 1000, rho).view());
            in_sample[case] += usize::from(nannyml.drifted(error));
            held_out[case] += usize::from(null.p_value(error, 1000) <= 0.05);
        }
    }
    let rate = |count: usize| count as f64 / windows as f64;
    eprintln!(
        "PCA reconstruction, 20 features, 1,000-row windows, unchanged / correlation flipped: \
         NannyML's in-sample band {:.3} / {:.3}, held-out p <= 0.05 {:.3} / {:.3}",
        rate(in_sample[0]),
        rate(in_sample[1]),
        rate(held_out[0]),
        rate(held_out[1])
    );
    assert!(rate(in_sample[0]) > 0.5, "the in-sample band is too narrow");
    let accepted = 0.05 + 3.0 * (0.05f64 * 0.95 / windows as f64).sqrt();
    assert!(
        rate(held_out[0]) <= accepted,
        "false alarms on unchanged windows"
    );
    assert!(rate(held_out[1]) >= 0.95, "correlation flip missed");
}

#[test]
fn mmd_equals_alibi_detects_formulas() {
    use driftgate::drift::mmd::{median_sigma, mmd_test};
    let fixture = fixture();
    let mmd = &fixture["mmd"];
    let rows = |key: &str| mmd[key].as_u64().unwrap() as usize;
    let reference = matrix(&fixture["reference"]);
    let current = matrix(&fixture["current"]);
    let (x, y) = (
        reference.slice(s![..rows("reference_rows"), ..]),
        current.slice(s![..rows("current_rows"), ..]),
    );
    let sigma = median_sigma(x);
    assert_close(sigma, mmd["sigma"].as_f64().unwrap(), "sigma");
    let mut rng = driftgate::SplitMix64::new(1);
    let outcome = mmd_test(x, y, sigma, 0, None, &mut rng);
    assert_close(outcome.observed, mmd["mmd2"].as_f64().unwrap(), "MMD²");
}

#[test]
fn mmd_sees_a_correlation_flip_among_twenty_features() {
    use driftgate::drift::mmd::{
        median_sigma, mmd_test, sample_rows, DEFAULT_PERMUTATIONS, MAX_ROWS,
    };
    use driftgate::drift::permutation::stop_at;
    let mut rng = driftgate::SplitMix64::new(29);
    let reference = sample_rows(
        twenty_features(&mut rng, 10_000, 0.8).view(),
        MAX_ROWS,
        &mut rng,
    );
    let sigma = median_sigma(reference.view());
    let windows = 100;
    let mut flagged = [0usize; 2];
    for (case, rho) in [0.8, -0.8].into_iter().enumerate() {
        for _ in 0..windows {
            let window = sample_rows(
                twenty_features(&mut rng, 1000, rho).view(),
                MAX_ROWS,
                &mut rng,
            );
            let stop = Some(stop_at(0.05, DEFAULT_PERMUTATIONS));
            let outcome = mmd_test(
                reference.view(),
                window.view(),
                sigma,
                DEFAULT_PERMUTATIONS,
                stop,
                &mut rng,
            );
            flagged[case] += usize::from(outcome.p_value <= 0.05);
        }
    }
    let rate = |count: usize| count as f64 / windows as f64;
    eprintln!(
        "MMD, 20 features, 1,000-row windows sampled to {MAX_ROWS}: unchanged {:.3}, correlation flipped {:.3}",
        rate(flagged[0]),
        rate(flagged[1])
    );
    let accepted = 0.05 + 3.0 * (0.05f64 * 0.95 / windows as f64).sqrt();
    assert!(
        rate(flagged[0]) <= accepted,
        "false alarms on unchanged windows"
    );
    assert!(rate(flagged[1]) >= 0.95, "correlation flip missed");
}

/// A CSV of `rows` records: `a` and `b` correlated `rho`, `c` independent, `country`
/// categorical; `gap` leaves `c` empty in the first record.
fn csv(path: &std::path::Path, rows: usize, rho: f64, seed: u64, gap: bool) {
    let mut rng = driftgate::SplitMix64::new(seed);
    let mut text = String::from("a,b,c,country\n");
    for i in 0..rows {
        let (a, z) = (rng.normal(), rng.normal());
        let b = rho * a + (1.0 - rho * rho).sqrt() * z;
        let c = if gap && i == 0 {
            String::new()
        } else {
            format!("{:.6}", 5.0 + 2.0 * rng.normal())
        };
        let country = ["DE", "FR", "US"][rng.below(3) as usize];
        text.push_str(&format!("{a:.6},{b:.6},{c},{country}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn drift(args: &[&std::path::Path], extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .arg("drift")
        .arg("--reference")
        .arg(args[0])
        .arg("--current")
        .arg(args[1])
        .args([
            "--format",
            "json",
            "--multivariate",
            "mmd",
            "--multivariate",
            "pca",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn drift_tests_the_numeric_features_jointly_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    csv(&path("reference.csv"), 5000, 0.8, 1, false);
    csv(&path("flipped.csv"), 1000, -0.8, 2, false);
    csv(&path("same.csv"), 1000, 0.8, 3, false);
    csv(&path("gap.csv"), 1000, 0.8, 4, true);

    // A baseline keeps a joint sample of up to 2,000 complete rows: the same verdicts from it
    // as from the file it was built from.
    let build = |name: &str, extra: &[&str]| {
        let built = std::process::Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args(["baseline", "build", "--input"])
            .arg(path("reference.csv"))
            .arg("--output")
            .arg(path(name))
            .args(extra)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
    };
    build("baseline.npz", &[]);
    for (reference, reference_rows) in [("reference.csv", 5000), ("baseline.npz", 2000)] {
        let flipped = drift(
            &[&path(reference), &path("flipped.csv")],
            &["--fail-on-drift"],
        );
        assert_eq!(
            flipped.status.code(),
            Some(3),
            "{reference}: the joint drift fails the check"
        );
        let report: Value = serde_json::from_slice(&flipped.stdout).unwrap();
        assert_eq!(report["dataset"]["drifted"], 0, "no feature drifts alone");
        for method in ["mmd", "pca"] {
            let outcome = &report["multivariate"][method];
            assert_eq!(outcome["drift"], true, "{reference} {method}: {outcome}");
            assert_eq!(outcome["features"], 3);
            assert!(
                outcome["statistic"].as_f64().unwrap() > outcome["threshold"].as_f64().unwrap()
            );
        }
        assert_eq!(
            report["multivariate"]["pca"]["reference_rows"],
            reference_rows
        );
        assert_eq!(
            report["multivariate"]["mmd"]["current_rows"], 500,
            "sampled"
        );

        let same = drift(&[&path(reference), &path("same.csv")], &["--fail-on-drift"]);
        assert_eq!(
            same.status.code(),
            Some(0),
            "{reference}: {}",
            String::from_utf8_lossy(&same.stdout)
        );
    }

    let gap = drift(&[&path("reference.csv"), &path("gap.csv")], &[]);
    assert_eq!(gap.status.code(), Some(2));
    let message = String::from_utf8_lossy(&gap.stderr);
    assert!(
        message.contains("gap.csv") && message.contains("values in: c"),
        "{message}"
    );

    build("rowless.npz", &["--joint-rows", "0"]);
    let rowless = drift(&[&path("rowless.npz"), &path("same.csv")], &[]);
    assert_eq!(rowless.status.code(), Some(2));
    let message = String::from_utf8_lossy(&rowless.stderr);
    assert!(
        message.contains("keeps no joint sample of rows"),
        "{message}"
    );
}
