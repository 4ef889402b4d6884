//! Models and trigger policies as written, in the service file or in files it includes, and
//! their validation into [`crate::policy`] types: `raw` holds the types as users write them,
//! `rules` builds a policy's `when`, this file reads includes and checks models and policies.

mod criteria;
mod params;
mod raw;
mod rules;

pub use raw::{
    RawAdwin, RawBudget, RawKOfN, RawModel, RawPageHinkley, RawPolicy, RawPolicyFile, RawQuantile,
    RawRegret, RawRolling, RawRule,
};
use rules::{rule, RuleContext};

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::problems::Problems;
use crate::decode::FeatureKind;
use crate::pipeline::StreamSettings;
use crate::policy::{Budget, Model, Policy, WindowRule};

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
pub fn read_includes(patterns: &[String], sources: &mut PolicySources, problems: &mut Problems) {
    for (i, pattern) in patterns.iter().enumerate() {
        let files = match expand(pattern) {
            Ok(files) if files.is_empty() => {
                problems.add(
                    format!("include[{i}]"),
                    format!("{pattern:?} matches no file"),
                );
                continue;
            }
            Ok(files) => files,
            Err(message) => {
                problems.add(format!("include[{i}]"), message);
                continue;
            }
        };
        for file in files {
            let prefix = format!("{}: ", file.display());
            let parsed = std::fs::read_to_string(&file)
                .map_err(|err| super::toml_error::TomlError {
                    place: file.display().to_string(),
                    message: err.to_string(),
                    key: String::new(),
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
                Err(err) => problems.add(err.at(), err.what()),
            }
        }
    }
}

/// The policies of a policy set file (`backtest --policies`): `[[policies]]` only, since the
/// set replaces the configuration's policies and keeps its models and DAGs.
pub fn read_policy_set(file: &Path, problems: &mut Problems) -> Vec<(String, usize, RawPolicy)> {
    if !file.is_file() {
        problems.add(file.display().to_string(), "no such policy set file");
        return Vec::new();
    }
    let mut sources = PolicySources::default();
    read_includes(&[file.display().to_string()], &mut sources, problems);
    if !sources.models.is_empty() || !sources.dags.is_empty() {
        problems.add(
            file.display().to_string(),
            "a policy set holds only [[policies]]: models and DAGs stay the configuration's",
        );
    }
    sources.policies
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
    problems: &mut Problems,
) -> (Vec<Model>, Vec<Policy>) {
    let mut models = Vec::new();
    let mut seen = HashSet::new();
    for (prefix, i, raw) in &sources.models {
        let key = format!("{prefix}models[{i}]");
        let before = problems.len();
        check_name(&raw.name, "model", &key, &mut seen, problems);
        match streams.iter().find(|s| s.name == raw.stream) {
            // The stream itself is invalid and already reported; skip the model quietly.
            None if named.contains(&raw.stream.as_str()) => continue,
            None => problems.add(
                format!("{key}.stream"),
                format!("no stream `{}` (streams: {})", raw.stream, named.join(", ")),
            ),
            Some(stream) => model_features(raw, stream, &key, problems),
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
        let checked = policy(raw, &key, sources, &models, streams, problems);
        // A policy of a model with problems of its own has no rule to keep (those problems
        // are reported with the model).
        if let (true, Some(policy)) = (problems.len() == before, checked) {
            policies.push(policy);
        }
    }
    (models, policies)
}

/// A model's features must exist in its stream.
fn model_features(raw: &RawModel, stream: &StreamSettings, key: &str, problems: &mut Problems) {
    if raw.features.is_empty() {
        problems.add(format!("{key}.features"), "lists no feature");
    }
    for (j, feature) in raw.features.iter().enumerate() {
        if !stream.schema.features.iter().any(|f| &f.name == feature) {
            problems.add(
                format!("{key}.features[{j}]"),
                format!("`{feature}` is not a feature of stream `{}`", stream.name),
            );
        }
    }
}

/// One policy, when every part of it is valid.
fn policy(
    raw: &RawPolicy,
    key: &str,
    sources: &PolicySources,
    models: &[Model],
    streams: &[StreamSettings],
    problems: &mut Problems,
) -> Option<Policy> {
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
            let context = RuleContext {
                model,
                kinds,
                multivariate: &stream.multivariate.methods,
                since_retrain: stream.since_retrain.is_some(),
            };
            rule(&raw.when, &format!("{key}.when"), &context, problems)
        }
        _ => {
            if !sources.models.iter().any(|(_, _, m)| m.name == raw.model) {
                problems.add(format!("{key}.model"), format!("no model `{}`", raw.model));
            }
            None
        }
    };
    let windows = window_rule(raw, key, problems);
    let cooldown = duration(&raw.cooldown, &format!("{key}.cooldown"), true, problems);
    let budget = raw.budget.as_ref().and_then(|b| {
        if b.max_runs == 0 {
            problems.add(
                format!("{key}.budget.max_runs"),
                "must be at least 1 (remove the policy to never trigger)",
            );
        }
        let per = duration(&b.per, &format!("{key}.budget.per"), false, problems)?;
        (b.max_runs > 0).then_some(Budget {
            max_runs: b.max_runs,
            per,
        })
    });
    Some(Policy {
        name: raw.name.clone(),
        model: raw.model.clone(),
        when: when?,
        windows: windows?,
        min_records: raw.min_records,
        cooldown: cooldown?,
        budget,
        in_flight: raw.in_flight,
    })
}

/// `consecutive` or `k_of_n` (default: every window on its own).
fn window_rule(raw: &RawPolicy, key: &str, problems: &mut Problems) -> Option<WindowRule> {
    match (raw.consecutive, raw.k_of_n) {
        (Some(_), Some(_)) => {
            problems.add(key, "set `consecutive` or `k_of_n`, not both");
            None
        }
        (Some(0), None) => {
            problems.add(format!("{key}.consecutive"), "must be at least 1");
            None
        }
        (Some(k), None) => Some(WindowRule::Consecutive { k }),
        (None, None) => Some(WindowRule::Consecutive { k: 1 }),
        (None, Some(RawKOfN { k, n })) if k == 0 || n < k || n > 1000 => {
            problems.add(
                format!("{key}.k_of_n"),
                format!("needs 1 <= k <= n <= 1000, got k = {k}, n = {n}"),
            );
            None
        }
        (None, Some(RawKOfN { k, n })) => Some(WindowRule::KOfN { k, n }),
    }
}

/// A model's or policy's name: valid characters, and unique among its kind.
fn check_name<'a>(
    name: &'a str,
    what: &str,
    key: &str,
    seen: &mut HashSet<&'a str>,
    problems: &mut Problems,
) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        problems.add(
            format!("{key}.name"),
            format!("{name:?} must be non-empty letters, digits, '-', '_' or '.'"),
        );
    }
    if !seen.insert(name) {
        problems.add(
            format!("{key}.name"),
            format!("{what} `{name}` is defined twice"),
        );
    }
}

fn duration(text: &str, key: &str, zero_ok: bool, problems: &mut Problems) -> Option<Duration> {
    super::duration(text, zero_ok)
        .map_err(|message| problems.add(key, message))
        .ok()
}
