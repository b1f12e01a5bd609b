//! Registry credentials: one per repository and host, replaced by host, listed without their
//! passwords, opened only for a job, and sealed at rest.

use proto::artifact::{RegistryAuth, RegistryHost};
use sqlx::{Connection, Row};
use store::{Database, NewRegistryCredential, SecretBox, Store, StoreError};

use crate::fixtures::{NOW, repo};
use crate::harness::Location;

store_tests!(registry_credentials_are_kept_per_repository_and_host);
location_tests!(registry_passwords_are_sealed_at_rest_and_bound_to_their_key);

fn credential(host: &str, username: &str, password: &str) -> NewRegistryCredential {
    NewRegistryCredential { host: RegistryHost::parse(host).unwrap(), username: username.into(), password: password.into() }
}

async fn registry_credentials_are_kept_per_repository_and_host(store: Store) {
    let web = repo(&store, "acme/web").await;
    let other = repo(&store, "acme/api").await;
    let written = store.put_registry_credential(web.id, &credential("https://Registry.Example.com/", "ci", "pw-1"), NOW).await.unwrap();
    assert_eq!(
        (written.host.as_str(), written.username.as_str(), written.created, written.updated),
        ("registry.example.com", "ci", NOW, NOW)
    );
    store.put_registry_credential(web.id, &credential("127.0.0.1:5000", "local", "pw-2"), NOW).await.unwrap();
    store.put_registry_credential(web.id, &credential("index.docker.io", "hub-user", "pw-3"), NOW).await.unwrap();
    store.put_registry_credential(other.id, &credential("registry.example.com", "api-ci", "pw-other"), NOW).await.unwrap();

    check(&store, web.id, &[("127.0.0.1:5000", "local", NOW), ("docker.io", "hub-user", NOW), ("registry.example.com", "ci", NOW)]).await;
    assert_eq!(
        store.registry_auths(web.id).await.unwrap(),
        [auth("127.0.0.1:5000", "local", "pw-2"), auth("docker.io", "hub-user", "pw-3"), auth("registry.example.com", "ci", "pw-1")]
    );

    // Replacing by host, under any of its spellings, keeps the created time.
    let replaced = store.put_registry_credential(web.id, &credential("registry.example.com", "ci-2", "pw-4"), NOW + 10).await.unwrap();
    assert_eq!((replaced.created, replaced.updated, replaced.username.as_str()), (NOW, NOW + 10, "ci-2"));
    assert_eq!(store.registry_auths(web.id).await.unwrap()[2], auth("registry.example.com", "ci-2", "pw-4"));
    check(&store, other.id, &[("registry.example.com", "api-ci", NOW)]).await;

    assert!(store.delete_registry_credential(web.id, &RegistryHost::parse("https://index.docker.io/v1/").unwrap()).await.unwrap());
    assert!(!store.delete_registry_credential(web.id, &RegistryHost::parse("docker.io").unwrap()).await.unwrap());
    check(&store, web.id, &[("127.0.0.1:5000", "local", NOW), ("registry.example.com", "ci-2", NOW + 10)]).await;
    assert_eq!(store.registry_auths(other.id).await.unwrap(), [auth("registry.example.com", "api-ci", "pw-other")]);

    let missing = store.put_registry_credential(other.id + 100, &credential("ghcr.io", "u", "p"), NOW).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    // A repository's credentials go with it.
    store.delete_repo(web.id).await.unwrap();
    assert!(store.registry_auths(web.id).await.unwrap().is_empty());
}

async fn registry_passwords_are_sealed_at_rest_and_bound_to_their_key(location: Location) {
    let store = location.open().await;
    let web = repo(&store, "acme/web").await;
    store.put_registry_credential(web.id, &credential("ghcr.io", "ci", "plain-registry-password"), NOW).await.unwrap();
    for bytes in raw_passwords(&location.database).await {
        assert!(!String::from_utf8_lossy(&bytes).contains("plain-registry-password"), "a registry password is stored in clear");
    }
    store.close().await;

    let other_key = Store::open(&location.database, &location.data_dir, SecretBox::from_key([7; 32])).await.unwrap();
    match other_key.registry_auths(web.id).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("ghcr.io") && !message.contains("plain-registry-password"), "{message}");
        }
        other => panic!("a password sealed with another key opened: {other:?}"),
    }
    // Listing needs no key: it has no passwords.
    assert_eq!(other_key.list_registry_credentials(web.id).await.unwrap().len(), 1);
    other_key.close().await;
}

fn auth(host: &str, username: &str, password: &str) -> RegistryAuth {
    RegistryAuth { host: host.into(), username: username.into(), password: password.into() }
}

/// The repository's credentials by host: (host, username, updated).
async fn check(store: &Store, repo_id: i64, expected: &[(&str, &str, i64)]) {
    let listed = store.list_registry_credentials(repo_id).await.unwrap();
    let found: Vec<(&str, &str, i64)> =
        listed.iter().map(|record| (record.host.as_str(), record.username.as_str(), record.updated)).collect();
    assert_eq!(found, expected);
    assert!(listed.iter().all(|record| record.repo_id == repo_id));
}

/// The stored password column of every row, read around the store.
async fn raw_passwords(database: &Database) -> Vec<Vec<u8>> {
    let sql = "SELECT password FROM registry_credentials";
    let rows = match database {
        Database::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            rows.iter().map(|row| row.get::<Vec<u8>, _>(0)).collect::<Vec<_>>()
        }
        Database::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            rows.iter().map(|row| row.get::<Vec<u8>, _>(0)).collect::<Vec<_>>()
        }
    };
    assert!(!rows.is_empty());
    rows
}
