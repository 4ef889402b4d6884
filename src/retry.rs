//! The retry schedule shared by alert deliveries and DAG task attempts.

use std::time::Duration;

/// The delay before retry `attempt` (1 after the first failure): `first` doubled per earlier
/// retry, capped at `max`, less up to a fifth by `jitter` in [0, 1] (so callers recovering
/// together do not all come back at once).
pub fn delay(first: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let base = first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(30))
        .min(max);
    base.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}
