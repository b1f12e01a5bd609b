//! Commit statuses against a local double of each forge's API on 127.0.0.1: the double records
//! what it was sent and answers as the forge's docs show; the tests check method, path, headers
//! and body against those docs.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use forge::status::{CommitStatus, StatusError, StatusReporter, StatusTarget, api_base_from_clone_url, forge_state};
use proto::{ForgeKind, State};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

#[derive(Debug)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

impl Recorded {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_else(|| panic!("no header {name}"))
    }
}

/// A forge's API that answers every request with `status` and `response`.
struct Double {
    base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Double {
    async fn start(status: StatusCode, response: Value) -> Double {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            let response = response.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                recorded.lock().unwrap().push(Recorded { method, path: uri.path().to_owned(), headers, body });
                (status, axum::Json(response))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Double { base: format!("http://{address}"), requests }
    }

    fn only_request(&self) -> Recorded {
        let mut requests = self.requests.lock().unwrap();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests.pop().unwrap()
    }
}

fn status(state: State) -> CommitStatus {
    CommitStatus {
        commit: SHA.to_owned(),
        state,
        context: "gantry/push".to_owned(),
        description: "the build passed".to_owned(),
        target_url: "https://ci.example.com/repos/1/builds/7".to_owned(),
    }
}

fn target(forge: ForgeKind, api_base: &str, full_name: &str) -> StatusTarget {
    StatusTarget { forge, api_base: api_base.to_owned(), full_name: full_name.to_owned(), token: TOKEN.to_owned() }
}

/// https://docs.github.com/en/rest/commits/statuses#create-a-commit-status: `POST
/// /repos/{owner}/{repo}/statuses/{sha}`, body `state` (error, failure, pending, success),
/// `target_url`, `description`, `context`; the recommended headers; 201 with the status.
#[tokio::test]
async fn github_creates_a_status_as_documented() {
    let documented = json!({
        "url": format!("https://api.github.com/repos/octocat/Hello-World/statuses/{SHA}"),
        "id": 1, "node_id": "MDY6U3RhdHVzMQ==", "state": "success",
        "description": "Build has completed successfully", "target_url": "https://ci.example.com/1000/output",
        "context": "continuous-integration/jenkins", "created_at": "2012-07-20T01:19:13Z", "updated_at": "2012-07-20T01:19:13Z"
    });
    let double = Double::start(StatusCode::CREATED, documented).await;
    let reporter = StatusReporter::new().unwrap();
    reporter.send(&target(ForgeKind::Github, &double.base, "octocat/Hello-World"), &status(State::Success)).await.unwrap();
    let request = double.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, format!("/repos/octocat/Hello-World/statuses/{SHA}"));
    assert_eq!(request.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(request.header("accept"), "application/vnd.github+json");
    assert_eq!(request.header("x-github-api-version"), "2022-11-28");
    assert!(request.header("user-agent").starts_with("gantry/"));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.body,
        json!({
            "state": "success",
            "target_url": "https://ci.example.com/repos/1/builds/7",
            "description": "the build passed",
            "context": "gantry/push",
        })
    );
}

/// GitHub Enterprise serves the same API under `/api/v3`.
#[tokio::test]
async fn github_enterprise_under_a_path() {
    let double = Double::start(StatusCode::CREATED, json!({})).await;
    let api_base = format!("{}/api/v3/", double.base);
    StatusReporter::new()
        .unwrap()
        .send(&target(ForgeKind::Github, &api_base, "octocat/Hello-World"), &status(State::Running))
        .await
        .unwrap();
    let request = double.only_request();
    assert_eq!(request.path, format!("/api/v3/repos/octocat/Hello-World/statuses/{SHA}"));
    assert_eq!(request.body["state"], "pending");
}

/// Gitea's `repoCreateStatus` (https://docs.gitea.com/api/ and the instance's /api/swagger):
/// `POST /repos/{owner}/{repo}/statuses/{sha}`, `CreateStatusOption` {context, description,
/// state: pending|success|error|failure|warning, target_url}; `Authorization: token …`
/// (https://docs.gitea.com/development/api-usage); 201 with the `CommitStatus`.
#[tokio::test]
async fn gitea_creates_a_status_as_documented() {
    let documented = json!({
        "id": 1, "status": "failure", "context": "gantry/push", "description": "the build failed",
        "target_url": "https://ci.example.com/repos/1/builds/7",
        "url": format!("http://localhost:3000/api/v1/repos/gitea/webhooks/statuses/{SHA}"),
        "created_at": "2017-03-13T13:52:11-04:00", "updated_at": "2017-03-13T13:52:11-04:00"
    });
    let double = Double::start(StatusCode::CREATED, documented).await;
    let api_base = format!("{}/api/v1", double.base);
    StatusReporter::new().unwrap().send(&target(ForgeKind::Gitea, &api_base, "gitea/webhooks"), &status(State::Failure)).await.unwrap();
    let request = double.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, format!("/api/v1/repos/gitea/webhooks/statuses/{SHA}"));
    assert_eq!(request.header("authorization"), format!("token {TOKEN}"));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.body,
        json!({
            "state": "failure",
            "target_url": "https://ci.example.com/repos/1/builds/7",
            "description": "the build passed",
            "context": "gantry/push",
        })
    );
}

/// https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit: `POST
/// /projects/:id/statuses/:sha` where `:id` may be the URL-encoded path; `state` (pending,
/// running, success, failed, canceled), `name`, `target_url`, `description`; `PRIVATE-TOKEN`
/// (https://docs.gitlab.com/api/rest/authentication/); 201 with the status.
#[tokio::test]
async fn gitlab_creates_a_status_as_documented() {
    let documented = json!({
        "author": {"username": "root", "name": "Administrator", "id": 1, "state": "active"},
        "name": "gantry/push", "sha": SHA, "status": "running", "description": "the build passed",
        "id": 93, "target_url": "https://ci.example.com/repos/1/builds/7", "ref": null, "started_at": null,
        "created_at": "2016-01-19T09:05:50.355Z", "allow_failure": false, "finished_at": null
    });
    let double = Double::start(StatusCode::CREATED, documented).await;
    let api_base = format!("{}/api/v4", double.base);
    StatusReporter::new()
        .unwrap()
        .send(&target(ForgeKind::Gitlab, &api_base, "gitlab-org/sub.group/gitlab-test"), &status(State::Running))
        .await
        .unwrap();
    let request = double.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, format!("/api/v4/projects/gitlab-org%2Fsub.group%2Fgitlab-test/statuses/{SHA}"));
    assert_eq!(request.header("private-token"), TOKEN);
    assert!(request.headers.get("authorization").is_none());
    assert_eq!(
        request.body,
        json!({
            "state": "running",
            "name": "gantry/push",
            "target_url": "https://ci.example.com/repos/1/builds/7",
            "description": "the build passed",
        })
    );
}

/// GitHub answers a bad token with 401 and `{"message": "Bad credentials", …}`.
#[tokio::test]
async fn a_refused_token_reports_the_status_and_the_forges_message_but_not_the_token() {
    let cases = [
        (ForgeKind::Github, json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}), "Bad credentials"),
        (
            ForgeKind::Gitea,
            json!({"message": "user does not exist [uid: 0, name: ]", "url": "http://localhost:3000/api/swagger"}),
            "user does not exist",
        ),
        (ForgeKind::Gitlab, json!({"message": "401 Unauthorized"}), "401 Unauthorized"),
    ];
    for (forge, body, message) in cases {
        let double = Double::start(StatusCode::UNAUTHORIZED, body).await;
        let error =
            StatusReporter::new().unwrap().send(&target(forge, &double.base, "owner/name"), &status(State::Success)).await.unwrap_err();
        match &error {
            StatusError::Rejected { status, message: text, .. } => {
                assert_eq!(*status, 401);
                assert!(text.contains(message), "{text}");
            }
            other => panic!("{other:?}"),
        }
        let text = error.to_string();
        assert!(text.contains("HTTP 401") && text.contains("owner/name"), "{text}");
        assert!(!text.contains(TOKEN) && !format!("{error:?}").contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn a_forge_that_echoes_the_token_has_it_masked() {
    let double = Double::start(StatusCode::FORBIDDEN, json!({"message": format!("token {TOKEN} lacks repo:status")})).await;
    let error =
        StatusReporter::new().unwrap().send(&target(ForgeKind::Github, &double.base, "o/n"), &status(State::Success)).await.unwrap_err();
    assert_eq!(error.to_string(), "github refused the commit status of o/n with HTTP 403: token *** lacks repo:status");
}

#[tokio::test]
async fn an_unreachable_forge_is_a_transport_error_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = StatusReporter::new().unwrap().send(&target(ForgeKind::Github, &closed, "o/n"), &status(State::Success)).await.unwrap_err();
    assert!(matches!(error, StatusError::Transport { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(TOKEN));
}

#[tokio::test]
async fn descriptions_are_cut_to_what_forges_accept() {
    let double = Double::start(StatusCode::CREATED, json!({})).await;
    let long = CommitStatus { description: "é".repeat(200), ..status(State::Success) };
    StatusReporter::new().unwrap().send(&target(ForgeKind::Github, &double.base, "o/n"), &long).await.unwrap();
    assert_eq!(double.only_request().body["description"].as_str().unwrap().chars().count(), 140);
}

#[tokio::test]
async fn targets_that_cannot_take_a_status() {
    let reporter = StatusReporter::new().unwrap();
    let generic = reporter.send(&target(ForgeKind::Generic, "http://127.0.0.1:9", "o/n"), &status(State::Success)).await;
    assert!(matches!(generic, Err(StatusError::Unsupported { forge: "generic" })));
    for full_name in ["no-slash", "/name", "owner/"] {
        let error = reporter.send(&target(ForgeKind::Github, "http://127.0.0.1:9", full_name), &status(State::Success)).await.unwrap_err();
        assert_eq!(error.to_string(), format!("status target '{full_name}' is not a repository path like owner/name"));
    }
}

#[test]
fn states_in_each_forges_words() {
    let expected: [(State, &str, &str); 8] = [
        (State::Pending, "pending", "pending"),
        (State::Running, "pending", "running"),
        (State::Success, "success", "success"),
        (State::Failure, "failure", "failed"),
        (State::Skipped, "success", "success"),
        (State::Killed, "error", "canceled"),
        (State::Error, "error", "failed"),
        (State::Lost, "error", "failed"),
    ];
    for (state, github_and_gitea, gitlab) in expected {
        assert_eq!(forge_state(ForgeKind::Github, state), github_and_gitea, "{state}");
        assert_eq!(forge_state(ForgeKind::Gitea, state), github_and_gitea, "{state}");
        assert_eq!(forge_state(ForgeKind::Gitlab, state), gitlab, "{state}");
    }
}

#[test]
fn api_bases_from_clone_urls() {
    let cases: &[(ForgeKind, &str, Option<&str>)] = &[
        (ForgeKind::Github, "https://github.com/octocat/Hello-World.git", Some("https://api.github.com")),
        (ForgeKind::Github, "git@github.com:octocat/Hello-World.git", Some("https://api.github.com")),
        (ForgeKind::Github, "ssh://git@github.com/octocat/Hello-World.git", Some("https://api.github.com")),
        (ForgeKind::Github, "https://github.example.com/team/app.git", Some("https://github.example.com/api/v3")),
        (ForgeKind::Gitea, "http://localhost:3000/gitea/webhooks.git", Some("http://localhost:3000/api/v1")),
        (ForgeKind::Gitea, "https://user:secret@codeberg.org/forgejo/forgejo.git", Some("https://codeberg.org/api/v1")),
        (ForgeKind::Gitea, "ssh://gitea@localhost:2222/gitea/webhooks.git", Some("https://localhost/api/v1")),
        (ForgeKind::Gitlab, "http://example.com/mike/diaspora.git", Some("http://example.com/api/v4")),
        (ForgeKind::Gitlab, "git@example.com:mike/diaspora.git", Some("https://example.com/api/v4")),
        (ForgeKind::Gitlab, "https://gitlab.com/group/sub/project.git", Some("https://gitlab.com/api/v4")),
        (ForgeKind::Generic, "https://git.example.com/repo.git", None),
        (ForgeKind::Github, "/srv/git/repo.git", None),
        (ForgeKind::Github, "file:///srv/git/repo.git", None),
    ];
    for (forge, url, expected) in cases {
        assert_eq!(api_base_from_clone_url(*forge, url).as_deref(), *expected, "{forge:?} {url}");
    }
}

#[test]
fn a_target_never_prints_its_token() {
    let printed = format!("{:?}", target(ForgeKind::Github, "https://api.github.com", "o/n"));
    assert!(!printed.contains(TOKEN), "{printed}");
}
