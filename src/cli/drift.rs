//! `driftgate drift`: one data set against a reference (a baseline or a raw file).

use std::io::IsTerminal;
use std::path::Path;

use ndarray::Array2;

use super::{load_schema, write_stdout, CliError, CommandOutcome, DriftArgs, OutputFormat};
use crate::baseline::{Baseline, BaselineSource, BuildSettings};
use crate::decode::{Dataset, Schema};
use crate::drift::multivariate::{multivariate, numeric_rows};
use crate::drift::{self, DataInfo, DriftReport, DriftSettings};
use crate::source::progress::FileProgress;
use crate::source::{read_dataset, ReadOptions};

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

pub(super) fn run_drift(args: &DriftArgs) -> Result<CommandOutcome, CliError> {
    let settings = args.decision.settings();
    settings.validate().map_err(CliError::Settings)?;
    let schema = load_schema(args.schema.as_deref())?;
    let started = std::time::Instant::now();
    let progress = FileProgress::on_stderr();
    let (reference, reference_info, reference_rows) =
        reference(args, &settings, schema.clone(), &progress)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reference ready"
    );
    let current_schema = schema.unwrap_or_else(|| reference.schema());
    let (current, current_info) = current(args, &settings, current_schema, &progress)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "current data read"
    );
    let mut report = drift::compare(
        &reference,
        &current,
        &settings,
        reference_info,
        current_info,
    );
    if let Some(reference_rows) = reference_rows {
        same_columns(&args.reference, &reference, &current)?;
        let current_rows = numeric_rows(&current)
            .map_err(|e| CliError::Multivariate(format!("{}: {e}", args.current.display())))?;
        report.multivariate = multivariate(
            &args.multivariate,
            reference_rows.view(),
            current_rows.view(),
            &settings,
        )
        .map_err(CliError::Multivariate)?;
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "report computed"
    );
    write_stdout(&render(&report, args.format))?;
    let jointly = report.multivariate.values().any(|outcome| outcome.drift);
    if args.fail_on_drift && (report.dataset.detected || jointly) {
        return Ok(CommandOutcome::DriftDetected);
    }
    Ok(CommandOutcome::Done)
}

/// The reference: a saved baseline as it is, or a raw file profiled in full (no cap) with the
/// requested bins, so that the results are those of the data itself; and its numeric rows when
/// `--multivariate` asks for them.
fn reference(
    args: &DriftArgs,
    settings: &DriftSettings,
    schema: Option<Schema>,
    progress: &FileProgress,
) -> Result<(Baseline, DataInfo, Option<Array2<f64>>), CliError> {
    let source = Some(args.reference.display().to_string());
    let wants_rows = !args.multivariate.is_empty();
    if Baseline::sniff(&args.reference) {
        let baseline = Baseline::load(&args.reference)?;
        let info = DataInfo {
            source,
            baseline_id: Some(baseline.id.clone()),
            records: baseline.source.records,
            invalid_lines: baseline.source.invalid_lines,
            ..DataInfo::default()
        };
        let rows = wants_rows
            .then(|| joint_rows(&args.reference, &baseline))
            .transpose()?;
        return Ok((baseline, info, rows));
    }
    let options = ReadOptions {
        schema,
        skip_invalid: args.skip_invalid,
        progress: Some(progress.clone()),
    };
    let dataset = read_dataset(&args.reference, &options)?;
    require_records(&args.reference, dataset.records, 1, "")?;
    let build = BuildSettings {
        bins: settings.bins,
        sample_cap: usize::MAX,
        seed: 0,
        joint_rows: 0,
    };
    let info = DataInfo {
        source,
        records: dataset.records,
        invalid_lines: dataset.invalid_lines,
        unknown_fields: dataset.unknown_fields.clone(),
        ..DataInfo::default()
    };
    // Taken before the profile sorts the columns in place.
    let rows = wants_rows
        .then(|| numeric_rows(&dataset))
        .transpose()
        .map_err(|e| CliError::Multivariate(format!("{}: {e}", args.reference.display())))?;
    Ok((
        Baseline::profile_owned(dataset, build, BaselineSource::default())?,
        info,
        rows,
    ))
}

/// The current data's numeric features are the columns of the baseline's joint sample (they
/// differ when `--schema` changed them).
fn same_columns(path: &Path, reference: &Baseline, current: &Dataset) -> Result<(), CliError> {
    let Some(joint) = &reference.joint else {
        return Ok(());
    };
    let numeric: Vec<&str> = (current.schema.features.iter())
        .filter(|f| f.kind == crate::decode::FeatureKind::Numeric)
        .map(|f| f.name.as_str())
        .collect();
    if numeric != joint.features {
        return Err(CliError::Multivariate(format!(
            "{}: the joint sample's features ({}) are not the current data's numeric features ({})",
            path.display(),
            joint.features.join(", "),
            numeric.join(", ")
        )));
    }
    Ok(())
}

/// A baseline's joint sample of rows, as the reference of a multivariate test; an error
/// when it has none.
fn joint_rows(path: &Path, baseline: &Baseline) -> Result<Array2<f64>, CliError> {
    let Some(joint) = &baseline.joint else {
        return Err(CliError::Multivariate(format!(
            "{}: this baseline keeps no joint sample of rows (built with --joint-rows 0, with fewer than two numeric features, or by an older driftgate); rebuild it, or give the training data file as the reference",
            path.display()
        )));
    };
    Ok(joint.numeric_rows().to_owned())
}

/// The current data, read with the reference's schema; it needs `--min-samples` records.
fn current(
    args: &DriftArgs,
    settings: &DriftSettings,
    schema: Schema,
    progress: &FileProgress,
) -> Result<(Dataset, DataInfo), CliError> {
    let options = ReadOptions {
        schema: Some(schema),
        skip_invalid: args.skip_invalid,
        progress: Some(progress.clone()),
    };
    let current = read_dataset(&args.current, &options)?;
    progress.finish();
    for example in &current.invalid_examples {
        tracing::warn!(line = %example, "skipped malformed line");
    }
    require_records(
        &args.current,
        current.records,
        settings.min_samples,
        " (--min-samples)",
    )?;
    let info = DataInfo {
        source: Some(args.current.display().to_string()),
        baseline_id: None,
        records: current.records,
        invalid_lines: current.invalid_lines,
        unknown_fields: current.unknown_fields.clone(),
    };
    Ok((current, info))
}

/// The report as a table (on a terminal, unless told) or JSON.
fn render(report: &DriftReport, format: Option<OutputFormat>) -> String {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Json
    });
    match format {
        OutputFormat::Table => drift::table::render(report),
        OutputFormat::Html => crate::api::pages::report::drift_html(
            &serde_json::to_value(report).expect("reports serialise"),
        ),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(report).expect("reports serialise");
            json.push('\n');
            json
        }
    }
}
