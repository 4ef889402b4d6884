//! Command-line interface: `run` the service, `drift` compares two data sets, `baseline` builds
//! and inspects training baselines, `config check`, `replay` backtests policies, `demo` shows
//! the whole loop, `task` holds the built-in DAG tasks. Errors are typed here and mapped to
//! exit codes in `main.rs`.

//!
//! Layout: `args.rs` (the commands' arguments), `drift.rs`, `commands.rs` (the others).

mod args;
mod backtest;
mod commands;
mod drift;
mod store;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::baseline::BaselineError;
use crate::decode::{DecodeError, Schema};

pub use args::{
    BaselineCommand, BuildArgs, ConfigCommand, DecisionArgs, DriftArgs, OutputFormat, RecordedArgs,
    ReplayArgs, StoreCommand,
};
pub use backtest::{BacktestArgs, BacktestFormat};
use commands::{run_build, run_config_check, run_convert, run_replay, run_service, run_show};
use drift::run_drift;

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
    /// Migrate or check the store (SQLite or the PostgreSQL instances share).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Replay recorded data through a stream's windows, detectors and policies, and print when
    /// each policy would have triggered.
    Replay(ReplayArgs),
    /// Compare policy sets on recorded labelled data by retrains and accuracy: every trigger
    /// runs the model's DAG for real, and the retrained model scores what follows.
    Backtest(backtest::BacktestArgs),
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
    /// A backtest could not run.
    #[error(transparent)]
    Backtest(#[from] crate::backtest::BacktestError),
    /// The demo could not run.
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    /// A built-in task failed.
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The store could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The store's schema is not this version's (`driftgate store migrate`).
    #[error("{0}")]
    Schema(String),
    /// An input has too few usable records to compare or profile.
    #[error("{0}")]
    TooFewRecords(String),
    /// The data cannot be tested jointly (`drift --multivariate`).
    #[error("{0}")]
    Multivariate(String),
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
        Command::Baseline(BaselineCommand::Convert { input, output }) => {
            run_convert(&input, &output)
        }
        Command::Config(ConfigCommand::Check { file }) => run_config_check(&file),
        Command::Store(command) => store::run(&command),
        Command::Replay(args) => run_replay(&args),
        Command::Backtest(args) => backtest::run_backtest(&args),
        Command::Demo(args) => {
            crate::demo::run(&args)?;
            Ok(CommandOutcome::Done)
        }
        Command::Task(command) => {
            let mut text = crate::task::run(&command)?;
            if !text.is_empty() {
                text.push('\n');
                write_stdout(&text)?;
            }
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
