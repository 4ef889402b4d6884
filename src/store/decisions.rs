//! Reading policy decisions back: by model, policy, outcome and decision time, newest first,
//! a page at a time.
//!
//! A page ends with a cursor when more decisions match; passing it back continues just after
//! the page's last decision. Cursors are row ids, so a page never repeats or skips a decision
//! while new ones are written (they have larger ids and appear on the first page only).

use rusqlite::params;

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
        let mut statement = self.conn.prepare_cached(
            "SELECT id, decision FROM decisions
             WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR policy = ?2)
               AND (?3 IS NULL OR outcome = ?3)
               AND (?4 IS NULL OR json_extract(decision, '$.at_ms') >= ?4)
               AND (?5 IS NULL OR json_extract(decision, '$.at_ms') < ?5)
               AND (?6 IS NULL OR id < ?6)
             ORDER BY id DESC LIMIT ?7",
        )?;
        let rows = statement.query_map(
            params![
                filter.model,
                filter.policy,
                filter.outcome,
                filter.from_ms,
                filter.to_ms,
                filter.cursor,
                filter.limit.saturating_add(1) as i64
            ],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )?;
        let mut decisions = Vec::new();
        let mut next_cursor = None;
        let mut last_id = None;
        for row in rows {
            let (id, text) = row?;
            if decisions.len() as u64 == filter.limit {
                next_cursor = last_id;
                break;
            }
            decisions.push(
                serde_json::from_str(&text).map_err(|e| StoreError::Damaged {
                    what: "decision",
                    message: e.to_string(),
                })?,
            );
            last_id = Some(id);
        }
        Ok(DecisionPage {
            decisions,
            next_cursor,
        })
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

    /// 2,500 decisions of two policies, one a second, every tenth triggered.
    fn filled() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let tx = store.conn.transaction().unwrap();
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
                "INSERT INTO decisions (key, policy, model, stream, window_idx, outcome, decision, created_at)
                 VALUES (?1, ?2, 'm', 's', ?3, ?4, ?5, 0)",
                params![decision.key, policy, i as i64, outcome.as_str(), serde_json::to_string(&decision).unwrap()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        (dir, store)
    }

    #[test]
    fn issue_14_pages_beyond_a_thousand_with_a_cursor_never_repeat_or_skip() {
        let (_dir, store) = filled();
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
        assert_eq!(pages, 3);
        let expected: Vec<u64> = (0..2500).rev().collect();
        assert_eq!(windows, expected);
    }

    #[test]
    fn issue_14_filters_by_outcome_policy_and_time() {
        let (_dir, store) = filled();
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
        assert_eq!(windows, expected);
        assert_eq!(page.next_cursor, None);
        let none = DecisionFilter {
            model: Some("other".into()),
            limit: 10,
            ..DecisionFilter::default()
        };
        assert!(store.decisions(&none).unwrap().decisions.is_empty());
    }
}
