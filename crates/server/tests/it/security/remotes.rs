//! Remotes, credentials and webhooks (items 1, 3, 5, 8, 9, 10, 13 and 15 of the attack report):
//! attackers are ordinary users, repository admins and anonymous senders of webhooks; remotes
//! and listeners are real, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Harness, PIPELINE, commit, git, git_repo};

/// `both!` for a server with adjusted settings: `both_with!(name, check, adjust)`.
macro_rules! both_with {
    ($name:ident, $check:ident, $adjust:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let harness = $crate::harness::Harness::with($crate::harness::Db::Sqlite, $adjust).await.expect("sqlite harness");
                super::$check(harness).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(harness) = $crate::harness::Harness::with($crate::harness::Db::Postgres, $adjust).await {
                    super::$check(harness).await;
                }
            }
        }
    };
}

/// A repository `user` registers on an ordinary remote, whose stored remote is then changed to
/// `url` behind the API's back (as a row written before the checks existed would be).
async fn planted_remote(harness: &Harness, user: &str, full_name: &str, url: &str) -> store::RepoRecord {
    let body = json!({ "full_name": full_name, "clone_url": "https://192.0.2.10/app.git" });
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos", Some(user), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let mut stored = harness.state.store.repo_by_name(full_name).await.unwrap().unwrap();
    stored.settings.clone_url = url.to_owned();
    harness.state.store.update_repo(&stored).await.unwrap();
    stored
}

/// A manual build of `main`, as the trigger flow takes it.
fn manual_build() -> server::trigger::BuildRequest {
    server::trigger::BuildRequest {
        event: "manual".into(),
        reference: "refs/heads/main".into(),
        branch: "main".into(),
        ..Default::default()
    }
}

/// Lets non-admins reach 127.0.0.1, where the tests' remotes and listeners live.
fn open_egress(config: &mut server::ServerConfig) {
    config.egress = server::egress::EgressPolicy { deny: Vec::new(), allow: Vec::new() };
}

/// A request a listener received: path and `Authorization` header.
type Received = (String, Option<String>);

/// A listener that records every request. Paths of git's smart HTTP discovery (`info/refs`)
/// are answered 401 with a Basic challenge, so that git offers whatever credentials it holds;
/// anything else (a commit status) 201. With a repository and a password, it serves the
/// repository over git's dumb HTTP protocol to `bot:<password>` instead.
#[derive(Clone, Default)]
struct Listener {
    requests: Arc<Mutex<Vec<Received>>>,
    repository: Option<(PathBuf, String)>,
}

impl Listener {
    /// Serves `bare` (dumb HTTP) to `bot:password`.
    fn git(bare: PathBuf, password: &str) -> Listener {
        git(&bare, &["update-server-info"]);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{password}"));
        Listener { requests: Default::default(), repository: Some((bare, format!("Basic {basic}"))) }
    }

    async fn start(&self) -> SocketAddr {
        let listener = self.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let listener = listener.clone();
            async move {
                let path = uri.path().to_owned();
                let authorization = headers.get("authorization").and_then(|value| value.to_str().ok()).map(str::to_owned);
                listener.requests.lock().unwrap().push((path.clone(), authorization.clone()));
                let challenge = || (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"test\"")], Vec::new()).into_response();
                match &listener.repository {
                    Some((bare, expected)) => {
                        if authorization.as_deref() != Some(expected.as_str()) {
                            return challenge();
                        }
                        let relative = path.trim_start_matches("/repo.git/");
                        if relative.split('/').any(|part| part == "..") {
                            return StatusCode::BAD_REQUEST.into_response();
                        }
                        match std::fs::read(bare.join(relative)) {
                            Ok(bytes) => bytes.into_response(),
                            Err(_) => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                    None if path.contains("/info/refs") => challenge(),
                    None => (StatusCode::CREATED, "{}").into_response(),
                }
            }
        });
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
        address
    }

    fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (with a ceiling) until a request matching `wanted` arrived.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Received) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            if self.received().iter().any(&wanted) {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} arrived: {:?}", self.received());
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub push of `sha` on `main` to `/api/hooks/{full_name}`, signed with the harness's
/// webhook secret; `delivery` is the `X-GitHub-Delivery` header, if any.
async fn deliver_push(harness: &Harness, full_name: &str, delivery: Option<&str>, sha: &str) -> (StatusCode, Value) {
    let body = push_body(sha);
    deliver_body(harness, full_name, delivery, body).await
}

fn push_body(sha: &str) -> Vec<u8> {
    let file = format!("{}/../forge/tests/data/webhooks/github/push.json", env!("CARGO_MANIFEST_DIR"));
    let mut payload: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    payload["head_commit"]["id"] = json!(sha);
    if let Some(commits) = payload["commits"].as_array_mut() {
        for commit in commits {
            commit["id"] = json!(sha);
        }
    }
    serde_json::to_vec(&payload).unwrap()
}

async fn deliver_body(harness: &Harness, full_name: &str, delivery: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let signature = github_signature("hook-secret", &body);
    let mut headers = vec![("x-github-event", "push"), ("x-hub-signature-256", signature.as_str()), ("content-type", "application/json")];
    if let Some(delivery) = delivery {
        headers.push(("x-github-delivery", delivery));
    }
    harness.raw(&format!("/api/hooks/{full_name}"), &headers, body).await
}

async fn build_count(harness: &Harness, full_name: &str) -> usize {
    let (status, list) = harness.admin(Method::GET, &format!("/api/v1/repos/{full_name}/builds"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// 1. Local paths through the scp-like form
// ---------------------------------------------------------------------------------------------

/// Every address git reads from the server's disk (or hands to a helper program) is refused to
/// a user who is not a server admin, whether registering or changing a repository; a server
/// admin may register them.
async fn local_remotes_are_for_server_admins(harness: Harness) {
    let user = harness.user("mallory").await;
    let local_addresses = [
        // The address: a slash before the first colon makes it a path, not user@host:path.
        "/usr/share/locale/en@quot/../../..:x/../../tmp/data/git/1.git",
        "./x",
        "/srv/x",
        "x",
        "file:///x",
        "ext::sh -c x",
        "fd::7",
        "foo::bar",
    ];
    for (index, address) in local_addresses.iter().enumerate() {
        let body = json!({ "full_name": format!("mallory/local-{index}"), "clone_url": address });
        let (status, answer) = harness.call(Method::POST, "/api/v1/repos", Some(&user), Some(body)).await;
        assert!(matches!(status, StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST), "{address}: {status} {answer}");
        assert_eq!(answer["field"], "clone_url", "{address}: {answer}");
    }
    let (status, _) = harness
        .call(
            Method::POST,
            "/api/v1/repos",
            Some(&user),
            Some(json!({ "full_name": "mallory/app", "clone_url": "https://192.0.2.10/app.git" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a network remote is fine");
    for address in local_addresses {
        let (status, answer) =
            harness.call(Method::PATCH, "/api/v1/repos/mallory/app", Some(&user), Some(json!({ "clone_url": address }))).await;
        assert!(matches!(status, StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST), "{address}: {status} {answer}");
    }
    for (index, address) in ["/srv/x", "file:///x", "/usr/share/locale/en@quot/../../..:x/y", "ext::sh -c x"].iter().enumerate() {
        let body = json!({ "full_name": format!("admin/local-{index}"), "clone_url": address });
        let (status, answer) = harness.admin(Method::POST, "/api/v1/repos", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "a server admin may: {address}: {answer}");
    }
}
both!(local_paths_file_urls_and_remote_helpers_are_for_server_admins_only, local_remotes_are_for_server_admins);

/// A local remote that no server admin chose (one stored before this check existed) is not
/// fetched by the server, and agents are told to keep git on the network; the same remote
/// chosen by a server admin works on both.
async fn unapproved_local_remotes_are_not_fetched(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "the server admin's own local remote: {build}");
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    assert_eq!(job["repo"]["allow_local"], true, "{job}");
    harness.agent_ok(&format!("/jobs/{}/done", job["id"]), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;

    // The same URL on a repository whose remote no server admin set.
    let user = harness.user("mallory").await;
    let stored = planted_remote(&harness, &user, "mallory/app", &url).await;
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/mallory/app/builds", Some(&user), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("server administrators"), "{answer}");
    assert_eq!(build_count(&harness, "mallory/app").await, 0);
    let error = server::trigger::start_build(&harness.state, &stored, manual_build()).await.unwrap_err();
    assert!(matches!(error, server::trigger::TriggerError::Refused(_)), "{error}");
    let job_repository = server::trigger::job_repository(&harness.state, &stored).await.unwrap();
    assert!(!job_repository.allow_local, "agents keep git on the network for it");
}
both!(a_server_fetch_of_a_local_remote_fails_unless_a_server_admin_chose_it, unapproved_local_remotes_are_not_fetched);

/// A mirror's folder cannot be named from the repository's id (the attack read
/// `<data>/git/<id>-<sha256(id)>.git`); removing the repository still removes its mirror.
async fn mirror_folders_are_not_guessable(harness: Harness) {
    use sha2::Digest as _;
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let repo = harness.repo("acme/app", &url, json!({})).await;
    let (status, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = repo["id"].as_i64().unwrap().to_string();
    let mirrors_root = harness.dir.path().join("data/git");
    let mirrors = || -> Vec<String> {
        std::fs::read_dir(&mirrors_root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".git"))
            .collect()
    };
    let names = mirrors();
    assert_eq!(names.len(), 1, "{names:?}");
    let old_name = format!("{id}-{}.git", &hex::encode(sha2::Sha256::digest(id.as_bytes()))[..16]);
    assert_ne!(names[0], old_name);
    assert!(!names[0].contains(&hex::encode(sha2::Sha256::digest(id.as_bytes()))[..16]), "{names:?}");
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/repos/acme/app", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(mirrors().is_empty(), "removing the repository removes its mirror");
}
both!(mirror_folders_cannot_be_named_from_the_repository_id, mirror_folders_are_not_guessable);

// ---------------------------------------------------------------------------------------------
// 3. Clone credentials reach every step
// ---------------------------------------------------------------------------------------------

/// A repository registered with `http://bot:pw@host/…`: the password becomes the clone's
/// credentials; no step's environment, plan, API answer or stored URL holds it, and the job
/// carries it only as credentials.
async fn url_credentials_stay_out_of_steps(harness: Harness) {
    const PASSWORD: &str = "pw-in-the-url-4711";
    let (_, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let remote = Listener::git(harness.dir.path().join("remote.git"), PASSWORD);
    let address = remote.start().await;
    let url = format!("http://bot:{PASSWORD}@{address}/repo.git");
    let registered = harness.repo("acme/app", &url, json!({})).await;
    assert!(!registered.to_string().contains(PASSWORD), "{registered}");
    let stored = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert_eq!(stored.settings.clone_url, format!("http://{address}/repo.git"), "the stored URL holds no credentials");
    assert_eq!((stored.settings.clone_username.as_deref(), stored.settings.clone_password.as_deref()), (Some("bot"), Some(PASSWORD)));

    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "commit": sha }))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    assert!(remote.received().iter().any(|(_, authorization)| authorization.is_some()), "the server's fetch authenticated");
    assert!(!build.to_string().contains(PASSWORD), "{build}");
    let workflows = harness.state.store.workflows_of_build(build["id"].as_i64().unwrap()).await.unwrap();
    assert!(!workflows.is_empty());
    for workflow in &workflows {
        let plan = workflow.plan.to_string();
        assert!(!plan.contains(PASSWORD), "the plan holds the password: {plan}");
        assert!(plan.contains(&format!("http://{address}/repo.git")), "the steps still learn the clone URL: {plan}");
    }
    let agent = harness.register_agent("agent", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    assert_eq!(job["repo"]["clone_url"], format!("http://{address}/repo.git"));
    assert_eq!(job["repo"]["clone_credentials"]["password"], PASSWORD, "credentials go to the clone alone");
    let mut without_credentials = job.clone();
    without_credentials["repo"]["clone_credentials"] = Value::Null;
    assert!(!without_credentials.to_string().contains(PASSWORD), "{without_credentials}");
}
both!(a_build_of_a_repository_with_credentials_in_its_url_gives_steps_no_password, url_credentials_stay_out_of_steps);

// ---------------------------------------------------------------------------------------------
// 5. A repository admin can redirect stored credentials
// ---------------------------------------------------------------------------------------------

/// A repository admin (not a server admin) moves the forge API and the clone URL to a listener
/// of their own: the stored token and clone password are cleared, and the listener never gets
/// them; credentials given again in the same request are kept.
async fn credentials_do_not_follow_a_moved_host(harness: Harness) {
    const TOKEN: &str = "ghp_stored_token_of_someone_else";
    const PASSWORD: &str = "stored-clone-password";
    let (_, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let remote = Listener::git(harness.dir.path().join("remote.git"), PASSWORD);
    let remote_address = remote.start().await;
    let forge = Listener::default();
    let forge_address = forge.start().await;
    let attacker = Listener::default();
    let attacker_address = attacker.start().await;
    harness
        .repo(
            "acme/app",
            &format!("http://{remote_address}/repo.git"),
            json!({ "forge": "github", "forge_token": TOKEN, "forge_api_url": format!("http://{forge_address}"),
                    "clone_username": "bot", "clone_password": PASSWORD }),
        )
        .await;
    let mallory = harness.user("mallory").await;
    let (status, _) = harness.admin(Method::PUT, "/api/v1/repos/acme/app/members/mallory", Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, StatusCode::OK);

    // Build 1: the forge gets its token (the listener works).
    let (status, answer) =
        harness.call(Method::POST, "/api/v1/repos/acme/app/builds", Some(&mallory), Some(json!({ "commit": sha }))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    forge.wait_for("status with the token", |(_, authorization)| authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))).await;

    // The forge API moves to the attacker's listener: the token stays behind.
    let (status, answer) = harness
        .call(
            Method::PATCH,
            "/api/v1/repos/acme/app",
            Some(&mallory),
            Some(json!({ "forge_api_url": format!("http://{attacker_address}") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let stored = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert_eq!(stored.settings.forge_token, None, "the token was cleared");
    assert_eq!(stored.settings.clone_password.as_deref(), Some(PASSWORD), "the clone URL did not move");
    let (status, _) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds", Some(&mallory), Some(json!({ "commit": sha }))).await;
    assert_eq!(status, StatusCode::CREATED);
    // A token given in the same request goes with the new address: the listener sees that one.
    let (status, _) =
        harness.call(Method::PATCH, "/api/v1/repos/acme/app", Some(&mallory), Some(json!({ "forge_token": "mallorys-own-token" }))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds", Some(&mallory), Some(json!({ "commit": sha }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let received = attacker.wait_for("status with mallory's token", |(_, authorization)| authorization.is_some()).await;
    assert!(received.iter().all(|(_, authorization)| !authorization.as_deref().unwrap_or("").contains(TOKEN)), "{received:?}");

    // The clone URL moves to the attacker's listener: the clone password stays behind.
    let (status, answer) = harness
        .call(
            Method::PATCH,
            "/api/v1/repos/acme/app",
            Some(&mallory),
            Some(json!({ "clone_url": format!("http://{attacker_address}/repo.git") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let stored = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert_eq!((stored.settings.clone_username, stored.settings.clone_password), (None, None));
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/acme/app/builds", Some(&mallory), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let received = attacker.received();
    assert!(received.iter().any(|(path, _)| path.contains("/info/refs")), "git asked the listener: {received:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{PASSWORD}"));
    assert!(received.iter().all(|(_, authorization)| !authorization.as_deref().unwrap_or("").contains(&basic)), "{received:?}");

    // Moving back with the password given again works.
    let (status, answer) = harness
        .call(
            Method::PATCH,
            "/api/v1/repos/acme/app",
            Some(&mallory),
            Some(json!({ "clone_url": format!("http://{remote_address}/repo.git"), "clone_username": "bot", "clone_password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) =
        harness.call(Method::POST, "/api/v1/repos/acme/app/builds", Some(&mallory), Some(json!({ "commit": sha }))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}
both_with!(
    a_repository_admin_cannot_redirect_stored_credentials_to_a_host_of_their_own,
    credentials_do_not_follow_a_moved_host,
    super::open_egress
);

// ---------------------------------------------------------------------------------------------
// 8. SSRF and port scanning
// ---------------------------------------------------------------------------------------------

/// With `GANTRY_REPO_CREATION=admins`, users cannot register repositories; server admins can.
async fn admins_only_repo_creation(harness: Harness) {
    let user = harness.user("dev").await;
    let body = json!({ "full_name": "dev/app", "clone_url": "https://192.0.2.10/app.git" });
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos", Some(&user), Some(body.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}
both_with!(
    only_server_admins_register_repositories_when_the_server_says_so,
    admins_only_repo_creation,
    |config: &mut server::ServerConfig| {
        config.repo_creation = server::config::RepoCreation::Admins;
    }
);

/// Remotes, forge APIs and notifiers of non-admins cannot point at the server itself (every
/// spelling of loopback), the unspecified address or link-local addresses (a cloud's metadata
/// service); server admins may.
async fn private_addresses_are_refused_to_non_admins(harness: Harness) {
    let user = harness.user("dev").await;
    let (status, _) = harness
        .call(
            Method::POST,
            "/api/v1/repos",
            Some(&user),
            Some(json!({ "full_name": "dev/app", "clone_url": "https://192.0.2.10/app.git" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a public address is fine");
    let hosts =
        ["localhost", "127.0.0.1", "127.1", "2130706433", "[::1]", "0.0.0.0", "[::]", "169.254.169.254", "[::ffff:127.0.0.1]", "[fe80::1]"];
    for (index, host) in hosts.iter().enumerate() {
        let addresses = [format!("http://{host}:22/x.git"), format!("ssh://git@{host}/x.git"), format!("git://{host}/x.git")];
        for address in addresses.iter().chain((!host.starts_with('[')).then(|| format!("git@{host}:x.git")).iter()) {
            let body = json!({ "full_name": format!("dev/probe-{index}"), "clone_url": address });
            let (status, answer) = harness.call(Method::POST, "/api/v1/repos", Some(&user), Some(body)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{address}: {answer}");
            assert_eq!(answer["field"], "clone_url");
            let (status, answer) =
                harness.call(Method::PATCH, "/api/v1/repos/dev/app", Some(&user), Some(json!({ "clone_url": address }))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{address}: {answer}");
        }
        let api = format!("http://{host}:8080/api/v3");
        let (status, answer) =
            harness.call(Method::PATCH, "/api/v1/repos/dev/app", Some(&user), Some(json!({ "forge_api_url": api }))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{api}: {answer}");
        assert_eq!(answer["field"], "forge_api_url");
        let notifier = json!({ "kind": "webhook", "url": format!("http://{host}/latest/meta-data"), "states": [] });
        let (status, answer) = harness.call(Method::POST, "/api/v1/repos/dev/app/notifiers", Some(&user), Some(notifier.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{notifier}: {answer}");
        assert_eq!(answer["field"], "url");
        let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/dev/app/notifiers", Some(notifier)).await;
        assert_eq!(status, StatusCode::CREATED, "server admins may: {answer}");
    }
    let stored = harness.state.store.repo_by_name("dev/app").await.unwrap().unwrap();
    assert_eq!(stored.settings.clone_url, "https://192.0.2.10/app.git");
    assert_eq!(stored.settings.forge_api_url, None);
    let (status, answer) =
        harness.admin(Method::PATCH, "/api/v1/repos/dev/app", Some(json!({ "clone_url": "http://127.0.0.1:22/x.git" }))).await;
    assert_eq!(status, StatusCode::OK, "server admins may: {answer}");
}
both!(non_admins_cannot_point_remotes_forge_apis_or_notifiers_at_the_servers_own_addresses, private_addresses_are_refused_to_non_admins);

/// A remote stored without the check (or whose name now resolves elsewhere) is checked again
/// before git reaches it: the listener on 127.0.0.1 never hears from the server.
async fn fetches_check_the_remote_again(harness: Harness) {
    let listener = Listener::default();
    let address = listener.start().await;
    let user = harness.user("dev").await;
    planted_remote(&harness, &user, "dev/app", &format!("http://localhost:{}/repo.git", address.port())).await;
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/dev/app/builds", Some(&user), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/dev/app/poll", Some(&user), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(listener.received().is_empty(), "git reached the listener: {:?}", listener.received());
}
both!(a_fetch_checks_the_remote_again_before_git_reaches_it, fetches_check_the_remote_again);

/// What git says about a remote it could not reach (`Failed to connect to 127.0.0.1 port …`)
/// is logged, and told to server admins only: a user probing ports learns nothing.
async fn git_errors_are_generic_for_non_admins(harness: Harness) {
    let port = closed_port();
    let user = harness.user("dev").await;
    let url = format!("http://127.0.0.1:{port}/x.git");
    let (status, answer) = harness
        .call(
            Method::POST,
            "/api/v1/repos",
            Some(&user),
            Some(json!({ "full_name": "dev/app", "clone_url": url, "webhook_secret": "hook-secret" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let leaks = |text: &str| ["127.0.0.1", &port.to_string(), "connect", "Connection refused"].iter().any(|word| text.contains(word));
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/dev/app/builds", Some(&user), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!leaks(&answer.to_string()), "{answer}");
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos/dev/app/poll", Some(&user), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!leaks(&answer.to_string()), "{answer}");
    let (status, answer) = deliver_push(&harness, "dev/app", Some("probe-1"), "0123456789abcdef0123456789abcdef01234567").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!leaks(&answer.to_string()), "{answer}");
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/dev/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("127.0.0.1"), "server admins read git's words: {answer}");
}
both_with!(git_errors_tell_non_admins_nothing_about_the_network, git_errors_are_generic_for_non_admins, super::open_egress);

// ---------------------------------------------------------------------------------------------
// 9. Webhook replay
// ---------------------------------------------------------------------------------------------

/// A signed body delivered again under a new id, or with no id, starts nothing within the
/// window; once the window has passed, the server has forgotten it.
async fn replays_start_nothing(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-1"), &sha).await;
    assert_eq!((status, answer["builds"].clone()), (StatusCode::OK, json!([1])), "{answer}");
    for delivery in [Some("d-2"), None, Some("d-1")] {
        let (status, answer) = deliver_push(&harness, "acme/app", delivery, &sha).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["ignored"].as_str().unwrap().contains("already received"), "{delivery:?}: {answer}");
    }
    assert_eq!(build_count(&harness, "acme/app").await, 1);
    // Deliveries without an id are de-duplicated too.
    let other = commit(&harness.dir.path().join("work"), &[("a.txt", "a")], "Change a");
    git(&harness.dir.path().join("work"), &["push", "-q", "origin", "main"]);
    for expected in [2, 2] {
        deliver_push(&harness, "acme/app", None, &other).await;
        assert_eq!(build_count(&harness, "acme/app").await, expected);
    }
    let later = server::state::now_ms() + server::background::DELIVERY_WINDOW.as_millis() as i64 + 1;
    assert!(server::background::forget_old_deliveries(&harness.state, later).await.unwrap() >= 3);
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-3"), &sha).await;
    assert_eq!((status, answer["builds"].clone()), (StatusCode::OK, json!([3])), "after the window: {answer}");
}
both!(a_replayed_webhook_body_starts_no_second_build, replays_start_nothing);

// ---------------------------------------------------------------------------------------------
// 10. Small leaks
// ---------------------------------------------------------------------------------------------

/// A delivery for a repository that does not exist is answered exactly as one with a wrong or
/// missing signature for one that does.
async fn webhook_answers_do_not_tell_repositories_apart(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let body = push_body(&sha);
    let wrong = github_signature("not-the-secret", &body);
    let signed = github_signature("hook-secret", &body);
    let mut answers = Vec::new();
    for (path, signature) in [
        ("/api/hooks/acme/app", Some(wrong.as_str())),
        ("/api/hooks/acme/app", None),
        ("/api/hooks/acme/unknown", Some(wrong.as_str())),
        ("/api/hooks/acme/unknown", Some(signed.as_str())),
        ("/api/hooks/acme/unknown", None),
    ] {
        let mut headers = vec![("x-github-event", "push"), ("x-github-delivery", "d-1")];
        if let Some(signature) = signature {
            headers.push(("x-hub-signature-256", signature));
        }
        answers.push(harness.raw(path, &headers, body.clone()).await);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED, "{:?}", answers[0]);
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:#?}");
    assert_eq!(build_count(&harness, "acme/app").await, 0);
}
both!(webhooks_answer_the_same_for_unknown_repositories_and_bad_signatures, webhook_answers_do_not_tell_repositories_apart);

/// A mirror the server cannot use fails the build with an answer that names no folder of the
/// server's (its data folder, the mirrors' folder), to server admins included.
async fn errors_name_no_server_path(harness: Harness) {
    let (url, sha, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    // The mirrors' folder is a file: every mirror operation fails.
    std::fs::write(harness.dir.path().join("data/git"), "not a folder").unwrap();
    let data = harness.dir.path().display().to_string();
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!answer.to_string().contains(&data), "{answer}");
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-1"), &sha).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!answer.to_string().contains(&data), "{answer}");
    let repo = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    let error = server::trigger::start_build(&harness.state, &repo, manual_build()).await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains(&data), "what the log says: {error} {error:?}");
}
both!(error_answers_name_no_folder_of_the_server, errors_name_no_server_path);

/// A repository admin setting a role learns nothing about whether an account has the login:
/// the same answer either way, and nothing is created for a login no account has.
async fn roles_are_no_login_oracle(harness: Harness) {
    let owner = harness.user("owner").await;
    harness.user("colleague").await;
    let (status, _) = harness
        .call(
            Method::POST,
            "/api/v1/repos",
            Some(&owner),
            Some(json!({ "full_name": "owner/app", "clone_url": "https://192.0.2.10/app.git" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let set = |login: &'static str| {
        let harness = &harness;
        let owner = owner.clone();
        async move {
            let (status, mut answer) = harness
                .call(Method::PUT, &format!("/api/v1/repos/owner/app/members/{login}"), Some(&owner), Some(json!({ "role": "write" })))
                .await;
            answer["login"] = json!("?");
            (status, answer)
        }
    };
    let existing = set("colleague").await;
    let missing = set("nobody-has-this-login").await;
    assert_eq!(existing.0, StatusCode::OK, "{existing:?}");
    assert_eq!(existing, missing);
    let remove = |login: &'static str| {
        let harness = &harness;
        let owner = owner.clone();
        async move { harness.call(Method::DELETE, &format!("/api/v1/repos/owner/app/members/{login}"), Some(&owner), None).await }
    };
    assert_eq!(remove("colleague").await, remove("nobody-has-this-login").await);
    assert!(harness.state.store.user_by_login("nobody-has-this-login").await.unwrap().is_none(), "no account was made");
}
both!(setting_a_role_tells_nothing_about_whether_the_login_exists, roles_are_no_login_oracle);

// ---------------------------------------------------------------------------------------------
// 13. A redelivered webhook can lose a push
// ---------------------------------------------------------------------------------------------

/// A delivery whose build could not start (the commit was not in the remote yet) is taken when
/// the forge redelivers it; concurrent copies of one delivery start one build.
async fn failed_starts_can_be_redelivered(harness: Harness) {
    let (url, _, work) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({ "forge": "github" })).await;
    let sha = commit(&work, &[("late.txt", "pushed late")], "Late commit");
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-late"), &sha).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the commit is not in the remote yet: {answer}");
    git(&work, &["push", "-q", "origin", "main"]);
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-late"), &sha).await;
    assert_eq!((status, answer["builds"].clone()), (StatusCode::OK, json!([1])), "the redelivery is taken: {answer}");

    let next = commit(&work, &[("next.txt", "next")], "Next commit");
    git(&work, &["push", "-q", "origin", "main"]);
    let body = push_body(&next);
    let copies = (0..4).map(|_| deliver_body(&harness, "acme/app", Some("d-next"), body.clone()));
    let answers = futures_util::future::join_all(copies).await;
    let started: Vec<&Value> = answers.iter().filter(|(_, answer)| answer["builds"] != json!([])).map(|(_, answer)| answer).collect();
    assert_eq!(started.len(), 1, "{answers:#?}");
    assert_eq!(build_count(&harness, "acme/app").await, 2);
}
both!(a_webhook_whose_build_failed_to_start_is_taken_when_redelivered, failed_starts_can_be_redelivered);

// ---------------------------------------------------------------------------------------------
// 15. Errors carry what they must not (server half)
// ---------------------------------------------------------------------------------------------

/// A commit the remote does not have: the answer (to a server admin too) and the error the log
/// prints name the remote without its password.
async fn trigger_errors_carry_no_credentials(harness: Harness) {
    const PASSWORD: &str = "pw-never-in-errors-0815";
    git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let remote = Listener::git(harness.dir.path().join("remote.git"), PASSWORD);
    let address = remote.start().await;
    harness.repo("acme/app", &format!("http://bot:{PASSWORD}@{address}/repo.git"), json!({ "forge": "github" })).await;
    // An older server stored the URL as given: the password in it must not leak either.
    let mut stored = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    stored.settings.clone_url = format!("http://bot:{PASSWORD}@{address}/repo.git");
    stored.settings.clone_username = None;
    stored.settings.clone_password = None;
    harness.state.store.update_repo(&stored).await.unwrap();
    harness.state.store.approve_remote(stored.id, &stored.settings.clone_url, "admin-token", 0).await.unwrap();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "commit": missing }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains(missing), "{answer}");
    assert!(!answer.to_string().contains(PASSWORD), "{answer}");
    let (status, answer) = deliver_push(&harness, "acme/app", Some("d-1"), missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!answer.to_string().contains(PASSWORD), "{answer}");
    let error = server::trigger::start_build(
        &harness.state,
        &stored,
        server::trigger::BuildRequest {
            event: "push".into(),
            reference: "refs/heads/main".into(),
            branch: "main".into(),
            commit: Some(missing.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, server::trigger::TriggerError::NotFound(_)), "the fetch itself worked: {error}");
    assert!(!format!("{error} {error:?}").contains(PASSWORD), "what the log says: {error} {error:?}");
}
both!(trigger_errors_name_the_remote_without_its_password, trigger_errors_carry_no_credentials);
