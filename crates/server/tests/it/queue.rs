//! The queue through the agent protocol: leasing by labels and dependencies, idempotent log
//! uploads, completion, cancellation, lost agents, and which secrets and registry logins a job
//! carries.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Db, Harness, PIPELINE, git_repo};

fn line(text: &str) -> Value {
    json!({ "at_ms": 1, "stream": "stdout", "text": text })
}

async fn build(harness: &Harness, number: i64) -> Value {
    harness.admin(Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}"), None).await.1
}

async fn lease_one(harness: &Harness, agent: i64) -> Value {
    let (status, job) = harness.agent("/lease", json!({ "agent_id": agent })).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    job
}

async fn logs_are_stored_once(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("agent-1", json!({ "platform": "linux/amd64" })).await;
    let job = lease_one(&harness, agent).await;
    assert_eq!(job["commit"], sha);
    assert_eq!(job["plan"]["workflows"].as_array().unwrap().len(), 1);
    assert_eq!(build(&harness, 1).await["state"], "running");
    let id = job["id"].as_i64().unwrap();

    let upload = |first: u64, texts: &[&str]| {
        json!({ "agent_id": agent, "steps": [{ "step": "build", "state": "running", "started_ms": 1000 }],
                "logs": [{ "step": "build", "first_seq": first, "lines": texts.iter().map(|text| line(text)).collect::<Vec<_>>() }] })
    };
    let (status, answer) = harness.agent(&format!("/jobs/{id}/updates"), upload(0, &["a", "b", "c"])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["next_seq"]["build"], 3);
    let (_, answer) = harness.agent(&format!("/jobs/{id}/updates"), upload(0, &["a", "b", "c"])).await;
    assert_eq!(answer["next_seq"]["build"], 3, "a retried batch is not stored twice");
    let (_, answer) = harness.agent(&format!("/jobs/{id}/updates"), upload(5, &["f"])).await;
    assert_eq!(answer["next_seq"]["build"], 3, "a gap asks for a resend from 3");
    let (_, answer) = harness.agent(&format!("/jobs/{id}/updates"), upload(2, &["c", "d", "e"])).await;
    assert_eq!(answer["next_seq"]["build"], 5, "an overlapping batch stores only the new lines");

    let done = json!({ "agent_id": agent, "state": "success", "steps": [
        { "step": "clone", "state": "success", "exit_code": 0, "started_ms": 900, "finished_ms": 950 },
        { "step": "build", "state": "success", "exit_code": 0, "started_ms": 1000, "finished_ms": 2000 } ] });
    let (status, _) = harness.agent(&format!("/jobs/{id}/done"), done.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = harness.agent(&format!("/jobs/{id}/done"), done).await;
    assert_eq!(status, StatusCode::OK, "a retried `done` is accepted");
    let finished = build(&harness, 1).await;
    assert_eq!(finished["state"], "success", "{finished}");
    let step = &finished["workflows"][0]["steps"][1];
    assert_eq!(step["log_lines"], 5);

    let step_id = step["id"].as_i64().unwrap();
    let (status, text) = harness.admin(Method::GET, &format!("/api/v1/repos/acme/app/builds/1/steps/{step_id}/log"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, Value::String("a\nb\nc\nd\ne\n".into()), "the log reads back from its compressed file");
    let (_, stream) = harness.admin(Method::GET, &format!("/api/v1/repos/acme/app/builds/1/steps/{step_id}/log/stream?from=3"), None).await;
    let stream = stream.as_str().unwrap().to_owned();
    assert!(stream.contains("id: 3\n") && stream.contains("id: 4\n") && !stream.contains("id: 2\n"), "{stream}");
    assert!(stream.trim_end().ends_with("event: end\ndata: {}"), "{stream}");
}
both!(log_lines_are_stored_once_in_order_and_read_back, logs_are_stored_once);

async fn lost_agent(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("doomed", json!({})).await;
    let job = lease_one(&harness, agent).await;
    let id = job["id"].as_i64().unwrap();
    harness
        .agent(
            &format!("/jobs/{id}/updates"),
            json!({ "agent_id": agent, "logs": [{ "step": "build", "first_seq": 0, "lines": [line("half")] }] }),
        )
        .await;

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    server::queue::reap_lost_agents(&harness.state).await.unwrap();
    let after = build(&harness, 1).await;
    let workflow = &after["workflows"][0];
    assert_eq!(workflow["state"], "pending", "re-queued by the default policy: {after}");
    assert!(workflow["reason"].as_str().unwrap().contains("doomed stopped answering"), "{workflow}");
    assert_eq!(workflow["steps"][1]["log_lines"], 0, "the lost attempt's log is gone");

    // The silent agent comes back: its job is not its own any more.
    let (status, _) = harness.agent(&format!("/jobs/{id}/updates"), json!({ "agent_id": agent })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, answer) = harness.agent("/heartbeat", json!({ "agent_id": agent, "jobs": [id] })).await;
    assert_eq!(answer["stop"], json!([id]));

    // With the `fail` policy the next loss fails it.
    harness.admin(Method::PATCH, "/api/v1/repos/acme/app", Some(json!({ "lost_policy": "fail" }))).await;
    let second = harness.register_agent("doomed-too", json!({})).await;
    lease_one(&harness, second).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    server::queue::reap_lost_agents(&harness.state).await.unwrap();
    let after = build(&harness, 1).await;
    assert_eq!(after["workflows"][0]["state"], "error", "{after}");
    assert_eq!(after["state"], "error");
}

mod an_agent_that_stops_heartbeating_loses_its_workflows {
    use super::*;
    fn quick(config: &mut server::ServerConfig) {
        config.agent_lost_after = std::time::Duration::from_millis(10);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        lost_agent(Harness::with(Db::Sqlite, quick).await.unwrap()).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(harness) = Harness::with(Db::Postgres, quick).await {
            lost_agent(harness).await;
        }
    }
}

async fn restarted_agent(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("flaky", json!({})).await;
    lease_one(&harness, agent).await;
    // Back before anyone noticed it was gone, with the token it kept: registering again says it
    // lost what it ran.
    let kept = harness.agent_token(agent);
    let answer =
        harness.agent_ok("/register", json!({ "name": "flaky", "labels": {}, "capacity": 2, "version": "test", "token": kept })).await;
    let again = answer["agent_id"].as_i64().unwrap();
    assert_eq!(again, agent, "the same agent, by name");
    let after = build(&harness, 1).await;
    assert_eq!(after["workflows"][0]["state"], "pending", "{after}");
    assert!(after["workflows"][0]["reason"].as_str().unwrap().contains("agent flaky restarted"), "{after}");
    let job = lease_one(&harness, again).await;
    assert_eq!(job["build_number"], 1, "and runs it again");
}
both!(an_agent_that_registers_again_loses_what_it_was_running, restarted_agent);

async fn cancellation(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("agent-1", json!({})).await;
    let id = lease_one(&harness, agent).await["id"].as_i64().unwrap();

    let waiter = {
        let app = harness.app.clone();
        let token = harness.agent_token(agent);
        tokio::spawn(async move {
            use tower::ServiceExt as _;
            let request = axum::http::Request::post(format!("/api/agent/v1/jobs/{id}/cancel-wait"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(json!({ "agent_id": agent }).to_string()))
                .unwrap();
            let started = std::time::Instant::now();
            let response = app.oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (started.elapsed(), serde_json::from_slice::<Value>(&body).unwrap())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds/1/cancel", None).await;
    assert_eq!(status, StatusCode::OK);
    let (waited, answer) = waiter.await.unwrap();
    assert_eq!(answer["cancelled"], true);
    assert!(waited < std::time::Duration::from_secs(2), "the agent hears of it at once, not after {waited:?}");
    let (_, answer) = harness.agent(&format!("/jobs/{id}/updates"), json!({ "agent_id": agent })).await;
    assert_eq!(answer["cancel"], true);
    harness.agent(&format!("/jobs/{id}/done"), json!({ "agent_id": agent, "state": "failure", "steps": [] })).await;
    let after = build(&harness, 1).await;
    assert_eq!(after["state"], "killed", "{after}");
    assert_eq!(after["workflows"][0]["state"], "killed");
}
both!(a_cancelled_build_reaches_its_agent_and_ends_killed, cancellation);

async fn labels_and_dependencies(harness: Harness) {
    let first = "labels:\n  gpu: \"yes\"\nsteps:\n  train:\n    image: gantry-test/busybox:latest\n    commands: [\"true\"]\n";
    let second = "depends_on: [first]\nsteps:\n  report:\n    image: gantry-test/busybox:latest\n    commands: [\"true\"]\n";
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker/first.yml", first), (".woodpecker/second.yml", second)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let plain = harness.register_agent("plain", json!({ "platform": "linux/amd64" })).await;
    let gpu = harness.register_agent("gpu", json!({ "platform": "linux/amd64", "gpu": "yes" })).await;
    let agent_record = |id| {
        let store = harness.state.store.clone();
        async move { store.agent_by_id(id).await.unwrap().unwrap() }
    };
    let plain_agent = agent_record(plain).await;
    assert!(server::queue::lease(&harness.state, &plain_agent).await.unwrap().is_none(), "`first` needs a gpu; `second` waits for it");
    let gpu_agent = agent_record(gpu).await;
    let job = server::queue::lease(&harness.state, &gpu_agent).await.unwrap().expect("the gpu agent gets `first`");
    assert_eq!(job.plan.workflows[0].name, "first");
    assert!(server::queue::lease(&harness.state, &plain_agent).await.unwrap().is_none(), "`second` still waits");
    harness.agent(&format!("/jobs/{}/done", job.id), json!({ "agent_id": gpu, "state": "failure", "steps": [] })).await;
    let after = build(&harness, 1).await;
    let second = after["workflows"].as_array().unwrap().iter().find(|workflow| workflow["name"] == "second").unwrap().clone();
    assert_eq!(second["state"], "skipped", "{after}");
    assert_eq!(second["reason"], "a workflow it depends on failed");
    assert_eq!(after["state"], "failure");
}
both!(workflows_go_to_agents_with_their_labels_after_their_dependencies, labels_and_dependencies);

async fn job_secrets(harness: Harness) {
    let pipeline = "steps:\n  deploy:\n    image: gantry-test/busybox:latest\n    environment:\n      TOKEN:\n        from_secret: deploy_token\n    commands: [\"true\"]\n";
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", pipeline)]);
    let repo = harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::PUT, "/api/v1/repos/acme/app/secrets/deploy_token", Some(json!({ "value": "v4lue" }))).await;
    harness.admin(Method::PUT, "/api/v1/repos/acme/app/secrets/unused", Some(json!({ "value": "not-sent" }))).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("agent-1", json!({})).await;
    let job = lease_one(&harness, agent).await;
    assert_eq!(job["secrets"], json!({ "deploy_token": "v4lue" }), "only what the steps reference");

    let repo_record = harness.state.store.repo_by_id(repo["id"].as_i64().unwrap()).await.unwrap().unwrap();
    let mut build_record = harness.state.store.build_by_number(repo_record.id, 1).await.unwrap().unwrap();
    let plan: pipeline::Plan = serde_json::from_value(job["plan"].clone()).unwrap();
    build_record.event = "pull_request".into();
    let refused = server::secrets::for_job(&harness.state, &repo_record, &build_record, &plan).await.unwrap_err();
    assert!(refused.contains("not available to pull_request builds"), "{refused}");
    build_record.from_fork = true;
    let refused = server::secrets::for_job(&harness.state, &repo_record, &build_record, &plan).await.unwrap_err();
    assert!(refused.contains("not given to pull requests from forks"), "{refused}");
    assert!(!refused.contains("v4lue"));

    harness
        .admin(Method::PUT, "/api/v1/repos/acme/app/secrets/deploy_token", Some(json!({ "value": "v4lue", "images": ["plugins/ssh"] })))
        .await;
    build_record.event = "manual".into();
    build_record.from_fork = false;
    let refused = server::secrets::for_job(&harness.state, &repo_record, &build_record, &plan).await.unwrap_err();
    assert!(refused.contains("only these images"), "{refused}");
}
both!(a_job_carries_only_the_secrets_its_steps_may_have, job_secrets);

/// A Drone pipeline pulling its step image from the password-protected test registry with the
/// logins of three `image_pull_secrets`: a usable one, a broken one and one the repository lacks.
const PULLING_PIPELINE: &str = "kind: pipeline\ntype: docker\nname: default\nsteps:\n  - name: build\n    image: 127.0.0.1:5001/team/builder:1\n    commands: [\"true\"]\nimage_pull_secrets:\n  - dockerconfig\n  - broken_config\n  - missing_config\n";

/// A Docker config JSON as `docker login` writes it: `auth` for one registry (base64 of
/// `pull-user:pull-pass`), fields for Docker Hub under its v1 address.
const DOCKER_CONFIG: &str = r#"{"auths":{"127.0.0.1:5001":{"auth":"cHVsbC11c2VyOnB1bGwtcGFzcw=="},"https://index.docker.io/v1/":{"username":"hub-user","password":"hub-pass"}}}"#;

/// What a job carries, as (host, username, password).
fn registries_of(job: &Value) -> Vec<(String, String, String)> {
    job["registries"]
        .as_array()
        .map(|registries| {
            registries
                .iter()
                .map(|auth| {
                    let field = |name: &str| auth[name].as_str().unwrap().to_owned();
                    (field("host"), field("username"), field("password"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn login(host: &str, username: &str, password: &str) -> (String, String, String) {
    (host.to_owned(), username.to_owned(), password.to_owned())
}

async fn job_registries(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".drone.yml", PULLING_PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    for (host, username, password) in [("127.0.0.1:5001", "repo-user", "repo-pass"), ("https://GHCR.io/", "ghcr-user", "ghcr-pass")] {
        let (status, answer) = harness
            .admin(
                Method::PUT,
                &format!("/api/v1/repos/acme/app/registries/{}", host.replace('/', "%2F")),
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    for (name, value) in [("dockerconfig", DOCKER_CONFIG), ("broken_config", "{\"auths\": broken-config-value")] {
        let (status, answer) =
            harness.admin(Method::PUT, &format!("/api/v1/repos/acme/app/secrets/{name}"), Some(json!({ "value": value }))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("agent-1", json!({})).await;

    let (job, warnings) = crate::harness::captured_logs(lease_one(&harness, agent)).await;
    assert_eq!(
        registries_of(&job),
        [
            login("127.0.0.1:5001", "pull-user", "pull-pass"),
            login("docker.io", "hub-user", "hub-pass"),
            login("ghcr.io", "ghcr-user", "ghcr-pass")
        ],
        "the pipeline's image_pull_secrets first, then the repository's logins for other hosts: {job}"
    );
    assert_eq!(job["secrets"], json!({}), "image_pull_secrets are logins for the agent, not secrets for steps");
    assert_eq!(build(&harness, 1).await["workflows"][0]["state"], "running", "a broken or missing pull secret does not stop the job");
    for name in ["broken_config", "missing_config"] {
        assert!(warnings.lines().any(|line| line.contains("WARN") && line.contains(name)), "no warning names {name}:\n{warnings}");
    }
    assert!(!warnings.contains("broken-config-value") && !warnings.contains("pull-pass"), "a secret's value was logged:\n{warnings}");

    // Without the repository's own logins, a job carries what the pipeline names alone.
    harness.admin(Method::DELETE, "/api/v1/repos/acme/app/registries/ghcr.io", None).await;
    harness.admin(Method::DELETE, "/api/v1/repos/acme/app/registries/127.0.0.1:5001", None).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let job = lease_one(&harness, agent).await;
    assert_eq!(registries_of(&job), [login("127.0.0.1:5001", "pull-user", "pull-pass"), login("docker.io", "hub-user", "hub-pass")]);

    // A pull secret whose events leave this build's event out is withheld, as a secret would be.
    harness
        .admin(Method::PUT, "/api/v1/repos/acme/app/secrets/dockerconfig", Some(json!({ "value": DOCKER_CONFIG, "events": ["tag"] })))
        .await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let job = lease_one(&harness, agent).await;
    assert!(registries_of(&job).is_empty(), "{job}");
    assert!(job.get("registries").is_none(), "no logins, no field on the wire: {job}");
}
both!(a_job_carries_the_repositorys_registry_logins_and_its_image_pull_secrets, job_registries);

async fn manual_variables(harness: Harness) {
    let pipeline = "steps:\n  greet:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo hello ${WHO}\n";
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", pipeline)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, build) = harness
        .admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "branch": "main", "variables": { "WHO": "world" } })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    let agent = harness.register_agent("agent-1", json!({})).await;
    let job = lease_one(&harness, agent).await;
    let step = &job["plan"]["workflows"][0]["steps"].as_array().unwrap().iter().find(|step| step["name"] == "greet").unwrap().clone();
    assert_eq!(step["commands"][0], "echo hello world", "substituted: {step}");
    assert_eq!(job["plan"]["workflows"][0]["environment"]["WHO"], "world", "and in every step's environment");
    let (status, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds/1/restart", None).await;
    assert_eq!(status, StatusCode::CREATED);
    let restarted = harness
        .state
        .store
        .build_by_number(harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap().id, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restarted.variables.get("WHO").map(String::as_str), Some("world"), "a restart keeps the variables");
    assert_eq!(restarted.trigger, "restart:1");
}
both!(a_manual_build_takes_variables_and_a_restart_keeps_them, manual_variables);

async fn interrupted_trigger(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let repo = harness.repo("acme/app", &url, json!({})).await;
    // What a server that died mid-trigger leaves: a numbered build, no workflows.
    let half = store::NewBuild {
        repo_id: repo["id"].as_i64().unwrap(),
        event: "push".into(),
        state: proto::State::Pending,
        reference: "refs/heads/main".into(),
        branch: "main".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        message: String::new(),
        author: String::new(),
        trigger: "webhook".into(),
        pull_request: None,
        reason: None,
        diagnostics: Vec::new(),
        variables: Default::default(),
        from_fork: false,
        approved_by: None,
    };
    harness.state.store.create_build(&half, &[], 1_000).await.unwrap();
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    server::queue::fail_interrupted_builds(&harness.state).await.unwrap();
    let interrupted = build(&harness, 1).await;
    assert_eq!(interrupted["state"], "error", "{interrupted}");
    assert!(interrupted["reason"].as_str().unwrap().contains("restart the build"));
    assert_eq!(build(&harness, 2).await["state"], "pending", "a build that is whole is left alone");
}
both!(a_build_left_without_workflows_by_a_dying_server_fails_with_the_reason, interrupted_trigger);
