//! The `[[streams]]` tables, checked: unique names and topics, each stream's baseline (loaded and
//! holding its features), window, drift settings and multivariate tests.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::problems::Problems;
use super::raw::{RawDrift, RawStream, RawWindow};
use crate::baseline::Baseline;
use crate::decode::Schema;
use crate::drift::DriftSettings;
use crate::pipeline::StreamSettings;
use crate::window::WindowSpec;

/// The valid streams; names and topics must be unique.
pub(super) fn streams(raw: &[RawStream], problems: &mut Problems) -> Vec<StreamSettings> {
    if raw.is_empty() {
        problems.add(
            "streams",
            "no stream is configured: add a [[streams]] table",
        );
    }
    let mut names = HashSet::new();
    let mut topics: BTreeMap<&str, &str> = BTreeMap::new();
    let mut streams = Vec::new();
    for (i, stream) in raw.iter().enumerate() {
        let key = format!("streams[{i}]");
        if !names.insert(stream.name.as_str()) {
            problems.add(
                format!("{key}.name"),
                format!("`{}` is used by an earlier stream", stream.name),
            );
        }
        if let Some(other) = topics.insert(stream.topic.as_str(), stream.name.as_str()) {
            problems.add(
                format!("{key}.topic"),
                format!(
                    "`{}` is already the topic of stream `{other}`",
                    stream.topic
                ),
            );
        }
        if let Some(settings) = validate_stream(stream, &key, problems) {
            streams.push(settings);
        }
    }
    streams
}

fn validate_stream(
    stream: &RawStream,
    key: &str,
    problems: &mut Problems,
) -> Option<StreamSettings> {
    let before = problems.len();
    let name_ok = !stream.name.is_empty()
        && stream
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        problems.add(
            format!("{key}.name"),
            format!(
                "{:?} must be non-empty letters, digits, '-', '_' or '.' (it appears in URLs)",
                stream.name
            ),
        );
    }
    if stream.topic.trim().is_empty() {
        problems.add(format!("{key}.topic"), "is empty");
    }
    if stream.dead_letter_topic.as_deref() == Some(stream.topic.as_str()) {
        problems.add(
            format!("{key}.dead_letter_topic"),
            "must differ from the stream's topic",
        );
    }
    let (window, grace) = validate_window(&stream.window, &format!("{key}.window"), problems);
    let schema = Schema {
        features: stream.features.clone(),
    };
    if let Err(message) = schema.validate() {
        problems.add(format!("{key}.features"), message);
    }
    let drift = drift_settings(&stream.drift);
    if let Err(messages) = drift.validate() {
        for message in messages {
            problems.add(format!("{key}.drift"), message);
        }
    }
    if stream.drift.since_retrain && stream.drift.since_retrain_sample == 0 {
        problems.add(
            format!("{key}.drift.since_retrain_sample"),
            "must be at least 1",
        );
    }
    if stream.drift.since_retrain && stream.summarise_after.is_some_and(|n| n > 0) {
        problems.add(
            format!("{key}.summarise_after"),
            "windows are never summarised with drift.since_retrain, which needs their values: remove one of the two",
        );
    }
    let multivariate = crate::pipeline::MultivariateSettings {
        methods: stream.drift.multivariate.clone(),
        rows: stream.drift.multivariate_rows,
    };
    let baseline_path = PathBuf::from(&stream.baseline);
    let baseline = match Baseline::load(&baseline_path) {
        Ok(baseline) => {
            let plan =
                crate::pipeline::MultivariatePlan::of(&multivariate, &drift, &schema, &baseline);
            let prepared = plan.and_then(|plan| match &plan {
                Some(plan) => plan.prepared().map(|_| ()).map_err(str::to_string),
                None => Ok(()),
            });
            if let Err(message) = prepared {
                problems.add(format!("{key}.drift.multivariate"), message);
            }
            for mismatch in baseline.mismatches(&stream.features) {
                let message = match mismatch.strip_suffix("is not in the baseline") {
                    Some(head) => format!("{head}is not in the baseline {}", stream.baseline),
                    None => mismatch,
                };
                problems.add(format!("{key}.features"), message);
            }
            Some(baseline)
        }
        Err(err) => {
            problems.add(format!("{key}.baseline"), err.to_string());
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(StreamSettings {
        name: stream.name.clone(),
        topic: stream.topic.clone(),
        baseline_path,
        baseline: Arc::new(baseline?),
        schema,
        window: window?,
        grace,
        dead_letter_topic: stream.dead_letter_topic.clone(),
        drift,
        keep_records: stream.keep_records,
        summarise_after: stream.summarise_after,
        multivariate,
        since_retrain: (stream.drift.since_retrain).then_some(stream.drift.since_retrain_sample),
    })
}

fn validate_window(
    window: &RawWindow,
    key: &str,
    problems: &mut Problems,
) -> (Option<WindowSpec>, Duration) {
    let default_grace = Duration::from_secs(0);
    match (window.records, window.duration.as_deref()) {
        (Some(_), Some(_)) | (None, None) => {
            problems.add(key, "set exactly one of `records` or `duration`");
            (None, default_grace)
        }
        (Some(records), None) => {
            if window.grace.is_some() {
                problems.add(format!("{key}.grace"), "only applies to duration windows");
            }
            if records == 0 {
                problems.add(format!("{key}.records"), "must be at least 1");
                return (None, default_grace);
            }
            (Some(WindowSpec::Records(records)), default_grace)
        }
        (None, Some(text)) => {
            let length = problems.duration(&format!("{key}.duration"), text);
            let grace = match window.grace.as_deref() {
                Some(g) => problems
                    .duration(&format!("{key}.grace"), g)
                    .unwrap_or(default_grace),
                None => default_grace,
            };
            let spec = length.map(|d| WindowSpec::DurationMs(d.as_millis().max(1) as u64));
            (spec, grace)
        }
    }
}

fn drift_settings(raw: &RawDrift) -> DriftSettings {
    DriftSettings {
        alpha: raw.alpha,
        bins: raw.bins,
        numeric_method: raw.numeric_method,
        categorical_method: raw.categorical_method,
        threshold: raw.threshold,
        permutations: raw.permutations,
        seed: raw.seed,
        correction: raw.correction,
        drift_share: raw.drift_share,
        min_samples: raw.min_samples,
    }
}
