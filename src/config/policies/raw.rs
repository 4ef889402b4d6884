//! Models and policies as users write them (`[[models]]`, `[[policies]]`, policy files).
//! Unknown keys are errors; every field's `///` line is user documentation (README: "Models and
//! policies").

use serde::Deserialize;

use crate::policy::detectors::Direction;
use crate::policy::{InFlight, Side};

/// `[[models]]`: a model judged on one stream's windows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Unique name; it appears in decisions, the API and alerts.
    pub name: String,
    /// The stream whose windows the model is judged on.
    pub stream: String,
    /// The stream's features the model reads. `feature = "*"` in a policy means these.
    pub features: Vec<String>,
    /// The DAG that retrains the model.
    #[serde(default)]
    pub dag: Option<String>,
}

/// `[[policies]]`: when a model should be retrained.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Unique name; part of every decision's idempotency key.
    pub name: String,
    /// The model it may retrain.
    pub model: String,
    /// The condition a window must meet (see "Rules").
    pub when: RawRule,
    /// The rule must hold in this many windows in a row (default 1). Exclusive with `k_of_n`.
    #[serde(default)]
    pub consecutive: Option<u32>,
    /// The rule must hold in at least `k` of the last `n` windows: `{ k = 2, n = 3 }`.
    #[serde(default)]
    pub k_of_n: Option<RawKOfN>,
    /// Windows with fewer records are not judged (default 0).
    #[serde(default)]
    pub min_records: u64,
    /// No second trigger within this time of the last one, in window time (default "0s").
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
    /// At most `max_runs` triggers in any period of `per`: `{ max_runs = 3, per = "1d" }`.
    #[serde(default)]
    pub budget: Option<RawBudget>,
    /// While a run of the model is in flight: `suppress` (default) or `trigger` (queued).
    #[serde(default = "default_in_flight")]
    pub in_flight: InFlight,
}

/// `k_of_n = { k, n }`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKOfN {
    /// Windows that must meet the rule.
    pub k: u32,
    /// Recent windows looked at.
    pub n: u32,
}

/// `budget = { max_runs, per }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// Triggers allowed per period.
    pub max_runs: u32,
    /// The period, e.g. "1d".
    pub per: String,
}

/// A rule: one combinator (`any`, `all`, `at_least` with `of`) or one signal (`feature` or
/// `dataset`, with a criterion).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Holds when at least one of these holds.
    #[serde(default)]
    pub any: Option<Vec<RawRule>>,
    /// Holds when all of these hold.
    #[serde(default)]
    pub all: Option<Vec<RawRule>>,
    /// Holds when at least this many of `of` hold.
    #[serde(default)]
    pub at_least: Option<usize>,
    /// The rules `at_least` counts.
    #[serde(default)]
    pub of: Option<Vec<RawRule>>,
    /// A feature of the model, or `"*"`: one signal per model feature (inside `any`, `all` or
    /// `of` they join that list; on their own they combine with `any`).
    #[serde(default)]
    pub feature: Option<String>,
    /// A number of the window's dataset summary: `share`, `drifted` or `detected`.
    #[serde(default)]
    pub dataset: Option<String>,
    /// A schedule: holds once this much window time passed since the policy last triggered
    /// (or since its first window), e.g. `"1d"`. Combine with drift signals in `any`/`all`.
    #[serde(default)]
    pub every: Option<String>,
    /// A cron schedule in UTC, e.g. `"0 3 * * MON"` (five fields; six with seconds first):
    /// holds once one of its times passed since the policy last triggered (or since its first
    /// window), judged by window time.
    #[serde(default)]
    pub cron: Option<String>,
    /// A cost-aware trigger: holds once the accumulated regret of not retraining reaches the
    /// cost of a run: `regret = { of = "drifted_records", cost = 5e7 }`, or with the cost
    /// forecast from past run durations: `regret = { of = "errors", cost_per_run_second = 100,
    /// initial_run_time = "10m", over = 5 }`.
    #[serde(default)]
    pub regret: Option<RawRegret>,
    /// An amount: holds once this many records were judged since the policy last triggered.
    #[serde(default)]
    pub every_records: Option<u64>,
    /// The window's prediction quality, from records carrying `prediction` and `label`:
    /// `accuracy`, `error_rate`, `labelled`, or for numeric labels `mae` or `rmse`, with a
    /// criterion.
    #[serde(default)]
    pub performance: Option<String>,
    /// The drift of the records' `prediction` against the baseline's: `prediction = "drift"`
    /// (the stream's verdict), or a feature metric with a criterion (`prediction = "psi",
    /// above = 0.2`). Needs a baseline built from data with predictions.
    #[serde(default)]
    pub prediction: Option<String>,
    /// The drift of the records' `label` against the baseline's, as `prediction`.
    #[serde(default)]
    pub label: Option<String>,
    /// A multivariate test the stream runs (`drift.multivariate`): `multivariate = "mmd"`
    /// holds when it detects drift; with `metric = "p_value"` or `"statistic"` and a criterion
    /// (`multivariate = "mmd", metric = "p_value", below = 0.001`), on that number.
    #[serde(default)]
    pub multivariate: Option<String>,
    /// Holds when the Page-Hinkley test on the per-record error stream (1 wrong, 0 right)
    /// signals a change during the window: `page_hinkley = { threshold = 50 }`; parameters as
    /// River's `PageHinkley`, with its defaults.
    #[serde(default)]
    pub page_hinkley: Option<RawPageHinkley>,
    /// Holds when ADWIN on the per-record error stream signals a change during the window:
    /// `adwin = { delta = 0.002 }`; parameters as River's `ADWIN`, with its defaults.
    #[serde(default)]
    pub adwin: Option<RawAdwin>,
    /// For a feature: `detected` (default), `score`, `p_value`, `ks.statistic`, `ks.p_value`,
    /// `wasserstein`, `wasserstein.normed`, `chi2.statistic`, `chi2.p_value`, `psi`,
    /// `jensen_shannon`, `hellinger`.
    #[serde(default)]
    pub metric: Option<String>,
    /// What a `feature` or `dataset` signal compares the window with: `"training"` (default),
    /// the stream's baseline, or `"since_retrain"`, the data the stream saw since its models'
    /// last succeeded retraining run (the stream needs `drift.since_retrain = true`). Before
    /// any window was seen since the retrain, a `since_retrain` signal has no value and no hit.
    #[serde(default)]
    pub reference: Option<String>,
    /// Hit when the value is above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Hit when the value is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Hit when the value is beyond a quantile of its own recent values.
    #[serde(default)]
    pub quantile: Option<RawQuantile>,
    /// Hit when the value is more than some standard deviations from its recent mean.
    #[serde(default)]
    pub rolling: Option<RawRolling>,
}

/// `quantile = { q, over, warmup, side }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantile {
    /// The quantile, between 0 and 1 (e.g. 0.95).
    pub q: f64,
    /// How many recent values the quantile is taken over.
    pub over: usize,
    /// Values needed before it can hit (default: `over`).
    #[serde(default)]
    pub warmup: Option<usize>,
    /// `above` (default) or `below` the quantile is a hit.
    #[serde(default)]
    pub side: Side,
}

/// `rolling = { deviations, over, warmup, side }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRolling {
    /// Standard deviations from the mean.
    pub deviations: f64,
    /// How many recent values the mean and deviation are taken over.
    pub over: usize,
    /// Values needed before it can hit (default: `over`).
    #[serde(default)]
    pub warmup: Option<usize>,
    /// `above` (default) or `below` the band is a hit.
    #[serde(default)]
    pub side: Side,
}

/// `page_hinkley = { min_instances, delta, threshold, alpha, mode }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPageHinkley {
    /// Values seen before a change can be signalled (default 30).
    #[serde(default)]
    pub min_instances: Option<u64>,
    /// Magnitude of changes tolerated (default 0.005).
    #[serde(default)]
    pub delta: Option<f64>,
    /// The detection threshold, lambda (default 50).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Forgetting factor (default 0.9999).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `up` (rising error rate), `down` or `both` (default).
    #[serde(default)]
    pub mode: Option<Direction>,
    /// What the detector watches per labelled record: `zero_one` (1 wrong, 0 right; the
    /// default), `absolute` (`|prediction - label|`) or `squared` (`(prediction - label)²`);
    /// the last two only see records whose prediction and label are both numbers.
    #[serde(default)]
    pub loss: Option<String>,
}

/// `regret = { of, cost }` or `regret = { of, cost_per_run_second, initial_run_time, over }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegret {
    /// What the harm is counted in: `drifted_records` (records of windows in which any of the
    /// model's features drifted, times seconds since the drift began) or `errors` (wrong
    /// predictions since the last trigger, times seconds since it).
    pub of: String,
    /// A fixed cost of one retraining run, in the same units (harm × seconds).
    #[serde(default)]
    pub cost: Option<f64>,
    /// Instead of `cost`: the cost is this many units per second of a run, times the mean
    /// duration of the model's recent runs.
    #[serde(default)]
    pub cost_per_run_second: Option<f64>,
    /// With `cost_per_run_second`: the run duration assumed before any run finished
    /// (default `"10m"`).
    #[serde(default)]
    pub initial_run_time: Option<String>,
    /// With `cost_per_run_second`: how many recent runs the mean duration is taken over
    /// (default 5).
    #[serde(default)]
    pub over: Option<usize>,
}

/// `adwin = { delta, clock, max_buckets, min_window_length, grace_period }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdwin {
    /// Significance of a cut, in (0, 1) (default 0.002).
    #[serde(default)]
    pub delta: Option<f64>,
    /// Cuts are checked every this many records (default 32).
    #[serde(default)]
    pub clock: Option<u32>,
    /// Buckets of one size kept before merging (default 5).
    #[serde(default)]
    pub max_buckets: Option<u32>,
    /// Smallest sub-window on either side of a cut (default 5).
    #[serde(default)]
    pub min_window_length: Option<u32>,
    /// Records seen before cuts are checked (default 10).
    #[serde(default)]
    pub grace_period: Option<u32>,
    /// What the detector watches per labelled record: `zero_one` (1 wrong, 0 right; the
    /// default), `absolute` (`|prediction - label|`) or `squared` (`(prediction - label)²`);
    /// the last two only see records whose prediction and label are both numbers.
    #[serde(default)]
    pub loss: Option<String>,
}

/// A file named by `include`: models and policies only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyFile {
    /// Models, as in the service file.
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Policies, as in the service file.
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
    /// Retraining DAGs, as in the service file.
    #[serde(default)]
    pub dags: Vec<crate::config::dags::RawDag>,
}

fn default_cooldown() -> String {
    "0s".to_string()
}

fn default_in_flight() -> InFlight {
    InFlight::Suppress
}
