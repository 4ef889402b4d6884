//! Properties that hold for any data: identical samples show no drift, symmetric metrics are
//! symmetric, results stay in range, and no input makes the decoder panic.

use driftgate::drift::bins::QuantileBins;
use driftgate::drift::chi2::chi2_homogeneity;
use driftgate::drift::hellinger::hellinger_distance;
use driftgate::drift::jensen_shannon::jensen_shannon_distance;
use driftgate::drift::ks::ks_2samp;
use driftgate::drift::psi::psi;
use driftgate::drift::wasserstein::wasserstein_distance;
use driftgate::source::{read_dataset, ReadOptions};
use proptest::prelude::*;

fn sample() -> impl Strategy<Value = Vec<f64>> {
    // Coarse values on purpose: ties are where implementations go wrong.
    prop::collection::vec(
        prop_oneof![
            (-1000i32..1000).prop_map(|v| f64::from(v) / 8.0),
            -1e6f64..1e6
        ],
        1..300,
    )
}

fn counts() -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (1usize..12).prop_flat_map(|k| {
        (
            prop::collection::vec(0u64..500, k),
            prop::collection::vec(0u64..500, k),
        )
            .prop_filter("both sides non-empty", |(a, b)| {
                a.iter().sum::<u64>() > 0 && b.iter().sum::<u64>() > 0
            })
    })
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn relative_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()) + 1e-300
}

proptest! {
    #[test]
    fn identical_samples_show_no_drift(values in sample()) {
        let values = sorted(values);
        let ks = ks_2samp(&values, &values).unwrap();
        prop_assert_eq!(ks.statistic, 0.0);
        prop_assert_eq!(ks.p_value, 1.0);
        prop_assert_eq!(wasserstein_distance(&values, &values), 0.0);
        let bins = QuantileBins::from_sorted(&values, 10).unwrap();
        let counts = bins.histogram(&values);
        prop_assert_eq!(psi(&counts, &counts), 0.0);
        prop_assert_eq!(jensen_shannon_distance(&counts, &counts), 0.0);
        prop_assert_eq!(hellinger_distance(&counts, &counts), 0.0);
    }

    #[test]
    fn sample_metrics_are_symmetric_and_in_range(a in sample(), b in sample()) {
        let (a, b) = (sorted(a), sorted(b));
        let ab = ks_2samp(&a, &b).unwrap();
        let ba = ks_2samp(&b, &a).unwrap();
        prop_assert_eq!(ab.statistic, ba.statistic);
        prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&ab.p_value));
        prop_assert!((0.0..=1.0).contains(&ab.statistic));
        let w_ab = wasserstein_distance(&a, &b);
        let w_ba = wasserstein_distance(&b, &a);
        prop_assert!(relative_eq(w_ab, w_ba), "{} vs {}", w_ab, w_ba);
        prop_assert!(w_ab >= 0.0);
    }

    #[test]
    fn binned_metrics_are_symmetric_and_in_range((a, b) in counts()) {
        let js = jensen_shannon_distance(&a, &b);
        prop_assert!(relative_eq(js, jensen_shannon_distance(&b, &a)));
        prop_assert!((0.0..=1.0).contains(&js));
        let h = hellinger_distance(&a, &b);
        prop_assert!(relative_eq(h, hellinger_distance(&b, &a)));
        prop_assert!((0.0..=1.0).contains(&h));
        let p = psi(&a, &b);
        prop_assert!(relative_eq(p, psi(&b, &a)));
        prop_assert!(p >= 0.0);
        let chi_ab = chi2_homogeneity(&a, &b).unwrap();
        let chi_ba = chi2_homogeneity(&b, &a).unwrap();
        prop_assert!(relative_eq(chi_ab.statistic, chi_ba.statistic));
        prop_assert!((0.0..=1.0).contains(&chi_ab.p_value));
    }

    #[test]
    fn no_line_makes_the_reader_panic(lines in prop::collection::vec(any::<String>(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["f.jsonl", "f.csv"] {
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n")).unwrap();
            let options = ReadOptions { schema: None, skip_invalid: true };
            // Errors are fine (e.g. no features); panics are not.
            let _ = read_dataset(&path, &options);
        }
    }
}
