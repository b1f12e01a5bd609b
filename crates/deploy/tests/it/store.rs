//! The deployer's own files: the sealed secret store and the deployment history.

use std::collections::BTreeSet;

use deploy::history::{DeploymentKind, DeploymentOutcome, DeploymentRecord, History};
use deploy::secrets::{SecretStore, SecretStoreError, SetOutcome};

#[test]
fn a_secret_is_sealed_on_disk_versioned_by_value_and_opened_only_with_its_key() {
    let folder = tempfile::tempdir().unwrap();
    let store = SecretStore::open(folder.path(), None).unwrap();
    assert_eq!(store.set("db_password", b"hunter2-hunter2").unwrap(), SetOutcome::Created);
    let first = store.list().unwrap()[0].version.clone();
    assert_eq!(store.set("db_password", b"hunter2-hunter2").unwrap(), SetOutcome::Unchanged, "the same value rolls nothing");
    assert_eq!(store.list().unwrap()[0].version, first);
    assert_eq!(store.set("db_password", b"correct-horse").unwrap(), SetOutcome::Rotated);
    let second = store.list().unwrap()[0].version.clone();
    assert_ne!(second, first, "a new value is a new version");

    let on_disk = std::fs::read_to_string(folder.path().join("secrets.json")).unwrap();
    assert!(!on_disk.contains("correct-horse") && !on_disk.contains("hunter2"), "{on_disk}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(folder.path().join("secrets.json")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(folder.path()).unwrap().permissions().mode() & 0o777, 0o700);

    let wanted = BTreeSet::from(["db_password".to_owned(), "missing".to_owned()]);
    let materials = store.materials(&wanted).unwrap();
    assert_eq!(materials["db_password"].value, b"correct-horse");
    assert_eq!(materials["db_password"].version, second);
    assert!(!materials.contains_key("missing"));
    assert!(!format!("{materials:?}").contains("correct-horse"), "Debug never shows a value");

    let other_key = SecretStore::open(folder.path(), Some(&"ab".repeat(32))).unwrap();
    let error = other_key.materials(&wanted).unwrap_err();
    assert!(matches!(error, SecretStoreError::Decrypt(ref name) if name == "db_password"), "{error}");

    assert!(store.remove("db_password").unwrap());
    assert!(!store.remove("db_password").unwrap());
    assert!(store.names().unwrap().is_empty());
}

#[test]
fn a_secret_name_works_on_every_target_or_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let store = SecretStore::open(folder.path(), None).unwrap();
    for bad in ["", "../escape", "with space", "-leading", &"x".repeat(65)] {
        assert!(matches!(store.set(bad, b"v"), Err(SecretStoreError::BadName(_))), "{bad:?}");
    }
    store.set("api.key_2-b", b"v").unwrap();
}

#[test]
fn registry_logins_are_sealed_and_read_back() {
    let folder = tempfile::tempdir().unwrap();
    let store = SecretStore::open(folder.path(), None).unwrap();
    store.set_registry("127.0.0.1:5001", "deployer", "registry-password").unwrap();
    let on_disk = std::fs::read_to_string(folder.path().join("secrets.json")).unwrap();
    assert!(!on_disk.contains("registry-password"));
    let logins = store.registries().unwrap();
    assert_eq!(
        (logins[0].host.as_str(), logins[0].username.as_str(), logins[0].password.as_str()),
        ("127.0.0.1:5001", "deployer", "registry-password")
    );
    assert!(!format!("{logins:?}").contains("registry-password"));
    assert!(store.remove_registry("127.0.0.1:5001").unwrap());
    assert!(store.registries().unwrap().is_empty());
}

fn record(id: &str, outcome: DeploymentOutcome) -> DeploymentRecord {
    DeploymentRecord {
        id: id.to_owned(),
        environment: "production".to_owned(),
        app: "web".to_owned(),
        kind: DeploymentKind::Update,
        from_image: Some("reg/web:1".to_owned()),
        to_image: Some("reg/web:2".to_owned()),
        from_revision: Some("aaaa".to_owned()),
        revision: "bbbb".to_owned(),
        author: "Ada <ada@example.com>".to_owned(),
        started_at: 1_000,
        finished_at: (outcome != DeploymentOutcome::Running).then_some(3_500),
        outcome,
        reason: None,
    }
}

#[test]
fn the_history_keeps_each_deployment_as_last_written_and_closes_what_a_crash_left_running() {
    let folder = tempfile::tempdir().unwrap();
    let history = History::new(folder.path());
    history.write(&record("one", DeploymentOutcome::Running)).unwrap();
    history.write(&record("one", DeploymentOutcome::Succeeded)).unwrap();
    history.write(&record("two", DeploymentOutcome::Running)).unwrap();
    // A line cut short by a crash is skipped, not fatal.
    std::fs::OpenOptions::new()
        .append(true)
        .open(folder.path().join("history.jsonl"))
        .and_then(|mut file| {
            use std::io::Write as _;
            file.write_all(b"{\"id\":\"thr")
        })
        .unwrap();
    let records = history.read().unwrap();
    assert_eq!(
        records.iter().map(|record| (record.id.as_str(), record.outcome)).collect::<Vec<_>>(),
        [("one", DeploymentOutcome::Succeeded), ("two", DeploymentOutcome::Running)]
    );
    assert_eq!(records[0].duration_ms(), Some(2_500));

    let closed = history.close_interrupted().unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(history.read().unwrap()[1].outcome, DeploymentOutcome::Interrupted);
    assert!(history.close_interrupted().unwrap().is_empty(), "closed once");
}
