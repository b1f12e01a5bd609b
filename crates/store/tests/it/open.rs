//! Opening a store: SQLite files made in WAL mode, migrations run once, data kept across
//! restarts, errors that name the database without its password.

use sqlx::{Connection, Row};
use store::{Database, Store, StoreError};

use crate::fixtures::NOW;
use crate::harness::Location;

location_tests!(a_reopened_store_keeps_its_data);

async fn a_reopened_store_keeps_its_data(location: Location) {
    let store = location.open().await;
    store.ping().await.unwrap();
    let expected_kind = match location.database {
        Database::Sqlite(_) => "sqlite",
        Database::Postgres(_) => "postgres",
    };
    assert_eq!(store.kind(), expected_kind);
    let alice = store.create_user("alice", "hash", true, NOW).await.unwrap();
    store.close().await;

    // Migrations already applied are not applied again.
    let reopened = location.open().await;
    assert_eq!(reopened.user_by_login("alice").await.unwrap(), Some(alice));
    assert!(reopened.logs().path_of(1).starts_with(location.data_dir.join("logs")));
    reopened.close().await;
}

#[tokio::test]
async fn sqlite_files_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not yet/there ?#%41%/gantry.db");
    let store = Store::open(&Database::Sqlite(path.clone()), dir.path(), crate::harness::test_sealer()).await.unwrap();
    store.ping().await.unwrap();
    assert!(path.exists());
    assert!(dir.path().join("logs").is_dir());

    let mut connection = sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(&path)).await.unwrap();
    let row = sqlx::query("PRAGMA journal_mode").fetch_one(&mut connection).await.unwrap();
    assert_eq!(row.get::<String, _>(0), "wal");
    connection.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn sqlite_connections_wait_for_each_other_and_enforce_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Database::Sqlite(dir.path().join("gantry.db")), dir.path(), crate::harness::test_sealer()).await.unwrap();
    // Many writers at once: each waits for the write lock instead of failing with "database is locked".
    let tasks: Vec<_> = (0..32)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move { store.create_user(&format!("user-{index}"), "hash", false, NOW).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.list_users().await.unwrap().len(), 32);
    assert!(matches!(store.set_member(1_000, 1, "read").await, Err(StoreError::NotFound { .. })));
    store.close().await;
}

#[tokio::test]
async fn a_refused_postgres_login_is_an_open_error_without_the_password() {
    let Some(url) = crate::harness::postgres_url() else {
        return;
    };
    // The test server's URL with a wrong password: refused at once (an unreachable server
    // would be retried for the pool's acquire timeout).
    let Some((user_end, host_start)) = url.find("://").and_then(|scheme| {
        let authority = &url[scheme + 3..];
        let at = authority.find('@')?;
        let colon = authority[..at].find(':').unwrap_or(at);
        Some((scheme + 3 + colon, scheme + 3 + at))
    }) else {
        panic!("{url} names no user");
    };
    let wrong = format!("{}:hunter2{}", &url[..user_end], &url[host_start..]);
    let dir = tempfile::tempdir().unwrap();
    match Store::open(&Database::Postgres(wrong), dir.path(), crate::harness::test_sealer()).await {
        Err(error @ StoreError::Open { .. }) => {
            let message = error.to_string();
            assert!(message.contains(":***@") && !message.contains("hunter2"), "{message}");
        }
        Err(other) => panic!("expected an open error, got {other}"),
        Ok(_) => panic!("the password hunter2 must be refused"),
    }
}
