//! The stores every store test runs against: a SQLite file and, when `DRIFTGATE_TEST_POSTGRES`
//! names a PostgreSQL server (`postgres://USER@HOST:PORT`, as `scripts/test.sh` sets it), a
//! fresh database on it. Under CI a missing server fails the test instead of narrowing it.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{PostgresSettings, Store, StoreUrl};

/// A store under test and what keeps it alive (the SQLite file's directory).
pub(crate) struct TestStore {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The store.
    pub store: Store,
    _dir: tempfile::TempDir,
}

/// A SQLite store and, when a server is given, a PostgreSQL one.
pub(crate) fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("s.db"));
    let mut stores = vec![TestStore {
        name: "sqlite",
        store: Store::open(&url).unwrap(),
        _dir: dir,
    }];
    if let Some(url) = postgres_database() {
        stores.push(TestStore {
            name: "postgres",
            store: Store::open(&url).unwrap(),
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    stores
}

/// A new, empty database on the test server.
pub(crate) fn postgres_database() -> Option<StoreUrl> {
    let Ok(server) = std::env::var("DRIFTGATE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DRIFTGATE_TEST_POSTGRES is not set under CI: run the tests through scripts/test.sh"
        );
        eprintln!("DRIFTGATE_TEST_POSTGRES is not set: PostgreSQL store tests not run");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "unit_{}_{}_{}",
        std::process::id(),
        super::now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .expect("the test PostgreSQL server answers");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Some(StoreUrl::Postgres {
        url: format!("{server}/{name}"),
        settings: PostgresSettings::default(),
    })
}
