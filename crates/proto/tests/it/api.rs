//! The REST API's bodies (`proto::api`): each one, with every optional field set, reads back
//! unchanged and keeps its pinned JSON.

use std::collections::BTreeMap;

use proto::api::{
    Agent, Artifact, ArtifactOrigin, Build, BuildCreate, BuildDiagnostic, BuildLink, BuildNotification, Cron, CronWrite, Deployment, Drift,
    Environment, EnvironmentApp, EnvironmentCreate, EnvironmentSecret, ErrorBody, EventReceipt, ImagePublished, LogEntry, Login, Member,
    MemberSet, Notifier, NotifierCreate, Registry, RegistryWrite, Repo, RepoCreate, RepoSettingsChange, RepoUpdate, Role, Secret,
    SecretWrite, Step, Token, TokenCreate, TokenCreated, TriggerResult, User, UserCreate, Workflow,
};
use proto::delivery::{DeploymentKind, DeploymentOutcome};
use proto::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};

use crate::support::{check, check_each};

/// 2026-01-01 00:00:00 UTC, and times a little after it.
const CREATED: i64 = 1_767_225_600;

fn step() -> Step {
    Step {
        id: 5003,
        name: "test".into(),
        state: State::Failure,
        exit_code: Some(101),
        reason: Some("exit code 101".into()),
        started: Some(CREATED + 70),
        finished: Some(CREATED + 141),
        log_lines: 1204,
    }
}

fn workflow() -> Workflow {
    Workflow {
        id: 311,
        name: "test".into(),
        state: State::Failure,
        agent: Some("builder-1".into()),
        reason: Some("step `test` failed".into()),
        started: Some(CREATED + 62),
        finished: Some(CREATED + 150),
        steps: vec![step()],
    }
}

fn diagnostic() -> BuildDiagnostic {
    BuildDiagnostic {
        severity: "warning".into(),
        code: "deprecated".into(),
        file: ".woodpecker/test.yml".into(),
        line: 12,
        column: 5,
        message: "`pipeline` is deprecated".into(),
        hint: Some("rename it to `steps`".into()),
    }
}

fn build() -> Build {
    Build {
        id: 97,
        repo: "team/app".into(),
        number: 42,
        event: "pull_request".into(),
        state: State::Failure,
        reference: "refs/pull/7/head".into(),
        branch: "parse-tabs".into(),
        commit: "5d1f0c3a9b7e2d4c6a8b0e1f3a5c7e9b2d4f6a8c".into(),
        message: "parse tabs as tabs".into(),
        author: "ada".into(),
        trigger: "webhook".into(),
        pull_request: Some("7".into()),
        reason: Some("waiting for a maintainer's approval".into()),
        from_fork: true,
        approved_by: Some("grace".into()),
        approved: Some(CREATED + 60),
        created: CREATED,
        started: Some(CREATED + 61),
        finished: Some(CREATED + 151),
        diagnostics: vec![diagnostic()],
        workflows: Some(vec![workflow()]),
    }
}

#[test]
fn errors_and_roles() {
    check(&ErrorBody {
        code: "bad_request".into(),
        error: "the schedule has 4 fields; it needs 5 or 6".into(),
        field: Some("schedule".into()),
    });
    // A role added later fails to compile here until it is listed.
    let listed = |role: Role| match role {
        Role::Read | Role::Write | Role::Admin => role,
    };
    check_each(&[Role::Read, Role::Write, Role::Admin].map(listed));
}

#[test]
fn users_sign_in_and_tokens() {
    check(&User { id: 3, login: "ada".into(), admin: true, created: CREATED });
    check(&UserCreate { login: "ada".into(), password: "correct horse battery staple".into(), admin: true });
    check(&Login { login: "ada".into(), password: "correct horse battery staple".into() });
    check(&TokenCreate { name: "laptop".into(), expires_in_days: Some(90) });
    check(&TokenCreated {
        id: 8,
        name: "laptop".into(),
        token: "gta_0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        expires: Some(CREATED + 90 * 86_400),
    });
    check(&Token { id: 8, name: "laptop".into(), kind: "api".into(), created: CREATED, expires: Some(CREATED + 90 * 86_400) });
    check(&Member { login: "grace".into(), role: Role::Write });
    check(&MemberSet { role: Role::Admin });
}

#[test]
fn repositories() {
    check(&Repo {
        id: 12,
        full_name: "team/app".into(),
        clone_url: "https://git.example.com/team/app.git".into(),
        forge: ForgeKind::Gitea,
        default_branch: "main".into(),
        config_path: ".woodpecker/".into(),
        trust: Trust { privileged: true, volumes: true, network: true },
        timeout_minutes: 60,
        cancel_previous: true,
        poll_interval_seconds: Some(300),
        lost_policy: LostPolicy::Fail,
        approval: ApprovalPolicy::PullRequests,
        forge_api_url: Some("https://git.example.com/api/v1".into()),
        webhook_url: "https://ci.example.com/hooks/12".into(),
        role: Some(Role::Admin),
        webhook_secret: Some("whsec_5b3a1c9d7e2f4a6b8c0d".into()),
        created: CREATED,
    });
    check(&RepoCreate {
        full_name: "team/app".into(),
        clone_url: "https://git.example.com/team/app.git".into(),
        settings: RepoSettingsChange {
            forge: Some(ForgeKind::Gitea),
            default_branch: Some("main".into()),
            config_path: Some(".woodpecker/".into()),
            webhook_secret: Some("whsec_5b3a1c9d7e2f4a6b8c0d".into()),
            timeout_minutes: Some(60),
            cancel_previous: Some(true),
            poll_interval_seconds: Some(300),
            lost_policy: Some(LostPolicy::Fail),
            approval: Some(ApprovalPolicy::PullRequests),
            trust: Some(Trust { privileged: true, volumes: false, network: true }),
            forge_token: Some("gitea_token_1234".into()),
            forge_api_url: Some("https://git.example.com/api/v1".into()),
            clone_username: Some("ci".into()),
            clone_password: Some("s3cret".into()),
        },
    });
    check(&RepoUpdate {
        clone_url: Some("https://git.example.com/team/app-renamed.git".into()),
        settings: RepoSettingsChange {
            forge: Some(ForgeKind::Gitlab),
            default_branch: Some("trunk".into()),
            config_path: Some(".drone.yml".into()),
            webhook_secret: Some("whsec_new".into()),
            timeout_minutes: Some(30),
            cancel_previous: Some(false),
            poll_interval_seconds: Some(0),
            lost_policy: Some(LostPolicy::Requeue),
            approval: Some(ApprovalPolicy::AllEvents),
            trust: Some(Trust { privileged: false, volumes: true, network: false }),
            forge_token: Some("glpat-abcdef".into()),
            forge_api_url: Some(String::new()),
            clone_username: Some("deploy".into()),
            clone_password: Some("n3w-s3cret".into()),
        },
    });
}

#[test]
fn builds_workflows_steps_and_logs() {
    check(&diagnostic());
    check(&build());
    check(&workflow());
    check(&step());
    check(&BuildCreate {
        branch: Some("release".into()),
        commit: Some("9b2d4f6a8c5d1f0c3a9b7e2d4c6a8b0e1f3a5c7e".into()),
        variables: BTreeMap::from([("DEPLOY_TO".to_owned(), "staging".to_owned())]),
    });
    check(&LogEntry { seq: 17, at_ms: (CREATED + 71) * 1000 + 250, stream: "stderr".into(), text: "warning: unused variable `x`".into() });
}

#[test]
fn secrets_registries_crons_and_notifiers() {
    check(&Secret {
        name: "registry_password".into(),
        events: vec!["push".into(), "tag".into()],
        images: vec!["plugins/docker".into()],
        created: CREATED,
        updated: CREATED + 3600,
    });
    check(&SecretWrite {
        value: "hunter2".into(),
        events: Some(vec!["push".into(), "tag".into()]),
        images: Some(vec!["plugins/docker".into()]),
    });
    check(&Registry { host: "registry.example.com".into(), username: "ci-bot".into(), created: CREATED, updated: CREATED + 60 });
    check(&RegistryWrite { username: "ci-bot".into(), password: "hunter2".into() });
    check(&Cron { name: "nightly".into(), schedule: "0 3 * * *".into(), branch: "main".into(), next: CREATED + 10_800, created: CREATED });
    check(&CronWrite { schedule: "@daily".into(), branch: Some("main".into()) });
    check(&Notifier {
        id: 4,
        kind: "slack".into(),
        url: "https://hooks.example.com/T000/B000".into(),
        states: vec![State::Failure, State::Error],
        events: vec!["build.finished".into()],
        signed: false,
    });
    check(&NotifierCreate {
        kind: "webhook".into(),
        url: "https://ci-events.example.com/gantry".into(),
        states: vec![State::Success],
        events: vec!["build.finished".into(), "image.published".into()],
        secret: Some("a signing secret of some length".into()),
    });
    check(&BuildNotification { repo: "team/app".into(), build: build(), url: "https://ci.example.com/team/app/builds/42".into() });
    check(&artifact());
    check(&ArtifactOrigin {
        repo: "team/app".into(),
        artifact: artifact(),
        build: build(),
        url: "https://ci.example.com/team/app/builds/42".into(),
    });
    check(&ImagePublished {
        event: "image.published".into(),
        repository: "team/app".into(),
        build: 42,
        build_url: "https://ci.example.com/repos/team/app/builds/42".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: "main".into(),
        reference: "refs/heads/main".into(),
        trigger: "push".into(),
        workflow: "release".into(),
        step: "image".into(),
        image: "registry.example.com/team/app".into(),
        digest: DIGEST.into(),
        pinned: format!("registry.example.com/team/app@{DIGEST}"),
        tags: vec!["latest".into(), "1.4.0".into()],
        provenance_digest: Some(PROVENANCE_DIGEST.into()),
    });
}

const DIGEST: &str = "sha256:4d1c1ef2a8c7e6f1b3d2e9c4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e";
const PROVENANCE_DIGEST: &str = "sha256:9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";

fn artifact() -> Artifact {
    Artifact {
        id: 7,
        build: 42,
        workflow: "release".into(),
        step: "image".into(),
        image: "registry.example.com/team/app".into(),
        digest: DIGEST.into(),
        pinned: format!("registry.example.com/team/app@{DIGEST}"),
        tags: vec!["latest".into(), "1.4.0".into()],
        size: Some(31_457_280),
        provenance: Some("/api/v1/repos/team/app/builds/42/artifacts/7/provenance".into()),
        provenance_digest: Some(PROVENANCE_DIGEST.into()),
        created: CREATED,
    }
}

#[test]
fn agents_and_triggers() {
    check(&Agent {
        id: 7,
        name: "builder-1".into(),
        labels: BTreeMap::from([("platform".to_owned(), "linux/amd64".to_owned()), ("backend".to_owned(), "docker".to_owned())]),
        capacity: 2,
        version: "0.4.0".into(),
        last_seen: CREATED + 600,
        connected: true,
        running: 1,
        created: CREATED,
    });
    check(&TriggerResult { builds: vec![97, 98], ignored: Some("no pipeline file at the commit".into()) });
}

fn deployment(id: &str, outcome: DeploymentOutcome) -> Deployment {
    Deployment {
        id: id.into(),
        environment: "production".into(),
        app: "web".into(),
        kind: DeploymentKind::Update,
        from_image: Some(format!("registry.example.com/team/app:1.3@{PROVENANCE_DIGEST}")),
        to_image: Some(format!("registry.example.com/team/app:1.4@{DIGEST}")),
        from_revision: Some("1111111111111111111111111111111111111111".into()),
        revision: "2222222222222222222222222222222222222222".into(),
        author: "Ada <ada@example.com>".into(),
        started: CREATED + 60,
        finished: Some(CREATED + 75),
        duration_ms: Some(14_500),
        outcome,
        rolled_back: outcome == DeploymentOutcome::Failed,
        reason: (outcome == DeploymentOutcome::Failed).then(|| "web did not become healthy within 30s".into()),
        owner_team: Some("web".into()),
        build: Some(BuildLink {
            repo: "team/app".into(),
            build: 42,
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            url: "https://ci.example.com/repos/team/app/builds/42".into(),
        }),
    }
}

#[test]
fn environments_and_their_deployments() {
    let events_url = "https://ci.example.com/api/v1/environments/production/events";
    check(&Environment {
        name: "production".into(),
        created: CREATED,
        last_event: Some(CREATED + 600),
        deployments: 12,
        apps: 3,
        events_url: events_url.into(),
    });
    check(&EnvironmentCreate { name: "production".into() });
    let secret = EnvironmentSecret { name: "production".into(), secret: "9f".repeat(32), events_url: events_url.into() };
    assert!(!format!("{secret:?}").contains("9f9f"), "Debug never shows the secret");
    check(&secret);
    check(&deployment("3f2a9c0d1e2b4a55", DeploymentOutcome::Failed));
    check(&Drift { drift: vec!["1 of 2 running".into()], detected: CREATED + 90 });
    check(&EnvironmentApp {
        app: "web".into(),
        owner_team: Some("web".into()),
        current: Some(deployment("1a2b3c4d5e6f7081", DeploymentOutcome::Succeeded)),
        latest: Some(deployment("3f2a9c0d1e2b4a55", DeploymentOutcome::Failed)),
        drift: Some(Drift { drift: vec!["1 of 2 running".into()], detected: CREATED + 90 }),
    });
    check(&EventReceipt { changed: false, ignored: Some("`deployment.paused` is not an event the server records".into()) });
    check(&BuildLink {
        repo: "team/app".into(),
        build: 42,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        url: "https://ci.example.com/repos/team/app/builds/42".into(),
    });
}
