//! Reading policy decisions back: by model, policy, outcome and decision time, newest first,
//! a page at a time.
//!
//! A page ends with a cursor when more decisions match; passing it back continues just after
//! the page's last decision. Cursors are row ids, so a page never repeats or skips a decision
//! while new ones are written (they have larger ids and appear on the first page only).

use super::db::{values, Sql};
use super::windows::parse_json;
use super::{Store, StoreError};
use crate::policy::Decision;

/// Which decisions to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionFilter {
    /// Only this model's.
    pub model: Option<String>,
    /// Only this policy's.
    pub policy: Option<String>,
    /// Only this outcome (`triggered`, `not_triggered`, `suppressed_…`).
    pub outcome: Option<String>,
    /// Decision time (the window's end) at or after this, epoch milliseconds.
    pub from_ms: Option<i64>,
    /// Decision time before this, epoch milliseconds.
    pub to_ms: Option<i64>,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<i64>,
    /// At most this many.
    pub limit: u64,
}

/// One page of decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionPage {
    /// Newest first.
    pub decisions: Vec<Decision>,
    /// Pass it back for the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

impl Store {
    /// The decisions the filter selects, newest first, one page.
    pub fn decisions(&self, filter: &DecisionFilter) -> Result<DecisionPage, StoreError> {
        let rows = self.db.query(
            "SELECT id, decision FROM decisions
             WHERE (CAST($1 AS TEXT) IS NULL OR model = $1) AND (CAST($2 AS TEXT) IS NULL OR policy = $2)
               AND (CAST($3 AS TEXT) IS NULL OR outcome = $3)
               AND (CAST($4 AS BIGINT) IS NULL OR at_ms >= $4) AND (CAST($5 AS BIGINT) IS NULL OR at_ms < $5)
               AND (CAST($6 AS BIGINT) IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
            values![
                &filter.model,
                &filter.policy,
                &filter.outcome,
                filter.from_ms,
                filter.to_ms,
                filter.cursor,
                filter.limit.saturating_add(1).min(i64::MAX as u64)
            ],
        )?;
        let mut decisions = Vec::new();
        let mut next_cursor = None;
        let mut last_id = None;
        for row in rows {
            if decisions.len() as u64 == filter.limit {
                next_cursor = last_id;
                break;
            }
            decisions.push(parse_json("decision", &row.get::<String>(1)?)?);
            last_id = Some(row.get::<i64>(0)?);
        }
        Ok(DecisionPage {
            decisions,
            next_cursor,
        })
    }

    /// Every policy's decisions on one window of a stream, in the order they were taken.
    pub fn window_decisions(&self, stream: &str, index: u64) -> Result<Vec<Decision>, StoreError> {
        let rows = self.db.query(
            "SELECT decision FROM decisions WHERE stream = $1 AND window_idx = $2 ORDER BY id",
            values![stream, index],
        )?;
        rows.iter()
            .map(|row| parse_json("decision", &row.get::<String>(0)?))
            .collect()
    }

    /// The latest decisions, newest first, of one model or of all.
    pub fn latest_decisions(
        &self,
        model: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Decision>, StoreError> {
        let filter = DecisionFilter {
            model: model.map(str::to_string),
            limit,
            ..DecisionFilter::default()
        };
        Ok(self.decisions(&filter)?.decisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Outcome;
    use crate::store::testing::{self, TestStore};

    /// 2,500 decisions of two policies, one a second, every tenth triggered.
    fn fill(store: &Store) {
        let tx = store.db.transaction().unwrap();
        for i in 0..2500u64 {
            let outcome = if i % 10 == 0 {
                Outcome::Triggered
            } else {
                Outcome::NotTriggered
            };
            let policy = if i % 2 == 0 { "even" } else { "odd" };
            let decision = Decision {
                key: format!("{policy}/m/s/{i}"),
                policy: policy.into(),
                model: "m".into(),
                dag: None,
                stream: "s".into(),
                window: i,
                at_ms: i as i64 * 1000,
                outcome,
                reason: String::new(),
                span: Default::default(),
                drifted_features: vec![],
                signals: vec![],
            };
            tx.execute(
                "INSERT INTO decisions
                 (key, policy, model, stream, window_idx, outcome, decision, at_ms, created_at)
                 VALUES ($1, $2, 'm', 's', $3, $4, $5, $6, 0)",
                values![
                    &decision.key,
                    policy,
                    i,
                    outcome.as_str(),
                    serde_json::to_string(&decision).unwrap(),
                    decision.at_ms
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn issue_14_pages_beyond_a_thousand_with_a_cursor_never_repeat_or_skip() {
        for TestStore { store, name, .. } in testing::stores() {
            fill(&store);
            let mut filter = DecisionFilter {
                limit: 1000,
                ..DecisionFilter::default()
            };
            let mut windows = Vec::new();
            let mut pages = 0;
            loop {
                let page = store.decisions(&filter).unwrap();
                pages += 1;
                windows.extend(page.decisions.iter().map(|d| d.window));
                match page.next_cursor {
                    Some(cursor) => filter.cursor = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(pages, 3, "{name}");
            let expected: Vec<u64> = (0..2500).rev().collect();
            assert_eq!(windows, expected, "{name}");
        }
    }

    #[test]
    fn issue_14_filters_by_outcome_policy_and_time() {
        for TestStore { store, name, .. } in testing::stores() {
            fill(&store);
            let page = store
                .decisions(&DecisionFilter {
                    outcome: Some("triggered".into()),
                    policy: Some("even".into()),
                    from_ms: Some(100_000),
                    to_ms: Some(200_000),
                    limit: 1000,
                    ..DecisionFilter::default()
                })
                .unwrap();
            let windows: Vec<u64> = page.decisions.iter().map(|d| d.window).collect();
            let expected: Vec<u64> = (100..200).rev().filter(|i| i % 10 == 0).collect();
            assert_eq!(windows, expected, "{name}");
            assert_eq!(page.next_cursor, None);
            let none = DecisionFilter {
                model: Some("other".into()),
                limit: 10,
                ..DecisionFilter::default()
            };
            assert!(store.decisions(&none).unwrap().decisions.is_empty());
        }
    }
}
