//! `driftgate config check`: the shipped configuration is valid as is, environment variables
//! override it, and an invalid file gets every problem at once with its key path.

use std::path::Path;
use std::process::{Command, Output};

fn check(file: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["config", "check"])
        .arg(file)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shipped_configuration_is_valid_as_is() {
    let out = check(Path::new("config/driftgate.toml"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("stream payments: topic payments.features, window 2000 records, 2 features"),
        "{stdout}"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let out = check(
        Path::new("config/driftgate.toml"),
        &[
            ("DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093"),
            ("DRIFTGATE__API__LISTEN", "0.0.0.0:9999"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kafka broker-1:9093"), "{stdout}");
    assert!(stdout.contains("api 0.0.0.0:9999"), "{stdout}");
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[kafka.properties]
"enable.auto.commit" = "true"

[store]
path = "var/x.db"
checkpoint_interval = "soon"

[api]
listen = "localhost"

[[streams]]
name = "payments"
topic = "payments.features"
baseline = "config/baselines/payments.json"
window = { records = 100, duration = "5m" }
features = [
  { name = "amount", kind = "categorical" },
  { name = "nope", kind = "numeric" },
]
drift = { alpha = 3.0 }

[[streams]]
name = "payments"
topic = "other"
baseline = "config/baselines/missing.json"
window = { duration = "1m", grace = "10s" }
features = [{ name = "amount", kind = "numeric" }]
"#,
    )
    .unwrap();
    let out = check(&file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for expected in [
        "kafka.properties.\"enable.auto.commit\"",
        "store.checkpoint_interval: \"soon\" is not a duration",
        "api.listen: \"localhost\" is not an address",
        "streams[0].window: set exactly one of `records` or `duration`",
        "streams[0].features: `amount` is categorical here but numeric in the baseline",
        "streams[0].features: `nope` is not in the baseline",
        "streams[0].drift: alpha must be in (0, 1)",
        "streams[1].name: `payments` is used by an earlier stream",
        "streams[1].baseline: cannot access baseline config/baselines/missing.json",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn unknown_keys_are_errors_not_silent_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[kafka]\nbootstrap_servers = \"x:1\"\n[store]\npath = \"a.db\"\ncheckpoint_intervall = \"5s\"\n",
    )
    .unwrap();
    let out = check(&file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("checkpoint_intervall"), "{stderr}");
    let out = check(&dir.path().join("absent.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such file"));
}
