//! Triggers judged by several instances against one truth: in a shared store, a triggered
//! decision is confirmed inside the commit that writes it, under a per-model lock, against what
//! every instance has written — a run of the model in flight, the policy's last trigger
//! (cooldown) and its triggers in the budget's period. One that no longer holds is written as
//! the suppression it is, with the reason, and starts no run.
//!
//! The instance's own policy memory is left as judged (it counts the trigger), which can only
//! make it more cautious than the store, never less.

use super::db::{values, Sql};
use super::StoreError;
use crate::policy::engine::words::human;
use crate::policy::{Decision, InFlight, Outcome, Policy};

/// Confirms or suppresses every triggered decision of `decisions` (in order).
pub(super) fn arbitrate(
    tx: &impl Sql,
    decisions: &mut [Decision],
    policies: &[Policy],
) -> Result<(), StoreError> {
    for decision in decisions.iter_mut() {
        if decision.outcome != Outcome::Triggered {
            continue;
        }
        let Some(policy) = policies.iter().find(|p| p.name == decision.policy) else {
            continue;
        };
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            values![format!("driftgate model {}", decision.model)],
        )?;
        if let Some((outcome, why)) = refusal(tx, decision, policy)? {
            decision.outcome = outcome;
            decision.reason = format!("{}, but {why} (another instance)", decision.reason);
        }
    }
    Ok(())
}

/// Why the store refuses `decision`'s trigger, if it does.
fn refusal(
    tx: &impl Sql,
    decision: &Decision,
    policy: &Policy,
) -> Result<Option<(Outcome, String)>, StoreError> {
    if policy.in_flight == InFlight::Suppress {
        let busy = tx.query_opt(
            "SELECT id FROM runs WHERE model = $1 AND status IN ('queued', 'running') LIMIT 1",
            values![&decision.model],
        )?;
        if let Some(run) = busy {
            let run: String = run.get(0)?;
            let why = format!("run {run} of model {} is in flight", decision.model);
            return Ok(Some((Outcome::SuppressedInFlight, why)));
        }
    }
    let cooldown_ms = policy.cooldown.as_millis() as i64;
    let last = tx.query_opt(
        "SELECT MAX(at_ms) FROM decisions WHERE policy = $1 AND outcome = 'triggered'",
        values![&decision.policy],
    )?;
    let last: Option<i64> = last.map(|row| row.get(0)).transpose()?.flatten();
    if let Some(last) = last.filter(|last| decision.at_ms - last < cooldown_ms) {
        let (gap, side) = match decision.at_ms - last {
            gap if gap >= 0 => (gap, "before"),
            gap => (-gap, "after"),
        };
        let why = format!(
            "the policy triggered {} {side} this window and the cooldown is {}",
            human(gap),
            human(cooldown_ms)
        );
        return Ok(Some((Outcome::SuppressedCooldown, why)));
    }
    if let Some(budget) = policy.budget {
        let per = budget.per.as_millis() as i64;
        let count = tx.query_opt(
            "SELECT COUNT(*) FROM decisions WHERE policy = $1 AND outcome = 'triggered'
             AND at_ms > $2",
            values![&decision.policy, decision.at_ms - per],
        )?;
        let count: i64 = count.map_or(Ok(0), |row| row.get(0))?;
        if count >= i64::from(budget.max_runs) {
            let why = format!(
                "the budget of {} run(s) per {} is spent",
                budget.max_runs,
                human(per)
            );
            return Ok(Some((Outcome::SuppressedBudget, why)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::pipeline::JudgedWindow;
    use crate::policy::spec::{Budget, Criterion, Metric, Rule, Signal, Source, WindowRule};
    use crate::policy::{Decision, InFlight, Outcome, Policy, Reference};
    use crate::store::{testing, Outbox, RunRequest, Store};

    fn policy(cooldown: Duration, budget: Option<Budget>) -> Policy {
        Policy {
            name: "p".into(),
            model: "m".into(),
            when: Rule::Signal(Signal {
                source: Source::Feature("x".into()),
                metric: Metric::KsPValue,
                criterion: Criterion::Below { threshold: 0.01 },
                reference: Reference::Training,
            }),
            windows: WindowRule::Consecutive { k: 1 },
            min_records: 0,
            cooldown,
            budget,
            in_flight: InFlight::Trigger,
        }
    }

    fn triggered(tag: &str, index: u64, at_ms: i64) -> JudgedWindow {
        let decision: Decision = serde_json::from_value(serde_json::json!({
            "key": format!("p/m/s/{index}{tag}"), "policy": "p", "model": "m", "dag": "d",
            "stream": "s", "window": index, "at_ms": at_ms, "outcome": "triggered",
            "reason": "x drifted", "span": {"start": null, "end": null, "offsets": {}},
            "drifted_features": ["x"], "signals": []
        }))
        .unwrap();
        JudgedWindow {
            index,
            tag: tag.into(),
            report: crate::pipeline::report::fixture::report(10, Vec::new()),
            decisions: vec![decision],
            data: None,
        }
    }

    /// Commits `window` through `store` and returns its decision's outcome and reason.
    fn commit(store: &mut Store, window: JudgedWindow, policy: &Policy) -> (Outcome, String) {
        let checkpoint = store.checkpoint("s").unwrap().unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({
                "open_window": serde_json::to_value(
                    crate::window::Windower::new(
                        crate::window::WindowSpec::Records(10),
                        crate::decode::Schema { features: vec![] },
                        1,
                    )
                    .snapshot()
                ).unwrap(),
                "next_offsets": {}, "policies": {"policies": {}}
            }))
            .unwrap()
        });
        let mut closed = vec![window];
        let runs = |closed: &[JudgedWindow]| Outbox {
            alerts: Vec::new(),
            runs: closed[0]
                .decisions
                .iter()
                .filter(|d| d.outcome == Outcome::Triggered)
                .map(|d| RunRequest {
                    id: format!("run-{}", d.key),
                    ..crate::dag::request::manual(d.key.clone(), "m", "d", "s", vec![], None)
                })
                .collect(),
        };
        let policies = std::slice::from_ref(policy);
        store
            .commit_with_outbox("s", &mut closed, &checkpoint, 100, policies, runs)
            .unwrap();
        let decision = &closed[0].decisions[0];
        (decision.outcome, decision.reason.clone())
    }

    fn two_instances() -> Option<(Store, Store)> {
        let url = testing::postgres_database()?;
        let (mut a, mut b) = (Store::open(&url).unwrap(), Store::open(&url).unwrap());
        a.claim_lineage("a", "a/1", 60_000).unwrap();
        b.claim_lineage("b", "b/1", 60_000).unwrap();
        Some((a, b))
    }

    #[test]
    fn issue_16_two_instances_share_one_budget_and_one_cooldown() {
        let Some((mut a, mut b)) = two_instances() else {
            return;
        };
        let budget = Some(Budget {
            max_runs: 2,
            per: Duration::from_secs(3600),
        });
        let p = policy(Duration::ZERO, budget);
        assert_eq!(
            commit(&mut a, triggered("@a", 1, 1_000), &p).0,
            Outcome::Triggered
        );
        assert_eq!(
            commit(&mut b, triggered("@b", 1, 2_000), &p).0,
            Outcome::Triggered
        );
        let (outcome, reason) = commit(&mut a, triggered("@a", 2, 3_000), &p);
        assert_eq!(outcome, Outcome::SuppressedBudget, "{reason}");
        assert!(
            reason.contains("budget of 2 run(s) per 1h is spent (another instance)"),
            "{reason}"
        );
        // Two runs in all, not two per instance.
        assert_eq!(a.runs(Some("m"), 10).unwrap().len(), 2);

        let p = policy(Duration::from_secs(60), None);
        let (outcome, reason) = commit(&mut b, triggered("@b", 2, 30_000), &p);
        assert_eq!(outcome, Outcome::SuppressedCooldown, "{reason}");
        assert!(reason.contains("the cooldown is 1m"), "{reason}");
        assert_eq!(
            commit(&mut b, triggered("@b", 3, 90_000), &p).0,
            Outcome::Triggered
        );
    }

    #[test]
    fn issue_16_a_run_queued_by_one_instance_suppresses_the_others_trigger() {
        let Some((mut a, mut b)) = two_instances() else {
            return;
        };
        let mut p = policy(Duration::ZERO, None);
        p.in_flight = InFlight::Suppress;
        assert_eq!(
            commit(&mut a, triggered("@a", 1, 1_000), &p).0,
            Outcome::Triggered
        );
        let (outcome, reason) = commit(&mut b, triggered("@b", 1, 1_000), &p);
        assert_eq!(outcome, Outcome::SuppressedInFlight, "{reason}");
        assert!(reason.contains("of model m is in flight"), "{reason}");
        assert_eq!(b.runs(Some("m"), 10).unwrap().len(), 1);
    }
}
