//! Compensated summation. Reference implementations sum with pairwise or BLAS reductions; a
//! Neumaier sum is more accurate than either, so our totals differ from theirs only by their own
//! rounding, well inside the 1e-12 relative tolerance the fixtures check.

/// A running Kahan–Babuška–Neumaier sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    /// Adds one term.
    #[inline]
    pub fn add(&mut self, value: f64) {
        let t = self.sum + value;
        // Written as a selection rather than a branch: sums in inner loops stay branch-free.
        let (big, small) = if self.sum.abs() >= value.abs() {
            (self.sum, value)
        } else {
            (value, self.sum)
        };
        self.compensation += (big - t) + small;
        self.sum = t;
    }

    /// The compensated total.
    #[inline]
    pub fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// The compensated sum of an iterator of terms.
pub fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut acc = Neumaier::default();
    values.into_iter().for_each(|v| acc.add(v));
    acc.total()
}
