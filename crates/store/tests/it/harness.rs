//! Runs a test on each database: SQLite in a temporary folder, and PostgreSQL in a database
//! of its own, created through the URL in `GANTRY_TEST_POSTGRES_URL` (what
//! `scripts/postgres-up.sh` prints; its role needs CREATEDB) and dropped when the test ends,
//! whether it passed or not. Without that variable the PostgreSQL variants fail, saying what to
//! do, unless `GANTRY_TEST_SKIP_POSTGRES=1` makes them pass without running.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, Executor};
use store::{Database, Store};

pub(crate) const POSTGRES_URL_VARIABLE: &str = "GANTRY_TEST_POSTGRES_URL";
pub(crate) const SKIP_POSTGRES_VARIABLE: &str = "GANTRY_TEST_SKIP_POSTGRES";

#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's store lives; a test may open it more than once (a restart).
pub(crate) struct Location {
    pub database: Database,
    pub data_dir: PathBuf,
}

impl Location {
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.database, &self.data_dir, test_sealer()).await.expect("the store opens")
    }
}

/// The key every test store seals credentials with.
pub(crate) fn test_sealer() -> store::SecretBox {
    store::SecretBox::from_key([42; 32])
}

/// `store_tests!(a, b)` makes `mod a { fn sqlite(); fn postgres() }` running `async fn a(store: Store)`.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::harness::run(crate::harness::Backend::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::harness::run(crate::harness::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

/// `location_tests!(a)`: the same, for `async fn a(location: Location)` tests that open the store
/// themselves.
macro_rules! location_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::harness::run_at(crate::harness::Backend::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::harness::run_at(crate::harness::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

/// Runs `test` on a fresh, migrated store of `backend`.
pub(crate) async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_at(backend, |location: Location| async move {
        let store = location.open().await;
        test(store.clone()).await;
        store.close().await;
    })
    .await;
}

/// Runs `test` with a fresh location of `backend`, removed afterwards.
pub(crate) async fn run_at<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Location) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let data_dir = tempfile::tempdir().expect("a temporary folder");
    match backend {
        Backend::Sqlite => {
            let database = Database::Sqlite(data_dir.path().join("gantry.db"));
            test(Location { database, data_dir: data_dir.path().to_owned() }).await;
        }
        Backend::Postgres => {
            let Some(admin_url) = postgres_url() else {
                return;
            };
            let database = TestDatabase::create(&admin_url).await;
            let location = Location { database: Database::Postgres(database.url.clone()), data_dir: data_dir.path().to_owned() };
            // On a task of its own so that a failing test still drops its database.
            let outcome = tokio::spawn(test(location)).await;
            database.drop(&admin_url).await;
            if let Err(error) = outcome {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

/// The URL the tests reach PostgreSQL with; `None` when they are told to skip it.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var(SKIP_POSTGRES_VARIABLE).is_ok_and(|value| value == "1") => {
            eprintln!("skipped: {SKIP_POSTGRES_VARIABLE}=1");
            None
        }
        _ => panic!(
            "{POSTGRES_URL_VARIABLE} is not set: run scripts/postgres-up.sh (as root) and export the URL it prints, \
             e.g. `export {POSTGRES_URL_VARIABLE}=$(scripts/postgres-up.sh | tail -n 1)`; \
             or set {SKIP_POSTGRES_VARIABLE}=1 to skip the PostgreSQL variants"
        ),
    }
}

struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!("gantry_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = connect(admin_url).await;
        admin.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.unwrap_or_else(|error| {
            panic!("cannot create the test database {name} through {POSTGRES_URL_VARIABLE} (its role needs CREATEDB): {error}")
        });
        admin.close().await.ok();
        let url = with_database(admin_url, &name);
        TestDatabase { name, url }
    }

    async fn drop(self, admin_url: &str) {
        let mut admin = connect(admin_url).await;
        if let Err(error) = admin.execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))).await {
            eprintln!("cannot drop the test database {}: {error}", self.name);
        }
        admin.close().await.ok();
    }
}

async fn connect(admin_url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {POSTGRES_URL_VARIABLE} (is PostgreSQL up? run scripts/postgres-up.sh): {error}"))
}

/// `url` naming another database.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[test]
fn test_database_urls() {
    assert_eq!(with_database("postgres://u:p@127.0.0.1:5432/gantry_test", "x"), "postgres://u:p@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u:p@127.0.0.1:5432", "x"), "postgres://u:p@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://127.0.0.1/db?sslmode=disable", "x"), "postgres://127.0.0.1/x?sslmode=disable");
}
