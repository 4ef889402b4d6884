//! Command-line interface: `run` the service, `drift` compares two data sets, `baseline` builds
//! and inspects training baselines, `config check`, `replay` backtests policies, `demo` shows
//! the whole loop, `task` holds the built-in DAG tasks. Errors are typed here and mapped to
//! exit codes in `main.rs`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::baseline::{Baseline, BaselineError, BaselineSource, BuildSettings};
use crate::decode::{DecodeError, Schema};
use crate::drift::{self, Correction, DataInfo, DriftSettings, Method};
use crate::source::progress::FileProgress;
use crate::source::{read_dataset, ReadOptions};

/// driftgate: drift detection on ML feature data, and retraining triggers.
#[derive(Debug, Parser)]
#[command(name = "driftgate", version, about)]
pub struct Cli {
    /// Log line format on standard error: `text` for people, `json` for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "DRIFTGATE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event (timestamp, level, target, message and fields).
    Json,
}

impl Command {
    /// Whether the command is a long-running service, as opposed to a one-shot command whose
    /// output may be piped into `head` (which then stops it quietly, as for any Unix tool).
    pub fn is_service(&self) -> bool {
        matches!(self, Command::Run { .. })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: consume the configured streams and report drift per window.
    Run {
        /// The service configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Compare current data with a reference (a data file or a baseline profile).
    Drift(DriftArgs),
    /// Build or inspect baseline profiles.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Check service configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Replay recorded data through a stream's windows, detectors and policies, and print when
    /// each policy would have triggered.
    Replay(ReplayArgs),
    /// Show the whole loop in about a minute: an embedded broker, drift injected into a
    /// stream, policies triggering a retraining DAG, alerts to a local webhook.
    Demo(crate::demo::DemoArgs),
    /// Built-in DAG tasks (run by the executor, inside a run).
    #[command(subcommand)]
    Task(crate::task::TaskCommand),
    /// Print a shell completion script: `driftgate completions bash > /etc/bash_completion.d/driftgate`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Arguments of `driftgate replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The service configuration file (TOML), with its models and policies.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Recorded data: JSONL (one message per line, as producers send them) or CSV.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "topic",
        conflicts_with = "topic"
    )]
    pub input: Option<PathBuf>,
    /// Instead of a file: read this topic (usually the stream's) from the configured brokers,
    /// without joining the service's group or committing offsets.
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// With --topic: where to start, inclusive: `earliest` (default), an offset for every
    /// partition, or `partition:offset` pairs (`0:1200,1:980`; other partitions start at the
    /// earliest).
    #[arg(long, value_name = "OFFSETS", requires = "topic")]
    pub start: Option<String>,
    /// With --topic: where to stop, exclusive: `latest` (default: the end when the replay
    /// starts), an offset for every partition, or `partition:offset` pairs.
    #[arg(long, value_name = "OFFSETS", requires = "topic")]
    pub end: Option<String>,
    /// The stream to replay through (needed when the configuration has several).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Also draw the policies' signals against their thresholds, triggers marked, as SVG.
    #[arg(long, value_name = "OUT.svg")]
    pub chart: Option<PathBuf>,
}

/// `driftgate config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a service configuration (with `DRIFTGATE__…` overrides applied) and print every
    /// problem with its key path; exit status 2 when it is invalid.
    Check {
        /// The service configuration file (TOML).
        file: PathBuf,
    },
}

/// Output format of the drift report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (default on a terminal).
    Table,
    /// The JSON report (default when piped).
    Json,
}

/// Arguments of `driftgate drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Reference: a JSONL/CSV data file or a baseline profile from `baseline build`.
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// Current data: a JSONL or CSV file.
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Schema file (TOML or JSON) fixing features and kinds; inferred from the reference if absent.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Count and report malformed lines instead of stopping at the first one.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Exit with status 3 when dataset drift is detected.
    #[arg(long)]
    pub fail_on_drift: bool,
    /// Decision settings.
    #[command(flatten)]
    pub decision: DecisionArgs,
}

/// Decision settings shared by commands that decide drift.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// Significance level (family-wise, before correction).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Quantile bins for numeric binned metrics (PSI, Jensen–Shannon, Hellinger).
    #[arg(long, default_value_t = drift::bins::DEFAULT_BINS)]
    pub bins: usize,
    /// Method that decides numeric features.
    #[arg(long, value_enum, default_value = "ks")]
    pub numeric_method: Method,
    /// Method that decides categorical features.
    #[arg(long, value_enum, default_value = "chi2")]
    pub categorical_method: Method,
    /// A fixed threshold for distance methods (score >= threshold is drift), replacing the
    /// sample-size-aware critical value.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Permutations for a permutation test on distance methods (0: chi-square approximation;
    /// Wasserstein then uses 1000).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed for permutation tests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Multiple-testing correction across features.
    #[arg(long, value_enum, default_value = "benjamini_hochberg")]
    pub correction: Correction,
    /// Dataset drift when at least this share of features drifts (Evidently's rule), instead of
    /// when any feature drifts after correction.
    #[arg(long)]
    pub drift_share: Option<f64>,
    /// Features with fewer usable values on either side are not tested.
    #[arg(long, default_value_t = 1)]
    pub min_samples: u64,
}

impl DecisionArgs {
    fn settings(&self) -> DriftSettings {
        DriftSettings {
            alpha: self.alpha,
            bins: self.bins,
            numeric_method: self.numeric_method,
            categorical_method: self.categorical_method,
            threshold: self.threshold,
            permutations: self.permutations,
            seed: self.seed,
            correction: self.correction,
            drift_share: self.drift_share,
            min_samples: self.min_samples,
        }
    }
}

/// `driftgate baseline …`
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Build a baseline profile from training data.
    Build(BuildArgs),
    /// Print a summary of a baseline profile (and check it).
    Show {
        /// The baseline file.
        file: PathBuf,
    },
}

/// Arguments of `driftgate baseline build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Training data: a JSONL or CSV file.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the profile.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Schema file (TOML or JSON); inferred from the data if absent.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Quantile bins per numeric feature.
    #[arg(long, default_value_t = drift::bins::DEFAULT_BINS)]
    pub bins: usize,
    /// Values kept per numeric feature before reservoir sampling starts.
    #[arg(long, default_value_t = crate::baseline::DEFAULT_SAMPLE_CAP)]
    pub sample_cap: usize,
    /// Seed of the reservoir sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Count and report malformed lines instead of stopping at the first one.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// Errors of the commands, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input data or schema.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A bad or unreadable baseline.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// Invalid settings; every problem is listed.
    #[error("invalid settings:\n  {}", .0.join("\n  "))]
    Settings(Vec<String>),
    /// An invalid service configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The service stopped on an error.
    #[error(transparent)]
    App(#[from] crate::service::ServiceError),
    /// A replay could not run.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    /// The demo could not run.
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    /// A built-in task failed.
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// An input has too few usable records to compare or profile.
    #[error("{0}")]
    TooFewRecords(String),
}

impl From<crate::baseline::BuildError> for CliError {
    fn from(error: crate::baseline::BuildError) -> CliError {
        use crate::baseline::BuildError;
        match error {
            BuildError::Read(error) => CliError::Decode(error),
            BuildError::Baseline(error) => CliError::Baseline(error),
            empty @ BuildError::Empty(_) => CliError::TooFewRecords(empty.to_string()),
        }
    }
}

/// Refuses an input with fewer than `needed` usable records: a drift check on nothing would pass
/// silently.
fn require_records(path: &Path, records: u64, needed: u64, hint: &str) -> Result<(), CliError> {
    let needed = needed.max(1);
    if records >= needed {
        return Ok(());
    }
    Err(CliError::TooFewRecords(format!(
        "{}: {records} usable record(s), {needed} needed{hint}; nothing to compare",
        path.display()
    )))
}

/// What a successful command found, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Done; nothing to signal.
    Done,
    /// Dataset drift was detected and `--fail-on-drift` was given.
    DriftDetected,
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<CommandOutcome, CliError> {
    match cli.command {
        Command::Run { config } => run_service(&config),
        Command::Drift(args) => run_drift(&args),
        Command::Baseline(BaselineCommand::Build(args)) => run_build(&args),
        Command::Baseline(BaselineCommand::Show { file }) => run_show(&file),
        Command::Config(ConfigCommand::Check { file }) => run_config_check(&file),
        Command::Replay(args) => run_replay(&args),
        Command::Demo(args) => {
            crate::demo::run(&args)?;
            Ok(CommandOutcome::Done)
        }
        Command::Task(command) => {
            let mut text = crate::task::run(&command)?;
            text.push('\n');
            write_stdout(&text)?;
            Ok(CommandOutcome::Done)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "driftgate",
                &mut script,
            );
            write_stdout(&String::from_utf8_lossy(&script))?;
            Ok(CommandOutcome::Done)
        }
    }
}

fn load_schema(path: Option<&Path>) -> Result<Option<Schema>, CliError> {
    Ok(path.map(Schema::load).transpose()?)
}

fn run_drift(args: &DriftArgs) -> Result<CommandOutcome, CliError> {
    let settings = args.decision.settings();
    settings.validate().map_err(CliError::Settings)?;
    let schema = load_schema(args.schema.as_deref())?;

    let started = std::time::Instant::now();
    let progress = FileProgress::on_stderr();
    let (reference, mut reference_info) = if Baseline::sniff(&args.reference) {
        let baseline = Baseline::load(&args.reference)?;
        let info = DataInfo {
            baseline_id: Some(baseline.id.clone()),
            records: baseline.source.records,
            invalid_lines: baseline.source.invalid_lines,
            ..DataInfo::default()
        };
        (baseline, info)
    } else {
        let options = ReadOptions {
            schema: schema.clone(),
            skip_invalid: args.skip_invalid,
            progress: Some(progress.clone()),
        };
        let dataset = read_dataset(&args.reference, &options)?;
        require_records(&args.reference, dataset.records, 1, "")?;
        // A raw reference is profiled in full (no cap) with the requested bins, so the
        // results are those of the data itself.
        let build = BuildSettings {
            bins: settings.bins,
            sample_cap: usize::MAX,
            seed: 0,
        };
        let info = DataInfo {
            records: dataset.records,
            invalid_lines: dataset.invalid_lines,
            unknown_fields: dataset.unknown_fields.clone(),
            ..DataInfo::default()
        };
        (
            Baseline::build(&dataset, build, BaselineSource::default())?,
            info,
        )
    };
    reference_info.source = Some(args.reference.display().to_string());
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reference ready"
    );

    let current_schema = schema.unwrap_or_else(|| reference.schema());
    let current = read_dataset(
        &args.current,
        &ReadOptions {
            schema: Some(current_schema),
            skip_invalid: args.skip_invalid,
            progress: Some(progress.clone()),
        },
    )?;
    progress.finish();
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "current data read"
    );
    for example in &current.invalid_examples {
        tracing::warn!(line = %example, "skipped malformed line");
    }
    require_records(
        &args.current,
        current.records,
        settings.min_samples,
        " (--min-samples)",
    )?;
    let current_info = DataInfo {
        source: Some(args.current.display().to_string()),
        baseline_id: None,
        records: current.records,
        invalid_lines: current.invalid_lines,
        unknown_fields: current.unknown_fields.clone(),
    };
    let report = drift::compare(
        &reference,
        &current,
        &settings,
        reference_info,
        current_info,
    );
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "report computed"
    );

    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Json
    });
    let text = match format {
        OutputFormat::Table => drift::table::render(&report),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(&report).expect("reports serialise");
            json.push('\n');
            json
        }
    };
    write_stdout(&text)?;
    if args.fail_on_drift && report.dataset.detected {
        return Ok(CommandOutcome::DriftDetected);
    }
    Ok(CommandOutcome::Done)
}

fn run_build(args: &BuildArgs) -> Result<CommandOutcome, CliError> {
    let progress = FileProgress::on_stderr();
    let options = ReadOptions {
        schema: load_schema(args.schema.as_deref())?,
        skip_invalid: args.skip_invalid,
        progress: Some(progress.clone()),
    };
    let settings = BuildSettings {
        bins: args.bins,
        sample_cap: args.sample_cap,
        seed: args.seed,
    };
    let built = crate::baseline::build_from_file(&args.input, &options, settings, &args.output);
    progress.finish();
    let baseline = built?;
    let dataset = &baseline.source;
    let sampled = baseline
        .features
        .iter()
        .filter(|f| matches!(f, crate::baseline::FeatureProfile::Numeric(p) if p.sampled))
        .count();
    let mut text = format!(
        "wrote baseline {} to {}: {} records, {} features",
        &baseline.id[..12],
        args.output.display(),
        dataset.records,
        baseline.features.len()
    );
    if dataset.invalid_lines > 0 {
        text.push_str(&format!(
            ", {} malformed lines skipped",
            dataset.invalid_lines
        ));
    }
    if sampled > 0 {
        text.push_str(&format!(
            ", {sampled} numeric feature(s) over the sample cap of {} (tests will run on a seeded sample)",
            args.sample_cap
        ));
    }
    text.push('\n');
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

fn run_show(path: &Path) -> Result<CommandOutcome, CliError> {
    let baseline = Baseline::load(path)?;
    let mut text = format!(
        "baseline {}\n  format version {}, created {}\n  source {} ({} records)\n  bins {}, sample cap {}, seed {}\n",
        baseline.id,
        baseline.format_version,
        baseline.created_at,
        baseline.source.path.as_deref().unwrap_or("-"),
        baseline.source.records,
        baseline.settings.bins,
        baseline.settings.sample_cap,
        baseline.settings.seed,
    );
    for feature in &baseline.features {
        let quality = feature.quality();
        let detail = match feature {
            crate::baseline::FeatureProfile::Numeric(p) => format!(
                "mean {} std {} min {} max {}{}",
                fmt_opt(p.mean),
                fmt_opt(p.std),
                fmt_opt(p.min),
                fmt_opt(p.max),
                if p.sampled { " (sampled)" } else { "" }
            ),
            crate::baseline::FeatureProfile::Categorical(p) => {
                format!("{} categories", p.counts.len())
            }
        };
        text.push_str(&format!(
            "  {:<24} {:<11} n={:<9} missing={} nan={} invalid={}  {}\n",
            feature.name(),
            feature.kind().as_str(),
            feature.count(),
            quality.missing,
            quality.nan,
            quality.invalid,
            detail
        ));
    }
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

fn run_service(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    crate::service::install_signal_handlers(&stop, config.shutdown_timeout)
        .map_err(CliError::Output)?;
    crate::service::run(config, path, stop)?;
    Ok(CommandOutcome::Done)
}

fn run_replay(args: &ReplayArgs) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(&args.config)?;
    // A progress bar on a terminal, for inputs big enough to wait for.
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(if args.input.is_some() {
                "{spinner} replaying {bytes}/{total_bytes} [{bar:30}] {eta} left"
            } else {
                "{spinner} replaying {human_pos}/{human_len} messages [{bar:30}] {eta} left"
            })
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let progress = |read, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(read);
        }
    };
    let replay = match (&args.input, &args.topic) {
        (Some(input), _) => {
            crate::replay::replay(&config, input, args.stream.as_deref(), progress)?
        }
        (None, Some(topic)) => {
            use crate::replay::{OffsetBound, TopicRange};
            let bound = |text: &Option<String>, default, flag: &str| match text {
                Some(text) => TopicRange::parse_bound(text, default)
                    .map_err(|message| CliError::Settings(vec![format!("--{flag}: {message}")])),
                None => Ok((default, Default::default())),
            };
            let (start, start_at) = bound(&args.start, OffsetBound::Earliest, "start")?;
            let (end, end_at) = bound(&args.end, OffsetBound::Latest, "end")?;
            let range = TopicRange {
                start,
                start_at,
                end,
                end_at,
            };
            crate::replay::replay_topic(&config, args.stream.as_deref(), topic, &range, progress)?
        }
        (None, None) => unreachable!("clap requires --input or --topic"),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &args.chart {
        crate::replay::chart(&replay, path).map_err(|message| {
            CliError::Output(std::io::Error::other(format!(
                "chart {}: {message}",
                path.display()
            )))
        })?;
    }
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Json
    });
    let text = match format {
        OutputFormat::Table => crate::replay::table(&replay),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(&replay).expect("replays serialise");
            json.push('\n');
            json
        }
    };
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

fn run_config_check(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let mut text = format!(
        "{} is valid: kafka {}, group {}, store {}, api {}\n",
        path.display(),
        config
            .bootstrap_servers
            .as_deref()
            .unwrap_or("embedded (in-process, not durable)"),
        config.group_id,
        config.store_path.display(),
        config.api_listen
    );
    for stream in &config.streams {
        let window = match stream.window {
            crate::window::WindowSpec::Records(n) => format!("{n} records"),
            crate::window::WindowSpec::DurationMs(ms) => {
                humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
            }
        };
        text.push_str(&format!(
            "  stream {}: topic {}, window {}, {} features, baseline {} ({})\n",
            stream.name,
            stream.topic,
            window,
            stream.schema.features.len(),
            &stream.baseline.id[..12],
            stream.baseline_path.display()
        ));
    }
    for model in &config.models {
        text.push_str(&format!(
            "  model {}: stream {}, features {}, dag {}\n",
            model.name,
            model.stream,
            model.features.join(", "),
            model.dag.as_deref().unwrap_or("-")
        ));
    }
    for policy in &config.policies {
        text.push_str(&format!(
            "  policy {}: model {}, {} signal(s), {}\n",
            policy.name,
            policy.model,
            policy.when.signals().len(),
            policy.windows.describe()
        ));
    }
    for dag in &config.dags {
        let order: Vec<&str> = dag.tasks.iter().map(|t| t.name.as_str()).collect();
        text.push_str(&format!(
            "  dag {}: {} task(s) in order {}, {} at once\n",
            dag.name,
            dag.tasks.len(),
            order.join(", "),
            dag.max_parallel
        ));
    }
    for sink in &config.alerts.sinks {
        text.push_str(&format!("  alert sink {}\n", sink.name));
    }
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.6}"))
}

fn write_stdout(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        // A closed pipe (`| head`) is not an error worth reporting.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Output),
    }
}
