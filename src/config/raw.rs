//! The configuration file as written. Every field is user documentation: keep the `///` lines
//! accurate, the README's configuration reference is built from the same words.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::decode::FeatureSpec;
use crate::drift::{Correction, Method};

/// The whole service file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How to reach Kafka.
    pub kafka: RawKafka,
    /// Where state is kept.
    pub store: RawStore,
    /// The HTTP API.
    #[serde(default)]
    pub api: RawApi,
    /// Service-wide behaviour.
    #[serde(default)]
    pub service: RawService,
    /// The monitored streams: one topic of feature records each.
    #[serde(default)]
    pub streams: Vec<RawStream>,
    /// Files with more `[[models]]` and `[[policies]]`: paths, or one `*` in the file name
    /// (`"config/policies/*.toml"`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Streams that may be left without any model or policy by a reload. A reload that would
    /// leave another stream that has some without any is refused (an emptied or half-written
    /// policies file must not switch monitoring off); name the stream here to do it on purpose.
    #[serde(default)]
    pub unmonitored_streams: Vec<String>,
    /// Models: which features of which stream they read, and the DAG that retrains them.
    #[serde(default)]
    pub models: Vec<super::policies::RawModel>,
    /// Trigger policies: when a model is retrained.
    #[serde(default)]
    pub policies: Vec<super::policies::RawPolicy>,
    /// Retraining alerts: sinks and data-quality thresholds.
    #[serde(default)]
    pub alerts: super::alerts::RawAlerts,
    /// Retraining DAGs run when a policy triggers (usually in included files).
    #[serde(default)]
    pub dags: Vec<super::dags::RawDag>,
    /// Not read from the file: a policy set (`backtest --policies`) whose `[[policies]]` take
    /// the place of every policy of the file and its includes.
    #[serde(skip)]
    pub policy_set: Option<PathBuf>,
    /// Where and how DAG runs execute.
    #[serde(default)]
    pub runs: RawRuns,
}

/// `[runs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuns {
    /// Directory for run artifacts, contexts and task logs (created).
    #[serde(default = "default_runs_dir")]
    pub dir: String,
    /// Runs executing at once across all models.
    #[serde(default = "default_max_runs")]
    pub max_parallel: usize,
    /// When a run of a model is in flight and another is triggered: `queue` it (default) or
    /// `skip` it.
    #[serde(default = "default_busy")]
    pub when_busy: String,
    /// The environment variable holding the bearer token that `POST /api/v1/runs` requires
    /// (without it, manual runs are refused).
    #[serde(default)]
    pub token_env: Option<String>,
}

impl Default for RawRuns {
    fn default() -> Self {
        RawRuns {
            dir: default_runs_dir(),
            max_parallel: default_max_runs(),
            when_busy: default_busy(),
            token_env: None,
        }
    }
}

fn default_runs_dir() -> String {
    "var/runs".to_string()
}

fn default_max_runs() -> usize {
    2
}

fn default_busy() -> String {
    "queue".to_string()
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Comma-separated `host:port` list of brokers, or `"embedded"` for an in-process broker
    /// (librdkafka's mock cluster: for trying driftgate out, not durable).
    pub bootstrap_servers: String,
    /// The consumer group. Instances with the same group share the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Any librdkafka property, passed through as is (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, …). driftgate's own settings win on conflict:
    /// `enable.auto.commit` and `enable.auto.offset.store` stay `false`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets, read from environment variables:
    /// `{ "sasl.password" = "KAFKA_SASL_PASSWORD" }` (property = variable name). A variable
    /// that is unset or empty is a configuration error.
    #[serde(default)]
    pub properties_env: BTreeMap<String, String>,
    /// What to do when a partition's checkpointed offset is beyond its end (the topic was
    /// re-created, or the broker lost data): `"earliest"` resumes from the earliest offset the
    /// partition has (nothing it holds is skipped; the default), `"latest"` from its end (only
    /// new data). Either way it is logged, counted in `driftgate_offset_resets_total` and
    /// raises an `offsets_reset` alert.
    #[serde(default = "default_offset_reset")]
    pub on_offset_reset: OffsetReset,
}

/// Where a partition whose checkpoint is beyond its end resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// From the earliest offset the partition has.
    Earliest,
    /// From its end: only new messages.
    Latest,
}

fn default_offset_reset() -> OffsetReset {
    OffsetReset::Earliest
}

/// One consumer group per deployment unless told otherwise.
fn default_group_id() -> String {
    "driftgate".to_string()
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Where the store is: `sqlite:PATH` (one instance; the file is created with its
    /// directory) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require]`
    /// (PostgreSQL 13+, shared by several instances). Give `url` or `path`, not both.
    #[serde(default)]
    pub url: Option<String>,
    /// The SQLite file holding checkpoints and window reports (the same as
    /// `url = "sqlite:PATH"`).
    #[serde(default)]
    pub path: Option<String>,
    /// PostgreSQL: give up connecting after this long, e.g. `"5s"` (a `connect_timeout` in
    /// the URL wins).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// PostgreSQL: the server cancels a statement running longer than this, e.g. `"30s"`.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: String,
    /// PostgreSQL: an instance that has not renewed its lease for this long counts as gone,
    /// e.g. `"15s"`; it renews every third of it. A process that lost its lease (stopped,
    /// cut off) stops when it notices, and writes nothing.
    #[serde(default = "default_lease")]
    pub lease: String,
    /// PostgreSQL: a PEM file of CA certificates trusted besides the system's, for servers
    /// whose certificate a private CA signed (with `sslmode=require` in the URL).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// How often open windows and offsets are checkpointed between window closes, e.g. `"5s"`.
    /// Offsets are committed to Kafka only after a checkpoint, so this bounds the records
    /// re-read after a crash.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: String,
    /// Window reports kept per stream; older ones are deleted.
    #[serde(default = "default_keep_windows")]
    pub keep_windows: u64,
    /// Connections the API keeps to the store for its requests (opened when needed, closed
    /// after a minute unused); a request waits up to `connect_timeout` for a free one.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

/// Enough for a dashboard and a few scripts polling at once.
fn default_pool_size() -> u32 {
    4
}

/// Three renewals in 15 s: a pause of a few seconds costs nothing; a dead instance's runs and
/// alerts are taken over within 15 s.
fn default_lease() -> String {
    "15s".to_string()
}

/// A reachable database answers in well under a second.
fn default_connect_timeout() -> String {
    "5s".to_string()
}

/// Longer than any of the store's statements takes on a healthy database.
fn default_statement_timeout() -> String {
    "30s".to_string()
}

/// Five seconds: little re-reading after a crash, little write load.
fn default_checkpoint_interval() -> String {
    "5s".to_string()
}

/// Enough history for dashboards and policies without unbounded growth.
fn default_keep_windows() -> u64 {
    10_000
}

/// `[api]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address the HTTP API listens on (`/healthz`, `/readyz`, `/metrics`, `/api/v1/*`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A client must send a request's headers within this time after connecting (or after its
    /// previous answer, on a kept-alive connection), or the connection is closed, e.g. `"10s"`.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: String,
    /// A request that has not been answered in this time gets `503` (waiting for a free slot
    /// counts), e.g. `"30s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    /// Connections held at once; beyond it, new connections wait in the listen queue until one
    /// closes. Keep it well under the process's open-file limit (the store needs files too).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `/api/v1/*` requests served at once; others wait for a slot (within `request_timeout`).
    /// `/healthz`, `/readyz` and `/metrics` never wait.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// The largest answer, in bytes: a bigger one is refused with `500` and a hint to ask for
    /// less (`?limit=`), so one request cannot take the service's memory.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            header_timeout: default_header_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// Long enough for a slow network, short enough that idle or stalled clients free their slot.
fn default_header_timeout() -> String {
    "10s".to_string()
}

/// Longer than any answer takes on a healthy store.
fn default_request_timeout() -> String {
    "30s".to_string()
}

/// Far more than dashboards and scrapers need, far less than the usual open-file limit.
fn default_max_connections() -> usize {
    512
}

/// Enough to keep a few cores busy; with the answer cap, bounds the memory large answers
/// take (8 × 16 MiB).
fn default_max_concurrent_requests() -> usize {
    8
}

/// 16 MiB: a thousand window reports of a few dozen features fit.
fn default_max_response_bytes() -> usize {
    16 * 1024 * 1024
}

/// Loopback only by default: exposing the API is a deliberate choice.
fn default_listen() -> String {
    "127.0.0.1:9464".to_string()
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// On SIGTERM or SIGINT, time allowed to checkpoint and stop before exiting anyway, e.g.
    /// `"10s"`. A second signal exits at once.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
    /// This instance's name among instances sharing a PostgreSQL store (letters, digits, `.`,
    /// `_`, `-`; at most 63): its checkpoints and window numbering are kept under it, and it
    /// tags window identities (`…/12@NAME`). A restarted instance with the same name takes its
    /// windows over at once. Default: the host name (a StatefulSet's pod name is stable).
    #[serde(default)]
    pub instance: Option<String>,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            shutdown_timeout: default_shutdown_timeout(),
            instance: None,
        }
    }
}

/// Long enough for a checkpoint on a slow disk, short enough for orchestrators' kill timers.
fn default_shutdown_timeout() -> String {
    "10s".to_string()
}

/// `[[streams]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// A unique name, used in the API, metrics and reports.
    pub name: String,
    /// The topic the stream's producers write feature records to.
    pub topic: String,
    /// The training baseline (from `driftgate baseline build`) windows are compared with.
    pub baseline: String,
    /// How records are cut into windows: `{ records = N }` or `{ duration = "5m" }`.
    pub window: RawWindow,
    /// Topic for messages that cannot be decoded (headers name the reason and origin). Without
    /// it, dead letters are kept in the store.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// The features to monitor and their kinds; each must be in the baseline with that kind.
    pub features: Vec<FeatureSpec>,
    /// Whether windows keep their records (features, `ts`, `prediction`, `label`) so that a
    /// retraining run gets them as `window.jsonl`. Unset: kept when a model of the stream has
    /// a DAG. Costs memory and checkpoint size in proportion to the window.
    #[serde(default)]
    pub keep_records: Option<bool>,
    /// Usable values a window holds per numeric feature before it folds them into a summary
    /// on the baseline's sample: counts per reference value and per gap between two, exact for
    /// KS, PSI, Jensen–Shannon and Hellinger (Wasserstein within the bound its report gives),
    /// after which the window's memory stops growing. Unset: where the summary becomes the
    /// smaller, about three times the baseline sample's size. `0`: never summarise. Windows are
    /// never summarised under the `wasserstein` method, which needs the values.
    #[serde(default)]
    pub summarise_after: Option<u64>,
    /// How drift is decided for this stream's windows.
    #[serde(default)]
    pub drift: RawDrift,
}

/// A stream's `window`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Close a window after this many records.
    #[serde(default)]
    pub records: Option<u64>,
    /// Close windows of this length of event time (`ts`, else the broker timestamp), aligned
    /// to the Unix epoch, e.g. `"5m"`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Duration windows only: close an idle window this long after its end, by the wall clock.
    #[serde(default)]
    pub grace: Option<String>,
}

/// A stream's `drift` settings; the same meaning as the `drift` command's options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrift {
    /// Significance level before correction.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Quantile bins for numeric binned metrics.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Method deciding numeric features.
    #[serde(default = "default_numeric_method")]
    pub numeric_method: Method,
    /// Method deciding categorical features.
    #[serde(default = "default_categorical_method")]
    pub categorical_method: Method,
    /// Fixed threshold for distance methods instead of a sample-size-aware one.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Permutations for a permutation test of every feature. `0` (default): the test's own
    /// p-value or the chi-square approximation where every expected count is large enough (5
    /// for chi-square, 20 for PSI, Jensen–Shannon and Hellinger), a permutation test elsewhere,
    /// and 1000 permutations for Wasserstein.
    #[serde(default)]
    pub permutations: usize,
    /// Seed of permutation tests.
    #[serde(default)]
    pub seed: u64,
    /// Multiple-testing correction across features.
    #[serde(default = "default_correction")]
    pub correction: Correction,
    /// Dataset drift when at least this share of features drifts.
    #[serde(default)]
    pub drift_share: Option<f64>,
    /// Features with fewer usable values in a window are not tested.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Multivariate tests of the stream's numeric features together, each window against the
    /// baseline's sample of complete rows: `["mmd", "pca"]` (MMD² with a permutation p-value;
    /// PCA reconstruction error). Empty (default): none. Needs at least two numeric features
    /// and a baseline built with a sample of rows (`--joint-rows`, on by default).
    #[serde(default)]
    pub multivariate: Vec<crate::drift::multivariate::Multivariate>,
    /// Complete rows (every numeric feature usable) a window samples uniformly for the
    /// multivariate tests; memory and checkpoints grow with it. MMD compares 500 of them.
    #[serde(default = "default_multivariate_rows")]
    pub multivariate_rows: usize,
    /// Compare every window also with the data the stream saw since its models' last
    /// succeeded retraining run, beside the baseline: policies read those numbers with
    /// `reference = "since_retrain"`, and reports carry them under `since_retrain`. Costs a
    /// sample of `since_retrain_sample` values per numeric feature in memory and in the
    /// checkpoint, and windows keep their values (no summaries).
    #[serde(default)]
    pub since_retrain: bool,
    /// Values kept per numeric feature of the data since the last retrain: a seeded uniform
    /// sample once more were seen. Categorical features keep every category's count.
    #[serde(default = "default_since_retrain_sample")]
    pub since_retrain_sample: usize,
}

impl Default for RawDrift {
    fn default() -> Self {
        let d = crate::drift::DriftSettings::default();
        RawDrift {
            alpha: d.alpha,
            bins: d.bins,
            numeric_method: d.numeric_method,
            categorical_method: d.categorical_method,
            threshold: d.threshold,
            permutations: d.permutations,
            seed: d.seed,
            correction: d.correction,
            drift_share: d.drift_share,
            min_samples: d.min_samples,
            multivariate: Vec::new(),
            multivariate_rows: default_multivariate_rows(),
            since_retrain: false,
            since_retrain_sample: default_since_retrain_sample(),
        }
    }
}

/// Enough values for KS to tell a shift of a tenth of a standard deviation, at 40 kB per
/// numeric feature.
fn default_since_retrain_sample() -> usize {
    crate::pipeline::DEFAULT_SINCE_RETRAIN_SAMPLE
}

/// Enough rows for PCA's reconstruction error and MMD's 500, at a few hundred kB per window.
fn default_multivariate_rows() -> usize {
    crate::window::DEFAULT_WINDOW_ROWS
}

/// The conventional 5% level.
fn default_alpha() -> f64 {
    0.05
}

/// Deciles: enough resolution, enough values per bin.
fn default_bins() -> usize {
    crate::drift::bins::DEFAULT_BINS
}

/// KS: a test with exact p-values, no binning.
fn default_numeric_method() -> Method {
    Method::Ks
}

/// Chi-square: the test of homogeneity for labels.
fn default_categorical_method() -> Method {
    Method::Chi2
}

/// Benjamini–Hochberg: few false alarms over many features without losing power.
fn default_correction() -> Correction {
    Correction::BenjaminiHochberg
}

/// Test every feature with any data; raise it for tiny windows.
fn default_min_samples() -> u64 {
    1
}

impl RawConfig {
    /// Reads the TOML file and applies `DRIFTGATE__…` environment overrides
    /// (`DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS=host:9092` sets `kafka.bootstrap_servers`).
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            message: if err.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                err.to_string()
            },
        })?;
        let from_file = super::toml_error::parse::<RawConfig>(path, &text).map_err(|err| {
            ConfigError::Shape {
                message: err.to_string(),
                at: err.at(),
            }
        })?;
        let overrides = environment_overrides();
        if overrides.is_empty() {
            return Ok(from_file);
        }
        with_overrides(path, &overrides).map_err(|_| ConfigError::Shape {
            message: describe_bad_overrides(path, &overrides),
            at: format!(
                "the environment overrides ({})",
                overrides.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// The `DRIFTGATE__…` variables of the environment.
pub(super) fn environment_overrides() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.len() > ENV_PREFIX.len())
        .collect()
}

const ENV_PREFIX: &str = "DRIFTGATE__";

/// The key path an override sets: `DRIFTGATE__STORE__PATH` → `store.path`.
pub(super) fn override_key(variable: &str) -> String {
    variable[ENV_PREFIX.len()..]
        .to_lowercase()
        .replace("__", ".")
}

/// The file with `overrides` applied on top, as the `config` crate merges them.
fn with_overrides(
    path: &Path,
    overrides: &BTreeMap<String, String>,
) -> Result<RawConfig, config::ConfigError> {
    let environment = config::Environment::with_prefix("DRIFTGATE")
        .separator("__")
        .try_parsing(true)
        .source(Some(overrides.clone().into_iter().collect()));
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(environment)
        .build()?
        .try_deserialize()
}

/// Names every override that breaks the file on its own, with what is wrong with it.
fn describe_bad_overrides(path: &Path, overrides: &BTreeMap<String, String>) -> String {
    let mut lines = Vec::new();
    for (name, value) in overrides {
        let one = BTreeMap::from([(name.clone(), value.clone())]);
        if let Err(err) = with_overrides(path, &one) {
            let key = override_key(name);
            let message = err.to_string();
            let message = message.split(" for key `").next().unwrap_or(&message);
            lines.push(format!(
                "environment variable {name}={value:?} (overrides {key}): {}",
                super::toml_error::plain(message, &key)
            ));
        }
    }
    if lines.is_empty() {
        lines.push(format!(
            "the DRIFTGATE__ environment overrides together do not fit {}: {}",
            path.display(),
            overrides.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    lines.join("\n")
}
