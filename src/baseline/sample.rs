//! A numeric feature's reference sample: how it is stored (every value, or distinct values
//! with their counts, whichever is smaller) and read back.
//!
//! Data with many repeated values (prices in cents, ages, counts, sensors of fixed precision)
//! has far fewer distinct values than rows: stored as distinct values with counts, a million
//! rows of it stay exact in a few hundred kilobytes, and every statistic walks the distinct
//! values with their weights ([`crate::drift::ecdf::compare_weighted`],
//! [`crate::drift::bins::QuantileBins::from_weighted`], [`crate::window::summary::Layout`]),
//! giving the bits the expanded sample would give.

use std::borrow::Cow;

use super::NumericProfile;
use crate::drift::bins::QuantileBins;

/// The number of distinct values in a sorted sample.
pub(super) fn distinct_values(sorted: &[f64]) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    1 + sorted.windows(2).filter(|w| w[0] != w[1]).count()
}

/// A sorted sample in its smaller stored form: unchanged with no counts, or its distinct values
/// with their counts when 16 bytes per distinct value beat 8 per value.
pub(super) fn compact(sorted: Vec<f64>) -> (Vec<f64>, Vec<u64>) {
    if 2 * distinct_values(&sorted) >= sorted.len() {
        return (sorted, Vec::new());
    }
    let mut values: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    for value in sorted {
        if values.last() == Some(&value) {
            *counts.last_mut().expect("a value was pushed") += 1;
        } else {
            values.push(value);
            counts.push(1);
        }
    }
    (values, counts)
}

impl NumericProfile {
    /// The number of values the reference sample stands for (its counts' sum).
    pub fn reference_len(&self) -> u64 {
        if self.sample_counts.is_empty() {
            self.sample.len() as u64
        } else {
            self.sample_counts.iter().sum()
        }
    }

    /// The sample with each value repeated by its count: for what needs the values one by one
    /// (permutation tests draw from them).
    pub fn expanded_sample(&self) -> Cow<'_, [f64]> {
        if self.sample_counts.is_empty() {
            return Cow::Borrowed(&self.sample);
        }
        let repeated = self
            .sample
            .iter()
            .zip(&self.sample_counts)
            .flat_map(|(value, count)| std::iter::repeat_n(*value, *count as usize));
        Cow::Owned(repeated.collect())
    }

    /// Quantile bins of `bins` bins and the reference's counts in them: the stored ones when
    /// the profile was built with that many (`profile_bins`), otherwise computed from the
    /// sample (which must not be empty).
    pub fn reference_histogram(
        &self,
        profile_bins: usize,
        bins: usize,
    ) -> (QuantileBins, Vec<u64>) {
        if bins == profile_bins {
            if let Some(stored) = &self.bins {
                return (stored.clone(), self.bin_counts.clone());
            }
        }
        let edges = QuantileBins::from_weighted(&self.sample, &self.sample_counts, bins)
            .expect("a tested feature has a non-empty sample");
        let counts = edges.histogram_weighted(&self.sample, &self.sample_counts);
        (edges, counts)
    }

    /// Checks stored counts: one per value, none zero, values distinct.
    pub(super) fn check_counts(&self) -> Result<(), String> {
        if self.sample_counts.is_empty() {
            return Ok(());
        }
        if self.sample_counts.len() != self.sample.len() {
            return Err(format!(
                "{} sample counts for {} sample values",
                self.sample_counts.len(),
                self.sample.len()
            ));
        }
        if self.sample_counts.contains(&0) {
            return Err("a sample count is zero".into());
        }
        if self.sample.windows(2).any(|w| w[0] >= w[1]) {
            return Err("a sample stored with counts repeats a value".into());
        }
        Ok(())
    }
}

/// Serde adapter: `Vec<f64>` as base64 of little-endian doubles.
pub(crate) mod f64_base64 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        super::encode(values.iter().map(|v| v.to_le_bytes()), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        super::decode(deserializer, f64::from_le_bytes)
    }
}

/// Serde adapter: `Vec<u64>` as base64 of little-endian unsigned integers.
pub(crate) mod u64_base64 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
        super::encode(values.iter().map(|v| v.to_le_bytes()), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
        super::decode(deserializer, u64::from_le_bytes)
    }
}

fn encode<S: serde::Serializer>(
    words: impl Iterator<Item = [u8; 8]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    let bytes: Vec<u8> = words.flatten().collect();
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decode<'de, D: serde::Deserializer<'de>, T>(
    deserializer: D,
    from_bytes: fn([u8; 8]) -> T,
) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_str(Words(from_bytes))
}

/// Reads base64 text as 8-byte words, decoding it where it lies in the input when the
/// deserializer lends it (a joint sample's text runs to megabytes).
struct Words<T>(fn([u8; 8]) -> T);

impl<T> serde::de::Visitor<'_> for Words<T> {
    type Value = Vec<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a base64 string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<T>, E> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|err| E::custom(format!("sample is not valid base64: {err}")))?;
        if bytes.len() % 8 != 0 {
            return Err(E::custom("sample length is not a multiple of 8 bytes"));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| (self.0)(chunk.try_into().expect("8 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smaller_form_is_kept() {
        let (values, counts) = compact(vec![1.0, 2.0, 3.0, 3.0]);
        assert_eq!(
            (values.len(), counts.len()),
            (4, 0),
            "3 distinct of 4: listed"
        );
        let (values, counts) = compact(vec![1.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!((values, counts), (vec![1.0, 2.0], vec![3, 2]));
        assert_eq!(compact(Vec::new()), (Vec::new(), Vec::new()));
    }

    #[test]
    fn damaged_counts_are_refused() {
        let values: Vec<f64> = (0..100).map(|i| f64::from(i % 7)).collect();
        let settings = crate::baseline::BuildSettings::default();
        let quality = crate::decode::QualityCounts::default();
        let profile = NumericProfile::from_values("x", &values, quality, &settings);
        assert_eq!(profile.sample_counts.len(), 7);
        assert_eq!(profile.reference_len(), 100);
        assert_eq!(profile.check_counts(), Ok(()));
        let mut short = profile.clone();
        short.sample_counts.pop();
        assert!(short
            .check_counts()
            .unwrap_err()
            .contains("6 sample counts"));
        let mut zero = profile.clone();
        zero.sample_counts[3] = 0;
        assert!(zero.check_counts().is_err());
        let mut repeated = profile;
        repeated.sample[1] = repeated.sample[0];
        assert!(repeated.check_counts().is_err());
    }
}
