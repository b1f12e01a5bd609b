//! The harness: an agent on the real Docker engine against the fake server, jobs made from
//! pipeline text, and the check that nothing the agent made is left behind.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use agent::{AgentConfig, AgentError};
use backend_docker::{LABEL_PID, ProcessIdentity};
use pipeline::{CompileOptions, Context, Plan, SourceFile};
use proto::agent::{Job, JobRepository};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::server::SECRET;

/// Built by `scripts/docker-up.sh` with `docker import`: never pulled.
pub(crate) const IMAGE: &str = "gantry-test/busybox:latest";

/// Log output of the agent with `RUST_LOG=agent=debug`.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
}

/// The plan of a Woodpecker pipeline (`IMAGE` stands for the test image).
pub(crate) fn plan(pipeline: &str) -> Plan {
    plan_with(pipeline, Context::default())
}

pub(crate) fn plan_with(pipeline: &str, context: Context) -> Plan {
    let file = SourceFile::new(".woodpecker.yml", pipeline.replace("IMAGE", IMAGE));
    let plan = pipeline::plan_files(&[file], &context, CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    plan
}

pub(crate) fn job(id: i64, plan: Plan) -> Job {
    Job {
        id,
        build_id: id,
        build_number: id,
        repo: JobRepository {
            id: 1,
            full_name: "test/repository".into(),
            clone_url: "file:///nonexistent".into(),
            clone_credentials: None,
            allow_local: true,
        },
        commit: String::new(),
        reference: "refs/heads/main".into(),
        plan,
        secrets: Default::default(),
        trust: Default::default(),
        timeout_seconds: 300,
        registries: Vec::new(),
    }
}

/// An agent running in this process. Its containers carry the pid of a `sleep` process of its
/// own, so tests running at once tell their leftovers apart (and none sweeps another's).
pub(crate) struct TestAgent {
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), AgentError>>>,
    owner: Child,
    work_dir: tempfile::TempDir,
}

impl TestAgent {
    pub(crate) fn start(server: &str) -> TestAgent {
        TestAgent::start_with(server, |_| {})
    }

    pub(crate) fn start_with(server: &str, configure: impl FnOnce(&mut AgentConfig)) -> TestAgent {
        init_tracing();
        let owner = Command::new("sleep").arg("3600").spawn().expect("sleep runs");
        let work_dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new(server, SECRET);
        config.name = "test-agent".into();
        config.work_dir = work_dir.path().join("work");
        config.docker.owner = ProcessIdentity::of_process(owner.id());
        config.shutdown_grace = Duration::from_secs(3);
        configure(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(agent::run(config, shutdown.clone()));
        TestAgent { shutdown, task: Some(task), owner, work_dir }
    }

    /// Shuts the agent down and checks that it left nothing: no containers, networks or volumes
    /// of its runs, no clone folders.
    pub(crate) async fn stop(mut self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), task).await.expect("the agent stops within 30 s").unwrap();
        assert_nothing_left(self.owner.id());
        let work = self.work_dir.path().join("work");
        if work.exists() {
            // The agent's kept token stays; nothing else may.
            let left: Vec<_> = std::fs::read_dir(&work)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .filter(|name| !name.to_string_lossy().ends_with(".token"))
                .collect();
            assert!(left.is_empty(), "clone folders left in {}: {left:?}", work.display());
        }
        result
    }

    /// The process the agent's containers name as their owner.
    pub(crate) fn owner_pid(&self) -> u32 {
        self.owner.id()
    }

    /// Ends the agent as `kill -9` would: its task is dropped mid-job, nothing is torn down,
    /// and the owner process dies. Returns the owner's pid.
    pub(crate) async fn kill(mut self) -> u32 {
        let task = self.task.take().unwrap();
        task.abort();
        let _ = task.await;
        let pid = self.owner.id();
        self.owner.kill().unwrap();
        self.owner.wait().unwrap();
        pid
    }

    /// Waits for `run` to return by itself (it failed).
    pub(crate) async fn ended(mut self) -> Result<(), AgentError> {
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("the agent ends within 30 s").unwrap()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = self.owner.kill();
        let _ = self.owner.wait();
    }
}

/// Containers whose owner is `pid`.
pub(crate) fn containers_of(pid: u32) -> Vec<String> {
    let filter = format!("label={LABEL_PID}={pid}");
    let output = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect()
}

/// Nothing on the engine carries `pid` as its owner.
pub(crate) fn assert_nothing_left(pid: u32) {
    let filter = format!("label={LABEL_PID}={pid}");
    for kind in [vec!["ps", "-aq"], vec!["network", "ls", "-q"], vec!["volume", "ls", "-q"]] {
        let mut args = kind.clone();
        args.extend(["--filter", &filter]);
        let output = Command::new("docker").args(&args).output().unwrap();
        let left = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(left.is_empty(), "`docker {}` still lists: {left}", kind.join(" "));
    }
}

/// Runs git in `dir`, panicking with its output when it fails; returns its stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
