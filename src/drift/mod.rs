//! Drift detection: statistics that compare current data with the reference, and the decisions
//! built on them.
//!
//! One file per statistic; each equals its reference implementation (scipy, or the formula in
//! `docs/metrics.md` where scipy has none) on the same data. [`report::compare`] runs them all
//! for every feature and decides with [`decision`].

pub mod bins;
pub mod chi2;
pub mod decision;
pub mod ecdf;
mod feature;
pub mod hellinger;
pub mod jensen_shannon;
pub mod kolmogorov;
pub mod ks;
pub mod mmd;
pub mod monte_carlo;
pub mod multivariate;
mod numeric;
pub mod permutation;
pub mod psi;
pub mod reconstruction;
pub mod report;
pub mod sum;
pub mod summary;
pub mod table;
pub mod wasserstein;
pub mod wasserstein_null;

pub use decision::{Correction, DriftSettings, Method, PValueBy};
pub use report::{
    compare, compare_on, compare_window, DataInfo, DatasetSummary, DriftReport, FeatureReport,
    Folded, Histogram, Tests, Threads,
};
