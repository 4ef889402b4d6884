//! The API's connections to the store: a bounded pool (r2d2) of ordinary connections, opened
//! when first needed and kept for the next request, instead of one connection (and, on
//! PostgreSQL, one TLS handshake and login) per request.

use std::time::Duration;

use super::{Store, StoreError, StoreUrl};

/// A pool of store connections; cheap to clone (the clones share it).
#[derive(Clone)]
pub struct Pool {
    pool: r2d2::Pool<Manager>,
    url: StoreUrl,
}

/// A connection taken from the pool; it goes back when dropped.
pub type Pooled = r2d2::PooledConnection<Manager>;

/// Opens connections for the pool.
#[derive(Debug)]
pub struct Manager {
    url: StoreUrl,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Store;
    type Error = StoreError;

    fn connect(&self) -> Result<Store, StoreError> {
        Store::open_read_only(&self.url)
    }

    fn is_valid(&self, store: &mut Store) -> Result<(), StoreError> {
        store.reachable()
    }

    /// A broken PostgreSQL connection mends itself on its next use (see `db::Pg`).
    fn has_broken(&self, _: &mut Store) -> bool {
        false
    }
}

/// Logs the pool's failures to connect, once each, with the password masked.
#[derive(Debug)]
struct Logged;

impl r2d2::HandleError<StoreError> for Logged {
    fn handle_error(&self, error: StoreError) {
        tracing::warn!(error = %crate::redact::secrets(&error.to_string()), "the API cannot connect to the store");
    }
}

impl Pool {
    /// At most `size` connections to `url`, opened when needed and closed after a minute
    /// unused; a request waits for one up to the store's `connect_timeout` (5 s for SQLite).
    pub fn new(url: &StoreUrl, size: u32) -> Pool {
        let wait = match url {
            StoreUrl::Postgres { settings, .. } => settings.connect_timeout,
            StoreUrl::Sqlite(_) => Duration::from_secs(5),
        };
        let pool = r2d2::Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            .idle_timeout(Some(Duration::from_secs(60)))
            .connection_timeout(wait.max(Duration::from_millis(100)))
            // A connection mends itself on use; checking it first would cost a round trip.
            .test_on_check_out(false)
            .error_handler(Box::new(Logged))
            .build_unchecked(Manager { url: url.clone() });
        Pool {
            pool,
            url: url.clone(),
        }
    }

    /// A connection, or why none could be had in time.
    pub fn get(&self) -> Result<Pooled, StoreError> {
        self.pool
            .get()
            .map_err(|err| StoreError::Unreachable(err.to_string()))
    }

    /// Whether the store answers, for readiness: a pooled connection to PostgreSQL; a new
    /// one to SQLite, so that a file moved or made unreadable shows (a pooled connection keeps
    /// the file it opened).
    pub fn reachable(&self) -> Result<(), StoreError> {
        match &self.url {
            StoreUrl::Sqlite(_) => Store::open_read_only(&self.url)?.reachable(),
            StoreUrl::Postgres { .. } => self.get()?.reachable(),
        }
    }

    /// Where the connections go.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::postgres_database;

    fn backends(admin: &mut postgres::Client, database: &str) -> i64 {
        admin
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .unwrap()
            .get(0)
    }

    #[test]
    fn issue_16_the_api_pool_reuses_at_most_its_size_and_mends_broken_connections() {
        let Some(StoreUrl::Postgres { url, mut settings }) = postgres_database() else {
            return;
        };
        settings.connect_timeout = Duration::from_millis(300);
        let (server, database) = url.rsplit_once('/').unwrap();
        let (server, database) = (server.to_string(), database.to_string());
        let mut admin =
            postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).unwrap();
        let pool = Pool::new(&StoreUrl::Postgres { url, settings }, 2);
        for _ in 0..5 {
            pool.get().unwrap().reachable().unwrap();
        }
        assert_eq!(backends(&mut admin, &database), 1, "one connection, reused");
        let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
        let third = pool.get().err().expect("a third waits, then gives up");
        assert!(third.is_unavailable(), "{third}");
        assert_eq!(backends(&mut admin, &database), 2);
        drop((a, b));

        // The server ends every connection (a restart, a failover): the next use connects again.
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .unwrap();
        let store = pool.get().unwrap();
        let broken = store.reachable();
        let mended = store.reachable();
        assert!(
            broken.is_ok() || broken.as_ref().is_err_and(StoreError::is_unavailable),
            "{broken:?}"
        );
        mended.unwrap();
    }
}
