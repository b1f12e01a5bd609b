//! The client commands (`gantry repo|build|secret|registry`) against a real `gantry server` process on
//! 127.0.0.1: what they print, their exit codes and error messages. No agent runs, so builds stay
//! pending until cancelled. Following a log across a dropped connection is checked against a
//! stand-in server that drops it on purpose.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const IMAGE: &str = "gantry-test/busybox:latest";

/// A `gantry server` on a free port with its own data folder and an admin token, killed when
/// dropped. Other modules' tests use it too (`reporting`).
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
    data: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let token = random_hex();
        let log = fs::File::create(data.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data.path().join("data"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", data.path())
            .env("GANTRY_ADMIN_TOKEN", &token)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server { child, url: format!("http://127.0.0.1:{port}"), token, data };
        server.wait_ready(port);
        server
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited ({status}):\n{}", self.log());
            }
            if http_get(port, "/readyz").is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not get ready:\n{}", self.log());
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = client_command(args);
        command.env("GANTRY_SERVER", &self.url).env("GANTRY_TOKEN", &self.token);
        command
    }

    pub(crate) fn gantry(&self, args: &[&str]) -> Output {
        let output = self.command(args).stdin(Stdio::null()).output().unwrap();
        self.assert_token_not_shown(&output);
        output
    }

    fn gantry_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        self.assert_token_not_shown(&output);
        output
    }

    /// Runs a command that must succeed, and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.gantry(args);
        assert_eq!(output.status.code(), Some(0), "gantry {args:?}\n{}", detail(&output));
        stdout(&output)
    }

    /// Runs a command with `--json` that must succeed, and returns its JSON.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("gantry {args:?} printed no JSON ({error}): {text}"))
    }

    fn assert_token_not_shown(&self, output: &Output) {
        assert!(
            !stdout(output).contains(&self.token) && !stderr(output).contains(&self.token),
            "the token was printed:\n{}",
            detail(output)
        );
    }

    /// Registers `acme/shop` cloning from `remote`.
    fn add_repo(&self, remote: &Remote) {
        self.ok(&["repo", "add", "acme/shop", "--clone-url", &remote.url()]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gantry` with no GANTRY_* settings from the environment the tests run in.
fn client_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command.args(args).env("NO_COLOR", "1");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GANTRY_") {
            command.env_remove(name);
        }
    }
    command
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A plain HTTP/1.1 GET; the whole answer, or `None` when nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn detail(output: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), stdout(output), stderr(output))
}

/// A bare git repository (the "forge") whose `main` holds the given files.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn with_files(files: &[(&str, &str)]) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs::create_dir_all(&work).unwrap();
        for (path, text) in files {
            let full = work.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, text.replace("IMAGE", IMAGE)).unwrap();
        }
        crate::git_in(dir.path(), &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        crate::git_in(&work, &["init", "-q", "-b", "main"]);
        crate::git_in(&work, &["add", "."]);
        crate::git_in(&work, &["commit", "-q", "-m", "First pipeline"]);
        crate::git_in(&work, &["push", "-q", "../remote.git", "main"]);
        Remote { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }
}

const PIPELINE: &str =
    "steps:\n  greet:\n    image: IMAGE\n    commands: [echo hello]\n  test:\n    image: IMAGE\n    commands: [echo test]\n";

#[test]
fn repositories_are_added_listed_shown_and_removed() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    let added =
        server.ok(&["repo", "add", "acme/shop", "--clone-url", &remote.url(), "--poll", "60", "--timeout", "15", "--cancel-previous"]);
    let webhook_url = format!("{}/api/hooks/acme/shop", server.url);
    assert!(added.starts_with("added acme/shop\n"), "{added}");
    assert!(added.contains(&webhook_url), "{added}");
    assert!(added.contains("timeout          15 minutes"), "{added}");

    let again = server.gantry(&["repo", "add", "acme/shop", "--clone-url", &remote.url()]);
    assert_eq!(again.status.code(), Some(1), "{}", detail(&again));
    assert!(stderr(&again).contains("error: ") && stderr(&again).contains("already exists"), "{}", detail(&again));
    let bad_url = server.gantry(&["repo", "add", "acme/other", "--clone-url", "not a remote"]);
    assert_eq!(bad_url.status.code(), Some(1), "{}", detail(&bad_url));
    assert!(stderr(&bad_url).contains("is not a git remote") && stderr(&bad_url).contains("field: clone_url"), "{}", detail(&bad_url));
    let bad_name = server.gantry(&["repo", "add", "acme", "--clone-url", &remote.url()]);
    assert_eq!(bad_name.status.code(), Some(2), "{}", detail(&bad_name));
    assert!(stderr(&bad_name).contains("is not OWNER/NAME"), "{}", detail(&bad_name));
    let github = server.gantry(&["repo", "add", "acme/hub", "--clone-url", "https://github.com/acme/hub.git", "--lost-policy", "fail"]);
    assert_eq!(github.status.code(), Some(0), "{}", detail(&github));
    assert!(stderr(&github).contains("webhook secret (shown once"), "a forge's webhooks need a secret the user knows: {}", detail(&github));
    let shown = server.ok(&["repo", "show", "acme/hub", "--json"]);
    assert!(!shown.contains("webhook_secret"), "shown once, not again: {shown}");

    let listed = server.ok(&["repo", "ls"]);
    assert!(listed.starts_with("NAME "), "{listed}");
    assert!(listed.lines().any(|line| line.starts_with("acme/shop ") && line.contains("generic") && line.contains("admin")), "{listed}");
    assert!(listed.lines().any(|line| line.starts_with("acme/hub ") && line.contains("github")), "{listed}");
    let names: Vec<String> =
        server.json(&["repo", "ls"]).as_array().unwrap().iter().map(|repo| repo["full_name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"acme/shop".to_owned()), "{names:?}");

    let shown = server.json(&["repo", "show", "acme/shop"]);
    assert_eq!(shown["webhook_url"], webhook_url.as_str());
    assert_eq!(shown["clone_url"], remote.url().as_str());
    assert_eq!((shown["timeout_minutes"].as_u64(), shown["poll_interval_seconds"].as_u64()), (Some(15), Some(60)));
    assert_eq!(
        (&shown["cancel_previous"], &shown["forge"], &shown["lost_policy"]),
        (&Value::Bool(true), &Value::from("generic"), &Value::from("requeue"))
    );
    assert_eq!(server.json(&["repo", "show", "acme/hub"])["lost_policy"], "fail");
    let text = server.ok(&["repo", "show", "acme/shop"]);
    assert!(text.contains("webhook URL") && text.contains(&webhook_url), "{text}");

    let removed = server.ok(&["repo", "rm", "acme/shop"]);
    assert!(removed.contains("removed acme/shop"), "{removed}");
    let gone = server.gantry(&["repo", "show", "acme/shop"]);
    assert_eq!(gone.status.code(), Some(1), "{}", detail(&gone));
    assert!(stderr(&gone).contains("error: repository acme/shop does not exist"), "{}", detail(&gone));
}

#[test]
fn secrets_are_written_but_never_shown() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    let from_stdin = "value-from-stdin-8f3a";
    let from_flag = "value-from-flag-c27e";
    let from_env = "value-from-env-91d0";
    let never_shown = |output: &Output| {
        let all = format!("{}{}", stdout(output), stderr(output));
        for value in [from_stdin, from_flag, from_env] {
            assert!(!all.contains(value), "a secret value was printed:\n{}", detail(output));
        }
    };

    let output = server.gantry_with_stdin(&["secret", "add", "acme/shop", "api_key"], &format!("{from_stdin}\n"));
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    assert!(stdout(&output).contains("saved secret api_key of acme/shop"), "{}", detail(&output));
    never_shown(&output);
    let output = server.gantry(&["secret", "add", "acme/shop", "deploy_token", "--value", from_flag, "--event", "push", "--event", "tag"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    never_shown(&output);
    let output = server
        .command(&["secret", "add", "acme/shop", "registry", "--from-env", "REGISTRY_PASSWORD", "--image", "plugins/docker", "--json"])
        .env("REGISTRY_PASSWORD", from_env)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    never_shown(&output);
    let written: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(written["images"], serde_json::json!(["plugins/docker"]));

    let listed = server.gantry(&["secret", "ls", "acme/shop"]);
    never_shown(&listed);
    let text = stdout(&listed);
    assert!(text.starts_with("NAME "), "{text}");
    for name in ["api_key", "deploy_token", "registry"] {
        assert!(text.lines().any(|line| line.starts_with(name)), "{name} missing: {text}");
    }
    let secrets = server.json(&["secret", "ls", "acme/shop"]);
    let deploy_token = secrets.as_array().unwrap().iter().find(|secret| secret["name"] == "deploy_token").unwrap();
    assert_eq!(deploy_token["events"], serde_json::json!(["push", "tag"]));
    assert!(!secrets.to_string().contains("value-from"), "{secrets}");

    let both = server.gantry(&["secret", "add", "acme/shop", "x", "--value", "a", "--from-env", "HOME"]);
    assert_eq!(both.status.code(), Some(2), "one source of a value: {}", detail(&both));
    let dots = server.gantry(&["secret", "add", "acme/shop", "..", "--value", "a"]);
    assert_eq!(dots.status.code(), Some(2), "`..` would address another URL: {}", detail(&dots));
    let empty = server.gantry_with_stdin(&["secret", "add", "acme/shop", "x"], "");
    assert_eq!(empty.status.code(), Some(2), "{}", detail(&empty));
    assert!(stderr(&empty).contains("the value of x is empty"), "{}", detail(&empty));
    let bad_event = server.gantry(&["secret", "add", "acme/shop", "x", "--value", from_flag, "--event", "sometimes"]);
    assert_eq!(bad_event.status.code(), Some(1), "{}", detail(&bad_event));
    assert!(
        stderr(&bad_event).contains("`sometimes` is not an event") && stderr(&bad_event).contains("field: events"),
        "{}",
        detail(&bad_event)
    );
    never_shown(&bad_event);

    assert!(server.ok(&["secret", "rm", "acme/shop", "deploy_token"]).contains("removed secret deploy_token"));
    assert!(!server.ok(&["secret", "ls", "acme/shop"]).contains("deploy_token"));
    let again = server.gantry(&["secret", "rm", "acme/shop", "deploy_token"]);
    assert_eq!(again.status.code(), Some(1), "{}", detail(&again));
    assert!(stderr(&again).contains("acme/shop has no secret deploy_token"), "{}", detail(&again));
}

#[test]
fn notifiers_and_delivery_webhooks_are_added_listed_and_removed_without_showing_their_secret() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    let secret = "delivery-secret-5b1e9c0d7a";
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret_file.path(), format!("{secret}\n")).unwrap();

    let output = server.gantry(&[
        "notifier",
        "add",
        "acme/shop",
        "https://deploy.example.com/hooks/gantry",
        "--event",
        "image.published",
        "--secret-from-file",
        secret_file.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    assert!(
        stdout(&output)
            .contains("added notifier 1 of acme/shop: webhook https://deploy.example.com/hooks/gantry for image.published, signed"),
        "{}",
        detail(&output)
    );
    server.ok(&["notifier", "add", "acme/shop", "https://chat.example.com/hook", "--kind", "slack", "--state", "failure"]);

    let listed = server.gantry(&["notifier", "ls", "acme/shop"]);
    let text = stdout(&listed);
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.lines().any(|line| line.starts_with("1 ") && line.contains("image.published") && line.contains("yes")), "{text}");
    assert!(
        text.lines().any(|line| line.starts_with("2 ") && line.contains("slack") && line.contains("failure") && line.contains(" no ")),
        "{text}"
    );
    let notifiers = server.json(&["notifier", "ls", "acme/shop"]);
    assert_eq!(notifiers[0]["signed"], true);
    for output in [&output, &listed] {
        assert!(!format!("{}{}", stdout(output), stderr(output)).contains(secret), "the secret was printed: {}", detail(output));
    }
    assert!(!notifiers.to_string().contains(secret));

    let bad = server.gantry(&["notifier", "add", "acme/shop", "https://deploy.example.com/", "--event", "image.pushed"]);
    assert_eq!(bad.status.code(), Some(1), "{}", detail(&bad));
    assert!(stderr(&bad).contains("`image.pushed` is not a notifier event") && stderr(&bad).contains("field: events"), "{}", detail(&bad));

    assert!(server.ok(&["notifier", "rm", "acme/shop", "1"]).contains("removed notifier 1 of acme/shop"));
    assert!(!server.ok(&["notifier", "ls", "acme/shop"]).contains("image.published"));
}

#[test]
fn registry_logins_are_saved_listed_and_removed_but_their_passwords_never_shown() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    let from_stdin = "registry-password-stdin-5be1";
    let from_flag = "registry-password-flag-0c4d";
    let from_env = "registry-password-env-77a2";
    let never_shown = |output: &Output| {
        let all = format!("{}{}", stdout(output), stderr(output));
        for password in [from_stdin, from_flag, from_env] {
            assert!(!all.contains(password), "a registry password was printed:\n{}", detail(output));
        }
    };

    let output = server.gantry_with_stdin(
        &["registry", "add", "acme/shop", "https://Registry.Example.com/", "--username", "ci-bot", "--password-stdin"],
        &format!("{from_stdin}\n"),
    );
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    assert!(stdout(&output).contains("saved the login for registry.example.com of acme/shop (username ci-bot)"), "{}", detail(&output));
    never_shown(&output);
    let output = server.gantry(&["registry", "add", "acme/shop", "127.0.0.1:5001", "-u", "local", "--password", from_flag]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    never_shown(&output);
    let output = server
        .command(&["registry", "add", "acme/shop", "docker.io", "-u", "hub", "--password-from-env", "HUB_TOKEN", "--json"])
        .env("HUB_TOKEN", from_env)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    never_shown(&output);
    let written: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((written["host"].as_str(), written["username"].as_str()), (Some("docker.io"), Some("hub")), "{written}");

    let listed = server.gantry(&["registry", "ls", "acme/shop"]);
    never_shown(&listed);
    let text = stdout(&listed);
    assert!(text.starts_with("HOST "), "{text}");
    let hosts: Vec<&str> = text.lines().skip(1).filter_map(|line| line.split_whitespace().next()).collect();
    assert_eq!(hosts, ["127.0.0.1:5001", "docker.io", "registry.example.com"], "{text}");
    let registries = server.json(&["registry", "ls", "acme/shop"]);
    assert_eq!(registries[2]["username"], "ci-bot", "{registries}");
    assert!(!registries.to_string().contains("registry-password"), "{registries}");

    let both = server.gantry(&["registry", "add", "acme/shop", "ghcr.io", "-u", "x", "--password", "a", "--password-stdin"]);
    assert_eq!(both.status.code(), Some(2), "one source of a password: {}", detail(&both));
    let empty = server.gantry_with_stdin(&["registry", "add", "acme/shop", "ghcr.io", "-u", "x", "--password-stdin"], "");
    assert_eq!(empty.status.code(), Some(2), "{}", detail(&empty));
    assert!(stderr(&empty).contains("the password for ghcr.io is empty"), "{}", detail(&empty));
    let path = server.gantry(&["registry", "add", "acme/shop", "ghcr.io/team/app", "-u", "x", "--password", from_flag]);
    assert_eq!(path.status.code(), Some(2), "a host is checked before anything is sent: {}", detail(&path));
    assert!(stderr(&path).contains("has a path"), "{}", detail(&path));
    never_shown(&path);
    let refused = server.gantry(&["registry", "add", "acme/shop", "ghcr.io", "-u", "ci:bot", "--password", from_flag]);
    assert_eq!(refused.status.code(), Some(1), "{}", detail(&refused));
    assert!(stderr(&refused).contains("field: username"), "{}", detail(&refused));
    never_shown(&refused);

    assert!(
        server.ok(&["registry", "rm", "acme/shop", "https://index.docker.io/v1/"]).contains("removed the login for docker.io of acme/shop")
    );
    assert!(!server.ok(&["registry", "ls", "acme/shop"]).contains("docker.io"));
    let again = server.gantry(&["registry", "rm", "acme/shop", "docker.io"]);
    assert_eq!(again.status.code(), Some(1), "{}", detail(&again));
    assert!(stderr(&again).contains("acme/shop has no credentials for registry docker.io"), "{}", detail(&again));
    server.ok(&["registry", "rm", "acme/shop", "127.0.0.1:5001"]);
    server.ok(&["registry", "rm", "acme/shop", "registry.example.com"]);
    let none = server.ok(&["registry", "ls", "acme/shop"]);
    assert!(none.contains("acme/shop has no registry logins; add one with `gantry registry add acme/shop HOST"), "{none}");
}

#[test]
fn builds_are_run_listed_shown_cancelled_and_restarted() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    assert!(server.ok(&["build", "ls", "acme/shop"]).contains("acme/shop has no builds yet"));

    let started = server.ok(&["build", "run", "acme/shop", "--var", "GREETING=hi"]);
    assert!(started.starts_with("build 1 of acme/shop: pending (manual on main, "), "{started}");
    let listed = server.ok(&["build", "ls", "acme/shop"]);
    assert!(listed.starts_with("BUILD "), "{listed}");
    assert!(
        listed.lines().nth(1).is_some_and(|line| line.starts_with("1 ") && line.contains("pending") && line.contains("First pipeline")),
        "{listed}"
    );
    let shown = server.ok(&["build", "show", "acme/shop", "1"]);
    assert!(shown.starts_with("build 1 of acme/shop: pending\n"), "{shown}");
    assert!(shown.lines().any(|line| line.trim_start().starts_with("trigger ") && line.ends_with(" user:admin-token")), "{shown}");
    for step in ["greet", "test"] {
        assert!(shown.lines().any(|line| line.trim_start().starts_with(step) && line.contains("pending")), "{step}: {shown}");
    }
    let build = server.json(&["build", "show", "acme/shop", "1"]);
    assert_eq!(build["state"], "pending");
    assert_eq!(build["event"], "manual");

    let cancelled = server.ok(&["build", "cancel", "acme/shop", "1"]);
    assert!(cancelled.starts_with("build 1 of acme/shop: killed"), "{cancelled}");
    let build = server.json(&["build", "show", "acme/shop", "1"]);
    assert_eq!(build["state"], "killed");
    let steps: Vec<&Value> =
        build["workflows"].as_array().unwrap().iter().flat_map(|workflow| workflow["steps"].as_array().unwrap()).collect();
    assert!(steps.iter().all(|step| step["state"] == "killed" || step["state"] == "skipped"), "{build}");
    let again = server.gantry(&["build", "cancel", "acme/shop", "1"]);
    assert_eq!(again.status.code(), Some(1), "{}", detail(&again));
    assert!(stderr(&again).contains("build 1 has already finished"), "{}", detail(&again));

    let restarted = server.ok(&["build", "restart", "acme/shop", "1"]);
    assert!(restarted.starts_with("build 2 of acme/shop: pending") && restarted.contains("restart of 1"), "{restarted}");
    let third = server.json(&["build", "run", "acme/shop", "--branch", "main"]);
    assert_eq!((third["number"].as_i64(), third["state"].as_str()), (Some(3), Some("pending")));
    let numbers: Vec<i64> = server
        .json(&["build", "ls", "acme/shop", "--limit", "2"])
        .as_array()
        .unwrap()
        .iter()
        .map(|build| build["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2]);

    let missing_branch = server.gantry(&["build", "run", "acme/shop", "--branch", "nope"]);
    assert_eq!(missing_branch.status.code(), Some(1), "{}", detail(&missing_branch));
    assert!(stderr(&missing_branch).contains("refs/heads/nope does not exist"), "{}", detail(&missing_branch));
    let bad_variable = server.gantry(&["build", "run", "acme/shop", "--var", "NOEQUALS"]);
    assert_eq!(bad_variable.status.code(), Some(2), "{}", detail(&bad_variable));
    let no_build = server.gantry(&["build", "show", "acme/shop", "99"]);
    assert_eq!(no_build.status.code(), Some(1), "{}", detail(&no_build));
    assert!(stderr(&no_build).contains("acme/shop has no build 99"), "{}", detail(&no_build));
}

#[test]
fn logs_of_a_finished_build_print_and_follow_to_its_end() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    server.ok(&["build", "run", "acme/shop"]);
    server.ok(&["build", "cancel", "acme/shop", "1"]);

    let all = server.ok(&["build", "logs", "acme/shop", "1"]);
    let headers: Vec<&str> = all.lines().filter(|line| line.starts_with("==> ")).collect();
    assert!(headers.iter().any(|line| line.starts_with("==> ") && line.ends_with("/greet (skipped)")), "{all}");
    assert!(headers.iter().any(|line| line.ends_with("/test (skipped)")), "{all}");
    assert_eq!(server.ok(&["build", "logs", "acme/shop", "1", "greet"]), "", "one step: no header, and nothing was logged");

    // Every step's log has ended and the build was killed: following ends at once, exit 1.
    let followed = server.gantry(&["build", "logs", "acme/shop", "1", "-f"]);
    assert_eq!(followed.status.code(), Some(1), "{}", detail(&followed));
    assert!(stdout(&followed).lines().any(|line| line.ends_with("/test (skipped)")), "{}", detail(&followed));

    let one_step = server.gantry(&["build", "logs", "acme/shop", "1", "greet", "--follow"]);
    assert_eq!(one_step.status.code(), Some(1), "skipped because the build was cancelled: {}", detail(&one_step));

    let unknown = server.gantry(&["build", "logs", "acme/shop", "1", "deploy"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", detail(&unknown));
    assert!(stderr(&unknown).contains("has no step `deploy`; its steps: ") && stderr(&unknown).contains("/greet"), "{}", detail(&unknown));
}

#[test]
fn following_a_pending_build_waits_until_it_ends() {
    let server = Server::start();
    let remote = Remote::with_files(&[(".woodpecker.yml", PIPELINE)]);
    server.add_repo(&remote);
    server.ok(&["build", "run", "acme/shop"]);
    let mut follower =
        server.command(&["build", "logs", "acme/shop", "1", "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr_lines = BufReader::new(follower.stderr.take().unwrap()).lines();
    let waiting = stderr_lines.next().unwrap().unwrap();
    assert!(waiting.starts_with("waiting for ") && waiting.ends_with(" to start"), "{waiting}");
    thread::sleep(Duration::from_millis(1500));
    assert!(follower.try_wait().unwrap().is_none(), "a follower waits while the build is pending");

    server.ok(&["build", "cancel", "acme/shop", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            panic!("the follower did not end with the build");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut printed = String::new();
    follower.stdout.take().unwrap().read_to_string(&mut printed).unwrap();
    assert_eq!(status.code(), Some(1), "a killed build is not a success: {printed}");
    assert!(printed.lines().any(|line| line.ends_with("/greet (skipped)")), "{printed}");
}

#[test]
fn a_pipeline_with_errors_shows_its_diagnostics_with_positions() {
    let server = Server::start();
    let broken = "steps:\n  build:\n    image: IMAGE\n    depends_on: [tset]\n  test:\n    image: IMAGE\n    commands: [true]\n";
    let remote = Remote::with_files(&[(".woodpecker.yml", broken)]);
    server.add_repo(&remote);
    let run = server.gantry(&["build", "run", "acme/shop"]);
    assert_eq!(run.status.code(), Some(1), "a build that cannot start: {}", detail(&run));
    assert!(stdout(&run).contains("build 1 of acme/shop: error"), "{}", detail(&run));
    assert!(stdout(&run).contains("reason: the pipeline has errors"), "{}", detail(&run));
    let shown = server.ok(&["build", "show", "acme/shop", "1"]);
    let diagnostic = shown.lines().skip_while(|line| !line.starts_with(".woodpecker.yml:")).take(2).collect::<Vec<_>>();
    assert!(diagnostic[0].starts_with(".woodpecker.yml:4:18: error[unknown-dependency]: step `build` depends on `tset`"), "{shown}");
    assert_eq!(diagnostic[1], "  hint: did you mean `test`?", "{shown}");

    // A YAML mistake gets its position too.
    let yaml_error = Remote::with_files(&[(".woodpecker.yml", "steps:\n  build:\n    image: IMAGE\n    commands: [echo\n")]);
    server.ok(&["repo", "add", "acme/yaml", "--clone-url", &yaml_error.url()]);
    let run = server.gantry(&["build", "run", "acme/yaml"]);
    assert_eq!(run.status.code(), Some(1), "{}", detail(&run));
    let shown = server.ok(&["build", "show", "acme/yaml", "1"]);
    let diagnostic = shown.lines().find(|line| line.starts_with(".woodpecker.yml:")).unwrap_or_else(|| panic!("no diagnostic: {shown}"));
    let position: Vec<&str> = diagnostic.splitn(4, ':').collect();
    assert!(position[1].parse::<u32>().is_ok() && position[2].parse::<u32>().is_ok(), "{diagnostic}");
    assert!(position[3].starts_with(" error["), "{diagnostic}");
    let json = server.json(&["build", "show", "acme/yaml", "1"]);
    assert_eq!(json["diagnostics"][0]["file"], ".woodpecker.yml");
}

#[test]
fn errors_say_what_is_wrong_and_exit_1_or_2() {
    let server = Server::start();
    let unknown = server.gantry(&["build", "ls", "acme/nope"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", detail(&unknown));
    assert!(stderr(&unknown).contains("error: repository acme/nope does not exist or you cannot see it"), "{}", detail(&unknown));

    let no_server = client_command(&["repo", "ls"]).env("GANTRY_TOKEN", &server.token).output().unwrap();
    assert_eq!(no_server.status.code(), Some(2), "{}", detail(&no_server));
    assert!(stderr(&no_server).contains("no server given: set GANTRY_SERVER"), "{}", detail(&no_server));
    assert!(!stderr(&no_server).contains(&server.token));

    let bad_token =
        client_command(&["repo", "ls"]).env("GANTRY_SERVER", &server.url).env("GANTRY_TOKEN", "not-the-token").output().unwrap();
    assert_eq!(bad_token.status.code(), Some(1), "{}", detail(&bad_token));
    assert!(stderr(&bad_token).contains("error: the token is not valid"), "{}", detail(&bad_token));
    assert!(stderr(&bad_token).contains("GANTRY_TOKEN"), "{}", detail(&bad_token));
    assert!(!stderr(&bad_token).contains("not-the-token"), "{}", detail(&bad_token));

    // Flags work as well as the variables.
    let flags = client_command(&["repo", "ls", "--server", &server.url, "--token", &server.token]).output().unwrap();
    assert_eq!(flags.status.code(), Some(0), "{}", detail(&flags));

    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = client_command(&["repo", "ls"]).env("GANTRY_SERVER", format!("http://127.0.0.1:{closed_port}")).output().unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "{}", detail(&unreachable));
    assert!(stderr(&unreachable).contains("cannot reach the server at http://127.0.0.1:"), "{}", detail(&unreachable));
    let not_a_url = client_command(&["repo", "ls"]).env("GANTRY_SERVER", "127.0.0.1:8000").output().unwrap();
    assert_eq!(not_a_url.status.code(), Some(2), "{}", detail(&not_a_url));

    // --help names the variables without showing the token's value.
    let help = client_command(&["build", "--help"]).env("GANTRY_TOKEN", "token-value-in-env").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    assert!(text.contains("GANTRY_SERVER") && text.contains("GANTRY_TOKEN"), "{text}");
    assert!(!text.contains("token-value-in-env"), "{text}");
}

/// A stand-in server for one build with one running step. The first log connection sends two
/// lines and breaks off mid-stream; the second must resume with `Last-Event-ID: 1`, and gets the
/// second line again (which must not be printed twice), the third, and the end.
#[test]
fn following_resumes_after_a_dropped_connection_without_losing_or_repeating_lines() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stand_in = thread::spawn(move || {
        let mut stream_requests = Vec::new();
        let mut build_reads = 0;
        for connection in listener.incoming() {
            let mut connection = connection.unwrap();
            let (path, headers) = read_request(&connection);
            if path == "/api/v1/repos/acme/shop/builds/1" {
                build_reads += 1;
                let state = if stream_requests.len() < 2 { "running" } else { "success" };
                let body = stand_in_build(state).to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                connection.write_all(answer.as_bytes()).unwrap();
            } else if path == "/api/v1/repos/acme/shop/builds/1/steps/7/log/stream" {
                let last_event_id = headers.iter().find(|(name, _)| name == "last-event-id").map(|(_, value)| value.clone());
                stream_requests.push(last_event_id.clone());
                connection
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                    )
                    .unwrap();
                let line = |seq: u64, text: &str| {
                    format!("event: line\nid: {seq}\ndata: {{\"seq\":{seq},\"at_ms\":0,\"stream\":\"stdout\",\"text\":\"{text}\"}}\n\n")
                };
                if last_event_id.is_none() {
                    // Two lines, the second split across chunks, then a chunk cut short.
                    let events = format!(": keep-alive\n\n{}{}", line(0, "one"), line(1, "two"));
                    let (first, second) = events.split_at(events.len() - 10);
                    write_chunk(&mut connection, first);
                    write_chunk(&mut connection, second);
                    connection.write_all(b"40\r\nevent: line\nid: 2\n").unwrap();
                } else {
                    write_chunk(&mut connection, &format!("{}{}", line(1, "two"), line(2, "three")));
                    write_chunk(&mut connection, "event: end\ndata: {}\n\n");
                    connection.write_all(b"0\r\n\r\n").unwrap();
                }
            } else if path == "/stop" {
                break;
            } else {
                connection.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            }
        }
        (stream_requests, build_reads)
    });

    let output =
        client_command(&["build", "logs", "acme/shop", "1", "-f"]).env("GANTRY_SERVER", &url).env("GANTRY_TOKEN", "t").output().unwrap();
    let _ = http_get(url.rsplit(':').next().unwrap().parse().unwrap(), "/stop");
    let (stream_requests, build_reads) = stand_in.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "the build succeeded: {}", detail(&output));
    assert_eq!(stdout(&output), "==> build/test (running)\none\ntwo\nthree\n", "{}", detail(&output));
    assert!(stderr(&output).contains("reconnecting to resume after line 2"), "{}", detail(&output));
    assert_eq!(stream_requests, [None, Some("1".to_owned())]);
    assert!(build_reads >= 2, "the build is read again to see it finish");
}

fn stand_in_build(state: &str) -> Value {
    let step_state = if state == "success" { "success" } else { "running" };
    serde_json::json!({
        "id": 1, "repo": "acme/shop", "number": 1, "event": "push", "state": state, "reference": "refs/heads/main",
        "branch": "main", "commit": "0123456789abcdef", "message": "m", "author": "Ada", "trigger": "webhook", "created": 0,
        "workflows": [{ "id": 3, "name": "build", "state": state, "steps": [
            { "id": 7, "name": "test", "state": step_state, "log_lines": 3 }
        ]}]
    })
}

/// The request line's path and the headers (names lowercased) of one HTTP/1.1 request.
fn read_request(connection: &TcpStream) -> (String, Vec<(String, String)>) {
    let mut reader = BufReader::new(connection);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (path, headers)
}

fn write_chunk(connection: &mut TcpStream, text: &str) {
    connection.write_all(format!("{:x}\r\n{text}\r\n", text.len()).as_bytes()).unwrap();
    connection.flush().unwrap();
    thread::sleep(Duration::from_millis(50));
}

/// A person gets going without a browser: an admin adds them (the password from a variable,
/// never printed), they sign in with `gantry login`, which prints an API token once and leaves
/// no session open, and that token is theirs; a wrong password gets a plain refusal.
#[test]
fn a_user_added_by_an_admin_and_given_a_role_signs_in_and_gets_an_api_token() {
    let server = Server::start();
    let password = "correct horse battery staple";
    let added =
        server.command(&["user", "add", "ada", "--password-from-env", "ADA_PASSWORD"]).env("ADA_PASSWORD", password).output().unwrap();
    assert_eq!(added.status.code(), Some(0), "{}", detail(&added));
    assert!(stdout(&added).contains("user ada created") && !stdout(&added).contains(password), "{}", detail(&added));
    let users = server.ok(&["user", "ls"]);
    assert!(users.lines().any(|line| line.starts_with("ada ") && line.contains(" no ")), "{users}");
    let remote =
        Remote::with_files(&[(".woodpecker.yml", "steps:\n  test:\n    image: gantry-test/busybox:latest\n    commands: [true]\n")]);
    server.add_repo(&remote);
    let granted = server.ok(&["repo", "grant", "acme/shop", "ada", "--role", "write"]);
    assert!(granted.contains("ada has the write role on acme/shop"), "{granted}");
    let members = server.json(&["repo", "members", "acme/shop"]);
    assert_eq!(members, serde_json::json!([{ "login": "ada", "role": "write" }]));

    let mut login = client_command(&["login", "ada", "--name", "laptop", "--json"]);
    login.env("GANTRY_SERVER", &server.url).env_remove("GANTRY_TOKEN");
    let signed_in =
        login.stdin(Stdio::null()).env("GANTRY_PASSWORD", password).args(["--password-from-env", "GANTRY_PASSWORD"]).output().unwrap();
    assert_eq!(signed_in.status.code(), Some(0), "{}", detail(&signed_in));
    let created: Value = serde_json::from_str(&stdout(&signed_in)).unwrap();
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["name"], "laptop");
    let mut whoami = client_command(&["repo", "ls", "--json"]);
    whoami.env("GANTRY_SERVER", &server.url).env("GANTRY_TOKEN", token);
    let listed = whoami.output().unwrap();
    assert_eq!(listed.status.code(), Some(0), "the token works: {}", detail(&listed));
    assert!(stdout(&listed).contains("acme/shop"), "ada sees the repository she was given a role on: {}", detail(&listed));
    // The sign-in's session was closed: only the API token is left among ada's tokens.
    let tokens: Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let answer = reqwest::Client::new().get(format!("{}/api/v1/user/tokens", server.url)).bearer_auth(token).send().await.unwrap();
        answer.json().await.unwrap()
    });
    assert_eq!(tokens.as_array().map(|tokens| tokens.iter().filter(|token| token["kind"] == "session").count()), Some(0), "{tokens}");

    let mut wrong = client_command(&["login", "ada", "--password-from-env", "GANTRY_PASSWORD"]);
    wrong.env("GANTRY_SERVER", &server.url).env_remove("GANTRY_TOKEN").env("GANTRY_PASSWORD", "not the password");
    let refused = wrong.stdin(Stdio::null()).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", detail(&refused));
    assert!(stderr(&refused).contains("wrong login or password"), "{}", detail(&refused));
    let revoked = server.ok(&["repo", "revoke", "acme/shop", "ada"]);
    assert!(revoked.contains("ada no longer has a role on acme/shop"), "{revoked}");
    assert_eq!(server.json(&["repo", "members", "acme/shop"]), serde_json::json!([]));
}
