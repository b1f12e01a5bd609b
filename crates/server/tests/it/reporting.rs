//! What the server tells the outside world and keeps over time: commit statuses to the forge,
//! notifications when a build finishes (retried), superseded builds cancelled, logs resumed
//! from `Last-Event-ID` and deleted after the retention period, the secret key file.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Db, Harness, PIPELINE, Recorder, commit, git, git_repo};

/// Runs build 1 to `state` as an agent would.
async fn finish_build(harness: &Harness, state: &str) {
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    harness.agent_ok(&format!("/jobs/{}/done", job["id"]), json!({ "agent_id": agent, "state": state, "steps": [] })).await;
}

async fn statuses_and_notifications(harness: Harness) {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github", "forge_token": "forge-token", "forge_api_url": base })).await;
    for (kind, path) in [("webhook", "/flaky"), ("slack", "/slack")] {
        let (status, answer) = harness
            .admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(json!({ "kind": kind, "url": format!("{base}{path}") })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    finish_build(&harness, "success").await;

    // GitHub's "create a commit status": POST /repos/{owner}/{repo}/statuses/{sha}.
    let statuses = recorder.wait_for(&format!("/repos/acme/app/statuses/{sha}"), 3).await;
    let states: Vec<&str> = statuses.iter().map(|(body, _)| body["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "pending", "success"], "queued, running (pending on GitHub), finished");
    assert_eq!(statuses[2].0["context"], "gantry/manual");
    assert_eq!(statuses[2].0["target_url"], "http://gantry.test/repos/acme/app/builds/1");
    assert_eq!(statuses[2].1.as_deref(), Some("Bearer forge-token"));

    // The JSON notification failed once and was retried.
    let webhooks = recorder.wait_for("/flaky", 2).await;
    assert_eq!(webhooks[1].0["repo"], "acme/app");
    assert_eq!(webhooks[1].0["build"]["state"], "success");
    assert_eq!(webhooks[1].0["url"], "http://gantry.test/repos/acme/app/builds/1");
    let slack = recorder.wait_for("/slack", 1).await;
    assert!(slack[0].0["text"].as_str().unwrap().contains("acme/app build #1 success"), "{:?}", slack[0].0);
    assert_eq!(slack[0].0["attachments"][0]["color"], "good");
    assert!(!recorder.requests.lock().unwrap().iter().any(|(_, body, _)| body.to_string().contains("forge-token")));
}
both!(commit_statuses_and_notifications_reach_their_receivers, statuses_and_notifications);

async fn superseded(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "cancel_previous": true })).await;
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    commit(&work, &[("more.txt", "more")], "More");
    git(&work, &["push", "-q", "origin", "main"]);
    harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let (_, first) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    let (_, second) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/2", None).await;
    assert_eq!(first["state"], "killed", "{first}");
    assert_eq!(first["workflows"][0]["reason"], "superseded by build 2");
    assert_eq!(second["state"], "pending");
}
both!(a_newer_build_of_a_branch_cancels_the_older_one_when_asked, superseded);

async fn resume_and_retention(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (_, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let step = build["workflows"][0]["steps"][1]["id"].as_i64().unwrap();
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    let lines: Vec<Value> = (0..6).map(|n| json!({ "at_ms": n, "stream": "stdout", "text": format!("line {n}") })).collect();
    harness
        .agent_ok(
            &format!("/jobs/{}/updates", job["id"]),
            json!({ "agent_id": agent, "logs": [{ "step": "build", "first_seq": 0, "lines": lines }] }),
        )
        .await;
    harness.agent_ok(&format!("/jobs/{}/done", job["id"]), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;

    use tower::ServiceExt as _;
    let request = axum::http::Request::get(format!("/api/v1/repos/acme/app/builds/1/steps/{step}/log/stream"))
        .header("authorization", format!("Bearer {}", crate::harness::ADMIN_TOKEN))
        .header("last-event-id", "3")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = harness.app.clone().oneshot(request).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let ids: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("id: ")).collect();
    assert_eq!(ids, ["4", "5"], "resumes after the last id received: {text}");

    assert_eq!(server::background::remove_old_logs(&harness.state, Duration::from_secs(3600)).await.unwrap(), 0, "too young");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(server::background::remove_old_logs(&harness.state, Duration::from_millis(10)).await.unwrap() >= 1);
    let (_, text) = harness.admin(Method::GET, &format!("/api/v1/repos/acme/app/builds/1/steps/{step}/log"), None).await;
    assert_eq!(text, Value::String(String::new()), "the log is gone");
    let (_, after) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    assert_eq!(after["workflows"][0]["steps"][1]["log_lines"], 0);
    assert_eq!(server::background::remove_old_logs(&harness.state, Duration::from_millis(10)).await.unwrap(), 0, "once");
}
both!(logs_resume_from_the_last_event_id_and_go_after_the_retention_period, resume_and_retention);

#[tokio::test]
async fn the_secret_key_file_is_made_once_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let harness = Harness::new(Db::Sqlite).await.unwrap();
    let path = harness.dir.path().join("data/secret.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    let sealed = harness.state.secrets.seal(1, "name", "value");
    drop(harness.state);
    let reopened = server::crypto::SecretBox::load(None, &harness.dir.path().join("data")).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "kept, not replaced");
    assert_eq!(reopened.open(1, "name", &sealed).unwrap(), "value");
    let other = server::crypto::SecretBox::load(Some(&"ab".repeat(32)), harness.dir.path()).unwrap();
    assert!(other.open(1, "name", &sealed).is_err(), "GANTRY_SECRET_KEY takes the place of the file");
    assert!(server::crypto::SecretBox::load(Some("short"), harness.dir.path()).is_err());
}
