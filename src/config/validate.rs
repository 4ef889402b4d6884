//! Validation: raw file → typed settings, every problem at once with its key path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawConfig;

pub use super::problems::ConfigProblem;
use super::problems::Problems;
pub use crate::pipeline::StreamSettings;

/// A validated service configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Brokers, or `None` for the embedded mock cluster.
    pub bootstrap_servers: Option<String>,
    /// The consumer group.
    pub group_id: String,
    /// Where a partition whose checkpoint is beyond its end resumes.
    pub offset_reset: super::raw::OffsetReset,
    /// librdkafka properties passed through.
    pub kafka_properties: BTreeMap<String, String>,
    /// Where the store is.
    pub store: crate::store::StoreUrl,
    /// This instance's name (its lineage in a shared store).
    pub instance: String,
    /// How long an instance's lease in a shared store lasts.
    pub lease: Duration,
    /// Interval between checkpoints.
    pub checkpoint_interval: Duration,
    /// Window reports kept per stream.
    pub keep_windows: u64,
    /// The API's connections to the store.
    pub pool_size: u32,
    /// The API's address.
    pub api_listen: SocketAddr,
    /// The API's timeouts and limits.
    pub api_limits: crate::api::Limits,
    /// Time allowed for a graceful stop.
    pub shutdown_timeout: Duration,
    /// The streams, in file order.
    pub streams: Vec<StreamSettings>,
    /// The `include` patterns, for watching the files they name.
    pub includes: Vec<String>,
    /// Streams a reload may leave without models or policies.
    pub unmonitored_streams: Vec<String>,
    /// Models, from the service file then the included files.
    pub models: Vec<crate::policy::Model>,
    /// Trigger policies, in the same order.
    pub policies: Vec<crate::policy::Policy>,
    /// Alert sinks and data-quality thresholds.
    pub alerts: super::alerts::AlertSettings,
    /// Retraining DAGs.
    pub dags: Vec<crate::dag::Dag>,
    /// Where and how runs execute.
    pub runs: RunSettings,
}

/// Validated `[runs]`.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Artifacts, contexts and logs go under this directory.
    pub dir: PathBuf,
    /// Runs at once.
    pub max_parallel: usize,
    /// Queue (true) or skip (false) a run triggered while one of the same model is in flight.
    pub queue_when_busy: bool,
    /// The bearer token for manual runs.
    pub token: Option<String>,
}

/// librdkafka properties driftgate sets itself; setting them in `kafka.properties` is an error.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "set kafka.group_id instead"),
    (
        "enable.auto.commit",
        "driftgate commits offsets only after its checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "driftgate stores offsets only after its checkpoint",
    ),
];

/// `service.instance`, or the host name.
fn instance(name: Option<&str>, problems: &mut Problems) -> Option<String> {
    let name = match name {
        Some(name) => name.to_string(),
        None => host_name(),
    };
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        problems.add(
            "service.instance",
            format!("`{name}` is not a name: letters, digits, `.`, `_` and `-`, at most 63"),
        );
        return None;
    }
    Some(name)
}

/// The host's name (`driftgate` when it has none).
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname writes at most that much.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "driftgate".to_string(),
    }
}

/// `store.url` or `store.path` (exactly one), with PostgreSQL's connection settings.
fn store(raw: &super::raw::RawStore, problems: &mut Problems) -> Option<crate::store::StoreUrl> {
    let connect_timeout = problems.duration("store.connect_timeout", &raw.connect_timeout);
    let statement_timeout = problems.duration("store.statement_timeout", &raw.statement_timeout);
    let settings = crate::store::PostgresSettings {
        connect_timeout: connect_timeout?,
        statement_timeout: statement_timeout?,
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
    };
    let (key, text) = match (&raw.url, &raw.path) {
        (Some(_), Some(_)) => {
            problems.add("store.url", "give `store.url` or `store.path`, not both");
            return None;
        }
        (None, None) => {
            problems.add(
                "store.url",
                "is missing: e.g. `url = \"sqlite:var/driftgate.db\"`",
            );
            return None;
        }
        (Some(url), None) => ("store.url", url.trim().to_string()),
        (None, Some(path)) if path.trim().is_empty() => {
            problems.add("store.path", "is empty");
            return None;
        }
        (None, Some(path)) => ("store.path", format!("sqlite:{}", path.trim())),
    };
    crate::store::StoreUrl::parse(&text, settings)
        .map_err(|message| problems.add(key, message))
        .ok()
}

pub(super) fn validate(raw: RawConfig, _path: &Path) -> Result<ServiceConfig, Vec<ConfigProblem>> {
    let mut problems = Problems::default();
    let servers = raw.kafka.bootstrap_servers.trim();
    if servers.is_empty() {
        problems.add("kafka.bootstrap_servers", "is empty");
    }
    if raw.kafka.group_id.trim().is_empty() {
        problems.add("kafka.group_id", "is empty");
    }
    let kafka_properties = kafka_properties(&raw, &mut problems);
    let store = store(&raw.store, &mut problems);
    let lease = problems.duration("store.lease", &raw.store.lease);
    let instance = instance(raw.service.instance.as_deref(), &mut problems);
    let checkpoint_interval =
        problems.duration("store.checkpoint_interval", &raw.store.checkpoint_interval);
    if raw.store.keep_windows == 0 {
        problems.add("store.keep_windows", "must be at least 1");
    }
    if raw.store.pool_size == 0 {
        problems.add("store.pool_size", "must be at least 1");
    }
    let api_listen = listen(&raw.api.listen, &mut problems);
    let api_limits = api_limits(&raw.api, &mut problems);
    let shutdown_timeout =
        problems.duration("service.shutdown_timeout", &raw.service.shutdown_timeout);
    let streams = super::streams::streams(&raw.streams, &mut problems);
    for (i, name) in raw.unmonitored_streams.iter().enumerate() {
        if !streams.iter().any(|s| &s.name == name) {
            problems.add(
                format!("unmonitored_streams[{i}]"),
                "is not a stream's name",
            );
        }
    }
    let files = policy_files(&raw, &streams, api_listen, &mut problems);
    let runs = runs(&raw, &mut problems);
    if !problems.is_empty() {
        return Err(problems.into_list());
    }
    Ok(ServiceConfig {
        includes: raw.include.clone(),
        unmonitored_streams: raw.unmonitored_streams.clone(),
        models: files.models,
        policies: files.policies,
        bootstrap_servers: (servers != "embedded").then(|| servers.to_string()),
        group_id: raw.kafka.group_id,
        offset_reset: raw.kafka.on_offset_reset,
        kafka_properties,
        store: store.expect("validated"),
        instance: instance.expect("validated"),
        lease: lease.expect("validated"),
        checkpoint_interval: checkpoint_interval.expect("validated"),
        keep_windows: raw.store.keep_windows,
        pool_size: raw.store.pool_size,
        api_listen: api_listen.expect("validated"),
        api_limits: api_limits.expect("validated"),
        shutdown_timeout: shutdown_timeout.expect("validated"),
        streams,
        alerts: files.alerts,
        dags: files.dags,
        runs,
    })
}

/// `kafka.properties` with `kafka.properties_env` resolved; driftgate's own properties refused.
fn kafka_properties(raw: &RawConfig, problems: &mut Problems) -> BTreeMap<String, String> {
    let mut properties = raw.kafka.properties.clone();
    for (property, variable) in &raw.kafka.properties_env {
        let key = format!("kafka.properties_env.\"{property}\"");
        if properties.contains_key(property) {
            problems.add(key, "is also set in kafka.properties: set it in one place");
            continue;
        }
        match std::env::var(variable) {
            Ok(value) if !value.is_empty() => {
                properties.insert(property.clone(), value);
            }
            _ => problems.add(key, format!("environment variable {variable} is not set")),
        }
    }
    for (property, advice) in OWNED_PROPERTIES {
        if properties.contains_key(*property) {
            problems.add(format!("kafka.properties.\"{property}\""), *advice);
        }
    }
    properties
}

/// The API's timeouts and limits.
fn api_limits(raw: &super::raw::RawApi, problems: &mut Problems) -> Option<crate::api::Limits> {
    let header_timeout = problems.duration("api.header_timeout", &raw.header_timeout);
    let request_timeout = problems.duration("api.request_timeout", &raw.request_timeout);
    let counts = [
        ("api.max_connections", raw.max_connections, 1),
        (
            "api.max_concurrent_requests",
            raw.max_concurrent_requests,
            1,
        ),
        ("api.max_response_bytes", raw.max_response_bytes, 65_536),
    ];
    for (key, value, least) in counts {
        if value < least {
            problems.add(key, format!("must be at least {least}"));
        }
    }
    Some(crate::api::Limits {
        header_timeout: header_timeout?,
        request_timeout: request_timeout?,
        max_connections: raw.max_connections.max(1),
        max_concurrent_requests: raw.max_concurrent_requests.max(1),
        max_response_bytes: raw.max_response_bytes,
    })
}

/// The API's listen address.
fn listen(text: &str, problems: &mut Problems) -> Option<SocketAddr> {
    let parsed = text.parse::<SocketAddr>().ok();
    if parsed.is_none() {
        problems.add(
            "api.listen",
            format!("{text:?} is not an address like \"127.0.0.1:9464\""),
        );
    }
    parsed
}

/// What the service file and the files it includes define besides streams.
struct PolicyFiles {
    models: Vec<crate::policy::Model>,
    policies: Vec<crate::policy::Policy>,
    alerts: super::alerts::AlertSettings,
    dags: Vec<crate::dag::Dag>,
}

/// Models, policies, alert sinks and DAGs, from the service file and its includes.
fn policy_files(
    raw: &RawConfig,
    streams: &[StreamSettings],
    api_listen: Option<SocketAddr>,
    problems: &mut Problems,
) -> PolicyFiles {
    let mut sources = super::policies::PolicySources::default();
    for (i, model) in raw.models.iter().enumerate() {
        sources.models.push((String::new(), i, model.clone()));
    }
    for (i, policy) in raw.policies.iter().enumerate() {
        sources.policies.push((String::new(), i, policy.clone()));
    }
    for (i, dag) in raw.dags.iter().enumerate() {
        sources.dags.push((String::new(), i, dag.clone()));
    }
    super::policies::read_includes(&raw.include, &mut sources, problems);
    if let Some(set) = &raw.policy_set {
        sources.policies = super::policies::read_policy_set(set, problems);
    }
    let named: Vec<&str> = raw.streams.iter().map(|s| s.name.as_str()).collect();
    let (models, policies) = super::policies::validate(&sources, streams, &named, problems);
    // Sinks may name models from any file, valid or not: an unknown name is the only error.
    let model_names: Vec<String> = sources
        .models
        .iter()
        .map(|(_, _, m)| m.name.clone())
        .collect();
    let alerts = super::alerts::validate(&raw.alerts, api_listen, &model_names, problems);
    let features: std::collections::BTreeSet<String> = raw
        .streams
        .iter()
        .flat_map(|s| s.features.iter().map(|f| f.name.clone()))
        .collect();
    let dags = super::dags::validate(&sources.dags, &features, problems);
    model_dags(&sources, problems);
    PolicyFiles {
        models,
        policies,
        alerts,
        dags,
    }
}

/// Every model's DAG must be defined.
fn model_dags(sources: &super::policies::PolicySources, problems: &mut Problems) {
    let defined: Vec<&str> = sources
        .dags
        .iter()
        .map(|(_, _, d)| d.name.as_str())
        .collect();
    for (prefix, i, model) in &sources.models {
        let Some(dag) = &model.dag else { continue };
        if !defined.contains(&dag.as_str()) {
            let known = if defined.is_empty() {
                "none defined".to_string()
            } else {
                defined.join(", ")
            };
            problems.add(
                format!("{prefix}models[{i}].dag"),
                format!("no DAG `{dag}` (DAGs: {known})"),
            );
        }
    }
}

/// `[runs]`: where runs live, how many at once, what to do when busy, the manual-run token.
fn runs(raw: &RawConfig, problems: &mut Problems) -> RunSettings {
    let queue_when_busy = match raw.runs.when_busy.as_str() {
        "queue" => true,
        "skip" => false,
        other => {
            problems.add("runs.when_busy", format!("{other:?}: use queue or skip"));
            true
        }
    };
    let token = raw
        .runs
        .token_env
        .as_ref()
        .and_then(|var| match std::env::var(var) {
            Ok(token) => match weak_token(&token) {
                None => Some(token),
                Some(why) => {
                    problems.add("runs.token_env", format!("the token in {var} {why}"));
                    None
                }
            },
            Err(_) => {
                problems.add(
                    "runs.token_env",
                    format!("environment variable {var} is not set"),
                );
                None
            }
        });
    RunSettings {
        dir: PathBuf::from(&raw.runs.dir),
        max_parallel: raw.runs.max_parallel.max(1),
        queue_when_busy,
        token,
    }
}

/// The fewest characters a bearer token may have.
const MIN_TOKEN_CHARS: usize = 16;

/// Why `token` cannot guard the API (empty, short, a placeholder), or `None` when it can.
fn weak_token(token: &str) -> Option<String> {
    let folded: String = token
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let placeholder = [
        "changeme",
        "replaceme",
        "yourtoken",
        "example",
        "placeholder",
    ]
    .iter()
    .any(|p| folded.contains(p));
    if token.trim().is_empty() {
        Some("is empty".into())
    } else if placeholder {
        Some("is a placeholder: set a random one, e.g. `openssl rand -hex 24`".into())
    } else if token.chars().count() < MIN_TOKEN_CHARS {
        Some(format!(
            "has fewer than {MIN_TOKEN_CHARS} characters: set a random one, e.g. `openssl rand -hex 24`"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::weak_token;

    #[test]
    fn issue_21_empty_short_and_placeholder_tokens_are_refused() {
        for weak in [
            "",
            "  ",
            "t",
            "test-token",
            "changeme",
            "CHANGE-ME-please-0123456789",
        ] {
            assert!(weak_token(weak).is_some(), "{weak:?} accepted");
        }
        assert_eq!(weak_token("3f9a1c0b7e2d48a6b5c4d3e2f1a0b9c8"), None);
    }
}
