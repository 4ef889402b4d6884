//! Change detectors on a stream of numbers (a model's per-record errors), equal to River's.
//!
//! [`PageHinkley`] follows `river.drift.PageHinkley` operation for operation (the running mean's
//! update, the faded cumulative sums, the reset after a detection), and [`Adwin`] follows
//! `river.drift.ADWIN` (the exponential histogram of buckets, the order in which cuts are tried,
//! the floating-point order of the variance updates, the reset after a detection). On the same
//! stream with the same parameters they signal at the same indices; `tests/detectors.rs` checks
//! that against fixtures from `scripts/gen_river_fixtures.py`.

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
            // Finite so that a fresh detector survives a JSON checkpoint (JSON has no infinity);
            // the first value replaces it either way.
            min_increase: f64::MAX,
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

/// ADWIN parameters, with River's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdwinParams {
    /// Significance of a cut (smaller: fewer false alarms, later detections).
    pub delta: f64,
    /// Cuts are checked every `clock` values.
    pub clock: u32,
    /// Buckets of one size kept before the two oldest are merged.
    pub max_buckets: u32,
    /// Smallest sub-window on either side of a cut.
    pub min_window_length: u32,
    /// Values seen before cuts are checked.
    pub grace_period: u32,
}

impl Default for AdwinParams {
    fn default() -> Self {
        AdwinParams {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        }
    }
}

/// One bucket of the exponential histogram: the sum of its values and their variance term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Bucket {
    total: f64,
    variance: f64,
}

/// ADWIN (adaptive windowing, Bifet and Gavaldà 2007): keeps a window of recent values as an
/// exponential histogram and signals when some split of it into an older and a newer part has
/// means further apart than a Hoeffding-style bound allows. Like River, the next value after a
/// detection starts a fresh detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adwin {
    params: AdwinParams,
    /// `levels[i]` holds buckets of `2^i` values, oldest first; higher levels are older.
    levels: Vec<Vec<Bucket>>,
    width: f64,
    total: f64,
    variance: f64,
    tick: u64,
    detected: bool,
}

impl Adwin {
    /// A fresh detector.
    pub fn new(params: AdwinParams) -> Adwin {
        Adwin {
            params,
            levels: vec![Vec::new()],
            width: 0.0,
            total: 0.0,
            variance: 0.0,
            tick: 0,
            detected: false,
        }
    }

    /// Values in the current window.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// Mean of the current window (0 when empty).
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }

    /// Adds a value; true when it signals a change.
    pub fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = Adwin::new(self.params);
        }
        self.insert(x);
        self.detected = self.check_cuts();
        self.detected
    }

    fn insert(&mut self, x: f64) {
        self.width += 1.0;
        // The variance term grows by the new value's squared distance from the previous mean,
        // weighted as in Welford's update; the operation order matches River's.
        if self.width > 1.0 {
            let gap = x - self.total / (self.width - 1.0);
            self.variance += (self.width - 1.0) * gap * gap / self.width;
        }
        self.total += x;
        self.levels[0].push(Bucket {
            total: x,
            variance: 0.0,
        });
        self.merge_full_levels();
    }

    /// A level holding `max_buckets + 1` buckets merges its two oldest into one bucket of the
    /// next level, which may then overflow in turn.
    fn merge_full_levels(&mut self) {
        let full = self.params.max_buckets as usize + 1;
        let mut level = 0;
        while self.levels[level].len() == full {
            let size = (1u64 << level) as f64;
            let (a, b) = (self.levels[level][0], self.levels[level][1]);
            let (mean_a, mean_b) = (a.total / size, b.total / size);
            let merged = Bucket {
                total: a.total + b.total,
                variance: a.variance
                    + b.variance
                    + size * 0.5 * (mean_a - mean_b) * (mean_a - mean_b),
            };
            self.levels[level].drain(..2);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(merged);
            level += 1;
        }
    }

    /// Drops the oldest bucket from the window.
    fn drop_oldest(&mut self) {
        let top = self.levels.len() - 1;
        let size = (1u64 << top) as f64;
        let oldest = self.levels[top].remove(0);
        self.width -= size;
        self.total -= oldest.total;
        let gap = oldest.total / size - self.total / self.width;
        self.variance -= oldest.variance + size * self.width * gap * gap / (size + self.width);
        if self.levels[top].is_empty() && top > 0 {
            self.levels.pop();
        }
    }

    /// Tries every split between buckets, oldest first; while one shows a change, the oldest
    /// bucket is dropped and the splits are tried again.
    fn check_cuts(&mut self) -> bool {
        self.tick += 1;
        let p = self.params;
        if !self.tick.is_multiple_of(u64::from(p.clock.max(1)))
            || self.width <= f64::from(p.grace_period)
        {
            return false;
        }
        let min_len = f64::from(p.min_window_length);
        let mut changed = false;
        'again: loop {
            let (mut n0, mut n1) = (0.0, self.width);
            let (mut u0, mut u1) = (0.0, self.total);
            for level in (0..self.levels.len()).rev() {
                let size = (1u64 << level) as f64;
                let count = self.levels[level].len();
                for i in 0..count {
                    let total = self.levels[level][i].total;
                    n0 += size;
                    n1 -= size;
                    u0 += total;
                    u1 -= total;
                    if level == 0 && i + 1 == count {
                        // The split after the newest value leaves nothing on the new side.
                        break 'again;
                    }
                    if n1 >= min_len && n0 >= min_len && self.cut(n0, n1, u0 / n0 - u1 / n1) {
                        changed = true;
                        if self.width > 0.0 {
                            self.drop_oldest();
                            continue 'again;
                        }
                    }
                }
            }
            break;
        }
        changed
    }

    /// Whether a difference of means between sub-windows of `n0` and `n1` values is significant.
    fn cut(&self, n0: f64, n1: f64, difference: f64) -> bool {
        let min_len = f64::from(self.params.min_window_length);
        let log_term = (2.0 * self.width.ln() / self.params.delta).ln();
        let harmonic = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0);
        let epsilon = (2.0 * harmonic * (self.variance / self.width) * log_term).sqrt()
            + 2.0 / 3.0 * log_term * harmonic;
        difference.abs() > epsilon
    }
}

/// A change detector's parameters: which detector, configured how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorParams {
    /// River's `PageHinkley`.
    PageHinkley(PageHinkleyParams),
    /// River's `ADWIN`.
    Adwin(AdwinParams),
}

impl DetectorParams {
    /// The detector's name in policy files.
    pub fn name(&self) -> &'static str {
        match self {
            DetectorParams::PageHinkley(_) => "page_hinkley",
            DetectorParams::Adwin(_) => "adwin",
        }
    }
}

/// A change detector with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detector {
    /// Page-Hinkley.
    PageHinkley(PageHinkley),
    /// ADWIN.
    Adwin(Adwin),
}

impl Detector {
    /// A fresh detector.
    pub fn new(params: DetectorParams) -> Detector {
        match params {
            DetectorParams::PageHinkley(p) => Detector::PageHinkley(PageHinkley::new(p)),
            DetectorParams::Adwin(p) => Detector::Adwin(Adwin::new(p)),
        }
    }

    /// Adds a value; true when it signals a change.
    pub fn update(&mut self, x: f64) -> bool {
        match self {
            Detector::PageHinkley(d) => d.update(x),
            Detector::Adwin(d) => d.update(x),
        }
    }
}
