//! The server and agents against their baselines, side by side on this machine:
//! - webhook received → first step container started, against `docker run -d` → started
//!   (the engine's own floor), both timed by the engine's `start` events;
//! - N queued trivial builds through 2 agents, against `gantry exec` of the same pipeline run
//!   serially;
//! - `GET` of the build list under load (wrk), against `/healthz` of the same server; the
//!   server's RSS idle and its peak under load;
//! - log ingestion: a step printing many megabytes through agent and server, against
//!   `gantry exec` of the same step.
//!
//! Needs Docker and the test image (`scripts/docker-up.sh`), `wrk` (`apt-get install wrk`), and
//! `cargo build --release -p cli`. Settings: BENCH_LATENCY_ROUNDS (20), BENCH_BUILDS (100; the
//! issue's figure is 500), BENCH_EXEC_BUILDS (20), BENCH_LOG_MB (256), BENCH_ONLY (one part).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin";
const AGENT_SECRET: &str = "bench-agent";
const HOOK_SECRET: &str = "bench-hook";
const IMAGE: &str = "gantry-test/busybox:latest";
const TRIVIAL: &str = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo hello\n";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn gantry_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/gantry");
    assert!(path.exists(), "build the binary first: cargo build --release -p cli");
    path
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn commit(work: &Path, pipeline: &str, message: &str) -> String {
    std::fs::write(work.join(".woodpecker.yml"), pipeline).unwrap();
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "--allow-empty", "-m", message]);
    git(work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    git(work, &["rev-parse", "HEAD"])
}

fn percentile(samples: &[f64], fraction: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

/// Kilobytes of a process's resident memory: now (`VmRSS`) and peak (`VmHWM`).
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Cluster {
    port: u16,
    server: Child,
    agents: Vec<Child>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(dir: &Path, agents: usize) -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Command::new(gantry_binary())
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.join("data"))
            .env("GANTRY_ADMIN_TOKEN", ADMIN)
            .env("GANTRY_AGENT_SECRET", AGENT_SECRET)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut cluster = Cluster { port, server, agents: Vec::new(), http: reqwest::Client::new() };
        for _ in 0..100 {
            if cluster.http.get(format!("{}/readyz", cluster.url())).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for index in 0..agents {
            let agent = Command::new(gantry_binary())
                .args(["agent", "--server", &cluster.url(), "--name", &format!("bench-{index}"), "--capacity", "1", "--work-dir"])
                .arg(dir.join(format!("agent-{index}")))
                .env("GANTRY_AGENT_SECRET", AGENT_SECRET)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("agent-{index}.log"))).unwrap())
                .spawn()
                .unwrap();
            cluster.agents.push(agent);
        }
        cluster
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url())).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().json().await.unwrap_or(Value::Null)
    }

    async fn wait_finished(&self, number: i64) -> Value {
        loop {
            let build = self.api(reqwest::Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}"), None).await;
            if matches!(build["state"].as_str(), Some("success" | "failure" | "error" | "killed")) {
                assert_eq!(build["state"], "success", "{build}");
                return build;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn webhook(&self, sha: &str, delivery: &str) -> i64 {
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000", "after": sha,
            "repository": { "full_name": "acme/app" }, "pusher": { "name": "bench" }, "sender": { "login": "bench" },
            "commits": [], "head_commit": { "id": sha, "message": "bench", "author": { "name": "Bench", "email": "bench@example.com" } },
        }))
        .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response = self
            .http
            .post(format!("{}/api/hooks/acme/app", self.url()))
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        answer["builds"][0].as_i64().unwrap_or_else(|| panic!("no build: {answer}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The engine's `start` events with the given label, as nanosecond times.
fn start_events(label: &str) -> (Child, mpsc::Receiver<u128>) {
    let mut child = Command::new("docker")
        .args(["events", "--filter", "event=start", "--filter", &format!("label={label}"), "--format", "{{.TimeNano}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(nanos) = line.trim().parse::<u128>()
                && sender.send(nanos).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    (child, receiver)
}

fn repo_dir(root: &Path) -> (String, PathBuf) {
    let bare = root.join("remote.git");
    let work = root.join("work");
    git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(root, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    commit(&work, TRIVIAL, "first");
    (format!("file://{}", bare.display()), work)
}

async fn latency(root: &Path, rounds: usize) {
    let (url, work) = repo_dir(root);
    let cluster = Cluster::start(root, 1).await;
    cluster
        .api(
            reqwest::Method::POST,
            "/api/v1/repos",
            Some(json!({ "full_name": "acme/app", "clone_url": url, "forge": "github", "webhook_secret": HOOK_SECRET })),
        )
        .await;
    let (mut gantry_events, gantry_starts) = start_events("io.gantry.step");
    let (mut floor_events, floor_starts) = start_events("bench.floor");
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for round in 0..rounds + 1 {
        let sha = commit(&work, TRIVIAL, &format!("round {round}"));
        tokio::time::sleep(Duration::from_millis(300)).await; // an idle agent, waiting in its lease
        let sent = now_nanos();
        let number = cluster.webhook(&sha, &format!("round-{round}")).await;
        let started = gantry_starts.recv_timeout(Duration::from_secs(30)).expect("a step container started");
        cluster.wait_finished(number).await;
        let sent_floor = now_nanos();
        let status = Command::new("docker")
            .args(["run", "-d", "--rm", "--label", "bench.floor=1", IMAGE, "true"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let started_floor = floor_starts.recv_timeout(Duration::from_secs(30)).expect("the floor container started");
        if round > 0 {
            ours.push((started.saturating_sub(sent)) as f64 / 1e6);
            floor.push((started_floor.saturating_sub(sent_floor)) as f64 / 1e6);
        }
    }
    let _ = gantry_events.kill();
    let _ = floor_events.kill();
    let (p50, p99, floor50, floor99) = (percentile(&ours, 0.5), percentile(&ours, 0.99), percentile(&floor, 0.5), percentile(&floor, 0.99));
    println!("webhook → first step container started ({rounds} rounds, idle agent)");
    println!("  gantry:              p50 {p50:7.1} ms   p99 {p99:7.1} ms");
    println!("  docker run -d floor: p50 {floor50:7.1} ms   p99 {floor99:7.1} ms");
    println!("  ratio:               p50 {:.2}x          p99 {:.2}x", p50 / floor50, p99 / floor99);
}

async fn throughput(root: &Path, builds: usize, exec_builds: usize) -> (Cluster, u32) {
    let (url, work) = repo_dir(root);
    let cluster = Cluster::start(root, 2).await;
    cluster.api(reqwest::Method::POST, "/api/v1/repos", Some(json!({ "full_name": "acme/app", "clone_url": url }))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    for _ in 0..builds {
        let answer = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
        assert!(answer["number"].is_i64(), "{answer}");
    }
    let queued = started.elapsed();
    for number in 1..=builds as i64 {
        cluster.wait_finished(number).await;
    }
    let server_time = started.elapsed();
    let exec_started = Instant::now();
    for _ in 0..exec_builds {
        let status = Command::new(gantry_binary())
            .args(["exec", "--clone"])
            .current_dir(&work)
            .env("CI", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let exec_time = exec_started.elapsed();
    let server_rate = builds as f64 / server_time.as_secs_f64() * 60.0;
    let exec_rate = exec_builds as f64 / exec_time.as_secs_f64() * 60.0;
    println!("{builds} queued trivial builds through 2 agents (capacity 1 each; queued in {:.1} s)", queued.as_secs_f64());
    println!("  server + 2 agents:      {server_rate:7.1} builds/min ({:.1} s)", server_time.as_secs_f64());
    println!("  gantry exec, serially:  {exec_rate:7.1} builds/min ({exec_builds} runs, {:.1} s)", exec_time.as_secs_f64());
    println!(
        "  ratio: {:.2}x overall; {:.2}x per agent slot (the server's overhead)",
        server_rate / exec_rate,
        server_rate / 2.0 / exec_rate
    );
    let pid = cluster.server.id();
    (cluster, pid)
}

fn wrk(url: &str) -> (f64, String) {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H", &format!("Authorization: Bearer {ADMIN}"), url])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rps = text.lines().find_map(|line| line.strip_prefix("Requests/sec:")).and_then(|value| value.trim().parse().ok()).unwrap_or(0.0);
    let p99 = text.lines().find_map(|line| line.trim().strip_prefix("99%")).map(|value| value.trim().to_owned()).unwrap_or_default();
    (rps, p99)
}

async fn load(cluster: &Cluster, pid: u32) {
    let (idle, _) = memory_kb(pid);
    let (list_rps, list_p99) = wrk(&format!("{}/api/v1/repos/acme/app/builds?limit=25", cluster.url()));
    let (health_rps, health_p99) = wrk(&format!("{}/healthz", cluster.url()));
    let (_, peak) = memory_kb(pid);
    println!("API under load (wrk: 2 threads, 32 connections, 10 s)");
    println!("  GET build list (25 builds): {list_rps:9.0} req/s   p99 {list_p99}");
    println!("  GET /healthz (floor):       {health_rps:9.0} req/s   p99 {health_p99}");
    println!("  ratio: {:.2}x of the floor's throughput", list_rps / health_rps);
    println!("  server RSS: {:.1} MiB idle, {:.1} MiB peak so far", idle as f64 / 1024.0, peak as f64 / 1024.0);
}

async fn logs(root: &Path, megabytes: usize) {
    let bytes = megabytes * 1024 * 1024;
    let pipeline = format!(
        "skip_clone: true\nsteps:\n  print:\n    image: {IMAGE}\n    commands:\n      - yes 'a log line of about seventy characters, as builds print them, 0123456789' | head -c {bytes}\n"
    );
    let (url, work) = repo_dir(root);
    commit(&work, &pipeline, "logs");
    let cluster = Cluster::start(root, 1).await;
    cluster.api(reqwest::Method::POST, "/api/v1/repos", Some(json!({ "full_name": "acme/app", "clone_url": url }))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let answer = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    cluster.wait_finished(answer["number"].as_i64().unwrap()).await;
    let server_time = started.elapsed();
    let (_, peak) = memory_kb(cluster.server.id());
    let exec_started = Instant::now();
    let status = Command::new(gantry_binary())
        .args(["exec"])
        .current_dir(&work)
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let exec_time = exec_started.elapsed();
    let server_rate = megabytes as f64 / server_time.as_secs_f64();
    let exec_rate = megabytes as f64 / exec_time.as_secs_f64();
    println!("log ingestion: one step printing {megabytes} MiB");
    println!(
        "  through agent and server: {server_rate:6.1} MiB/s ({:.1} s, server peak RSS {:.1} MiB)",
        server_time.as_secs_f64(),
        peak as f64 / 1024.0
    );
    println!("  gantry exec (floor):      {exec_rate:6.1} MiB/s ({:.1} s)", exec_time.as_secs_f64());
    println!("  ratio: {:.2}x", server_rate / exec_rate);
}

#[tokio::main]
async fn main() {
    let root = std::env::temp_dir().join(format!("gantry-bench-server-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for part in ["latency", "throughput", "logs"] {
        std::fs::create_dir_all(root.join(part)).unwrap();
    }
    // BENCH_ONLY=latency|throughput|logs runs one part (throughput includes the API load).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only == part;
    if wanted("latency") {
        latency(&root.join("latency"), setting("BENCH_LATENCY_ROUNDS", 20)).await;
    }
    if wanted("throughput") {
        let (cluster, pid) = throughput(&root.join("throughput"), setting("BENCH_BUILDS", 100), setting("BENCH_EXEC_BUILDS", 20)).await;
        load(&cluster, pid).await;
        drop(cluster);
    }
    if wanted("logs") {
        logs(&root.join("logs"), setting("BENCH_LOG_MB", 256)).await;
    }
    let _ = std::fs::remove_dir_all(&root);
}
