//! Every statistic against scipy on the fixtures written by `scripts/gen_fixtures.py`.
//! Tolerances: statistics 1e-12 relative, p-values 1e-6 absolute.

use std::collections::BTreeMap;

use driftgate::baseline::{BuildSettings, NumericProfile};
use driftgate::decode::QualityCounts;
use driftgate::drift::bins::{categorical_histograms, union_histograms, QuantileBins};
use driftgate::drift::chi2::chi2_homogeneity;
use driftgate::drift::hellinger::hellinger_distance;
use driftgate::drift::jensen_shannon::jensen_shannon_distance;
use driftgate::drift::kolmogorov::{kolmogorov_cdf, kolmogorov_sf, smirnov};
use driftgate::drift::ks::ks_2samp;
use driftgate::drift::psi::psi;
use driftgate::drift::wasserstein::{normed, wasserstein_distance};
use serde_json::Value;

const STATISTIC_RELATIVE: f64 = 1e-12;
const P_VALUE_ABSOLUTE: f64 = 1e-6;

use std::cell::Cell;

thread_local! {
    /// The worst relative statistic error and absolute p-value error seen by this test thread,
    /// printed at the end of each test (`cargo test -- --nocapture`) to show the real margins.
    static WORST: Cell<(f64, f64)> = const { Cell::new((0.0, 0.0)) };
}

fn report_worst(test: &str) {
    let (statistic, p_value) = WORST.with(Cell::get);
    eprintln!("{test}: worst statistic relative error {statistic:.1e}, worst p-value absolute error {p_value:.1e}");
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn counts(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn label_counts(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[track_caller]
fn assert_statistic(case: &str, what: &str, ours: f64, scipy: f64) {
    let tolerance = STATISTIC_RELATIVE * scipy.abs().max(ours.abs());
    if scipy != 0.0 {
        let relative = (ours - scipy).abs() / scipy.abs();
        WORST.with(|w| w.set((w.get().0.max(relative), w.get().1)));
    }
    assert!(
        (ours - scipy).abs() <= tolerance,
        "{case}: {what}: ours {ours:e}, scipy {scipy:e}, relative error {:e}",
        (ours - scipy).abs() / scipy.abs()
    );
}

#[track_caller]
fn assert_p_value(case: &str, what: &str, ours: f64, scipy: f64) {
    WORST.with(|w| w.set((w.get().0, w.get().1.max((ours - scipy).abs()))));
    assert!(
        (ours - scipy).abs() <= P_VALUE_ABSOLUTE,
        "{case}: {what}: ours {ours:e}, scipy {scipy:e}"
    );
}

/// KS's statistic and p-value against scipy's for a fixture case.
fn assert_ks(name: &str, case: &Value, statistic: f64, p_value: f64) {
    let scipy = &case["ks"];
    assert_statistic(
        name,
        "ks statistic",
        statistic,
        scipy["statistic"].as_f64().unwrap(),
    );
    assert_p_value(
        name,
        "ks p-value",
        p_value,
        scipy["p_value"].as_f64().unwrap(),
    );
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

#[test]
fn numeric_statistics_equal_scipy() {
    let fixtures = load("scipy_stats.json");
    let bins = fixtures["bins"].as_u64().unwrap() as usize;
    let cases = fixtures["numeric"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let reference_raw = floats(&case["reference"]);
        let reference = sorted(reference_raw.clone());
        let current = sorted(floats(&case["current"]));

        let ks = ks_2samp(&reference, &current).unwrap();
        assert_ks(name, case, ks.statistic, ks.p_value);

        let w = wasserstein_distance(&reference, &current);
        assert_statistic(
            name,
            "wasserstein",
            w,
            case["wasserstein"]["distance"].as_f64().unwrap(),
        );
        // The normed form takes the reference std as a baseline profile computes it.
        let settings = BuildSettings {
            bins,
            ..BuildSettings::default()
        };
        let profile =
            NumericProfile::from_values("x", &reference_raw, QualityCounts::default(), &settings);
        assert_statistic(
            name,
            "wasserstein normed",
            normed(w, profile.std.unwrap()),
            case["wasserstein"]["normed"].as_f64().unwrap(),
        );

        let edges = QuantileBins::from_sorted(&reference, bins).unwrap();
        assert_eq!(
            edges.edges,
            floats(&case["bins"]["edges"]),
            "{name}: bin edges"
        );
        let reference_counts = edges.histogram(&reference);
        let current_counts = edges.histogram(&current);
        assert_eq!(
            reference_counts,
            counts(&case["bins"]["reference"]),
            "{name}: reference bins"
        );
        assert_eq!(
            current_counts,
            counts(&case["bins"]["current"]),
            "{name}: current bins"
        );
        assert_eq!(profile.bin_counts, reference_counts, "{name}: profile bins");

        assert_statistic(
            name,
            "jensen-shannon",
            jensen_shannon_distance(&reference_counts, &current_counts),
            case["jensen_shannon"].as_f64().unwrap(),
        );
        assert_statistic(
            name,
            "psi",
            psi(&reference_counts, &current_counts),
            case["psi"].as_f64().unwrap(),
        );
        assert_statistic(
            name,
            "hellinger",
            hellinger_distance(&reference_counts, &current_counts),
            case["hellinger"].as_f64().unwrap(),
        );
    }
    report_worst("numeric_statistics_equal_scipy");
}

#[test]
fn categorical_statistics_equal_scipy() {
    let fixtures = load("scipy_stats.json");
    for case in fixtures["categorical"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference = label_counts(&case["reference"]);
        let current = label_counts(&case["current"]);

        let (r, c) = union_histograms(&reference, &current);
        let chi2 = chi2_homogeneity(&r, &c).unwrap();
        assert_statistic(
            name,
            "chi2 statistic",
            chi2.statistic,
            case["chi2"]["statistic"].as_f64().unwrap(),
        );
        assert_p_value(
            name,
            "chi2 p-value",
            chi2.p_value,
            case["chi2"]["p_value"].as_f64().unwrap(),
        );
        assert_eq!(
            chi2.dof,
            case["chi2"]["dof"].as_u64().unwrap(),
            "{name}: dof"
        );

        let (r, c) = categorical_histograms(&reference, &current);
        assert_statistic(
            name,
            "jensen-shannon",
            jensen_shannon_distance(&r, &c),
            case["jensen_shannon"].as_f64().unwrap(),
        );
        assert_statistic(name, "psi", psi(&r, &c), case["psi"].as_f64().unwrap());
        assert_statistic(
            name,
            "hellinger",
            hellinger_distance(&r, &c),
            case["hellinger"].as_f64().unwrap(),
        );
    }
    report_worst("categorical_statistics_equal_scipy");
}

#[test]
fn kolmogorov_distribution_equals_scipy_kstwo() {
    let fixtures = load("kolmogorov.json");
    let rows = fixtures["kstwo"].as_array().unwrap();
    assert!(rows.len() > 150);
    for row in rows {
        let n = row["n"].as_u64().unwrap();
        let x = row["x"].as_f64().unwrap();
        let case = format!("kstwo n={n} x={x}");
        assert_p_value(
            &case,
            "sf",
            kolmogorov_sf(n, x),
            row["sf"].as_f64().unwrap(),
        );
        assert_p_value(
            &case,
            "cdf",
            kolmogorov_cdf(n, x),
            row["cdf"].as_f64().unwrap(),
        );
    }
    for row in fixtures["smirnov"].as_array().unwrap() {
        let n = row["n"].as_u64().unwrap();
        let x = row["x"].as_f64().unwrap();
        let scipy = row["sf"].as_f64().unwrap();
        let ours = smirnov(n, x);
        let case = format!("smirnov n={n} x={x}");
        assert_p_value(&case, "sf", ours, scipy);
        // Far tighter than the p-value tolerance: it is an exact sum on both sides.
        assert!(
            (ours - scipy).abs() <= 1e-12 + 1e-9 * scipy,
            "{case}: ours {ours:e}, scipy {scipy:e}"
        );
    }
    report_worst("kolmogorov_distribution_equals_scipy_kstwo");
}

/// Issue 17: a window summarised on the reference's points (counts per point and gap) gives
/// scipy's KS (the same bits as the raw values) and bins; Wasserstein-1 within its bound.
#[test]
fn numeric_statistics_from_window_summaries_equal_scipy() {
    use driftgate::drift::ecdf::compare_sorted;
    use driftgate::drift::ks::ks_test;
    use driftgate::drift::summary::{compare, histogram};
    use driftgate::window::summary::Layout;
    let fixtures = load("scipy_stats.json");
    let bins = fixtures["bins"].as_u64().unwrap() as usize;
    let (mut cases, mut exact_w1, mut worst_bound) = (0, 0, 0.0f64);
    for case in fixtures["numeric"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference = sorted(floats(&case["reference"]));
        let current = sorted(floats(&case["current"]));
        let edges = QuantileBins::from_sorted(&reference, bins).unwrap();
        let layout = Layout::new(&reference, &edges.edges);
        let summary = layout.summarise(&current);
        let merged = compare(&layout, &summary);
        let raw = compare_sorted(&reference, &current);
        assert_eq!(
            merged.ks_statistic.to_bits(),
            raw.ks_statistic.to_bits(),
            "{name}: D"
        );
        let (n1, n2) = (reference.len() as u64, current.len() as u64);
        let ks = ks_test(n1, n2, merged.ks_statistic);
        assert_ks(name, case, ks.statistic, ks.p_value);
        assert_eq!(
            histogram(&layout, &summary, &edges),
            counts(&case["bins"]["current"]),
            "{name}: current bins"
        );
        let scipy = case["wasserstein"]["distance"].as_f64().unwrap();
        let error = (merged.wasserstein - scipy).abs();
        assert!(
            error <= merged.wasserstein_bound + STATISTIC_RELATIVE * scipy,
            "{name}: W1 {} vs scipy {scipy}, bound {}",
            merged.wasserstein,
            merged.wasserstein_bound
        );
        if merged.wasserstein_bound == 0.0 {
            assert_statistic(name, "wasserstein (summary)", merged.wasserstein, scipy);
            exact_w1 += 1;
        }
        worst_bound = worst_bound.max(merged.wasserstein_bound / scipy.max(f64::MIN_POSITIVE));
        cases += 1;
    }
    eprintln!(
        "summaries: {cases} cases, KS bit-identical, bins identical; W1 exact in {exact_w1}, worst bound {worst_bound:.1e} of W1"
    );
    report_worst("numeric_statistics_from_window_summaries_equal_scipy");
}
