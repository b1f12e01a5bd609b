//! End to end, as a team runs Gantry: a real `gantry server` and `gantry agent` as processes,
//! a bare git repository as the remote, the local Docker engine. Builds are started the ways
//! users start them (a signed webhook, polling, cron) and must survive what happens to machines:
//! an agent killed mid-build, the server restarted mid-build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};

use crate::git_in as git;
use crate::support::{Pid, Signal, kill, pid_of};
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "e2e-admin-token";
const AGENT_SECRET: &str = "e2e-agent-secret";
const HOOK_SECRET: &str = "e2e-hook-secret";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server and its agents, killed (and their containers checked) when dropped.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
    agents: Vec<Child>,
    pub(crate) agent_pids: Vec<u32>,
    server_env: Vec<(String, String)>,
    agent_env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Cluster {
    pub(crate) async fn start(server_env: &[(&str, &str)]) -> Cluster {
        Cluster::start_with(server_env, &[]).await
    }

    /// `start`, with variables for the agents too (`DOCKER_HOST` names the engine they use).
    pub(crate) async fn start_with(server_env: &[(&str, &str)], agent_env: &[(&str, &str)]) -> Cluster {
        let owned = |env: &[(&str, &str)]| env.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            server: None,
            agents: Vec::new(),
            agent_pids: Vec::new(),
            server_env: owned(server_env),
            agent_env: owned(agent_env),
            http: reqwest::Client::new(),
        };
        cluster.start_server().await;
        cluster.start_agent();
        cluster
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("server.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
        command
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port), "--data"])
            .arg(self.dir.path().join("data"))
            .env("GANTRY_ADMIN_TOKEN", ADMIN)
            .env("GANTRY_AGENT_SECRET", AGENT_SECRET)
            .env("GANTRY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in &self.server_env {
            command.env(key, value);
        }
        self.server = Some(command.spawn().expect("start gantry server"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(format!("{}/readyz", self.url())).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become ready:\n{}", self.log("server.log"));
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["agent", "--server", &self.url(), "--name", "e2e-agent", "--capacity", "2", "--work-dir"])
            .arg(self.dir.path().join("agent-work"))
            .env("GANTRY_AGENT_SECRET", AGENT_SECRET)
            .env("GANTRY_LOG", "info")
            .envs(self.agent_env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gantry agent");
        self.agent_pids.push(child.id());
        self.agents.push(child);
    }

    fn kill_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    fn kill_agents(&mut self) {
        for mut agent in self.agents.drain(..) {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub(crate) async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url())).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn add_repo(&self, clone_url: &str, extra: Value) {
        let mut body = json!({ "full_name": "acme/app", "clone_url": clone_url, "webhook_secret": HOOK_SECRET });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = self.api(reqwest::Method::POST, "/api/v1/repos", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
    }

    pub(crate) async fn build(&self, number: i64) -> Value {
        self.api(reqwest::Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}"), None).await.1
    }

    /// Waits until build `number` satisfies `done`.
    pub(crate) async fn wait_build(&self, number: i64, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let build = self.build(number).await;
            if done(&build) {
                return build;
            }
            if Instant::now() > deadline {
                panic!(
                    "build {number}: {what} did not happen in {limit:?}: {build}\nserver:\n{}\nagent:\n{}",
                    self.log("server.log"),
                    self.log("agent.log")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn wait_finished(&self, number: i64) -> Value {
        self.wait_build(number, Duration::from_secs(90), "finishing", |build| {
            matches!(build["state"].as_str(), Some("success" | "failure" | "error" | "killed" | "skipped"))
        })
        .await
    }

    pub(crate) async fn log_text(&self, number: i64, step: &Value) -> String {
        let path = format!("/api/v1/repos/acme/app/builds/{number}/steps/{}/log", step["id"]);
        match self.api(reqwest::Method::GET, &path, None).await.1 {
            Value::String(text) => text,
            other => other.to_string(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_agents();
        self.kill_server();
    }
}

pub(crate) fn step<'a>(build: &'a Value, name: &str) -> &'a Value {
    build["workflows"]
        .as_array()
        .and_then(|workflows| {
            workflows.iter().flat_map(|workflow| workflow["steps"].as_array().unwrap().iter()).find(|step| step["name"] == name)
        })
        .unwrap_or_else(|| panic!("no step {name} in {build}"))
}

/// Containers, networks and volumes made by an agent process are all gone (removal runs off the
/// critical path, so give it a moment).
async fn assert_nothing_left(pids: &[u32]) {
    assert_nothing_left_on(None, pids).await;
}

/// `assert_nothing_left` on the engine at `docker_host` (`None`: the shared engine).
pub(crate) async fn assert_nothing_left_on(docker_host: Option<&str>, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut left = Vec::new();
        for pid in pids {
            for kind in [vec!["ps", "-aq"], vec!["network", "ls", "-q"], vec!["volume", "ls", "-q"]] {
                let mut args = kind.clone();
                let filter = format!("label=io.gantry.pid={pid}");
                args.extend(["--filter", &filter]);
                let mut docker = Command::new("docker");
                if let Some(host) = docker_host {
                    docker.args(["-H", host]);
                }
                let output = docker.args(&args).output().unwrap();
                let found = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if !found.is_empty() {
                    left.push(format!("docker {} (pid {pid}): {found}", kind.join(" ")));
                }
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind:\n{}", left.join("\n"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A bare remote with a first commit of `files`; returns (file:// URL, work tree).
pub(crate) fn remote(root: &Path, files: &[(&str, &str)]) -> (String, PathBuf) {
    let bare = root.join("remote.git");
    let work = root.join("work");
    git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(root, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    push_commit(&work, files, "first commit");
    (format!("file://{}", bare.display()), work)
}

pub(crate) fn push_commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        std::fs::write(work.join(path), text).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "--allow-empty", "-m", message]);
    git(work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    git(work, &["rev-parse", "HEAD"])
}

/// A GitHub `push` delivery for `sha` on main, signed with the repository's webhook secret.
pub(crate) async fn deliver_push(cluster: &Cluster, sha: &str, delivery: &str) -> (u16, Value) {
    let body = json!({
        "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000", "after": sha,
        "repository": { "full_name": "acme/app", "clone_url": "file:///unused" },
        "pusher": { "name": "dev", "email": "dev@example.com" }, "sender": { "login": "dev" },
        "commits": [], "head_commit": { "id": sha, "message": "Change things", "author": { "name": "Dev", "email": "dev@example.com", "username": "dev" } },
    });
    deliver(cluster, "push", delivery, body).await
}

async fn deliver(cluster: &Cluster, event: &str, delivery: &str, body: Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&bytes);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let response = cluster
        .http
        .post(format!("{}/api/hooks/acme/app", cluster.url()))
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Follows a step's log over SSE until its `end` event: the texts of its lines.
async fn follow(cluster: &Cluster, number: i64, step_id: i64) -> Vec<String> {
    use futures_util::StreamExt as _;
    let url = format!("{}/api/v1/repos/acme/app/builds/{number}/steps/{step_id}/log/stream", cluster.url());
    let response = cluster.http.get(url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut lines = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("the stream moves") {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.contains("event: end") {
                return lines;
            }
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                let entry: Value = serde_json::from_str(data).unwrap();
                lines.push(entry["text"].as_str().unwrap().to_owned());
            }
        }
    }
    panic!("the log stream ended without an `end` event");
}

const SLOW_PIPELINE: &str = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done\n      - cat README\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_builds_the_pushed_commit_on_an_agent_with_logs_followed_live_on_sqlite() {
    webhook_to_live_log(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_builds_the_pushed_commit_on_an_agent_with_logs_followed_live_on_postgres() {
    let Some(database) = PostgresDatabase::create() else { return };
    webhook_to_live_log(&[("GANTRY_DATABASE_URL", &database.url)]).await;
}

async fn webhook_to_live_log(server_env: &[(&str, &str)]) {
    let cluster = Cluster::start(server_env).await;
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", SLOW_PIPELINE), ("README", "first readme")]);
    cluster.add_repo(&url, json!({ "forge": "github" })).await;
    let sha = push_commit(&work, &[("README", "second readme")], "Change the readme");
    let (status, answer) = deliver_push(&cluster, &sha, "e2e-1").await;
    assert_eq!(status, 200, "{answer}");
    let number = answer["builds"][0].as_i64().unwrap();

    let started = cluster.build(number).await;
    let live = follow(&cluster, number, step(&started, "build")["id"].as_i64().unwrap()).await;
    let build = cluster.wait_finished(number).await;
    assert_eq!(build["state"], "success", "{build}");
    assert_eq!(build["commit"], sha);
    assert_eq!(build["workflows"][0]["agent"], "e2e-agent");
    let expected: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
    let texts: Vec<&String> = live.iter().filter(|line| line.starts_with("line ")).collect();
    assert_eq!(texts, expected.iter().collect::<Vec<_>>(), "followed live: {live:?}");
    assert!(live.contains(&"second readme".to_owned()), "the build saw the pushed commit: {live:?}");
    let downloaded = cluster.log_text(number, step(&build, "build")).await;
    assert_eq!(downloaded.lines().collect::<Vec<_>>(), live.iter().map(String::as_str).collect::<Vec<_>>(), "download and follow agree");
    let pids = cluster.agent_pids.clone();
    assert_nothing_left(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_builds_new_commits_and_cron_builds_on_schedule() {
    let cluster = Cluster::start(&[]).await;
    let pipeline = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo event=$CI_PIPELINE_EVENT\n";
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({ "poll_interval_seconds": 10 })).await;
    // The first poll (within a second of registering) only remembers the remote's refs: wait
    // for it, so that the commit below is news to the second.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.log("server.log").contains("first poll") {
        assert!(Instant::now() < deadline, "no first poll:\n{}", cluster.log("server.log"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sha = push_commit(&work, &[("file.txt", "new")], "Add a file");
    let build = cluster.wait_build(1, Duration::from_secs(30), "a poll build", |build| build["state"] == "success").await;
    assert_eq!(build["trigger"], "poll");
    assert_eq!(build["commit"], sha);

    let (status, cron) =
        cluster.api(reqwest::Method::PUT, "/api/v1/repos/acme/app/crons/often", Some(json!({ "schedule": "*/2 * * * * *" }))).await;
    assert_eq!(status, 200, "{cron}");
    let build = cluster.wait_build(2, Duration::from_secs(30), "a cron build", |build| build["state"] == "success").await;
    assert_eq!(build["event"], "cron");
    assert_eq!(build["trigger"], "cron:often");
    assert!(cluster.log_text(2, step(&build, "build")).await.contains("event=cron"));
    cluster.api(reqwest::Method::DELETE, "/api/v1/repos/acme/app/crons/often", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_for_pushes_and_withheld_from_fork_pull_requests_even_once_approved() {
    let cluster = Cluster::start(&[]).await;
    let pipeline = "steps:\n  deploy:\n    image: gantry-test/busybox:latest\n    environment:\n      TOKEN:\n        from_secret: deploy_token\n    commands:\n      - echo token=$TOKEN\n";
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({ "forge": "github" })).await;
    let value = "sup3r-s3cret-value";
    let events = json!(["push", "pull_request"]);
    let (status, _) = cluster
        .api(reqwest::Method::PUT, "/api/v1/repos/acme/app/secrets/deploy_token", Some(json!({ "value": value, "events": events })))
        .await;
    assert_eq!(status, 200);

    let sha = push_commit(&work, &[], "Deploy");
    let (_, answer) = deliver_push(&cluster, &sha, "push-1").await;
    let push = cluster.wait_finished(answer["builds"][0].as_i64().unwrap()).await;
    assert_eq!(push["state"], "success", "{push}");
    let log = cluster.log_text(push["number"].as_i64().unwrap(), step(&push, "deploy")).await;
    assert!(log.contains("token=********") && !log.contains(value), "masked: {log}");

    let head = push_commit(&work, &[("fork.txt", "from a fork")], "A fork's change");
    git(&work, &["push", "-q", "origin", "HEAD:refs/pull/7/head"]);
    let pull_request = json!({
        "action": "opened", "number": 7,
        "pull_request": {
            "number": 7, "title": "A fork's change", "user": { "login": "stranger" },
            "head": { "sha": head, "ref": "feature", "repo": { "full_name": "stranger/app", "clone_url": "file:///unused" } },
            "base": { "sha": sha, "ref": "main", "repo": { "full_name": "acme/app", "clone_url": url } },
        },
        "repository": { "full_name": "acme/app" }, "sender": { "login": "stranger" },
    });
    let (status, answer) = deliver(&cluster, "pull_request", "pr-1", pull_request).await;
    assert_eq!(status, 200, "{answer}");
    let number = answer["builds"][0].as_i64().unwrap();
    // A fork's build waits for a maintainer; approved, it still gets no secret.
    let path = format!("/api/v1/repos/acme/app/builds/{number}");
    let (_, waiting) = cluster.api(reqwest::Method::GET, &path, None).await;
    assert_eq!(waiting["state"], "blocked", "{waiting}");
    let (status, approved) = cluster.api(reqwest::Method::POST, &format!("{path}/approve"), None).await;
    assert_eq!(status, 200, "{approved}");
    let build = cluster.wait_finished(number).await;
    assert_eq!(build["event"], "pull_request");
    assert_eq!(build["state"], "error", "{build}");
    let reason = build["workflows"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not given to pull requests from forks"), "{reason}");
    assert!(!build.to_string().contains(value));
}

/// A request as a receiver saw it: headers (names lower-cased) and body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

/// A local delivery webhook receiver: its port, and the requests it receives.
fn start_receiver() -> (u16, std::sync::mpsc::Receiver<Delivery>) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else { return };
            let mut reader = std::io::BufReader::new(connection.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
                line.clear();
            }
            let length = headers.iter().find(|(name, _)| name == "content-length").and_then(|(_, value)| value.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = connection.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            if sender.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (port, receiver)
}

/// CI's product end to end: a push builds and pushes an image to the local registry; the
/// server lists it as the build's artifact, traces its digest back to the build, and announces
/// it, signed, to a delivery webhook, which is all a deployer needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_commit_publishes_an_image_listed_as_the_builds_artifact_and_announced_signed() {
    const DELIVERY_SECRET: &str = "e2e-delivery-secret-0123456789";
    let cluster = Cluster::start(&[]).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let repository = format!("127.0.0.1:5000/gantry-e2e/app-{}-{nanos}", std::process::id());
    let pipeline = format!(
        "steps:\n  test:\n    image: gantry-test/busybox:latest\n    commands:\n      - test -f README\n  image:\n    image: plugins/docker\n    settings:\n      repo: {repository}\n      tags: [latest, '1.0']\n      purge: true\n"
    );
    let dockerfile = "FROM gantry-test/busybox:latest\nCOPY README /README\n";
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", &pipeline), ("Dockerfile", dockerfile), ("README", "v1")]);
    cluster.add_repo(&url, json!({ "forge": "github" })).await;
    let (port, deliveries) = start_receiver();
    let gantry = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(args)
            .env("GANTRY_SERVER", cluster.url())
            .env("GANTRY_TOKEN", ADMIN)
            .env("DELIVERY_SECRET", DELIVERY_SECRET)
            .output()
            .unwrap();
        assert!(output.status.success(), "gantry {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let receiver_url = format!("http://127.0.0.1:{port}/gantry");
    let added =
        gantry(&["notifier", "add", "acme/app", &receiver_url, "--event", "image.published", "--secret-from-env", "DELIVERY_SECRET"]);
    assert!(added.contains("image.published, signed"), "{added}");

    let sha = push_commit(&work, &[("README", "v2")], "Release");
    let (status, answer) = deliver_push(&cluster, &sha, "release-1").await;
    assert_eq!(status, 200, "{answer}");
    let number = answer["builds"][0].as_i64().unwrap();
    let build = cluster.wait_finished(number).await;
    assert_eq!(build["state"], "success", "{build}\n{}", cluster.log("agent.log"));

    // The build's artifact is the image in the registry.
    let (status, artifacts) = cluster.api(reqwest::Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}/artifacts"), None).await;
    assert_eq!(status, 200, "{artifacts}");
    let artifact = &artifacts[0];
    assert_eq!(artifact["image"], repository.as_str());
    assert_eq!(artifact["tags"], json!(["latest", "1.0"]));
    let digest = artifact["digest"].as_str().unwrap().to_owned();
    let (name, _) = repository.split_once('/').map(|(_, name)| (name, ())).unwrap();
    let manifest = reqwest::Client::new()
        .get(format!("http://127.0.0.1:5000/v2/{name}/manifests/1.0"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.headers()["docker-content-digest"].to_str().unwrap(), digest, "the recorded digest is the registry's");
    let (status, statement) = cluster.api(reqwest::Method::GET, artifact["provenance"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{statement}");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));

    // The digest leads back to the build; the CLI shows both ways.
    let pinned = format!("{repository}@{digest}");
    let shown = gantry(&["build", "show", "acme/app", &number.to_string()]);
    assert!(shown.contains("artifacts:") && shown.contains(&digest), "{shown}");
    let traced = gantry(&["artifact", "show", &pinned]);
    assert!(traced.contains(&format!("acme/app build {number} (success)")) && traced.contains(&sha[..8]), "{traced}");

    // Announced to the delivery webhook, signed with its secret.
    let (headers, body) = deliveries.recv_timeout(Duration::from_secs(30)).expect("an image.published delivery");
    let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default();
    assert_eq!(header("x-gantry-event"), "image.published");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(DELIVERY_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(header("x-gantry-signature"), format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (event["repository"].clone(), event["build"].clone(), event["commit"].clone()),
        (json!("acme/app"), json!(number), json!(sha))
    );
    assert_eq!(
        (event["image"].as_str(), event["digest"].as_str(), event["pinned"].as_str()),
        (Some(repository.as_str()), Some(digest.as_str()), Some(pinned.as_str()))
    );
    assert_eq!(event["tags"], json!(["latest", "1.0"]));
    let pids = cluster.agent_pids.clone();
    assert_nothing_left(&pids).await;
    let leftover = Command::new("docker").args(["image", "inspect", &format!("{repository}:latest")]).output().unwrap();
    assert!(!leftover.status.success(), "purge: true leaves no tag on the agent's engine");
}

/// A private registry's login, kept by the server for the repository (`gantry registry add`),
/// reaches the agent, which pulls the step's private image with it; no step and no log sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repositorys_registry_login_lets_its_agent_pull_a_private_step_image() {
    let login = std::fs::read_to_string("/var/lib/gantry-test/registry-auth/credentials").expect("run scripts/registry-up.sh");
    let (username, password) = login.trim().split_once(':').unwrap();
    let cluster = Cluster::start(&[]).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let reference = format!("127.0.0.1:5001/gantry-e2e/private-{}-{nanos}:base", std::process::id());
    let docker_config = cluster.dir.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let docker = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write as _;
        let mut child = Command::new("docker")
            .arg("--config")
            .arg(&docker_config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    docker(&["tag", "gantry-test/busybox:latest", &reference], None);
    docker(&["login", "127.0.0.1:5001", "-u", username, "--password-stdin"], Some(password));
    docker(&["push", "-q", &reference], None);
    docker(&["rmi", &reference], None);

    let pipeline = format!("steps:\n  private:\n    image: {reference}\n    commands:\n      - echo ran in the private image\n");
    let (url, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", &pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    let run = || async {
        let (status, build) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
        assert_eq!(status, 201, "{build}");
        cluster.wait_finished(build["number"].as_i64().unwrap()).await
    };

    let refused = run().await;
    let reason = step(&refused, "private")["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("could not be pulled") && reason.contains("no basic auth credentials"), "without a login: {refused}");

    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["registry", "add", "acme/app", "127.0.0.1:5001", "--username", username, "--password-from-env", "E2E_REGISTRY_PASSWORD"])
        .env("GANTRY_SERVER", cluster.url())
        .env("GANTRY_TOKEN", ADMIN)
        .env("E2E_REGISTRY_PASSWORD", password)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let pulled = run().await;
    assert_eq!(pulled["state"], "success", "{pulled}\n{}", cluster.log("agent.log"));
    let log = cluster.log_text(pulled["number"].as_i64().unwrap(), step(&pulled, "private")).await;
    assert!(log.contains("ran in the private image"), "{log}");
    for text in [log, pulled.to_string(), refused.to_string(), cluster.log("agent.log"), cluster.log("server.log")] {
        assert!(!text.contains(password), "the registry password leaked: {text}");
    }
    let _ = Command::new("docker").args(["rmi", &reference]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_build_stops_its_running_step_and_leaves_nothing() {
    let cluster = Cluster::start(&[]).await;
    let pipeline = "steps:\n  wait:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo waiting\n      - sleep 120\n";
    let (url, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    let (status, build) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, 201, "{build}");
    cluster.wait_build(1, Duration::from_secs(30), "the step running", |build| step(build, "wait")["log_lines"].as_u64() >= Some(2)).await;
    let asked = Instant::now();
    let (status, _) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds/1/cancel", None).await;
    assert_eq!(status, 200);
    let build = cluster.wait_finished(1).await;
    // The step is killed, its container removed and the build reported within this (about a
    // second here; the margin is for a loaded CI machine running the other tests beside it).
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped in {:?}", asked.elapsed());
    assert_eq!(build["state"], "killed", "{build}");
    assert_eq!(step(&build, "wait")["state"], "killed", "{build}");
    let pids = cluster.agent_pids.clone();
    assert_nothing_left(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_build_is_marked_lost_and_its_workflow_runs_again_on_restart() {
    let mut cluster = Cluster::start(&[("GANTRY_AGENT_LOST_AFTER", "3")]).await;
    let pipeline = "steps:\n  work:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo started\n      - sleep 4\n      - echo finished\n";
    let (url, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    cluster.wait_build(1, Duration::from_secs(30), "the step running", |build| step(build, "work")["log_lines"].as_u64() >= Some(2)).await;
    let killed_pid = cluster.agent_pids[0];
    kill(Pid::from_raw(killed_pid as i32), Signal::SIGKILL).unwrap();
    cluster.kill_agents();

    let lost = cluster
        .wait_build(1, Duration::from_secs(15), "the workflow marked lost", |build| {
            build["workflows"][0]["reason"].as_str().is_some_and(|reason| reason.contains("stopped answering"))
        })
        .await;
    assert_eq!(lost["workflows"][0]["state"], "pending", "re-queued: {lost}");

    cluster.start_agent();
    let build = cluster.wait_finished(1).await;
    assert_eq!(build["state"], "success", "{build}");
    assert!(cluster.log_text(1, step(&build, "work")).await.contains("finished"));
    // The new agent swept what the killed one left on the engine.
    let pids = cluster.agent_pids.clone();
    assert_nothing_left(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_promptly_on_sigterm_while_agents_poll_and_logs_are_followed() {
    let mut cluster = Cluster::start(&[]).await;
    let pipeline = "steps:\n  wait:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo waiting\n      - sleep 30\n";
    let (url, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    let build = cluster
        .wait_build(1, Duration::from_secs(30), "the step running", |build| step(build, "wait")["log_lines"].as_u64() >= Some(2))
        .await;
    let stream = cluster
        .http
        .get(format!("{}/api/v1/repos/acme/app/builds/1/steps/{}/log/stream", cluster.url(), step(&build, "wait")["id"]))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let server = cluster.server.as_mut().unwrap();
    kill(pid_of(server), Signal::SIGTERM).unwrap();
    let asked = Instant::now();
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(5), "still running 5 s after SIGTERM:\n{}", cluster.log("server.log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
    cluster.server = None;
}

async fn server_restart(cluster_env: &[(&str, &str)]) {
    let mut cluster = Cluster::start(cluster_env).await;
    let pipeline = "steps:\n  count:\n    image: gantry-test/busybox:latest\n    commands:\n      - i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); sleep 0.01; done\n";
    let (url, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    cluster.wait_build(1, Duration::from_secs(30), "lines arriving", |build| step(build, "count")["log_lines"].as_u64() >= Some(30)).await;
    cluster.kill_server();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_server().await;
    let build = cluster.wait_finished(1).await;
    assert_eq!(build["state"], "success", "{build}");
    let log = cluster.log_text(1, step(&build, "count")).await;
    let lines: Vec<&str> = log.lines().filter(|line| line.starts_with("line ")).collect();
    let expected: Vec<String> = (0..400).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected.iter().map(String::as_str).collect::<Vec<_>>(), "every line once, in order");
    assert_eq!(step(&build, "count")["log_lines"].as_u64().unwrap() as usize, log.lines().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_build_loses_no_build_and_no_log_line_on_sqlite() {
    server_restart(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_build_loses_no_build_and_no_log_line_on_postgres() {
    let Some(database) = PostgresDatabase::create() else { return };
    server_restart(&[("GANTRY_DATABASE_URL", &database.url)]).await;
}

/// A fresh PostgreSQL database for one test, dropped afterwards. `None` when the PostgreSQL
/// variants are skipped (`GANTRY_TEST_SKIP_POSTGRES=1`); without `GANTRY_TEST_POSTGRES_URL`
/// they fail, saying how to start one.
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    fn create() -> Option<PostgresDatabase> {
        let Ok(admin_url) = std::env::var("GANTRY_TEST_POSTGRES_URL") else {
            if std::env::var("GANTRY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                return None;
            }
            panic!("GANTRY_TEST_POSTGRES_URL is not set: run `export GANTRY_TEST_POSTGRES_URL=$(scripts/postgres-up.sh | tail -n 1)`");
        };
        let name = format!("gantry_e2e_{}_{}", std::process::id(), free_port());
        let output =
            Command::new("psql").args([admin_url.as_str(), "-q", "-c", &format!("CREATE DATABASE {name}")]).output().expect("psql runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        Some(PostgresDatabase { admin_url, name, url })
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ =
            Command::new("psql").args([self.admin_url.as_str(), "-q", "-c", &format!("DROP DATABASE {} WITH (FORCE)", self.name)]).output();
    }
}
