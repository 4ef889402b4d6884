//! The human-readable drift report: an aligned table with drifted features marked.

use std::fmt::Write;

use super::report::{DriftReport, FeatureStatus};

/// Renders a report as a table followed by a one-line verdict.
pub fn render(report: &DriftReport) -> String {
    let header = [
        "feature",
        "kind",
        "n_ref",
        "n_cur",
        "missing",
        "method",
        "score",
        "threshold",
        "drift",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for feature in &report.features {
        let missing = feature.missing_current + feature.nan_current + feature.invalid_current;
        let (score, threshold, drift) = match feature.status {
            FeatureStatus::Ok => (
                format_number(feature.drift.score),
                format_number(feature.drift.threshold),
                if feature.drift.detected { "DRIFT" } else { "-" }.to_string(),
            ),
            FeatureStatus::InsufficientData => (
                "-".to_string(),
                "-".to_string(),
                "too little data".to_string(),
            ),
        };
        rows.push([
            feature.name.clone(),
            feature.kind.as_str().to_string(),
            feature.n_reference.to_string(),
            feature.n_current.to_string(),
            missing.to_string(),
            feature.drift.method.as_str().to_string(),
            score,
            threshold,
            drift,
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Text columns align left, numbers right.
    let numeric_column = [false, false, true, true, true, false, true, true, false];
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if numeric_column[i] {
                let _ = write!(text, "{cell:>width$}", width = widths[i]);
            } else {
                let _ = write!(text, "{cell:<width$}", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    let dataset = &report.dataset;
    let rule = match dataset.drift_share {
        Some(share) => format!("share >= {share}"),
        None => "any feature".to_string(),
    };
    let _ = writeln!(
        out,
        "\n{} of {} features drifted ({:.1}%), alpha {} with {} correction; dataset drift ({}): {}",
        dataset.drifted,
        dataset.features,
        dataset.share * 100.0,
        dataset.alpha,
        serde_json::to_value(dataset.correction)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        rule,
        if dataset.detected { "YES" } else { "no" }
    );
    for (side, info) in [
        ("reference", &report.reference),
        ("current", &report.current),
    ] {
        if info.invalid_lines > 0 {
            let _ = writeln!(
                out,
                "{side}: {} malformed line(s) skipped",
                info.invalid_lines
            );
        }
        if !info.unknown_fields.is_empty() {
            let names: Vec<&str> = info.unknown_fields.keys().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "{side}: fields not in the reference ignored: {}",
                names.join(", ")
            );
        }
    }
    if dataset.insufficient_data > 0 {
        let _ = writeln!(
            out,
            "{} feature(s) not tested for lack of data",
            dataset.insufficient_data
        );
    }
    out
}

fn format_number(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v.abs() < 1e-3 || v.abs() >= 1e6 => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}
