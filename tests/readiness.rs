//! Issue 14: a service whose brokers cannot be reached says so once per interval, in one line
//! that names `kafka.bootstrap_servers` and the address, and `/readyz` says why it is not ready.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{free_address, http_get};

#[test]
fn issue_14_unreachable_brokers_one_line_per_interval_and_a_readyz_reason() {
    // A port nothing listens on: bound, then released.
    let closed = free_address();
    let api = free_address();
    let store = tempfile::tempdir().unwrap();
    let mut service = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["run", "--config", "config/driftgate.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS", &closed)
        .env("DRIFTGATE__API__LISTEN", &api)
        .env("DRIFTGATE__STORE__PATH", store.path().join("s.db"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(service.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut summaries = Vec::new();
    // The second summary line is the signal that one interval has passed.
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("cannot reach the Kafka brokers") {
            summaries.push(Instant::now());
            if summaries.len() == 1 {
                let (status, body) = readyz_when_reason(&api);
                assert_eq!(status, 503, "{body}");
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["ready"], false);
                let reason = body["reason"].as_str().unwrap();
                assert!(reason.contains(&closed), "{reason}");
                assert!(reason.contains("kafka.bootstrap_servers"), "{reason}");
            }
        }
        lines.push(line);
        if summaries.len() == 2 {
            break;
        }
    }
    service.kill().unwrap();
    service.wait().unwrap();
    let all = lines.join("\n");
    assert_eq!(summaries.len(), 2, "{all}");
    assert!(
        summaries[1] - summaries[0] >= Duration::from_secs(9),
        "throttled: {all}"
    );
    assert!(
        all.contains(&format!("{closed} (kafka.bootstrap_servers)")),
        "{all}"
    );
    assert!(all.contains("driftgate starting"), "the banner: {all}");
    // Nothing else: no librdkafka lines, no per-poll errors.
    assert_eq!(lines.len(), 3, "{all}");
}

/// `/readyz` once it carries the broker reason (the API may start a moment after the line).
fn readyz_when_reason(api: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(api).is_ok() {
            let (status, body) = http_get(api, "/readyz");
            if body.contains("cannot reach") || Instant::now() > deadline {
                return (status, body);
            }
        }
        assert!(Instant::now() < deadline, "the API did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
