//! A backtest as an aligned table: one line per policy set, retrains against accuracy (and the
//! regret rule's account, when a set has one).

use super::report::Backtest;

/// The table `backtest --format table` prints.
pub fn table(backtest: &Backtest) -> String {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let rows: Vec<Vec<String>> = backtest
        .sets
        .iter()
        .map(|set| {
            vec![
                set.name.clone(),
                set.retrains.to_string(),
                set.succeeded.to_string(),
                percent(set.overall.accuracy),
                percent(set.mean_accuracy),
                format!("{:.1}", set.training_seconds),
                set.drift_alarms.to_string(),
                regret(set),
            ]
        })
        .collect();
    let mut header = vec![
        "policy set",
        "retrains",
        "succeeded",
        "accuracy",
        "mean window accuracy",
        "training s",
        "drift alarms",
        "regret cost",
    ];
    let with_regret = backtest.sets.iter().any(|s| !s.regret.is_empty());
    let columns = header.len() - usize::from(!with_regret);
    header.truncate(columns);
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
        let padded: Vec<String> = cells[..columns]
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
    out.push_str(&line(header));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A set's regret account: runs' cost plus harm, summed over its regret policies.
fn regret(set: &super::SetResult) -> String {
    if set.regret.is_empty() {
        return "-".into();
    }
    let total: f64 = set.regret.iter().map(|r| r.total).sum();
    format!("{total:.3e}")
}
