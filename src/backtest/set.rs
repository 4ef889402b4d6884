//! One policy set's backtest: the input's messages, scored by the current model, through the
//! stream's processor; runs started and applied in event time ([`super::runs`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::judged::Judged;
use super::report::{BacktestWindow, SetResult};
use super::runs::{Initial, Launched, SetRuns};
use super::scorer::{Scorer, ScorerCommand};
use super::{BacktestError, Input, Options, PolicySet};
use crate::config::ServiceConfig;
use crate::pipeline::{JudgedWindow, Message, StreamProcessor};

/// Backtests one policy set in `dir` (new), starting from the `initial` model.
pub(super) fn run_set(
    options: &Options,
    judged: &Judged,
    set: &PolicySet,
    initial: &Initial,
    dir: &Path,
) -> Result<SetResult, BacktestError> {
    crate::files::create_private_dir(dir).map_err(|e| io(dir, e))?;
    let file = policy_file(set, judged, dir)?;
    let mut config = crate::config::load_for_backtest(&options.config, file.as_deref())?;
    config.policies.retain(|p| p.model == judged.model);
    let settings = crate::replay::stream_settings(&config, Some(&judged.stream))
        .map_err(|e| BacktestError::Setup(e.to_string()))?;
    let mut settings = settings.clone();
    // Runs train on the triggering window's records.
    settings.keep_records = Some(true);
    let mut processor =
        StreamProcessor::new(settings, None).map_err(|e| BacktestError::Setup(e.to_string()))?;
    processor.set_policies(&config.models, &config.policies);
    let policies = config.policies.iter().map(|p| p.name.clone()).collect();
    let runs = SetRuns::new(&config, judged, options.run_time, initial, dir)?;
    let scorer = Scorer::new(ScorerCommand {
        argv: runs.scorer(),
        env: runs.task_env(),
        log: dir.join("scorer.log"),
    });
    let mut setrun = SetRun {
        judged,
        processor,
        runs,
        scorer,
        scored_by: "initial".into(),
        window_scored_by: Vec::new(),
        result: SetResult::new(set.name(), policies),
    };
    read_input(&options.input, &config, &mut setrun)?;
    let last = setrun.processor.tick(i64::MAX);
    setrun.closed(last)?;
    let mut result = setrun.result;
    result.total();
    Ok(result)
}

/// Refuses, before anything runs, a policy set file that is invalid or has no policy for the
/// judged model (it would be `never` under another name).
pub(super) fn check(
    options: &Options,
    judged: &Judged,
    set: &PolicySet,
) -> Result<(), BacktestError> {
    let PolicySet::File(file) = set else {
        return Ok(());
    };
    let config = crate::config::load_for_backtest(&options.config, Some(file))?;
    if config.policies.iter().any(|p| p.model == judged.model) {
        return Ok(());
    }
    Err(BacktestError::Setup(format!(
        "policy set `{}` has no policy for model `{}`: it would never retrain",
        set.name(),
        judged.model
    )))
}

/// Feeds every recorded message of `input` to `setrun`, in order.
fn read_input(
    input: &Input,
    config: &ServiceConfig,
    setrun: &mut SetRun<'_>,
) -> Result<(), BacktestError> {
    let unreadable = |message: String| BacktestError::Input {
        path: input.to_string(),
        message,
    };
    match input {
        Input::File(path) => {
            let topic = config
                .streams
                .iter()
                .find(|s| s.name == setrun.judged.stream)
                .map_or_else(String::new, |s| s.topic.clone());
            let feed = |message: Message<'_>| setrun.feed(message);
            crate::replay::read_messages(path, &topic, |_, _| {}, feed).map_err(unreadable)?
        }
        Input::Topic { topic, range } => {
            let bootstrap = crate::replay::brokers(config).map_err(BacktestError::Setup)?;
            // The first failure stops the feeding; the rest of the range is read and dropped.
            let mut fed = Ok(());
            crate::source::range::read_range(
                bootstrap,
                &config.kafka_properties,
                topic,
                range,
                |message, _, _| {
                    if fed.is_ok() {
                        fed = setrun.feed(message);
                    }
                },
            )
            .map_err(unreadable)?;
            fed
        }
    }
}

/// The set's policies as a file: the user's, or the reference's written into `dir`; `None`
/// for the configuration's own.
fn policy_file(
    set: &PolicySet,
    judged: &Judged,
    dir: &Path,
) -> Result<Option<PathBuf>, BacktestError> {
    let text = match set {
        PolicySet::Configured => return Ok(None),
        PolicySet::File(path) if path.extension().is_some_and(|e| e == "toml") => {
            return Ok(Some(path.clone()))
        }
        PolicySet::File(path) => {
            return Err(BacktestError::Setup(format!(
                "{}: a policy set is a TOML file of [[policies]]",
                path.display()
            )))
        }
        PolicySet::Never => "# The `never` reference: no policy, the initial model throughout.\n"
            .to_string(),
        PolicySet::EveryWindow => format!(
            "# The `every-window` reference: a retrain after every window (none while one is in\n\
             # flight).\n[[policies]]\nname = \"every-window\"\nmodel = \"{}\"\nwhen = {{ every_records = 1 }}\n",
            judged.model
        ),
    };
    let path = dir.join("policies.toml");
    crate::files::write_private(&path, text).map_err(|e| io(&path, e))?;
    Ok(Some(path))
}

fn io(path: &Path, err: std::io::Error) -> BacktestError {
    BacktestError::Io(format!("{}: {err}", path.display()))
}

/// A set's backtest in progress.
struct SetRun<'a> {
    judged: &'a Judged,
    processor: StreamProcessor,
    runs: SetRuns,
    scorer: Scorer,
    /// The run whose model scores now.
    scored_by: String,
    /// The runs whose models scored the open window's records so far.
    window_scored_by: Vec<String>,
    result: SetResult,
}

impl SetRun<'_> {
    /// One recorded message: its records scored by the current model, then processed.
    fn feed(&mut self, recorded: Message<'_>) -> Result<(), BacktestError> {
        let payload = recorded.payload.unwrap_or_default();
        let mut message: Option<Value> = serde_json::from_slice(payload).ok();
        if let Some(message) = &mut message {
            let now = latest_time(message).or(recorded.timestamp_ms);
            for applied in self.runs.apply_due(now, &mut self.processor) {
                self.changed_model(applied);
            }
            self.score(message)?;
            if self.window_scored_by.last() != Some(&self.scored_by) {
                self.window_scored_by.push(self.scored_by.clone());
            }
        }
        let rescored = message.map(|m| serde_json::to_vec(&m).expect("JSON serialises"));
        let outcome = self.processor.process(Message {
            payload: recorded.payload.map(|p| rescored.as_deref().unwrap_or(p)),
            ..recorded
        });
        self.closed(outcome.closed)
    }

    /// The scorer predicts every record of `message` in place of its `prediction`.
    fn score(&mut self, message: &mut Value) -> Result<(), BacktestError> {
        let records = records_mut(message);
        let shown: Vec<&Value> = records.iter().map(|r| &**r).collect();
        let predictions = self.scorer.predict(&shown).map_err(BacktestError::Scorer)?;
        for (record, prediction) in records.into_iter().zip(predictions) {
            if let Value::Object(fields) = record {
                fields.insert("prediction".into(), prediction);
            }
        }
        Ok(())
    }

    /// A run's outcome applied: the scorer starts again after a succeeded run, so a model its
    /// DAG changed scores from now on; a promoted one is named in the windows it scores.
    fn changed_model(&mut self, applied: Launched) {
        if applied.succeeded {
            self.scorer.restart();
        }
        if applied.promoted {
            self.scored_by = applied.id;
        }
    }

    /// Windows closed: recorded, and their triggered decisions' runs started.
    fn closed(&mut self, windows: Vec<JudgedWindow>) -> Result<(), BacktestError> {
        for window in windows {
            for run in self.runs.launch(&window, &mut self.processor)? {
                self.result.runs.push(run);
            }
            let report = &window.report;
            let judged = |features: &[crate::drift::FeatureReport]| -> Vec<String> {
                (features.iter().filter(|f| f.drift.detected))
                    .map(|f| f.name.clone())
                    .filter(|f| self.judged.features.contains(f))
                    .collect()
            };
            let drifted = judged(&report.drift.features);
            self.result.drift_alarms += u64::from(!drifted.is_empty());
            self.result.windows.push(BacktestWindow {
                index: window.index,
                records: report.window.records,
                start: report.window.start.clone(),
                end: report.window.end.clone(),
                scored_by: std::mem::take(&mut self.window_scored_by),
                performance: report.performance.clone(),
                drifted,
                drifted_since_retrain: (report.since_retrain.as_ref())
                    .map(|since| judged(&since.drift.features)),
                decisions: window.decisions,
            });
        }
        Ok(())
    }
}

/// A message's records, as the decoder reads them: an array, `{"records": [...]}` or one.
fn records_mut(message: &mut Value) -> Vec<&mut Value> {
    if matches!(message.get("records"), Some(Value::Array(_))) {
        return match message.get_mut("records") {
            Some(Value::Array(records)) => records.iter_mut().collect(),
            _ => Vec::new(),
        };
    }
    match message {
        Value::Array(records) => records.iter_mut().collect(),
        Value::Object(_) => vec![message],
        _ => Vec::new(),
    }
}

/// The latest event time among a message's records, if any carries one.
fn latest_time(message: &mut Value) -> Option<i64> {
    records_mut(message)
        .into_iter()
        .filter_map(|r| r.as_object())
        .filter_map(|r| crate::decode::event_time_ms(r).ok().flatten())
        .max()
}
