//! A window's sample of complete rows of numeric features, for the multivariate tests against
//! the baseline's joint sample ([`crate::baseline::JointSample`]).
//!
//! Bottom-k sampling: every complete row gets a priority hashed from its record's place in the
//! stream (partition, offset, and its rank among the records of one message), and the window
//! keeps the `capacity` rows of least priority. That is a uniform sample of the window's
//! complete rows, it needs no random state to checkpoint, and it does not depend on who read
//! what: the parts of an interval read by several instances merge (least priorities of their
//! union) into exactly the rows one reader of every partition would have kept.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::baseline::OneHot;
use crate::decode::RecordView;

/// Rows a window keeps for the multivariate tests unless configured otherwise.
pub const DEFAULT_WINDOW_ROWS: usize = 2000;

/// A window's uniform sample of complete rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRows {
    /// The numeric features' positions in the stream's schema.
    pub columns: Vec<usize>,
    /// The categorical features' positions and encodings, their indicators after the numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub onehot: Vec<(usize, OneHot)>,
    /// Rows kept at most.
    pub capacity: usize,
    /// Seed of the priorities.
    pub seed: u64,
    /// Records with a usable value of every feature.
    pub complete: u64,
    /// The kept rows with their priorities, least priority first.
    pub kept: Vec<(u64, Vec<f64>)>,
    /// The last record's partition and offset, and its rank among that message's records.
    #[serde(default)]
    last: Option<(i32, i64, u32)>,
}

impl WindowRows {
    /// An empty sample of at most `capacity` rows of the numeric features at `columns`.
    pub fn new(columns: Vec<usize>, capacity: usize, seed: u64) -> WindowRows {
        WindowRows {
            columns,
            onehot: Vec::new(),
            capacity,
            seed,
            complete: 0,
            kept: Vec::new(),
            last: None,
        }
    }

    /// Also samples the categorical features at these positions, one-hot.
    pub fn with_onehot(mut self, onehot: Vec<(usize, OneHot)>) -> WindowRows {
        self.onehot = onehot;
        self
    }

    /// The same sample settings, with no rows (the next window's).
    pub fn emptied(&self) -> WindowRows {
        WindowRows::new(self.columns.clone(), self.capacity, self.seed)
            .with_onehot(self.onehot.clone())
    }

    /// Columns per row: the numeric features and one per level of each categorical one.
    pub fn width(&self) -> usize {
        self.columns.len()
            + self
                .onehot
                .iter()
                .map(|(_, o)| o.levels.len())
                .sum::<usize>()
    }

    /// Offers a record read at `offset` of `partition`; kept when complete and among the least
    /// priorities.
    pub fn offer(&mut self, partition: i32, offset: i64, record: &RecordView<'_>) {
        let rank = match self.last {
            Some((p, o, rank)) if (p, o) == (partition, offset) => rank + 1,
            _ => 0,
        };
        self.last = Some((partition, offset, rank));
        let row: Option<Vec<f64>> = (self.columns.iter())
            .map(|&i| record.cell(i).number().filter(|v| v.is_finite()))
            .collect();
        let Some(mut row) = row else { return };
        for (i, encoding) in &self.onehot {
            if !encoding.encode(record.cell(*i), &mut row) {
                return;
            }
        }
        self.complete += 1;
        self.keep(priority(self.seed, partition, offset, rank), row);
    }

    fn keep(&mut self, priority: u64, row: Vec<f64>) {
        if self.kept.len() >= self.capacity
            && self.kept.last().is_none_or(|(last, _)| priority >= *last)
        {
            return;
        }
        let at = self.kept.partition_point(|(p, _)| *p <= priority);
        self.kept.insert(at, (priority, row));
        self.kept.truncate(self.capacity);
    }

    /// Adds another part's sample of the same window (same features and capacity).
    pub fn merge(&mut self, other: WindowRows) -> Result<(), String> {
        let shape = |r: &WindowRows| (r.columns.clone(), r.onehot.clone(), r.capacity, r.seed);
        if shape(self) != shape(&other) {
            return Err("parts sample different features or sizes of rows".into());
        }
        self.complete += other.complete;
        for (priority, row) in other.kept {
            self.keep(priority, row);
        }
        Ok(())
    }

    /// The kept rows, least priority first.
    pub fn rows(&self) -> Array2<f64> {
        let width = self.width();
        let values = self.kept.iter().flat_map(|(_, row)| row.iter().copied());
        Array2::from_shape_vec((self.kept.len(), width), values.collect())
            .expect("rows of the sampled features")
    }
}

/// The priority of the `rank`-th record of the message at `offset` of `partition`.
fn priority(seed: u64, partition: i32, offset: i64, rank: u32) -> u64 {
    let mix = |h: u64, v: u64| crate::rng::SplitMix64::new(h ^ v).next_u64();
    let h = mix(seed, u64::from(partition as u32));
    let h = mix(h, offset as u64);
    mix(h, u64::from(rank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{BatchDecoder, FeatureKind, FeatureSpec, RecordBatch, Schema};

    fn schema() -> Schema {
        let spec = |name: &str, kind| FeatureSpec {
            name: name.into(),
            kind,
        };
        Schema {
            features: vec![
                spec("x", FeatureKind::Numeric),
                spec("c", FeatureKind::Categorical),
                spec("y", FeatureKind::Numeric),
            ],
        }
    }

    /// Offers records `{"x": i, "y": -i}` at offsets `offsets` of `partition`; every fifth
    /// lacks `y`.
    fn offer(rows: &mut WindowRows, partition: i32, offsets: std::ops::Range<i64>) {
        let decoder = BatchDecoder::new(&schema());
        for offset in offsets {
            let mut batch = RecordBatch::new();
            let record = if offset % 5 == 4 {
                serde_json::json!({"x": offset, "c": "a"})
            } else {
                serde_json::json!({"x": offset, "c": "a", "y": -offset})
            };
            decoder
                .decode(record.to_string().as_bytes(), &mut batch)
                .unwrap();
            rows.offer(partition, offset, &batch.record(0));
        }
    }

    #[test]
    fn keeps_complete_rows_of_the_features_and_at_most_its_capacity() {
        let mut all = WindowRows::new(vec![0, 2], 1000, 7);
        offer(&mut all, 0, 0..100);
        assert_eq!((all.complete, all.kept.len()), (80, 80));
        let rows = all.rows();
        assert!(rows.rows().into_iter().all(|r| r[1] == -r[0]));
        let mut capped = WindowRows::new(vec![0, 2], 10, 7);
        offer(&mut capped, 0, 0..100);
        assert_eq!((capped.complete, capped.kept.len()), (80, 10));
        let least: Vec<u64> = all.kept[..10].iter().map(|(p, _)| *p).collect();
        let kept: Vec<u64> = capped.kept.iter().map(|(p, _)| *p).collect();
        assert_eq!(least, kept, "the ten least priorities of all rows");
    }

    #[test]
    fn parts_merge_into_the_sample_one_reader_keeps() {
        let mut one = WindowRows::new(vec![0, 2], 16, 3);
        offer(&mut one, 0, 0..60);
        offer(&mut one, 1, 0..60);
        let (mut a, mut b) = (one.emptied(), one.emptied());
        offer(&mut a, 1, 0..60);
        offer(&mut b, 0, 0..60);
        a.merge(b).unwrap();
        assert_eq!(a.rows(), one.rows());
        assert_eq!(a.complete, one.complete);
        let other = WindowRows::new(vec![0], 16, 3);
        assert!(a.merge(other).is_err());
    }
}
