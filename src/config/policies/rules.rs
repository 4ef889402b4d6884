//! A policy's `when`, checked and built into a [`Rule`]: one function per form (combinators,
//! detectors, regret, schedules, performance, data-set and feature signals), each reporting
//! every problem with its key path.

use std::collections::BTreeMap;

use super::criteria::{criterion, signal_criterion};
use super::duration;
use super::params::{adwin_params, page_hinkley_params, regret_of};
use super::raw::{RawRegret, RawRule};
use crate::config::problems::Problems;
use crate::decode::FeatureKind;
use crate::drift::multivariate::Multivariate;
use crate::policy::spec::{Applies, CronSchedule};
use crate::policy::{Criterion, Loss, Metric, Model, Reference, Rule, Signal, Source};

/// What a rule is checked against: its model and the kinds of the stream's features.
pub(super) struct RuleContext<'a> {
    /// The model the policy retrains.
    pub(super) model: &'a Model,
    /// The kind of each feature of the model's stream.
    pub(super) kinds: BTreeMap<&'a str, FeatureKind>,
    /// The multivariate tests the stream runs.
    pub(super) multivariate: &'a [Multivariate],
    /// Whether the stream compares windows with the data since the last retrain too.
    pub(super) since_retrain: bool,
}

/// A rule; `"*"` signals at the top level combine with `any`.
pub(super) fn rule(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Problems,
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
    problems: &mut Problems,
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
        raw.prediction.is_some(),
        raw.label.is_some(),
        raw.multivariate.is_some(),
        raw.page_hinkley.is_some(),
        raw.adwin.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 {
        problems.add(
            key,
            "set exactly one of `any`, `all`, `at_least` (with `of`), `feature`, `dataset`, \
             `performance`, `prediction`, `label`, `multivariate`, `page_hinkley`, `adwin`, `every`, \
             `every_records`, `cron` or `regret`",
        );
        return None;
    }
    let reference = reference(raw, key, context, problems)?;
    if raw.any.is_some() || raw.all.is_some() || raw.at_least.is_some() || raw.of.is_some() {
        return combinator(raw, key, context, problems).map(|rule| vec![rule]);
    }
    let single = if raw.page_hinkley.is_some() || raw.adwin.is_some() {
        detector(raw, key, problems)
    } else if let Some(regret) = &raw.regret {
        regret_rule(raw, regret, key, problems)
    } else if let Some(expression) = &raw.cron {
        cron(raw, expression, key, problems)
    } else if raw.every.is_some() || raw.every_records.is_some() {
        schedule(raw, key, problems)
    } else if let Some(metric) = &raw.performance {
        performance(raw, metric, key, problems)
    } else if let Some(metric) = &raw.prediction {
        output(raw, "prediction", metric, key, problems)
    } else if let Some(metric) = &raw.label {
        output(raw, "label", metric, key, problems)
    } else if let Some(method) = &raw.multivariate {
        multivariate(raw, method, key, context, problems)
    } else if let Some(metric) = &raw.dataset {
        dataset(raw, metric, key, problems).map(|signal| Signal {
            reference,
            ..signal
        })
    } else {
        let mut rules = features(raw, key, context, problems)?;
        for rule in &mut rules {
            if let Rule::Signal(signal) = rule {
                signal.reference = reference;
            }
        }
        return Some(rules);
    };
    single.map(|signal| vec![Rule::Signal(signal)])
}

/// What a feature or data-set signal compares the window with (`reference`); other forms take
/// none. `None` after a problem.
fn reference(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Problems,
) -> Option<Reference> {
    let Some(name) = raw.reference.as_deref() else {
        return Some(Reference::Training);
    };
    let key = format!("{key}.reference");
    let Some(reference) = Reference::parse(name) else {
        problems.add(
            key,
            format!("{name:?} is not a reference: use training or since_retrain"),
        );
        return None;
    };
    if raw.feature.is_none() && raw.dataset.is_none() {
        problems.add(key, "only `feature` and `dataset` signals take a reference");
        return None;
    }
    if reference == Reference::SinceRetrain && !context.since_retrain {
        problems.add(
            key,
            format!(
                "the stream of model `{}` does not keep the data since the last retrain: set drift.since_retrain = true on it",
                context.model.name
            ),
        );
        return None;
    }
    Some(reference)
}

/// Whether `raw` sets a metric or a criterion (which `what` does not take); reports it.
fn takes_no_criterion(raw: &RawRule, key: &str, what: &str, problems: &mut Problems) -> bool {
    let set = raw.metric.is_some()
        || raw.above.is_some()
        || raw.below.is_some()
        || raw.quantile.is_some()
        || raw.rolling.is_some();
    if set {
        problems.add(key, what);
    }
    !set
}

/// `any`, `all`, or `at_least` of `of`.
fn combinator(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Problems,
) -> Option<Rule> {
    let list = |items: &[RawRule], name: &str, problems: &mut Problems| {
        if items.is_empty() {
            problems.add(format!("{key}.{name}"), "is empty");
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
    if let Some(items) = &raw.any {
        takes_no_criterion(
            raw,
            key,
            "a combinator takes no metric or criterion",
            problems,
        );
        return Some(Rule::Any(list(items, "any", problems)?));
    }
    if let Some(items) = &raw.all {
        takes_no_criterion(
            raw,
            key,
            "a combinator takes no metric or criterion",
            problems,
        );
        return Some(Rule::All(list(items, "all", problems)?));
    }
    let (Some(n), Some(items)) = (raw.at_least, raw.of.as_deref()) else {
        problems.add(key, "`at_least` and `of` go together");
        return None;
    };
    let of = list(items, "of", problems)?;
    if n == 0 || n > of.len() {
        problems.add(
            format!("{key}.at_least"),
            format!("must be between 1 and the {} rule(s) in `of`", of.len()),
        );
        return None;
    }
    Some(Rule::AtLeast { n, of })
}

/// A change detector on the error stream (`page_hinkley` or `adwin`).
fn detector(raw: &RawRule, key: &str, problems: &mut Problems) -> Option<Signal> {
    if !takes_no_criterion(
        raw,
        key,
        "a detector takes no metric or criterion",
        problems,
    ) {
        return None;
    }
    let (params, loss) = match (&raw.page_hinkley, &raw.adwin) {
        (Some(ph), _) => (
            page_hinkley_params(ph, key, problems),
            loss(ph.loss.as_deref(), &format!("{key}.page_hinkley"), problems),
        ),
        (_, Some(adwin)) => (
            adwin_params(adwin, key, problems),
            loss(adwin.loss.as_deref(), &format!("{key}.adwin"), problems),
        ),
        (None, None) => (None, None),
    };
    Some(Signal {
        source: Source::Detector(params?, loss?),
        metric: Metric::Changes,
        criterion: Criterion::AtLeast { threshold: 1.0 },
        reference: Reference::Training,
    })
}

/// A detector's loss (zero-one when unset).
fn loss(name: Option<&str>, key: &str, problems: &mut Problems) -> Option<Loss> {
    let Some(name) = name else {
        return Some(Loss::ZeroOne);
    };
    let loss = Loss::parse(name);
    if loss.is_none() {
        problems.add(
            format!("{key}.loss"),
            format!("{name:?} is not a loss: use zero_one, absolute or squared"),
        );
    }
    loss
}

/// A cost-aware trigger: fires when the regret of waiting reaches the cost of a retrain.
fn regret_rule(
    raw: &RawRule,
    regret: &RawRegret,
    key: &str,
    problems: &mut Problems,
) -> Option<Signal> {
    let what = "a regret trigger takes no metric or criterion: its threshold is the cost";
    if !takes_no_criterion(raw, key, what, problems) {
        return None;
    }
    let regret = regret_of(regret, &format!("{key}.regret"), problems)?;
    Some(Signal {
        source: Source::Regret(regret),
        metric: Metric::Regret,
        criterion: Criterion::AtLeast { threshold: 0.0 },
        reference: Reference::Training,
    })
}

/// A cron schedule.
fn cron(raw: &RawRule, expression: &str, key: &str, problems: &mut Problems) -> Option<Signal> {
    if !takes_no_criterion(
        raw,
        key,
        "a schedule takes no metric or criterion",
        problems,
    ) {
        return None;
    }
    match CronSchedule::parse(expression) {
        Ok(cron) => Some(Signal {
            source: Source::Cron(cron),
            metric: Metric::Due,
            criterion: Criterion::AtLeast { threshold: 1.0 },
            reference: Reference::Training,
        }),
        Err(why) => {
            problems.add(
                format!("{key}.cron"),
                format!("{expression:?} is not a cron expression: {why}"),
            );
            None
        }
    }
}

/// A schedule by time (`every`) or by records (`every_records`).
fn schedule(raw: &RawRule, key: &str, problems: &mut Problems) -> Option<Signal> {
    if !takes_no_criterion(
        raw,
        key,
        "a schedule takes no metric or criterion",
        problems,
    ) {
        return None;
    }
    let (metric, threshold) = match (&raw.every, raw.every_records) {
        (Some(text), _) => {
            let period = duration(text, &format!("{key}.every"), false, problems)?;
            (Metric::ElapsedSeconds, period.as_secs_f64())
        }
        (None, Some(0)) => {
            problems.add(format!("{key}.every_records"), "must be at least 1");
            return None;
        }
        (None, Some(records)) => (Metric::Records, records as f64),
        (None, None) => unreachable!("one schedule form is set"),
    };
    Some(Signal {
        source: Source::Schedule,
        metric,
        criterion: Criterion::AtLeast { threshold },
        reference: Reference::Training,
    })
}

/// A signal on the model's labelled performance (`performance = "accuracy"`, …).
fn performance(
    raw: &RawRule,
    metric_name: &str,
    key: &str,
    problems: &mut Problems,
) -> Option<Signal> {
    let criterion = criterion(raw, key, problems);
    if raw.metric.is_some() {
        problems.add(
            format!("{key}.metric"),
            "a performance signal names its metric in `performance` (accuracy, error_rate, labelled, mae, rmse)",
        );
    }
    let metric = match Metric::parse(metric_name) {
        Some((metric, Applies::Performance)) => metric,
        _ => {
            problems.add(
                format!("{key}.performance"),
                format!("{metric_name:?} is not a performance metric: use accuracy, error_rate, labelled, mae or rmse"),
            );
            return None;
        }
    };
    let criterion = signal_criterion(metric, criterion?, key, problems)?;
    Some(Signal {
        source: Source::Performance,
        metric,
        criterion,
        reference: Reference::Training,
    })
}

/// A signal on a multivariate test (`multivariate = "mmd"`, with `metric` `drift` (the
/// default), `p_value` or `statistic` and a criterion for the last two).
fn multivariate(
    raw: &RawRule,
    method_name: &str,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Problems,
) -> Option<Signal> {
    let criterion = criterion(raw, key, problems);
    let Some(method) = Multivariate::parse(method_name) else {
        problems.add(
            format!("{key}.multivariate"),
            format!("{method_name:?} is not a multivariate test: use mmd or pca"),
        );
        return None;
    };
    if !context.multivariate.contains(&method) {
        problems.add(
            format!("{key}.multivariate"),
            format!(
                "the stream of model `{}` does not run {method_name}: add it to the stream's drift.multivariate",
                context.model.name
            ),
        );
        return None;
    }
    let metric = match raw.metric.as_deref().unwrap_or("drift") {
        "drift" | "detected" => Metric::Detected,
        "p_value" => Metric::PValue,
        "statistic" => Metric::Statistic,
        other => {
            problems.add(
                format!("{key}.metric"),
                format!("{other:?} is not a multivariate metric: use drift, p_value or statistic"),
            );
            return None;
        }
    };
    let criterion = signal_criterion(metric, criterion?, key, problems)?;
    Some(Signal {
        source: Source::Multivariate(method),
        metric,
        criterion,
        reference: Reference::Training,
    })
}

/// A signal on a model output's drift (`prediction = "drift"`, `label = "psi", above = 0.2`):
/// `drift` is the verdict; any feature metric reads as it does for a feature.
fn output(
    raw: &RawRule,
    name: &str,
    metric_name: &str,
    key: &str,
    problems: &mut Problems,
) -> Option<Signal> {
    let criterion = criterion(raw, key, problems);
    if raw.metric.is_some() {
        let what = format!("an output signal names its metric in `{name}`");
        problems.add(format!("{key}.metric"), what);
    }
    let feature_metric = |(metric, applies)| match applies {
        Applies::Feature | Applies::Numeric | Applies::Categorical | Applies::Both => Some(metric),
        _ => None,
    };
    let metric = match metric_name {
        "drift" => Some(Metric::Detected),
        other => Metric::parse(other).and_then(feature_metric),
    };
    let Some(metric) = metric else {
        problems.add(
            format!("{key}.{name}"),
            format!("{metric_name:?} is not an output metric: use drift or a feature's metric (p_value, psi, …)"),
        );
        return None;
    };
    let criterion = signal_criterion(metric, criterion?, key, problems)?;
    Some(Signal {
        source: Source::Output(name.to_string()),
        metric,
        criterion,
        reference: Reference::Training,
    })
}

/// A signal on the whole data set (`dataset = "share"`, …).
fn dataset(raw: &RawRule, metric_name: &str, key: &str, problems: &mut Problems) -> Option<Signal> {
    let criterion = criterion(raw, key, problems);
    if raw.metric.is_some() {
        problems.add(
            format!("{key}.metric"),
            "a dataset signal names its metric in `dataset` (share, drifted, detected)",
        );
    }
    let metric = match Metric::parse(metric_name) {
        Some((metric, Applies::Dataset | Applies::Both)) => metric,
        _ => {
            problems.add(
                format!("{key}.dataset"),
                format!("{metric_name:?} is not a dataset metric: use share, drifted or detected"),
            );
            return None;
        }
    };
    let criterion = signal_criterion(metric, criterion?, key, problems)?;
    Some(Signal {
        source: Source::Dataset,
        metric,
        criterion,
        reference: Reference::Training,
    })
}

/// A signal on one feature, or on each of the model's features for `feature = "*"`.
fn features(
    raw: &RawRule,
    key: &str,
    context: &RuleContext<'_>,
    problems: &mut Problems,
) -> Option<Vec<Rule>> {
    let criterion = criterion(raw, key, problems);
    let names = feature_names(
        raw.feature.as_deref().unwrap_or("*"),
        key,
        context,
        problems,
    )?;
    let metric_name = raw.metric.as_deref().unwrap_or("detected");
    let Some((metric, applies)) = Metric::parse(metric_name) else {
        problems.add(
            format!("{key}.metric"),
            format!(
                "{metric_name:?} is not a metric; use one of {}",
                Metric::names().join(", ")
            ),
        );
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
            Applies::Dataset
            | Applies::Schedule
            | Applies::Performance
            | Applies::Detector
            | Applies::Multivariate => false,
        };
        if !fits {
            problems.add(
                format!("{key}.metric"),
                format!(
                    "{metric_name} does not exist for `{name}`, a {} feature",
                    kind.map_or("unknown", FeatureKind::as_str)
                ),
            );
            return None;
        }
        rules.push(Rule::Signal(Signal {
            source: Source::Feature(name.to_string()),
            metric,
            criterion,
            reference: Reference::Training,
        }));
    }
    Some(rules)
}

/// The features `feature` names: the model's own, or all of them for `*`.
fn feature_names<'a>(
    feature: &'a str,
    key: &str,
    context: &'a RuleContext<'_>,
    problems: &mut Problems,
) -> Option<Vec<&'a str>> {
    let model = context.model;
    if feature == "*" {
        return Some(model.features.iter().map(String::as_str).collect());
    }
    if model.features.iter().any(|f| f == feature) {
        return Some(vec![feature]);
    }
    problems.add(
        format!("{key}.feature"),
        format!(
            "`{feature}` is not a feature of model `{}` ({})",
            model.name,
            model.features.join(", ")
        ),
    );
    None
}
