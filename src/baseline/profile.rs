//! The baseline file format (version 1) and building a profile from data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sample::{compact, distinct_values, f64_base64, u64_base64};
use super::{BaselineError, Reservoir};
use crate::decode::{Column, Dataset, FeatureKind, FeatureSpec, Outputs, QualityCounts, Schema};
use crate::drift::bins::QuantileBins;
use crate::drift::sum;
use crate::rng::SplitMix64;

/// The `format` tag every baseline file starts with.
pub const FORMAT: &str = "driftgate.baseline";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The default cap on the stored reference sample per numeric feature.
pub const DEFAULT_SAMPLE_CAP: usize = 100_000;

/// How a profile was built. Part of the content hash: the same data with other settings is a
/// different baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    /// Quantile bins per numeric feature.
    pub bins: usize,
    /// Distinct values kept per numeric feature: a feature with at most this many is stored
    /// exactly, above it as a seeded reservoir sample of this many values.
    pub sample_cap: usize,
    /// Seed of the reservoir sampler.
    pub seed: u64,
    /// Complete numeric rows kept for multivariate tests (0: none). Written only when not the
    /// default, so baselines from before it keep their ids.
    #[serde(
        default = "default_joint_rows",
        skip_serializing_if = "is_default_joint_rows"
    )]
    pub joint_rows: usize,
}

fn default_joint_rows() -> usize {
    super::DEFAULT_JOINT_ROWS
}

fn is_default_joint_rows(rows: &usize) -> bool {
    *rows == super::DEFAULT_JOINT_ROWS
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            bins: crate::drift::bins::DEFAULT_BINS,
            sample_cap: DEFAULT_SAMPLE_CAP,
            seed: 0,
            joint_rows: super::DEFAULT_JOINT_ROWS,
        }
    }
}

/// Where a baseline's data came from. Informational: not part of the content hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSource {
    /// The data file, as given on the command line.
    pub path: Option<String>,
    /// SHA-256 of the data file's bytes.
    pub sha256: Option<String>,
    /// Records read.
    pub records: u64,
    /// Malformed lines skipped (with `--skip-invalid`).
    pub invalid_lines: u64,
}

/// The profile of a numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericProfile {
    /// Feature name.
    pub name: String,
    /// Usable (finite) values.
    pub count: u64,
    /// Unusable values by reason.
    pub quality: QualityCounts,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0, as `numpy.std`).
    pub std: Option<f64>,
    /// Quantile bin edges over all values.
    pub bins: Option<QuantileBins>,
    /// Counts per histogram slot: underflow, the interior bins, overflow.
    pub bin_counts: Vec<u64>,
    /// The reference sample, sorted ascending; distinct values when `sample_counts` is given.
    /// Stored as base64 of little-endian IEEE-754 doubles: exact, and loads without parsing
    /// millions of decimal numbers (`numpy.frombuffer(base64.b64decode(s), "<f8")` reads it in
    /// Python).
    #[serde(with = "f64_base64")]
    pub sample: Vec<f64>,
    /// How many times each `sample` value occurs, when the sample is stored as distinct values
    /// with counts (the smaller form for data with many repeated values); empty, and absent
    /// from the file, when each value is listed once. Base64 of little-endian unsigned 64-bit
    /// integers: `numpy.repeat(sample, numpy.frombuffer(base64.b64decode(c), "<u8"))` expands it.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "u64_base64")]
    pub sample_counts: Vec<u64>,
    /// True when the feature had more distinct values than the cap and `sample` is a reservoir
    /// sample; false when it holds every value.
    pub sampled: bool,
}

/// The profile of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalProfile {
    /// Feature name.
    pub name: String,
    /// Usable values.
    pub count: u64,
    /// Unusable values by reason.
    pub quality: QualityCounts,
    /// Count per category.
    pub counts: BTreeMap<String, u64>,
}

/// One feature's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureProfile {
    /// A numeric feature.
    Numeric(NumericProfile),
    /// A categorical feature.
    Categorical(CategoricalProfile),
}

impl FeatureProfile {
    /// The feature's name.
    pub fn name(&self) -> &str {
        match self {
            FeatureProfile::Numeric(p) => &p.name,
            FeatureProfile::Categorical(p) => &p.name,
        }
    }

    /// The feature's kind.
    pub fn kind(&self) -> FeatureKind {
        match self {
            FeatureProfile::Numeric(_) => FeatureKind::Numeric,
            FeatureProfile::Categorical(_) => FeatureKind::Categorical,
        }
    }

    /// Usable values.
    pub fn count(&self) -> u64 {
        match self {
            FeatureProfile::Numeric(p) => p.count,
            FeatureProfile::Categorical(p) => p.count,
        }
    }

    /// Unusable values by reason.
    pub fn quality(&self) -> QualityCounts {
        match self {
            FeatureProfile::Numeric(p) => p.quality,
            FeatureProfile::Categorical(p) => p.quality,
        }
    }
}

/// A baseline profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Always `driftgate.baseline`; lets tools recognise the file.
    pub format: String,
    /// The format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// SHA-256 of the content (settings and features), hex: equal data and settings give equal
    /// ids, and a damaged file is detected on load.
    pub id: String,
    /// When it was built, RFC 3339 UTC.
    pub created_at: String,
    /// Where the data came from.
    pub source: BaselineSource,
    /// How it was built.
    pub settings: BuildSettings,
    /// One profile per feature, in schema order.
    pub features: Vec<FeatureProfile>,
    /// Profiles of the model's outputs, `prediction` and `label`, when the data had them
    /// (each numeric when every value was a number, else categorical).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<FeatureProfile>,
    /// A uniform sample of the data's complete numeric rows, for multivariate tests; absent
    /// with fewer than two numeric features or when the build was told to keep none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint: Option<super::JointSample>,
}

impl Baseline {
    /// Builds a profile from a decoded data set, with its id.
    pub fn build(
        dataset: &Dataset,
        settings: BuildSettings,
        source: BaselineSource,
    ) -> Result<Baseline, BaselineError> {
        let mut baseline = Baseline::profile(dataset, settings, source)?;
        baseline.id = baseline.content_id();
        Ok(baseline)
    }

    /// Builds a profile from a decoded data set without hashing it: its `id` is empty until
    /// [`save`](Self::save) sets it from the bytes written. For a reference that is compared
    /// and dropped (`drift` on a raw file), hashing would be wasted work.
    pub fn profile(
        dataset: &Dataset,
        settings: BuildSettings,
        source: BaselineSource,
    ) -> Result<Baseline, BaselineError> {
        check_settings(&settings)?;
        let pairs: Vec<(&FeatureSpec, &Column)> = dataset
            .schema
            .features
            .iter()
            .zip(&dataset.columns)
            .collect();
        let features = crate::parallel::map_in_order(&pairs, |(spec, column)| {
            profile_feature(spec, (*column).clone(), &settings)
        });
        Ok(Baseline::of(features, settings, source))
    }

    /// [`profile`](Self::profile), taking the data set: each numeric column is sorted where it
    /// lies instead of in a copy, so the profile costs no memory beyond the data's own.
    pub fn profile_owned(
        dataset: Dataset,
        settings: BuildSettings,
        source: BaselineSource,
    ) -> Result<Baseline, BaselineError> {
        check_settings(&settings)?;
        let pairs: Vec<(FeatureSpec, Column)> = (dataset.schema.features.into_iter())
            .zip(dataset.columns)
            .collect();
        let features = crate::parallel::map_owned_in_order(pairs, |(spec, column)| {
            profile_feature(&spec, column, &settings)
        });
        Ok(Baseline::of(features, settings, source))
    }

    /// A baseline of these profiles, made now, without its id.
    pub(super) fn of(
        features: Vec<FeatureProfile>,
        settings: BuildSettings,
        source: BaselineSource,
    ) -> Baseline {
        Baseline {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            id: String::new(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            source,
            settings,
            features,
            outputs: Vec::new(),
            joint: None,
        }
    }

    /// Profiles the model's outputs read beside the features (those with a usable value).
    pub fn profile_outputs(&mut self, outputs: Outputs) {
        self.outputs = (outputs.columns.into_iter())
            .map(|output| {
                let spec = FeatureSpec {
                    name: output.name,
                    kind: output.column.kind(),
                };
                profile_feature(&spec, output.column, &self.settings)
            })
            .filter(|profile| profile.count() > 0)
            .collect();
    }

    /// The schema of the profiled outputs.
    pub fn outputs_schema(&self) -> Schema {
        Schema {
            features: (self.outputs.iter())
                .map(|f| FeatureSpec {
                    name: f.name().to_string(),
                    kind: f.kind(),
                })
                .collect(),
        }
    }

    /// The schema the profile describes.
    pub fn schema(&self) -> Schema {
        Schema {
            features: self
                .features
                .iter()
                .map(|f| FeatureSpec {
                    name: f.name().to_string(),
                    kind: f.kind(),
                })
                .collect(),
        }
    }

    /// What keeps this baseline from serving a stream with these features: each one missing
    /// or of another kind, in words (empty when it fits).
    pub fn mismatches(&self, features: &[FeatureSpec]) -> Vec<String> {
        features
            .iter()
            .filter_map(
                |feature| match self.features.iter().find(|f| f.name() == feature.name) {
                    None => Some(format!("`{}` is not in the baseline", feature.name)),
                    Some(profile) if profile.kind() != feature.kind => Some(format!(
                        "`{}` is {} here but {} in the baseline",
                        feature.name,
                        feature.kind.as_str(),
                        profile.kind().as_str()
                    )),
                    Some(_) => None,
                },
            )
            .collect()
    }
}

impl FeatureProfile {
    /// Checks a loaded profile's internal consistency; why not, in words.
    pub(super) fn check(&self) -> Result<(), String> {
        let FeatureProfile::Numeric(p) = self else {
            return Ok(());
        };
        if p.sample.iter().any(|v| !v.is_finite()) {
            return Err("the sample holds a non-finite value".into());
        }
        if !p.sample.is_sorted() {
            return Err("the sample is not sorted".into());
        }
        p.check_counts()?;
        let sample_len = p.reference_len();
        if sample_len > p.count
            || (!p.sampled && sample_len != p.count)
            || (p.count > 0 && sample_len == 0)
        {
            return Err("the sample size does not match the count".into());
        }
        match &p.bins {
            Some(bins) => {
                bins.validate()?;
                if p.bin_counts.len() != bins.slots() {
                    return Err(format!(
                        "{} bin counts for {} histogram slots",
                        p.bin_counts.len(),
                        bins.slots()
                    ));
                }
            }
            None if p.count > 0 => return Err("bins are missing".into()),
            None => {}
        }
        Ok(())
    }
}

fn check_settings(settings: &BuildSettings) -> Result<(), BaselineError> {
    if settings.bins == 0 {
        return Err(BaselineError::Settings("bins must be at least 1".into()));
    }
    if settings.sample_cap == 0 {
        return Err(BaselineError::Settings(
            "sample cap must be at least 1".into(),
        ));
    }
    Ok(())
}

fn profile_feature(spec: &FeatureSpec, column: Column, settings: &BuildSettings) -> FeatureProfile {
    match column {
        Column::Numeric(col) => FeatureProfile::Numeric(profile_numeric(
            &spec.name,
            col.values,
            col.quality,
            settings,
        )),
        Column::Categorical(col) => FeatureProfile::Categorical(CategoricalProfile {
            name: spec.name.clone(),
            count: col.total(),
            quality: col.quality,
            counts: col.counts,
        }),
    }
}

impl NumericProfile {
    /// Profiles numeric values given in arrival order (the reservoir depends on the order).
    pub fn from_values(
        name: &str,
        values: &[f64],
        quality: QualityCounts,
        settings: &BuildSettings,
    ) -> NumericProfile {
        profile_numeric(name, values.to_vec(), quality, settings)
    }
}

/// Profiles `values` (in arrival order), sorting them where they lie.
fn profile_numeric(
    name: &str,
    mut values: Vec<f64>,
    quality: QualityCounts,
    settings: &BuildSettings,
) -> NumericProfile {
    let count = values.len() as u64;
    let (mean, std) = mean_and_std(&values);
    // The reservoir follows arrival order, so it is drawn before the sort; it is kept only when
    // there are more distinct values than the cap.
    let reservoir = (values.len() > settings.sample_cap).then(|| {
        let mut reservoir = Reservoir::new(
            settings.sample_cap,
            SplitMix64::for_name(settings.seed, name),
        );
        values.iter().for_each(|v| reservoir.push(*v));
        reservoir.into_sample()
    });
    crate::drift::ecdf::sort_values(&mut values);
    let sorted = values;
    let bins = QuantileBins::from_sorted(&sorted, settings.bins);
    let bin_counts = bins
        .as_ref()
        .map(|b| b.histogram_sorted(&sorted))
        .unwrap_or_default();
    let min = sorted.first().copied();
    let max = sorted.last().copied();
    let (sample, sampled) = match reservoir {
        Some(mut sample) if distinct_values(&sorted) > settings.sample_cap => {
            crate::drift::ecdf::sort_values(&mut sample);
            (sample, true)
        }
        _ => (sorted, false),
    };
    let (sample, sample_counts) = compact(sample);
    NumericProfile {
        name: name.to_string(),
        count,
        quality,
        min,
        max,
        mean,
        std,
        bins,
        bin_counts,
        sample,
        sample_counts,
        sampled,
    }
}

/// Mean and population standard deviation, two-pass with compensated sums.
fn mean_and_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = sum::sum(values.iter().copied()) / n;
    let variance = sum::sum(values.iter().map(|v| (v - mean) * (v - mean))) / n;
    (Some(mean), Some(variance.sqrt()))
}
