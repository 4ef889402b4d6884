//! What a backtest reports: per policy set, its retrains, its accuracy window by window and
//! overall, and every decision and run. JSON carries all of it; with a fixed `run_time` the
//! same input gives the same JSON.

use serde::Serialize;

use crate::pipeline::report::Performance;
use crate::policy::Decision;

/// A whole backtest.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    /// The stream replayed.
    pub stream: String,
    /// The model judged.
    pub model: String,
    /// The input file.
    pub input: String,
    /// The in-flight time given for every run, in seconds; null: each run's own duration.
    pub run_time_seconds: Option<f64>,
    /// One result per policy set, `never` and `every-window` first.
    pub sets: Vec<SetResult>,
}

/// One policy set's backtest.
#[derive(Debug, Clone, Serialize)]
pub struct SetResult {
    /// Its name.
    pub name: String,
    /// Its policies, by name.
    pub policies: Vec<String>,
    /// Runs started.
    pub retrains: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// The model's quality over every window together (fields as a window's `performance`).
    #[serde(flatten)]
    pub overall: Performance,
    /// The mean of the windows' accuracies.
    pub mean_accuracy: Option<f64>,
    /// Event-time seconds runs were in flight, in all.
    pub training_seconds: f64,
    /// Windows in which a feature of the judged model drifted.
    pub drift_alarms: u64,
    /// What each of its regret policies counted: the cost of the runs it started and the harm
    /// borne before each, in its units (harm × seconds). Empty without a regret rule.
    pub regret: Vec<RegretCost>,
    /// The closed windows, in order.
    pub windows: Vec<BacktestWindow>,
    /// The runs, in order.
    pub runs: Vec<BacktestRun>,
}

/// A regret policy's account over the backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegretCost {
    /// The policy.
    pub policy: String,
    /// The cost of its runs: the run cost it compared with at each trigger, summed.
    pub runs: f64,
    /// The regret accumulated before each trigger, plus what was left unpaid at the end.
    pub harm: f64,
    /// `runs + harm`.
    pub total: f64,
}

/// The regret accounts of the policies whose decisions read a regret signal, in the order they
/// first appear.
fn regret_costs(windows: &[BacktestWindow]) -> Vec<RegretCost> {
    let mut costs: Vec<(RegretCost, f64)> = Vec::new();
    for decision in windows.iter().flat_map(|w| &w.decisions) {
        let Some(reading) = decision.signals.iter().find(|s| s.subject == "regret") else {
            continue;
        };
        let at = match costs.iter().position(|(c, _)| c.policy == decision.policy) {
            Some(at) => at,
            None => {
                let cost = RegretCost {
                    policy: decision.policy.clone(),
                    runs: 0.0,
                    harm: 0.0,
                    total: 0.0,
                };
                costs.push((cost, 0.0));
                costs.len() - 1
            }
        };
        let (cost, unpaid) = &mut costs[at];
        let value = reading.value.filter(|v| v.is_finite()).unwrap_or(0.0);
        if decision.outcome == crate::policy::Outcome::Triggered {
            cost.runs += reading.threshold.filter(|t| t.is_finite()).unwrap_or(0.0);
            cost.harm += value;
            *unpaid = 0.0;
        } else {
            *unpaid = value;
        }
    }
    (costs.into_iter())
        .map(|(mut cost, unpaid)| {
            cost.harm += unpaid;
            cost.total = cost.runs + cost.harm;
            cost
        })
        .collect()
}

/// One window as the set saw it.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestWindow {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Start, RFC 3339, when the records carry times.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// The runs whose models scored its records, in order (`initial`: the initial model).
    pub scored_by: Vec<String>,
    /// The model's quality on it.
    pub performance: Performance,
    /// Features of the judged model whose drift was detected.
    pub drifted: Vec<String>,
    /// Features of the judged model whose drift was detected against the data since the last
    /// retrain; absent when the stream does not keep that data or saw none since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted_since_retrain: Option<Vec<String>>,
    /// Its decisions.
    pub decisions: Vec<Decision>,
}

/// One run started by a triggered decision.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestRun {
    /// Its id (from the decision's idempotency key).
    pub id: String,
    /// The policy that triggered it.
    pub policy: String,
    /// The triggering window.
    pub window: u64,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Event time it was triggered at, epoch milliseconds.
    pub triggered_ms: i64,
    /// Event time its outcome applied at: triggered plus its time in flight.
    pub applied_ms: i64,
    /// Whether it promoted a new model.
    pub promoted: bool,
    /// The baseline it rotated in, if any.
    pub baseline: Option<String>,
}

impl SetResult {
    /// An empty result for a set with these policies.
    pub(super) fn new(name: String, policies: Vec<String>) -> SetResult {
        SetResult {
            name,
            policies,
            retrains: 0,
            succeeded: 0,
            overall: overall(&[]),
            mean_accuracy: None,
            training_seconds: 0.0,
            drift_alarms: 0,
            regret: Vec::new(),
            windows: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The figures derived from the windows and runs.
    pub(super) fn total(&mut self) {
        self.regret = regret_costs(&self.windows);
        self.retrains = self.runs.len() as u64;
        self.succeeded = self.runs.iter().filter(|r| r.status == "succeeded").count() as u64;
        self.training_seconds = (self.runs.iter())
            .map(|r| (r.applied_ms - r.triggered_ms) as f64 / 1e3)
            // An empty sum is -0.0.
            .sum::<f64>()
            + 0.0;
        let accuracies: Vec<f64> = (self.windows.iter())
            .filter_map(|w| w.performance.accuracy)
            .collect();
        self.mean_accuracy = (!accuracies.is_empty())
            .then(|| accuracies.iter().sum::<f64>() / accuracies.len() as f64);
        self.overall = overall(&self.windows);
    }
}

/// The windows' performance together: counts summed, errors weighted by their records.
fn overall(windows: &[BacktestWindow]) -> Performance {
    let labelled: u64 = windows.iter().map(|w| w.performance.labelled).sum();
    let correct: u64 = windows.iter().map(|w| w.performance.correct).sum();
    let accuracy = (labelled > 0).then(|| correct as f64 / labelled as f64);
    let numeric: u64 = windows.iter().map(|w| w.performance.numeric_labelled).sum();
    let weighted = |f: fn(&Performance) -> Option<f64>| {
        let sum = (windows.iter())
            .filter_map(|w| Some(f(&w.performance)? * w.performance.numeric_labelled as f64))
            .sum::<f64>();
        (numeric > 0).then(|| sum / numeric as f64)
    };
    Performance {
        labelled,
        correct,
        accuracy,
        error_rate: accuracy.map(|a| 1.0 - a),
        numeric_labelled: numeric,
        mae: weighted(|p| p.mae),
        rmse: weighted(|p| p.rmse.map(|r| r * r)).map(f64::sqrt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(index: u64, regret: f64, cost: f64, outcome: &str) -> BacktestWindow {
        let decision = serde_json::json!({
            "key": format!("k{index}"), "policy": "regret", "model": "m", "dag": "d",
            "stream": "s", "window": index, "at_ms": 0, "outcome": outcome, "reason": "",
            "drifted_features": [],
            "signals": [{"subject": "regret", "metric": "regret", "value": regret,
                "threshold": cost, "hit": regret >= cost, "text": ""}],
        });
        BacktestWindow {
            index,
            records: 0,
            start: None,
            end: None,
            scored_by: Vec::new(),
            performance: Performance {
                labelled: 0,
                correct: 0,
                accuracy: None,
                error_rate: None,
                numeric_labelled: 0,
                mae: None,
                rmse: None,
            },
            drifted: Vec::new(),
            drifted_since_retrain: None,
            decisions: vec![serde_json::from_value(decision).unwrap()],
        }
    }

    #[test]
    fn regret_counts_each_runs_cost_the_harm_before_it_and_the_harm_left_unpaid() {
        let windows = [
            window(0, 10.0, 100.0, "not_triggered"),
            window(1, 120.0, 100.0, "triggered"),
            window(2, 5.0, 80.0, "not_triggered"),
            window(3, 90.0, 80.0, "triggered"),
            window(4, 30.0, 80.0, "not_triggered"),
        ];
        let costs = regret_costs(&windows);
        assert_eq!(
            costs,
            [RegretCost {
                policy: "regret".into(),
                runs: 180.0,
                harm: 240.0,
                total: 420.0,
            }]
        );
        assert!(regret_costs(&windows[..0]).is_empty());
    }
}
