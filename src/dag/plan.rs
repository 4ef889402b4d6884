//! Selective planning: from the features that drifted, which tasks must run and which may reuse
//! their last outputs.
//!
//! A task is **selected** when it consumes a drifted feature, when it needs a selected task
//! (everything downstream of a change runs), or when it consumes no feature and needs no task
//! (nothing says its input is unchanged). Every other task is **unaffected**: at run time it
//! reuses the outputs of its last successful run with the same cache key (a hash of its spec
//! and its inputs: the outputs of the tasks it needs and the baseline of the features it
//! consumes) and runs only when there are none. A task whose `when` does not hold is skipped,
//! and so is everything that needs it.

use serde::Serialize;

use super::Dag;

/// Why a task is in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// It runs.
    Selected,
    /// It reuses cached outputs when it has them.
    Unaffected,
}

/// One task's place in a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTask {
    /// The task.
    pub name: String,
    /// In or out.
    pub selection: Selection,
    /// Why, in words.
    pub reason: String,
}

/// A DAG's plan for one decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The DAG.
    pub dag: String,
    /// The features that drifted.
    pub drifted: Vec<String>,
    /// Every task, in dependency order.
    pub tasks: Vec<PlannedTask>,
}

impl Plan {
    /// Whether `task` was selected.
    pub fn selected(&self, task: &str) -> bool {
        self.tasks
            .iter()
            .any(|t| t.name == task && t.selection == Selection::Selected)
    }
}

/// Plans `dag` for a decision whose window drifted in `drifted`.
pub fn plan(dag: &Dag, drifted: &[String]) -> Plan {
    let mut tasks: Vec<PlannedTask> = Vec::new();
    for task in &dag.tasks {
        let hit: Vec<&str> = task
            .features
            .iter()
            .filter(|f| drifted.contains(f))
            .map(String::as_str)
            .collect();
        let upstream: Vec<&str> = task
            .needs
            .iter()
            .filter(|n| {
                tasks
                    .iter()
                    .any(|t| &t.name == *n && t.selection == Selection::Selected)
            })
            .map(String::as_str)
            .collect();
        let (selection, reason) = if !hit.is_empty() {
            (
                Selection::Selected,
                format!("consumes drifted {}", hit.join(", ")),
            )
        } else if !upstream.is_empty() {
            (
                Selection::Selected,
                format!("needs {}, which runs", upstream.join(", ")),
            )
        } else if task.features.is_empty() && task.needs.is_empty() {
            (
                Selection::Selected,
                "reads no feature and needs no task, so nothing shows its input unchanged"
                    .to_string(),
            )
        } else if !task.cache {
            (
                Selection::Selected,
                "its inputs did not change, but it is not cached".to_string(),
            )
        } else {
            let why = if task.features.is_empty() {
                "the tasks it needs did not change".to_string()
            } else {
                format!("{} did not drift", task.features.join(", "))
            };
            (
                Selection::Unaffected,
                format!("{why}: reuses its cached outputs (runs if it has none)"),
            )
        };
        tasks.push(PlannedTask {
            name: task.name.clone(),
            selection,
            reason,
        });
    }
    Plan {
        dag: dag.name.clone(),
        drifted: drifted.to_vec(),
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::Task;
    use std::time::Duration;

    fn task(name: &str, needs: &[&str], features: &[&str]) -> Task {
        Task {
            name: name.into(),
            run: vec!["true".into()],
            needs: needs.iter().map(|s| s.to_string()).collect(),
            features: features.iter().map(|s| s.to_string()).collect(),
            outputs: Vec::new(),
            cache: true,
            retries: 0,
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            when: None,
            baseline_output: None,
            env: Default::default(),
            pass_env: Vec::new(),
        }
    }

    #[test]
    fn only_the_drifted_branch_and_what_follows_it_run() {
        let dag = Dag {
            name: "retrain".into(),
            max_parallel: 4,
            remote: None,
            predict: None,
            tasks: vec![
                task("amount-features", &[], &["amount"]),
                task("geo-features", &[], &["country"]),
                task("train", &["amount-features", "geo-features"], &[]),
                task("evaluate", &["train"], &[]),
                task("report", &["geo-features"], &[]),
            ],
        };
        let plan = plan(&dag, &["amount".to_string()]);
        let selected: Vec<(&str, Selection)> = plan
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.selection))
            .collect();
        assert_eq!(
            selected,
            [
                ("amount-features", Selection::Selected),
                ("geo-features", Selection::Unaffected),
                ("train", Selection::Selected),
                ("evaluate", Selection::Selected),
                ("report", Selection::Unaffected),
            ]
        );
        assert_eq!(plan.tasks[0].reason, "consumes drifted amount");
        assert_eq!(plan.tasks[2].reason, "needs amount-features, which runs");
        assert_eq!(
            plan.tasks[1].reason,
            "country did not drift: reuses its cached outputs (runs if it has none)"
        );
    }
}
