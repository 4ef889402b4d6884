//! A stream's multivariate tests (MMD, PCA reconstruction error) on its windows: which
//! features take part, the reference rows from the baseline's joint sample, and each window's
//! outcome against them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ndarray::Array2;

use super::settings::StreamSettings;
use crate::baseline::{Baseline, JointSample, OneHot};
use crate::decode::{FeatureKind, Schema};
use crate::drift::multivariate::{Multivariate, MultivariateOutcome, Prepared};
use crate::drift::DriftSettings;
use crate::window::{ClosedWindow, WindowRows, DEFAULT_WINDOW_ROWS};

/// A stream's multivariate settings (`drift.multivariate`, `drift.multivariate_rows`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultivariateSettings {
    /// The methods every window is tested with; none keeps no sample of rows.
    pub methods: Vec<Multivariate>,
    /// Complete rows a window samples for them at most.
    pub rows: usize,
}

impl Default for MultivariateSettings {
    fn default() -> Self {
        MultivariateSettings {
            methods: Vec::new(),
            rows: DEFAULT_WINDOW_ROWS,
        }
    }
}

/// What a stream's windows are tested with jointly: the stream's features (their schema
/// positions), the baseline's sample of rows of them, and the methods prepared on it, the first
/// time a report needs them (a partition's processor that only cuts parts never does).
#[derive(Debug, Clone)]
pub struct MultivariatePlan {
    columns: Vec<usize>,
    onehot: Vec<(usize, OneHot)>,
    rows: usize,
    methods: Vec<Multivariate>,
    drift: DriftSettings,
    reference: Array2<f64>,
    prepared: OnceLock<Result<Prepared, String>>,
}

impl MultivariatePlan {
    /// The plan of `settings`' stream on `baseline`, decided by `drift`: `None` without
    /// methods; an error, in words for the configuration, when the baseline's sample lacks the
    /// stream's features (whether the methods fit it, [`prepared`](Self::prepared) says).
    pub fn of(
        settings: &MultivariateSettings,
        drift: &DriftSettings,
        schema: &Schema,
        baseline: &Baseline,
    ) -> Result<Option<MultivariatePlan>, String> {
        if settings.methods.is_empty() {
            return Ok(None);
        }
        if settings.rows < 2 {
            return Err("multivariate_rows must be at least 2".into());
        }
        let Some(sample) = baseline.joint.as_ref().filter(|s| s.len() >= 2) else {
            return Err(format!(
                "the baseline {} keeps no sample of complete rows; rebuild it with `driftgate baseline build` (--joint-rows, default {})",
                baseline.id,
                crate::baseline::DEFAULT_JOINT_ROWS
            ));
        };
        // The window's rows: the numeric features, then the categorical ones' indicators.
        let (mut columns, mut onehot, mut picks, mut indicators) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, feature) in schema.features.iter().enumerate() {
            let name = feature.name.as_str();
            match feature.kind {
                FeatureKind::Numeric => {
                    picks.push(sample.features.iter().position(|f| f == name).ok_or_else(
                        || format!("the numeric feature {name} is not in the baseline's sample of rows"),
                    )?);
                    columns.push(i);
                }
                FeatureKind::Categorical => {
                    let (first, encoding) = onehot_columns(sample, name).ok_or_else(|| {
                        format!("the categorical feature {name} is not in the baseline's sample of rows; rebuild the baseline")
                    })?;
                    indicators.extend(first..first + encoding.levels.len());
                    onehot.push((i, encoding.clone()));
                }
            }
        }
        picks.extend(indicators);
        if picks.len() < 2 {
            return Err("multivariate tests need at least two columns: numeric features, or levels of categorical ones".into());
        }
        let all = sample.rows();
        let reference =
            Array2::from_shape_fn((all.nrows(), picks.len()), |(r, c)| all[[r, picks[c]]]);
        Ok(Some(MultivariatePlan {
            columns,
            onehot,
            rows: settings.rows,
            methods: settings.methods.clone(),
            drift: drift.clone(),
            reference,
            prepared: OnceLock::new(),
        }))
    }

    /// The methods prepared on the reference rows (once); an error, in words for the
    /// configuration, when they cannot be.
    pub fn prepared(&self) -> Result<&Prepared, &str> {
        let prepared = self.prepared.get_or_init(|| {
            Prepared::new(&self.methods, self.reference.view(), &self.drift)
                .map_err(|err| format!("the baseline's sample of rows does not serve them: {err}"))
        });
        prepared.as_ref().map_err(String::as_str)
    }

    /// The empty sample windows keep for the plan.
    pub fn sample(&self, seed: u64) -> WindowRows {
        WindowRows::new(self.columns.clone(), self.rows, seed).with_onehot(self.onehot.clone())
    }

    /// Each method's outcome for `window`'s sample; none when the window has no sample (it
    /// opened before the tests were configured) or fewer complete rows than two or the
    /// settings' `min_samples`.
    pub fn outcomes(
        &self,
        window: &ClosedWindow,
        settings: &DriftSettings,
    ) -> BTreeMap<Multivariate, MultivariateOutcome> {
        let fits = |s: &&WindowRows| s.columns == self.columns && s.onehot == self.onehot;
        let Some(sample) = window.joint.as_ref().filter(fits) else {
            return BTreeMap::new();
        };
        if (sample.kept.len() as u64) < settings.min_samples.max(2) {
            return BTreeMap::new();
        }
        let current = sample.rows();
        let outcomes = self.prepared().map_err(str::to_string);
        match outcomes.and_then(|prepared| prepared.test(current.view(), settings)) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::warn!(window = window.index, error = %err, "no multivariate test for the window");
                BTreeMap::new()
            }
        }
    }
}

/// The first column of categorical feature `name`'s indicators in `sample`, and its encoding.
fn onehot_columns<'s>(sample: &'s JointSample, name: &str) -> Option<(usize, &'s OneHot)> {
    let mut first = sample.features.len();
    for encoding in &sample.onehot {
        if encoding.feature == name {
            return Some((first, encoding));
        }
        first += encoding.levels.len();
    }
    None
}

/// The plan of a validated stream; `None` without methods or when its baseline cannot serve
/// them (validation refuses that; a rotated baseline without a sample turns the tests off).
pub(super) fn plan_of(settings: &StreamSettings) -> Option<MultivariatePlan> {
    let plan = MultivariatePlan::of(
        &settings.multivariate,
        &settings.drift,
        &settings.schema,
        &settings.baseline,
    );
    plan.unwrap_or_else(|err| {
        tracing::warn!(stream = %settings.name, error = %err, "multivariate tests are off");
        None
    })
}
