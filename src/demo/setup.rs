//! Setting the demo up: its training set and baseline, the broker, the receiver and the
//! example configuration pointed at them.

use std::path::Path;
use std::time::Instant;

use super::{
    data, fail, receiver, stamp, DemoError, CONFIG, SECRET_ENV, SEED, TOKEN_ENV, TRAINING_RECORDS,
};
use crate::config::ServiceConfig;

/// The training set, into a file that must not exist yet (created exclusively, so nothing a
/// user has is ever replaced).
pub(super) fn write_new_training(path: &Path) -> Result<(), DemoError> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail("cannot create the directory"))?;
    }
    let mut file = match std::fs::File::create_new(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(DemoError::Refused(format!(
                "refusing to replace {}: it exists; name a new file",
                path.display()
            )))
        }
        Err(err) => return Err(fail("cannot create the training set")(err)),
    };
    let text = training_text(&mut data::Payments::new(SEED));
    file.write_all(text.as_bytes())
        .map_err(fail("cannot write the training set"))
}

pub(super) fn write_training(payments: &mut data::Payments, path: &Path) -> Result<(), DemoError> {
    std::fs::write(path, training_text(payments)).map_err(fail("cannot write the training set"))
}

/// The demo's training set: `TRAINING_RECORDS` labelled payments, one JSON record a line.
fn training_text(payments: &mut data::Payments) -> String {
    let mut text = String::new();
    for _ in 0..TRAINING_RECORDS {
        text.push_str(&serde_json::to_string(&payments.record(false)).expect("records serialise"));
        text.push('\n');
    }
    text
}

/// Points the copied configuration at the demo's broker, API address and receiver.
pub(super) fn configure(bootstrap: &str, api: &str, receiver: &str) -> Result<(), DemoError> {
    let path = Path::new(CONFIG);
    let text = std::fs::read_to_string(path).map_err(fail("cannot read the config"))?;
    let mut config: toml::Table = text.parse().map_err(fail("the example configuration"))?;
    let table = |config: &mut toml::Table, key: &str| -> toml::Table {
        match config.remove(key) {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        }
    };
    let mut kafka = table(&mut config, "kafka");
    kafka.insert("bootstrap_servers".into(), bootstrap.into());
    config.insert("kafka".into(), kafka.into());
    let mut api_table = table(&mut config, "api");
    api_table.insert("listen".into(), api.into());
    config.insert("api".into(), api_table.into());
    let mut runs = table(&mut config, "runs");
    runs.insert("token_env".into(), TOKEN_ENV.into());
    config.insert("runs".into(), runs.into());
    let mut alerts = table(&mut config, "alerts");
    alerts.insert("link_base".into(), format!("http://{api}").into());
    // The receiver prints every alert; the example's log sink would print them twice.
    let mut sinks: Vec<toml::Value> = match alerts.remove("sinks") {
        Some(toml::Value::Array(sinks)) => sinks
            .into_iter()
            .filter(|s| s.get("kind").and_then(|k| k.as_str()) != Some("log"))
            .collect(),
        _ => Vec::new(),
    };
    let mut sink = toml::Table::new();
    sink.insert("name".into(), "demo-receiver".into());
    sink.insert("kind".into(), "webhook".into());
    sink.insert("url".into(), receiver.into());
    sink.insert("secret_env".into(), SECRET_ENV.into());
    sinks.push(sink.into());
    alerts.insert("sinks".into(), sinks.into());
    config.insert("alerts".into(), alerts.into());
    std::fs::write(path, config.to_string()).map_err(fail("cannot write the config"))
}

/// The dashboard's usual address, `127.0.0.1:9464`, when it is free; any free port otherwise.
fn dashboard_address() -> Result<String, DemoError> {
    match std::net::TcpListener::bind(DASHBOARD) {
        Ok(_) => Ok(DASHBOARD.to_string()),
        Err(_) => free_address(),
    }
}

/// Where the demo serves its API and dashboard when it can.
const DASHBOARD: &str = "127.0.0.1:9464";

pub(super) fn free_address() -> Result<String, DemoError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(fail("no free loopback port"))?;
    let address = listener
        .local_addr()
        .map_err(fail("no free loopback port"))?;
    Ok(address.to_string())
}

/// The demo's training set, written, and the stream's baseline built from it (`baseline
/// build`'s code).
pub(super) fn training_and_baseline(
    payments: &mut data::Payments,
    started: Instant,
) -> Result<(), DemoError> {
    let training = Path::new("var/training/payments.jsonl");
    write_training(payments, training)?;
    let baseline = crate::baseline::build_from_file(
        training,
        &crate::source::ReadOptions::default(),
        crate::baseline::BuildSettings::default(),
        Path::new("config/baselines/payments.npz"),
    )
    .map_err(fail("cannot build the baseline"))?;
    println!(
        "{} training set: {TRAINING_RECORDS} labelled payments, {} features → baseline {}",
        stamp(started),
        baseline.features.len(),
        &baseline.id[..12]
    );
    Ok(())
}

/// What the service runs against: the embedded broker, the webhook receiver, the API's
/// address, and what the demo needs to know of the example configuration.
pub(super) struct World {
    /// The embedded broker.
    pub(super) cluster:
        rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    /// Where alerts go.
    pub(super) receiver: receiver::Receiver,
    /// The API's address.
    pub(super) api: String,
    /// The example stream.
    pub(super) stream: crate::config::StreamSettings,
    /// Records per window of the example stream.
    pub(super) window_records: u64,
    /// The service's store.
    pub(super) store: crate::store::StoreUrl,
    /// The models with a DAG.
    pub(super) models: Vec<String>,
}

impl World {
    /// Starts the broker and the receiver, points the example configuration at them and loads
    /// it; returns the world and the configuration for the service. A demo that keeps running
    /// serves its dashboard on the usual port when it is free.
    pub(super) fn start(
        secret: &str,
        started: Instant,
        keep_running: bool,
    ) -> Result<(World, ServiceConfig), DemoError> {
        let cluster = rdkafka::mocking::MockCluster::new(1)
            .map_err(fail("cannot start the embedded broker"))?;
        let receiver = receiver::Receiver::start(secret, started)
            .map_err(fail("cannot start the webhook receiver"))?;
        let api = if keep_running {
            dashboard_address()?
        } else {
            free_address()?
        };
        configure(&cluster.bootstrap_servers(), &api, &receiver.url)?;
        let config =
            crate::config::load(Path::new(CONFIG)).map_err(fail("the example configuration"))?;
        let stream =
            config.streams.first().cloned().ok_or_else(|| {
                DemoError::Failed("the example configuration has no stream".into())
            })?;
        let crate::window::WindowSpec::Records(window_records) = stream.window else {
            return Err(DemoError::Failed(
                "the demo needs a count window on the example stream".into(),
            ));
        };
        for topic in std::iter::once(&stream.topic).chain(&stream.dead_letter_topic) {
            cluster
                .create_topic(topic, 1, 1)
                .map_err(fail("cannot create a topic"))?;
        }
        let models = config
            .models
            .iter()
            .filter(|m| m.dag.is_some())
            .map(|m| m.name.clone())
            .collect();
        let world = World {
            cluster,
            receiver,
            api,
            store: config.store.clone(),
            stream,
            window_records,
            models,
        };
        Ok((world, config))
    }
}
