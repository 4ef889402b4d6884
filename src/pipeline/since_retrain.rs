//! The second reference of a stream (`drift.since_retrain`): what it saw since its models' last
//! succeeded retraining run, which every window is compared with beside the baseline.
//!
//! The baseline says how far production moved from what the model was trained on; this says
//! whether it is still moving since the last retrain (Modyn's reference of "the data since the
//! last trigger"). A window is compared with the data of the windows judged before it; it joins
//! that data once judged. A succeeded run starts it again, empty
//! ([`StreamProcessor::retrained`](super::StreamProcessor::retrained)): the window after a
//! retrain has nothing to be compared with, and its `since_retrain` is absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, BaselineSource, BuildSettings, Reservoir};
use crate::decode::{CategoricalColumn, Column, Dataset, FeatureKind, NumericColumn, Schema};
use crate::drift::{self, DataInfo, DriftReport, DriftSettings};
use crate::rng::SplitMix64;
use crate::window::ClosedWindow;

/// Values kept per numeric feature unless configured (`drift.since_retrain_sample`).
pub const DEFAULT_SINCE_RETRAIN_SAMPLE: usize = 5_000;

/// The data a stream saw since its last retrain: per numeric feature a uniform sample of its
/// values (seeded, of at most the configured size), per categorical feature every category's
/// count. Kept in the stream's checkpoint, so a restart keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinceRetrain {
    /// Records of the windows it holds.
    pub records: u64,
    /// Windows it holds.
    pub windows: u64,
    /// Per feature, in schema order.
    features: Vec<Kept>,
}

/// One feature's kept data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Kept {
    Numeric { reservoir: Reservoir },
    Categorical { counts: BTreeMap<String, u64> },
}

impl SinceRetrain {
    /// Nothing seen yet: `sample` values kept per numeric feature, sampled with `seed`.
    pub fn new(schema: &Schema, sample: usize, seed: u64) -> SinceRetrain {
        let features = (schema.features.iter())
            .map(|spec| match spec.kind {
                FeatureKind::Numeric => Kept::Numeric {
                    reservoir: Reservoir::new(sample, SplitMix64::for_name(seed, &spec.name)),
                },
                FeatureKind::Categorical => Kept::Categorical {
                    counts: BTreeMap::new(),
                },
            })
            .collect();
        SinceRetrain {
            records: 0,
            windows: 0,
            features,
        }
    }

    /// Whether this state was kept for `schema` (a checkpoint's, after the features changed,
    /// is not).
    pub fn fits(&self, schema: &Schema) -> bool {
        self.features.len() == schema.features.len()
            && (self.features.iter().zip(&schema.features)).all(|(kept, spec)| {
                matches!(
                    (kept, spec.kind),
                    (Kept::Numeric { .. }, FeatureKind::Numeric)
                        | (Kept::Categorical { .. }, FeatureKind::Categorical)
                )
            })
    }

    /// A judged window's data joins it.
    pub fn add(&mut self, data: &Dataset) {
        for (kept, column) in self.features.iter_mut().zip(&data.columns) {
            match (kept, column) {
                (Kept::Numeric { reservoir }, Column::Numeric(column)) => {
                    column.values.iter().for_each(|v| reservoir.push(*v));
                }
                (Kept::Categorical { counts }, Column::Categorical(column)) => {
                    for (category, count) in &column.counts {
                        *counts.entry(category.clone()).or_default() += count;
                    }
                }
                _ => {}
            }
        }
        self.records += data.records;
        self.windows += 1;
    }

    /// The reference a window is compared with, detached (it is made into a profile on the
    /// thread making the report); `None` before any window was judged since the retrain.
    pub(super) fn reference(&self, schema: &Schema) -> Option<Snapshot> {
        if self.windows == 0 {
            return None;
        }
        let mut data = Dataset::new(schema.clone());
        data.records = self.records;
        data.columns = (self.features.iter())
            .map(|kept| match kept {
                Kept::Numeric { reservoir } => Column::Numeric(NumericColumn {
                    values: reservoir.sample().to_vec(),
                    quality: Default::default(),
                }),
                Kept::Categorical { counts } => Column::Categorical(CategoricalColumn {
                    counts: counts.clone(),
                    quality: Default::default(),
                }),
            })
            .collect();
        Some(Snapshot {
            data,
            windows: self.windows,
        })
    }
}

/// The data since the retrain as a window's report needs it.
pub(super) struct Snapshot {
    data: Dataset,
    windows: u64,
}

/// A window compared with the data its stream saw since the last retrain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinceRetrainReport {
    /// Records of the windows since the retrain (the reference holds a sample of their
    /// numeric values).
    pub records: u64,
    /// Windows since the retrain.
    pub windows: u64,
    /// The drift report against that data, as against the baseline.
    #[serde(flatten)]
    pub drift: DriftReport,
}

impl Snapshot {
    /// `window` compared with this data; `None` when its values were folded into summaries
    /// (which are on the baseline's layouts, not this data's).
    pub(super) fn compare(
        &self,
        window: &ClosedWindow,
        settings: &DriftSettings,
        threads: drift::Threads,
        topic: &str,
    ) -> Option<SinceRetrainReport> {
        if window.summaries.is_some() {
            return None;
        }
        let build = BuildSettings {
            bins: settings.bins,
            sample_cap: usize::MAX,
            seed: settings.seed,
            joint_rows: 0,
        };
        let source = BaselineSource {
            records: self.data.records,
            ..BaselineSource::default()
        };
        let profile = Baseline::profile(&self.data, build, source).ok()?;
        let reference = DataInfo {
            source: Some(format!("since retrain ({} windows)", self.windows)),
            records: self.data.records,
            ..DataInfo::default()
        };
        let current = DataInfo {
            source: Some(topic.to_string()),
            records: window.records,
            ..DataInfo::default()
        };
        let drift = drift::compare_window(
            threads,
            &profile,
            &window.data,
            None,
            settings,
            reference,
            current,
        );
        Some(SinceRetrainReport {
            records: self.data.records,
            windows: self.windows,
            drift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FeatureSpec;

    fn schema(second: FeatureKind) -> Schema {
        let spec = |name: &str, kind| FeatureSpec {
            name: name.into(),
            kind,
        };
        Schema {
            features: vec![spec("x", FeatureKind::Numeric), spec("c", second)],
        }
    }

    /// A window of `n` records: `x` counting up from `from`, `c` always "a".
    fn window(from: usize, n: usize) -> Dataset {
        let mut data = Dataset::new(schema(FeatureKind::Categorical));
        for i in from..from + n {
            let record = serde_json::json!({"x": i as f64, "c": "a"});
            data.push_json_record(record.as_object().unwrap());
        }
        data
    }

    #[test]
    fn keeps_a_bounded_sample_and_every_count() {
        let categorical = schema(FeatureKind::Categorical);
        let mut kept = SinceRetrain::new(&categorical, 50, 7);
        assert!(kept.reference(&categorical).is_none(), "nothing seen yet");
        kept.add(&window(0, 40));
        kept.add(&window(40, 40));
        assert_eq!((kept.windows, kept.records), (2, 80));
        let reference = kept.reference(&categorical).unwrap();
        let Column::Numeric(x) = &reference.data.columns[0] else {
            panic!("x is numeric")
        };
        assert_eq!(x.values.len(), 50);
        assert!(x.values.iter().any(|v| *v >= 40.0), "later values sampled");
        let Column::Categorical(c) = &reference.data.columns[1] else {
            panic!("c is categorical")
        };
        assert_eq!(c.counts, BTreeMap::from([("a".to_string(), 80)]));
        assert!(kept.fits(&categorical));
        assert!(!kept.fits(&schema(FeatureKind::Numeric)), "c changed kind");
    }
}
