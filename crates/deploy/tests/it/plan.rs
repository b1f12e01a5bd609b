//! The plan: desired (the repository) against observed (what a target runs, by labels). The
//! first deploy is a diff from empty; unchanged applications do not appear; a change in the
//! repository is an update; a change by hand is drift, healed or reported per application.

use std::collections::BTreeMap;

use deploy::model::{TargetKind, UpdateOrder};
use deploy::plan::{Action, ObservedApp, ObservedInstance, plan, render, spec_digest};
use deploy::{App, ReadOptions, RepoFile, read_repository};

const DIGEST: &str = "sha256:4d1c1ef2a8c7e6f1b3d2e9c4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e";
const OTHER: &str = "sha256:9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
const ENVIRONMENT: &str = "version: 1\nname: prod\ntargets:\n  one: {kind: docker}\n";

fn apps(files: &[(&str, &str)]) -> BTreeMap<String, App> {
    let mut all = vec![RepoFile { path: "environment.yml".into(), text: ENVIRONMENT.into() }];
    all.extend(files.iter().map(|(path, text)| RepoFile { path: (*path).to_owned(), text: (*text).to_owned() }));
    let (repository, diagnostics) = read_repository(&all, &ReadOptions::default());
    assert!(!diagnostics.iter().any(pipeline::Diagnostic::is_error), "{diagnostics:?}");
    repository.unwrap().apps
}

fn app_file(digest: &str, extra: &str) -> String {
    format!(
        "version: 1\nowner: {{team: web, contact: web@example.com}}\nimage: registry.example.com/web:1.0@{digest}\nreplicas: 2\n{extra}"
    )
}

/// One replica: a host port on one engine is held by one container.
fn single(digest: &str, extra: &str) -> String {
    app_file(digest, extra).replace("replicas: 2\n", "replicas: 1\n")
}

fn digests(apps: &BTreeMap<String, App>) -> BTreeMap<String, String> {
    apps.iter().map(|(name, app)| (name.clone(), spec_digest(app, &BTreeMap::new(), &BTreeMap::new()))).collect()
}

fn kinds() -> BTreeMap<String, TargetKind> {
    BTreeMap::from([("one".to_owned(), TargetKind::Docker)])
}

/// What a target reports after deploying `app` as the repository says.
fn deployed(name: &str, app: &App, digest: &str) -> ObservedApp {
    ObservedApp {
        name: name.to_owned(),
        spec_digest: Some(digest.to_owned()),
        image: app.image.to_string(),
        desired_replicas: app.replicas,
        revision: "0123abcd".to_owned(),
        since: 1_700_000_000,
        instances: (0..app.replicas)
            .map(|index| ObservedInstance {
                id: format!("container{index}abcdef"),
                running: true,
                health: None,
                foreign_image: None,
                managed: true,
            })
            .collect(),
    }
}

#[test]
fn the_first_deploy_is_a_diff_from_empty() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, ""))]);
    let changes = plan(&desired, &digests(&desired), &kinds(), &[]);
    assert_eq!(render(&changes), format!("+ web: start registry.example.com/web:1.0@{DIGEST} ×2\n"));
}

#[test]
fn what_runs_as_the_repository_says_is_nothing_to_do() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, "")), ("apps/api.yml", &app_file(OTHER, ""))]);
    let digests = digests(&desired);
    let observed: Vec<ObservedApp> = desired.iter().map(|(name, app)| deployed(name, app, &digests[name])).collect();
    let changes = plan(&desired, &digests, &kinds(), &observed);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(render(&changes), "nothing to do: every application runs as the repository says\n");
}

#[test]
fn a_new_version_is_an_update_stop_first_when_a_host_port_must_move() {
    let before = apps(&[
        ("apps/web.yml", &app_file(DIGEST, "")),
        ("apps/api.yml", &single(DIGEST, "ports: [8080:80]\nupdate: {order: stop-first}\n")),
    ]);
    let before_digests = digests(&before);
    let observed: Vec<ObservedApp> = before.iter().map(|(name, app)| deployed(name, app, &before_digests[name])).collect();
    let after = apps(&[
        ("apps/web.yml", &app_file(OTHER, "")),
        ("apps/api.yml", &single(OTHER, "ports: [8080:80]\nupdate: {order: stop-first}\n")),
    ]);
    let changes = plan(&after, &digests(&after), &kinds(), &observed);
    let orders: Vec<(&str, UpdateOrder)> = changes
        .iter()
        .map(|change| match &change.action {
            Action::Update { order, .. } => (change.app.as_str(), *order),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(orders, [("api", UpdateOrder::StopFirst), ("web", UpdateOrder::StartFirst)]);
    assert!(
        render(&changes)
            .contains(&format!("~ web: registry.example.com/web:1.0@{DIGEST} → registry.example.com/web:1.0@{OTHER} (start-first; image"))
    );
}

#[test]
fn a_config_change_alone_rolls_the_app_out() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, "environment: {LOG_LEVEL: debug}\n"))]);
    let before = apps(&[("apps/web.yml", &app_file(DIGEST, "environment: {LOG_LEVEL: info}\n"))]);
    let observed = [deployed("web", &before["web"], &digests(&before)["web"])];
    let changes = plan(&desired, &digests(&desired), &kinds(), &observed);
    assert_eq!(changes.len(), 1);
    assert!(matches!(&changes[0].action, Action::Update { why, .. } if why == &["configuration changed".to_owned()]), "{changes:?}");
}

#[test]
fn config_file_content_and_secret_versions_are_part_of_the_spec() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, "secrets: [session_key]\n"))]);
    let app = &desired["web"];
    let first = spec_digest(app, &BTreeMap::new(), &BTreeMap::from([("session_key".to_owned(), "v1".to_owned())]));
    let rotated = spec_digest(app, &BTreeMap::new(), &BTreeMap::from([("session_key".to_owned(), "v2".to_owned())]));
    assert_ne!(first, rotated, "rotating a secret rolls the applications that use it");
    assert_eq!(first, spec_digest(app, &BTreeMap::new(), &BTreeMap::from([("session_key".to_owned(), "v1".to_owned())])), "stable");
}

#[test]
fn an_app_gone_from_the_repository_is_removed() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, ""))]);
    let digests = digests(&desired);
    let mut old = deployed("legacy", &desired["web"], "sha256:old");
    old.image = "registry.example.com/legacy:0.9".into();
    let observed = [deployed("web", &desired["web"], &digests["web"]), old];
    assert_eq!(render(&plan(&desired, &digests, &kinds(), &observed)), "- legacy: stop and remove registry.example.com/legacy:0.9\n");
}

#[test]
fn changes_by_hand_are_drift_healed_or_only_reported_per_app() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, "")), ("apps/api.yml", &app_file(DIGEST, "drift: warn\n"))]);
    let digests = digests(&desired);
    let mut web = deployed("web", &desired["web"], &digests["web"]);
    web.instances[1].running = false;
    let mut api = deployed("api", &desired["api"], &digests["api"]);
    api.instances[0].foreign_image = Some("sha256:0123abcd".into());
    let changes = plan(&desired, &digests, &kinds(), &[web, api]);
    assert_eq!(
        render(&changes),
        format!(
            "? api: drift (warn only): container0ab runs sha256:0123abcd, not the deployed registry.example.com/web:1.0@{DIGEST}\n! web: heal drift: 1 of 2 running\n"
        )
    );
}

#[test]
fn a_container_started_by_hand_with_an_applications_labels_is_drift() {
    let desired = apps(&[("apps/web.yml", &app_file(DIGEST, ""))]);
    let digests = digests(&desired);
    let mut web = deployed("web", &desired["web"], &digests["web"]);
    web.instances.push(ObservedInstance { id: "impostor0123456".into(), running: true, health: None, foreign_image: None, managed: false });
    let changes = plan(&desired, &digests, &kinds(), &[web]);
    assert_eq!(
        render(&changes),
        "! web: heal drift: 3 running, 2 wanted; impostor0123 claims the application by its labels but was not started by the deployer\n"
    );
}
