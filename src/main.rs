//! The `driftgate` binary: parse the command line, set up logging, run, map errors to exit codes.
//!
//! Exit codes: 0 success; 2 bad input (data, schema, baseline, settings, configuration); 3 drift detected with
//! `--fail-on-drift`; 1 anything else.

use std::process::ExitCode;

use clap::Parser;
use driftgate::cli::{self, Cli, CliError, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIFTGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli::run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::DriftDetected) => ExitCode::from(3),
        Err(err) => {
            let report = anyhow::Error::from(err);
            eprintln!("error: {report:#}");
            exit_code(report.downcast_ref::<CliError>())
        }
    }
}

fn exit_code(err: Option<&CliError>) -> ExitCode {
    match err {
        Some(
            CliError::Decode(_)
            | CliError::Baseline(_)
            | CliError::Settings(_)
            | CliError::Config(_)
            | CliError::Replay(_),
        ) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
