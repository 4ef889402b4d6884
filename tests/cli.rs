//! The `driftgate` binary end to end: data files in, the JSON report out, checked against the
//! statistics scipy computes on the usable values (`tests/fixtures/data/expected.json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
}

fn driftgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `drift … --format json` and parses the report; panics with stderr on failure.
fn drift_json(reference: &Path, current: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "drift",
        "--reference",
        path_str(reference),
        "--current",
        path_str(current),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = driftgate(&args);
    assert!(
        out.status.success(),
        "driftgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no feature {name}"))
}

fn close(ours: &Value, scipy: &Value, relative: f64) -> bool {
    let (a, b) = (ours.as_f64().unwrap(), scipy.as_f64().unwrap());
    (a - b).abs() <= relative * a.abs().max(b.abs())
}

#[track_caller]
fn assert_close(what: &str, ours: &Value, scipy: &Value, relative: f64) {
    assert!(
        close(ours, scipy, relative),
        "{what}: ours {ours}, scipy {scipy}"
    );
}

#[track_caller]
fn assert_p(what: &str, ours: &Value, scipy: &Value) {
    let (a, b) = (ours.as_f64().unwrap(), scipy.as_f64().unwrap());
    assert!((a - b).abs() <= 1e-6, "{what}: ours {a}, scipy {b}");
}

#[test]
fn drift_report_on_files_equals_scipy_and_counts_bad_values() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let report = drift_json(&fixture("reference.jsonl"), &fixture("current.csv"), &[]);

    for name in ["amount", "age"] {
        let ours = &feature(&report, name)["tests"];
        let scipy = &expected[name];
        assert_eq!(feature(&report, name)["kind"], "numeric");
        assert_close(
            name,
            &ours["ks"]["statistic"],
            &scipy["ks"]["statistic"],
            1e-12,
        );
        assert_p(name, &ours["ks"]["p_value"], &scipy["ks"]["p_value"]);
        assert_close(
            name,
            &ours["wasserstein"]["distance"],
            &scipy["wasserstein"]["distance"],
            1e-12,
        );
        assert_close(
            name,
            &ours["wasserstein"]["normed"],
            &scipy["wasserstein"]["normed"],
            1e-12,
        );
        assert_close(name, &ours["psi"]["value"], &scipy["psi"], 1e-12);
        assert_close(
            name,
            &ours["jensen_shannon"]["distance"],
            &scipy["jensen_shannon"],
            1e-12,
        );
        assert_close(
            name,
            &ours["hellinger"]["distance"],
            &scipy["hellinger"],
            1e-12,
        );
    }
    let country = feature(&report, "country");
    assert_eq!(country["kind"], "categorical");
    let scipy = &expected["country"];
    assert_close(
        "country",
        &country["tests"]["chi2"]["statistic"],
        &scipy["chi2"]["statistic"],
        1e-12,
    );
    assert_p(
        "country",
        &country["tests"]["chi2"]["p_value"],
        &scipy["chi2"]["p_value"],
    );
    assert_eq!(country["tests"]["chi2"]["dof"], scipy["chi2"]["dof"]);
    assert_close(
        "country",
        &country["tests"]["jensen_shannon"]["distance"],
        &scipy["jensen_shannon"],
        1e-12,
    );

    // Unusable values are counted per feature and reason, never silently dropped.
    let quality = &expected["_quality"];
    let amount = feature(&report, "amount");
    assert_eq!(amount["missing_current"], quality["amount"]["missing"]);
    assert_eq!(amount["nan_current"], quality["amount"]["nan"]);
    assert_eq!(amount["invalid_current"], quality["amount"]["invalid"]);
    assert_eq!(
        amount["missing_reference"],
        quality["reference_amount_missing"]
    );
    assert_eq!(country["missing_current"], quality["country"]["missing"]);
    assert_eq!(report["current"]["unknown_fields"]["extra"], 800);
    assert_eq!(report["current"]["records"], 800);

    // The contract's shape.
    for f in report["features"].as_array().unwrap() {
        for key in [
            "name",
            "kind",
            "n_reference",
            "n_current",
            "missing_current",
            "tests",
            "drift",
        ] {
            assert!(f.get(key).is_some(), "feature lacks {key}: {f}");
        }
        for key in ["method", "score", "threshold", "detected"] {
            assert!(f["drift"].get(key).is_some(), "drift lacks {key}");
        }
    }
    for key in ["features", "drifted", "share", "detected", "correction"] {
        assert!(report["dataset"].get(key).is_some(), "dataset lacks {key}");
    }
    // amount was shifted and country gained a new category; age was not changed.
    assert_eq!(amount["drift"]["detected"], true);
    assert_eq!(country["drift"]["detected"], true);
    assert_eq!(feature(&report, "age")["drift"]["detected"], false);
    assert_eq!(report["dataset"]["detected"], true);
}

#[test]
fn a_baseline_under_the_cap_gives_the_same_report_as_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    let summary = build_baseline(&baseline, &[]);
    assert!(summary.contains("3000 records"), "{summary}");

    let from_data = drift_json(&fixture("reference.jsonl"), &fixture("current.csv"), &[]);
    let from_baseline = drift_json(&baseline, &fixture("current.csv"), &[]);
    assert_eq!(from_data["features"], from_baseline["features"]);
    assert_eq!(from_data["dataset"], from_baseline["dataset"]);
    assert!(from_baseline["reference"]["baseline_id"].is_string());

    // Other bin counts are honoured, from the stored sample, with the same results as the data.
    for bins in ["4", "25"] {
        let data = drift_json(
            &fixture("reference.jsonl"),
            &fixture("current.csv"),
            &["--bins", bins],
        );
        let profile = drift_json(&baseline, &fixture("current.csv"), &["--bins", bins]);
        assert_eq!(data["features"], profile["features"], "bins {bins}");
        assert_ne!(
            feature(&data, "amount")["tests"]["psi"],
            feature(&from_data, "amount")["tests"]["psi"],
            "bins {bins} changed nothing"
        );
    }

    // The same data and settings give the same id.
    let again = dir.path().join("again.json");
    build_baseline(&again, &[]);
    assert_eq!(baseline_id(&baseline), baseline_id(&again));
}

#[test]
fn damaged_or_foreign_baselines_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("b.json");
    build_baseline(&baseline, &[]);
    let text = std::fs::read_to_string(&baseline).unwrap();

    let check = |name: &str, content: &str, message: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = driftgate(&["baseline", "show", path_str(&path)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
    };
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["features"][1]["count"] = Value::from(1);
    check(
        "edited.json",
        &serde_json::to_string(&value).unwrap(),
        "is damaged",
    );
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["format_version"] = Value::from(2);
    check(
        "newer.json",
        &serde_json::to_string(&value).unwrap(),
        "format version 2",
    );
    check(
        "truncated.json",
        &text[..text.len() / 2],
        "not a valid driftgate baseline",
    );

    let out = driftgate(&["baseline", "show", path_str(&baseline)]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("amount"));
}

#[test]
fn a_malformed_line_names_file_and_line_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"x\": 1.0}\n{\"x\": 2.0}\n{\"x\": oops}\n[1, 2]\n{\"x\": 3.0}\n",
    )
    .unwrap();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, "{\"x\": 1.5}\n{\"x\": 2.5}\n").unwrap();

    let out = driftgate(&[
        "drift",
        "--reference",
        path_str(&good),
        "--current",
        path_str(&bad),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonl:3"), "{stderr}");

    let report = drift_json(&good, &bad, &["--skip-invalid"]);
    assert_eq!(report["current"]["invalid_lines"], 2);
    assert_eq!(report["current"]["records"], 3);
    assert_eq!(feature(&report, "x")["n_current"], 3);

    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "x,y\n1,a\n2\n3,b\n").unwrap();
    let out = driftgate(&[
        "drift",
        "--reference",
        path_str(&csv),
        "--current",
        path_str(&csv),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("bad.csv:3"), "{stderr}");
}

#[test]
fn too_little_data_is_a_status_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("r.jsonl");
    std::fs::write(
        &reference,
        "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": \"y\"}\n",
    )
    .unwrap();
    let current = dir.path().join("c.jsonl");
    std::fs::write(&current, "{\"a\": null, \"b\": \"x\"}\n{\"b\": \"z\"}\n").unwrap();
    let report = drift_json(&reference, &current, &[]);
    let a = feature(&report, "a");
    assert_eq!(a["status"], "insufficient_data");
    assert_eq!(a["missing_current"], 2);
    assert!(a["tests"].is_null());
    assert_eq!(a["drift"]["detected"], false);
    assert_eq!(feature(&report, "b")["status"], "ok");
    assert_eq!(report["dataset"]["insufficient_data"], 1);
}

#[test]
fn a_schema_fixes_kinds_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(
        &schema,
        "features = [\n  { name = \"age\", kind = \"categorical\" },\n  { name = \"amount\", kind = \"numeric\" },\n]\n",
    )
    .unwrap();
    let report = drift_json(
        &fixture("reference.jsonl"),
        &fixture("current.csv"),
        &["--schema", path_str(&schema)],
    );
    let features = report["features"].as_array().unwrap();
    assert_eq!(features.len(), 2);
    assert_eq!(feature(&report, "age")["kind"], "categorical");
    assert!(feature(&report, "age")["tests"]["chi2"].is_object());
    assert_eq!(report["current"]["unknown_fields"]["country"], 800);

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "features = [{ name = \"a\", kind = \"text\" }]\n").unwrap();
    let out = driftgate(&[
        "drift",
        "--reference",
        path_str(&fixture("reference.jsonl")),
        "--current",
        path_str(&fixture("current.csv")),
        "--schema",
        path_str(&broken),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.toml"));
}

#[test]
fn table_marks_drift_and_fail_on_drift_sets_the_exit_code() {
    let args = [
        "drift",
        "--reference",
        path_str(&fixture("reference.jsonl")).to_string().leak(),
        "--current",
        path_str(&fixture("current.csv")).to_string().leak(),
        "--format",
        "table",
    ];
    let out = driftgate(&args);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let amount_line = table.lines().find(|l| l.starts_with("amount")).unwrap();
    assert!(amount_line.ends_with("DRIFT"), "{table}");
    let age_line = table.lines().find(|l| l.starts_with("age")).unwrap();
    assert!(age_line.ends_with('-'), "{table}");
    assert!(table.contains("dataset drift"), "{table}");
    // Columns line up: every row has the method column at the same offset as the header.
    let offset = table.lines().next().unwrap().find("method").unwrap();
    assert_eq!(&amount_line[offset..offset + 2], "ks");

    let mut with_fail = args.to_vec();
    with_fail.push("--fail-on-drift");
    assert_eq!(driftgate(&with_fail).status.code(), Some(3));

    let out = driftgate(&[
        "drift",
        "--reference",
        "x.jsonl",
        "--current",
        "y.jsonl",
        "--alpha",
        "2",
        "--bins",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("alpha") && stderr.contains("bins"),
        "every problem at once: {stderr}"
    );
}

/// Runs `baseline build` on the reference fixture and returns what it printed.
fn build_baseline(output: &Path, extra: &[&str]) -> String {
    let input = fixture("reference.jsonl");
    let mut args = vec![
        "baseline",
        "build",
        "--input",
        path_str(&input),
        "--output",
        path_str(output),
    ];
    args.extend_from_slice(extra);
    let out = driftgate(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn baseline_id(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["id"].clone()
}

#[test]
fn over_the_cap_a_baseline_keeps_a_seeded_sample_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("c.json"),
    );
    build_baseline(&a, &["--sample-cap", "500", "--seed", "1"]);
    build_baseline(&b, &["--sample-cap", "500", "--seed", "1"]);
    build_baseline(&c, &["--sample-cap", "500", "--seed", "2"]);
    assert_eq!(
        baseline_id(&a),
        baseline_id(&b),
        "same data, settings and seed"
    );
    assert_ne!(
        baseline_id(&a),
        baseline_id(&c),
        "another seed draws another sample"
    );

    let report = drift_json(&a, &fixture("current.csv"), &[]);
    let amount = feature(&report, "amount");
    assert_eq!(amount["reference_sampled"], true);
    // Counts and bins still describe all the data, not the sample.
    assert_eq!(amount["n_reference"], 2969);
    let full = drift_json(&fixture("reference.jsonl"), &fixture("current.csv"), &[]);
    assert_eq!(
        amount["tests"]["psi"],
        feature(&full, "amount")["tests"]["psi"]
    );
    assert_eq!(amount["drift"]["detected"], true);
    assert_eq!(feature(&report, "country")["reference_sampled"], false);
}

#[test]
fn permutation_tests_are_reproducible_by_seed() {
    let args = |seed: &'static str| -> Vec<&'static str> {
        vec![
            "--numeric-method",
            "wasserstein",
            "--permutations",
            "300",
            "--seed",
            seed,
        ]
    };
    let reference = fixture("reference.jsonl");
    let current = fixture("current.csv");
    let first = drift_json(&reference, &current, &args("1"));
    let again = drift_json(&reference, &current, &args("1"));
    let other = drift_json(&reference, &current, &args("2"));
    assert_eq!(first["features"], again["features"]);
    let age_p = |r: &Value| feature(r, "age")["drift"]["p_value"].as_f64().unwrap();
    assert_ne!(
        age_p(&first),
        age_p(&other),
        "the seed drives the permutations"
    );
    let amount = feature(&first, "amount");
    assert_eq!(amount["drift"]["method"], "wasserstein");
    assert_eq!(amount["drift"]["detected"], true);
    assert_eq!(amount["drift"]["p_value"].as_f64().unwrap(), 1.0 / 301.0);
    assert_eq!(
        amount["drift"]["score"],
        amount["tests"]["wasserstein"]["distance"]
    );
}

#[test]
fn dataset_rules_share_and_corrections() {
    let reference = fixture("reference.jsonl");
    let current = fixture("current.csv");
    // Two of three features drift.
    let share = |x: &str| {
        drift_json(
            &reference,
            &current,
            &["--correction", "none", "--drift-share", x],
        )
    };
    assert_eq!(share("0.6")["dataset"]["detected"], true);
    assert_eq!(share("0.7")["dataset"]["detected"], false);
    let bonferroni = drift_json(&reference, &current, &["--correction", "bonferroni"]);
    let level = feature(&bonferroni, "age")["drift"]["level"]
        .as_f64()
        .unwrap();
    assert!((level - 0.05 / 3.0).abs() < 1e-15);
    let none = drift_json(&reference, &current, &["--correction", "none"]);
    assert_eq!(feature(&none, "age")["drift"]["threshold"], 0.05);

    // Sample-size-aware distance decisions: the threshold is a critical value, not a constant.
    let psi = drift_json(&reference, &current, &["--numeric-method", "psi"]);
    let amount = feature(&psi, "amount");
    assert_eq!(amount["drift"]["score"], amount["tests"]["psi"]["value"]);
    assert!(amount["drift"]["threshold"].as_f64().unwrap() < 0.1);
    let fixed = drift_json(
        &reference,
        &current,
        &["--numeric-method", "psi", "--threshold", "0.1"],
    );
    let amount = feature(&fixed, "amount");
    assert_eq!(amount["drift"]["threshold"], 0.1);
    assert!(amount["drift"]["p_value"].is_null());
    assert_eq!(
        amount["drift"]["detected"], false,
        "PSI 0.081 is under a fixed 0.1"
    );
}

#[test]
fn a_consistent_checksum_does_not_let_a_broken_sample_through() {
    use driftgate::baseline::{Baseline, FeatureProfile};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    build_baseline(&path, &[]);
    let mut baseline = Baseline::load(&path).unwrap();
    if let FeatureProfile::Numeric(p) = &mut baseline.features[0] {
        p.sample.clear();
        p.sampled = true;
    }
    baseline.save(&path).unwrap(); // with the id of the changed content
    let out = driftgate(&[
        "drift",
        "--reference",
        path_str(&path),
        "--current",
        path_str(&fixture("current.csv")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sample size"), "{stderr}");
}

/// Runs the binary from `cwd` with `args`; (exit code, stderr).
fn driftgate_in(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn issue_14_empty_or_too_small_current_data_is_an_error_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let few = std::fs::read_to_string(fixture("current.csv")).unwrap();
    let few: Vec<&str> = few.lines().take(4).collect();
    std::fs::write(dir.path().join("few.csv"), few.join("\n") + "\n").unwrap();
    let reference = fixture("reference.jsonl");
    let reference = path_str(&reference);
    let cases: [(&[&str], &str); 3] = [
        (
            &["--current", "empty.jsonl", "--fail-on-drift"],
            "empty.jsonl: 0 usable record(s), 1 needed",
        ),
        (&["--current", "empty.jsonl"], "0 usable record(s)"),
        (
            &["--current", "few.csv", "--min-samples", "10"],
            "few.csv: 3 usable record(s), 10 needed (--min-samples)",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["drift", "--reference", reference, "--format", "json"];
        args.extend_from_slice(extra);
        let (code, stderr) = driftgate_in(dir.path(), &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (code, stderr) = driftgate_in(
        dir.path(),
        &[
            "baseline",
            "build",
            "--input",
            "empty.jsonl",
            "--output",
            "b.json",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!dir.path().join("b.json").exists());
}

/// `driftgate … | head`: the reader goes away before the command writes; it must stop quietly
/// (exit 0, or killed by SIGPIPE as Unix tools are), never panic.
#[test]
fn issue_14_a_closed_stdout_stops_commands_quietly() {
    let reference = fixture("reference.jsonl");
    let current = fixture("current.csv");
    let commands: [&[&str]; 4] = [
        &["completions", "bash"],
        &["--help"],
        &["baseline", "show", "config/baselines/payments.npz"],
        &[
            "drift",
            "--reference",
            path_str(&reference),
            "--current",
            path_str(&current),
            "--format",
            "json",
        ],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let quiet = out.status.success()
            || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(13);
        assert!(quiet, "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn issue_14_completions_for_bash_zsh_and_fish() {
    for (shell, expected) in [
        ("bash", "_driftgate()"),
        ("zsh", "#compdef driftgate"),
        ("fish", "complete -c driftgate"),
    ] {
        let out = driftgate(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(expected), "{shell}: {script}");
        assert!(script.contains("replay"), "{shell} completes subcommands");
    }
}

/// Config errors name `file:line:column` and the key path as users write it, in user words;
/// a bad environment override names the variable.
#[test]
fn issue_14_config_errors_speak_the_users_language() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[kafka]\nbootstrap_servers = \"embedded\"\n[store]\npath = \"s.db\"\n\
                [[streams]]\nname = \"s\"\ntopic = \"t\"\nbaseline = \"b.json\"\n\
                window = { records = 100 }\n\
                features = [{ name = \"a\", kind = \"numeric\" }, { name = \"c\", kind = \"category\" }]\n";
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let (code, stderr) = driftgate_in(dir.path(), &["config", "check", "bad.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "bad.toml:10:68: streams[0].features[1].kind: `category` is not a kind; use `numeric` or `categorical`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("FeatureKind"), "{stderr}");

    let good = text.replace("\"category\"", "\"categorical\"");
    std::fs::write(dir.path().join("good.toml"), good).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["config", "check", "good.toml"])
        .current_dir(dir.path())
        .env("DRIFTGATE__STORE__CHECKPOINT_EVERY", "5s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable DRIFTGATE__STORE__CHECKPOINT_EVERY"),
        "{stderr}"
    );
    assert!(stderr.contains("not a known key"), "{stderr}");
}

/// A tiny deterministic generator for test data.
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Issue 14: with a configured feature absent from the data, `replay --chart` grew to 22 GB.
/// It must finish under a 2 GiB address-space limit, with one panel per policy signal, p-values
/// of 0 drawn at the documented floor, and a legend.
#[test]
fn issue_14_replay_chart_with_a_feature_missing_from_the_data_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 3u64;
    let mut training = String::new();
    for _ in 0..2000 {
        training.push_str(&format!(
            "{{\"amount\": {}, \"ghost\": {}}}\n",
            uniform(&mut state),
            uniform(&mut state)
        ));
    }
    std::fs::write(dir.path().join("training.jsonl"), training).unwrap();
    let (code, stderr) = driftgate_in(
        dir.path(),
        &[
            "baseline",
            "build",
            "--input",
            "training.jsonl",
            "--output",
            "baseline.json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "no progress bar on a pipe: {stderr}");
    // Ten windows of 200 records without `ghost`; `amount` jumps far away from window 5 on, so
    // its p-value underflows to 0.
    let mut recorded = String::new();
    for window in 0..10 {
        let shift = if window >= 5 { 100.0 } else { 0.0 };
        for _ in 0..200 {
            recorded.push_str(&format!(
                "{{\"amount\": {}}}\n",
                uniform(&mut state) + shift
            ));
        }
    }
    std::fs::write(dir.path().join("recorded.jsonl"), recorded).unwrap();
    let config = r#"
[kafka]
bootstrap_servers = "embedded"
[store]
path = "store.db"
[[streams]]
name = "s"
topic = "t"
baseline = "baseline.json"
window = { records = 200 }
features = [{ name = "amount", kind = "numeric" }, { name = "ghost", kind = "numeric" }]
[[models]]
name = "m"
stream = "s"
features = ["amount", "ghost"]
[[policies]]
name = "amount-drop"
model = "m"
when = { feature = "amount", metric = "ks.p_value", below = 0.001 }
[[policies]]
name = "ghost-drop"
model = "m"
when = { feature = "ghost", metric = "ks.p_value", below = 0.01 }
[[policies]]
name = "any-drift"
model = "m"
when = { feature = "*" }
"#;
    std::fs::write(dir.path().join("driftgate.toml"), config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftgate"));
    command
        .args([
            "replay",
            "--config",
            "driftgate.toml",
            "--input",
            "recorded.jsonl",
        ])
        .args(["--format", "json", "--chart", "chart.svg"])
        .current_dir(dir.path());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let limit = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(svg.len() < 1 << 20, "{} bytes", svg.len());
    assert!(
        svg.contains("amount-drop: amount ks.p_value"),
        "a titled panel"
    );
    assert!(svg.contains("≤ 1e-16 (floor)"), "the floor is labelled");
    assert!(
        svg.contains("ghost-drop: ghost ks.p_value"),
        "the missing feature's panel"
    );
    assert!(
        svg.contains("no value in any window"),
        "says why it is empty"
    );
    for legend in ["value", "threshold", "triggered"] {
        assert!(svg.contains(&format!(">\n{legend}\n<")), "legend {legend}");
    }
}
