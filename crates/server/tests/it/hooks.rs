//! Webhooks: deliveries copied from each forge's documentation (the fixtures of the `forge`
//! crate), re-pointed at a real local repository and signed, start builds; forged, repeated,
//! oversized and uninteresting deliveries do not.

use axum::http::{Method, StatusCode};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Harness, PIPELINE, commit, git, git_repo};

const SECRET: &str = "hook-secret";

fn fixture(path: &str) -> Value {
    let file = format!("{}/../forge/tests/data/webhooks/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).expect("fixture")).expect("fixture JSON")
}

fn github_signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// GitHub's push payload, for `sha` on `main`, with `message` as the head commit's.
fn github_push(sha: &str, message: &str) -> Vec<u8> {
    let mut payload = fixture("github/push.json");
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    payload["head_commit"]["id"] = json!(sha);
    payload["head_commit"]["message"] = json!(message);
    if let Some(commits) = payload["commits"].as_array_mut() {
        for commit in commits {
            commit["id"] = json!(sha);
            commit["message"] = json!(message);
        }
    }
    serde_json::to_vec(&payload).unwrap()
}

async fn deliver_github(harness: &Harness, event: &str, delivery: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let signature = github_signature(&body);
    let headers = [
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
        ("content-type", "application/json"),
    ];
    harness.raw("/api/hooks/acme/app", &headers, body).await
}

async fn builds(harness: &Harness) -> Vec<Value> {
    let (_, list) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds", None).await;
    list.as_array().cloned().unwrap_or_default()
}

async fn github_push_starts_one_build(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let body = github_push(&sha, "Update README");
    let (status, answer) = deliver_github(&harness, "push", "delivery-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["builds"], json!([1]));
    let (_, build) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    assert_eq!(build["event"], "push");
    assert_eq!(build["commit"], sha);
    assert_eq!(build["branch"], "main");
    assert_eq!(build["trigger"], "webhook");
    assert_eq!(build["state"], "pending");
    assert_eq!(build["workflows"][0]["steps"].as_array().unwrap().len(), 2, "clone and build: {build}");

    // The forge retries a delivery it thinks failed: same id, no second build.
    let (status, answer) = deliver_github(&harness, "push", "delivery-1", body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["ignored"].as_str().unwrap().contains("already received"), "{answer}");
    assert_eq!(builds(&harness).await.len(), 1);

    // Removing the repository removes its mirror too.
    let mirrors = || {
        let root = harness.dir.path().join("data/git");
        std::fs::read_dir(root).unwrap().filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".git")).count()
    };
    assert_eq!(mirrors(), 1);
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/repos/acme/app", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(mirrors(), 0, "the mirror is gone");
}
both!(a_signed_github_push_starts_one_build_even_when_redelivered, github_push_starts_one_build);

async fn refused_deliveries(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let body = github_push(&sha, "Update README");

    let mut tampered = body.clone();
    let signature = github_signature(&body);
    let position = tampered.len() / 2;
    tampered[position] ^= 1;
    let headers = [("x-github-event", "push"), ("x-github-delivery", "d-2"), ("x-hub-signature-256", signature.as_str())];
    let (status, answer) = harness.raw("/api/hooks/acme/app", &headers, tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(!answer.to_string().contains(SECRET));

    let (status, _) = harness.raw("/api/hooks/acme/app", &[("x-github-event", "push"), ("x-github-delivery", "d-3")], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an unsigned delivery");

    let (status, answer) = deliver_github(&harness, "issues", "d-4", br#"{"action":"opened"}"#.to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "unknown events are accepted and ignored: {answer}");

    let (status, answer) = deliver_github(&harness, "push", "d-5", github_push(&sha, "Fix typo [skip ci]")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert!(answer["ignored"].as_str().unwrap().contains("skip CI"), "{answer}");

    let (status, answer) = deliver_github(&harness, "push", "d-6", vec![b' '; 6 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["code"], "payload_too_large");

    let (status, _) = harness.raw("/api/hooks/acme/unknown", &[], b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "as for a registered repository: no telling which exist");
    assert!(builds(&harness).await.is_empty(), "none of these started a build");
}
both!(forged_unknown_skipped_and_oversized_deliveries_start_nothing, refused_deliveries);

async fn gitea_and_gitlab_pushes(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "gitea" })).await;
    let mut payload = fixture("gitea/push.json");
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    let body = serde_json::to_vec(&payload).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    let headers = [("x-gitea-event", "push"), ("x-gitea-delivery", "g-1"), ("x-gitea-signature", signature.as_str())];
    let (status, answer) = harness.raw("/api/hooks/acme/app", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, _) = harness.admin(Method::PATCH, "/api/v1/repos/acme/app", Some(json!({ "forge": "gitlab" }))).await;
    assert_eq!(status, StatusCode::OK);
    let mut payload = fixture("gitlab/push.json");
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    payload["checkout_sha"] = json!(sha);
    let body = serde_json::to_vec(&payload).unwrap();
    let (status, _) =
        harness.raw("/api/hooks/acme/app", &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let headers = [("x-gitlab-event", "Push Hook"), ("x-gitlab-token", SECRET), ("x-gitlab-event-uuid", "l-1")];
    let (status, answer) = harness.raw("/api/hooks/acme/app", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let all = builds(&harness).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|build| build["commit"] == sha.as_str() && build["event"] == "push"));
}
both!(gitea_and_gitlab_deliveries_start_builds, gitea_and_gitlab_pushes);

async fn fork_pull_request(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let head = commit(&work, &[("feature.txt", "from a fork")], "Add a feature");
    git(&work, &["push", "-q", "origin", "HEAD:refs/pull/2/head"]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let mut payload = fixture("github/pull_request_opened.json");
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["pull_request"]["base"]["ref"] = json!("main");
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone-else/app");
    let body = serde_json::to_vec(&payload).unwrap();
    let (status, answer) = deliver_github(&harness, "pull_request", "pr-1", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, build) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    assert_eq!(build["event"], "pull_request");
    assert_eq!(build["commit"], head);
    assert_eq!(build["reference"], "refs/pull/2/head");
    assert_eq!(build["pull_request"], "2");
    let stored = harness.state.store.build_by_id(build["id"].as_i64().unwrap()).await.unwrap().unwrap();
    assert!(stored.from_fork, "the head repository differs from the base");
}
both!(a_pull_request_from_a_fork_builds_its_head_and_is_marked_as_a_fork, fork_pull_request);

async fn tag_push(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    git(&work, &["tag", "-a", "v1.0.0", "-m", "First release"]);
    git(&work, &["push", "-q", "origin", "v1.0.0"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let mut payload = fixture("github/push_tag.json");
    payload["ref"] = json!("refs/tags/v1.0.0");
    payload["after"] = json!(sha);
    if payload["head_commit"].is_object() {
        payload["head_commit"]["id"] = json!(sha);
    }
    let (status, answer) = deliver_github(&harness, "push", "tag-1", serde_json::to_vec(&payload).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, build) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    assert_eq!(build["event"], "tag");
    assert_eq!(build["reference"], "refs/tags/v1.0.0");
    assert_eq!(build["commit"], sha);
}
both!(a_tag_push_starts_a_tag_build, tag_push);

async fn polling(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "poll_interval_seconds": 60 })).await;
    let repo = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert!(server::background::poll_repo(&harness.state, &repo).await.unwrap().is_empty(), "the first poll only remembers");
    let sha = commit(&work, &[("a.txt", "a")], "Change a");
    git(&work, &["tag", "v2"]);
    git(&work, &["push", "-q", "origin", "main", "v2"]);
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/feature"]);
    let started = server::background::poll_repo(&harness.state, &repo).await.unwrap();
    assert_eq!(started.len(), 3, "main moved, feature appeared, v2 appeared: {started:?}");
    let (_, list) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds", None).await;
    let mut seen: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|build| (build["event"].as_str().unwrap().to_owned(), build["reference"].as_str().unwrap().to_owned()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("push".into(), "refs/heads/feature".into()), ("push".into(), "refs/heads/main".into()), ("tag".into(), "refs/tags/v2".into())]
    );
    assert!(list.as_array().unwrap().iter().all(|build| build["commit"] == sha.as_str() && build["trigger"] == "poll"));
    assert!(server::background::poll_repo(&harness.state, &repo).await.unwrap().is_empty(), "nothing new, nothing built");
}
both!(polling_builds_moved_branches_and_new_tags_once, polling);
