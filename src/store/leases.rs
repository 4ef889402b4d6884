//! Work that exactly one live instance does at a time when instances share a store: a sink's
//! deliveries (in order) and each run. A connection that acts for a process takes such work
//! under a lease named after it (`sink:NAME`, `run:ID`); the process's heartbeat renews all its
//! leases, and what a dead process held is free once they expire. Without a holder (one
//! instance, SQLite), every lease is granted.

use super::db::{values, Sql};
use super::{now_ms, RunRecord, Store, StoreError};

/// The process a connection acts for, and how long its leases last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The process (as in [`super::Fence::owner`]).
    pub owner: String,
    /// Lease length, milliseconds.
    pub lease_ms: i64,
}

impl Store {
    /// Makes this connection take shared work for `holder`.
    pub fn act_for(&mut self, holder: Holder) {
        self.holder = Some(holder);
    }

    /// Takes or renews the lease `name`: true when this connection's process holds it now.
    pub fn lease(&self, name: &str) -> Result<bool, StoreError> {
        let Some(holder) = &self.holder else {
            return Ok(true);
        };
        let now = now_ms();
        let row = self.db.query_opt(
            "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leases.owner = excluded.owner OR leases.until < $4
             RETURNING owner",
            values![name, &holder.owner, now + holder.lease_ms, now],
        )?;
        Ok(row.is_some())
    }

    /// Gives the lease `name` up (the work is done).
    pub fn release(&self, name: &str) -> Result<(), StoreError> {
        if let Some(holder) = &self.holder {
            self.db.execute(
                "DELETE FROM leases WHERE name = $1 AND owner = $2",
                values![name, &holder.owner],
            )?;
        }
        Ok(())
    }

    /// Renews every lease `owner` holds (the heartbeat).
    pub fn renew_leases(&self, owner: &str, lease_ms: i64) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE leases SET until = $1 WHERE owner = $2",
            values![now_ms() + lease_ms, owner],
        )?;
        Ok(())
    }

    /// Runs marked running whose process is gone (no live lease): interrupted, to be run again
    /// by whoever takes their lease.
    pub fn orphaned_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(
            "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM leases
               WHERE leases.name = 'run:' || runs.id AND leases.until >= $1)
             ORDER BY created_at, rowid",
            values![now_ms()],
        )
    }

    /// Whether a run of `model` other than `run` is running (on any instance).
    pub fn model_running(&self, model: &str, run: &str) -> Result<bool, StoreError> {
        let row = self.db.query_opt(
            "SELECT id FROM runs WHERE model = $1 AND status = 'running' AND id <> $2 LIMIT 1",
            values![model, run],
        )?;
        Ok(row.is_some())
    }

    /// The process this connection acts for, if any.
    pub fn holder(&self) -> Option<&Holder> {
        self.holder.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{self, TestStore};

    fn holder(owner: &str, lease_ms: i64) -> Holder {
        Holder {
            owner: owner.into(),
            lease_ms,
        }
    }

    #[test]
    fn issue_16_one_process_holds_a_lease_until_it_expires_or_is_released() {
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            assert!(store.lease("sink:hook").unwrap(), "{name}: alone, always");
            store.act_for(holder("a", 60_000));
            assert!(store.lease("sink:hook").unwrap(), "{name}");
            assert!(store.lease("sink:hook").unwrap(), "{name}: renewed");
            let mut other = store_like(&store, name);
            other.act_for(holder("b", 60_000));
            assert!(!other.lease("sink:hook").unwrap(), "{name}: held by a");
            store.release("sink:hook").unwrap();
            assert!(other.lease("sink:hook").unwrap(), "{name}: released");
            // b's lease runs out (it stopped renewing): a takes it.
            other.act_for(holder("b", -1));
            assert!(other.lease("run:r1").unwrap(), "{name}");
            assert!(store.lease("run:r1").unwrap(), "{name}: expired");
            store.renew_leases("a", 60_000).unwrap();
            assert!(!other.lease("run:r1").unwrap(), "{name}");
        }
    }

    /// Another connection to the same database.
    fn store_like(store: &Store, name: &str) -> Store {
        match &store.db {
            crate::store::db::Db::Sqlite(conn) => {
                Store::open(&crate::store::StoreUrl::sqlite(conn.path().unwrap())).unwrap()
            }
            crate::store::db::Db::Postgres(_) => {
                let url = std::env::var("DRIFTGATE_TEST_POSTGRES").unwrap();
                let row = store
                    .db
                    .query_opt("SELECT current_database()", &[])
                    .unwrap();
                let db: String = row.unwrap().get(0).unwrap();
                assert_eq!(name, "postgres");
                Store::open(&crate::store::StoreUrl::Postgres {
                    url: format!("{url}/{db}"),
                    settings: Default::default(),
                })
                .unwrap()
            }
        }
    }
}
