//! The test harness: a backend on the real engine, a unique run per test, step requests for the
//! busybox test image, output collection, and cleanup by label that also checks for leaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backend_docker::{DockerBackend, DockerBackendOptions, DockerStep, DockerWorkflow, LABEL_RUN};
use bytes::Bytes;
use docker::{Engine, LabelledResources};
use futures_util::StreamExt;
use pipeline::plan::StepKind;
use runtime::backend::OutputStreamOf;
use runtime::{Backend, OutputStream, RunInfo, StepRequest, WorkflowSetup};

/// Built by `scripts/docker-up.sh` with `docker import`: busybox applets, no registry needed.
pub(crate) const BUSYBOX: &str = "gantry-test/busybox:latest";
pub(crate) const WORKSPACE_BASE: &str = "/woodpecker";
pub(crate) const WORKSPACE_PATH: &str = "src/repo";
pub(crate) const WORKSPACE_DIR: &str = "/woodpecker/src/repo";

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A run of its own for one test, on a shared engine. Dropping it removes whatever carries the
/// run's label, so a failing test leaks nothing either.
pub(crate) struct TestRun {
    pub backend: Arc<DockerBackend>,
    pub run: RunInfo,
}

impl TestRun {
    pub(crate) async fn new(test: &str) -> TestRun {
        TestRun::with_options(test, DockerBackendOptions::default()).await
    }

    pub(crate) async fn with_options(test: &str, options: DockerBackendOptions) -> TestRun {
        let engine = connect().await;
        let number = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("it-{}-{}-{number}", test.replace('_', "-"), std::process::id());
        TestRun { backend: Arc::new(DockerBackend::new(engine, options)), run: RunInfo { id } }
    }

    pub(crate) fn engine(&self) -> &Engine {
        self.backend.engine()
    }

    pub(crate) fn run_filter(&self) -> Vec<String> {
        vec![format!("{LABEL_RUN}={}", self.run.id)]
    }

    pub(crate) async fn workflow(&self, key: &str) -> DockerWorkflow {
        self.workflow_with_volumes(key, &[]).await
    }

    pub(crate) async fn workflow_with_volumes(&self, key: &str, volumes: &[&str]) -> DockerWorkflow {
        let setup = WorkflowSetup {
            key: key.to_string(),
            name: key.to_string(),
            workspace_base: WORKSPACE_BASE.to_string(),
            workspace_path: WORKSPACE_PATH.to_string(),
            volumes: volumes.iter().map(ToString::to_string).collect(),
        };
        self.backend.setup(&self.run, &setup).await.expect("workflow setup")
    }

    /// Everything on the engine that carries this run's label.
    pub(crate) async fn leftovers(&self) -> LabelledResources {
        self.engine().list_labelled(&self.run_filter()).await.expect("listing by label")
    }

    /// Tears the workflow down and checks that nothing of the run is left.
    pub(crate) async fn finish(&self, workflow: DockerWorkflow) {
        self.backend.teardown(workflow).await;
        self.assert_nothing_left().await;
    }

    pub(crate) async fn assert_nothing_left(&self) {
        let left = self.leftovers().await;
        assert!(left.is_empty(), "resources of run {} leaked: {left:#?}", self.run.id);
    }

    /// Prepares, starts and waits for a step; returns its output and exit code.
    pub(crate) async fn run_step(&self, workflow: &DockerWorkflow, step: StepRequest) -> (Output, i64) {
        let prepared = self.backend.prepare(workflow, &step).await.expect("prepare");
        let output = self.backend.start(&prepared).await.expect("start");
        let output = collect(output).await;
        let exit_code = self.backend.wait(&prepared).await.expect("wait");
        self.backend.remove(prepared).await;
        (output, exit_code)
    }

    pub(crate) async fn start(&self, workflow: &DockerWorkflow, step: StepRequest) -> (DockerStep, OutputStreamOf) {
        let prepared = self.backend.prepare(workflow, &step).await.expect("prepare");
        let output = self.backend.start(&prepared).await.expect("start");
        (prepared, output)
    }
}

impl Drop for TestRun {
    fn drop(&mut self) {
        // The test's runtime may be gone: clean up on a runtime and connection of our own.
        let filter = self.run_filter();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let engine = Engine::connect().await.expect("engine");
                engine.remove_labelled(&filter).await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("cleanup failed: {error}");
        }
    }
}

pub(crate) async fn connect() -> Engine {
    Engine::connect().await.unwrap_or_else(|error| panic!("these tests need a Docker engine ({error}); run scripts/docker-up.sh"))
}

/// A busybox step running `script` with `sh -c`, as the runtime builds commands steps.
pub(crate) fn shell_step(name: &str, script: &str) -> StepRequest {
    StepRequest::shell_script(name, Some(BUSYBOX), script, WORKSPACE_DIR)
}

pub(crate) fn service_step(name: &str, script: &str, aliases: &[&str]) -> StepRequest {
    StepRequest { kind: StepKind::Service, network_aliases: aliases.iter().map(ToString::to_string).collect(), ..shell_step(name, script) }
}

/// A step's output: each stream on its own, and the chunks in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub chunks: Vec<(OutputStream, Bytes)>,
}

impl Output {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The lines of both streams in arrival order, each tagged with its stream.
    pub(crate) fn tagged_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let (mut stdout_line, mut stderr_line) = (Vec::new(), Vec::new());
        for (stream, bytes) in &self.chunks {
            let (line, tag) = match stream {
                OutputStream::Stdout => (&mut stdout_line, "out"),
                OutputStream::Stderr => (&mut stderr_line, "err"),
            };
            for byte in bytes {
                if *byte == b'\n' {
                    lines.push(format!("{tag}: {}", String::from_utf8_lossy(line)));
                    line.clear();
                } else {
                    line.push(*byte);
                }
            }
        }
        lines
    }
}

pub(crate) async fn collect(mut output: OutputStreamOf) -> Output {
    let mut collected = Output::default();
    while let Some(chunk) = output.next().await {
        let chunk = chunk.expect("output chunk");
        match chunk.stream {
            OutputStream::Stdout => collected.stdout.extend_from_slice(&chunk.bytes),
            OutputStream::Stderr => collected.stderr.extend_from_slice(&chunk.bytes),
        }
        collected.chunks.push((chunk.stream, chunk.bytes));
    }
    collected
}
