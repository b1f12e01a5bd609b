//! The deployer against what a person does by hand, side by side on the same engine.
//!
//! 1. A commit pushed (and its webhook sent) until the new version runs and the old one is
//!    gone, against `docker rm -f old && docker run -d new` from a shell, for an application
//!    without a health check and one with a 1 s command health check (both sides wait for
//!    `healthy`); and on a single-node Swarm against `docker service update` (which waits for
//!    the update to converge). Alternating; medians.
//! 2. A reconcile of 200 applications with nothing to do: the deployer's CPU time and wall
//!    time per pass (from `/proc` and its `/metrics`), against one `docker ps` of the same
//!    containers — the least any reconciler must ask the engine.
//! 3. The deployer's resident memory, idle, with those 200 applications.
//!
//! Needs a running engine and the test image (`scripts/setup.sh`) and a release build of the
//! binary (`cargo build --release -p cli`).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "gantry-test/busybox:latest";
const OWNER: &str = "owner: {team: bench, contact: bench@example.com}\n";

fn gantry_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/gantry");
    assert!(path.exists(), "build the binary first: cargo build --release -p cli");
    path
}

fn run(command: &mut Command) -> String {
    let output = command.stderr(Stdio::piped()).output().unwrap();
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

fn git(dir: &Path, args: &[&str]) {
    run(Command::new("git").args(["-c", "user.name=bench", "-c", "user.email=bench@example.com"]).args(args).current_dir(dir));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// An environment repository (bare, plus a working clone) in `dir`.
struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(dir: &Path, environment: &str) -> Repo {
        let (bare, work) = (dir.join("env.git"), dir.join("work"));
        git(dir, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git(dir, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        std::fs::create_dir(work.join("apps")).unwrap();
        std::fs::write(
            work.join("environment.yml"),
            format!(
                "version: 1\nname: {environment}\ntargets:\n  local: {{kind: docker}}\ndefaults:\n  require_digest: false\n  update: {{monitor: 0s}}\n"
            ),
        )
        .unwrap();
        Repo { bare, work }
    }

    fn push(&self, message: &str) {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
    }
}

struct Deployer {
    child: Child,
    address: String,
}

impl Deployer {
    fn start(repo: &Repo, data: &Path, poll: &str) -> Deployer {
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(gantry_binary())
            .args(["deployer", "--repo", repo.bare.to_str().unwrap(), "--poll", poll, "--listen", &address])
            .args(["--webhook-secret", "bench-secret", "--data", data.to_str().unwrap()])
            .env("GANTRY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the deployer did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Deployer { child, address }
    }

    fn http(&self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n", self.address, body.len());
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// A signed GitHub push hook for `main`.
    fn push_hook(&self) {
        use hmac::{KeyInit as _, Mac as _};
        let body = br#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000001","after":"1111111111111111111111111111111111111111","repository":{"full_name":"ops/env"},"sender":{"login":"bench"},"commits":[]}"#;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"bench-secret").unwrap();
        mac.update(body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response =
            self.http("POST", "/hooks/github", &[("X-GitHub-Event", "push".to_owned()), ("X-Hub-Signature-256", signature)], body);
        assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    }

    /// A metric's value from `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let response = self.http("GET", "/metrics", &[], b"");
        response
            .lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// User + system CPU time of the process, from `/proc/<pid>/stat`.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel counts in clock ticks, 100 per second on Linux.
        Duration::from_millis(ticks * 10)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find_map(|line| line.strip_prefix("VmRSS:")).and_then(|value| value.split_whitespace().next()?.parse().ok()).unwrap()
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes every container labelled with `environment` (and the baseline's `name`).
fn clean(environment: &str) {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label=io.gantry.deploy.environment={environment}")]);
    for id in ids.lines() {
        docker(&["rm", "-f", id]);
    }
    let _ = Command::new("docker").args(["rm", "-f", &format!("{environment}-by-hand")]).output();
}

/// Waits until exactly one container of `filter` runs, has `VERSION=version` (and is healthy
/// when `healthy`), and nothing else of it exists (on a Swarm, which keeps stopped tasks'
/// containers: nothing else of it runs).
fn wait_for(filter: &str, version: u32, healthy: bool) {
    wait_for_on(filter, version, healthy, false);
}

fn wait_for_on(filter: &str, version: u32, healthy: bool, swarm: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = docker(&["ps", if swarm { "-q" } else { "-aq" }, "--filter", filter]);
        if all.lines().count() == 1 {
            let format = "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}} {{range .Config.Env}}{{.}} {{end}}";
            let state = docker(&["inspect", "--format", format, all.trim()]);
            let words: Vec<&str> = state.split_whitespace().collect();
            let wanted = format!("VERSION={version}");
            let ready = words.first() == Some(&"true") && (!healthy || words.contains(&"healthy")) && words.contains(&wanted.as_str());
            if ready {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the version did not come up ({filter})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn app_file(version: u32, healthcheck: bool) -> String {
    let check = if healthcheck { "healthcheck: {command: [test, -d, /], interval: 1s, timeout: 1s, retries: 1}\n" } else { "" };
    format!(
        "version: 1\n{OWNER}image: {IMAGE}\ncommand: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]\nenvironment: {{VERSION: '{version}'}}\n{check}"
    )
}

fn by_hand(name: &str, version: u32, healthcheck: bool) {
    let check = if healthcheck { "--health-cmd 'test -d /' --health-interval 1s --health-timeout 1s --health-retries 1" } else { "" };
    let script = format!(
        "docker rm -f {name} >/dev/null 2>&1; docker run -d --name {name} --label bench-by-hand={name} -e VERSION={version} {check} {IMAGE} sh -c \"trap 'exit 0' TERM; sleep 3600 & wait\" >/dev/null"
    );
    run(Command::new("sh").args(["-c", &script]));
}

fn rollout(rounds: usize, healthcheck: bool) {
    let label = if healthcheck { "1 s health check" } else { "no health check" };
    let dir = tempfile_dir("rollout");
    let environment = format!("bench-rollout-{}", std::process::id());
    let repo = Repo::new(&dir, &environment);
    std::fs::write(repo.work.join("apps/web.yml"), app_file(0, healthcheck)).unwrap();
    repo.push("version 0");
    let deployer = Deployer::start(&repo, &dir.join("data"), "3600");
    let ours = format!("label=io.gantry.deploy.environment={environment}");
    let theirs_name = format!("{environment}-by-hand");
    let theirs = format!("label=bench-by-hand={theirs_name}");
    wait_for(&ours, 0, healthcheck);
    by_hand(&theirs_name, 0, healthcheck);
    wait_for(&theirs, 0, healthcheck);
    let (gantry, baseline) = alternate(
        rounds,
        |round| {
            std::fs::write(repo.work.join("apps/web.yml"), app_file(round, healthcheck)).unwrap();
            repo.push(&format!("version {round}"));
            // From the push's webhook: what a person's `git push` costs is the same either way.
            let started = Instant::now();
            deployer.push_hook();
            wait_for(&ours, round, healthcheck);
            started.elapsed()
        },
        |round| {
            let started = Instant::now();
            by_hand(&theirs_name, round, healthcheck);
            wait_for(&theirs, round, healthcheck);
            started.elapsed()
        },
    );
    report(&format!("commit → new version up ({label:<16})"), "docker rm -f && docker run", gantry, baseline);
    drop(deployer);
    clean(&environment);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Gantry's and the baseline's medians over `rounds` versions (1, 2, …), each round taking
/// turns at going first.
fn alternate(rounds: usize, mut ours: impl FnMut(u32) -> Duration, mut theirs: impl FnMut(u32) -> Duration) -> (Duration, Duration) {
    let (mut gantry, mut baseline) = (Vec::new(), Vec::new());
    for round in 1..=rounds as u32 {
        if round % 2 == 0 {
            baseline.push(theirs(round));
            gantry.push(ours(round));
        } else {
            gantry.push(ours(round));
            baseline.push(theirs(round));
        }
    }
    (median(gantry), median(baseline))
}

fn report(what: &str, baseline_name: &str, gantry: Duration, baseline: Duration) {
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    println!(
        "{what} | {baseline_name} {:>6.0} ms | gantry deployer {:>6.0} ms ({:.2}x; {:+.0} ms)",
        ms(baseline),
        ms(gantry),
        ms(gantry) / ms(baseline),
        ms(gantry) - ms(baseline)
    );
}

/// The engine in a Swarm for `body`, left again when it was in none.
fn in_swarm(body: impl FnOnce()) {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    let made = state == "inactive";
    let bridge_existed = Command::new("docker").args(["network", "inspect", "docker_gwbridge"]).output().unwrap().status.success();
    if made {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    }
    body();
    if made {
        docker(&["swarm", "leave", "--force"]);
        if !bridge_existed {
            let _ = Command::new("docker").args(["network", "rm", "docker_gwbridge"]).output();
        }
    }
}

fn rollout_swarm(rounds: usize) {
    let dir = tempfile_dir("swarm");
    let environment = format!("bench-swarm-{}", std::process::id());
    let repo = Repo::new(&dir, &environment);
    let environment_file = std::fs::read_to_string(repo.work.join("environment.yml")).unwrap().replace("kind: docker", "kind: swarm");
    std::fs::write(repo.work.join("environment.yml"), environment_file).unwrap();
    std::fs::write(repo.work.join("apps/web.yml"), app_file(0, true)).unwrap();
    repo.push("version 0");
    let deployer = Deployer::start(&repo, &dir.join("data"), "3600");
    let ours = format!("label=io.gantry.deploy.environment={environment}");
    let service = format!("{environment}-by-hand");
    let theirs = format!("label=bench-by-hand={service}");
    wait_for_on(&ours, 0, true, true);
    run(Command::new("docker")
        // `--no-resolve-image`: the local image is in no registry, and the CLI would otherwise
        // ask one for its digest (the deployer does not either).
        .args([
            "service",
            "create",
            "-q",
            "--no-resolve-image",
            "--name",
            &service,
            "--container-label",
            &format!("bench-by-hand={service}"),
        ])
        .args([
            "--env",
            "VERSION=0",
            "--health-cmd",
            "test -d /",
            "--health-interval",
            "1s",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
            "--update-order",
            "start-first",
            "--update-monitor",
            "0s",
            IMAGE,
            "sleep",
            "3600",
        ]));
    wait_for_on(&theirs, 0, true, true);
    let (gantry, baseline) = alternate(
        rounds,
        |round| {
            std::fs::write(repo.work.join("apps/web.yml"), app_file(round, true)).unwrap();
            repo.push(&format!("version {round}"));
            let started = Instant::now();
            deployer.push_hook();
            wait_for_on(&ours, round, true, true);
            started.elapsed()
        },
        |round| {
            let started = Instant::now();
            // Detached: the CLI's own wait adds a stability check of several seconds; both
            // sides are waited for the same way instead.
            run(Command::new("docker").args([
                "service",
                "update",
                "-q",
                "--detach",
                "--no-resolve-image",
                "--env-add",
                &format!("VERSION={round}"),
                &service,
            ]));
            wait_for_on(&theirs, round, true, true);
            started.elapsed()
        },
    );
    report("commit → new version up (Swarm, 1 s check) ", "docker service update     ", gantry, baseline);
    drop(deployer);
    let _ = Command::new("docker").args(["service", "rm", &service]).output();
    let _ = Command::new("docker").args(["service", "rm", &format!("{environment}-web")]).output();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker(&["ps", "-aq", "--filter", &ours]).is_empty() || !docker(&["ps", "-aq", "--filter", &theirs]).is_empty() {
        assert!(Instant::now() < deadline, "the services' containers did not go");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn idle(apps: usize, passes: u32) {
    let dir = tempfile_dir("idle");
    let environment = format!("bench-idle-{}", std::process::id());
    let repo = Repo::new(&dir, &environment);
    for index in 0..apps {
        std::fs::write(repo.work.join(format!("apps/app-{index:03}.yml")), app_file(1, false)).unwrap();
    }
    repo.push("200 applications");
    let deployer = Deployer::start(&repo, &dir.join("data"), "1");
    let filter = format!("label=io.gantry.deploy.environment={environment}");
    let deadline = Instant::now() + Duration::from_secs(900);
    while docker(&["ps", "-q", "--filter", &filter]).lines().count() < apps {
        assert!(Instant::now() < deadline, "{apps} applications did not start");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Let the pass that started them end, and one more.
    let settle = deployer.metric("gantry_deployer_reconcile_duration_seconds_count") + 2.0;
    while deployer.metric("gantry_deployer_reconcile_duration_seconds_count") < settle {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (count, sum, cpu) = (
        deployer.metric("gantry_deployer_reconcile_duration_seconds_count"),
        deployer.metric("gantry_deployer_reconcile_duration_seconds_sum"),
        deployer.cpu(),
    );
    while deployer.metric("gantry_deployer_reconcile_duration_seconds_count") < count + f64::from(passes) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let passes_done = deployer.metric("gantry_deployer_reconcile_duration_seconds_count") - count;
    let wall = (deployer.metric("gantry_deployer_reconcile_duration_seconds_sum") - sum) / passes_done;
    let cpu = (deployer.cpu() - cpu).as_secs_f64() / passes_done;
    let mut listing = Vec::new();
    for _ in 0..passes {
        let started = Instant::now();
        docker(&["ps", "-aq", "--filter", &filter]);
        listing.push(started.elapsed());
    }
    let listing = median(listing);
    println!(
        "reconcile of {apps} unchanged applications, mean of {passes_done} passes | docker ps {:>5.1} ms | gantry pass {:>5.1} ms wall ({:.2}x), {:>4.1} ms CPU in the deployer",
        listing.as_secs_f64() * 1e3,
        wall * 1e3,
        wall / listing.as_secs_f64(),
        cpu * 1e3
    );
    println!("deployer resident memory, idle, {apps} applications: {:.1} MiB", deployer.rss_kib() as f64 / 1024.0);
    drop(deployer);
    clean(&environment);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gantry-bench-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(7);
    let apps: usize = std::env::var("BENCH_APPS").ok().and_then(|text| text.parse().ok()).unwrap_or(200);
    println!("deployer against hand-run docker on one engine; medians of {rounds} alternating rounds");
    // BENCH_PARTS=engine,swarm,idle (the default: all three).
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "engine,swarm,idle".to_owned());
    let part = |name: &str| parts.split(',').any(|part| part.trim() == name);
    if part("engine") {
        rollout(rounds, false);
        rollout(rounds, true);
    }
    if part("swarm") {
        in_swarm(|| rollout_swarm(rounds));
    }
    if part("idle") {
        idle(apps, 10);
    }
}
