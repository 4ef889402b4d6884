//! `driftgate backtest`: policy sets compared by retrains and accuracy, with real retraining
//! in simulated time ([`crate::backtest`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{write_stdout, CliError, CommandOutcome};
use crate::backtest::{Input, Options, PolicySet};

/// Arguments of `driftgate backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The service configuration file (TOML): streams, models, DAGs, and the policies compared
    /// when no --policies is given.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where the recorded labelled data comes from (a topic is read again for each set).
    #[command(flatten)]
    pub recorded: super::args::RecordedArgs,
    /// A policy set to compare: a TOML file of `[[policies]]` used in place of the
    /// configuration's; repeat for several. `never` and `every-window` are always compared.
    #[arg(long, value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// The stream (needed when the configuration has several).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The model judged, whose predictions the records carry (needed when the stream has
    /// several models with a DAG).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// How long every run is in flight, in event time (e.g. "40s"); default: as long as it took.
    /// Give it for results that repeat exactly.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub run_time: Option<std::time::Duration>,
    /// The initial model (a `driftgate task train` model file); default: a manual run of the
    /// model's DAG trains it.
    #[arg(long, value_name = "FILE")]
    pub initial_model: Option<PathBuf>,
    /// Keep every set's registry, runs, logs and store in this new or empty directory; default:
    /// a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<BacktestFormat>,
    /// Also draw accuracy over time per policy set, retrains marked, as SVG.
    #[arg(long, value_name = "OUT.svg")]
    pub chart: Option<PathBuf>,
}

/// Output format of a backtest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    /// One line per policy set (default on a terminal).
    Table,
    /// Every set, window, decision and run (default when piped).
    Json,
    /// One self-contained HTML page: the chart, the sets side by side and every run.
    Html,
}

/// Runs the backtest and prints it.
pub(super) fn run_backtest(args: &BacktestArgs) -> Result<CommandOutcome, CliError> {
    let recorded = &args.recorded;
    let input = match (&recorded.input, &recorded.topic) {
        (Some(path), _) => Input::File(path.clone()),
        (None, Some(topic)) => Input::Topic {
            topic: topic.clone(),
            range: super::commands::topic_range(
                recorded.start.as_deref(),
                recorded.end.as_deref(),
            )?,
        },
        (None, None) => {
            return Err(CliError::Settings(vec!["give --input or --topic".into()]));
        }
    };
    let options = Options {
        config: args.config.clone(),
        input,
        sets: args.policies.iter().cloned().map(PolicySet::File).collect(),
        stream: args.stream.clone(),
        model: args.model.clone(),
        run_time: args.run_time,
        initial_model: args.initial_model.clone(),
        work: args.work.clone(),
    };
    let backtest = crate::backtest::backtest(&options, |name| {
        tracing::info!(set = name, "backtesting a policy set");
    })?;
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        BacktestFormat::Table
    } else {
        BacktestFormat::Json
    });
    let chart = || {
        crate::backtest::chart(&backtest)
            .map_err(|message| CliError::Output(std::io::Error::other(message)))
    };
    if let Some(path) = &args.chart {
        std::fs::write(path, chart()?).map_err(|e| {
            CliError::Output(std::io::Error::other(format!("{}: {e}", path.display())))
        })?;
    }
    let text = match format {
        BacktestFormat::Table => crate::backtest::table(&backtest),
        BacktestFormat::Html => crate::api::pages::report::backtest_html(&backtest, &chart()?),
        BacktestFormat::Json => {
            let mut json = serde_json::to_string_pretty(&backtest).expect("backtests serialise");
            json.push('\n');
            json
        }
    };
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}
