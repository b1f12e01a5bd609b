//! What a deployer reports (`proto::delivery`): the deployment record and the event it sends a
//! receiver, the Gantry server among them, read back unchanged with their JSON pinned; and the
//! one rule for environments' and applications' names.

use proto::delivery::{DeploymentEvent, DeploymentKind, DeploymentOutcome, DeploymentRecord, is_valid_name};

use crate::support::{check, check_each};

fn record() -> DeploymentRecord {
    DeploymentRecord {
        id: "3f2a9c0d1e2b4a55".into(),
        environment: "production".into(),
        app: "web".into(),
        kind: DeploymentKind::Update,
        from_image: Some("registry.example.com/web:1.3".into()),
        to_image: Some("registry.example.com/web:1.4".into()),
        from_revision: Some("1111111111111111111111111111111111111111".into()),
        revision: "2222222222222222222222222222222222222222".into(),
        author: "Ada <ada@example.com>".into(),
        started_at: 1_767_225_660_000,
        finished_at: Some(1_767_225_674_500),
        outcome: DeploymentOutcome::Failed,
        reason: Some("web did not become healthy within 30s".into()),
    }
}

#[test]
fn deployments_and_events() {
    check(&record());
    check(&DeploymentEvent {
        event: "deployment.failed".into(),
        environment: "production".into(),
        app: "web".into(),
        owner_team: Some("web".into()),
        deployment: Some(record()),
        drift: vec!["1 of 2 running".into()],
    });
    check_each(&[DeploymentKind::Create, DeploymentKind::Update, DeploymentKind::Heal, DeploymentKind::Remove, DeploymentKind::Rollback]);
    check_each(&[DeploymentOutcome::Running, DeploymentOutcome::Succeeded, DeploymentOutcome::Failed, DeploymentOutcome::Interrupted]);
}

#[test]
fn names_are_what_every_engine_and_url_takes() {
    for good in ["production", "eu-west.1", "web_2", "0day", &"x".repeat(63)] {
        assert!(is_valid_name(good), "{good}");
    }
    for bad in ["", "Production", "-web", ".hidden", "a/b", "a b", "café", &"x".repeat(64)] {
        assert!(!is_valid_name(bad), "{bad}");
    }
}
