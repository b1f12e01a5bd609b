//! The local backend as the runtime drives it: steps as host processes in a workflow directory.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backend_local::{LocalBackend, LocalWorkflow, RUN_OWNER_FILE};
use futures_util::StreamExt;
use pipeline::plan::StepKind;
use runtime::backend::OutputStreamOf;
use runtime::{Backend, BackendError, OutputStream, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource};

const WORKSPACE_BASE: &str = "/woodpecker";
const WORKSPACE_PATH: &str = "src/example.com/repo";
const REPOSITORY: &str = "/woodpecker/src/example.com/repo";
/// Long enough that a loaded machine reaps a step killed by SIGTERM well within it.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A backend whose workflow directories go in a folder of the test's own, so that tests (and
/// their sweeps) never see each other's.
struct Fixture {
    root: tempfile::TempDir,
    backend: LocalBackend,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new().with_root(root.path()).with_stop_grace(STOP_GRACE);
        Fixture { root, backend }
    }

    async fn workflow(&self, source: WorkspaceSource) -> LocalWorkflow {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RunInfo { id: format!("run{}", RUNS.fetch_add(1, Ordering::Relaxed)) };
        let workflow = self.backend.setup(&run, &workflow_setup("build")).await.unwrap();
        self.backend.populate_workspace(&workflow, &source).await.unwrap();
        workflow
    }

    /// Prepares, starts and waits for a step, reading its output while it runs (as the runtime
    /// does), then removes it.
    async fn run(&self, workflow: &LocalWorkflow, request: StepRequest) -> Finished {
        let step = self.backend.prepare(workflow, &request).await.unwrap();
        let output = self.backend.start(&step).await.unwrap();
        let ((stdout, stderr), exit_code) = tokio::join!(collect(output), self.backend.wait(&step));
        self.backend.remove(step).await;
        Finished { stdout, stderr, exit_code: exit_code.unwrap() }
    }

    async fn refusal(&self, request: StepRequest) -> String {
        let workflow = self.workflow(WorkspaceSource::Empty).await;
        let refusal = match self.backend.prepare(&workflow, &request).await {
            Ok(_) => panic!("step `{}` was accepted", request.name),
            Err(error @ BackendError::Unsupported { .. }) => error.to_string(),
            Err(other) => panic!("step `{}` failed with {other:?}, not Unsupported", request.name),
        };
        self.backend.teardown(workflow).await;
        refusal
    }
}

fn workflow_setup(key: &str) -> WorkflowSetup {
    WorkflowSetup {
        key: key.to_owned(),
        name: key.to_owned(),
        workspace_base: WORKSPACE_BASE.to_owned(),
        workspace_path: WORKSPACE_PATH.to_owned(),
        volumes: Vec::new(),
    }
}

/// A commands step the way the runtime hands it over: the script run by `/bin/sh -c`.
fn commands_step(name: &str, script: &str) -> StepRequest {
    StepRequest::shell_script(name, Some("alpine:3.20"), script, REPOSITORY)
}

fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

#[derive(Debug)]
struct Finished {
    stdout: String,
    stderr: String,
    exit_code: i64,
}

async fn collect(mut output: OutputStreamOf) -> (String, String) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            OutputStream::Stdout => stdout.extend_from_slice(&chunk.bytes),
            OutputStream::Stderr => stderr.extend_from_slice(&chunk.bytes),
        }
    }
    (String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

/// Reads standard output until it holds `count` lines.
async fn read_lines(output: &mut OutputStreamOf, count: usize) -> Vec<String> {
    let mut text = String::new();
    while text.lines().count() < count {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), output.next()).await.expect("output in time").expect("more output").unwrap();
        if chunk.stream == OutputStream::Stdout {
            text.push_str(std::str::from_utf8(&chunk.bytes).unwrap());
        }
    }
    text.lines().map(str::to_owned).collect()
}

/// Whether `pid` still runs, by `kill -0`. A killed process whose parent is gone stays a zombie
/// until init reaps it, and some container inits never do; a zombie runs nothing, so it counts
/// as gone.
fn process_is_running(pid: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("kill -0 {pid}")]).stderr(Stdio::null()).status().unwrap().success();
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, fields)| fields.trim_start().starts_with('Z')));
    found && !zombie
}

/// Polls until none of `pids` runs; a signal is delivered at once, but dying takes a moment.
async fn assert_all_gone(pids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|pid| process_is_running(pid)) {
        assert!(Instant::now() < deadline, "still running: {:?}", pids.iter().filter(|pid| process_is_running(pid)).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A git repository in a temporary folder, with the given files committed.
fn git_repository(committed: &[(&str, &str)]) -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    git(repository.path(), &["init", "--quiet", "--initial-branch=main"]);
    for (path, text) in committed {
        write(repository.path(), path, text);
    }
    git(repository.path(), &["add", "--all"]);
    git(repository.path(), &["commit", "--quiet", "--message", "first"]);
    repository
}

fn git(directory: &Path, arguments: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args(["-c", "user.name=Gantry Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
        .args(arguments)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn write(directory: &Path, path: &str, text: &str) {
    let path = directory.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Every file under `directory`, relative, `.git` left out.
fn files_under(directory: &Path) -> Vec<String> {
    fn walk(base: &Path, directory: &Path, files: &mut Vec<String>) {
        for entry in fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if relative == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, files);
            } else {
                files.push(relative);
            }
        }
    }
    let mut files = Vec::new();
    walk(directory, directory, &mut files);
    files.sort();
    files
}

#[tokio::test]
async fn a_step_prints_in_order_and_reports_its_exit_code() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let cases = [
        ("echo one; echo two; echo three", "one\ntwo\nthree\n", 0),
        ("echo before; exit 3", "before\n", 3),
        ("false", "", 1),
        // Killed by a signal: 128 + the signal's number, as a shell reports it.
        ("kill -KILL $$", "", 137),
        ("kill -TERM $$", "", 143),
    ];
    for (script, stdout, exit_code) in cases {
        let finished = fixture.run(&workflow, commands_step("test", script)).await;
        assert_eq!((finished.stdout.as_str(), finished.exit_code), (stdout, exit_code), "{script}");
    }
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn ten_thousand_fast_lines_all_arrive_in_order() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let script = "i=0; while [ $i -lt 10000 ]; do echo \"line $i\"; i=$((i+1)); done";
    let finished = fixture.run(&workflow, commands_step("chatty", script)).await;
    let expected: String = (0..10_000).map(|number| format!("line {number}\n")).collect();
    assert_eq!(finished.stdout.lines().count(), 10_000);
    assert!(finished.stdout == expected, "lines lost or out of order");
    assert_eq!(finished.exit_code, 0);
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn output_written_before_anyone_reads_is_kept() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let step = fixture.backend.prepare(&workflow, &commands_step("quick", "printf 'first\\nsecond\\n'; echo oops >&2")).await.unwrap();
    let output = fixture.backend.start(&step).await.unwrap();
    // The process has printed and exited before the stream is polled at all.
    assert_eq!(fixture.backend.wait(&step).await.unwrap(), 0);
    assert_eq!(collect(output).await, ("first\nsecond\n".to_owned(), "oops\n".to_owned()));
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let finished = fixture.run(&workflow, commands_step("both", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 2")).await;
    assert_eq!(finished.stdout, "out1\nout2\n");
    assert_eq!(finished.stderr, "err1\nerr2\n");
    assert_eq!(finished.exit_code, 2);
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn the_environment_is_exactly_what_was_given() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let given = [("PATH", "/usr/bin:/bin"), ("HOME", "/home/ci"), ("GREETING", "hello world"), ("EMPTY", ""), ("QUOTED", "it's \"here\"")];
    // `env` itself, not through a shell: `sh` would add variables of its own (`PWD`).
    let mut request = commands_step("env", "");
    request.entrypoint = Some(vec!["/usr/bin/env".to_owned()]);
    request.command = Vec::new();
    request.environment = environment(&given);
    let finished = fixture.run(&workflow, request).await;
    let mut printed: Vec<&str> = finished.stdout.lines().collect();
    printed.sort();
    let mut expected: Vec<String> = given.iter().map(|(name, value)| format!("{name}={value}")).collect();
    expected.sort();
    assert_eq!(printed, expected, "nothing of gantry's own environment leaks in");
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn home_and_path_are_filled_in_when_absent_and_workspace_variables_name_host_paths() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let mut request = commands_step(
        "env",
        "printf '%s\\n' \"$PATH\" \"$HOME\" \"$CI_WORKSPACE\" \"$CI_WORKSPACE_BASE\" \"$DRONE_WORKSPACE\" \"$DRONE_WORKSPACE_BASE\" \"$CI_REPO\"; test -d \"$HOME\"",
    );
    request.environment = environment(&[
        ("CI_WORKSPACE", REPOSITORY),
        ("CI_WORKSPACE_BASE", WORKSPACE_BASE),
        ("DRONE_WORKSPACE", REPOSITORY),
        ("DRONE_WORKSPACE_BASE", WORKSPACE_BASE),
        ("CI_REPO", "example.com/repo"),
    ]);
    let finished = fixture.run(&workflow, request).await;
    let repository = workflow.repository().display().to_string();
    let base = workflow.workspace_base().display().to_string();
    let home = workflow.directory().join("home").display().to_string();
    let host_path = std::env::var("PATH").unwrap();
    let expected = [host_path.as_str(), &home, &repository, &base, &repository, &base, "example.com/repo"];
    assert_eq!(finished.stdout.lines().collect::<Vec<_>>(), expected);
    assert_eq!(finished.exit_code, 0, "HOME is a directory that exists");
    assert_eq!(workflow.repository(), workflow.workspace_base().join(WORKSPACE_PATH));
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn the_hosts_rust_toolchain_stays_usable_with_the_fresh_home() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    // `cargo` on PATH is usually rustup's proxy, which looks for toolchains under HOME.
    let finished = fixture.run(&workflow, commands_step("rust", "cargo --version")).await;
    assert_eq!(finished.exit_code, 0, "{}", finished.stderr);
    assert!(finished.stdout.starts_with("cargo "), "{}", finished.stdout);
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn working_dirs_map_under_the_workflow_directory_and_are_created() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let directory = workflow.directory().to_owned();
    let cases: [(&str, PathBuf); 4] = [
        (REPOSITORY, workflow.repository()),
        ("/woodpecker/src/example.com/repo/web/app", workflow.repository().join("web/app")),
        (WORKSPACE_BASE, workflow.workspace_base()),
        // A container path outside the workspace: under `root/`, never the host's own `/opt`.
        ("/opt/tools", directory.join("root/opt/tools")),
    ];
    for (working_dir, expected) in cases {
        let mut request = commands_step("where", "pwd -P");
        request.working_dir = working_dir.to_owned();
        let finished = fixture.run(&workflow, request).await;
        assert_eq!(finished.stdout.trim_end(), expected.canonicalize().unwrap().display().to_string(), "{working_dir}");
        assert_eq!(workflow.host_path(working_dir), expected);
    }
    assert!(directory.starts_with(fixture.root.path()));
    assert!(directory.file_name().unwrap().to_string_lossy().starts_with("gantry-run"));
    assert!(directory.file_name().unwrap().to_string_lossy().ends_with("-build"));
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn steps_of_a_workflow_share_the_workspace_and_workflows_do_not() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let other_workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let built = fixture.run(&workflow, commands_step("build", "mkdir -p out && echo artifact > out/app")).await;
    assert_eq!(built.exit_code, 0);
    let mut request = commands_step("test", "cat app");
    request.working_dir = format!("{REPOSITORY}/out");
    assert_eq!(fixture.run(&workflow, request).await.stdout, "artifact\n");
    assert_eq!(fixture.run(&other_workflow, commands_step("test", "test -e out/app")).await.exit_code, 1);
    fixture.backend.teardown(workflow).await;
    fixture.backend.teardown(other_workflow).await;
}

#[tokio::test]
async fn a_working_tree_is_copied_with_local_changes_and_without_ignored_files() {
    let repository = git_repository(&[
        (".gitignore", "*.log\ntarget/\n"),
        ("README.md", "committed\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("deleted.txt", "gone soon\n"),
    ]);
    // A tracked file that matches an ignore rule is still part of the commit.
    write(repository.path(), "forced.log", "tracked although ignored\n");
    git(repository.path(), &["add", "--force", "forced.log"]);
    git(repository.path(), &["commit", "--quiet", "--message", "forced"]);
    write(repository.path(), "README.md", "changed locally\n");
    write(repository.path(), "notes.txt", "untracked\n");
    write(repository.path(), "debug.log", "ignored\n");
    write(repository.path(), "target/debug/app", "ignored\n");
    fs::remove_file(repository.path().join("deleted.txt")).unwrap();
    std::os::unix::fs::symlink("src/main.rs", repository.path().join("link.rs")).unwrap();

    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::WorkingTree(repository.path().to_owned())).await;
    let copy = workflow.repository();
    assert_eq!(files_under(&copy), [".gitignore", "README.md", "forced.log", "link.rs", "notes.txt", "src/main.rs"]);
    assert_eq!(fs::read_to_string(copy.join("README.md")).unwrap(), "changed locally\n");
    assert_eq!(fs::read_link(copy.join("link.rs")).unwrap(), Path::new("src/main.rs"));
    // `.git` comes along, so steps can ask git about the commit.
    let head = git(repository.path(), &["rev-parse", "HEAD"]);
    assert_eq!(fixture.run(&workflow, commands_step("git", "git rev-parse HEAD")).await.stdout.trim(), head);
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn git_head_is_a_clean_checkout_of_the_last_commit() {
    let repository = git_repository(&[(".gitignore", "*.log\n"), ("README.md", "committed\n"), ("src/main.rs", "fn main() {}\n")]);
    git(repository.path(), &["remote", "add", "origin", "https://example.com/repo.git"]);
    write(repository.path(), "README.md", "changed locally\n");
    write(repository.path(), "notes.txt", "untracked\n");
    write(repository.path(), "debug.log", "ignored\n");

    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::GitHead(repository.path().to_owned())).await;
    let checkout = workflow.repository();
    assert_eq!(files_under(&checkout), [".gitignore", "README.md", "src/main.rs"]);
    assert_eq!(fs::read_to_string(checkout.join("README.md")).unwrap(), "committed\n");
    let head = git(repository.path(), &["rev-parse", "HEAD"]);
    let finished =
        fixture.run(&workflow, commands_step("git", "git rev-parse HEAD; git remote get-url origin; git status --porcelain")).await;
    assert_eq!(finished.stdout, format!("{head}\nhttps://example.com/repo.git\n"), "same commit, same remote, nothing changed");
    fixture.backend.teardown(workflow).await;

    // From a folder inside the repository: still the whole repository.
    let from_inside = fixture.workflow(WorkspaceSource::GitHead(repository.path().join("src"))).await;
    assert_eq!(files_under(&from_inside.repository()), [".gitignore", "README.md", "src/main.rs"]);
    fixture.backend.teardown(from_inside).await;
}

#[tokio::test]
async fn git_head_of_a_folder_that_is_not_a_repository_is_an_error_naming_it() {
    let folder = tempfile::tempdir().unwrap();
    let fixture = Fixture::new();
    let workflow = fixture.backend.setup(&RunInfo { id: "nogit".to_owned() }, &workflow_setup("build")).await.unwrap();
    let error = fixture.backend.populate_workspace(&workflow, &WorkspaceSource::GitHead(folder.path().to_owned())).await.unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("populate the workspace failed: "), "{message}");
    assert!(message.contains(&format!("`{}` is not in a git repository", folder.path().display())), "{message}");
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn a_folder_that_is_not_a_repository_is_copied_whole() {
    let folder = tempfile::tempdir().unwrap();
    write(folder.path(), "a.txt", "a\n");
    write(folder.path(), "build/out.log", "everything\n");
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::WorkingTree(folder.path().to_owned())).await;
    assert_eq!(files_under(&workflow.repository()), ["a.txt", "build/out.log"]);
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn an_empty_workspace_is_just_the_folder() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    assert!(workflow.repository().is_dir());
    assert!(files_under(&workflow.workspace_base()).is_empty());
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn stop_kills_the_step_and_everything_it_started() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let step = fixture
        .backend
        .prepare(&workflow, &commands_step("server", "sleep 100 & echo $!; sleep 100 & echo $!; echo $$; wait"))
        .await
        .unwrap();
    let mut output = fixture.backend.start(&step).await.unwrap();
    let pids = read_lines(&mut output, 3).await;
    assert!(pids.iter().all(|pid| process_is_running(pid)));

    let started = Instant::now();
    fixture.backend.stop(&step).await;
    assert!(started.elapsed() < STOP_GRACE, "SIGTERM was enough, no need to wait for the grace");
    assert_eq!(fixture.backend.wait(&step).await.unwrap(), 143, "the shell died of SIGTERM");
    assert_all_gone(&pids).await;
    fixture.backend.remove(step).await;
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn stop_sends_sigkill_when_sigterm_is_ignored() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    // Ignored signals stay ignored in children, so the background `sleep` ignores SIGTERM too.
    let script = "trap '' TERM; sleep 100 & echo $!; echo $$; while :; do sleep 0.05; done";
    let step = fixture.backend.prepare(&workflow, &commands_step("stubborn", script)).await.unwrap();
    let mut output = fixture.backend.start(&step).await.unwrap();
    let pids = read_lines(&mut output, 2).await;

    let started = Instant::now();
    fixture.backend.stop(&step).await;
    assert!(started.elapsed() >= STOP_GRACE, "SIGKILL only after the grace");
    assert_eq!(fixture.backend.wait(&step).await.unwrap(), 137);
    assert_all_gone(&pids).await;
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn a_step_that_exits_takes_its_background_processes_with_it() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    // As in a container, whose other processes die with its main one. The `sleep` also holds
    // the output pipes open: the output must still end when the step does.
    let started = Instant::now();
    let finished = fixture.run(&workflow, commands_step("leaky", "sleep 100 & echo $!")).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(finished.exit_code, 0);
    assert_all_gone(&[finished.stdout.trim().to_owned()]).await;
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn teardown_kills_running_steps_and_removes_the_directory() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let directory = workflow.directory().to_owned();
    // Read-only folders, as Go's module cache leaves them, must not stop the removal.
    let made = fixture.run(&workflow, commands_step("cache", "mkdir -p cache/mod && touch cache/mod/file && chmod -R a-w cache")).await;
    assert_eq!(made.exit_code, 0);
    let step = fixture.backend.prepare(&workflow, &commands_step("detached", "sleep 100 & echo $!; echo $$; wait")).await.unwrap();
    let mut output = fixture.backend.start(&step).await.unwrap();
    let pids = read_lines(&mut output, 2).await;
    assert!(directory.join(RUN_OWNER_FILE).is_file());

    fixture.backend.teardown(workflow).await;
    assert!(!directory.exists(), "the workflow directory is gone");
    assert_all_gone(&pids).await;
    assert_eq!(fixture.backend.wait(&step).await.unwrap(), 143);
    assert!(collect(output).await.0.is_empty(), "the stream ends");
}

#[tokio::test]
async fn services_plugins_and_container_options_are_refused_by_name() {
    let fixture = Fixture::new();
    let mut service = commands_step("postgres", "postgres");
    service.kind = StepKind::Service;
    assert_eq!(fixture.refusal(service).await, "services (`postgres`) is not supported by this backend");

    let mut plugin = commands_step("publish", "");
    plugin.kind = StepKind::Plugin;
    plugin.entrypoint = None;
    plugin.command = Vec::new();
    assert!(fixture.refusal(plugin).await.contains("plugins need a container backend"));

    let mut no_command = commands_step("image-default", "");
    no_command.entrypoint = None;
    no_command.command = Vec::new();
    assert!(fixture.refusal(no_command).await.contains("needs a container backend"));

    type Change = fn(&mut StepRequest);
    let options: [(Change, &str); 9] = [
        (
            |step| step.container.volumes = vec!["/var/run/docker.sock:/var/run/docker.sock".to_owned()],
            "volumes (`/var/run/docker.sock:/var/run/docker.sock`",
        ),
        (|step| step.container.privileged = true, "privileged mode"),
        (|step| step.container.devices = vec!["/dev/fuse".to_owned()], "devices (`/dev/fuse`"),
        (|step| step.container.tmpfs = vec!["/scratch".to_owned()], "tmpfs mounts (`/scratch`"),
        (|step| step.container.network_mode = Some("host".to_owned()), "network_mode `host`"),
        (|step| step.container.dns = vec!["1.1.1.1".to_owned()], "dns (`1.1.1.1`"),
        (|step| step.container.dns_search = vec!["corp".to_owned()], "dns_search (`corp`"),
        (|step| step.container.extra_hosts = vec!["db:10.0.0.2".to_owned()], "extra_hosts (`db:10.0.0.2`"),
        (|step| step.container.user = Some("1000".to_owned()), "running as user `1000`"),
    ];
    for (change, named) in options {
        let mut request = commands_step("build", "make");
        change(&mut request);
        let refusal = fixture.refusal(request).await;
        assert!(refusal.starts_with(named) && refusal.contains("step `build`"), "{refusal}");
    }
}

#[tokio::test]
async fn probe_runs_a_command_in_the_step_directory() {
    let fixture = Fixture::new();
    let workflow = fixture.workflow(WorkspaceSource::Empty).await;
    let step = fixture.backend.prepare(&workflow, &commands_step("service-like", "sleep 100")).await.unwrap();
    let _output = fixture.backend.start(&step).await.unwrap();
    let ready = ["test".to_owned(), "-f".to_owned(), "ready".to_owned()];
    assert!(!fixture.backend.probe(&step, &ready).await.unwrap());
    fs::write(workflow.repository().join("ready"), "").unwrap();
    assert!(fixture.backend.probe(&step, &ready).await.unwrap());
    assert!(!fixture.backend.probe(&step, &["no-such-program-anywhere".to_owned()]).await.unwrap(), "a missing program fails the check");
    fixture.backend.stop(&step).await;
    fixture.backend.teardown(workflow).await;
}

#[tokio::test]
async fn sweep_removes_the_directories_of_dead_runs_and_keeps_live_ones() {
    let fixture = Fixture::new();
    let root = fixture.root.path();
    let live = fixture.workflow(WorkspaceSource::Empty).await;

    // A run whose gantry process has exited: a pid that is no longer in use.
    let mut exited = Command::new("true").spawn().unwrap();
    let dead_pid = exited.id();
    exited.wait().unwrap();
    write(root, &format!("gantry-dead-build/{RUN_OWNER_FILE}"), &format!("pid={dead_pid}\n"));
    write(root, "gantry-dead-build/workspace/file", "left behind\n");
    // Our own pid, but a start time that is not ours: the pid was reused by another process.
    write(root, &format!("gantry-reused-build/{RUN_OWNER_FILE}"), &format!("pid={}\nstarted=1\n", std::process::id()));
    // No owner file: maybe being created right now, maybe not ours; never touched.
    write(root, "gantry-unknown/file", "keep\n");
    write(root, "other-tool/file", "keep\n");

    fixture.backend.sweep().await.unwrap();
    let mut remaining: Vec<String> =
        fs::read_dir(root).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    remaining.sort();
    let live_name = live.directory().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(remaining, [live_name.as_str(), "gantry-unknown", "other-tool"]);
    fixture.backend.teardown(live).await;
}

#[tokio::test]
async fn setup_creates_the_workflow_directory_with_its_owner() {
    let fixture = Fixture::new();
    let run = RunInfo { id: "20260101-abc".to_owned() };
    let workflow = fixture.backend.setup(&run, &workflow_setup("test-linux")).await.unwrap();
    assert_eq!(workflow.directory(), fixture.root.path().join("gantry-20260101-abc-test-linux"));
    let owner = fs::read_to_string(workflow.directory().join(RUN_OWNER_FILE)).unwrap();
    assert!(owner.starts_with(&format!("pid={}\n", std::process::id())), "{owner}");
    assert!(workflow.workspace_base().is_dir());
    let again = fixture.backend.setup(&run, &workflow_setup("test-linux")).await;
    assert!(again.is_err(), "a workflow directory is never shared");
    assert_eq!(fixture.backend.name(), "local");
    fixture.backend.teardown(workflow).await;
}
