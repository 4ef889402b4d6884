//! The dashboard in a real browser: the demo's service with its real data (`demo
//! --keep-running`), every page loaded in headless Chromium (`DRIFTGATE_TEST_BROWSER`, which
//! `scripts/test.sh` installs and sets), the rendered DOM asserted, the browser's console
//! checked for messages, and screenshots of every page at desktop and phone widths kept in
//! `target/tmp/dashboard/` to look at.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::servers::required;

/// The demo, kept running with its dashboard.
struct Demo {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the demo and waits for the line that gives the dashboard's address.
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args([
                "demo",
                "--duration",
                "5s",
                "--keep-running",
                "--dir",
                "demo",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find("Dashboard: http://") {
                let rest = &line[at + "Dashboard: ".len()..];
                let base = rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/');
                return Demo {
                    child,
                    base: base.to_string(),
                    _dir: dir,
                };
            }
        }
        let _ = child.wait();
        panic!("the demo ended without serving its dashboard:\n{seen}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::get(self.url(path)).unwrap();
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

/// Headless Chromium.
struct Browser {
    binary: String,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new(binary: String) -> Browser {
        Browser {
            binary,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, width: u32) -> Command {
        let mut command = Command::new(&self.binary);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--window-size={width},1600"),
            &format!("--user-data-dir={}", self.profile.path().display()),
        ]);
        command
    }

    /// The page's DOM once it has loaded and `wait_ms` of its virtual time have passed (timers
    /// fire without waiting for them), and
    /// the messages its scripts wrote to the console.
    fn dom(&self, url: &str, wait_ms: u32) -> (String, Vec<String>) {
        let mut command = self.command(1280);
        if wait_ms > 0 {
            command.arg(format!("--virtual-time-budget={wait_ms}"));
        }
        let out = command.arg("--dump-dom").arg(url).output().unwrap();
        assert!(out.status.success(), "chromium failed on {url}");
        let console = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_string)
            .collect();
        (String::from_utf8(out.stdout).unwrap(), console)
    }

    /// A screenshot of the page at `width` pixels into `file`.
    fn screenshot(&self, url: &str, width: u32, file: &Path) {
        let out = self
            .command(width)
            .arg(format!("--screenshot={}", file.display()))
            .arg(url)
            .output()
            .unwrap();
        assert!(out.status.success(), "chromium failed to shoot {url}");
        let png = std::fs::read(file).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", file.display());
    }
}

/// Where the screenshots go.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of the attribute `name` on the element that carries `marker`.
fn attribute_near<'a>(dom: &'a str, marker: &str, name: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let from = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&tag[from..from + tag[from..].find('"')?])
}

#[test]
fn the_dashboard_follows_drift_to_decision_to_run_in_a_real_browser() {
    let Some(binary) = required("DRIFTGATE_TEST_BROWSER", "the dashboard's browser tests") else {
        return;
    };
    let demo = Demo::start();
    let browser = Browser::new(binary);

    // The window the demo injects drift into: both drifted features detected, the triggering
    // decision with its reason, and a link to its run.
    let (window, console) = browser.dom(&demo.url("/streams/payments/windows/6"), 0);
    assert!(console.is_empty(), "console: {console:?}");
    for feature in ["distance_km", "device"] {
        assert!(
            window.contains(&format!("id=\"feature-{feature}\" data-drift=\"true\"")),
            "{feature} is shown as drifted in window 6"
        );
    }
    // Two features drifted (the model's label, watched beside them, may drift too).
    let feature_cards = window
        .match_indices("data-drift=\"true\"")
        .filter(|(at, _)| {
            window[..*at]
                .rfind("id=\"")
                .is_some_and(|id| window[id..].starts_with("id=\"feature-"))
        });
    assert_eq!(feature_cards.count(), 2);
    let decision = &window[window.find("id=\"decision-fraud-error-change\"").unwrap()..];
    let decision = &decision[..decision.find("</tr>").unwrap()];
    assert!(decision.contains(">triggered<"), "{decision}");
    assert!(
        decision.contains("errors (page_hinkley): signalled 1 change(s) in the error rate"),
        "{decision}"
    );
    let run = attribute_near(decision, ">run-", "href").expect("the decision links its run");
    assert!(run.starts_with("/runs/run-"), "{run}");

    // The run: the selective plan as a graph.
    let (graph, console) = browser.dom(&demo.url(run), 0);
    assert!(console.is_empty(), "console: {console:?}");
    let status =
        |task: &str| attribute_near(&graph, &format!("data-task=\"{task}\""), "data-status");
    assert_eq!(status("behaviour-features"), Some("cached"));
    assert_eq!(status("geo-features"), Some("ran"));
    assert_eq!(status("train"), Some("ran"));
    assert!(
        graph.contains("fraud-error-change/fraud/payments/6"),
        "the lineage names the decision"
    );

    // The stream: window 6 is marked in the heatmap for the drifted features, and no other
    // feature is marked anywhere. It is
    // live: the virtual time lets its refresh run (and show any script error in the console).
    let (stream, console) = browser.dom(&demo.url("/streams/payments"), 12_000);
    assert!(console.is_empty(), "console: {console:?}");
    for feature in ["distance_km", "device"] {
        let cell = format!("title=\"{feature} in window 6: ");
        let at = stream
            .find(&cell)
            .unwrap_or_else(|| panic!("no cell {cell}"));
        let title = &stream[at..at + stream[at..].find("\">").unwrap()];
        assert!(title.ends_with("drift detected"), "{title}");
    }
    let detected: Vec<&str> = stream
        .split("title=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .filter(|title| title.ends_with("drift detected"))
        .collect();
    // Window 7 may be judged before the retrained baseline is in (the demo's pace decides).
    assert!(
        detected
            .iter()
            .all(|t| t.starts_with("distance_km in window") || t.starts_with("device in window")),
        "only the injected features drifted: {detected:?}"
    );

    // The overview (live too), the model, the alerts.
    let (overview, console) = browser.dom(&demo.url("/"), 12_000);
    assert!(console.is_empty(), "console: {console:?}");
    let refreshes = |dom: &str| -> u32 {
        attribute_near(dom, "id=\"live\"", "data-refreshes").map_or(0, |n| n.parse().unwrap())
    };
    assert!(refreshes(&overview) >= 1, "the overview refreshed itself");
    assert!(refreshes(&stream) >= 1, "the stream page refreshed itself");
    assert!(overview.contains("href=\"/streams/payments\""));
    assert!(overview.contains("href=\"/models/fraud\""));
    let (model, console) = browser.dom(&demo.url("/models/fraud"), 0);
    assert!(console.is_empty(), "console: {console:?}");
    assert!(model.contains("data-policy=\"fraud-error-change\""));
    assert!(model.contains(">suppressed_in_flight<"));
    let (alerts, console) = browser.dom(&demo.url("/alerts"), 0);
    assert!(console.is_empty(), "console: {console:?}");
    assert!(alerts.contains("demo-receiver"));

    let dir = artefacts();
    for (name, path) in [
        ("overview", "/".to_string()),
        ("stream", "/streams/payments".into()),
        ("window", "/streams/payments/windows/6".into()),
        ("model", "/models/fraud".into()),
        ("run", run.to_string()),
        ("alerts", "/alerts".into()),
    ] {
        browser.screenshot(&demo.url(&path), 1280, &dir.join(format!("{name}.png")));
        browser.screenshot(
            &demo.url(&path),
            390,
            &dir.join(format!("{name}-phone.png")),
        );
    }
    alerts_link_to_their_pages(&demo);
}

/// Alerts link to the pages that explain them, and those pages answer. (Part of the test
/// above: one demo at a time serves the usual port.)
fn alerts_link_to_their_pages(demo: &Demo) {
    let (status, body) = demo.get("/api/v1/alerts?limit=1000");
    assert_eq!(status, 200);
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let link_of = |id: &str| -> String {
        let alert = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"].as_str().unwrap().starts_with(id))
            .unwrap_or_else(|| panic!("no alert {id}…"));
        alert["alert"]["link"].as_str().unwrap().to_string()
    };
    assert_eq!(
        link_of("drift_detected:payments:6:"),
        demo.url("/streams/payments/windows/6")
    );
    assert_eq!(
        link_of("retrain_triggered:fraud-error-change/fraud/payments/6"),
        demo.url("/streams/payments/windows/6#decision-fraud-error-change")
    );
    assert!(link_of("run_succeeded:").starts_with(&demo.url("/runs/run-")));
    assert!(link_of("baseline_rotated:").ends_with("/streams/payments#baselines"));
    for id in [
        "drift_detected:",
        "retrain_triggered:",
        "run_succeeded:",
        "baseline_rotated:",
    ] {
        let link = link_of(id);
        let path = link.strip_prefix(&demo.base).unwrap();
        let path = path.split('#').next().unwrap();
        assert_eq!(demo.get(path).0, 200, "{id}: {link}");
    }
    assert_eq!(demo.get("/streams/nope").0, 404);
    assert_eq!(demo.get("/runs/nope").0, 404);
    assert_eq!(demo.get("/assets/dashboard.css").0, 200);
    assert_eq!(demo.get("/assets/live.js").0, 200);
}
