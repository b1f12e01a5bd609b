//! Polling a remote with many branches, against `git ls-remote` of the same remote (what any
//! poller must do at least), side by side on this machine: a server polls a repository with
//! BENCH_BRANCHES (10,000) branches through `POST /api/v1/repos/{repo}/poll`, when nothing
//! changed and when one branch moved (which starts one build). The server's resident memory
//! after the rounds is printed too.
//!
//! Needs `cargo build --release -p cli`. Settings: BENCH_BRANCHES (10000), BENCH_ROUNDS (20).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN, Server};

mod support;

const TRIVIAL: &str = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo hello\n";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A bare remote with one commit on main and `branches` more branches at it; its URL and a
/// work tree to commit from.
fn remote_with_branches(root: &Path, branches: usize) -> (String, PathBuf, PathBuf) {
    let (bare, work) = (root.join("remote.git"), root.join("work"));
    git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(root, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
    std::fs::write(work.join(".woodpecker.yml"), TRIVIAL).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "first"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    let mut update = Command::new("git").args(["update-ref", "--stdin"]).current_dir(&bare).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = update.stdin.take().unwrap();
    for branch in 0..branches {
        writeln!(stdin, "create refs/heads/feature/b-{branch:05} {head}").unwrap();
    }
    drop(stdin);
    assert!(update.wait().unwrap().success());
    git(&bare, &["pack-refs", "--all"]);
    (format!("file://{}", bare.display()), bare, work)
}

async fn post(http: &reqwest::Client, server: &Server, path: &str, body: Value) -> Value {
    let answer = http.post(format!("{}{path}", server.url())).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap_or(Value::Null)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(samples: &[f64], fraction: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

fn row(what: &str, baseline: &[f64], gantry: &[f64]) {
    let (base50, ours50) = (percentile(baseline, 0.5), percentile(gantry, 0.5));
    println!(
        "| {what} | {base50:.1} ms (p99 {:.1}) | {ours50:.1} ms (p99 {:.1}) | {:.2}x |",
        percentile(baseline, 0.99),
        percentile(gantry, 0.99),
        ours50 / base50
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let branches = setting("BENCH_BRANCHES", 10_000);
    let rounds = setting("BENCH_ROUNDS", 20);
    let root = std::env::temp_dir().join(format!("gantry-bench-poll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (url, bare, work) = remote_with_branches(&root, branches);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server::start(&root.join("data"), port).await;
    let http = reqwest::Client::new();
    post(&http, &server, "/api/v1/repos", json!({ "full_name": "bench/poll", "clone_url": url })).await;

    let poll = async || {
        let started = Instant::now();
        let answer = post(&http, &server, "/api/v1/repos/bench/poll/poll", json!({})).await;
        (started.elapsed(), answer)
    };
    let ls_remote = || {
        let started = Instant::now();
        let output = Command::new("git").args(["ls-remote", &url]).output().unwrap();
        assert!(output.status.success());
        started.elapsed()
    };
    let (first, _) = poll().await;
    println!("{branches} branches; the first poll (remembers every ref): {:.1} ms", ms(first));

    let (mut baseline, mut unchanged) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        baseline.push(ms(ls_remote()));
        let (took, answer) = poll().await;
        assert_eq!(answer["builds"], json!([]), "nothing moved: {answer}");
        unchanged.push(ms(took));
    }
    let (mut moved_baseline, mut moved) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // One branch moves to a new commit, as a push would; the poll starts its build.
        git(
            &work,
            &[
                "-c",
                "user.name=Bench",
                "-c",
                "user.email=bench@example.com",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("round {round}"),
            ],
        );
        let branch = format!("feature/b-{:05}", round % branches.max(1));
        git(&work, &["push", "-q", "-f", bare.to_str().unwrap(), &format!("HEAD:refs/heads/{branch}")]);
        moved_baseline.push(ms(ls_remote()));
        let (took, answer) = poll().await;
        assert_eq!(answer["builds"].as_array().map(Vec::len), Some(1), "one branch moved: {answer}");
        moved.push(ms(took));
    }
    println!("| poll of {branches} branches | `git ls-remote` | `POST …/poll` | ratio (p50) |");
    println!("|---|---|---|---|");
    row("nothing changed", &baseline, &unchanged);
    row("one branch moved (one build started)", &moved_baseline, &moved);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let rss = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or("VmRSS: ?").trim_start_matches("VmRSS:").trim().to_owned();
    println!("server RSS after {} polls: {rss}", 2 * rounds + 1);
    server.stop();
    let _ = std::fs::remove_dir_all(&root);
}
