//! Environments and what their deployers reported: a deployment goes from `running` to its
//! outcome once and never back, redeliveries change nothing, applications show their latest
//! success, latest outcome and drift, and signing secrets are sealed at rest.

use proto::delivery::{DeploymentKind, DeploymentOutcome, DeploymentRecord};
use sqlx::{Connection, Row};
use store::{Database, DeploymentChange, SecretBox, Store, StoreError};

use crate::fixtures::NOW;
use crate::harness::Location;

store_tests!(
    environments_are_listed_with_what_they_reported_and_removed_with_it,
    a_deployment_goes_from_running_to_its_outcome_once_and_never_back,
    applications_show_their_latest_success_latest_outcome_and_drift,
);
location_tests!(signing_secrets_are_sealed_at_rest_and_bound_to_their_environment);

/// A deployment of `app` started at `NOW + started` (ms), running.
fn started(environment: &str, id: &str, app: &str, started: u64, image: &str) -> DeploymentRecord {
    DeploymentRecord {
        id: id.to_owned(),
        environment: environment.to_owned(),
        app: app.to_owned(),
        kind: DeploymentKind::Update,
        from_image: Some("registry.example.com/web:1".to_owned()),
        to_image: Some(image.to_owned()),
        from_revision: Some("1111111".to_owned()),
        revision: "2222222".to_owned(),
        author: "Ada <ada@example.com>".to_owned(),
        started_at: NOW as u64 + started,
        finished_at: None,
        outcome: DeploymentOutcome::Running,
        reason: None,
    }
}

/// `record` ended with `outcome` a second after it started.
fn ended(record: &DeploymentRecord, outcome: DeploymentOutcome) -> DeploymentRecord {
    let reason = (outcome != DeploymentOutcome::Succeeded).then(|| "did not become healthy".to_owned());
    DeploymentRecord { finished_at: Some(record.started_at + 1000), outcome, reason, ..record.clone() }
}

async fn environments_are_listed_with_what_they_reported_and_removed_with_it(store: Store) {
    let production = store.create_environment("production", "secret-1", NOW).await.unwrap();
    assert_eq!((production.name.as_str(), production.created, production.last_event), ("production", NOW, None));
    assert_eq!((production.deployments, production.apps), (0, 0));
    let staging = store.create_environment("staging", "secret-2", NOW + 1).await.unwrap();
    assert!(matches!(store.create_environment("production", "other", NOW).await, Err(StoreError::Conflict { .. })));

    for (id, app) in [("d1", "web"), ("d2", "web"), ("d3", "api")] {
        store.record_deployment(production.id, &started("production", id, app, 0, "web:2"), Some("web-team"), NOW).await.unwrap();
    }
    store.record_drift(production.id, "worker", None, &["0 of 1 running".to_owned()], NOW, NOW).await.unwrap();
    store.record_deployment(staging.id, &started("staging", "d1", "web", 0, "web:2"), None, NOW).await.unwrap();
    store.touch_environment(production.id, NOW + 50).await.unwrap();
    store.touch_environment(production.id, NOW + 10).await.unwrap();

    let listed = store.list_environments().await.unwrap();
    let summary: Vec<(&str, i64, i64, Option<i64>)> =
        listed.iter().map(|record| (record.name.as_str(), record.deployments, record.apps, record.last_event)).collect();
    assert_eq!(summary, [("production", 3, 3, Some(NOW + 50)), ("staging", 1, 1, None)], "the last event never goes back");

    assert!(store.delete_environment("production").await.unwrap());
    assert!(!store.delete_environment("production").await.unwrap());
    assert!(store.environment_by_name("production").await.unwrap().is_none());
    assert!(store.deployments(production.id, None, 10).await.unwrap().is_empty(), "its deployments went with it");
    assert!(store.environment_apps(production.id).await.unwrap().is_empty(), "and its drift");
    assert_eq!(store.deployments(staging.id, None, 10).await.unwrap().len(), 1, "another environment keeps its own");
    assert!(!store.replace_environment_secret("production", "new").await.unwrap());
}

async fn a_deployment_goes_from_running_to_its_outcome_once_and_never_back(store: Store) {
    let environment = store.create_environment("production", "secret", NOW).await.unwrap();
    let other = store.create_environment("staging", "secret", NOW).await.unwrap();
    let running = started("production", "d1", "web", 0, "web:2");
    let succeeded = ended(&running, DeploymentOutcome::Succeeded);
    let environment_id = environment.id;
    let record = |record: DeploymentRecord| {
        let store = store.clone();
        async move { store.record_deployment(environment_id, &record, Some("web-team"), NOW).await.unwrap() }
    };
    assert_eq!(record(running.clone()).await, DeploymentChange::Created);
    assert_eq!(record(running.clone()).await, DeploymentChange::Unchanged, "a redelivery");
    assert_eq!(record(succeeded.clone()).await, DeploymentChange::Updated);
    assert_eq!(record(succeeded.clone()).await, DeploymentChange::Unchanged, "a redelivery of the end");
    assert_eq!(record(running.clone()).await, DeploymentChange::Unchanged, "the start arriving late");
    assert_eq!(record(ended(&running, DeploymentOutcome::Failed)).await, DeploymentChange::Unchanged, "a final outcome is final");
    let kept = store.deployments(environment.id, None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].record, succeeded);
    assert_eq!((kept[0].owner_team.as_deref(), kept[0].rolled_back), (Some("web-team"), false));

    // The end arriving first is kept; the start after it changes nothing.
    let late = started("production", "d2", "web", 5000, "web:3");
    let failed = ended(&late, DeploymentOutcome::Failed);
    assert_eq!(record(failed.clone()).await, DeploymentChange::Created);
    assert_eq!(record(late).await, DeploymentChange::Unchanged);
    assert!(store.mark_rolled_back(environment.id, "d2", NOW).await.unwrap());
    assert!(!store.mark_rolled_back(environment.id, "d2", NOW).await.unwrap(), "once");
    assert!(!store.mark_rolled_back(environment.id, "nothing", NOW).await.unwrap());

    // The same id in another environment is another deployment.
    assert_eq!(
        store.record_deployment(other.id, &started("staging", "d1", "web", 0, "web:2"), None, NOW).await.unwrap(),
        DeploymentChange::Created
    );

    let newest_first = store.deployments(environment.id, None, 10).await.unwrap();
    let ids: Vec<(&str, DeploymentOutcome, bool)> =
        newest_first.iter().map(|entry| (entry.record.id.as_str(), entry.record.outcome, entry.rolled_back)).collect();
    assert_eq!(ids, [("d2", DeploymentOutcome::Failed, true), ("d1", DeploymentOutcome::Succeeded, false)]);
    assert_eq!(newest_first[0].record, failed);
    assert_eq!(store.deployments(environment.id, None, 1).await.unwrap().len(), 1);
    assert!(store.deployments(environment.id, Some("api"), 10).await.unwrap().is_empty());
    assert_eq!(store.deployments(environment.id, Some("web"), 10).await.unwrap().len(), 2);
}

async fn applications_show_their_latest_success_latest_outcome_and_drift(store: Store) {
    let environment = store.create_environment("production", "secret", NOW).await.unwrap();
    let environment_id = environment.id;
    let record = |record: DeploymentRecord| {
        let store = store.clone();
        async move { store.record_deployment(environment_id, &record, Some("web-team"), NOW).await.unwrap() }
    };
    let first = started("production", "d1", "web", 0, "web:2");
    record(ended(&first, DeploymentOutcome::Succeeded)).await;
    let second = started("production", "d2", "web", 10_000, "web:3");
    record(ended(&second, DeploymentOutcome::Failed)).await;
    let api = started("production", "d3", "api", 0, "api:1");
    record(api.clone()).await;

    let drift = vec!["1 of 2 running".to_owned()];
    assert!(store.record_drift(environment.id, "web", Some("web-team"), &drift, NOW + 100, NOW).await.unwrap());
    assert!(!store.record_drift(environment.id, "web", Some("web-team"), &drift, NOW + 200, NOW + 100).await.unwrap(), "a redelivery");
    assert!(store.record_drift(environment.id, "web", None, &drift, NOW + 900_000, NOW + 300_000).await.unwrap(), "again, later");
    let other_drift = vec!["0 of 2 running".to_owned()];
    assert!(store.record_drift(environment.id, "web", None, &other_drift, NOW + 900_001, NOW + 300_001).await.unwrap());

    let apps = store.environment_apps(environment.id).await.unwrap();
    let names: Vec<&str> = apps.iter().map(|app| app.app.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    let (api_entry, web) = (&apps[0], &apps[1]);
    assert!(api_entry.current.is_none(), "nothing of api succeeded yet");
    assert_eq!(api_entry.latest.as_ref().map(|entry| entry.record.outcome), Some(DeploymentOutcome::Running));
    assert!(api_entry.drift.is_none());
    assert_eq!(web.current.as_ref().map(|entry| entry.record.id.as_str()), Some("d1"));
    assert_eq!(web.latest.as_ref().map(|entry| (entry.record.id.as_str(), entry.record.outcome)), Some(("d2", DeploymentOutcome::Failed)));
    let latest_drift = web.drift.as_ref().unwrap();
    assert_eq!((latest_drift.drift.as_slice(), latest_drift.received), (other_drift.as_slice(), NOW + 900_001));
}

async fn signing_secrets_are_sealed_at_rest_and_bound_to_their_environment(location: Location) {
    let store = location.open().await;
    let created = store.create_environment("production", "plain-event-secret", NOW).await.unwrap();
    let (record, secret) = store.environment_signing_secret("production").await.unwrap().unwrap();
    assert_eq!((record, secret.as_str()), (created, "plain-event-secret"));
    assert!(store.environment_signing_secret("staging").await.unwrap().is_none());
    for bytes in raw_secrets(&location.database).await {
        assert!(!String::from_utf8_lossy(&bytes).contains("plain-event-secret"), "an environment's secret is stored in clear");
    }
    assert!(store.replace_environment_secret("production", "second-event-secret").await.unwrap());
    assert_eq!(store.environment_signing_secret("production").await.unwrap().unwrap().1, "second-event-secret");
    store.close().await;

    let other_key = Store::open(&location.database, &location.data_dir, SecretBox::from_key([7; 32])).await.unwrap();
    match other_key.environment_signing_secret("production").await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("production") && !message.contains("second-event-secret"), "{message}");
        }
        other => panic!("a secret sealed with another key opened: {other:?}"),
    }
    // Listing needs no key.
    assert_eq!(other_key.list_environments().await.unwrap().len(), 1);
    other_key.close().await;
}

/// The stored secret column of every environment, read around the store.
async fn raw_secrets(database: &Database) -> Vec<Vec<u8>> {
    let sql = "SELECT secret FROM environments";
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
