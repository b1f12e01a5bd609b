//! The clone step: the job's commit (not the branch's later tip) is what steps see; credentials
//! reach git and nothing else (not `.git/config`, not another host); a remote no server
//! administrator chose is read over the network only; a failed clone fails the job with git's
//! own words.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use proto::State;
use proto::agent::{CloneCredentials, JobDone};

use crate::server::{FakeServer, Recorded};
use crate::support::{TestAgent, git, job, plan};

const SHOW_FILE: &str = "steps:\n  show:\n    image: IMAGE\n    commands:\n      - cat file.txt\n      - cat .git/config\n";

/// A bare repository whose `main` has two commits writing `file.txt`; returns it with the first.
fn repository_with_two_commits(root: &Path) -> (PathBuf, String) {
    let work = root.join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "--quiet"]);
    std::fs::write(work.join("file.txt"), "content of the first commit\n").unwrap();
    git(&work, &["add", "file.txt"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    std::fs::write(work.join("file.txt"), "content of a later commit\n").unwrap();
    git(&work, &["commit", "--quiet", "-am", "second"]);
    let bare = root.join("repository.git");
    git(root, &["clone", "--quiet", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    (bare, first)
}

/// Every line and reason the server received for a job, for leak checks.
fn everything_said(recorded: &Recorded, job: i64, done: &JobDone) -> String {
    let mut text = format!("{done:?}\n");
    for ((id, _), lines) in &recorded.logs {
        if *id == job {
            for line in lines {
                text.push_str(&line.text);
                text.push('\n');
            }
        }
    }
    for (_, update) in recorded.steps.get(&job).into_iter().flatten() {
        text.push_str(&format!("{update:?}\n"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_clone_checks_out_the_jobs_commit_not_the_branchs_later_tip() {
    let root = tempfile::tempdir().unwrap();
    let (bare, first) = repository_with_two_commits(root.path());
    let server = FakeServer::start().await;
    let mut job = job(30, plan(SHOW_FILE));
    job.repo.clone_url = format!("file://{}", bare.display());
    job.commit = first.clone();
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(30, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Success, "{done:?}");
    let states: Vec<(String, State)> = done.steps.iter().map(|step| (step.step.clone(), step.state)).collect();
    assert_eq!(states, [("clone".to_owned(), State::Success), ("show".to_owned(), State::Success)]);
    {
        let recorded = server.lock();
        let show = recorded.lines(30, "show");
        assert_eq!(show[..2], ["+ cat file.txt".to_owned(), "content of the first commit".to_owned()]);
        let clone = recorded.lines(30, "clone");
        assert!(clone.contains(&format!("+ git fetch --no-progress --no-tags --depth=1 origin {first}")), "{clone:#?}");
        assert!(clone.contains(&format!("+ git checkout --detach {first}")), "{clone:#?}");
        assert_eq!(recorded.states(30, "clone").first(), Some(&State::Running));
    }
    agent.stop().await.unwrap();
}

/// A git server over the dumb HTTP protocol (static files) that wants basic authentication.
struct DumbGitServer {
    repository: PathBuf,
    authorization: String,
    authorized_requests: AtomicUsize,
}

async fn serve_file(AxumState(server): AxumState<Arc<DumbGitServer>>, UrlPath(path): UrlPath<String>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|value| value.to_str().ok()) != Some(server.authorization.as_str()) {
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"git\"")], "").into_response();
    }
    server.authorized_requests.fetch_add(1, Ordering::SeqCst);
    if path.split('/').any(|part| part == "..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match std::fs::read(server.repository.join(&path)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `bare` over git's dumb HTTP protocol to `bot:password`; its address.
async fn dumb_git_server(bare: PathBuf, password: &str) -> (Arc<DumbGitServer>, std::net::SocketAddr) {
    git(&bare, &["update-server-info"]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{password}"));
    let git_server =
        Arc::new(DumbGitServer { repository: bare, authorization: format!("Basic {basic}"), authorized_requests: AtomicUsize::new(0) });
    let app = axum::Router::new().route("/repository.git/{*path}", axum::routing::get(serve_file)).with_state(git_server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let git_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (git_server, git_address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_reach_git_through_a_helper_and_appear_nowhere() {
    const PASSWORD: &str = "hunter2-clone-password";
    let root = tempfile::tempdir().unwrap();
    let (bare, first) = repository_with_two_commits(root.path());
    let (git_server, git_address) = dumb_git_server(bare, PASSWORD).await;

    let server = FakeServer::start().await;
    let mut job = job(31, plan(SHOW_FILE));
    job.repo.clone_url = format!("http://{git_address}/repository.git");
    job.repo.clone_credentials = Some(CloneCredentials { username: "bot".into(), password: PASSWORD.into() });
    job.repo.allow_local = false;
    job.commit = first;
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(31, Duration::from_secs(60)).await;

    {
        let recorded = server.lock();
        assert_eq!(done.state, State::Success, "{done:?}\n{:#?}", recorded.lines(31, "clone"));
        assert!(git_server.authorized_requests.load(Ordering::SeqCst) > 0, "git never authenticated");
        // The dumb protocol cannot fetch a commit by id at a depth: the agent fetched the branch.
        let clone = recorded.lines(31, "clone");
        assert!(clone.iter().any(|line| line.starts_with("fetching the commit by its id failed")), "{clone:#?}");
        assert_eq!(recorded.lines(31, "show")[1], "content of the first commit");
        let said = everything_said(&recorded, 31, &done);
        assert!(!said.contains(PASSWORD), "the password leaked:\n{said}");
        assert!(said.contains("[remote \"origin\"]"), "the step shows .git/config:\n{said}");
    }
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_clone_fails_the_job_with_gits_output_and_skips_the_steps() {
    const PASSWORD: &str = "never-shown-password";
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = FakeServer::start().await;
    let mut job = job(32, plan(SHOW_FILE));
    job.repo.clone_url = format!("http://bot:{PASSWORD}@{closed}/repository.git");
    job.repo.clone_credentials = Some(CloneCredentials { username: "bot".into(), password: PASSWORD.into() });
    job.commit = "0123456789abcdef0123456789abcdef01234567".into();
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(32, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Failure, "{done:?}");
    let reason = done.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("the clone failed: `git fetch"), "{reason}");
    let states: Vec<(String, State)> = done.steps.iter().map(|step| (step.step.clone(), step.state)).collect();
    assert_eq!(states, [("clone".to_owned(), State::Failure), ("show".to_owned(), State::Skipped)]);
    {
        let recorded = server.lock();
        let clone = recorded.lines(32, "clone");
        assert!(clone.iter().any(|line| line.contains("Failed to connect") || line.contains("Could not connect")), "{clone:#?}");
        assert!(
            clone.iter().any(|line| line.contains(&format!("remote add origin http://{closed}/repository.git"))),
            "the URL is shown without its credentials: {clone:#?}"
        );
        let said = everything_said(&recorded, 32, &done);
        assert!(!said.contains(PASSWORD), "the password leaked:\n{said}");
    }
    agent.stop().await.unwrap();
}

/// A step that tells whether the password is anywhere in `.git/config`, without printing it.
const CHECK_CONFIG: &str = "steps:\n  check:\n    image: IMAGE\n    commands:\n      - cat file.txt\n      - if grep -q hunter3 .git/config; then echo password-in-config; else echo config-is-clean; fi\n";

/// An older server sent the clone URL with `user:password@` in it: the agent takes the
/// credentials out before git stores the URL in the workspace's `.git/config`, which steps read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_in_the_clone_url_never_reach_git_config() {
    const PASSWORD: &str = "hunter3-url-password";
    let root = tempfile::tempdir().unwrap();
    let (bare, first) = repository_with_two_commits(root.path());
    let (git_server, git_address) = dumb_git_server(bare, PASSWORD).await;

    let server = FakeServer::start().await;
    let mut job = job(33, plan(CHECK_CONFIG));
    job.repo.clone_url = format!("http://bot:{PASSWORD}@{git_address}/repository.git");
    job.repo.allow_local = false;
    job.commit = first;
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(33, Duration::from_secs(60)).await;

    {
        let recorded = server.lock();
        assert_eq!(done.state, State::Success, "{done:?}\n{:#?}", recorded.lines(33, "clone"));
        assert!(git_server.authorized_requests.load(Ordering::SeqCst) > 0, "git never authenticated");
        let check = recorded.lines(33, "check");
        assert!(check.contains(&"config-is-clean".to_owned()), "{check:#?}");
        let said = everything_said(&recorded, 33, &done);
        assert!(!said.contains(PASSWORD), "the password leaked:\n{said}");
    }
    agent.stop().await.unwrap();
}

/// A remote no server administrator chose is read over the network only: a `file://` remote
/// (a path on the agent's machine) fails the clone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_no_admin_chose_cannot_be_read_from_the_agents_disk() {
    let root = tempfile::tempdir().unwrap();
    let (bare, first) = repository_with_two_commits(root.path());
    let server = FakeServer::start().await;
    let mut job = job(34, plan(SHOW_FILE));
    job.repo.clone_url = format!("file://{}", bare.display());
    job.repo.allow_local = false;
    job.commit = first;
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(34, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Failure, "{done:?}");
    {
        let recorded = server.lock();
        let clone = recorded.lines(34, "clone");
        assert!(clone.iter().any(|line| line.contains("transport 'file' not allowed")), "{clone:#?}");
        assert!(recorded.lines(34, "show").is_empty(), "no step ran");
    }
    agent.stop().await.unwrap();
}

/// A remote that redirects to another host: git follows, and the credential helper gives that
/// host nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_are_not_given_to_the_host_a_redirect_leads_to() {
    const PASSWORD: &str = "hunter4-redirected-password";
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Default::default();
    let recorded = seen.clone();
    let elsewhere = axum::Router::new().fallback(move |headers: HeaderMap| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(headers.get("authorization").map(|value| value.to_str().unwrap().to_owned()));
            (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"elsewhere\"")], "").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, elsewhere).await.unwrap() });
    let redirecting = axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
        let target =
            format!("http://localhost:{elsewhere_port}{}", uri.path_and_query().map(axum::http::uri::PathAndQuery::as_str).unwrap_or("/"));
        (StatusCode::FOUND, [("location", target)], "").into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirecting).await.unwrap() });

    let server = FakeServer::start().await;
    let mut job = job(35, plan(SHOW_FILE));
    job.repo.clone_url = format!("http://{address}/repository.git");
    job.repo.clone_credentials = Some(CloneCredentials { username: "bot".into(), password: PASSWORD.into() });
    job.repo.allow_local = false;
    job.commit = "0123456789abcdef0123456789abcdef01234567".into();
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(35, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Failure, "{done:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "git followed the redirect");
    assert!(seen.iter().all(Option::is_none), "credentials reached the other host: {seen:?}");
    agent.stop().await.unwrap();
}
