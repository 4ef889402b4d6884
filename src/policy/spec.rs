//! Models and trigger policies, validated: what the engine evaluates.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::detectors::DetectorParams;
use super::loss::Loss;
use super::reference::Reference;

/// A model: it reads some features of one stream and is retrained by one DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// Unique name.
    pub name: String,
    /// The stream whose windows it is judged on.
    pub stream: String,
    /// The features it depends on (a subset of the stream's).
    pub features: Vec<String>,
    /// The DAG that retrains it, when one is configured.
    pub dag: Option<String>,
}

/// A trigger policy of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// The model it may retrain.
    pub model: String,
    /// The condition a window must meet.
    pub when: Rule,
    /// How many recent windows must meet it.
    pub windows: WindowRule,
    /// Windows with fewer records are not judged.
    pub min_records: u64,
    /// No second trigger within this time of the last one.
    pub cooldown: Duration,
    /// At most this many triggers per period.
    pub budget: Option<Budget>,
    /// What to do while a run of the model is in flight.
    pub in_flight: InFlight,
}

/// Triggers allowed per sliding period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// Triggers allowed in any period.
    pub max_runs: u32,
    /// The period's length.
    pub per: Duration,
}

/// Behaviour while a retraining run of the model is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlight {
    /// Record the decision as `suppressed_in_flight` (the default).
    Suppress,
    /// Trigger anyway; the executor queues the run behind the one in flight.
    Trigger,
}

/// How many recent windows must meet a policy's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowRule {
    /// The last `k` windows in a row.
    Consecutive {
        /// Windows in a row.
        k: u32,
    },
    /// At least `k` of the last `n` windows.
    KOfN {
        /// Windows that must meet the rule.
        k: u32,
        /// Windows looked at.
        n: u32,
    },
}

impl WindowRule {
    /// The number of recent window outcomes the rule needs.
    pub fn span(self) -> usize {
        match self {
            WindowRule::Consecutive { k } => k as usize,
            WindowRule::KOfN { n, .. } => n as usize,
        }
    }

    /// Whether recent outcomes (oldest first, the current window last) satisfy the rule.
    pub fn holds(self, recent: &[bool]) -> bool {
        match self {
            WindowRule::Consecutive { k } => {
                recent.len() >= k as usize && recent.iter().rev().take(k as usize).all(|m| *m)
            }
            WindowRule::KOfN { k, n } => {
                recent.iter().rev().take(n as usize).filter(|m| **m).count() >= k as usize
            }
        }
    }

    /// "in 2 consecutive windows", "in 2 of the last 3 windows".
    pub fn describe(self) -> String {
        match self {
            WindowRule::Consecutive { k: 1 } => "in this window".to_string(),
            WindowRule::Consecutive { k } => format!("in {k} consecutive windows"),
            WindowRule::KOfN { k, n } => format!("in {k} of the last {n} windows"),
        }
    }
}

/// A condition on a window's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// At least one holds.
    Any(Vec<Rule>),
    /// Every one holds.
    All(Vec<Rule>),
    /// At least `n` hold.
    AtLeast {
        /// How many must hold.
        n: usize,
        /// The conditions.
        of: Vec<Rule>,
    },
    /// One number of the report against a criterion.
    Signal(Signal),
}

impl Rule {
    /// Every signal in the rule, depth first.
    pub fn signals(&self) -> Vec<&Signal> {
        match self {
            Rule::Any(rules) | Rule::All(rules) | Rule::AtLeast { of: rules, .. } => {
                rules.iter().flat_map(Rule::signals).collect()
            }
            Rule::Signal(signal) => vec![signal],
        }
    }
}

/// One number of a window's report, and when it counts as a hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Where the number comes from.
    pub source: Source,
    /// Which number.
    pub metric: Metric,
    /// When it is a hit.
    pub criterion: Criterion,
    /// What a feature or data-set number compares the window with.
    #[serde(skip_serializing_if = "Reference::is_training")]
    pub reference: Reference,
}

impl Signal {
    /// A stable name for the series of this signal's values, for dynamic criteria's history:
    /// `amount/ks.p_value`, `dataset/share`.
    pub fn series(&self) -> String {
        let series = self.source_series();
        match self.reference {
            Reference::Training => series,
            Reference::SinceRetrain => format!("since_retrain/{series}"),
        }
    }

    /// [`series`](Self::series) without the reference.
    fn source_series(&self) -> String {
        match &self.source {
            Source::Feature(name) => format!("{name}/{}", self.metric.name()),
            Source::Dataset => format!("dataset/{}", self.metric.name()),
            Source::Schedule => format!("schedule/{}", self.metric.name()),
            Source::Cron(cron) => format!("cron/{}", cron.expression()),
            Source::Regret(regret) => format!("regret/{}", regret.measure.name()),
            Source::Performance => format!("performance/{}", self.metric.name()),
            Source::Output(name) => format!("output/{name}/{}", self.metric.name()),
            Source::Multivariate(method) => {
                format!("multivariate/{}/{}", method.as_str(), self.metric.name())
            }
            Source::Detector(params, loss) => detector_series(params, *loss),
        }
    }

    /// The subject in sentences: the feature's name, or "dataset".
    pub fn subject(&self) -> &str {
        match &self.source {
            Source::Feature(name) => name,
            Source::Dataset => "dataset",
            Source::Schedule | Source::Cron(_) => "schedule",
            Source::Regret(_) => "regret",
            Source::Performance => "performance",
            Source::Output(name) => name,
            Source::Multivariate(method) => match method {
                crate::drift::multivariate::Multivariate::Mmd => "multivariate (mmd)",
                crate::drift::multivariate::Multivariate::Pca => "multivariate (pca)",
            },
            Source::Detector(params, Loss::ZeroOne) => match params {
                DetectorParams::PageHinkley(_) => "errors (page_hinkley)",
                DetectorParams::Adwin(_) => "errors (adwin)",
            },
            Source::Detector(params, Loss::Absolute) => match params {
                DetectorParams::PageHinkley(_) => "absolute errors (page_hinkley)",
                DetectorParams::Adwin(_) => "absolute errors (adwin)",
            },
            Source::Detector(params, Loss::Squared) => match params {
                DetectorParams::PageHinkley(_) => "squared errors (page_hinkley)",
                DetectorParams::Adwin(_) => "squared errors (adwin)",
            },
        }
    }
}

/// A detector's series: its parameters, and its loss unless zero-one (so a zero-one detector
/// keeps the state it had before losses existed, and changing the loss starts afresh).
fn detector_series(params: &DetectorParams, loss: Loss) -> String {
    let series = match params {
        DetectorParams::PageHinkley(p) => format!(
            "page_hinkley/{}/{}/{}/{}/{:?}",
            p.min_instances, p.delta, p.threshold, p.alpha, p.mode
        ),
        DetectorParams::Adwin(p) => format!(
            "adwin/{}/{}/{}/{}/{}",
            p.delta, p.clock, p.max_buckets, p.min_window_length, p.grace_period
        ),
    };
    match loss {
        Loss::ZeroOne => series,
        loss => format!("{series}/{}", loss.name()),
    }
}

/// A cost-aware trigger: the harm of serving a stale model accumulates as regret (units of harm
/// × seconds they have been going on); retraining pays off once the regret reaches the cost of a
/// run, in the same units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regret {
    /// What the harm is counted in.
    pub measure: RegretMeasure,
    /// The cost of a retraining run.
    pub cost: RetrainCost,
}

/// What regret counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegretMeasure {
    /// Records of windows in which any of the model's features drifted, since the drift began
    /// (the first such window after the last trigger), times seconds since it began.
    DriftedRecords,
    /// Wrong predictions among labelled records since the last trigger, times seconds since it.
    Errors,
}

impl RegretMeasure {
    /// The name in policy files.
    pub fn name(self) -> &'static str {
        match self {
            RegretMeasure::DriftedRecords => "drifted_records",
            RegretMeasure::Errors => "errors",
        }
    }
}

/// The cost of one retraining run, in regret units (harm × seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrainCost {
    /// A configured cost.
    Fixed(f64),
    /// Forecast from the model's past run durations: `per_run_second` × the mean duration of
    /// its last `over` runs, or of `initial_run_seconds` before any run was recorded.
    Forecast {
        /// Regret units one second of retraining is worth.
        per_run_second: f64,
        /// The run duration assumed before any run of the model finished.
        initial_run_seconds: f64,
        /// How many recent runs the mean is taken over.
        over: usize,
    },
}

/// A cron expression (five fields; six with seconds first; seven with a year last), evaluated
/// in UTC. Names (`MON`, `JAN`), ranges, steps, lists, `L`, `W` and `#` are understood.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule {
    expression: String,
    cron: Box<croner::Cron>,
}

impl CronSchedule {
    /// Parses `expression`; the error says what is wrong with it.
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        let cron: croner::Cron = expression
            .parse()
            .map_err(|e: croner::errors::CronError| e.to_string())?;
        // A pattern that never fires (e.g. 30 February) is an error, not a silent no-op.
        cron.find_next_occurrence(&chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, false)
            .map_err(|_| "never fires".to_string())?;
        Ok(CronSchedule {
            expression: expression.trim().to_string(),
            cron: Box::new(cron),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first scheduled time strictly after `after_ms` (Unix milliseconds), if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.expression)
    }
}

/// Where a signal's number comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A feature of the window's report.
    Feature(String),
    /// The report's dataset summary.
    Dataset,
    /// The policy's own schedule: time or records since its last trigger.
    Schedule,
    /// A cron schedule (UTC): due once one of its times passed since the policy last triggered.
    Cron(CronSchedule),
    /// Accumulated regret of not retraining, against the cost of a retraining run.
    Regret(Regret),
    /// The window's prediction quality, from records with `prediction` and `label`.
    Performance,
    /// A model output's drift against the baseline: `prediction` or `label`, read like a
    /// feature.
    Output(String),
    /// A multivariate test of the window's numeric features together (`mmd`, `pca`).
    Multivariate(crate::drift::multivariate::Multivariate),
    /// A change detector (Page-Hinkley or ADWIN) on the per-record error stream, each labelled
    /// record's error scored by the loss (zero-one by default), across windows.
    Detector(DetectorParams, Loss),
}

/// A number in a window report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The feature's (or data set's) drift verdict, 1 when detected, else 0.
    Detected,
    /// The score of the feature's drift method (a p-value for tests).
    Score,
    /// The p-value of the feature's drift method.
    PValue,
    /// KS statistic (numeric features).
    KsStatistic,
    /// KS p-value (numeric features).
    KsPValue,
    /// Wasserstein-1 distance (numeric features).
    Wasserstein,
    /// Wasserstein distance over the reference's standard deviation (numeric features).
    WassersteinNormed,
    /// Chi-square statistic (categorical features).
    Chi2Statistic,
    /// Chi-square p-value (categorical features).
    Chi2PValue,
    /// Population stability index.
    Psi,
    /// Jensen–Shannon distance.
    JensenShannon,
    /// Hellinger distance.
    Hellinger,
    /// Share of the stream's tested features that drifted (dataset).
    Share,
    /// Number of the stream's features that drifted (dataset).
    Drifted,
    /// Seconds of window time since the policy last triggered (or since its first window).
    ElapsedSeconds,
    /// Records judged since the policy last triggered (or since its first window).
    Records,
    /// 1 when a cron schedule's time passed since the policy last triggered, else 0.
    Due,
    /// Accumulated regret (harm × seconds).
    Regret,
    /// Share of labelled records whose prediction equals the label (performance).
    Accuracy,
    /// One minus the accuracy (performance).
    ErrorRate,
    /// Records carrying both a prediction and a label (performance).
    Labelled,
    /// Mean absolute error over the records whose prediction and label are numbers
    /// (performance).
    Mae,
    /// Root mean squared error over the records whose prediction and label are numbers
    /// (performance).
    Rmse,
    /// Changes a detector signalled on the error stream during the window.
    Changes,
    /// A multivariate test's statistic (MMD², or the mean reconstruction error).
    Statistic,
}

/// Metric names as written in policy files, with the kinds of source they apply to.
const METRICS: &[(&str, Metric, Applies)] = &[
    ("detected", Metric::Detected, Applies::Both),
    ("score", Metric::Score, Applies::Feature),
    ("p_value", Metric::PValue, Applies::Feature),
    ("ks.statistic", Metric::KsStatistic, Applies::Numeric),
    ("ks.p_value", Metric::KsPValue, Applies::Numeric),
    ("wasserstein", Metric::Wasserstein, Applies::Numeric),
    (
        "wasserstein.normed",
        Metric::WassersteinNormed,
        Applies::Numeric,
    ),
    (
        "chi2.statistic",
        Metric::Chi2Statistic,
        Applies::Categorical,
    ),
    ("chi2.p_value", Metric::Chi2PValue, Applies::Categorical),
    ("psi", Metric::Psi, Applies::Feature),
    ("jensen_shannon", Metric::JensenShannon, Applies::Feature),
    ("hellinger", Metric::Hellinger, Applies::Feature),
    ("share", Metric::Share, Applies::Dataset),
    ("drifted", Metric::Drifted, Applies::Dataset),
    ("elapsed_seconds", Metric::ElapsedSeconds, Applies::Schedule),
    ("records", Metric::Records, Applies::Schedule),
    ("due", Metric::Due, Applies::Schedule),
    ("regret", Metric::Regret, Applies::Schedule),
    ("accuracy", Metric::Accuracy, Applies::Performance),
    ("error_rate", Metric::ErrorRate, Applies::Performance),
    ("labelled", Metric::Labelled, Applies::Performance),
    ("mae", Metric::Mae, Applies::Performance),
    ("rmse", Metric::Rmse, Applies::Performance),
    ("statistic", Metric::Statistic, Applies::Multivariate),
    ("changes", Metric::Changes, Applies::Detector),
];

/// Which sources a metric exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Any feature.
    Feature,
    /// Numeric features.
    Numeric,
    /// Categorical features.
    Categorical,
    /// The dataset summary.
    Dataset,
    /// Features and the dataset summary.
    Both,
    /// The policy's own schedule (`every`, `every_records`).
    Schedule,
    /// The window's prediction quality (`performance`).
    Performance,
    /// A change detector on the error stream (`page_hinkley`, `adwin`).
    Detector,
    /// A multivariate test (`multivariate`); `p_value` and `detected` apply too.
    Multivariate,
}

impl Metric {
    /// The metric written as `name` in a policy file.
    pub fn parse(name: &str) -> Option<(Metric, Applies)> {
        METRICS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, metric, applies)| (*metric, *applies))
    }

    /// Every name a policy file may use, for error messages.
    pub fn names() -> Vec<&'static str> {
        METRICS.iter().map(|(n, ..)| *n).collect()
    }

    /// The name written in policy files.
    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m, _)| *m == self)
            .map_or("?", |(n, ..)| n)
    }

    /// Where the number sits in a feature report (or, for dataset metrics, in the report's
    /// `dataset` object; for multivariate ones, in the method's object), as a JSON pointer.
    pub fn pointer(self) -> &'static str {
        match self {
            Metric::Detected => "/drift/detected",
            Metric::Score => "/drift/score",
            Metric::PValue => "/drift/p_value",
            Metric::KsStatistic => "/tests/ks/statistic",
            Metric::KsPValue => "/tests/ks/p_value",
            Metric::Wasserstein => "/tests/wasserstein/distance",
            Metric::WassersteinNormed => "/tests/wasserstein/normed",
            Metric::Chi2Statistic => "/tests/chi2/statistic",
            Metric::Chi2PValue => "/tests/chi2/p_value",
            Metric::Psi => "/tests/psi/value",
            Metric::JensenShannon => "/tests/jensen_shannon/distance",
            Metric::Hellinger => "/tests/hellinger/distance",
            Metric::Share => "/share",
            Metric::Drifted => "/drifted",
            // Not in the report: the engine counts them.
            Metric::ElapsedSeconds | Metric::Records | Metric::Due | Metric::Regret => "",
            Metric::Accuracy => "/accuracy",
            Metric::ErrorRate => "/error_rate",
            Metric::Labelled => "/labelled",
            Metric::Mae => "/mae",
            Metric::Rmse => "/rmse",
            // Counted by the engine from the records.
            Metric::Changes => "",
            Metric::Statistic => "/statistic",
        }
    }
}

/// When a signal's value is a hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Criterion {
    /// The verdict is "detected" (for [`Metric::Detected`]).
    IsTrue,
    /// Above a fixed threshold.
    Above {
        /// The threshold.
        threshold: f64,
    },
    /// At or above a fixed threshold (schedules: `every`, `every_records`).
    AtLeast {
        /// The threshold.
        threshold: f64,
    },
    /// Below a fixed threshold.
    Below {
        /// The threshold.
        threshold: f64,
    },
    /// Beyond the `q`-quantile of the signal's last `over` values (dynamic threshold).
    Quantile {
        /// The quantile, in (0, 1).
        q: f64,
        /// Values in the history.
        over: usize,
        /// Values needed before the criterion can hold.
        warmup: usize,
        /// Which side is a hit.
        side: Side,
    },
    /// More than `deviations` standard deviations away from the mean of the last `over` values.
    Rolling {
        /// Standard deviations.
        deviations: f64,
        /// Values in the history.
        over: usize,
        /// Values needed before the criterion can hold.
        warmup: usize,
        /// Which side is a hit.
        side: Side,
    },
}

impl Criterion {
    /// How many past values the criterion keeps (0 for fixed thresholds).
    pub fn history(self) -> usize {
        match self {
            Criterion::Quantile { over, .. } | Criterion::Rolling { over, .. } => over,
            _ => 0,
        }
    }
}

/// Which side of a dynamic threshold is a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Values above it (distances, statistics).
    #[default]
    Above,
    /// Values below it (p-values).
    Below,
}
