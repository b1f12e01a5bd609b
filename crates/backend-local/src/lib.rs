//! A `Backend` that runs steps as host processes in a temporary workspace (`gantry exec --backend local`).
//!
//! Each workflow gets a directory `gantry-<run>-<workflow>` under the system's temporary folder;
//! container paths the plan names (the workspace base, working directories, `CI_WORKSPACE`) are
//! mapped into it (see `layout`). Images are ignored: a step is `entrypoint + command` run on
//! the host, with exactly the environment it was given, in a process group of its own so that
//! stopping it stops everything it started. What needs a container (services, plugins, volumes,
//! privileged mode, devices, network settings) is refused with `BackendError::Unsupported`.

mod error;
mod files;
mod layout;
mod populate;
mod process;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pipeline::plan::StepKind;
use runtime::backend::OutputStreamOf;
use runtime::{Backend, BackendError, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource};
use tokio_util::sync::CancellationToken;

use crate::error::LocalError;
use crate::files::{remove_tree, run_blocking};
use crate::layout::WorkflowLayout;
use crate::process::{Launch, RunningProcess};

pub use crate::sweep::RUN_OWNER_FILE;

/// How long a stopped step gets between SIGTERM and SIGKILL unless told otherwise. Docker's
/// default is 10 seconds; a developer waiting at a terminal wants less.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs steps as processes on this machine.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    root: PathBuf,
    stop_grace: Duration,
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new()
    }
}

impl LocalBackend {
    /// Workflow directories go under `std::env::temp_dir()`.
    pub fn new() -> Self {
        LocalBackend { root: std::env::temp_dir(), stop_grace: DEFAULT_STOP_GRACE }
    }

    /// Puts workflow directories under `root` instead (created when missing); `sweep` looks
    /// there too.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// How long `stop` and `teardown` wait after SIGTERM before SIGKILL.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A workflow's directory and the processes started in it.
pub struct LocalWorkflow {
    shared: Arc<WorkflowShared>,
}

struct WorkflowShared {
    key: String,
    layout: WorkflowLayout,
    processes: Mutex<Vec<Arc<RunningProcess>>>,
    /// Cancelled by `teardown`: output readers still waiting on an escaped process give up.
    ended: CancellationToken,
}

impl LocalWorkflow {
    /// The workflow's temporary directory (`<root>/gantry-<run>-<workflow>`).
    pub fn directory(&self) -> &Path {
        self.shared.layout.directory()
    }

    /// The host folder standing for the workspace base.
    pub fn workspace_base(&self) -> PathBuf {
        self.shared.layout.workspace_base()
    }

    /// The host folder the repository is put in.
    pub fn repository(&self) -> PathBuf {
        self.shared.layout.repository()
    }

    /// Where a container path of this workflow is on the host.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        self.shared.layout.host_path(container_path)
    }
}

/// A prepared step: the process to start, and once started, the running process.
pub struct LocalStep {
    launch: Launch,
    workflow: Arc<WorkflowShared>,
    process: OnceLock<Arc<RunningProcess>>,
    stop_grace: Duration,
}

impl LocalStep {
    pub fn name(&self) -> &str {
        &self.launch.step
    }

    /// The host folder the step runs in.
    pub fn working_dir(&self) -> &Path {
        &self.launch.working_dir
    }
}

impl Backend for LocalBackend {
    type Workflow = LocalWorkflow;
    type Step = LocalStep;

    fn name(&self) -> &'static str {
        "local"
    }

    #[tracing::instrument(skip_all, fields(root = %self.root.display()))]
    async fn sweep(&self) -> Result<(), BackendError> {
        let root = self.root.clone();
        run_blocking(move || sweep::sweep(&root)).await.map_err(|error| error.during("remove the directories of finished runs"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(run = %run.id, workflow = %workflow.key))]
    async fn setup(&self, run: &RunInfo, workflow: &WorkflowSetup) -> Result<LocalWorkflow, BackendError> {
        let name = format!("{}{}-{}", sweep::DIRECTORY_PREFIX, file_name_safe(&run.id), file_name_safe(&workflow.key));
        let layout = WorkflowLayout::new(self.root.join(name), &workflow.workspace_base, &workflow.workspace_path);
        if !workflow.volumes.is_empty() {
            // Nothing can mount them: steps that use volumes are refused in `prepare`.
            tracing::debug!(volumes = ?workflow.volumes, "ignoring workflow volumes");
        }
        let root = self.root.clone();
        let directories = layout.clone();
        run_blocking(move || create_workflow_directory(&root, &directories))
            .await
            .map_err(|error| error.during(format!("set up workflow `{}`", workflow.name)))?;
        tracing::debug!(directory = %layout.directory().display(), "workflow directory created");
        let shared =
            WorkflowShared { key: workflow.key.clone(), layout, processes: Mutex::new(Vec::new()), ended: CancellationToken::new() };
        Ok(LocalWorkflow { shared: Arc::new(shared) })
    }

    #[tracing::instrument(skip_all, fields(workflow = %workflow.shared.key))]
    async fn populate_workspace(&self, workflow: &LocalWorkflow, source: &WorkspaceSource) -> Result<(), BackendError> {
        populate::populate(source, &workflow.repository()).await.map_err(|error| error.during("populate the workspace"))
    }

    #[tracing::instrument(skip_all, fields(workflow = %workflow.shared.key, step = %step.name))]
    async fn prepare(&self, workflow: &LocalWorkflow, step: &StepRequest) -> Result<LocalStep, BackendError> {
        refuse_what_needs_a_container(step)?;
        let (program, arguments) = program_and_arguments(step)?;
        let layout = &workflow.shared.layout;
        let launch = Launch {
            step: step.name.clone(),
            program,
            arguments,
            environment: layout.process_environment(&step.environment),
            working_dir: layout.host_path(&step.working_dir),
        };
        Ok(LocalStep { launch, workflow: workflow.shared.clone(), process: OnceLock::new(), stop_grace: self.stop_grace })
    }

    #[tracing::instrument(skip_all, fields(workflow = %step.workflow.key, step = %step.launch.step))]
    async fn start(&self, step: &LocalStep) -> Result<OutputStreamOf, BackendError> {
        let operation = || format!("start step `{}`", step.launch.step);
        if step.process.get().is_some() {
            return Err(BackendError::Operation { operation: operation(), message: "the step was already started".to_owned() });
        }
        // Created now rather than in `prepare`: a step may be prepared before the workspace is
        // populated, and `git clone` wants an empty destination.
        let working_dir = step.launch.working_dir.clone();
        run_blocking(move || std::fs::create_dir_all(&working_dir).map_err(|error| LocalError::io("create", working_dir, error)))
            .await
            .map_err(|error| error.during(operation()))?;
        let (process, output) =
            RunningProcess::spawn(&step.launch, step.workflow.ended.clone()).map_err(|error| error.during(operation()))?;
        step.workflow.processes.lock().expect("process list lock").push(process.clone());
        let _ = step.process.set(process);
        Ok(output)
    }

    #[tracing::instrument(skip_all, fields(workflow = %step.workflow.key, step = %step.launch.step))]
    async fn probe(&self, step: &LocalStep, command: &[String]) -> Result<bool, BackendError> {
        process::probe(&step.launch, command).await.map_err(|error| error.during(format!("probe step `{}`", step.launch.step)))
    }

    #[tracing::instrument(skip_all, fields(workflow = %step.workflow.key, step = %step.launch.step))]
    async fn wait(&self, step: &LocalStep) -> Result<i64, BackendError> {
        match step.process.get() {
            Some(process) => process.wait().await,
            None => Err(BackendError::Operation {
                operation: format!("wait for step `{}`", step.launch.step),
                message: "the step was never started".to_owned(),
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(workflow = %step.workflow.key, step = %step.launch.step))]
    async fn stop(&self, step: &LocalStep) {
        if let Some(process) = step.process.get() {
            process.terminate(step.stop_grace).await;
        }
    }

    async fn remove(&self, step: LocalStep) {
        // Nothing of a step outlives it but its process, which `stop` ends; a step removed
        // without being stopped is stopped here so that it cannot linger until teardown.
        if let Some(process) = step.process.get()
            && !process.has_exited()
        {
            process.terminate(step.stop_grace).await;
        }
    }

    #[tracing::instrument(skip_all, fields(workflow = %workflow.shared.key))]
    async fn teardown(&self, workflow: LocalWorkflow) {
        let processes: Vec<Arc<RunningProcess>> = workflow.shared.processes.lock().expect("process list lock").clone();
        let still_running = processes.iter().filter(|process| !process.has_exited());
        futures_util::future::join_all(still_running.map(|process| process.terminate(self.stop_grace))).await;
        workflow.shared.ended.cancel();
        let directory = workflow.directory().to_owned();
        if let Err(error) = run_blocking(move || remove_tree(&directory)).await {
            tracing::warn!(%error, "could not remove the workflow directory");
        }
    }
}

fn create_workflow_directory(root: &Path, layout: &WorkflowLayout) -> Result<(), LocalError> {
    std::fs::create_dir_all(root).map_err(|error| LocalError::io("create", root, error))?;
    let directory = layout.directory();
    match std::fs::create_dir(directory) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LocalError::DirectoryExists { path: directory.to_owned() });
        }
        Err(error) => return Err(LocalError::io("create", directory, error)),
    }
    // The owner file comes first, so that a run killed during the rest of setup is swept.
    sweep::write_owner(directory)?;
    for folder in [layout.workspace_base(), layout.home()] {
        std::fs::create_dir_all(&folder).map_err(|error| LocalError::io("create", folder, error))?;
    }
    Ok(())
}

/// Run ids and workflow keys are meant to be `[a-z0-9-]` already; anything else is replaced so
/// that no id can name a path outside the root.
fn file_name_safe(text: &str) -> String {
    text.chars()
        .map(|character| if character.is_ascii_alphanumeric() || matches!(character, '-' | '_') { character } else { '-' })
        .collect()
}

/// The program a step runs: its entrypoint followed by its command, or its command alone when
/// it has no entrypoint (an image without one runs its command the same way).
fn program_and_arguments(step: &StepRequest) -> Result<(String, Vec<String>), BackendError> {
    let mut argv = step.entrypoint.iter().flatten().chain(&step.command).cloned();
    match argv.next() {
        Some(program) => Ok((program, argv.collect())),
        None => Err(BackendError::Unsupported {
            what: format!(
                "steps without a command (`{}` would run its image's own entrypoint, which needs a container backend)",
                step.name
            ),
        }),
    }
}

/// Refuses what only a container can give a step, naming it; the runtime reports the message.
fn refuse_what_needs_a_container(step: &StepRequest) -> Result<(), BackendError> {
    let name = &step.name;
    let unsupported = |what: String| Err(BackendError::Unsupported { what });
    if step.kind == StepKind::Service {
        return unsupported(format!("services (`{name}`)"));
    }
    if step.kind == StepKind::Build {
        return unsupported(format!(
            "image builds (`{name}`: Gantry builds images through a Docker engine's API; run with `--backend docker`)"
        ));
    }
    if step.kind == StepKind::Plugin {
        return unsupported(format!("plugins (`{name}`: a plugin is an image run as it is, so plugins need a container backend)"));
    }
    if !step.container.volumes.is_empty() {
        return unsupported(format!("volumes (`{}` in step `{name}`)", step.container.volumes.join("`, `")));
    }
    if step.container.privileged {
        return unsupported(format!("privileged mode (step `{name}`)"));
    }
    if !step.container.devices.is_empty() {
        return unsupported(format!("devices (`{}` in step `{name}`)", step.container.devices.join("`, `")));
    }
    if !step.container.tmpfs.is_empty() {
        return unsupported(format!("tmpfs mounts (`{}` in step `{name}`)", step.container.tmpfs.join("`, `")));
    }
    if let Some(network_mode) = &step.container.network_mode {
        return unsupported(format!("network_mode `{network_mode}` (step `{name}`)"));
    }
    for (option, values) in
        [("dns", &step.container.dns), ("dns_search", &step.container.dns_search), ("extra_hosts", &step.container.extra_hosts)]
    {
        if !values.is_empty() {
            return unsupported(format!("{option} (`{}` in step `{name}`)", values.join("`, `")));
        }
    }
    if let Some(user) = &step.container.user {
        return unsupported(format!("running as user `{user}` (step `{name}`)"));
    }
    // Left out on purpose: network aliases (nothing connects to a host process by name, and the
    // runtime may give every step one), and memory or shm limits, which only bound a step that
    // would pass without them.
    Ok(())
}
