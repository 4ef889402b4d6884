//! The alert outbox: alerts and their per-sink deliveries.

use serde::Serialize;
use std::collections::BTreeMap;

use super::db::{values, Row, Sql};
use super::windows::parse_json;
use super::{now_ms, Store, StoreError};
use crate::alert::{Alert, Routed};

/// A delivery waiting for its sink's worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The delivery's row id (its place in the sink's order).
    pub id: i64,
    /// The alert.
    pub alert: Alert,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time, epoch milliseconds.
    pub next_attempt_ms: i64,
    /// When the alert was raised, epoch milliseconds.
    pub created_ms: i64,
}

/// One alert and its delivery to one sink, as `/api/v1/alerts` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertStatus {
    /// The alert's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its model.
    pub model: Option<String>,
    /// The sink (`None`: no sink takes this alert).
    pub sink: Option<String>,
    /// `pending`, `delivered`, `dead`, or `unrouted` (no sink takes it).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was raised, epoch milliseconds.
    pub created_at: i64,
    /// When the next attempt is due (pending) , epoch milliseconds.
    pub next_attempt_at: Option<i64>,
    /// When it was delivered, epoch milliseconds.
    pub delivered_at: Option<i64>,
    /// The alert document.
    pub alert: serde_json::Value,
}

pub(super) fn insert(tx: &impl Sql, alerts: &[Routed], now: i64) -> Result<(), StoreError> {
    for routed in alerts {
        let alert = &routed.alert;
        let inserted = tx.execute(
            "INSERT INTO alerts (id, kind, model, document, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            values![
                &alert.id,
                alert.kind.as_str(),
                &alert.model,
                serde_json::to_string(alert).expect("alerts serialise"),
                now
            ],
        )?;
        if inserted == 0 {
            // The same event again (a replayed window): it was already queued once.
            continue;
        }
        for sink in &routed.sinks {
            tx.execute(
                "INSERT INTO deliveries (alert_id, sink, status, next_attempt_at)
                 VALUES ($1, $2, 'pending', $3) ON CONFLICT DO NOTHING",
                values![&alert.id, sink, now],
            )?;
        }
    }
    Ok(())
}

impl Store {
    /// Puts alerts in the outbox (those not raised with a window, e.g. a refused reload).
    pub fn enqueue_alerts(&mut self, alerts: &[Routed]) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        insert(&tx, alerts, now_ms())?;
        tx.commit()
    }

    /// The sink's oldest pending delivery: the only one its worker may send (order).
    /// When instances share the store, only the one holding the sink's lease gets any.
    pub fn next_delivery(&self, sink: &str) -> Result<Option<Delivery>, StoreError> {
        if !self.lease(&format!("sink:{sink}"))? {
            return Ok(None);
        }
        let row = self.db.query_opt(
            "SELECT d.id, d.attempts, d.next_attempt_at, a.document, a.created_at
             FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             WHERE d.sink = $1 AND d.status = 'pending' ORDER BY d.id LIMIT 1",
            values![sink],
        )?;
        row.map(|row| {
            Ok(Delivery {
                id: row.get(0)?,
                attempts: row.get(1)?,
                next_attempt_ms: row.get(2)?,
                alert: parse_json("alert", &row.get::<String>(3)?)?,
                created_ms: row.get(4)?,
            })
        })
        .transpose()
    }

    /// Marks a delivery done: it is never sent again.
    pub fn delivered(&self, id: i64, attempts: u32) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE deliveries SET status = 'delivered', attempts = $2, delivered_at = $3,
             last_error = NULL WHERE id = $1",
            values![id, attempts, now_ms()],
        )?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub fn retry_later(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_error = $4
             WHERE id = $1",
            values![id, attempts, next_attempt_ms, crate::redact::secrets(error)],
        )?;
        Ok(())
    }

    /// Gives a delivery up.
    pub fn dead(&self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE deliveries SET status = 'dead', attempts = $2, last_error = $3 WHERE id = $1",
            values![id, attempts, crate::redact::secrets(error)],
        )?;
        Ok(())
    }

    /// Pending deliveries per sink.
    pub fn pending_alerts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self.db.query(
            "SELECT sink, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY sink",
            &[],
        )?;
        rows.iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
    }

    /// Deliveries per status (`unrouted`: alerts no sink takes), optionally of one sink.
    pub fn alert_counts(
        &self,
        sink: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let rows = self.db.query(
            "SELECT COALESCE(d.status, 'unrouted'), COUNT(*)
             FROM alerts a LEFT JOIN deliveries d ON d.alert_id = a.id
             WHERE (CAST($1 AS TEXT) IS NULL OR d.sink = $1) GROUP BY 1",
            values![sink],
        )?;
        let mut counts: std::collections::BTreeMap<String, u64> =
            ["pending", "delivered", "dead", "unrouted"]
                .into_iter()
                .map(|s| (s.to_string(), 0))
                .collect();
        for row in rows {
            counts.insert(row.get(0)?, row.get(1)?);
        }
        Ok(counts)
    }

    /// Deliveries per sink and status; alerts no sink took are under the empty sink name.
    pub fn alert_counts_by_sink(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, u64>>, StoreError> {
        let rows = self.db.query(
            "SELECT COALESCE(d.sink, ''), COALESCE(d.status, 'unrouted'), COUNT(*)
             FROM alerts a LEFT JOIN deliveries d ON d.alert_id = a.id GROUP BY 1, 2",
            values![],
        )?;
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for row in rows {
            let sink: String = row.get(0)?;
            counts
                .entry(sink)
                .or_default()
                .insert(row.get(1)?, row.get(2)?);
        }
        Ok(counts)
    }

    /// Alerts with their deliveries, newest first, filtered by delivery status and sink.
    pub fn alert_statuses(
        &self,
        status: Option<&str>,
        sink: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertStatus>, StoreError> {
        let rows = self.db.query(
            "SELECT a.id, a.kind, a.model, d.sink, COALESCE(d.status, 'unrouted'),
                    COALESCE(d.attempts, 0), d.last_error, a.created_at,
                    CASE WHEN d.status = 'pending' THEN d.next_attempt_at END, d.delivered_at,
                    a.document
             FROM alerts a LEFT JOIN deliveries d ON d.alert_id = a.id
             WHERE (CAST($1 AS TEXT) IS NULL OR COALESCE(d.status, 'unrouted') = $1)
               AND (CAST($2 AS TEXT) IS NULL OR d.sink = $2)
             ORDER BY a.created_at DESC, a.rowid DESC, d.id DESC LIMIT $3",
            values![status, sink, limit],
        )?;
        rows.iter().map(alert_status).collect()
    }
}

fn alert_status(row: &Row) -> Result<AlertStatus, StoreError> {
    Ok(AlertStatus {
        id: row.get(0)?,
        kind: row.get(1)?,
        model: row.get(2)?,
        sink: row.get(3)?,
        status: row.get(4)?,
        attempts: row.get(5)?,
        last_error: row.get(6)?,
        created_at: row.get(7)?,
        next_attempt_at: row.get(8)?,
        delivered_at: row.get(9)?,
        alert: serde_json::from_str::<serde_json::Value>(&row.get::<String>(10)?)
            .unwrap_or(serde_json::Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{self, TestStore};

    #[test]
    fn an_alert_is_queued_once_per_sink_and_its_deliveries_move_on_both_databases() {
        use crate::alert::{AlertKind, Routed};
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            let alert = crate::alert::blank(AlertKind::RetrainTriggered, "a1".into(), "s".into());
            let routed = Routed {
                alert,
                sinks: vec!["hook".into(), "slack".into()],
            };
            store.enqueue_alerts(std::slice::from_ref(&routed)).unwrap();
            store.enqueue_alerts(std::slice::from_ref(&routed)).unwrap();
            assert_eq!(
                store.pending_alerts().unwrap(),
                vec![("hook".to_string(), 1), ("slack".to_string(), 1)],
                "{name}"
            );
            let delivery = store.next_delivery("hook").unwrap().unwrap();
            assert_eq!(delivery.alert.id, "a1", "{name}");
            store
                .retry_later(delivery.id, 1, 0, "POST http://u:secret@h/x failed")
                .unwrap();
            store.delivered(delivery.id, 2).unwrap();
            let slack = store.next_delivery("slack").unwrap().unwrap();
            store.dead(slack.id, 5, "gone").unwrap();
            assert!(store.next_delivery("hook").unwrap().is_none(), "{name}");
            let counts = store.alert_counts(None).unwrap();
            assert_eq!((counts["delivered"], counts["dead"]), (1, 1), "{name}");
            assert_eq!(store.alert_counts(Some("hook")).unwrap()["delivered"], 1);
            let statuses = store.alert_statuses(Some("dead"), None, 10).unwrap();
            assert_eq!(statuses.len(), 1, "{name}");
            assert_eq!(statuses[0].sink.as_deref(), Some("slack"));
            assert_eq!(statuses[0].attempts, 5);
        }
    }
}
