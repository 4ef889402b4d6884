//! `baseline build`, `show` and `convert`, `run`, `replay` and `config check`.

use std::io::IsTerminal;
use std::path::Path;

use super::{
    fmt_opt, load_schema, write_stdout, BuildArgs, CliError, CommandOutcome, OutputFormat,
    ReplayArgs,
};
use crate::baseline::{Baseline, BuildSettings};
use crate::source::progress::FileProgress;
use crate::source::ReadOptions;

pub(super) fn run_build(args: &BuildArgs) -> Result<CommandOutcome, CliError> {
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
        joint_rows: args.joint_rows,
    };
    let built = match args.memory_mb {
        Some(mb) => {
            let budget = Some(mb.saturating_mul(1 << 20));
            crate::baseline::build_from_file_within(
                &args.input,
                &options,
                settings,
                &args.output,
                budget,
            )
        }
        None => crate::baseline::build_from_file(&args.input, &options, settings, &args.output),
    };
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
    for output in &baseline.outputs {
        text.push_str(&format!(
            ", output {} ({})",
            output.name(),
            output.kind().as_str()
        ));
    }
    if dataset.invalid_lines > 0 {
        text.push_str(&format!(
            ", {} malformed lines skipped",
            dataset.invalid_lines
        ));
    }
    if sampled > 0 {
        text.push_str(&format!(
            ", {sampled} numeric feature(s) with more distinct values than the sample cap of {} (tests will run on a seeded sample)",
            args.sample_cap
        ));
    }
    text.push('\n');
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

pub(super) fn run_show(path: &Path) -> Result<CommandOutcome, CliError> {
    let started = std::time::Instant::now();
    let baseline = Baseline::load(path)?;
    let loaded = started.elapsed();
    let actual = baseline.content_id();
    if actual != baseline.id {
        return Err(crate::baseline::BaselineError::Checksum {
            path: path.to_path_buf(),
            expected: baseline.id,
            actual,
        }
        .into());
    }
    let layout = if crate::baseline::is_npz_file(path) {
        "NPZ"
    } else {
        "JSON"
    };
    let mut text = format!(
        "baseline {} (id verified)\n  {layout}, format version {}, created {}, loaded in {:.1} ms\n  source {} ({} records)\n  bins {}, sample cap {}, seed {}\n",
        baseline.id,
        baseline.format_version,
        baseline.created_at,
        loaded.as_secs_f64() * 1000.0,
        baseline.source.path.as_deref().unwrap_or("-"),
        baseline.source.records,
        baseline.settings.bins,
        baseline.settings.sample_cap,
        baseline.settings.seed,
    );
    for feature in &baseline.features {
        text.push_str(&profile_line(feature));
    }
    if let Some(joint) = &baseline.joint {
        let categorical = match joint.onehot.len() {
            0 => String::new(),
            n => format!(
                " and {n} categorical ({} one-hot levels)",
                joint.width() - joint.features.len()
            ),
        };
        text.push_str(&format!(
            "  joint sample: {} complete rows of {} numeric features{categorical} (of {} complete records)\n",
            joint.len(),
            joint.features.len(),
            joint.complete_rows
        ));
    }
    if !baseline.outputs.is_empty() {
        text.push_str("  model outputs:\n");
        for output in &baseline.outputs {
            text.push_str(&profile_line(output));
        }
    }
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

/// One profile's line in `baseline show`.
fn profile_line(feature: &crate::baseline::FeatureProfile) -> String {
    let quality = feature.quality();
    let detail = match feature {
        crate::baseline::FeatureProfile::Numeric(p) => format!(
            "mean {} std {} min {} max {}{}",
            fmt_opt(p.mean),
            fmt_opt(p.std),
            fmt_opt(p.min),
            fmt_opt(p.max),
            sample_note(p)
        ),
        crate::baseline::FeatureProfile::Categorical(p) => {
            format!("{} categories", p.counts.len())
        }
    };
    format!(
        "  {:<24} {:<11} n={:<9} missing={} nan={} invalid={}  {}\n",
        feature.name(),
        feature.kind().as_str(),
        feature.count(),
        quality.missing,
        quality.nan,
        quality.invalid,
        detail
    )
}

/// `baseline convert`: loads (and checks) a baseline and writes it in the layout `output`'s
/// name chooses, never over an existing file.
pub(super) fn run_convert(input: &Path, output: &Path) -> Result<CommandOutcome, CliError> {
    let mut baseline = Baseline::load(input)?;
    if output.exists() {
        return Err(CliError::Settings(vec![format!(
            "{} exists; convert writes only a new file",
            output.display()
        )]));
    }
    let id = baseline.id.clone();
    baseline.save(output)?;
    debug_assert_eq!(id, baseline.id, "the content, hence the id, is unchanged");
    write_stdout(&format!(
        "wrote baseline {} to {}\n",
        &baseline.id[..12],
        output.display()
    ))?;
    Ok(CommandOutcome::Done)
}

pub(super) fn run_service(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    crate::service::install_signal_handlers(&stop, config.shutdown_timeout)
        .map_err(CliError::Output)?;
    crate::service::run(config, path, stop)?;
    Ok(CommandOutcome::Done)
}

pub(super) fn run_replay(args: &ReplayArgs) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(&args.config)?;
    // A progress bar on a terminal, for inputs big enough to wait for.
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(if args.recorded.input.is_some() {
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
    let recorded = &args.recorded;
    let replay = match (&recorded.input, &recorded.topic) {
        (Some(input), _) => {
            crate::replay::replay(&config, input, args.stream.as_deref(), progress)?
        }
        (None, Some(topic)) => {
            let range = topic_range(recorded.start.as_deref(), recorded.end.as_deref())?;
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
        OutputFormat::Html => crate::api::pages::report::replay_html(&replay),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(&replay).expect("replays serialise");
            json.push('\n');
            json
        }
    };
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

/// The offset range `--start` and `--end` name (default: everything the topic holds).
pub(super) fn topic_range(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<crate::replay::TopicRange, CliError> {
    use crate::replay::{OffsetBound, TopicRange};
    let bound = |text: Option<&str>, default, flag: &str| match text {
        Some(text) => TopicRange::parse_bound(text, default)
            .map_err(|message| CliError::Settings(vec![format!("--{flag}: {message}")])),
        None => Ok((default, Default::default())),
    };
    let (start, start_at) = bound(start, OffsetBound::Earliest, "start")?;
    let (end, end_at) = bound(end, OffsetBound::Latest, "end")?;
    Ok(TopicRange {
        start,
        start_at,
        end,
        end_at,
    })
}

pub(super) fn run_config_check(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let mut text = format!(
        "{} is valid: kafka {}, group {}, store {}, api {}\n",
        path.display(),
        config
            .bootstrap_servers
            .as_deref()
            .unwrap_or("embedded (in-process, not durable)"),
        config.group_id,
        config.store,
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
        let attempts = match sink.max_attempts {
            u32::MAX => String::new(),
            n => format!(", at most {n} attempts"),
        };
        text.push_str(&format!(
            "  alert sink {}: retried until {} old (backoff {} to {}{attempts})\n",
            sink.name,
            humantime::format_duration(sink.max_age),
            humantime::format_duration(sink.backoff),
            humantime::format_duration(sink.max_backoff),
        ));
    }
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

/// How a numeric feature's reference sample is kept, for `baseline show`.
fn sample_note(profile: &crate::baseline::NumericProfile) -> String {
    if profile.sampled {
        format!(" (sampled: {} values)", profile.reference_len())
    } else if !profile.sample_counts.is_empty() {
        format!(
            " (exact: {} distinct values with counts)",
            profile.sample.len()
        )
    } else {
        String::new()
    }
}
