//! Models and trigger policies as written, in the service file or in files it includes, and
//! their validation into [`crate::policy`] types. Every field's `///` line is user
//! documentation (README: "Models and policies").

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::validate::{ConfigProblem, StreamSettings};
use crate::decode::FeatureKind;
use crate::policy::detectors::{AdwinParams, DetectorParams, Direction, PageHinkleyParams};
use crate::policy::spec::{Applies, CronSchedule};
use crate::policy::{
    Budget, Criterion, InFlight, Metric, Model, Policy, Regret, RegretMeasure, RetrainCost, Rule,
    Side, Signal, Source, WindowRule,
};

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
    /// `accuracy`, `error_rate` or `labelled`, with a criterion.
    #[serde(default)]
    pub performance: Option<String>,
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
    pub dags: Vec<super::dags::RawDag>,
}

fn default_cooldown() -> String {
    "0s".to_string()
}

fn default_in_flight() -> InFlight {
    InFlight::Suppress
}

/// Models and policies with where each came from, for key paths in errors.
#[derive(Debug, Clone, Default)]
pub struct PolicySources {
    /// `(prefix, model)`; the prefix is empty for the service file, else `FILE: `.
    pub models: Vec<(String, usize, RawModel)>,
    /// `(prefix, index in its file, policy)`.
    pub policies: Vec<(String, usize, RawPolicy)>,
    /// `(prefix, index in its file, DAG)`.
    pub dags: Vec<(String, usize, super::dags::RawDag)>,
}

/// Reads the files `include` names: paths, or a `*` pattern in the file name
/// (`config/policies/*.toml`), relative to the working directory like every path in the file.
pub fn read_includes(
    patterns: &[String],
    sources: &mut PolicySources,
    problems: &mut Vec<ConfigProblem>,
) {
    for (i, pattern) in patterns.iter().enumerate() {
        let files = match expand(pattern) {
            Ok(files) if files.is_empty() => {
                problems.push(ConfigProblem::new(
                    format!("include[{i}]"),
                    format!("{pattern:?} matches no file"),
                ));
                continue;
            }
            Ok(files) => files,
            Err(message) => {
                problems.push(ConfigProblem::new(format!("include[{i}]"), message));
                continue;
            }
        };
        for file in files {
            let prefix = format!("{}: ", file.display());
            let parsed = std::fs::read_to_string(&file)
                .map_err(|err| super::toml_error::TomlError {
                    place: file.display().to_string(),
                    message: err.to_string(),
                })
                .and_then(|text| super::toml_error::parse::<RawPolicyFile>(&file, &text));
            match parsed {
                Ok(parsed) => {
                    for (j, model) in parsed.models.into_iter().enumerate() {
                        sources.models.push((prefix.clone(), j, model));
                    }
                    for (j, policy) in parsed.policies.into_iter().enumerate() {
                        sources.policies.push((prefix.clone(), j, policy));
                    }
                    for (j, dag) in parsed.dags.into_iter().enumerate() {
                        sources.dags.push((prefix.clone(), j, dag));
                    }
                }
                Err(err) => problems.push(ConfigProblem::new(err.place, err.message)),
            }
        }
    }
}

fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{pattern:?} names no file"))?;
    if !name.contains('*') {
        return Ok(if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let (before, after) = name.split_once('*').expect("contains *");
    if after.contains('*') {
        return Err(format!("{pattern:?}: only one `*` is supported"));
    }
    let entries = std::fs::read_dir(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.len() >= before.len() + after.len() && n.starts_with(before) && n.ends_with(after)
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Validates every model and policy against the streams; reports every problem. `named` lists
/// every stream the file defines, valid or not, so that a broken stream is reported once and
/// not again for each model on it.
pub fn validate(
    sources: &PolicySources,
    streams: &[StreamSettings],
    named: &[&str],
    problems: &mut Vec<ConfigProblem>,
) -> (Vec<Model>, Vec<Policy>) {
    let mut models = Vec::new();
    let mut seen = HashSet::new();
    for (prefix, i, raw) in &sources.models {
        let key = format!("{prefix}models[{i}]");
        let before = problems.len();
        check_name(&raw.name, "model", &key, &mut seen, problems);
        match streams.iter().find(|s| s.name == raw.stream) {
            None if named.contains(&raw.stream.as_str()) => {
                // The stream itself is invalid and already reported; skip the model quietly.
                continue;
            }
            None => problems.push(ConfigProblem::new(
                format!("{key}.stream"),
                format!("no stream `{}` (streams: {})", raw.stream, named.join(", ")),
            )),
            Some(stream) => {
                if raw.features.is_empty() {
                    problems.push(ConfigProblem::new(
                        format!("{key}.features"),
                        "lists no feature",
                    ));
                }
                for (j, feature) in raw.features.iter().enumerate() {
                    if !stream.schema.features.iter().any(|f| &f.name == feature) {
                        problems.push(ConfigProblem::new(
                            format!("{key}.features[{j}]"),
                            format!("`{feature}` is not a feature of stream `{}`", stream.name),
                        ));
                    }
                }
            }
        }
        if problems.len() == before {
            models.push(Model {
                name: raw.name.clone(),
                stream: raw.stream.clone(),
                features: raw.features.clone(),
                dag: raw.dag.clone(),
            });
        }
    }

    let mut policies = Vec::new();
    let mut seen = HashSet::new();
    for (prefix, i, raw) in &sources.policies {
        let key = format!("{prefix}policies[{i}]");
        let before = problems.len();
        check_name(&raw.name, "policy", &key, &mut seen, problems);
        let model = models.iter().find(|m| m.name == raw.model);
        let stream = model.and_then(|m| streams.iter().find(|s| s.name == m.stream));
        let when = match (model, stream) {
            (Some(model), Some(stream)) => {
                let kinds: BTreeMap<&str, FeatureKind> = stream
                    .schema
                    .features
                    .iter()
                    .map(|f| (f.name.as_str(), f.kind))
                    .collect();
                let context = RuleContext { model, kinds };
                rule(&raw.when, &format!("{key}.when"), &context, problems)
            }
            _ => {
                if !sources.models.iter().any(|(_, _, m)| m.name == raw.model) {
                    problems.push(ConfigProblem::new(
                        format!("{key}.model"),
                        format!("no model `{}`", raw.model),
                    ));
                }
                None
            }
        };
        let windows = match (raw.consecutive, raw.k_of_n) {
            (Some(_), Some(_)) => {
                problems.push(ConfigProblem::new(
                    key.clone(),
                    "set `consecutive` or `k_of_n`, not both",
                ));
                None
            }
            (Some(0), None) => {
                problems.push(ConfigProblem::new(
                    format!("{key}.consecutive"),
                    "must be at least 1",
                ));
                None
            }
            (Some(k), None) => Some(WindowRule::Consecutive { k }),
            (None, None) => Some(WindowRule::Consecutive { k: 1 }),
            (None, Some(RawKOfN { k, n })) => {
                if k == 0 || n < k || n > 1000 {
                    problems.push(ConfigProblem::new(
                        format!("{key}.k_of_n"),
                        format!("needs 1 <= k <= n <= 1000, got k = {k}, n = {n}"),
                    ));
                    None
                } else {
                    Some(WindowRule::KOfN { k, n })
                }
            }
        };
        let cooldown = duration(&raw.cooldown, &format!("{key}.cooldown"), true, problems);
        let budget = raw.budget.as_ref().and_then(|b| {
            if b.max_runs == 0 {
                problems.push(ConfigProblem::new(
                    format!("{key}.budget.max_runs"),
                    "must be at least 1 (remove the policy to never trigger)",
                ));
            }
            let per = duration(&b.per, &format!("{key}.budget.per"), false, problems)?;
            (b.max_runs > 0).then_some(Budget {
                max_runs: b.max_runs,
                per,
            })
        });
        // A policy of a model with problems of its own has no rule to keep (those problems
        // are reported with the model).
        if let (true, Some(when), Some(windows), Some(cooldown)) =
            (problems.len() == before, when, windows, cooldown)
        {
            policies.push(Policy {
                name: raw.name.clone(),
                model: raw.model.clone(),
                when,
                windows,
                min_records: raw.min_records,
                cooldown,
                budget,
                in_flight: raw.in_flight,
            });
        }
    }
    (models, policies)
}

/// A model's or policy's name: valid characters, and unique among its kind.
fn check_name<'a>(
    name: &'a str,
    what: &str,
    key: &str,
    seen: &mut HashSet<&'a str>,
    problems: &mut Vec<ConfigProblem>,
) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        problems.push(ConfigProblem::new(
            format!("{key}.name"),
            format!("{name:?} must be non-empty letters, digits, '-', '_' or '.'"),
        ));
    }
    if !seen.insert(name) {
        problems.push(ConfigProblem::new(
            format!("{key}.name"),
            format!("{what} `{name}` is defined twice"),
        ));
    }
}

fn duration(
    text: &str,
    key: &str,
    zero_ok: bool,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Duration> {
    super::duration(text, zero_ok)
        .map_err(|message| problems.push(ConfigProblem::new(key, message)))
        .ok()
}

struct RuleContext<'a> {
    model: &'a Model,
    kinds: BTreeMap<&'a str, FeatureKind>,
}

/// A rule; `"*"` signals at the top level combine with `any`.
fn rule(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Rule> {
    let mut rules = rules_of(raw, key, context, problems)?;
    if rules.len() == 1 {
        rules.pop()
    } else {
        Some(Rule::Any(rules))
    }
}

/// The rules one raw rule stands for: one, or one per model feature for `feature = "*"`.
fn rules_of(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<Rule>> {
    let forms = [
        raw.any.is_some(),
        raw.all.is_some(),
        raw.at_least.is_some() || raw.of.is_some(),
        raw.feature.is_some(),
        raw.dataset.is_some(),
        raw.every.is_some(),
        raw.every_records.is_some(),
        raw.cron.is_some(),
        raw.regret.is_some(),
        raw.performance.is_some(),
        raw.page_hinkley.is_some(),
        raw.adwin.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 {
        problems.push(ConfigProblem::new(
            key,
            "set exactly one of `any`, `all`, `at_least` (with `of`), `feature`, `dataset`, \
             `performance`, `page_hinkley`, `adwin`, `every`, `every_records`, `cron` or `regret`",
        ));
        return None;
    }
    let list = |items: &[RawRule], name: &str, problems: &mut Vec<ConfigProblem>| {
        if items.is_empty() {
            problems.push(ConfigProblem::new(format!("{key}.{name}"), "is empty"));
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match rules_of(item, &format!("{key}.{name}[{i}]"), context, problems) {
                Some(rules) => out.extend(rules),
                None => ok = false,
            }
        }
        ok.then_some(out)
    };
    let combinator_fields = raw.metric.is_some()
        || raw.above.is_some()
        || raw.below.is_some()
        || raw.quantile.is_some()
        || raw.rolling.is_some();
    if let Some(items) = &raw.any {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a combinator takes no metric or criterion",
            ));
        }
        return Some(vec![Rule::Any(list(items, "any", problems)?)]);
    }
    if let Some(items) = &raw.all {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a combinator takes no metric or criterion",
            ));
        }
        return Some(vec![Rule::All(list(items, "all", problems)?)]);
    }
    if raw.at_least.is_some() || raw.of.is_some() {
        let (Some(n), Some(items)) = (raw.at_least, raw.of.as_deref()) else {
            problems.push(ConfigProblem::new(key, "`at_least` and `of` go together"));
            return None;
        };
        let of = list(items, "of", problems)?;
        if n == 0 || n > of.len() {
            problems.push(ConfigProblem::new(
                format!("{key}.at_least"),
                format!("must be between 1 and the {} rule(s) in `of`", of.len()),
            ));
            return None;
        }
        return Some(vec![Rule::AtLeast { n, of }]);
    }
    // A change detector on the error stream.
    if raw.page_hinkley.is_some() || raw.adwin.is_some() {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a detector takes no metric or criterion",
            ));
            return None;
        }
        let params = match (&raw.page_hinkley, &raw.adwin) {
            (Some(ph), _) => page_hinkley_params(ph, key, problems),
            (_, Some(adwin)) => adwin_params(adwin, key, problems),
            (None, None) => None,
        }?;
        return Some(vec![Rule::Signal(Signal {
            source: Source::Detector(params),
            metric: Metric::Changes,
            criterion: Criterion::AtLeast { threshold: 1.0 },
        })]);
    }
    // A cost-aware trigger.
    if let Some(regret) = &raw.regret {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a regret trigger takes no metric or criterion: its threshold is the cost",
            ));
            return None;
        }
        let regret = regret_of(regret, &format!("{key}.regret"), problems)?;
        return Some(vec![Rule::Signal(Signal {
            source: Source::Regret(regret),
            metric: Metric::Regret,
            criterion: Criterion::AtLeast { threshold: 0.0 },
        })]);
    }
    // A schedule.
    if let Some(expression) = &raw.cron {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a schedule takes no metric or criterion",
            ));
            return None;
        }
        return match CronSchedule::parse(expression) {
            Ok(cron) => Some(vec![Rule::Signal(Signal {
                source: Source::Cron(cron),
                metric: Metric::Due,
                criterion: Criterion::AtLeast { threshold: 1.0 },
            })]),
            Err(why) => {
                problems.push(ConfigProblem::new(
                    format!("{key}.cron"),
                    format!("{expression:?} is not a cron expression: {why}"),
                ));
                None
            }
        };
    }
    if raw.every.is_some() || raw.every_records.is_some() {
        if combinator_fields {
            problems.push(ConfigProblem::new(
                key,
                "a schedule takes no metric or criterion",
            ));
            return None;
        }
        let (metric, threshold) = match (&raw.every, raw.every_records) {
            (Some(text), _) => {
                let period = duration(text, &format!("{key}.every"), false, problems)?;
                (Metric::ElapsedSeconds, period.as_secs_f64())
            }
            (None, Some(0)) => {
                problems.push(ConfigProblem::new(
                    format!("{key}.every_records"),
                    "must be at least 1",
                ));
                return None;
            }
            (None, Some(records)) => (Metric::Records, records as f64),
            (None, None) => unreachable!("one schedule form is set"),
        };
        return Some(vec![Rule::Signal(Signal {
            source: Source::Schedule,
            metric,
            criterion: Criterion::AtLeast { threshold },
        })]);
    }
    // A signal.
    let criterion = criterion(raw, key, problems);
    if let Some(metric_name) = &raw.performance {
        if raw.metric.is_some() {
            problems.push(ConfigProblem::new(
                format!("{key}.metric"),
                "a performance signal names its metric in `performance` (accuracy, error_rate, labelled)",
            ));
        }
        let metric = match Metric::parse(metric_name) {
            Some((metric, Applies::Performance)) => metric,
            _ => {
                problems.push(ConfigProblem::new(
                    format!("{key}.performance"),
                    format!("{metric_name:?} is not a performance metric: use accuracy, error_rate or labelled"),
                ));
                return None;
            }
        };
        let Some(criterion) = criterion? else {
            problems.push(ConfigProblem::new(
                key,
                format!(
                    "{metric_name} needs a criterion: `above`, `below`, `quantile` or `rolling`"
                ),
            ));
            return None;
        };
        return Some(vec![Rule::Signal(Signal {
            source: Source::Performance,
            metric,
            criterion,
        })]);
    }
    if let Some(metric_name) = &raw.dataset {
        if raw.metric.is_some() {
            problems.push(ConfigProblem::new(
                format!("{key}.metric"),
                "a dataset signal names its metric in `dataset` (share, drifted, detected)",
            ));
        }
        let metric = match Metric::parse(metric_name) {
            Some((metric, Applies::Dataset | Applies::Both)) => metric,
            _ => {
                problems.push(ConfigProblem::new(
                    format!("{key}.dataset"),
                    format!(
                        "{metric_name:?} is not a dataset metric: use share, drifted or detected"
                    ),
                ));
                return None;
            }
        };
        let criterion = signal_criterion(metric, criterion?, key, problems)?;
        return Some(vec![Rule::Signal(Signal {
            source: Source::Dataset,
            metric,
            criterion,
        })]);
    }
    let feature = raw.feature.as_deref().expect("one form is set");
    let names: Vec<&str> = if feature == "*" {
        context.model.features.iter().map(String::as_str).collect()
    } else if context.model.features.iter().any(|f| f == feature) {
        vec![feature]
    } else {
        problems.push(ConfigProblem::new(
            format!("{key}.feature"),
            format!(
                "`{feature}` is not a feature of model `{}` ({})",
                context.model.name,
                context.model.features.join(", ")
            ),
        ));
        return None;
    };
    let metric_name = raw.metric.as_deref().unwrap_or("detected");
    let Some((metric, applies)) = Metric::parse(metric_name) else {
        problems.push(ConfigProblem::new(
            format!("{key}.metric"),
            format!(
                "{metric_name:?} is not a metric; use one of {}",
                Metric::names().join(", ")
            ),
        ));
        return None;
    };
    let criterion = signal_criterion(metric, criterion?, key, problems)?;
    let mut rules = Vec::new();
    for name in names {
        let kind = context.kinds.get(name).copied();
        let fits = match applies {
            Applies::Feature | Applies::Both => true,
            Applies::Numeric => kind == Some(FeatureKind::Numeric),
            Applies::Categorical => kind == Some(FeatureKind::Categorical),
            Applies::Dataset | Applies::Schedule | Applies::Performance | Applies::Detector => {
                false
            }
        };
        if !fits {
            problems.push(ConfigProblem::new(
                format!("{key}.metric"),
                format!(
                    "{metric_name} does not exist for `{name}`, a {} feature",
                    kind.map_or("unknown", FeatureKind::as_str)
                ),
            ));
            return None;
        }
        rules.push(Rule::Signal(Signal {
            source: Source::Feature(name.to_string()),
            metric,
            criterion,
        }));
    }
    Some(rules)
}

/// The criterion fields of a signal: at most one; `None` inside means none was given.
fn criterion(
    raw: &RawRule,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<Criterion>> {
    let given = [
        raw.above.is_some(),
        raw.below.is_some(),
        raw.quantile.is_some(),
        raw.rolling.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        problems.push(ConfigProblem::new(
            key,
            "set one criterion: `above`, `below`, `quantile` or `rolling`",
        ));
        return None;
    }
    let finite = |value: f64, name: &str, problems: &mut Vec<ConfigProblem>| {
        if value.is_finite() {
            Some(value)
        } else {
            problems.push(ConfigProblem::new(
                format!("{key}.{name}"),
                "must be a finite number",
            ));
            None
        }
    };
    if let Some(threshold) = raw.above {
        return Some(Some(Criterion::Above {
            threshold: finite(threshold, "above", problems)?,
        }));
    }
    if let Some(threshold) = raw.below {
        return Some(Some(Criterion::Below {
            threshold: finite(threshold, "below", problems)?,
        }));
    }
    if let Some(q) = &raw.quantile {
        let warmup = q.warmup.unwrap_or(q.over);
        let mut ok = true;
        if !(q.q > 0.0 && q.q < 1.0) {
            problems.push(ConfigProblem::new(
                format!("{key}.quantile.q"),
                "must be between 0 and 1",
            ));
            ok = false;
        }
        if q.over == 0 || q.over > 10_000 {
            problems.push(ConfigProblem::new(
                format!("{key}.quantile.over"),
                "must be between 1 and 10000",
            ));
            ok = false;
        }
        if warmup == 0 || warmup > q.over {
            problems.push(ConfigProblem::new(
                format!("{key}.quantile.warmup"),
                "must be between 1 and `over`",
            ));
            ok = false;
        }
        return ok.then_some(Some(Criterion::Quantile {
            q: q.q,
            over: q.over,
            warmup,
            side: q.side,
        }));
    }
    if let Some(r) = &raw.rolling {
        let warmup = r.warmup.unwrap_or(r.over);
        let mut ok = true;
        if !(r.deviations.is_finite() && r.deviations > 0.0) {
            problems.push(ConfigProblem::new(
                format!("{key}.rolling.deviations"),
                "must be a positive number",
            ));
            ok = false;
        }
        if r.over < 2 || r.over > 10_000 {
            problems.push(ConfigProblem::new(
                format!("{key}.rolling.over"),
                "must be between 2 and 10000",
            ));
            ok = false;
        }
        if warmup < 2 || warmup > r.over {
            problems.push(ConfigProblem::new(
                format!("{key}.rolling.warmup"),
                "must be between 2 and `over`",
            ));
            ok = false;
        }
        return ok.then_some(Some(Criterion::Rolling {
            deviations: r.deviations,
            over: r.over,
            warmup,
            side: r.side,
        }));
    }
    Some(None)
}

/// A signal's criterion: a verdict needs none; a number needs one.
fn signal_criterion(
    metric: Metric,
    criterion: Option<Criterion>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Criterion> {
    match (metric, criterion) {
        (_, Some(criterion)) => Some(criterion),
        (Metric::Detected, None) => Some(Criterion::IsTrue),
        (metric, None) => {
            problems.push(ConfigProblem::new(
                key,
                format!(
                    "{} needs a criterion: `above`, `below`, `quantile` or `rolling`",
                    metric.name()
                ),
            ));
            None
        }
    }
}

fn page_hinkley_params(
    raw: &RawPageHinkley,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<DetectorParams> {
    let defaults = PageHinkleyParams::default();
    let params = PageHinkleyParams {
        min_instances: raw.min_instances.unwrap_or(defaults.min_instances),
        delta: raw.delta.unwrap_or(defaults.delta),
        threshold: raw.threshold.unwrap_or(defaults.threshold),
        alpha: raw.alpha.unwrap_or(defaults.alpha),
        mode: raw.mode.unwrap_or(defaults.mode),
    };
    let checks = [
        (
            "threshold",
            params.threshold.is_finite() && params.threshold > 0.0,
            "must be a positive number",
        ),
        (
            "delta",
            params.delta.is_finite() && params.delta >= 0.0,
            "must be zero or more",
        ),
        (
            "alpha",
            params.alpha > 0.0 && params.alpha <= 1.0,
            "must be in (0, 1]",
        ),
        (
            "min_instances",
            params.min_instances > 0,
            "must be at least 1",
        ),
    ];
    detector_checks(key, "page_hinkley", &checks, problems)
        .then_some(DetectorParams::PageHinkley(params))
}

fn adwin_params(
    raw: &RawAdwin,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<DetectorParams> {
    let defaults = AdwinParams::default();
    let params = AdwinParams {
        delta: raw.delta.unwrap_or(defaults.delta),
        clock: raw.clock.unwrap_or(defaults.clock),
        max_buckets: raw.max_buckets.unwrap_or(defaults.max_buckets),
        min_window_length: raw.min_window_length.unwrap_or(defaults.min_window_length),
        grace_period: raw.grace_period.unwrap_or(defaults.grace_period),
    };
    let checks = [
        (
            "delta",
            params.delta > 0.0 && params.delta < 1.0,
            "must be in (0, 1)",
        ),
        ("clock", params.clock > 0, "must be at least 1"),
        ("max_buckets", params.max_buckets > 0, "must be at least 1"),
        (
            "min_window_length",
            params.min_window_length > 0,
            "must be at least 1",
        ),
    ];
    detector_checks(key, "adwin", &checks, problems).then_some(DetectorParams::Adwin(params))
}

/// Records a problem for each failed check of a detector's parameters; true when all passed.
fn detector_checks(
    key: &str,
    detector: &str,
    checks: &[(&str, bool, &str)],
    problems: &mut Vec<ConfigProblem>,
) -> bool {
    for (field, ok, message) in checks {
        if !ok {
            problems.push(ConfigProblem::new(
                format!("{key}.{detector}.{field}"),
                *message,
            ));
        }
    }
    checks.iter().all(|(_, ok, _)| *ok)
}

fn regret_of(raw: &RawRegret, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<Regret> {
    let measure = match raw.of.as_str() {
        "drifted_records" => Some(RegretMeasure::DriftedRecords),
        "errors" => Some(RegretMeasure::Errors),
        other => {
            problems.push(ConfigProblem::new(
                format!("{key}.of"),
                format!("{other:?} is not a regret measure: use drifted_records or errors"),
            ));
            None
        }
    };
    let positive = |value: f64, field: &str, problems: &mut Vec<ConfigProblem>| {
        let ok = value.is_finite() && value > 0.0;
        if !ok {
            problems.push(ConfigProblem::new(
                format!("{key}.{field}"),
                "must be a positive number",
            ));
        }
        ok.then_some(value)
    };
    let forecast_fields = raw.initial_run_time.is_some() || raw.over.is_some();
    let cost = match (raw.cost, raw.cost_per_run_second) {
        (Some(cost), None) => {
            if forecast_fields {
                problems.push(ConfigProblem::new(
                    key,
                    "`initial_run_time` and `over` go with `cost_per_run_second`, not `cost`",
                ));
                return None;
            }
            positive(cost, "cost", problems).map(RetrainCost::Fixed)
        }
        (None, Some(per_second)) => {
            let per_run_second = positive(per_second, "cost_per_run_second", problems);
            let initial = match &raw.initial_run_time {
                Some(text) => duration(text, &format!("{key}.initial_run_time"), false, problems),
                None => Some(std::time::Duration::from_secs(600)),
            };
            let over = raw.over.unwrap_or(5);
            if over == 0 || over > 100 {
                problems.push(ConfigProblem::new(
                    format!("{key}.over"),
                    "must be between 1 and 100",
                ));
            }
            match (per_run_second, initial) {
                (Some(per_run_second), Some(initial)) if (1..=100).contains(&over) => {
                    Some(RetrainCost::Forecast {
                        per_run_second,
                        initial_run_seconds: initial.as_secs_f64(),
                        over,
                    })
                }
                _ => None,
            }
        }
        _ => {
            problems.push(ConfigProblem::new(
                key,
                "set one of `cost` (fixed) or `cost_per_run_second` (forecast from past runs)",
            ));
            None
        }
    };
    Some(Regret {
        measure: measure?,
        cost: cost?,
    })
}
