//! Change detectors on a stream of numbers (a model's per-record errors), equal to River's.
//!
//! [`PageHinkley`] follows `river.drift.PageHinkley` operation for operation (the running mean's
//! update, the faded cumulative sums, the reset after a detection), so on the same stream with
//! the same parameters it signals at the same indices; `tests/detectors.rs` checks that against
//! fixtures from `scripts/gen_river_fixtures.py`.

use serde::{Deserialize, Serialize};

/// Which changes of the mean a detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Increases (e.g. a rising error rate).
    Up,
    /// Decreases.
    Down,
    /// Both.
    Both,
}

/// Page-Hinkley parameters, with River's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageHinkleyParams {
    /// Values seen before a change can be signalled.
    pub min_instances: u64,
    /// Magnitude of changes tolerated.
    pub delta: f64,
    /// The detection threshold (lambda).
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums.
    pub alpha: f64,
    /// Which changes count.
    pub mode: Direction,
}

impl Default for PageHinkleyParams {
    fn default() -> Self {
        PageHinkleyParams {
            min_instances: 30,
            delta: 0.005,
            threshold: 50.0,
            alpha: 1.0 - 0.0001,
            mode: Direction::Both,
        }
    }
}

/// The Page-Hinkley test: a CUSUM of deviations from the running mean, faded by `alpha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    params: PageHinkleyParams,
    n: f64,
    mean: f64,
    sum_increase: f64,
    sum_decrease: f64,
    min_increase: f64,
    max_decrease: f64,
    detected: bool,
}

impl PageHinkley {
    /// A fresh detector.
    pub fn new(params: PageHinkleyParams) -> PageHinkley {
        PageHinkley {
            params,
            n: 0.0,
            mean: 0.0,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: f64::INFINITY,
            max_decrease: -1.0,
            detected: false,
        }
    }

    /// Adds a value; true when it signals a change. The detector starts afresh with the next
    /// value after a detection.
    pub fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = PageHinkley::new(self.params);
        }
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
        let deviation = x - self.mean;
        let p = self.params;
        self.sum_increase = p.alpha * self.sum_increase + deviation - p.delta;
        self.sum_decrease = p.alpha * self.sum_decrease + deviation + p.delta;
        if self.sum_increase < self.min_increase {
            self.min_increase = self.sum_increase;
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if self.n >= p.min_instances as f64 {
            let increase = self.sum_increase - self.min_increase;
            let decrease = self.max_decrease - self.sum_decrease;
            self.detected = match p.mode {
                Direction::Up => increase > p.threshold,
                Direction::Down => decrease > p.threshold,
                Direction::Both => increase > p.threshold || decrease > p.threshold,
            };
        }
        self.detected
    }
}
