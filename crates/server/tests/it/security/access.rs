//! Trust, secrets, accounts, agents and state (items 2, 4, 6, 7, 10, 11, 12, 14 and 17 of the
//! attack report): a fork, a read-only user, a repository admin, a rogue agent and a flood of
//! requests get no more than they should.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use server::trigger::{BuildRequest, Outcome};

use crate::both;
use crate::harness::{ADMIN_TOKEN, AGENT_SECRET, Db, Harness, PIPELINE, Recorder, commit, git, git_repo};

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A pull request from a fork, as a webhook would ask for it, of the head `commit` pushed as
/// `refs/pull/2/head`.
fn fork_pull_request(commit: &str) -> BuildRequest {
    BuildRequest {
        event: "pull_request".into(),
        reference: "refs/pull/2/head".into(),
        branch: "main".into(),
        commit: Some(commit.to_owned()),
        pull_request: Some("2".into()),
        source_branch: Some("feature".into()),
        target_branch: Some("main".into()),
        action: Some("opened".into()),
        from_fork: true,
        trigger: "webhook".into(),
        honour_skip_ci: true,
        ..BuildRequest::default()
    }
}

/// Registers `acme/app` on a repository with `pipeline`, and pushes a fork's change as pull
/// request 2; returns the head commit.
async fn repo_with_fork_head(harness: &Harness, pipeline: &str, settings: Value) -> String {
    repo_with_fork_head_files(harness, &[(".woodpecker.yml", pipeline)], settings).await
}

/// `repo_with_fork_head` with the repository's `files`.
async fn repo_with_fork_head_files(harness: &Harness, files: &[(&str, &str)], settings: Value) -> String {
    let (url, _, work) = git_repo(harness.dir.path(), files);
    let head = commit(&work, &[("feature.txt", "from a fork")], "Add a feature");
    git(&work, &["push", "-q", "origin", "HEAD:refs/pull/2/head"]);
    harness.repo("acme/app", &url, settings).await;
    head
}

async fn start(harness: &Harness, request: BuildRequest) -> store::BuildRecord {
    let repo = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    match server::trigger::start_build(&harness.state, &repo, request).await.unwrap() {
        Outcome::Started(build) => *build,
        Outcome::Ignored(reason) => panic!("no build: {reason}"),
    }
}

/// What the queue hands `agent` now (no long-poll).
async fn lease_now(harness: &Harness, agent: i64) -> Option<proto::agent::Job> {
    let record = harness.state.store.agent_by_id(agent).await.unwrap().unwrap();
    server::queue::lease(&harness.state, &record).await.unwrap()
}

async fn build(harness: &Harness, number: i64) -> Value {
    let (status, build) = harness.admin(Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}"), None).await;
    assert_eq!(status, StatusCode::OK, "{build}");
    build
}

/// A user with `role` on `acme/app`; their token.
async fn member(harness: &Harness, login: &str, role: &str) -> String {
    let token = harness.user(login).await;
    let (status, answer) =
        harness.admin(Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": role }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    token
}

// ---------------------------------------------------------------------------------------------
// 2. Fork pull requests run with no trust, and wait for a maintainer when the repository says so

async fn fork_trust(harness: Harness) {
    let all = json!({ "privileged": true, "volumes": true, "network": true });
    let head = repo_with_fork_head(&harness, PIPELINE, json!({ "trust": all, "approval": "none" })).await;
    let agent = harness.register_agent("agent", json!({})).await;

    start(&harness, BuildRequest { from_fork: false, ..fork_pull_request(&head) }).await;
    let own = lease_now(&harness, agent).await.expect("the repository's own pull request");
    assert!(own.trust.privileged && own.trust.volumes && own.trust.network, "the repository's trust for its own branches");

    start(&harness, fork_pull_request(&head)).await;
    let fork = lease_now(&harness, agent).await.expect("the fork's pull request");
    assert_eq!(fork.build_number, 2);
    assert!(!fork.trust.is_any(), "a fork's build leases with no trust at all: {:?}", fork.trust);
}
both!(a_forks_pull_request_leases_with_no_trust_even_on_a_trusted_repository, fork_trust);

async fn fork_approval(harness: Harness) {
    let head = repo_with_fork_head(&harness, PIPELINE, json!({})).await;
    let (_, repo) = harness.admin(Method::GET, "/api/v1/repos/acme/app", None).await;
    assert_eq!(repo["approval"], "forks", "forks wait by default");
    let agent = harness.register_agent("agent", json!({})).await;
    let reader = member(&harness, "reader", "read").await;
    let maintainer = member(&harness, "maintainer", "write").await;

    let blocked = start(&harness, fork_pull_request(&head)).await;
    assert_eq!(blocked.state, proto::State::Blocked);
    let shown = build(&harness, 1).await;
    assert_eq!((shown["state"].as_str(), shown["from_fork"].as_bool()), (Some("blocked"), Some(true)), "{shown}");
    assert_eq!(shown["workflows"][0]["state"], "blocked", "{shown}");
    assert!(lease_now(&harness, agent).await.is_none(), "nothing of a blocked build reaches an agent");

    // A reader may look, not approve.
    let (status, _) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds/1/approve", Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, approved) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds/1/approve", Some(&maintainer), None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!((approved["state"].as_str(), approved["approved_by"].as_str()), (Some("pending"), Some("user:maintainer")));
    assert!(approved["approved"].as_i64().is_some());
    let job = lease_now(&harness, agent).await.expect("an approved build is queued");
    assert_eq!(job.build_number, 1);
    assert!(!job.trust.is_any() && job.secrets.is_empty(), "approval does not make a fork trusted");
    let (status, _) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds/1/approve", Some(&maintainer), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "approved once");

    // Declined: it ends, saying who declined it.
    start(&harness, fork_pull_request(&head)).await;
    let (status, declined) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds/2/decline", Some(&maintainer), None).await;
    assert_eq!(status, StatusCode::OK, "{declined}");
    assert_eq!(declined["state"], "killed");
    assert_eq!(declined["workflows"][0]["reason"], "declined by maintainer");

    // The repository's own pull requests and pushes do not wait.
    let own = start(&harness, BuildRequest { from_fork: false, ..fork_pull_request(&head) }).await;
    assert_eq!(own.state, proto::State::Pending);
    // A maintainer restarting a fork's build runs it at once and is its approver.
    let (status, restarted) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds/2/restart", Some(&maintainer), None).await;
    assert_eq!(status, StatusCode::CREATED, "{restarted}");
    assert_eq!((restarted["state"].as_str(), restarted["approved_by"].as_str()), (Some("pending"), Some("user:maintainer")));
}
both!(a_forks_build_waits_for_a_maintainers_approval_which_is_recorded, fork_approval);

// ---------------------------------------------------------------------------------------------
// Registry logins: only repository admins write them, nobody reads a password back, and a fork's
// build gets none, neither the repository's own nor those of its `image_pull_secrets`

const PULL_SECRET_PIPELINE: &str = "kind: pipeline
type: docker
name: default
steps:
  - name: build
    image: 127.0.0.1:5001/team/builder:1
    commands: [\"true\"]
image_pull_secrets:
  - dockerconfig
";

async fn registry_logins_by_role(harness: Harness) {
    let password = "registry-password-never-echoed";
    let head = repo_with_fork_head_files(&harness, &[(".drone.yml", PULL_SECRET_PIPELINE)], json!({ "approval": "none" })).await;
    let reader = member(&harness, "reader", "read").await;
    let writer = member(&harness, "writer", "write").await;
    let owner = member(&harness, "owner", "admin").await;
    let path = "/api/v1/repos/acme/app/registries/127.0.0.1:5001";
    let login = json!({ "username": "ci-bot", "password": password });

    let (status, answer) = harness.call(Method::PUT, path, None, Some(login.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    for (who, token) in [("reader", &reader), ("writer", &writer)] {
        let (status, answer) = harness.call(Method::PUT, path, Some(token), Some(login.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a {who} adds no registry login: {answer}");
        assert!(!answer.to_string().contains(password), "{answer}");
    }
    let (status, written) = harness.call(Method::PUT, path, Some(&owner), Some(login.clone())).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    for (who, token) in [("reader", &reader), ("writer", &writer)] {
        let (status, answer) = harness.call(Method::DELETE, path, Some(token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a {who} removes no registry login: {answer}");
    }
    let (status, _) = harness.call(Method::DELETE, path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = harness.call(Method::GET, "/api/v1/repos/acme/app/registries", Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "readers do not see which registries a repository logs in to");
    let (status, _) = harness.call(Method::GET, "/api/v1/repos/acme/app/registries", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, listed) = harness.call(Method::GET, "/api/v1/repos/acme/app/registries", Some(&writer), None).await;
    assert_eq!((status, listed[0]["username"].as_str()), (StatusCode::OK, Some("ci-bot")), "{listed}");
    for answer in [&written, &listed] {
        assert!(!answer.to_string().contains(password), "a registry password was echoed: {answer}");
    }

    // The pull secret is available to pull requests, and still withheld from a fork's.
    let config = r#"{"auths":{"ghcr.io":{"username":"pull-user","password":"pull-secret-password"}}}"#;
    let (status, _) = harness
        .admin(Method::PUT, "/api/v1/repos/acme/app/secrets/dockerconfig", Some(json!({ "value": config, "events": ["pull_request"] })))
        .await;
    assert_eq!(status, StatusCode::OK);
    let agent = harness.register_agent("agent", json!({})).await;
    start(&harness, BuildRequest { from_fork: false, ..fork_pull_request(&head) }).await;
    let own = lease_now(&harness, agent).await.expect("the repository's own pull request");
    let hosts: Vec<&str> = own.registries.iter().map(|auth| auth.host.as_str()).collect();
    assert_eq!(hosts, ["ghcr.io", "127.0.0.1:5001"], "the repository's own pull request logs in: {:?}", own.registries);
    start(&harness, fork_pull_request(&head)).await;
    let fork = lease_now(&harness, agent).await.expect("the fork's pull request");
    assert_eq!(fork.build_number, 2);
    assert!(fork.registries.is_empty(), "a fork's build gets no registry login: {:?}", fork.registries);
}
both!(registry_logins_are_written_by_admins_only_and_withheld_from_forks, registry_logins_by_role);

// ---------------------------------------------------------------------------------------------
// 4. A secret limited to images reaches only plugin steps of those images

const IMAGE_LIMITED: &str = "steps:
  publish:
    image: acme/plugin
    settings:
      token:
        from_secret: deploy_token
";

const IMAGE_LIMITED_WITH_COMMANDS: &str = "steps:
  publish:
    image: acme/plugin
    environment:
      TOKEN:
        from_secret: deploy_token
    commands:
      - echo $TOKEN | base64
";

const IMAGE_LIMITED_WITH_ENTRYPOINT: &str = "steps:
  publish:
    image: acme/plugin
    entrypoint: [sh, -c, 'echo $PLUGIN_TOKEN']
    settings:
      token:
        from_secret: deploy_token
";

async fn image_limited_secrets(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", IMAGE_LIMITED)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, answer) = harness
        .admin(
            Method::PUT,
            "/api/v1/repos/acme/app/secrets/deploy_token",
            Some(json!({ "value": "limited-value", "images": ["acme/plugin"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let agent = harness.register_agent("agent", json!({})).await;

    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let plugin = lease_now(&harness, agent).await.expect("the plugin step's job");
    assert_eq!(plugin.secrets.get("deploy_token").map(String::as_str), Some("limited-value"));

    for (number, pipeline) in [(2, IMAGE_LIMITED_WITH_COMMANDS), (3, IMAGE_LIMITED_WITH_ENTRYPOINT)] {
        commit(&work, &[(".woodpecker.yml", pipeline)], "Print the token");
        git(&work, &["push", "-q", "origin", "main"]);
        harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
        assert!(lease_now(&harness, agent).await.is_none(), "a step running its own code gets no image-limited secret");
        let refused = build(&harness, number).await;
        assert_eq!(refused["state"], "error", "{refused}");
        let reason = refused["workflows"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("limited to plugin images"), "{reason}");
        assert!(!refused.to_string().contains("limited-value"));
    }
}
both!(an_image_limited_secret_reaches_only_plugin_steps_of_that_image, image_limited_secrets);

// ---------------------------------------------------------------------------------------------
// 6. Sign-in cannot exhaust memory, and failed sign-ins are throttled

async fn sign_in_flood(harness: Harness) {
    harness.user("alice").await;
    let wrong = json!({ "login": "alice", "password": "not her password" });
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(harness.call(Method::POST, "/api/v1/login", None, Some(wrong.clone())).await.0);
    }
    assert!(statuses.iter().all(|status| *status == StatusCode::UNAUTHORIZED), "{statuses:?}");
    let response =
        harness.response(Method::POST, "/api/v1/login", None, Some(json!({ "login": "alice", "password": "password-of-test" }))).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits after 10 failures");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 60, "{retry_after}");

    // 150 sign-ins at once for many logins: answered, with argon2 never running more than a
    // few times at once (each run holds ~19 MiB).
    let requests: Vec<_> = (0..150)
        .map(|index| {
            let app = harness.app.clone();
            tokio::spawn(async move {
                use tower::ServiceExt as _;
                let body = json!({ "login": format!("user-{index}"), "password": "guess" }).to_string();
                let request = axum::http::Request::post("/api/v1/login")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                app.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for request in requests {
        seen.insert(request.await.unwrap());
    }
    assert!(seen.iter().all(|status| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(status)), "{seen:?}");
    let most = harness.state.login.most_concurrent_hashes();
    assert!((1..=4).contains(&most), "at most 4 password hashes at once, saw {most}");
}
both!(failed_sign_ins_are_throttled_with_retry_after_and_hashing_is_bounded, sign_in_flood);

// ---------------------------------------------------------------------------------------------
// 7. Agents have an identity of their own

async fn agent_identity(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let honest = harness.register_agent("honest", json!({})).await;
    let rogue = harness.register_agent("rogue", json!({ "platform": "*" })).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": honest })).await;
    let job_id = job["id"].as_i64().unwrap();

    // The shared secret registers and does nothing else.
    let (status, _) = harness.call(Method::POST, "/api/agent/v1/lease", Some(AGENT_SECRET), Some(json!({ "agent_id": honest }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The rogue agent's token cannot speak for the honest one...
    let rogue_token = harness.agent_token(rogue);
    let forged = json!({ "agent_id": honest, "state": "success", "steps": [] });
    let (status, _) =
        harness.call(Method::POST, &format!("/api/agent/v1/jobs/{job_id}/done"), Some(&rogue_token), Some(forged.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ...nor report on its job as itself.
    let line = json!([{ "at_ms": 1, "stream": "stdout", "text": "forged line" }]);
    for (path, body) in [
        (format!("/jobs/{job_id}/updates"), json!({ "agent_id": rogue, "logs": [{ "step": "build", "first_seq": 0, "lines": line }] })),
        (format!("/jobs/{job_id}/done"), json!({ "agent_id": rogue, "state": "success", "steps": [] })),
    ] {
        let (status, answer) = harness.agent(&path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {answer}");
    }
    let running = build(&harness, 1).await;
    assert_eq!(running["workflows"][0]["state"], "running", "{running}");
    assert_eq!(running["workflows"][0]["steps"][0]["log_lines"], 0, "{running}");

    // An admin sees both, with their labels, and removes the rogue one: its token stops working.
    let (status, agents) = harness.admin(Method::GET, "/api/v1/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = agents.as_array().unwrap().iter().map(|agent| agent["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["honest", "rogue"]);
    assert_eq!(agents[1]["labels"]["platform"], "*");
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/agents/rogue", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = harness.agent("/heartbeat", json!({ "agent_id": rogue, "jobs": [] })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a removed agent's token is refused");
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/agents/rogue", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Removing the agent that runs a job re-queues it.
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/agents/honest", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let requeued = build(&harness, 1).await;
    assert_eq!(requeued["workflows"][0]["state"], "pending", "{requeued}");
    assert!(requeued["workflows"][0]["reason"].as_str().unwrap().contains("agent honest was removed by admin-token"), "{requeued}");
}
both!(an_agent_speaks_only_for_itself_and_an_admin_can_list_and_remove_agents, agent_identity);

async fn agent_names(harness: Harness) {
    let first = harness.register_agent("builder", json!({})).await;
    let register = json!({ "name": "builder", "labels": {}, "capacity": 1, "version": "test" });
    let (status, answer) = harness.agent("/register", register.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "the name of a connected agent is not taken: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("give this agent its own --name"), "{answer}");
    let (status, _) = harness.agent("/heartbeat", json!({ "agent_id": first, "jobs": [] })).await;
    assert_eq!(status, StatusCode::OK, "the connected agent goes on");

    let mut with_token = register.clone();
    with_token["token"] = json!(harness.agent_token(first));
    let again = harness.agent_ok("/register", with_token).await;
    assert_eq!(again["agent_id"], first, "its own token proves a restart");
    let (status, _) = harness.agent("/heartbeat", json!({ "agent_id": first, "jobs": [] })).await;
    assert_eq!(status, StatusCode::OK, "with the new token");
}
both!(a_name_held_by_a_connected_agent_is_taken_only_with_that_agents_token, agent_names);

// ---------------------------------------------------------------------------------------------
// 10. Metrics can ask for a token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_the_metrics_token_when_one_is_set() {
    let harness = Harness::with(Db::Sqlite, |config| config.metrics_token = Some("metrics-token".into())).await.unwrap();
    let (status, answer) = harness.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _) = harness.call(Method::GET, "/metrics", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = harness.call(Method::GET, "/metrics", Some("metrics-token"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("gantry_queue_depth"));
}

// ---------------------------------------------------------------------------------------------
// 11. Repository credentials are sealed, and the data folder is private

async fn sealed_credentials(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let secrets =
        json!({ "webhook_secret": "plain-hook-secret", "forge_token": "ghp_plain_forge_token", "clone_password": "plain-clone-password" });
    harness.repo("acme/app", &url, secrets).await;
    let stored = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert_eq!(stored.settings.forge_token.as_deref(), Some("ghp_plain_forge_token"), "the server reads them back");

    use std::os::unix::fs::PermissionsExt as _;
    let data = harness.dir.path().join("data");
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    let database = data.join("gantry.db");
    if database.exists() {
        assert_eq!(std::fs::metadata(&database).unwrap().permissions().mode() & 0o777, 0o600);
        // Nothing in the database's files holds a credential as written.
        harness.state.store.close().await;
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("gantry.db") {
                let bytes = std::fs::read(&path).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                for plain in ["plain-hook-secret", "ghp_plain_forge_token", "plain-clone-password"] {
                    assert!(!text.contains(plain), "{plain} is in {}", path.display());
                }
            }
        }
    }
}
both!(repository_credentials_are_sealed_and_the_data_folder_is_private, sealed_credentials);

// ---------------------------------------------------------------------------------------------
// 12. Sessions end, tokens are revocable and may expire, names have a length

async fn sessions_and_tokens(harness: Harness) {
    harness.user("alice").await;
    let response =
        harness.response(Method::POST, "/api/v1/login", None, Some(json!({ "login": "alice", "password": "password-of-test" }))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!cookie.contains("Secure"), "the server is reached over plain http here: {cookie}");
    let session = cookie.split(';').next().unwrap().strip_prefix("gantry_session=").unwrap().to_owned();

    // An API token, listed without its value, revoked, and refused at once.
    let (status, created) =
        harness.call(Method::POST, "/api/v1/user/tokens", Some(&session), Some(json!({ "name": "ci", "expires_in_days": 30 }))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(created["expires"].as_i64().unwrap() > created["id"].as_i64().unwrap());
    let (status, listed) = harness.call(Method::GET, "/api/v1/user/tokens", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = listed.as_array().unwrap().iter().map(|token| token["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["session", "api", "session", "api"], "the harness's sign-in and token, then ours: {listed}");
    assert!(!listed.to_string().contains(&token) && !listed.to_string().contains(&session));
    let (status, _) = harness.call(Method::POST, "/api/v1/logout", Some(&token), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an API token is revoked, not signed out");
    let id = created["id"].as_i64().unwrap();
    let (status, _) = harness.call(Method::DELETE, &format!("/api/v1/user/tokens/{id}"), Some(&session), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = harness.call(Method::GET, "/api/v1/user", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token stops working");

    // Another user's token cannot be revoked by alice (it looks like no token at all).
    let bob = harness.user("bob").await;
    let bobs = harness.state.store.list_tokens(harness.state.store.user_by_login("bob").await.unwrap().unwrap().id).await.unwrap();
    let (status, _) = harness.call(Method::DELETE, &format!("/api/v1/user/tokens/{}", bobs[0].id), Some(&session), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(harness.call(Method::GET, "/api/v1/user", Some(&bob), None).await.0, StatusCode::OK);

    // Signing out ends the session and clears the cookie.
    let response = harness.response(Method::POST, "/api/v1/logout", Some(&session), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(harness.call(Method::GET, "/api/v1/user", Some(&session), None).await.0, StatusCode::UNAUTHORIZED);

    // An expired token is refused.
    let user = harness.state.store.user_by_login("bob").await.unwrap().unwrap();
    let hash = server::crypto::token_hash("gta_expired_token");
    harness.state.store.create_token(user.id, "old", &hash, store::TokenKind::Api, Some(server::state::now_ms() - 1), 0).await.unwrap();
    assert_eq!(harness.call(Method::GET, "/api/v1/user", Some("gta_expired_token"), None).await.0, StatusCode::UNAUTHORIZED);
    let (status, answer) =
        harness.call(Method::POST, "/api/v1/user/tokens", Some(&bob), Some(json!({ "name": "x", "expires_in_days": 0 }))).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("expires_in_days")));
}
both!(signing_out_ends_the_session_and_tokens_are_listed_revoked_and_expire, sessions_and_tokens);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_the_server_is_reached_over_https() {
    let harness = Harness::with(Db::Sqlite, |config| config.public_url = "https://ci.example.com".into()).await.unwrap();
    harness.user("alice").await;
    let response =
        harness.response(Method::POST, "/api/v1/login", None, Some(json!({ "login": "alice", "password": "password-of-test" }))).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
}

async fn long_names(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let long = "x".repeat(5000);
    let cases = [
        (Method::POST, "/api/v1/users".to_owned(), json!({ "login": long, "password": "password-long" }), "login"),
        (Method::PUT, format!("/api/v1/repos/acme/app/secrets/{}", "s".repeat(200)), json!({ "value": "v" }), "name"),
        (Method::PUT, "/api/v1/repos/acme/app/secrets/big".to_owned(), json!({ "value": long.repeat(20) }), "value"),
        (Method::POST, "/api/v1/repos".to_owned(), json!({ "full_name": format!("acme/{long}"), "clone_url": url }), "full_name"),
        (Method::POST, "/api/v1/repos/acme/app/builds".to_owned(), json!({ "variables": { long.clone(): "v" } }), "variables"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = harness.admin(method.clone(), &path, Some(body)).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{method} {path}: {answer}");
    }
    let agent = json!({ "name": long, "labels": {}, "capacity": 1, "version": "test" });
    let (status, answer) = harness.agent("/register", agent).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")), "{answer}");
}
both!(overlong_names_and_values_are_refused_naming_the_field, long_names);

// ---------------------------------------------------------------------------------------------
// 14. A build is finalised once

async fn one_finisher(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (status, answer) = harness
        .admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(json!({ "kind": "webhook", "url": format!("{base}/finished") })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;

    // The same `done` twice at once (a retry racing the original), and a second server settling
    // the build at the same moment.
    let path = format!("/jobs/{}/done", job["id"]);
    let body = json!({ "agent_id": agent, "state": "success", "steps": [] });
    let (first, second, third) = tokio::join!(
        harness.agent(&path, body.clone()),
        harness.agent(&path, body.clone()),
        server::queue::settle_build(&harness.state, job["build_id"].as_i64().unwrap()),
    );
    assert_eq!((first.0, second.0), (StatusCode::OK, StatusCode::OK));
    third.unwrap();
    assert_eq!(build(&harness, 1).await["state"], "success");
    recorder.wait_for("/finished", 1).await;
    // Give a second notification every chance to arrive before counting.
    let (_, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let next = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    harness.agent_ok(&format!("/jobs/{}/done", next["id"]), json!({ "agent_id": agent, "state": "failure", "steps": [] })).await;
    let delivered = recorder.wait_for("/finished", 2).await;
    let numbers: Vec<i64> = delivered.iter().map(|(body, _)| body["build"]["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [1, 2], "build 1 was announced once");
}
both!(concurrent_dones_finish_a_build_once_and_only_the_winner_notifies, one_finisher);

// ---------------------------------------------------------------------------------------------
// 17. Unreadable stored data fails loudly

async fn corrupt_columns(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    harness.sql("UPDATE builds SET diagnostics = '[{\"no\": \"diagnostic\"}]'").await.unwrap();
    let (status, answer) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "not a build with no diagnostics: {answer}");
}
both!(a_builds_unreadable_diagnostics_are_an_error_not_an_empty_list, corrupt_columns);

const TWO_WORKFLOWS: &[(&str, &str)] = &[
    (".woodpecker/build.yml", "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo build\n"),
    (
        ".woodpecker/deploy.yml",
        "depends_on: [build]\nsteps:\n  deploy:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo deploy\n",
    ),
];

async fn corrupt_plan(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), TWO_WORKFLOWS);
    harness.repo("acme/app", &url, json!({})).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    harness.sql("UPDATE workflows SET plan = '{\"not\": \"a plan\"}' WHERE name = 'deploy'").await.unwrap();
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    harness.agent_ok(&format!("/jobs/{}/done", job["id"]), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;
    let settled = build(&harness, 1).await;
    let deploy = &settled["workflows"][1];
    assert_eq!(deploy["state"], "error", "not run as if it ran on success: {settled}");
    assert!(deploy["reason"].as_str().unwrap().contains("stored plan cannot be read"), "{settled}");
    assert_eq!(settled["state"], "error");
}
both!(a_dependent_workflow_whose_stored_plan_is_unreadable_ends_in_error, corrupt_plan);

/// A wrong sign-in from `peer`, with `forwarded` as `X-Forwarded-For` when given; its status.
async fn sign_in_from(harness: &Harness, peer: &str, forwarded: Option<&str>, login: &str) -> StatusCode {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::post("/api/v1/login").header("content-type", "application/json");
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let mut request = request.body(axum::body::Body::from(json!({ "login": login, "password": "a guess" }).to_string())).unwrap();
    let peer: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    harness.app.clone().oneshot(request).await.unwrap().status()
}

/// An attacker rotating `X-Forwarded-For` does not escape the per-address throttle of a server
/// not told to trust it; behind a proxy that is trusted, only the entry the proxy added counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_for_header_counts_only_when_the_server_trusts_its_proxy() {
    let direct = Harness::with(Db::Sqlite, |_| {}).await.unwrap();
    for index in 0..30 {
        let status = sign_in_from(&direct, "192.0.2.7", Some(&format!("198.51.100.{index}")), &format!("user-{index}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = sign_in_from(&direct, "192.0.2.7", Some("198.51.100.200"), "someone-else").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the connection's address is what counts");
    assert_eq!(sign_in_from(&direct, "192.0.2.8", None, "someone-else").await, StatusCode::UNAUTHORIZED);

    let proxied = Harness::with(Db::Sqlite, |config| config.trust_forwarded_for = true).await.unwrap();
    for index in 0..30 {
        // The client wrote the first entry itself; the proxy appended the real address.
        let forwarded = format!("203.0.113.{index}, 198.51.100.1");
        assert_eq!(sign_in_from(&proxied, "192.0.2.7", Some(&forwarded), &format!("user-{index}")).await, StatusCode::UNAUTHORIZED);
    }
    let status = sign_in_from(&proxied, "192.0.2.7", Some("203.0.113.250, 198.51.100.1"), "someone-else").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the address the proxy saw is throttled");
    let status = sign_in_from(&proxied, "192.0.2.7", Some("198.51.100.2"), "someone-else").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another client behind the same proxy is not");
}

/// An agent's token opens nothing of the user API and a user's token nothing of the agent
/// protocol; an agent may not declare labels without end.
async fn token_kinds(harness: Harness) {
    let agent = harness.register_agent("agent", json!({})).await;
    let agent_token = harness.agent_token(agent);
    let (status, _) = harness.call(Method::GET, "/api/v1/user", Some(&agent_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an agent is no user");
    let user = harness.user("alice").await;
    let (status, _) =
        harness.call(Method::POST, "/api/agent/v1/heartbeat", Some(&user), Some(json!({ "agent_id": agent, "jobs": [] }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a user is no agent");
    let (status, _) =
        harness.call(Method::POST, "/api/agent/v1/heartbeat", Some(ADMIN_TOKEN), Some(json!({ "agent_id": agent, "jobs": [] }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nor is the admin token");

    let labels: serde_json::Map<String, Value> = (0..100).map(|index| (format!("label-{index}"), json!("*"))).collect();
    let (status, answer) =
        harness.agent("/register", json!({ "name": "greedy", "labels": labels, "capacity": 1, "version": "test" })).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("labels")), "{answer}");
}
both!(agent_and_user_tokens_open_nothing_of_each_other, token_kinds);
