//! A backtest as an aligned table: one line per policy set, retrains against accuracy.

use super::report::Backtest;

/// The table `backtest --format table` prints.
pub fn table(backtest: &Backtest) -> String {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let rows: Vec<[String; 7]> = backtest
        .sets
        .iter()
        .map(|set| {
            [
                set.name.clone(),
                set.retrains.to_string(),
                set.succeeded.to_string(),
                percent(set.accuracy),
                percent(set.mean_accuracy),
                format!("{:.1}", set.training_seconds),
                set.drift_alarms.to_string(),
            ]
        })
        .collect();
    let header = [
        "policy set",
        "retrains",
        "succeeded",
        "accuracy",
        "mean window accuracy",
        "training s",
        "drift alarms",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = format!(
        "backtest of model {} on stream {} ({}; {} windows)\n",
        backtest.model,
        backtest.stream,
        backtest.input,
        backtest.sets.first().map_or(0, |s| s.windows.len())
    );
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
