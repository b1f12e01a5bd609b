//! `gantry deployer` running as in production, against real parts: an environment repository
//! in a bare git repository (over `file://` or served by `git daemon`), the Docker engine,
//! the local registry for pinned images, the deployer's HTTP listener for hooks, inventory and
//! metrics, and `gantry env` to read them. Each test removes what it made (containers,
//! networks, volumes by the environment's label; the images it tagged).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const OWNER: &str = "owner: {team: web, contact: web@example.com}\n";

/// `docker` with these arguments; its standard output, trimmed.
pub(crate) fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A name no other test run uses.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Everything the deployer made for `environment`, removed when dropped; `leaked` says what
/// is left.
pub(crate) struct Environment {
    pub(crate) name: String,
    images: Vec<String>,
}

impl Environment {
    pub(crate) fn new(prefix: &str) -> Environment {
        Environment { name: unique(prefix), images: Vec::new() }
    }

    fn filter(&self) -> String {
        format!("label=io.gantry.deploy.environment={}", self.name)
    }

    /// Running containers' ids.
    pub(crate) fn running(&self) -> Vec<String> {
        docker(&["ps", "-q", "--no-trunc", "--filter", &self.filter()]).lines().map(str::to_owned).collect()
    }

    /// Every container, running or not.
    pub(crate) fn containers(&self) -> Vec<String> {
        docker(&["ps", "-aq", "--no-trunc", "--filter", &self.filter()]).lines().map(str::to_owned).collect()
    }

    /// Running containers of one application.
    pub(crate) fn running_app(&self, app: &str) -> Vec<String> {
        docker(&["ps", "-q", "--no-trunc", "--filter", &self.filter(), "--filter", &format!("label=io.gantry.deploy.app={app}")])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `image:tag` made from the test image with `label`, pushed to the open local registry;
    /// the pinned reference `image:tag@sha256:…`.
    pub(crate) fn pushed_image(&mut self, repository: &str, tag: &str, label: &str) -> String {
        self.pushed_image_with(repository, tag, label, "true")
    }

    /// The same, with the file system as `command` (run in the test image) leaves it.
    pub(crate) fn pushed_image_with(&mut self, repository: &str, tag: &str, label: &str, command: &str) -> String {
        let reference = format!("127.0.0.1:5000/{}/{repository}:{tag}", self.name);
        let container = docker(&["create", "gantry-test/busybox:latest", "sh", "-c", command]);
        docker(&["start", "-a", &container]);
        let committed = docker(&["commit", "--change", &format!("LABEL {label}"), &container, &reference]);
        docker(&["rm", "-f", &container]);
        assert!(!committed.is_empty(), "docker commit made {reference}");
        let pushed = Command::new("docker").args(["push", "-q", &reference]).output().unwrap();
        assert!(pushed.status.success(), "push {reference}: {}", String::from_utf8_lossy(&pushed.stderr));
        self.images.push(reference.clone());
        let pinned = docker(&["inspect", "--format", "{{index .RepoDigests 0}}", &reference]);
        let digest = pinned.split_once('@').unwrap().1.to_owned();
        format!("{reference}@{digest}")
    }

    /// What is left of the environment on the engine.
    pub(crate) fn leaked(&self) -> Vec<String> {
        let mut left = self.containers();
        left.extend(docker(&["network", "ls", "-q", "--filter", &self.filter()]).lines().map(str::to_owned));
        left.extend(docker(&["volume", "ls", "-q", "--filter", &self.filter()]).lines().map(str::to_owned));
        left
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        for id in self.containers() {
            docker(&["rm", "-f", "-v", &id]);
        }
        for network in docker(&["network", "ls", "-q", "--filter", &self.filter()]).lines() {
            docker(&["network", "rm", network]);
        }
        for volume in docker(&["volume", "ls", "-q", "--filter", &self.filter()]).lines() {
            docker(&["volume", "rm", volume]);
        }
        for image in &self.images {
            docker(&["rmi", "-f", image]);
        }
        // Images pulled by digest carry no tag: removed by their repository.
        let repository = format!("127.0.0.1:5000/{}/", self.name);
        for line in docker(&["images", "--digests", "--format", "{{.Repository}} {{.ID}}"]).lines() {
            if let Some((name, id)) = line.split_once(' ')
                && name.starts_with(&repository)
            {
                docker(&["rmi", "-f", id]);
            }
        }
    }
}

/// An environment repository: a bare repository and a working clone to commit from.
pub(crate) struct EnvRepo {
    pub(crate) bare: PathBuf,
    pub(crate) work: PathBuf,
}

impl EnvRepo {
    pub(crate) fn new(dir: &Path, environment: &str, defaults: &str) -> EnvRepo {
        let (bare, work) = (dir.join("environment.git"), dir.join("work"));
        crate::git_in(dir, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        crate::git_in(dir, &["init", "-q", "-b", "main", work.to_str().unwrap()]);
        crate::git_in(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        std::fs::create_dir(work.join("apps")).unwrap();
        let environment_file =
            format!("version: 1\nname: {environment}\ntargets:\n  local: {{kind: docker}}\ndefaults:\n  require_digest: false\n{defaults}");
        std::fs::write(work.join("environment.yml"), environment_file).unwrap();
        EnvRepo { bare, work }
    }

    pub(crate) fn write(&self, path: &str, text: &str) {
        let full = self.work.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    /// Takes what the deployer pushed meanwhile (before writing files).
    pub(crate) fn sync(&self) {
        crate::git_in(&self.work, &["pull", "-q", "--rebase", "origin", "main"]);
    }

    /// Commits everything and pushes.
    pub(crate) fn push(&self, message: &str) {
        crate::git_in(&self.work, &["add", "-A"]);
        crate::git_in(&self.work, &["commit", "-q", "-m", message]);
        crate::git_in(&self.work, &["push", "-q", "origin", "main"]);
    }

    /// `git log -1 --format=FORMAT main` in the bare repository.
    pub(crate) fn head(&self, format: &str) -> String {
        let output = Command::new("git")
            .args(["-C", self.bare.to_str().unwrap(), "log", "-1", &format!("--format={format}"), "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub(crate) fn show(&self, path: &str) -> String {
        let output = Command::new("git").args(["-C", self.bare.to_str().unwrap(), "show", &format!("main:{path}")]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// `git daemon` serving the folder `base` over `git://127.0.0.1:<port>/`, pushes allowed.
pub(crate) struct GitDaemon {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl GitDaemon {
    pub(crate) fn serve(base: &Path) -> GitDaemon {
        let port = free_port();
        let child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `gantry deployer` process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Deployer {
    child: Option<std::process::Child>,
    pub(crate) log: PathBuf,
    pub(crate) address: Option<String>,
}

impl Deployer {
    /// Starts `gantry deployer` with `args`, its log in `log` (appended to).
    pub(crate) fn start(args: &[&str], log: &Path, address: Option<String>) -> Deployer {
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("deployer")
            .args(args)
            .env("GANTRY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
            .spawn()
            .unwrap();
        let deployer = Deployer { child: Some(child), log: log.to_owned(), address };
        if let Some(address) = &deployer.address {
            eventually("the deployer listening", &deployer, || TcpStream::connect(address).is_ok());
        }
        deployer
    }

    /// A deployer of `repo` polling every second, with its data in `data`, reporting to a
    /// server's `events_url` signed with `secret`.
    pub(crate) fn reporting(repo: &EnvRepo, data: &Path, events_url: &str, secret: &str, log: &Path) -> Deployer {
        let args = ["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--data", data.to_str().unwrap()];
        Deployer::start(&[&args[..], &["--notify", events_url, "--notify-secret", secret]].concat(), log, None)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address.as_ref().unwrap())
    }

    /// SIGTERM, and its exit code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = crate::support::kill(crate::support::pid_of(&child), crate::support::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGKILL: no chance to finish anything.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `gantry env status --json` against this deployer.
    pub(crate) fn inventory(&self) -> Option<serde_json::Value> {
        let output =
            Command::new(env!("CARGO_BIN_EXE_gantry")).args(["env", "status", "--json", "--deployer", &self.url()]).output().unwrap();
        output.status.success().then(|| serde_json::from_slice(&output.stdout).unwrap())
    }

    /// One application's entry of the inventory.
    pub(crate) fn app(&self, name: &str) -> Option<serde_json::Value> {
        self.inventory()?["apps"].as_array()?.iter().find(|app| app["name"] == name).cloned()
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The signing secret `gantry environment add` printed (32 random bytes as hex, on a line of
/// its own).
pub(crate) fn printed_secret(added: &str) -> String {
    added
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 64 && line.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no secret in:\n{added}"))
        .to_owned()
}

/// Waits (at most 90 seconds) until `check` holds.
pub(crate) fn eventually(what: &str, deployer: &Deployer, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen; the deployer said:\n{}", deployer.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 request to `address`: status and body.
pub(crate) fn http(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn gantry_ok(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry")).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "gantry {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An application whose health check passes when its `HEALTHY` variable says `yes`.
fn web_app(image: &str, healthy: &str, extra: &str) -> String {
    format!(
        "version: 1\n{OWNER}image: {image}\ncommand: [sleep, '3600']\nenvironment: {{HEALTHY: '{healthy}'}}\n\
         healthcheck: {{command: [sh, -c, 'test \"$HEALTHY\" = yes'], interval: 1s, timeout: 1s, retries: 1}}\n{extra}"
    )
}

#[test]
fn a_pushed_commit_is_deployed_on_its_webhook_and_a_failing_version_is_rolled_back_by_a_commit_that_holds_it() {
    let mut environment = Environment::new("it-rollback");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "  update: {monitor: 1s}\n");
    let v1 = environment.pushed_image("web", "1", "version=1");
    let v2 = environment.pushed_image("web", "2", "version=2");
    let v3 = environment.pushed_image("web", "3", "version=3");
    let digest = |pinned: &str| pinned.split_once('@').unwrap().1.to_owned();
    repo.write("apps/web.yml", &web_app(&v1, "yes", ""));
    repo.push("web 1");

    // Served over the network by git daemon; the deployer polls rarely, so that what follows
    // is driven by the webhook.
    let daemon = GitDaemon::serve(dir.path());
    let url = format!("git://127.0.0.1:{}/environment.git", daemon.port);
    let address = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("data");
    let deployer = Deployer::start(
        &["--repo", &url, "--poll", "3600", "--listen", &address, "--webhook-secret", "hook-secret", "--data", data.to_str().unwrap()],
        &dir.path().join("deployer.log"),
        Some(address.clone()),
    );
    eventually("web 1 deployed and healthy", &deployer, || {
        deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["replicas_healthy"] == 1 && app["version"] == "1")
    });
    let first = environment.running_app("web");
    assert_eq!(first.len(), 1);

    // Unsigned or wrongly signed hooks do nothing.
    let push_body = br#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"1111111111111111111111111111111111111111","repository":{"full_name":"ops/production","clone_url":"git://example/production.git","html_url":"https://example/production"},"pusher":{"name":"alice","email":"alice@example.com"},"sender":{"login":"alice"},"head_commit":{"id":"1111111111111111111111111111111111111111","message":"web 2","author":{"name":"alice","email":"alice@example.com"}},"commits":[]}"#;
    let (status, _) =
        http(&address, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("Content-Type", "application/json")], push_body);
    assert_eq!(status, 401);
    let wrong = signature("not-the-secret", push_body);
    let (status, _) = http(&address, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &wrong)], push_body);
    assert_eq!(status, 401);

    // Version 2 fails its health check: rolled back, and the rollback is a commit with a hold.
    repo.write("apps/web.yml", &web_app(&v2, "no", ""));
    repo.push("web 2");
    let signed = signature("hook-secret", push_body);
    let (status, body) =
        http(&address, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signed)], push_body);
    assert_eq!(status, 202, "{body}");
    eventually("the rollback committed", &deployer, || repo.head("%an").starts_with("Gantry deployer"));
    let message = repo.head("%B");
    assert!(message.starts_with("Roll back web to "), "{message}");
    assert!(message.contains("did not become healthy"), "{message}");
    assert!(message.contains(&format!("Gantry-Failed-Image: {v2}")), "{message}");
    assert!(message.contains("Gantry-Rolled-Back-Revision: "), "{message}");
    let file = repo.show("apps/web.yml");
    assert!(file.contains(&format!("image: {v1}")), "{file}");
    assert!(file.contains(&format!("holds:\n  - {}", digest(&v2))), "{file}");
    eventually("web 1 in sync again", &deployer, || deployer.app("web").is_some_and(|app| app["state"] == "in-sync"));
    assert_eq!(environment.running_app("web"), first, "start-first: the running version never stopped");
    let app = deployer.app("web").unwrap();
    assert_eq!(app["holds"][0], digest(&v2));
    assert!(app["last_failure"].as_str().unwrap_or_default().contains("did not become healthy"), "{app}");

    // The history says what happened, and who did it.
    let history = gantry_ok(&["env", "history", "web", "--deployer", &deployer.url()]);
    assert!(history.contains(&format!("update   {v1} → {v2}  failed")), "{history}");
    assert!(history.lines().last().unwrap_or_default().contains("create"), "newest first:\n{history}");

    // A healthy version 3; then rolled back by hand to what ran before it.
    repo.sync();
    repo.write("apps/web.yml", &web_app_keep_holds(&repo.show("apps/web.yml"), &v3));
    repo.push("web 3");
    let signed = signature("hook-secret", push_body);
    http(&address, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signed)], push_body);
    eventually("web 3 deployed", &deployer, || deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["version"] == "3"));
    let output = gantry_ok(&["env", "rollback", "web", "--repo", &url]);
    assert!(output.contains(&format!("{v3} → {v1}")), "the failed and held version 2 is skipped: {output}");
    http(&address, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signed)], push_body);
    eventually("web 1 deployed by the manual rollback", &deployer, || {
        deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["version"] == "1")
    });

    drop(deployer);
    drop(daemon);
    drop(environment);
}

/// `text` (an application file) with its image set to `image` and its health check passing.
fn web_app_keep_holds(text: &str, image: &str) -> String {
    deploy::edit::set_image("apps/web.yml", text, image).unwrap().replace("HEALTHY: 'no'", "HEALTHY: 'yes'")
}

#[test]
fn drift_is_healed_or_only_reported_per_application_and_a_rotated_secret_rolls_the_apps_using_it() {
    let environment = Environment::new("it-drift");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "  update: {monitor: 1s}\n");
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["deployer", "secret", "add", "api_key", "--data", data_arg])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"first-key-value\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(output.status.success());
    repo.write(
        "apps/web.yml",
        &format!(
            "version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\nsecrets: [api_key]\nnetworks: [backend]\n\
             healthcheck: {{command: [test, -f, /run/secrets/api_key], interval: 1s, timeout: 1s, retries: 1}}\n"
        ),
    );
    repo.write(
        "apps/worker.yml",
        &format!("version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\nnetworks: [backend]\ndrift: warn\n"),
    );
    repo.push("web and worker");
    let address = format!("127.0.0.1:{}", free_port());
    let deployer = Deployer::start(
        &["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--listen", &address, "--data", data_arg],
        &dir.path().join("deployer.log"),
        Some(address.clone()),
    );
    eventually("both running", &deployer, || {
        deployer.inventory().is_some_and(|inventory| inventory["apps"].as_array().unwrap().iter().all(|app| app["state"] == "in-sync"))
    });
    let web = environment.running_app("web").pop().unwrap();
    let worker = environment.running_app("worker").pop().unwrap();
    assert_eq!(docker(&["exec", &web, "cat", "/run/secrets/api_key"]), "first-key-value");
    assert_eq!(docker(&["exec", &web, "stat", "-c", "%a", "/run/secrets/api_key"]), "400");
    assert!(
        docker(&["exec", &web, "ping", "-c", "1", "-W", "2", "worker"]).contains("1 packets received"),
        "applications on one network reach each other by name"
    );
    assert!(!deployer.log().contains("first-key-value"), "a secret's value is never logged");

    // Rotating the secret rolls web, and only web.
    gantry_ok(&["deployer", "secret", "add", "api_key", "--value", "second-key-value", "--data", data_arg]);
    eventually("web rolled with the new secret", &deployer, || {
        environment
            .running_app("web")
            .first()
            .is_some_and(|id| id != &web && docker(&["exec", id, "cat", "/run/secrets/api_key"]) == "second-key-value")
    });
    assert_eq!(environment.running_app("worker"), vec![worker.clone()], "worker does not use the secret");
    let listed = gantry_ok(&["deployer", "secret", "ls", "--data", data_arg]);
    assert!(listed.contains("api_key") && !listed.contains("second-key-value"), "{listed}");

    // Removed by hand: healed. Stopped by hand with `drift: warn`: reported, left alone.
    let web = environment.running_app("web").pop().unwrap();
    docker(&["rm", "-f", &web]);
    docker(&["stop", "-t", "0", &worker]);
    eventually("web healed", &deployer, || environment.running_app("web").len() == 1);
    eventually("worker's drift reported", &deployer, || {
        deployer.app("worker").is_some_and(|app| app["state"] == "drifted" && app["drift"][0] == "0 of 1 running")
    });
    assert!(environment.running_app("worker").is_empty(), "drift: warn changes nothing");
    let (status, metrics) = http(&address, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("gantry_deployer_drifted_apps 1"), "{metrics}");
    assert!(metrics.contains("gantry_deployer_deployments_total{outcome=\"succeeded\"}"), "{metrics}");

    // A container started by hand that claims web by its labels: drift, healed (it goes).
    let impostor = docker(&[
        "run",
        "-d",
        "--label",
        &format!("io.gantry.deploy.environment={}", environment.name),
        "--label",
        "io.gantry.deploy.app=web",
        "gantry-test/busybox:latest",
        "sleep",
        "3600",
    ]);
    eventually("the impostor removed", &deployer, || !environment.containers().contains(&impostor));
    eventually("web healthy again", &deployer, || deployer.app("web").is_some_and(|app| app["state"] == "in-sync"));
    assert!(deployer.log().contains("claims the application by its labels but was not started by the deployer"), "{}", deployer.log());

    // Gone from the repository: removed, with the network they shared.
    std::fs::remove_file(repo.work.join("apps/web.yml")).unwrap();
    std::fs::remove_file(repo.work.join("apps/worker.yml")).unwrap();
    repo.push("nothing runs here");
    eventually("everything removed", &deployer, || environment.leaked().is_empty());
    drop(deployer);
}

#[test]
fn a_deployer_killed_during_a_rollout_finishes_it_when_it_starts_again_and_never_leaves_two_versions() {
    let environment = Environment::new("it-kill");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "");
    // Healthy three seconds after it starts: long enough to be killed in between.
    let app = |version: &str| {
        format!(
            "version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sh, -c, 'sleep 3; touch /tmp/ok; exec sleep 3600']\n\
             environment: {{VERSION: '{version}'}}\nhealthcheck: {{command: [test, -f, /tmp/ok], interval: 1s, timeout: 1s, retries: 5}}\n"
        )
    };
    let version_of = |id: &str| {
        docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", id])
            .lines()
            .find_map(|line| line.strip_prefix("VERSION=").map(str::to_owned))
            .unwrap_or_default()
    };
    repo.write("apps/web.yml", &app("1"));
    repo.push("web 1");
    let data = dir.path().join("data");
    let args = ["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--data", data.to_str().unwrap()];
    let log = dir.path().join("deployer.log");
    let mut deployer = Deployer::start(&args, &log, None);
    eventually("web 1 running", &deployer, || {
        environment.running().len() == 1
            && docker(&["inspect", "--format", "{{.State.Health.Status}}", &environment.running()[0]]) == "healthy"
    });

    repo.write("apps/web.yml", &app("2"));
    repo.push("web 2");
    eventually("version 2 starting beside version 1", &deployer, || environment.running().len() == 2);
    deployer.kill();
    let versions: Vec<String> = environment.running().iter().map(|id| version_of(id)).collect();
    assert_eq!(versions.len(), 2, "killed mid-rollout: {versions:?}");

    let deployer = Deployer::start(&args, &log, None);
    eventually("one version left, the new one, healthy", &deployer, || {
        let running = environment.running();
        running.len() == 1
            && environment.containers().len() == 1
            && version_of(&running[0]) == "2"
            && docker(&["inspect", "--format", "{{.State.Health.Status}}", &running[0]]) == "healthy"
    });
    assert!(deployer.log().contains("a rollout was interrupted when the deployer stopped"), "{}", deployer.log());
    let history = std::fs::read_to_string(data.join("history.jsonl")).unwrap();
    assert!(history.contains("\"outcome\":\"interrupted\""), "{history}");
    drop(deployer);
}

#[test]
fn the_deployers_own_http_probe_decides_health_and_a_rollback_is_committed_locally_while_the_repository_is_unreachable() {
    let environment = Environment::new("it-probe");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "  update: {monitor: 1s}\n");
    // busybox's httpd serves /www; version 2 has no /healthz, so the probe gets a 404.
    let app = |version: &str, serves_health: bool| {
        let health = if serves_health { "echo ok > /www/healthz && " } else { "" };
        format!(
            "version: 1\n{OWNER}image: gantry-test/busybox:latest\n\
             command: [sh, -c, 'mkdir -p /www && {health}exec httpd -f -p 8080 -h /www']\nenvironment: {{VERSION: '{version}'}}\n\
             healthcheck: {{http: {{path: /healthz, port: 8080}}, interval: 1s, timeout: 1s, retries: 2}}\n"
        )
    };
    repo.write("apps/web.yml", &app("1", true));
    repo.push("web 1");
    let address = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("data");
    let deployer = Deployer::start(
        &["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--listen", &address, "--data", data.to_str().unwrap()],
        &dir.path().join("deployer.log"),
        Some(address.clone()),
    );
    eventually("web 1 healthy by the probe", &deployer, || {
        deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["replicas_running"] == 1)
    });
    let first = environment.running_app("web");

    // Version 2 starts; the repository goes away while its probe fails.
    repo.write("apps/web.yml", &app("2", false));
    repo.push("web 2");
    eventually("version 2 starting beside version 1", &deployer, || environment.running_app("web").len() == 2);
    let moved = dir.path().join("moved.git");
    std::fs::rename(&repo.bare, &moved).unwrap();
    eventually("the rollback committed locally", &deployer, || deployer.log().contains("cannot push the deployer's commit yet"));
    assert!(deployer.log().contains("GET /healthz answered 404"), "{}", deployer.log());
    eventually("version 1 still running, reported unreachable", &deployer, || {
        deployer.inventory().is_some_and(|inventory| {
            inventory["repository_reachable"] == false && inventory["pending_commits"] == 1 && inventory["apps"][0]["state"] == "in-sync"
        })
    });
    assert_eq!(environment.running_app("web"), first);

    // Back: the rollback is replayed onto the branch and pushed.
    std::fs::rename(&moved, &repo.bare).unwrap();
    eventually("the rollback pushed", &deployer, || repo.head("%an").starts_with("Gantry deployer"));
    assert!(repo.show("apps/web.yml").contains("VERSION: '1'"));
    eventually("nothing pending", &deployer, || deployer.inventory().is_some_and(|inventory| inventory["pending_commits"] == 0));
    assert_eq!(environment.running_app("web"), first);
    drop(deployer);
}

#[test]
fn a_published_image_becomes_a_commit_by_the_deployer_and_a_held_version_is_never_taken_again() {
    let mut environment = Environment::new("it-automation");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "  update: {monitor: 1s}\n");
    let labels = |build: u32| format!("io.gantry.repo=acme/web io.gantry.build={build} org.opencontainers.image.revision=c0ffee{build}");
    let healthy = "touch /healthy";
    let v100 = environment.pushed_image_with("web", "1.0.0", &labels(1), healthy);
    let app = format!(
        "version: 1\n{OWNER}image: {v100}\ncommand: [sleep, '3600']\n\
         healthcheck: {{command: [test, -f, /healthy], interval: 1s, timeout: 1s, retries: 1}}\n\
         image_policy: {{semver: ^1.0}}\n"
    );
    repo.write("apps/web.yml", &app);
    repo.push("web 1.0.0");
    let address = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("data");
    let deployer = Deployer::start(
        &["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--image-poll", "3600", "--listen", &address]
            .into_iter()
            .chain(["--gantry-secret", "published-secret", "--data", data.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &dir.path().join("deployer.log"),
        Some(address.clone()),
    );
    eventually("1.0.0 deployed", &deployer, || {
        deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["version"] == "1.0.0")
    });
    let asked = || deployer.log().matches("asked the registries for newer images").count();

    // CI publishes 1.1.0 (and 2.0.0, outside the range) and says so, signed.
    let v110 = environment.pushed_image_with("web", "1.1.0", &labels(2), healthy);
    environment.pushed_image_with("web", "2.0.0", &labels(3), healthy);
    let published = |pinned: &str| {
        let (image, digest) = pinned.rsplit_once('@').unwrap();
        let repository = image.rsplit_once(':').unwrap().0;
        serde_json::json!({
            "event": "image.published", "repository": "acme/web", "build": 2, "build_url": "http://ci.example/acme/web/builds/2",
            "commit": "c0ffee2", "branch": "main", "reference": "refs/heads/main", "trigger": "push", "workflow": "ci", "step": "image",
            "image": repository, "digest": digest, "pinned": format!("{repository}@{digest}"), "tags": ["1.1.0"]
        })
        .to_string()
    };
    let body = published(&v110);
    let (status, _) = http(&address, "POST", "/hooks/gantry", &[("X-Gantry-Event", "image.published")], body.as_bytes());
    assert_eq!(status, 401, "an unsigned event is refused");
    let signed = signature("published-secret", body.as_bytes());
    let (status, answer) = http(&address, "POST", "/hooks/gantry", &[("X-Gantry-Signature", &signed)], body.as_bytes());
    assert_eq!(status, 202, "{answer}");
    eventually("the update committed by the deployer", &deployer, || repo.head("%an").starts_with("Gantry deployer"));
    let message = repo.head("%B");
    assert!(message.contains("1.1.0") && message.contains(&format!("Gantry-Image: {}", v110.replace(":1.1.0@", "@"))), "{message}");
    assert!(repo.show("apps/web.yml").contains(&format!("image: {v110}")), "{}", repo.show("apps/web.yml"));
    eventually("1.1.0 deployed", &deployer, || {
        deployer.app("web").is_some_and(|app| app["state"] == "in-sync" && app["version"] == "1.1.0")
    });
    let app = deployer.app("web").unwrap();
    assert_eq!(app["provenance"]["build"], "2", "{app}");
    assert_eq!(app["provenance"]["commit"], "c0ffee2", "{app}");

    // 1.2.0 is broken: taken, rolled back, held; announced again, it is not taken.
    let v120 = environment.pushed_image_with("web", "1.2.0", &labels(4), "true");
    let held = v120.split_once('@').unwrap().1.to_owned();
    let body = published(&v120);
    let signed = signature("published-secret", body.as_bytes());
    http(&address, "POST", "/hooks/gantry", &[("X-Gantry-Signature", &signed)], body.as_bytes());
    eventually("the rollback committed", &deployer, || repo.head("%s").starts_with("Roll back web"));
    assert!(repo.show("apps/web.yml").contains(&format!("image: {v110}")));
    assert!(repo.show("apps/web.yml").contains(&format!("  - {held}")), "{}", repo.show("apps/web.yml"));
    let rollback = repo.head("%H");
    let before = asked();
    http(&address, "POST", "/hooks/gantry", &[("X-Gantry-Signature", &signed)], body.as_bytes());
    eventually("the registries asked again", &deployer, || asked() > before);
    assert_eq!(repo.head("%H"), rollback, "the held version is not taken again");
    assert!(deployer.app("web").is_some_and(|app| app["version"] == "1.1.0"));
    drop(deployer);
}

#[test]
fn a_dry_run_plans_every_pass_and_changes_nothing_and_target_leaves_other_targets_alone() {
    let environment = Environment::new("it-dry");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "");
    // A second target, a Swarm this deployer is not asked to reconcile: its application is
    // left to that target's deployer, and the engine is never asked for a Swarm.
    let environment_file = std::fs::read_to_string(repo.work.join("environment.yml"))
        .unwrap()
        .replace("  local: {kind: docker}\n", "  local: {kind: docker}\n  mesh: {kind: swarm}\n")
        .replace("defaults:\n", "defaults:\n  target: local\n");
    repo.write("environment.yml", &environment_file);
    let app = format!("version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\n");
    repo.write("apps/web.yml", &app);
    repo.write("apps/edge.yml", &format!("{app}target: mesh\n"));
    repo.push("web here, edge on the mesh");
    let data = dir.path().join("data");
    let log = dir.path().join("deployer.log");
    let args = ["--repo", repo.bare.to_str().unwrap(), "--poll", "1", "--data", data.to_str().unwrap(), "--target", "local"];
    let mut deployer = Deployer::start(&[args.as_slice(), &["--dry-run"]].concat(), &log, None);
    eventually("a dry run's plan logged", &deployer, || deployer.log().matches("dry run: nothing applied").count() >= 2);
    assert!(deployer.log().contains("+ web: start gantry-test/busybox:latest"), "{}", deployer.log());
    assert!(!deployer.log().contains("edge"), "another target's application is not planned here: {}", deployer.log());
    assert!(environment.containers().is_empty(), "a dry run starts nothing");
    deployer.stop();

    let deployer = Deployer::start(&args, &log, None);
    eventually("web started", &deployer, || environment.running_app("web").len() == 1);
    assert!(environment.running_app("edge").is_empty());
    drop(deployer);
}
