//! The engine's behaviour, window by window.

use super::*;
use crate::policy::spec::{Budget, CronSchedule, InFlight, WindowRule};
use crate::policy::spec::{Criterion, Metric, Rule, Side, Signal};
use crate::policy::Reference;
use serde_json::Value;
use std::time::Duration;

const MINUTE: i64 = 60_000;

fn model() -> Model {
    Model {
        name: "fraud".into(),
        stream: "payments".into(),
        features: vec!["amount".into(), "country".into()],
        dag: Some("retrain".into()),
    }
}

fn ks_below(feature: &str, threshold: f64) -> Rule {
    Rule::Signal(Signal {
        source: Source::Feature(feature.into()),
        metric: Metric::KsPValue,
        criterion: Criterion::Below { threshold },
        reference: Reference::Training,
    })
}

fn policy(windows: WindowRule) -> Policy {
    Policy {
        name: "p".into(),
        model: "fraud".into(),
        when: Rule::Any(vec![ks_below("amount", 0.01)]),
        windows,
        min_records: 0,
        cooldown: Duration::ZERO,
        budget: None,
        in_flight: InFlight::Suppress,
    }
}

/// A window report where `amount` has this KS p-value.
fn report(p_value: f64) -> Value {
    serde_json::json!({
        "features": [
            {"name": "amount", "tests": {"ks": {"p_value": p_value, "statistic": 0.2}},
             "drift": {"detected": p_value < 0.05, "score": p_value}},
            {"name": "country", "tests": {"chi2": {"p_value": 0.5}},
             "drift": {"detected": false}},
        ],
        "dataset": {"share": 0.5, "drifted": 1, "detected": p_value < 0.05}
    })
}

/// Runs windows with these p-values, one minute apart; returns the outcomes.
fn run(engine: &mut Engine, p_values: &[f64]) -> Vec<Outcome> {
    run_from(engine, 0, p_values)
}

fn run_from(engine: &mut Engine, first: u64, p_values: &[f64]) -> Vec<Outcome> {
    p_values
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let index = first + i as u64;
            let report = report(*p);
            let decisions = engine.evaluate(&WindowFacts {
                stream: "payments",
                index,
                records: 1000,
                at_ms: index as i64 * MINUTE,
                report: &report,
            });
            assert_eq!(decisions.len(), 1);
            decisions[0].outcome
        })
        .collect()
}

use Outcome::{NotTriggered as N, SuppressedCooldown as C, Triggered as T};

#[test]
fn consecutive_windows_then_a_fresh_run_after_each_trigger() {
    let mut engine = Engine::new(
        vec![model()],
        vec![policy(WindowRule::Consecutive { k: 2 })],
    );
    let outcomes = run(
        &mut engine,
        &[0.001, 0.5, 0.001, 0.001, 0.001, 0.001, 0.001],
    );
    assert_eq!(outcomes, [N, N, N, T, N, T, N]);
}

#[test]
fn k_of_n_windows() {
    let mut engine = Engine::new(vec![model()], vec![policy(WindowRule::KOfN { k: 2, n: 3 })]);
    let outcomes = run(&mut engine, &[0.001, 0.5, 0.001, 0.5, 0.5, 0.001]);
    assert_eq!(outcomes, [N, N, T, N, N, N]);
}

#[test]
fn cooldown_budget_and_in_flight_suppress_with_reasons() {
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.cooldown = Duration::from_secs(150);
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    let outcomes = run(&mut engine, &[0.001; 7]);
    assert_eq!(outcomes, [T, C, C, T, C, C, T]);

    p.cooldown = Duration::ZERO;
    p.budget = Some(Budget {
        max_runs: 2,
        per: Duration::from_secs(300),
    });
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    let outcomes = run(&mut engine, &[0.001; 7]);
    use Outcome::SuppressedBudget as B;
    assert_eq!(outcomes, [T, T, B, B, B, T, T]);

    let mut engine = Engine::new(
        vec![model()],
        vec![policy(WindowRule::Consecutive { k: 1 })],
    );
    engine.set_in_flight("fraud", true);
    let report = report(1e-9);
    let facts = WindowFacts {
        stream: "payments",
        index: 4,
        records: 1000,
        at_ms: 0,
        report: &report,
    };
    let decision = engine.evaluate(&facts).remove(0);
    assert_eq!(decision.outcome, Outcome::SuppressedInFlight);
    assert_eq!(
        decision.reason,
        "amount: ks.p_value 1.00e-9 < 0.01 in this window, but a run of model fraud is in flight"
    );
    assert_eq!(decision.key, "p/fraud/payments/4");
    assert_eq!(decision.drifted_features, ["amount"]);
    engine.set_in_flight("fraud", false);
    assert_eq!(engine.evaluate(&facts)[0].outcome, Outcome::Triggered);
}

#[test]
fn two_policies_triggering_one_window_start_one_run() {
    let first = policy(WindowRule::Consecutive { k: 1 });
    let mut second = first.clone();
    second.name = "q".into();
    let mut eager = first.clone();
    eager.name = "r".into();
    eager.in_flight = InFlight::Trigger;
    let mut engine = Engine::new(vec![model()], vec![first, second, eager]);
    let report = report(1e-9);
    let decisions = engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 4,
        records: 1000,
        at_ms: 0,
        report: &report,
    });
    let outcomes: Vec<Outcome> = decisions.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Triggered,
            Outcome::SuppressedInFlight,
            Outcome::Triggered
        ]
    );
    assert!(
        decisions[1]
            .reason
            .ends_with("but policy p triggered model fraud in this window"),
        "{}",
        decisions[1].reason
    );
}

#[test]
fn reasons_name_values_thresholds_and_windows() {
    let mut engine = Engine::new(
        vec![model()],
        vec![policy(WindowRule::Consecutive { k: 2 })],
    );
    let report = |p| report(p);
    let mut decide = |index: u64, p: f64| {
        let report = report(p);
        engine
            .evaluate(&WindowFacts {
                stream: "payments",
                index,
                records: 1000,
                at_ms: 0,
                report: &report,
            })
            .remove(0)
    };
    assert_eq!(
        decide(0, 0.3).reason,
        "not met: amount: ks.p_value 0.3 >= 0.01"
    );
    assert_eq!(
        decide(1, 1.2e-9).reason,
        "amount: ks.p_value 1.20e-9 < 0.01; met in 1 window(s) so far, needs to be met in 2 consecutive windows"
    );
    let triggered = decide(2, 1.2e-9);
    assert_eq!(triggered.outcome, Outcome::Triggered);
    assert_eq!(
        triggered.reason,
        "amount: ks.p_value 1.20e-9 < 0.01 in 2 consecutive windows"
    );
    assert_eq!(triggered.signals[0].threshold, Some(0.01));
}

#[test]
fn small_windows_are_not_judged() {
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.min_records = 5000;
    let mut engine = Engine::new(vec![model()], vec![p]);
    let decision = engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 0,
        records: 1000,
        at_ms: 0,
        report: &report(1e-9),
    });
    assert_eq!(decision[0].outcome, Outcome::NotTriggered);
    assert!(decision[0].reason.contains("at least 5000"));
    assert!(engine.state().policies["p"].recent.is_empty());
}

#[test]
fn dynamic_thresholds_warm_up_then_follow_the_history() {
    let signal = |criterion| {
        Rule::Signal(Signal {
            source: Source::Feature("amount".into()),
            metric: Metric::KsStatistic,
            criterion,
            reference: Reference::Training,
        })
    };
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.when = signal(Criterion::Quantile {
        q: 0.5,
        over: 3,
        warmup: 2,
        side: Side::Above,
    });
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    let statistic = |s: f64| serde_json::json!({"features": [{"name": "amount", "tests": {"ks": {"statistic": s}}}]});
    let decide = |engine: &mut Engine, s: f64| {
        let report = statistic(s);
        engine
            .evaluate(&WindowFacts {
                stream: "payments",
                index: 0,
                records: 1,
                at_ms: 0,
                report: &report,
            })
            .remove(0)
    };
    let first = decide(&mut engine, 0.9);
    assert!(
        first.reason.contains("warming up: 0 of 2"),
        "{}",
        first.reason
    );
    assert_eq!(decide(&mut engine, 0.1).outcome, N);
    // History [0.9, 0.1]: median 0.5.
    let third = decide(&mut engine, 0.6);
    assert_eq!(third.outcome, T);
    assert_eq!(third.signals[0].threshold, Some(0.5));
    // History keeps the last 3: [0.9, 0.1, 0.6], median 0.6; 0.6 is not above it.
    assert_eq!(decide(&mut engine, 0.6).outcome, N);

    p.when = signal(Criterion::Rolling {
        deviations: 2.0,
        over: 4,
        warmup: 4,
        side: Side::Above,
    });
    let mut engine = Engine::new(vec![model()], vec![p]);
    for s in [0.1, 0.2, 0.1, 0.2] {
        assert_eq!(decide(&mut engine, s).outcome, N);
    }
    // Mean 0.15, std 0.05: the threshold is 0.25.
    let spike = decide(&mut engine, 0.3);
    assert_eq!(spike.outcome, T);
    assert!((spike.signals[0].threshold.unwrap() - 0.25).abs() < 1e-12);
}

#[test]
fn combinators_read_every_signal() {
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    let country = Rule::Signal(Signal {
        source: Source::Feature("country".into()),
        metric: Metric::Chi2PValue,
        criterion: Criterion::Below { threshold: 0.01 },
        reference: Reference::Training,
    });
    let share = Rule::Signal(Signal {
        source: Source::Dataset,
        metric: Metric::Share,
        criterion: Criterion::Above { threshold: 0.4 },
        reference: Reference::Training,
    });
    p.when = Rule::AtLeast {
        n: 2,
        of: vec![ks_below("amount", 0.01), country.clone(), share.clone()],
    };
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    let decision = &engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 0,
        records: 1,
        at_ms: 0,
        report: &report(1e-3),
    })[0];
    assert_eq!(decision.outcome, T, "amount and the share hold");
    assert_eq!(decision.signals.len(), 3);
    p.when = Rule::All(vec![ks_below("amount", 0.01), country]);
    let mut engine = Engine::new(vec![model()], vec![p]);
    let decision = &engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 0,
        records: 1,
        at_ms: 0,
        report: &report(1e-3),
    })[0];
    assert_eq!(decision.outcome, N);
    assert_eq!(decision.signals.len(), 2);
}

#[test]
fn other_streams_and_restored_state() {
    let mut engine = Engine::new(
        vec![model()],
        vec![policy(WindowRule::Consecutive { k: 2 })],
    );
    let report = report(1e-9);
    let other = WindowFacts {
        stream: "other",
        index: 0,
        records: 1,
        at_ms: 0,
        report: &report,
    };
    assert!(engine.evaluate(&other).is_empty());
    assert_eq!(run(&mut engine, &[1e-9]), [N]);
    // Through JSON, as the checkpoint stores it.
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(&engine.stream_state("payments")).unwrap())
            .unwrap();
    let mut restored = Engine::new(
        vec![model()],
        vec![policy(WindowRule::Consecutive { k: 2 })],
    );
    restored.restore(saved);
    assert_eq!(run_from(&mut restored, 1, &[1e-9]), [T]);
}

#[test]
fn schedules_count_time_and_records_since_the_last_trigger() {
    let schedule = |metric, threshold| {
        Rule::Signal(Signal {
            source: Source::Schedule,
            metric,
            criterion: Criterion::AtLeast { threshold },
            reference: Reference::Training,
        })
    };
    // Every 3 minutes of window time; windows are a minute apart, starting at 0.
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.when = schedule(Metric::ElapsedSeconds, 180.0);
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    assert_eq!(run(&mut engine, &[0.5; 7]), [N, N, N, T, N, N, T]);
    let report = report(0.5);
    let reason = engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 7,
        records: 1000,
        at_ms: 7 * MINUTE,
        report: &report,
    })[0]
        .reason
        .clone();
    assert_eq!(reason, "not met: 1m since the last trigger < 3m");

    // Every 3000 records, windows of 1000.
    p.when = schedule(Metric::Records, 3000.0);
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    assert_eq!(run(&mut engine, &[0.5; 6]), [N, N, T, N, N, T]);

    // An ensemble: drift, or else every 4 minutes; a drift trigger restarts the schedule.
    p.when = Rule::Any(vec![
        ks_below("amount", 0.01),
        schedule(Metric::ElapsedSeconds, 240.0),
    ]);
    let mut engine = Engine::new(vec![model()], vec![p]);
    let outcomes = run(&mut engine, &[0.5, 0.5, 0.001, 0.5, 0.5, 0.5, 0.5, 0.5]);
    assert_eq!(outcomes, [N, N, T, N, N, N, T, N]);
}

#[test]
fn cron_schedules_are_due_once_a_time_passed_since_the_last_trigger() {
    // "At minute 0 and 30 of every hour"; windows one minute apart starting at 00:00 UTC
    // on 1 January 1970, so the first time after the first window is 00:30.
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.when = Rule::Signal(Signal {
        source: Source::Cron(CronSchedule::parse("0,30 * * * *").unwrap()),
        metric: Metric::Due,
        criterion: Criterion::AtLeast { threshold: 1.0 },
        reference: Reference::Training,
    });
    let mut engine = Engine::new(vec![model()], vec![p.clone()]);
    let outcomes = run(&mut engine, &[0.5; 95]);
    let triggered: Vec<usize> = (0..outcomes.len()).filter(|i| outcomes[*i] == T).collect();
    assert_eq!(triggered, [30, 60, 90]);
    let report = report(0.5);
    let facts = |index: u64| WindowFacts {
        stream: "payments",
        index,
        records: 1000,
        at_ms: index as i64 * MINUTE,
        report: &report,
    };
    assert_eq!(
        engine.evaluate(&facts(95))[0].reason,
        "not met: cron \"0,30 * * * *\" is next due at 1970-01-01T02:00:00Z (UTC)"
    );

    // A cooldown holds a due schedule back; it fires at the first window after it.
    p.cooldown = Duration::from_secs(45 * 60);
    p.when = Rule::Any(vec![
        ks_below("amount", 0.01),
        Rule::Signal(Signal {
            source: Source::Cron(CronSchedule::parse("0 * * * *").unwrap()),
            metric: Metric::Due,
            criterion: Criterion::AtLeast { threshold: 1.0 },
            reference: Reference::Training,
        }),
    ]);
    let mut engine = Engine::new(vec![model()], vec![p]);
    let mut p_values = vec![0.5; 80];
    p_values[20] = 0.001; // a drift trigger at 00:20
    let outcomes = run(&mut engine, &p_values);
    assert_eq!(outcomes[20], T);
    // 01:00 is due, but within 45 minutes of 00:20: suppressed until 01:05.
    assert_eq!(outcomes[60..66], [C, C, C, C, C, T]);
    assert_eq!(outcomes.iter().filter(|o| **o == T).count(), 2);
    let reason = engine.evaluate(&facts(125))[0].reason.clone();
    assert_eq!(
        reason,
        "cron \"0 * * * *\" was due at 1970-01-01T02:00:00Z (UTC), after the period began \
         at 1970-01-01T01:05:00Z in this window"
    );
}

#[test]
fn regret_accumulates_until_it_reaches_the_cost_of_a_run() {
    use crate::policy::spec::{Regret, RegretMeasure, RetrainCost};
    let regret = |measure, cost| {
        Rule::Signal(Signal {
            source: Source::Regret(Regret { measure, cost }),
            metric: Metric::Regret,
            criterion: Criterion::AtLeast { threshold: 0.0 },
            reference: Reference::Training,
        })
    };
    // Drifted records × seconds since the drift began, windows of 1000 records a minute
    // apart: drift from window 2 (regret 0), 2000 × 60 s, 2000 × 120 s (window 4 is clean
    // but the drift is not over), 3000 × 180 s = 540000 >= 500000 at window 5.
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.when = regret(RegretMeasure::DriftedRecords, RetrainCost::Fixed(500_000.0));
    let mut engine = Engine::new(vec![model()], vec![p]);
    let outcomes = run(&mut engine, &[0.5, 0.5, 0.01, 0.01, 0.5, 0.01, 0.5, 0.5]);
    assert_eq!(outcomes, [N, N, N, N, N, T, N, N]);
    let drifted = report(0.01);
    let decision = &engine.evaluate(&WindowFacts {
        stream: "payments",
        index: 8,
        records: 1000,
        at_ms: 8 * MINUTE,
        report: &drifted,
    })[0];
    assert_eq!(
        decision.reason,
        "not met: regret: 1000 drifted records × 0s since the drift began = 0 < cost 5.00e5"
    );

    // Errors × seconds since the last trigger against a cost forecast from run durations:
    // 10 per run second × 60 s before any run, then × the mean of the recorded runs.
    let mut p = policy(WindowRule::Consecutive { k: 1 });
    p.when = regret(
        RegretMeasure::Errors,
        RetrainCost::Forecast {
            per_run_second: 10.0,
            initial_run_seconds: 60.0,
            over: 2,
        },
    );
    let mut engine = Engine::new(vec![model()], vec![p]);
    let mut labelled = report(0.5);
    labelled["performance"] = serde_json::json!({"labelled": 100, "correct": 90});
    let mut outcomes = Vec::new();
    let mut reasons = Vec::new();
    for index in 0..8 {
        if index == 2 {
            // Runs of 1000 s, then 200 s and 1000 s: the mean of the last two is 600 s.
            engine.record_run("fraud", 1000.0);
            engine.record_run("fraud", 200.0);
            engine.record_run("fraud", 1000.0);
        }
        let decision = engine
            .evaluate(&WindowFacts {
                stream: "payments",
                index,
                records: 1000,
                at_ms: index as i64 * MINUTE,
                report: &labelled,
            })
            .remove(0);
        outcomes.push(decision.outcome);
        reasons.push(decision.reason);
    }
    // Window 1: 20 errors × 60 s = 1200 >= 600. From window 1: 10·j errors × 60·j s
    // against 6000: 5400 at j = 3, 9600 at j = 4 (window 5).
    assert_eq!(outcomes, [N, T, N, N, N, T, N, N]);
    assert_eq!(
        reasons[1],
        "regret: 20 errors × 1m since the last trigger = 1200 >= cost 600 (10 per run \
         second × 1m, the assumed duration before any run) in this window"
    );
    assert_eq!(
        reasons[4],
        "not met: regret: 30 errors × 3m since the last trigger = 5400 < cost 6000 (10 per \
         run second × 10m, the mean of the last 2 run(s))"
    );
    // Run durations are checkpointed with the stream's state.
    assert_eq!(
        engine.stream_state("payments").run_seconds["fraud"].len(),
        3
    );
    assert!(engine.stream_state("elsewhere").run_seconds.is_empty());
}
