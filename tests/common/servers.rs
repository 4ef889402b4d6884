//! The servers some integration tests need, as `scripts/test.sh` starts them: a broker
//! (`DRIFTGATE_TEST_BROKER`) and a PostgreSQL server (`DRIFTGATE_TEST_POSTGRES`).

#![allow(dead_code)]

/// The value of `variable`. Unset, the test (`what`) is not run, except under CI, where a
/// missing server fails it.
pub fn required(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) => Some(value),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{variable} is not set under CI: run the tests through scripts/test.sh")
        }
        Err(_) => {
            eprintln!("{variable} is not set: {what} not run (use scripts/test.sh)");
            None
        }
    }
}

/// A name no other test run uses, `PREFIX_PID_NANOS`: letters, digits and `_`, so it serves
/// as a database's or a topic's name.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A new, empty database on the PostgreSQL server at `server` (`postgres://USER@HOST:PORT`);
/// its name.
pub fn create_database(server: &str, prefix: &str) -> String {
    let name = unique(prefix);
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .expect("the test PostgreSQL server answers");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    name
}

/// Creates `topic` with `partitions` partitions on the tansu broker at `broker` (`TANSU` names
/// the binary; tansu creates no topic on its own).
pub fn create_topic(broker: &str, topic: &str, partitions: i32) {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    let status = std::process::Command::new(tansu)
        .args(["topic", "create", topic, "--partitions"])
        .arg(partitions.to_string())
        .args(["--broker", &format!("tcp://{broker}")])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("tansu runs");
    assert!(status.success(), "topic created");
}
