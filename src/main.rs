//! The `driftgate` binary: parse the command line, set up logging, run, map errors to exit codes.
//!
//! Exit codes: 0 success; 2 bad input (data, schema, baseline, settings, configuration); 3 drift detected with
//! `--fail-on-drift`; 1 anything else.

use std::process::ExitCode;

use clap::Parser;
use driftgate::cli::{self, Cli, CliError, CommandOutcome, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.is_service() {
        quiet_on_closed_stdout();
    }
    init_tracing(cli.log_format);
    match cli::run(cli) {
        Ok(CommandOutcome::Done) => ExitCode::SUCCESS,
        Ok(CommandOutcome::DriftDetected) => ExitCode::from(3),
        Err(err) => {
            let report = anyhow::Error::from(err);
            eprintln!("error: {report:#}");
            exit_code(report.downcast_ref::<CliError>())
        }
    }
}

/// `driftgate … | head`: a one-shot command whose reader went away stops at once and quietly,
/// as Unix tools do, instead of failing on the next write. Rust ignores SIGPIPE by default; the
/// service keeps ignoring it (its sockets report a closed peer as an error).
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to standard error, as text (coloured on a terminal) or JSON; `DRIFTGATE_LOG` filters
/// them (default: warnings, plus the service's start-up banner).
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRIFTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,driftgate::banner=info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

fn exit_code(err: Option<&CliError>) -> ExitCode {
    use driftgate::backtest::BacktestError;
    match err {
        Some(
            CliError::Decode(_)
            | CliError::Baseline(_)
            | CliError::Settings(_)
            | CliError::Config(_)
            | CliError::Replay(_)
            | CliError::Backtest(
                BacktestError::Config(_) | BacktestError::Setup(_) | BacktestError::Input { .. },
            )
            | CliError::TooFewRecords(_)
            | CliError::Multivariate(_)
            | CliError::Schema(_)
            | CliError::Demo(driftgate::demo::DemoError::Refused(_)),
        ) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
