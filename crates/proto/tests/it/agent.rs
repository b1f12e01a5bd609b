//! The server↔agent protocol (`proto::agent`): each body an agent or a server sends, with every
//! optional field set, reads back unchanged and keeps its pinned JSON; bodies of an older peer,
//! without the fields added since, still read.

use std::collections::BTreeMap;

use pipeline::{CompileOptions, Context, SourceFile};
use proto::agent::{
    CancelWaitResponse, CloneCredentials, Heartbeat, HeartbeatResponse, Job, JobDone, JobRepository, JobUpdates, JobUpdatesResponse,
    LeaseRequest, LogBatch, LogLine, LogStream, RegisterRequest, RegisterResponse, StepUpdate,
};
use proto::{State, Trust};

use crate::support::{check, check_each, reads_as};

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("platform".to_owned(), "linux/amd64".to_owned()),
        ("backend".to_owned(), "docker".to_owned()),
        ("gpu".to_owned(), "none".to_owned()),
    ])
}

fn register_request() -> RegisterRequest {
    RegisterRequest {
        name: "builder-1".into(),
        labels: labels(),
        capacity: 2,
        version: "0.4.0".into(),
        token: Some("gtg_4f1c0a9e7b2d4c6e8a0b1c2d3e4f5a6b".into()),
    }
}

/// A pipeline with what a job's plan can carry to an agent: a service with a readiness check,
/// secrets (whole and embedded), a plugin step, a skipped step, clone options, a matrix row, and
/// every container option a step may set.
const PIPELINE: &str = r#"
labels:
  gpu: none
matrix:
  RUST: ["1.90"]
workspace:
  base: /work
  path: app
clone:
  - name: git
    image: woodpeckerci/plugin-git
    settings:
      depth: 50
      tags: true
services:
  database:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD:
        from_secret: database_password
    healthcheck:
      command: pg_isready -U postgres
      interval: 2s
      retries: 30
steps:
  test:
    image: rust:${RUST}
    pull: always
    commands:
      - cargo test --locked
    environment:
      DATABASE_HOST: database
      DATABASE_PASSWORD:
        from_secret: database_password
    shell: /bin/bash
    working_dir: /work/app/crates
    failure: ignore
    privileged: true
    volumes:
      - cargo-cache:/usr/local/cargo/registry
    ports:
      - "8080"
    network_mode: bridge
    dns: [10.0.0.2]
    dns_search: [internal.example.com]
    extra_hosts: ["registry.internal:10.0.0.3"]
    devices: ["/dev/fuse:/dev/fuse"]
    tmpfs: ["/tmp:size=64m"]
    user: "1000:1000"
    backend_options:
      docker:
        cpus: 2
    timeout: 20m
    mem_limit: 2g
    shm_size: 256m
  migrations:
    image: rust:${RUST}
    entrypoint: ["/bin/sh", "-c"]
    command: ["echo migrate"]
    detach: true
  publish:
    image: plugins/docker
    settings:
      repo: registry.example.com/team/app
      password:
        from_secret: registry_password
      mirrors:
        internal:
          url: https://mirror.internal
          token:
            from_secret: mirror_token
    when:
      branch: release
"#;

fn job() -> Job {
    let context = Context {
        commit_sha: "5d1f0c3a9b7e2d4c6a8b0e1f3a5c7e9b2d4f6a8c".into(),
        commit_message: "parse tabs as tabs".into(),
        commit_author: "Ada".into(),
        repo: "team/app".into(),
        repo_clone_url: "https://git.example.com/team/app.git".into(),
        repo_url: "https://git.example.com/team/app".into(),
        pipeline_number: 42,
        ..Context::default()
    };
    let plan = pipeline::plan_files(&[SourceFile::new(".woodpecker.yml", PIPELINE)], &context, CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    Job {
        id: 311,
        build_id: 97,
        build_number: 42,
        repo: job_repository(),
        commit: context.commit_sha.clone(),
        reference: "refs/heads/main".into(),
        plan,
        secrets: BTreeMap::from([
            ("database_password".to_owned(), "p0stgres".to_owned()),
            ("mirror_token".to_owned(), "m1rr0r".to_owned()),
            ("registry_password".to_owned(), "hunter2".to_owned()),
        ]),
        trust: Trust { privileged: true, volumes: true, network: true },
        timeout_seconds: 3600,
        registries: Vec::new(),
    }
}

fn job_repository() -> JobRepository {
    JobRepository {
        id: 12,
        full_name: "team/app".into(),
        clone_url: "https://git.example.com/team/app.git".into(),
        clone_credentials: Some(CloneCredentials { username: "ci".into(), password: "s3cret".into() }),
        allow_local: true,
    }
}

fn step_update() -> StepUpdate {
    StepUpdate {
        step: "test".into(),
        state: State::Failure,
        exit_code: Some(101),
        started_ms: Some(1_767_225_600_000),
        finished_ms: Some(1_767_225_671_250),
        reason: Some("exit code 101".into()),
    }
}

#[test]
fn registration() {
    check(&register_request());
    check(&RegisterResponse { agent_id: 7, heartbeat_seconds: 5, token: "gtg_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d".into() });
}

#[test]
fn lease_and_job() {
    check(&LeaseRequest { agent_id: 7 });
    check(&job());
    check(&job_repository());
    check(&CloneCredentials { username: "ci".into(), password: "s3cret".into() });
}

#[test]
fn updates_and_their_answer() {
    let line = |at_ms, stream, text: &str| LogLine { at_ms, stream, text: text.into() };
    check(&line(1_767_225_601_000, LogStream::Stderr, "warning: unused variable `x`"));
    // A stream added later fails to compile here until it is listed.
    let listed = |stream: LogStream| match stream {
        LogStream::Stdout | LogStream::Stderr => stream,
    };
    check_each(&[LogStream::Stdout, LogStream::Stderr].map(listed));
    let batch = LogBatch {
        step: "test".into(),
        first_seq: 120,
        lines: vec![
            line(1_767_225_600_500, LogStream::Stdout, "+ cargo test --locked"),
            line(1_767_225_601_000, LogStream::Stderr, "warning: unused variable `x`"),
        ],
    };
    check(&batch);
    check(&step_update());
    check(&JobUpdates { agent_id: 7, steps: vec![step_update()], logs: vec![batch], published: Vec::new() });
    check(&JobUpdatesResponse { next_seq: BTreeMap::from([("test".to_owned(), 122)]), cancel: true });
}

#[test]
fn cancel_wait_done_and_heartbeat() {
    check(&CancelWaitResponse { cancelled: true });
    check(&JobDone { agent_id: 7, state: State::Failure, reason: Some("step `test` failed".into()), steps: vec![step_update()] });
    check(&Heartbeat { agent_id: 7, jobs: vec![311, 312] });
    check(&HeartbeatResponse { stop: vec![312] });
}

/// Fields added to the protocol after its first version are optional: a peer that does not know
/// them leaves them out, and what it sends still reads.
#[test]
fn bodies_without_later_fields_still_read() {
    let mut request = register_request();
    request.token = None;
    reads_as(serde_json::json!({ "name": "builder-1", "labels": labels(), "capacity": 2, "version": "0.4.0" }), &request);

    let repository = JobRepository { clone_credentials: None, allow_local: false, ..job_repository() };
    reads_as(serde_json::json!({ "id": 12, "full_name": "team/app", "clone_url": "https://git.example.com/team/app.git" }), &repository);

    let update =
        StepUpdate { step: "test".into(), state: State::Running, exit_code: None, started_ms: None, finished_ms: None, reason: None };
    reads_as(serde_json::json!({ "step": "test", "state": "running" }), &update);
    reads_as(serde_json::json!({ "agent_id": 7 }), &JobUpdates { agent_id: 7, steps: vec![], logs: vec![], published: Vec::new() });
    reads_as(
        serde_json::json!({ "agent_id": 7, "state": "success" }),
        &JobDone { agent_id: 7, state: State::Success, reason: None, steps: vec![] },
    );
}
