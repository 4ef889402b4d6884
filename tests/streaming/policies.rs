//! The embedded broker, policy files reloaded without a restart, replay against the live service,
//! and streams windowed by count and by event time.

use super::*;

/// `bootstrap_servers = "embedded"` needs no broker at all, so this test always runs: the
/// in-process cluster listens on loopback, and its address is in the service's log.
#[test]
fn the_embedded_broker_runs_the_whole_loop_with_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let mut embedded = start_embedded(dir.path(), "", "");
    embedded.produce(4);
    embedded.wait_for_windows(2);
    assert!(terminate(&mut embedded.service).success());
}

/// The policy each window of the reload test was judged by.
fn judged_by(store: &Path) -> Vec<(u64, String, String)> {
    let mut judged: Vec<_> = Store::open_read_only(&StoreUrl::sqlite(store))
        .unwrap()
        .latest_decisions(None, 100)
        .unwrap()
        .into_iter()
        .map(|d| (d.window, d.policy, d.outcome.as_str().to_string()))
        .collect();
    judged.sort();
    judged
}

fn reloads(api: &str, outcome: &str) -> u64 {
    let (_, metrics) = http_get(api, "/metrics");
    let prefix = format!("driftgate_config_reloads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_broken_policy_file_is_refused_and_a_fixed_one_applies_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let file = policies.join("payments.toml");
    let model = "[[models]]\nname = \"fraud\"\nstream = \"payments\"\nfeatures = [\"amount\"]\n";
    let policy = |name: &str, rule: &str| {
        format!("{model}[[policies]]\nname = \"{name}\"\nmodel = \"fraud\"\nwhen = {rule}\n")
    };
    std::fs::write(
        &file,
        policy("quiet", r#"{ dataset = "share", above = 2.0 }"#),
    )
    .unwrap();
    // Reloading through the API takes the runs' bearer token.
    let include = format!(
        "include = [\"{}/*.toml\"]\n[runs]\ntoken_env = \"DRIFTGATE_TEST_TOKEN\"",
        policies.display()
    );
    let mut embedded = start_embedded(dir.path(), &include, "");
    let api = embedded.api.clone();
    embedded.produce(2);
    embedded.wait_for_windows(1);

    // A broken file: the reload is refused with the file and key path, the old policy stays.
    std::fs::write(
        &file,
        policy("broken", r#"{ feature = "amount", metric = "nonsense" }"#),
    )
    .unwrap();
    let (status, body) = http(&api, "POST", "/api/v1/reload");
    assert_eq!(status, 401, "issue 14: reload needs the token: {body}");
    let auth = format!("Authorization: Bearer {RUN_TOKEN}");
    let reload = || http_with(&api, "POST", "/api/v1/reload", &[&auth], "");
    let (status, body) = reload();
    assert_eq!(status, 422, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "refused");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}: policies[0].when.metric", file.display())),
        "{error}"
    );
    embedded.produce(2);
    embedded.wait_for_windows(2);
    assert!(reloads(&api, "refused") >= 1);
    // The refusal is an alert too (no sink here: kept in the outbox as unrouted).
    let (_, body) = http_get(&api, "/api/v1/alerts?status=unrouted");
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let refused = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "config_reload_failed")
        .unwrap_or_else(|| panic!("a config_reload_failed alert in {body}"));
    assert!(
        refused["alert"]["error"]
            .as_str()
            .unwrap()
            .contains("policies[0].when.metric"),
        "{refused}"
    );

    // A fixed file: the watcher applies it (no request, no restart) and the next window is
    // judged by the new policy.
    std::fs::write(
        &file,
        policy("loud", r#"{ dataset = "share", above = -1.0 }"#),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloads(&api, "applied") == 0 {
        assert!(Instant::now() < deadline, "the file change was not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    embedded.produce(2);
    embedded.wait_for_windows(3);
    assert_eq!(
        judged_by(&embedded.store),
        [
            (0, "quiet".to_string(), "not_triggered".to_string()),
            (1, "quiet".to_string(), "not_triggered".to_string()),
            (2, "loud".to_string(), "triggered".to_string()),
        ]
    );

    // SIGHUP reloads too.
    let applied = reloads(&api, "applied");
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(
        unsafe { libc::kill(embedded.service.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloads(&api, "applied") == applied {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And so does the API, with the token.
    let (status, body) = reload();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["policies"].as_u64()),
        (Some("applied"), Some(1))
    );
    assert!(terminate(&mut embedded.service).success());
}

#[test]
fn replay_decides_exactly_as_the_live_service_on_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let policies = r#"
[[models]]
name = "fraud"
stream = "payments"
features = ["amount", "country"]

[[policies]]
name = "amount-ks"
model = "fraud"
consecutive = 2
cooldown = "5m"
when = { feature = "amount", metric = "ks.p_value", below = 0.001 }

[[policies]]
name = "amount-rolling"
model = "fraud"
when = { feature = "amount", metric = "ks.statistic", rolling = { deviations = 2.0, over = 4 } }

[[policies]]
name = "any-drift"
model = "fraud"
k_of_n = { k = 2, n = 3 }
budget = { max_runs = 2, per = "1h" }
when = { feature = "*" }
"#;
    let mut embedded = start_embedded(dir.path(), "", policies);
    // 16 windows of 200 records, a record a second; amount shifts from window 6 to 11.
    let mut rng = SplitMix64::new(41);
    let mut payloads = Vec::new();
    for m in 0..32u64 {
        let shift = if (12..22).contains(&m) { 1.0 } else { 0.0 };
        let records: Vec<_> = (0..100u64)
            .map(|r| {
                serde_json::json!({
                    "ts": 1_700_000_000_000u64 + (m * 100 + r) * 1000,
                    "amount": rng.normal() + shift,
                    "country": country(&mut rng),
                })
            })
            .collect();
        payloads.push(serde_json::json!({ "records": records }).to_string());
    }
    embedded.send_payloads(&payloads);
    embedded.wait_for_windows(16);
    assert!(terminate(&mut embedded.service).success());
    let live: Vec<Decision> = {
        let mut all = Store::open_read_only(&StoreUrl::sqlite(&embedded.store))
            .unwrap()
            .latest_decisions(None, 1000)
            .unwrap();
        all.reverse();
        all
    };
    assert_eq!(live.len(), 48, "16 windows × 3 policies");
    assert!(
        live.iter().any(|d| d.outcome == Outcome::Triggered),
        "the shift triggers something"
    );

    let input = dir.path().join("recorded.jsonl");
    std::fs::write(&input, payloads.join("\n") + "\n").unwrap();
    // `driftgate replay` on the same configuration and records; its standard output.
    let replay = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .arg("replay")
            .arg("--config")
            .arg(dir.path().join("embedded.toml"))
            .arg("--input")
            .arg(&input)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let replayed: serde_json::Value = serde_json::from_str(&replay(&["--format", "json"])).unwrap();
    let replayed = replayed_decisions(&replayed);
    assert_eq!(replayed, live);

    let chart = dir.path().join("replay.svg");
    let table = replay(&["--format", "table", "--chart", chart.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "an SVG chart");
    for title in [
        "amount ks.p_value",
        "amount ks.statistic",
        "country detected",
    ] {
        assert!(svg.contains(title), "a panel for {title}");
    }
    assert!(svg.contains("<circle"), "triggers are marked");
    let triggered = live
        .iter()
        .filter(|d| d.outcome == Outcome::Triggered)
        .count();
    assert!(
        table.contains(&format!("retrains: {triggered}\n")),
        "{table}"
    );
    assert!(
        table.contains("32 messages, 3200 records, 16 windows"),
        "{table}"
    );
}

/// Two streams in one service: a count-windowed stream and a duration-windowed one, each on
/// its own topic, each reported and checkpointed on its own.
#[test]
fn two_streams_one_by_count_one_by_event_time_duration() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    write_baseline(&baseline, 51, 3000);
    let (orders, clicks) = (unique("orders"), unique("clicks"));
    create_topic(&broker, &orders, 2);
    create_topic(&broker, &clicks, 1);
    let store = dir.path().join("two.db");
    let config = dir.path().join("two.toml");
    let api = free_address();
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
bootstrap_servers = "{broker}"
group_id = "{group}"
[store]
path = "{store}"
checkpoint_interval = "200ms"
[api]
listen = "{api}"
[[streams]]
name = "orders"
topic = "{orders}"
baseline = "{baseline}"
window = {{ records = 300 }}
features = [{{ name = "amount", kind = "numeric" }}, {{ name = "country", kind = "categorical" }}]
[[streams]]
name = "clicks"
topic = "{clicks}"
baseline = "{baseline}"
window = {{ duration = "1m", grace = "30s" }}
features = [{{ name = "amount", kind = "numeric" }}]
"#,
            group = unique("group"),
            store = store.display(),
            baseline = baseline.display(),
        ),
    )
    .unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .create()
        .unwrap();
    let mut rng = SplitMix64::new(52);
    // Orders: 9 messages of 100 records over both partitions: 3 windows of 300.
    for m in 0..9 {
        let records: Vec<_> = (0..100)
            .map(|_| serde_json::json!({"amount": rng.normal(), "country": country(&mut rng)}))
            .collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
        send(&producer, &orders, Some(m % 2), payload);
    }
    // Clicks: one record every 20 s of event time (in 2023) for 3.5 minutes, one record per
    // message: minutes 0, 1 and 2 close (the first record of the next minute closes each);
    // minute 3 stays open: its end is long past by the wall clock, but the stream was not idle
    // for the 30 s grace before the test stops it.
    let start = 1_700_000_040_000i64; // a minute boundary
    for i in 0..11 {
        let record = serde_json::json!({"ts": start + i * 20_000, "amount": rng.normal()});
        send(
            &producer,
            &clicks,
            Some(0),
            serde_json::to_vec(&record).unwrap(),
        );
    }
    producer.flush(Duration::from_secs(30)).expect("delivered");

    let mut child = start_with(&config, false);
    wait_for(&store, &mut child, "3 windows in each stream", |s| {
        s.latest_windows("orders", 10).is_ok_and(|w| w.len() == 3)
            && s.latest_windows("clicks", 10).is_ok_and(|w| w.len() == 3)
    });
    // Issue 14: every error is JSON; bad and unknown parameters are 400s that name them.
    for (path, status, expected) in [
        (
            "/api/v1/decisions?modle=fraud",
            400,
            "unknown query parameter `modle`; accepted: `model`",
        ),
        (
            "/api/v1/streams/orders/windows?limit=x",
            400,
            "query parameter `limit`",
        ),
        (
            "/api/v1/streams/orders/windows?limit=5000",
            400,
            "5000 is out of range",
        ),
        ("/api/v1/runs?limit=0", 400, "0 is out of range"),
        (
            "/api/v1/decisions?outcome=fired",
            400,
            "`fired` is not an outcome; use triggered",
        ),
        ("/api/v1/decisions?from=noon", 400, "query parameter `from`"),
        (
            "/api/v1/decisions?cursor=abc",
            400,
            "query parameter `cursor`",
        ),
        ("/api/v1/nothing", 404, "no such endpoint"),
        (
            "/api/v1/streams/nope/windows",
            404,
            "no stream named `nope`",
        ),
    ] {
        let (code, body) = http_get(&api, path);
        assert_eq!(code, status, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{path}: {body}"
        );
    }
    let (_, body) = http_get(&api, "/api/v1/streams");
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "clicks"]);
    assert!(terminate(&mut child).success());

    let opened = Store::open_read_only(&StoreUrl::sqlite(&store)).unwrap();
    let mut clicks_windows = opened.latest_windows("clicks", 10).unwrap();
    clicks_windows.reverse();
    let spans: Vec<(u64, &str, &str)> = clicks_windows
        .iter()
        .map(|w| {
            (
                w.report["window"]["records"].as_u64().unwrap(),
                w.report["window"]["start"].as_str().unwrap(),
                w.report["window"]["end"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            (3, "2023-11-14T22:14:00.000Z", "2023-11-14T22:15:00.000Z"),
            (3, "2023-11-14T22:15:00.000Z", "2023-11-14T22:16:00.000Z"),
            (3, "2023-11-14T22:16:00.000Z", "2023-11-14T22:17:00.000Z"),
        ]
    );
    let open = opened.checkpoint("clicks").unwrap().unwrap().open_window;
    assert_eq!(open.records, 2, "minute 3 holds two records so far");
    let orders_total: u64 = opened
        .latest_windows("orders", 10)
        .unwrap()
        .iter()
        .map(|w| w.report["window"]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(orders_total, 900);
}
