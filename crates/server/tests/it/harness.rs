//! A server application on a fresh database, and helpers to call it as a client would.
//!
//! PostgreSQL variants need `GANTRY_TEST_POSTGRES_URL` (printed by `scripts/postgres-up.sh`);
//! each test gets its own database. Without the variable they fail, unless
//! `GANTRY_TEST_SKIP_POSTGRES=1` says to skip them.

use std::path::Path;
use std::process::Command;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use server::{AppState, ServerConfig};
use sqlx::Connection as _;
use tower::ServiceExt as _;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";
pub(crate) const AGENT_SECRET: &str = "test-agent-secret";

#[derive(Clone, Copy, Debug)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

pub(crate) struct Harness {
    pub state: AppState,
    pub app: Router,
    pub dir: tempfile::TempDir,
    /// The token each registered agent got, by agent id: `agent` sends it for that agent.
    agent_tokens: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    /// The PostgreSQL database made for this test, held only to be dropped with the harness.
    _database: Option<TestDatabase>,
}

/// A database of the test PostgreSQL, dropped (its connections closed) when this is.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot wait for async work: psql does it synchronously.
        let _ = Command::new("psql")
            .args([self.admin_url.as_str(), "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// Runs `check` on a SQLite and a PostgreSQL server: `both!(name, check)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let harness = $crate::harness::Harness::new($crate::harness::Db::Sqlite).await.expect("sqlite harness");
                super::$check(harness).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(harness) = $crate::harness::Harness::new($crate::harness::Db::Postgres).await {
                    super::$check(harness).await;
                }
            }
        }
    };
}

async fn fresh_postgres() -> Option<TestDatabase> {
    let Ok(url) = std::env::var("GANTRY_TEST_POSTGRES_URL") else {
        if std::env::var("GANTRY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("skipping the PostgreSQL variant: GANTRY_TEST_SKIP_POSTGRES=1");
            return None;
        }
        panic!(
            "GANTRY_TEST_POSTGRES_URL is not set: run `export GANTRY_TEST_POSTGRES_URL=$(scripts/postgres-up.sh | tail -n 1)` (or GANTRY_TEST_SKIP_POSTGRES=1)"
        );
    };
    let name = format!("gantry_server_{}_{}", std::process::id(), unique());
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut connection).await.expect("create a test database");
    Some(TestDatabase { admin_url: url, name })
}

impl TestDatabase {
    fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&self.admin_url);
        format!("{base}/{}", self.name)
    }
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos * 1000 + NEXT.fetch_add(1, Ordering::SeqCst)
}

impl Harness {
    /// `None` when the PostgreSQL variant is skipped.
    pub(crate) async fn new(db: Db) -> Option<Harness> {
        Self::with(db, |_| {}).await
    }

    pub(crate) async fn with(db: Db, adjust: impl FnOnce(&mut ServerConfig)) -> Option<Harness> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
        config.public_url = "http://gantry.test".into();
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.agent_secret = Some(AGENT_SECRET.into());
        let database = match db {
            Db::Postgres => Some(fresh_postgres().await?),
            Db::Sqlite => None,
        };
        config.database_url = database.as_ref().map(TestDatabase::url);
        adjust(&mut config);
        let state = server::open(config).await.expect("open the server");
        let app = server::app::router(state.clone());
        Some(Harness { state, app, dir, agent_tokens: Default::default(), _database: database })
    }

    pub(crate) async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let response = self.response(method, path, token, body).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// The whole answer, headers included.
    pub(crate) async fn response(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> axum::response::Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        self.app.clone().oneshot(request).await.expect("the app answers")
    }

    /// Serves the application on a loopback port, as processes on the network reach it (a
    /// deployer sending its events); its base URL. It serves until the test's runtime ends.
    pub(crate) async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = self.app.clone().into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    /// Runs `statement` on the server's database around the store (to plant what a bug or a
    /// disk error would leave).
    pub(crate) async fn sql(&self, statement: &str) -> Result<(), sqlx::Error> {
        let statement = sqlx::AssertSqlSafe(statement.to_owned());
        match &self.state.config.database_url {
            Some(url) => {
                let mut connection = sqlx::PgConnection::connect(url).await?;
                sqlx::query(statement).execute(&mut connection).await?;
            }
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(self.state.config.data_dir.join("gantry.db"));
                let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
                sqlx::query(statement).execute(&mut connection).await?;
            }
        }
        Ok(())
    }

    /// A raw request (webhooks: exact bytes and headers).
    pub(crate) async fn raw(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(Method::POST).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.expect("the app answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN_TOKEN), body).await
    }

    /// Creates a user and an API token for it; returns the token.
    pub(crate) async fn user(&self, login: &str) -> String {
        let (status, _) =
            self.admin(Method::POST, "/api/v1/users", Some(serde_json::json!({ "login": login, "password": "password-of-test" }))).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = self
            .call(Method::POST, "/api/v1/login", None, Some(serde_json::json!({ "login": login, "password": "password-of-test" })))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let user = self.state.store.user_by_login(login).await.unwrap().unwrap();
        let token = format!("gta_test_{login}_{}", unique());
        let hash = server::crypto::token_hash(&token);
        self.state.store.create_token(user.id, "test", &hash, store::TokenKind::Api, None, 0).await.unwrap();
        token
    }

    /// A request of the agent protocol: `/register` with the agent secret (remembering the
    /// token it returns), anything else with the token of the agent the body names.
    pub(crate) async fn agent(&self, path: &str, body: Value) -> (StatusCode, Value) {
        if path == "/register" {
            let (status, answer) = self.call(Method::POST, "/api/agent/v1/register", Some(AGENT_SECRET), Some(body)).await;
            if let (Some(id), Some(token)) = (answer["agent_id"].as_i64(), answer["token"].as_str()) {
                self.agent_tokens.lock().unwrap().insert(id, token.to_owned());
            }
            return (status, answer);
        }
        let token = body["agent_id"].as_i64().map(|id| self.agent_token(id)).unwrap_or_default();
        self.call(Method::POST, &format!("/api/agent/v1{path}"), Some(&token), Some(body)).await
    }

    /// The token agent `id` registered with.
    pub(crate) fn agent_token(&self, id: i64) -> String {
        self.agent_tokens.lock().unwrap().get(&id).cloned().unwrap_or_else(|| panic!("agent {id} never registered through the harness"))
    }

    /// As `agent`, insisting on 200; the answer.
    pub(crate) async fn agent_ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.agent(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer
    }

    /// Registers an agent; its id.
    pub(crate) async fn register_agent(&self, name: &str, labels: Value) -> i64 {
        let answer =
            self.agent_ok("/register", serde_json::json!({ "name": name, "labels": labels, "capacity": 2, "version": "test" })).await;
        answer["agent_id"].as_i64().unwrap()
    }

    /// Registers `full_name` on `clone_url` as the admin token.
    pub(crate) async fn repo(&self, full_name: &str, clone_url: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({ "full_name": full_name, "clone_url": clone_url, "webhook_secret": "hook-secret" });
        if let (Some(target), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                target.insert(key.clone(), value.clone());
            }
        }
        let (status, repo) = self.admin(Method::POST, "/api/v1/repos", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{repo}");
        repo
    }
}

/// A bare repository with one commit holding `files`; returns (file:// URL, commit sha, work tree).
pub(crate) fn git_repo(root: &Path, files: &[(&str, &str)]) -> (String, String, std::path::PathBuf) {
    let bare = root.join("remote.git");
    let work = root.join("work");
    git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(root, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
    let sha = commit(&work, files, "first commit");
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&work, &["push", "-q", "origin", "main"]);
    (format!("file://{}", bare.display()), sha, work)
}

/// Writes `files`, commits them with `message`, returns the sha.
pub(crate) fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "--allow-empty", "-m", message]);
    git(work, &["rev-parse", "HEAD"])
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub(crate) const PIPELINE: &str = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo hello\n";

/// A request as received: path, JSON body, `Authorization` header.
pub(crate) type Received = (String, Value, Option<String>);

/// A request exactly as received: path, headers, body bytes.
pub(crate) type RawRequest = (String, axum::http::HeaderMap, Vec<u8>);

/// A local stand-in for a forge's API and for notification receivers: records every request;
/// the first request to `/flaky` fails.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    /// Every request as it came (to check signatures).
    pub raw: std::sync::Arc<std::sync::Mutex<Vec<RawRequest>>>,
}

impl Recorder {
    pub(crate) async fn start(&self) -> String {
        let recorder = self.clone();
        let app = Router::new().fallback(move |request: axum::extract::Request| {
            let recorder = recorder.clone();
            async move {
                let path = request.uri().path().to_owned();
                let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok()).map(str::to_owned);
                let headers = request.headers().clone();
                let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
                recorder.raw.lock().unwrap().push((path.clone(), headers, body.to_vec()));
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut requests = recorder.requests.lock().unwrap();
                let first_flaky = path == "/flaky" && !requests.iter().any(|(seen, _, _)| seen == "/flaky");
                requests.push((path, json, authorization));
                if first_flaky { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::CREATED }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    pub(crate) fn to(&self, path: &str) -> Vec<(Value, Option<String>)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(seen, _, _)| seen == path)
            .map(|(_, body, auth)| (body.clone(), auth.clone()))
            .collect()
    }

    pub(crate) async fn wait_for(&self, path: &str, count: usize) -> Vec<(Value, Option<String>)> {
        for _ in 0..100 {
            if self.to(path).len() >= count {
                return self.to(path);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("fewer than {count} requests to {path}: {:?}", self.requests.lock().unwrap());
    }
}

/// Makes `tracing` ask the current subscriber about every event instead of caching a callsite's
/// interest. Tests capture logs with subscribers of their own, made and dropped concurrently; a
/// callsite first reached while another test's subscriber was being dropped could be cached as
/// uninteresting to all, and a log line a test waits for was then never written. A global
/// subscriber that answers "sometimes" and records nothing keeps every cache at "ask".
fn keep_every_callsite_live() {
    struct AskEveryTime;
    impl tracing::Subscriber for AskEveryTime {
        fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(AskEveryTime);
    });
}

/// Runs `future` with the server's `tracing` events at INFO and above written to a buffer;
/// its output and that text.
pub(crate) async fn captured_logs<T>(future: impl Future<Output = T>) -> (T, String) {
    use tracing::instrument::WithSubscriber as _;

    keep_every_callsite_live();
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_ansi(false).with_writer(move || writer.clone()).finish();
    let output = future.with_subscriber(subscriber).await;
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (output, text)
}
