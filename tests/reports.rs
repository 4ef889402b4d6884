//! Reports to keep: `drift --format html` and `replay --format html` write one self-contained
//! page. Nothing in it points outside the file, and a real browser with every host unresolvable
//! renders it whole, its console silent.

mod common;

use std::path::Path;
use std::process::Command;

/// A tiny deterministic generator for test data.
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// `rows` records of `amount` (uniform, shifted by `shift`) and `country`.
fn records(state: &mut u64, rows: usize, shift: f64) -> String {
    let countries = ["DE", "FR", "ES"];
    (0..rows)
        .map(|i| {
            format!(
                "{{\"amount\": {}, \"country\": \"{}\"}}\n",
                uniform(state) + shift,
                countries[i % 3]
            )
        })
        .collect()
}

/// Runs driftgate in `dir`; its standard output.
fn driftgate(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// No URL with a scheme or a host, and no path from the server's root: the page needs nothing
/// but itself.
fn assert_self_contained(html: &str) {
    for needle in ["http://", "https://", "src=\"/", "href=\"/", "@import"] {
        assert!(!html.contains(needle), "the page refers to `{needle}`");
    }
    for (at, _) in html.match_indices("url(") {
        assert!(
            html[at..].starts_with("url(#"),
            "only references inside the page"
        );
    }
    assert!(html.contains("<style>"), "the styles are in the page");
    assert!(!html.contains("<script"), "a kept report runs no script");
}

/// The page rendered by a browser that can resolve no host: its DOM, after checking the
/// console stayed silent. `None` without a browser (outside CI).
fn offline_dom(file: &Path) -> Option<String> {
    let browser = common::servers::required("DRIFTGATE_TEST_BROWSER", "the offline rendering")?;
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
        ])
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console: {console:?}");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn a_drift_report_in_html_opens_offline_with_every_feature() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 11u64;
    std::fs::write(dir.path().join("ref.jsonl"), records(&mut state, 3000, 0.0)).unwrap();
    std::fs::write(dir.path().join("cur.jsonl"), records(&mut state, 800, 0.3)).unwrap();
    let html = driftgate(
        dir.path(),
        &[
            "drift",
            "--reference",
            "ref.jsonl",
            "--current",
            "cur.jsonl",
            "--format",
            "html",
        ],
    );
    assert_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("id=\"feature-amount\" data-drift=\"true\""));
    assert!(html.contains("id=\"feature-country\" data-drift=\"false\""));
    assert_eq!(html.matches("class=\"chart distribution\"").count(), 2);
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).unwrap();
    if let Some(dom) = offline_dom(&file) {
        assert!(dom.contains("id=\"feature-amount\""), "rendered offline");
        assert!(dom.contains("<svg"), "with its charts");
    }
}

#[test]
fn a_replay_in_html_opens_offline_with_its_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 5u64;
    std::fs::write(
        dir.path().join("training.jsonl"),
        records(&mut state, 2000, 0.0),
    )
    .unwrap();
    driftgate(
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
    let recorded: String = (0..8)
        .map(|w| records(&mut state, 200, if w >= 5 { 1.0 } else { 0.0 }))
        .collect();
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
features = [{ name = "amount", kind = "numeric" }, { name = "country", kind = "categorical" }]
[[models]]
name = "m"
stream = "s"
features = ["amount", "country"]
[[policies]]
name = "amount-drop"
model = "m"
when = { feature = "amount", metric = "ks.p_value", below = 0.001 }
"#;
    std::fs::write(dir.path().join("driftgate.toml"), config).unwrap();
    let args = [
        "replay",
        "--config",
        "driftgate.toml",
        "--input",
        "recorded.jsonl",
    ];
    let html = driftgate(dir.path(), &[&args[..], &["--format", "html"]].concat());
    assert_self_contained(&html);
    assert!(html.contains("Replay of s"));
    assert!(
        html.contains("data-policy=\"amount-drop\""),
        "the policy's signal chart"
    );
    let json: serde_json::Value = serde_json::from_str(&driftgate(
        dir.path(),
        &[&args[..], &["--format", "json"]].concat(),
    ))
    .unwrap();
    let triggered: Vec<u64> = json["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["decisions"][0]["outcome"] == "triggered")
        .map(|w| w["index"].as_u64().unwrap())
        .collect();
    assert_eq!(triggered, [5, 6, 7]);
    for window in &triggered {
        assert!(
            html.contains(&format!("<tr id=\"window-{window}\">")),
            "the trigger in window {window} is listed"
        );
    }
    let file = dir.path().join("replay.html");
    std::fs::write(&file, &html).unwrap();
    if let Some(dom) = offline_dom(&file) {
        assert!(
            dom.contains("data-policy=\"amount-drop\""),
            "rendered offline"
        );
    }
}
