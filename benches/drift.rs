//! Criterion benchmarks: each statistic at 1k, 10k and 100k values per sample, a whole
//! 50-feature report (100,000 reference × 10,000 current rows), and window summaries on a
//! 100,000-value reference. Inputs are built outside the timed loop. Run:
//! `cargo bench --bench drift`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use driftgate::baseline::{Baseline, BaselineSource, BuildSettings};
use driftgate::decode::{Column, Dataset, FeatureKind, FeatureSpec, Schema};
use driftgate::drift::bins::{categorical_histograms, union_histograms, QuantileBins};
use driftgate::drift::chi2::chi2_homogeneity;
use driftgate::drift::ecdf::compare_sorted;
use driftgate::drift::hellinger::hellinger_distance;
use driftgate::drift::jensen_shannon::jensen_shannon_distance;
use driftgate::drift::ks::ks_2samp;
use driftgate::drift::psi::psi;
use driftgate::drift::wasserstein::wasserstein_distance;
use driftgate::drift::{compare, DataInfo, DriftSettings};
use driftgate::SplitMix64;
use std::collections::BTreeMap;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn sorted_sample(rng: &mut SplitMix64, n: usize, shift: f64) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n).map(|_| rng.normal() + shift).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn statistics(c: &mut Criterion) {
    let mut rng = SplitMix64::new(1);
    for &n in &SIZES {
        let reference = sorted_sample(&mut rng, n, 0.0);
        let current = sorted_sample(&mut rng, n, 0.05);
        let mut group = c.benchmark_group("statistic");
        group.throughput(Throughput::Elements(2 * n as u64));
        group.bench_with_input(BenchmarkId::new("ks", n), &n, |b, _| {
            b.iter(|| ks_2samp(black_box(&reference), black_box(&current)))
        });
        group.bench_with_input(BenchmarkId::new("wasserstein", n), &n, |b, _| {
            b.iter(|| wasserstein_distance(black_box(&reference), black_box(&current)))
        });
        let bins = QuantileBins::from_sorted(&reference, 10).unwrap();
        let reference_counts = bins.histogram(&reference);
        // Binned metrics include binning the current sample, as in a report.
        for (name, metric) in [
            ("psi", psi as fn(&[u64], &[u64]) -> f64),
            ("jensen_shannon", jensen_shannon_distance),
            ("hellinger", hellinger_distance),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let current_counts = bins.histogram(black_box(&current));
                    metric(&reference_counts, &current_counts)
                })
            });
        }
        // Chi-square from raw labels: counting them is the work.
        let labels: Vec<String> = (0..20).map(|i| format!("category-{i}")).collect();
        let draw = |rng: &mut SplitMix64| -> Vec<&str> {
            (0..n)
                .map(|_| labels[rng.below(20) as usize].as_str())
                .collect()
        };
        let reference_labels = draw(&mut rng);
        let current_labels = draw(&mut rng);
        let count = |values: &[&str]| -> BTreeMap<String, u64> {
            let mut map = BTreeMap::new();
            for v in values {
                *map.entry((*v).to_string()).or_insert(0) += 1;
            }
            map
        };
        let reference_map = count(&reference_labels);
        group.bench_with_input(BenchmarkId::new("chi2", n), &n, |b, _| {
            b.iter(|| {
                let current_map = count(black_box(&current_labels));
                let (r, c) = union_histograms(&reference_map, &current_map);
                let _ = categorical_histograms(&reference_map, &current_map);
                chi2_homogeneity(&r, &c)
            })
        });
        group.finish();
    }
    // A window against its baseline: the shape of every report the service makes.
    let reference = sorted_sample(&mut rng, 20_000, 0.0);
    let current = sorted_sample(&mut rng, 2_000, 0.05);
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(22_000));
    group.bench_function("ecdf_walk_20k_x_2k", |b| {
        b.iter(|| compare_sorted(black_box(&reference), black_box(&current)))
    });
    group.finish();
}

fn dataset(features: usize, rows: usize, rng: &mut SplitMix64, shift: f64) -> Dataset {
    let schema = Schema {
        features: (0..features)
            .map(|i| FeatureSpec {
                name: format!("f{i:02}"),
                kind: FeatureKind::Numeric,
            })
            .collect(),
    };
    let mut data = Dataset::new(schema);
    data.records = rows as u64;
    for (i, column) in data.columns.iter_mut().enumerate() {
        if let Column::Numeric(column) = column {
            let feature_shift = if i % 5 == 0 { shift } else { 0.0 };
            column.values = (0..rows).map(|_| rng.normal() + feature_shift).collect();
        }
    }
    data
}

fn report(c: &mut Criterion) {
    let mut rng = SplitMix64::new(2);
    let reference = dataset(50, 100_000, &mut rng, 0.0);
    let current = dataset(50, 10_000, &mut rng, 0.1);
    let baseline = Baseline::build(
        &reference,
        BuildSettings::default(),
        BaselineSource::default(),
    )
    .unwrap();
    let settings = DriftSettings::default();
    let mut group = c.benchmark_group("report");
    group.sample_size(20);
    group.bench_function("50_features_100k_x_10k", |b| {
        b.iter(|| {
            compare(
                black_box(&baseline),
                black_box(&current),
                &settings,
                DataInfo::default(),
                DataInfo::default(),
            )
        })
    });
    group.finish();
}

/// Window summaries (issue 17) against a 100,000-value reference: counting a window into one,
/// merging two, and KS with Wasserstein from one, beside the same statistics from raw values.
fn summaries(c: &mut Criterion) {
    use driftgate::drift::summary::compare as compare_summary;
    use driftgate::window::summary::Layout;
    let mut rng = SplitMix64::new(3);
    let reference = sorted_sample(&mut rng, 100_000, 0.0);
    let bins = QuantileBins::from_sorted(&reference, 10).unwrap();
    let layout = Layout::new(&reference, &bins.edges);
    let mut group = c.benchmark_group("summary");
    group.sample_size(20);
    for &n in &SIZES {
        let current: Vec<f64> = (0..n).map(|_| rng.normal() + 0.05).collect();
        let summary = layout.summarise(&current);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("summarise", n), &n, |b, _| {
            b.iter(|| layout.summarise(black_box(&current)))
        });
        group.bench_with_input(
            BenchmarkId::new("ks_wasserstein_from_summary", n),
            &n,
            |b, _| b.iter(|| compare_summary(&layout, black_box(&summary))),
        );
        group.bench_with_input(
            BenchmarkId::new("ks_wasserstein_from_raw", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let mut sorted = black_box(&current).clone();
                    driftgate::drift::ecdf::sort_values(&mut sorted);
                    compare_sorted(&reference, &sorted)
                })
            },
        );
        let other = layout.summarise(&current);
        group.bench_with_input(BenchmarkId::new("merge", n), &n, |b, _| {
            b.iter(|| {
                let mut merged = summary.clone();
                merged.merge(black_box(&other));
                merged
            })
        });
    }
    group.finish();
}

/// Wasserstein-1's permutation test on a 100,000 × 10,000 pool, 20 relabellings (no early
/// stop): a full shuffle and walk of the pool per relabelling beside drawing the smaller sample
/// and summing stretches from prefix sums.
fn wasserstein_permutations(c: &mut Criterion) {
    use driftgate::drift::permutation::permutation_test;
    use driftgate::drift::wasserstein::{pooled, wasserstein_labelled};
    use driftgate::drift::wasserstein_null::WassersteinNull;
    let mut rng = SplitMix64::new(8);
    let reference = sorted_sample(&mut rng, 100_000, 0.0);
    let current = sorted_sample(&mut rng, 10_000, 0.0);
    let pool = pooled(&reference, &current);
    let (values, labels): (Vec<f64>, Vec<bool>) = pool.into_iter().unzip();
    let mut group = c.benchmark_group("wasserstein_permutation");
    group.sample_size(10);
    group.bench_function("shuffle_and_walk_20", |b| {
        b.iter(|| {
            let mut rng = SplitMix64::new(1);
            permutation_test(&labels, 20, &mut rng, |labels| {
                wasserstein_labelled(&values, labels, reference.len())
            })
        })
    });
    group.bench_function("draw_and_stretches_20", |b| {
        b.iter(|| {
            let null = WassersteinNull::new(black_box(&values), current.len());
            let positions = labels
                .iter()
                .enumerate()
                .filter(|(_, r)| !**r)
                .map(|(k, _)| k);
            let observed = null.statistic(positions);
            null.test(observed, 20, None, &mut SplitMix64::new(1))
        })
    });
    group.finish();
}

/// The permutation test on a table of counts (the small-sample rule's p-value): 2,000 tables
/// (what 50 features at alpha 0.05 draw) of a 30-level feature against 100,000 reference rows,
/// no early stop, as a drifted feature runs it. Its cost grows with the levels, not the rows.
fn table_permutations(c: &mut Criterion) {
    use driftgate::drift::chi2::pearson_statistic;
    use driftgate::drift::monte_carlo::table_test;
    use driftgate::drift::psi::psi;
    let shares: Vec<f64> = (0..30).map(|i| 0.75f64.powi(i)).collect();
    let total: f64 = shares.iter().sum();
    let counts = |rows: f64| -> Vec<u64> {
        shares
            .iter()
            .map(|s| (s / total * rows).round() as u64)
            .collect()
    };
    let reference = counts(100_000.0);
    let mut group = c.benchmark_group("table_permutation");
    group.sample_size(10);
    for rows in [100usize, 10_000] {
        let mut current = counts(rows as f64);
        current[0] += 1;
        group.bench_function(BenchmarkId::new("chi2_2000_tables_30_levels", rows), |b| {
            b.iter(|| {
                let mut rng = SplitMix64::new(1);
                table_test(
                    &reference,
                    black_box(&current),
                    2000,
                    None,
                    &mut rng,
                    pearson_statistic,
                )
            })
        });
        group.bench_function(BenchmarkId::new("psi_2000_tables_30_levels", rows), |b| {
            b.iter(|| {
                let mut rng = SplitMix64::new(1);
                table_test(&reference, black_box(&current), 2000, None, &mut rng, psi)
            })
        });
    }
    group.finish();
}

/// PCA reconstruction error for 20 features: a 2,000-row window's mean error against a PCA
/// fitted on 10,000 reference rows, and what a baseline pays once (the fit and the ten-fold
/// held-out errors its null distribution comes from).
fn reconstruction(c: &mut Criterion) {
    use driftgate::drift::reconstruction::{held_out_errors, Reconstruction, FOLDS};
    let mut rng = SplitMix64::new(12);
    let matrix = |rng: &mut SplitMix64, rows: usize| {
        ndarray::Array2::from_shape_simple_fn((rows, 20), || rng.normal())
    };
    let reference = matrix(&mut rng, 10_000);
    let window = matrix(&mut rng, 2000);
    let model = Reconstruction::fit(reference.view(), 0.65).unwrap();
    let mut group = c.benchmark_group("reconstruction");
    group.sample_size(10);
    group.bench_function("window_2000_x_20", |b| {
        b.iter(|| model.mean_error(black_box(window.view())))
    });
    group.bench_function("fit_and_held_out_10000_x_20", |b| {
        b.iter(|| {
            let model = Reconstruction::fit(black_box(reference.view()), 0.65).unwrap();
            (
                model,
                held_out_errors(reference.view(), 0.65, FOLDS).unwrap(),
            )
        })
    });
    group.finish();
}

/// MMD² with its permutation test for 20 features: a 2,000-row window against a 10,000-row
/// reference sample, both sampled down to `MAX_ROWS` rows; 100 relabellings, none stopped early
/// (a drifted window runs them all).
fn mmd(c: &mut Criterion) {
    use driftgate::drift::mmd::{
        median_sigma, mmd_test, sample_rows, DEFAULT_PERMUTATIONS, MAX_ROWS,
    };
    let mut rng = SplitMix64::new(13);
    let mut matrix = |rows: usize, shift: f64| {
        ndarray::Array2::from_shape_simple_fn((rows, 20), || rng.normal() + shift)
    };
    let reference = matrix(10_000, 0.0);
    let window = matrix(2000, 0.2);
    let mut group = c.benchmark_group("mmd");
    group.sample_size(10);
    group.bench_function("window_2000_x_20_vs_10000_sampled_100_permutations", |b| {
        b.iter(|| {
            let mut rng = SplitMix64::new(1);
            let reference = sample_rows(reference.view(), MAX_ROWS, &mut rng);
            let window = sample_rows(black_box(window.view()), MAX_ROWS, &mut rng);
            let sigma = median_sigma(reference.view());
            mmd_test(
                reference.view(),
                window.view(),
                sigma,
                DEFAULT_PERMUTATIONS,
                None,
                &mut rng,
            )
        })
    });
    group.finish();
}

/// Both multivariate tests as a stream's windows run them: prepared once on a baseline's joint
/// sample (2,000 rows of 20 features), then a 2,000-row window with a shifted mean tested
/// (MMD's 100 relabellings run in full).
fn multivariate_window(c: &mut Criterion) {
    use driftgate::drift::multivariate::{Multivariate, Prepared};
    let mut rng = SplitMix64::new(14);
    let mut matrix = |rows: usize, shift: f64| {
        ndarray::Array2::from_shape_simple_fn((rows, 20), || rng.normal() + shift)
    };
    let (reference, window) = (matrix(2000, 0.0), matrix(2000, 0.2));
    let settings = driftgate::drift::DriftSettings::default();
    let methods = [Multivariate::Mmd, Multivariate::Pca];
    let mut group = c.benchmark_group("multivariate");
    group.sample_size(10);
    group.bench_function("prepare_2000_x_20", |b| {
        b.iter(|| Prepared::new(&methods, black_box(reference.view()), &settings).unwrap())
    });
    let prepared = Prepared::new(&methods, reference.view(), &settings).unwrap();
    group.bench_function("window_2000_x_20_mmd_and_pca", |b| {
        b.iter(|| prepared.test(black_box(window.view()), &settings).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    multivariate_window,
    mmd,
    reconstruction,
    statistics,
    report,
    summaries,
    wasserstein_permutations,
    table_permutations
);
criterion_main!(benches);
