//! Each policy's readings of each signal over the windows, gathered from its decisions: what
//! `replay --chart` and the dashboard's signal charts draw.

use std::collections::HashMap;

use super::{Decision, Outcome, SignalReading};

/// One policy's readings of one signal (a subject's metric), window by window.
#[derive(Debug)]
pub struct Series<'a> {
    /// The policy.
    pub policy: &'a str,
    /// The feature, `dataset`, `performance`, … the metric is of.
    pub subject: &'a str,
    /// The metric.
    pub metric: &'a str,
    /// In the order the decisions came: the window, the reading (the first one, when a policy
    /// reads the signal twice in a window) and whether the policy triggered on that window.
    pub readings: Vec<(u64, &'a SignalReading, bool)>,
}

/// The series of every policy and signal in `decisions`, in the order they first appear.
pub fn series<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> Vec<Series<'a>> {
    let mut all: Vec<Series<'a>> = Vec::new();
    let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for decision in decisions {
        let triggered = decision.outcome == Outcome::Triggered;
        for reading in &decision.signals {
            let key = (
                decision.policy.as_str(),
                reading.subject.as_str(),
                reading.metric.as_str(),
            );
            let at = *index.entry(key).or_insert_with(|| {
                all.push(Series {
                    policy: &decision.policy,
                    subject: &reading.subject,
                    metric: &reading.metric,
                    readings: Vec::new(),
                });
                all.len() - 1
            });
            let readings = &mut all[at].readings;
            if readings
                .last()
                .is_none_or(|(w, _, _)| *w != decision.window)
            {
                readings.push((decision.window, reading, triggered));
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(policy: &str, window: u64, outcome: Outcome, metrics: &[&str]) -> Decision {
        Decision {
            key: format!("{policy}/m/s/{window}"),
            policy: policy.into(),
            model: "m".into(),
            dag: None,
            stream: "s".into(),
            window,
            at_ms: 0,
            outcome,
            reason: String::new(),
            span: Default::default(),
            drifted_features: vec![],
            signals: metrics
                .iter()
                .map(|metric| SignalReading {
                    subject: "amount".into(),
                    metric: metric.to_string(),
                    value: Some(window as f64),
                    threshold: Some(0.01),
                    hit: false,
                    text: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn readings_group_by_policy_and_signal_once_per_window() {
        let decisions = [
            decision("a", 0, Outcome::NotTriggered, &["ks.p_value", "ks.p_value"]),
            decision("b", 0, Outcome::NotTriggered, &["psi.value"]),
            decision("a", 1, Outcome::Triggered, &["ks.p_value"]),
        ];
        let all = series(&decisions);
        let names: Vec<_> = all.iter().map(|s| (s.policy, s.metric)).collect();
        assert_eq!(names, [("a", "ks.p_value"), ("b", "psi.value")]);
        let a: Vec<_> = all[0].readings.iter().map(|(w, _, t)| (*w, *t)).collect();
        assert_eq!(a, [(0, false), (1, true)]);
    }
}
