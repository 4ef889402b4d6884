//! The drift of a window's model outputs (`prediction`, `label`) against the baseline's
//! profiles of them: each tested as a feature of its kind is, on its own (their correction
//! runs over the two of them, apart from the features').

use crate::baseline::Baseline;
use crate::decode::{Dataset, Outputs, Schema};
use crate::drift::{self, DataInfo, FeatureReport};

/// The outputs' reports, in `prediction`, `label` order: those the window kept and the
/// baseline profiles with the same kind (none when either has none).
pub(super) fn outputs_drift(
    threads: drift::Threads,
    baseline: &Baseline,
    outputs: &Outputs,
    records: u64,
    settings: &drift::DriftSettings,
) -> Vec<FeatureReport> {
    let profiles: Vec<_> = (baseline.outputs.iter())
        .filter(|profile| {
            (outputs.columns.iter())
                .any(|o| o.name == profile.name() && o.column.kind() == profile.kind())
        })
        .cloned()
        .collect();
    if profiles.is_empty() {
        return Vec::new();
    }
    let reference = Baseline {
        features: profiles,
        outputs: Vec::new(),
        ..baseline_header(baseline)
    };
    let mut current = Dataset::new(Schema {
        features: reference.schema().features,
    });
    for (spec, column) in current.schema.features.iter().zip(&mut current.columns) {
        if let Some(kept) = outputs.columns.iter().find(|o| o.name == spec.name) {
            column.clone_from(&kept.column);
        }
    }
    current.records = records;
    let info = DataInfo::default();
    let report = drift::compare_window(
        threads,
        &reference,
        &current,
        None,
        settings,
        info.clone(),
        info,
    );
    report.features
}

/// The baseline's metadata and settings, without its profiles.
fn baseline_header(baseline: &Baseline) -> Baseline {
    Baseline {
        format: baseline.format.clone(),
        format_version: baseline.format_version,
        id: baseline.id.clone(),
        created_at: baseline.created_at.clone(),
        source: baseline.source.clone(),
        settings: baseline.settings,
        features: Vec::new(),
        outputs: Vec::new(),
        joint: None,
    }
}
