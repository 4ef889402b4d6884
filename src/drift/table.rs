//! The human-readable drift report: an aligned table with drifted features marked.

use std::fmt::Write;

use super::report::{DriftReport, FeatureStatus};

/// The table's columns; text aligns left, numbers right.
const COLUMNS: [(&str, bool); 9] = [
    ("feature", false),
    ("kind", false),
    ("n_ref", true),
    ("n_cur", true),
    ("missing", true),
    ("method", false),
    ("score", true),
    ("threshold", true),
    ("drift", false),
];

/// Renders a report as a table followed by a one-line verdict.
pub fn render(report: &DriftReport) -> String {
    let mut out = aligned(&rows(report));
    verdict(report, &mut out);
    jointly(report, &mut out);
    notes(report, &mut out);
    out
}

/// One row per feature.
fn rows(report: &DriftReport) -> Vec<[String; 9]> {
    let mut rows = Vec::new();
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
    rows
}

/// The header and the rows, each column as wide as its widest cell.
fn aligned(rows: &[[String; 9]]) -> String {
    let header = COLUMNS.map(|(name, _)| name.to_string());
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(&header).chain(rows) {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let width = widths[i];
            if COLUMNS[i].1 {
                let _ = write!(text, "{cell:>width$}");
            } else {
                let _ = write!(text, "{cell:<width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The data set's verdict in one line.
fn verdict(report: &DriftReport, out: &mut String) {
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
}

/// One line per multivariate method.
fn jointly(report: &DriftReport, out: &mut String) {
    for (method, outcome) in &report.multivariate {
        let _ = writeln!(
            out,
            "multivariate {} over {} numeric features ({} x {} rows): statistic {}, threshold {}, p-value {}: {}",
            method.as_str(),
            outcome.features,
            outcome.reference_rows,
            outcome.current_rows,
            format_number(Some(outcome.statistic)),
            format_number(Some(outcome.threshold)),
            format_number(Some(outcome.p_value)),
            if outcome.drift { "DRIFT" } else { "no drift" }
        );
    }
}

/// Skipped lines, ignored fields and untested features.
fn notes(report: &DriftReport, out: &mut String) {
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
    if report.dataset.insufficient_data > 0 {
        let _ = writeln!(
            out,
            "{} feature(s) not tested for lack of data",
            report.dataset.insufficient_data
        );
    }
}

fn format_number(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v.abs() < 1e-3 || v.abs() >= 1e6 => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}
