//! Test data shared by the broker tests: the baseline their streams are judged against.

#![allow(dead_code)]

use std::path::Path;

use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::decode::{Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::SplitMix64;

/// A uniformly drawn country of three.
pub fn country(rng: &mut SplitMix64) -> &'static str {
    ["DE", "FR", "US"][rng.below(3) as usize]
}

/// A baseline of `records` unchanged records: amount ~ N(0, 1), country uniform over three.
pub fn write_baseline(path: &Path, seed: u64, records: usize) {
    let schema = Schema {
        features: vec![
            FeatureSpec {
                name: "amount".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureSpec {
                name: "country".into(),
                kind: FeatureKind::Categorical,
            },
        ],
    };
    let mut rng = SplitMix64::new(seed);
    let mut data = Dataset::new(schema);
    for _ in 0..records {
        let record = serde_json::json!({"amount": rng.normal(), "country": country(&mut rng)});
        data.push_json_record(record.as_object().unwrap());
    }
    // No id yet: saving sets it from the bytes written.
    Baseline::profile(&data, BuildSettings::default(), BaselineSource::default())
        .unwrap()
        .save(path)
        .unwrap();
}
