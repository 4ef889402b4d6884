//! Issue 22, item 2: the binary (NPZ) baseline layout beside the JSON one — `baseline build`
//! writes NPZ unless the name ends in `.json`, `baseline convert` turns one into the other with
//! the same id, both give the same reports, and a damaged NPZ is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn ok(args: &[&str]) -> String {
    let out = driftgate(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A reference where one feature has more distinct values than the cap (a sampled reservoir)
/// and one has few (distinct values with counts).
fn reference(dir: &Path) -> PathBuf {
    let path = dir.join("reference.csv");
    let mut text = String::from("score,level,country\n");
    for i in 0..3000u64 {
        let score = (i * 7919 % 3001) as f64 / 7.0;
        text.push_str(&format!(
            "{score},{},{}\n",
            i % 5,
            ["FR", "DE", "US"][i as usize % 3]
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn build(input: &Path, output: &Path) -> String {
    ok(&[
        "baseline",
        "build",
        "--input",
        s(input),
        "--output",
        s(output),
        "--sample-cap",
        "500",
    ])
}

fn show(path: &Path) -> String {
    ok(&["baseline", "show", s(path)])
}

#[test]
fn issue_22_build_writes_npz_by_default_and_convert_keeps_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = reference(dir.path());
    let npz = dir.path().join("b.npz");
    let json = dir.path().join("b.json");
    build(&data, &npz);
    build(&data, &json);
    let head = std::fs::read(&npz).unwrap();
    assert_eq!(&head[..4], b"PK\x03\x04", "a zip archive (numpy's NPZ)");
    assert_eq!(std::fs::read(&json).unwrap()[0], b'{');
    assert!(
        std::fs::metadata(&npz).unwrap().len() < std::fs::metadata(&json).unwrap().len(),
        "the binary layout is the smaller"
    );

    let (shown_npz, shown_json) = (show(&npz), show(&json));
    assert!(shown_npz.contains("NPZ, format version 1"), "{shown_npz}");
    assert!(
        shown_json.contains("JSON, format version 1"),
        "{shown_json}"
    );
    let id = |shown: &str| shown.split_whitespace().nth(1).unwrap().to_string();
    assert!(shown_npz.contains("(id verified)"));
    // Two numeric features and a categorical one (three levels, one-hot): a seeded sample of
    // their complete rows, the same in both layouts.
    let joint = "joint sample: 2000 complete rows of 2 numeric features and 1 categorical (3 one-hot levels) (of 3000 complete records)";
    assert!(shown_npz.contains(joint), "{shown_npz}");
    assert!(shown_json.contains(joint), "{shown_json}");
    // Built at different times, but the id covers the content only.
    assert_eq!(id(&shown_npz), id(&shown_json));

    let back = dir.path().join("back.json");
    let again = dir.path().join("again.npz");
    ok(&["baseline", "convert", s(&npz), s(&back)]);
    ok(&["baseline", "convert", s(&back), s(&again)]);
    assert_eq!(id(&show(&back)), id(&shown_npz));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&npz).unwrap(),
        "NPZ → JSON → NPZ gives the same bytes"
    );

    // Never over an existing file.
    let before = std::fs::read(&json).unwrap();
    let out = driftgate(&["baseline", "convert", s(&npz), s(&json)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(std::fs::read(&json).unwrap(), before, "left as it was");
}

#[test]
fn issue_22_both_layouts_give_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture("reference.jsonl");
    let current = fixture("current.csv");
    let mut reports = Vec::new();
    for name in ["b.npz", "b.json"] {
        let path = dir.path().join(name);
        ok(&[
            "baseline",
            "build",
            "--input",
            s(&reference),
            "--output",
            s(&path),
        ]);
        let report = ok(&[
            "drift",
            "--reference",
            s(&path),
            "--current",
            s(&current),
            "--format",
            "json",
        ]);
        let mut report: serde_json::Value = serde_json::from_str(&report).unwrap();
        report["reference"]["source"] = serde_json::Value::Null;
        reports.push(report);
    }
    assert_eq!(reports[0], reports[1]);
}

#[test]
fn issue_22_a_damaged_npz_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("b.npz");
    build(&reference(dir.path()), &npz);
    let mut bytes = std::fs::read(&npz).unwrap();
    // A byte inside the first sample's data (after its local header and `.npy` header).
    let at = bytes
        .windows(12)
        .position(|w| w == b"sample_0.npy")
        .unwrap()
        + 200;
    bytes[at] ^= 0x40;
    std::fs::write(&npz, &bytes).unwrap();
    let out = driftgate(&["baseline", "show", s(&npz)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a valid driftgate baseline"),
        "{stderr}"
    );

    std::fs::write(&npz, b"PK\x03\x04 not a zip").unwrap();
    let out = driftgate(&["baseline", "show", s(&npz)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn issue_22_an_npz_with_the_joint_rows_in_meta_still_loads() {
    // Written by the build before the joint sample's rows got an entry of their own (from the
    // same data as `reference`, `--sample-cap 500`): they are base64 in `meta`.
    let old = fixture("baseline_joint_rows_in_meta.npz");
    let dir = tempfile::tempdir().unwrap();
    let data = reference(dir.path());
    let new = dir.path().join("b.npz");
    build(&data, &new);
    let (shown_old, shown_new) = (show(&old), show(&new));
    assert_eq!(id_of(&old), id_of(&new), "{shown_old}\n{shown_new}");
    let joint = "joint sample: 2000 complete rows";
    assert!(shown_old.contains(joint), "{shown_old}");
    let report = |reference: &Path| {
        let args = ["drift", "--reference", s(reference), "--current", s(&data)];
        let out = ok(&[&args[..], &["--multivariate", "mmd", "--format", "json"]].concat());
        let mut report: serde_json::Value = serde_json::from_str(&out).unwrap();
        report["reference"]["source"] = serde_json::Value::Null;
        report
    };
    let (from_old, from_new) = (report(&old), report(&new));
    assert_eq!(from_old["multivariate"]["mmd"]["reference_rows"], 500);
    assert_eq!(from_old, from_new);
}

/// The first line of `baseline show`: the id, verified.
fn id_of(path: &Path) -> String {
    show(path).lines().next().unwrap().to_string()
}

#[test]
fn issue_22_a_build_within_a_memory_budget_reads_in_passes_and_gives_the_same_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let data = reference(dir.path());
    let whole = dir.path().join("whole.npz");
    let passes = dir.path().join("passes.npz");
    build(&data, &whole);
    let args = ["--sample-cap", "500", "--memory-mb", "0"];
    let io = [
        "baseline",
        "build",
        "--input",
        s(&data),
        "--output",
        s(&passes),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args([&io[..], &args[..]].concat())
        .env("DRIFTGATE_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // A budget of nothing: one numeric feature per read, two reads in all.
    assert!(log.contains("passes=2"), "{log}");
    assert_eq!(id_of(&passes), id_of(&whole));
    assert!(id_of(&whole).ends_with("(id verified)"));
}
