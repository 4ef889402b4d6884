//! What `driftgate store check` prints: the instances sharing the store, who owns which
//! partition, and the work waiting.

use super::db::{values, Sql};
use super::{now_ms, Store, StoreError};

impl Store {
    /// Lines describing the store's shared state, for operators.
    pub fn summary(&self) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut lines = Vec::new();
        for row in self.db.query(
            "SELECT name, owner, epoch, lease_until FROM lineages ORDER BY name",
            &[],
        )? {
            let (name, owner, epoch, until): (String, String, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let state = if until >= now {
                "live"
            } else {
                "lease expired"
            };
            lines.push(format!(
                "instance {name}: {state}, epoch {epoch}, held by {owner}"
            ));
        }
        for row in self.db.query(
            "SELECT stream, part, lineage, next_offset, watermark FROM partitions
             ORDER BY stream, part",
            &[],
        )? {
            let (stream, part, lineage, next): (String, String, String, Option<i64>) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let next = next.map_or("no offset yet".to_string(), |n| format!("next offset {n}"));
            let watermark = row.get::<Option<i64>>(4)?.map_or(String::new(), |w| {
                format!(", watermark {}", crate::pipeline::rfc3339(w))
            });
            lines.push(format!(
                "partition {part} of {stream}: instance {lineage}, {next}{watermark}"
            ));
        }
        for row in self.db.query(
            "SELECT stream, owner, epoch, lease_until, next_index,
               (SELECT COUNT(*) FROM window_parts p WHERE p.stream = m.stream)
             FROM stream_mergers m ORDER BY stream",
            &[],
        )? {
            let (stream, owner, epoch, until): (String, String, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let (next, parts): (i64, i64) = (row.get(4)?, row.get(5)?);
            let state = if until >= now {
                "live"
            } else {
                "lease expired"
            };
            lines.push(format!(
                "windows of {stream}: merged by {owner} ({state}, epoch {epoch}), next window {next}, {parts} part(s) waiting"
            ));
        }
        let count = |sql: &str| -> Result<i64, StoreError> {
            self.db
                .query_opt(sql, values![])?
                .map_or(Ok(0), |row| row.get(0))
        };
        lines.push(format!(
            "runs: {} queued, {} running; alert deliveries: {} pending, {} dead",
            count("SELECT COUNT(*) FROM runs WHERE status = 'queued'")?,
            count("SELECT COUNT(*) FROM runs WHERE status = 'running'")?,
            count("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")?,
            count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'")?,
        ));
        Ok(lines)
    }
}
