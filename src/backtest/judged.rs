//! What every policy set of a backtest shares: the stream and the model judged, with its DAG.

use super::{BacktestError, Options};
use crate::config::ServiceConfig;

/// What every set shares: the stream and the judged model with its DAG.
pub(super) struct Judged {
    /// The stream's name.
    pub stream: String,
    /// The judged model.
    pub model: String,
    /// Its DAG's name.
    pub dag: String,
    /// The model's features (a drift alarm is a window where one of them drifted).
    pub features: Vec<String>,
}

impl Judged {
    /// The stream and model `options` name (or the only ones), refusing a remote DAG.
    pub(super) fn of(config: &ServiceConfig, options: &Options) -> Result<Judged, BacktestError> {
        let stream = crate::replay::stream_settings(config, options.stream.as_deref())
            .map_err(|e| BacktestError::Setup(e.to_string()))?;
        let candidates: Vec<&crate::policy::Model> = (config.models.iter())
            .filter(|m| m.stream == stream.name && m.dag.is_some())
            .collect();
        let model = match &options.model {
            Some(name) => candidates.iter().find(|m| &m.name == name).copied(),
            None if candidates.len() == 1 => Some(candidates[0]),
            None => None,
        };
        let names: Vec<&str> = candidates.iter().map(|m| m.name.as_str()).collect();
        let model = model.ok_or_else(|| {
            BacktestError::Setup(format!(
                "name the model whose predictions the records carry with --model (models of \
                 stream `{}` with a DAG: {})",
                stream.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?;
        let dag = model.dag.clone().expect("filtered on a DAG");
        let remote = config
            .dags
            .iter()
            .any(|d| d.name == dag && d.remote.is_some());
        if remote {
            return Err(BacktestError::Setup(format!(
                "DAG `{dag}` runs on a remote orchestrator; a backtest runs DAGs with the local \
                 executor"
            )));
        }
        Ok(Judged {
            stream: stream.name.clone(),
            model: model.name.clone(),
            dag,
            features: model.features.clone(),
        })
    }
}
