//! The web UI's speed, measured on a real `gantry server` (release binary, SQLite):
//! - server time of the build page of a 50-step build and of a repository page over 10,000
//!   builds (first page, a deep page, a filter), p50 and p99 under load (wrk), against
//!   `/healthz` of the same server under the same load;
//! - bytes of CSS and JS a page loads;
//! - time to the first log line of a running step: the page, then the last range of a
//!   1,000,000-line log as the viewer asks for it, against reading those lines straight off the
//!   disk with `tail`; and a line's trip over the log's event stream.
//!
//! The 50-step build is made the normal way (a manual build on a git repository; no agent, so
//! it stays pending); the 10,000 other builds and the running step's log are written into the
//! server's database and log folder while it is stopped. Needs `wrk` and `sqlite3`
//! (`apt-get install wrk sqlite3`) and `cargo build --release -p cli`. Settings: BENCH_BUILDS
//! (10000), BENCH_LOG_LINES (1000000), BENCH_ROUNDS (30), BENCH_SECONDS (10, per wrk run).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use support::{ADMIN, Server};

mod support;

const PASSWORD: &str = "bench-password";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Fan-out and fan-in at scale: `build`, 24 tests after it, a gate after them, 24 deploys after
/// the gate.
fn fifty_steps() -> String {
    let step = |name: &str, depends_on: &[String]| {
        format!(
            "  {name}:\n    image: gantry-test/busybox:latest\n    depends_on: [{}]\n    commands: [echo {name}]\n",
            depends_on.join(", ")
        )
    };
    let tests: Vec<String> = (1..=24).map(|index| format!("test-{index}")).collect();
    let mut text = String::from("steps:\n");
    text.push_str(&step("build", &[]));
    for test in &tests {
        text.push_str(&step(test, &["build".to_owned()]));
    }
    text.push_str(&step("gate", &tests));
    for index in 1..=24 {
        text.push_str(&step(&format!("deploy-{index}"), &["gate".to_owned()]));
    }
    text
}

async fn api(http: &reqwest::Client, server: &Server, method: reqwest::Method, path: &str, body: Value) -> Value {
    let answer = http.request(method, format!("{}{path}", server.url())).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap_or(Value::Null)
}

/// Writes `builds` finished builds (numbers after the existing ones), each with one workflow of
/// one step, and makes step `running_step` running with `log_lines` lines; straight into the stopped server's database.
fn plant_builds(database: &Path, builds: usize, running_step: i64, log_lines: usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let sql = format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO builds (repo_id, number, event, state, reference, branch, commit_sha, message, author, trigger_kind,
                             diagnostics, variables, from_fork, created, started, finished)
         SELECT 1, i, CASE i % 3 WHEN 0 THEN 'pull_request' ELSE 'push' END, CASE i % 7 WHEN 0 THEN 'failure' ELSE 'success' END,
                'refs/heads/main', CASE i % 5 WHEN 0 THEN 'feature-' || (i % 50) ELSE 'main' END,
                printf('%040x', i), 'Change number ' || i, 'dev' || (i % 20), 'hook', '[]', '{{}}', 0,
                {now} - (20000 - i) * 60000, {now} - (20000 - i) * 60000 + 1000, {now} - (20000 - i) * 60000 + 95000
         FROM n;
         INSERT INTO workflows (build_id, name, state, depends_on, labels, plan, created, started, finished)
         SELECT id, 'woodpecker', state, '[]', '{{}}', 'null', created, started, finished FROM builds WHERE number > 1;
         INSERT INTO steps (workflow_id, name, position, state, exit_code, started, finished)
         SELECT w.id, 'build', 0, w.state, 0, w.started, w.finished FROM workflows w JOIN builds b ON b.id = w.build_id WHERE b.number > 1;
         UPDATE steps SET state = 'running', started = {now}, log_lines = {log_lines} WHERE id = {running_step};
         UPDATE workflows SET state = 'running', started = {now} WHERE id = (SELECT workflow_id FROM steps WHERE id = {running_step});
         UPDATE builds SET state = 'running', started = {now} WHERE number = 1;
         COMMIT;",
        last = builds + 1
    );
    let mut sqlite = Command::new("sqlite3").arg(database).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("sqlite3 runs");
    sqlite.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    assert!(sqlite.wait().unwrap().success(), "sqlite3 failed");
}

/// A running step's log of `lines` lines, as the server writes one (`<step id>.jsonl`).
fn plant_log(data: &Path, step_id: i64, lines: usize) -> PathBuf {
    let path = data.join("logs").join(format!("{step_id}.jsonl"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for seq in 0..lines {
        writeln!(file, r#"{{"seq":{seq},"at_ms":1764930000000,"stream":"stdout","text":"line {} of a long test run: ok"}}"#, seq + 1)
            .unwrap();
    }
    file.flush().unwrap();
    path
}

fn milliseconds(text: &str) -> f64 {
    let text = text.trim();
    let (number, scale) = if let Some(value) = text.strip_suffix("us") {
        (value, 0.001)
    } else if let Some(value) = text.strip_suffix("ms") {
        (value, 1.0)
    } else if let Some(value) = text.strip_suffix('s') {
        (value, 1000.0)
    } else {
        (text, 1.0)
    };
    number.trim().parse::<f64>().unwrap_or(f64::NAN) * scale
}

struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
}

fn wrk(url: &str, cookie: &str, seconds: usize) -> Load {
    let output =
        run(Command::new("wrk").args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", "-H", &format!("Cookie: {cookie}"), url]));
    let line = |prefix: &str| output.lines().find_map(|line| line.trim().strip_prefix(prefix).map(str::to_owned)).unwrap_or_default();
    assert!(!output.contains("Non-2xx"), "{url} answered errors under load:\n{output}");
    Load { rps: line("Requests/sec:").trim().parse().unwrap_or(0.0), p50: milliseconds(&line("50%")), p99: milliseconds(&line("99%")) }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let builds = setting("BENCH_BUILDS", 10_000);
    let log_lines = setting("BENCH_LOG_LINES", 1_000_000);
    let rounds = setting("BENCH_ROUNDS", 30);
    let seconds = setting("BENCH_SECONDS", 10);
    let root = std::env::temp_dir().join(format!("gantry-bench-ui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    // A repository whose pipeline has 50 steps, and its build 1, made the normal way.
    let (bare, work) = (root.join("app.git"), root.join("app"));
    run(Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&bare));
    run(Command::new("git").args(["init", "-q", "-b", "main"]).arg(&work));
    std::fs::write(work.join(".woodpecker.yml"), fifty_steps()).unwrap();
    run(Command::new("git").current_dir(&work).args(["add", "-A"]));
    run(Command::new("git").current_dir(&work).args([
        "-c",
        "user.name=Bench",
        "-c",
        "user.email=b@example.com",
        "commit",
        "-q",
        "-m",
        "Fifty steps",
    ]));
    run(Command::new("git").current_dir(&work).arg("push").arg("-q").arg(&bare).arg("main"));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = reqwest::Client::new();
    let server = Server::start(&root.join("data"), port).await;
    api(
        &http,
        &server,
        reqwest::Method::POST,
        "/api/v1/repos",
        json!({ "full_name": "acme/app", "clone_url": format!("file://{}", bare.display()) }),
    )
    .await;
    api(&http, &server, reqwest::Method::POST, "/api/v1/users", json!({ "login": "bench", "password": PASSWORD, "admin": true })).await;
    let build = api(&http, &server, reqwest::Method::POST, "/api/v1/repos/acme/app/builds", json!({ "branch": "main" })).await;
    let steps = build["workflows"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 51, "the clone step and fifty");
    let running = steps.iter().find(|step| step["name"] == "build").unwrap()["id"].as_i64().unwrap();
    let waiting = steps.iter().find(|step| step["name"] == "gate").unwrap()["id"].as_i64().unwrap();

    // Ten thousand more builds and a running step with a long log, written while it is stopped.
    let data = server.stop();
    let started = Instant::now();
    plant_builds(&data.join("gantry.db"), builds, running, log_lines);
    let log = plant_log(&data, running, log_lines);
    println!("setup: {builds} builds and a {log_lines}-line log written in {:.1} s", started.elapsed().as_secs_f64());
    let server = Server::start(&data, port).await;
    let login =
        http.post(format!("{}/api/v1/login", server.url())).json(&json!({ "login": "bench", "password": PASSWORD })).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    // Bytes of CSS and JS the build page loads.
    let page = http.get(format!("{}/repos/acme/app/builds/1?step={running}", server.url())).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    let mut asset_bytes = 0;
    for marker in [r#"<link rel="stylesheet" href=""#, r#"<script src=""#] {
        for (at, _) in html.match_indices(marker) {
            let rest = &html[at + marker.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            asset_bytes += http.get(format!("{}{url}", server.url())).send().await.unwrap().bytes().await.unwrap().len();
        }
    }
    println!(
        "\nCSS + JS a page loads: {asset_bytes} bytes ({:.1} KB; goal < 100 KB), HTML of the 50-step build page: {} bytes",
        asset_bytes as f64 / 1024.0,
        html.len()
    );

    // Server time under load, against /healthz under the same load.
    println!("\nserver time under load (wrk -t2 -c16 -d{seconds}s), against /healthz:");
    println!("| page | requests/s | p50 | p99 | p50 / healthz p50 |");
    println!("|---|---|---|---|---|");
    let base = wrk(&format!("{}/healthz", server.url()), &cookie, seconds);
    println!("| /healthz (baseline) | {:.0} | {:.2} ms | {:.2} ms | 1.0x |", base.rps, base.p50, base.p99);
    for (label, path) in [
        ("build page, 50 steps + graph + 1,000 log lines", format!("/repos/acme/app/builds/1?step={running}")),
        ("build page, a step with no log yet", format!("/repos/acme/app/builds/1?step={waiting}")),
        ("repository, first page of 10,001", "/repos/acme/app".to_owned()),
        ("repository, a page 5,000 deep", "/repos/acme/app?before=5000".to_owned()),
        ("repository, state=failure", "/repos/acme/app?state=failure".to_owned()),
        ("dashboard", "/".to_owned()),
    ] {
        let load = wrk(&format!("{}{path}", server.url()), &cookie, seconds);
        println!("| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.1}x |", load.rps, load.p50, load.p99, load.p50 / base.p50);
    }

    // First log line of the running step: the page, then the last range of its log, as the
    // viewer asks; against `tail` of the same file.
    let lines_url = format!("{}/api/v1/repos/acme/app/builds/1/steps/{running}/log?format=json", server.url());
    let last_range = format!("{lines_url}&from={}&limit=40", log_lines.saturating_sub(40));
    let (mut viewer, mut tail, mut first_range) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let page =
            http.get(format!("{}/repos/acme/app/builds/1?step={running}", server.url())).header("cookie", &cookie).send().await.unwrap();
        assert!(page.text().await.unwrap().contains("data-stream-url"));
        let lines = http.get(&last_range).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        assert_eq!(lines.lines().count(), 40);
        viewer.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        http.get(format!("{lines_url}&from=0&limit=40")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        first_range.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let output = run(Command::new("tail").arg("-n").arg("40").arg(&log));
        assert_eq!(output.lines().count(), 40);
        tail.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (viewer, tail, first_range) = (median(&mut viewer), median(&mut tail), median(&mut first_range));
    println!("\nfirst log line of a running step with {log_lines} lines ({rounds} rounds, medians):");
    println!("  page + its last 40 lines over HTTP: {viewer:.1} ms (the first 40 lines alone: {first_range:.1} ms)");
    println!("  tail -n 40 of the same file (baseline): {tail:.1} ms");
    println!("  ratio: {:.1}x", viewer / tail);

    // A new line's trip: from the stream's connection to its first event, resuming at the end.
    let mut trips = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut stream = http
            .get(format!("{}/api/v1/repos/acme/app/builds/1/steps/{running}/log/stream?from={}", server.url(), log_lines - 1))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains("event: line") {
            let chunk = stream.chunk().await.unwrap().expect("the stream sends the last line");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        trips.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("  the log's event stream, connect to first line: {:.1} ms (median)", median(&mut trips));

    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
