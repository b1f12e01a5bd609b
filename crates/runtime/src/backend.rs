//! The `Backend` trait: what runs a step (a container engine, or host processes), and its lifecycle.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use pipeline::ContainerOptions;
use pipeline::model::PullPolicy;
use pipeline::plan::StepKind;

use crate::publish::{BuildRequest, PublishedImage, RegistryCredential};

/// A run: one `gantry exec` or one agent job. Everything a backend creates carries its id as a
/// label, so that leftovers of a run that died can be found and removed.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Unique among runs on this machine, usable in resource names (`[a-z0-9-]`).
    pub id: String,
}

/// What a workflow needs before its steps: a workspace mounted at `workspace_base` in every
/// step, and a network on which services are reachable by name.
#[derive(Clone, Debug)]
pub struct WorkflowSetup {
    /// Unique within the run, usable in resource names.
    pub key: String,
    pub name: String,
    pub workspace_base: String,
    /// Where the repository goes, relative to `workspace_base`.
    pub workspace_path: String,
    /// Named volumes the workflow declares (Drone `temp` volumes), created with it.
    pub volumes: Vec<String>,
}

/// Where the repository in the workspace comes from.
#[derive(Clone, Debug)]
pub enum WorkspaceSource {
    /// Copy this folder: the files git does not ignore, and `.git` itself (when it is a git
    /// repository), or every file otherwise.
    WorkingTree(PathBuf),
    /// A clean checkout of `HEAD` of the repository in this folder.
    GitHead(PathBuf),
    /// An empty workspace (`skip_clone`).
    Empty,
}

/// One step as the backend runs it, with everything resolved: the environment complete
/// (secrets filled in), the process to run decided.
#[derive(Clone, Debug)]
pub struct StepRequest {
    /// Unique within the workflow.
    pub name: String,
    pub kind: StepKind,
    /// `None` only for host-process backends.
    pub image: Option<String>,
    pub pull: PullPolicy,
    /// The program and its arguments; `None` runs the image's own entrypoint and command.
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub working_dir: String,
    /// Host names other containers reach this one at (a service's name).
    pub network_aliases: Vec<String>,
    /// As the plan gives them: the backend translates what it supports.
    pub container: ContainerOptions,
    /// For `StepKind::Build`: the image to build instead of a process to run.
    pub build: Option<BuildRequest>,
    /// Credentials for the registry of `image`, when the run has some (a private step image).
    pub pull_credentials: Option<RegistryCredential>,
}

impl StepRequest {
    /// A commands step running `script` with `/bin/sh -c`, everything else at its default: the
    /// shape the runtime gives commands steps, and a starting point for tests of backends.
    pub fn shell_script(name: &str, image: Option<&str>, script: &str, working_dir: &str) -> Self {
        StepRequest {
            name: name.to_owned(),
            kind: StepKind::Commands,
            image: image.map(str::to_owned),
            pull: PullPolicy::IfNotPresent,
            entrypoint: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
            command: vec![script.to_owned()],
            environment: BTreeMap::new(),
            working_dir: working_dir.to_owned(),
            network_aliases: Vec::new(),
            container: ContainerOptions::default(),
            build: None,
            pull_credentials: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Bytes a step wrote, as they arrived: not split into lines, possibly mid-character.
#[derive(Clone, Debug)]
pub struct OutputChunk {
    pub stream: OutputStream,
    pub bytes: Bytes,
}

/// A step's output until it ends.
pub type OutputStreamOf = Pin<Box<dyn Stream<Item = Result<OutputChunk, BackendError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be used at all (no engine); `hint` says how to get one.
    #[error("{message}")]
    Unavailable { message: String, hint: String },
    #[error("image `{image}` is not on this machine and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("{what} is not supported by this backend")]
    Unsupported { what: String },
    #[error("{operation} failed: {message}")]
    Operation { operation: String, message: String },
}

/// Runs steps. The runtime drives each workflow through this lifecycle:
///
/// 1. `setup` once per workflow (network, workspace volume), then `populate_workspace`.
/// 2. per step: `prepare` (pull if needed, create; may be called well before the step is due,
///    and for many steps at once), `start` (returns the output stream, from the very first
///    byte), `wait` (the exit code), `remove`.
/// 3. `teardown` once per workflow, always, even after errors or cancellation; it removes
///    every resource the workflow's steps and setup created, including steps still running.
///
/// The stream `start` returns must be read while the step runs, or dropped: a step writes no
/// faster than its output is read, as with `docker run`.
///
/// `stop` may be called at any time on a started step (cancellation, timeout, the end of a
/// detached step) and makes `wait` return soon after. Calls for different steps may run
/// concurrently; the runtime never calls two lifecycle methods on one step at once, except
/// `stop` while `wait` is pending. `sweep` removes what runs that no longer exist left behind.
pub trait Backend: Send + Sync + 'static {
    type Workflow: Send + Sync + 'static;
    type Step: Send + Sync + 'static;

    /// A short name for messages: `docker`, `local`.
    fn name(&self) -> &'static str;

    /// Removes resources of runs that are no longer alive. Called once before a run.
    fn sweep(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn setup(&self, run: &RunInfo, workflow: &WorkflowSetup) -> impl Future<Output = Result<Self::Workflow, BackendError>> + Send;

    fn populate_workspace(
        &self,
        workflow: &Self::Workflow,
        source: &WorkspaceSource,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn prepare(&self, workflow: &Self::Workflow, step: &StepRequest) -> impl Future<Output = Result<Self::Step, BackendError>> + Send;

    fn start(&self, step: &Self::Step) -> impl Future<Output = Result<OutputStreamOf, BackendError>> + Send;

    /// Runs `command` inside a started step (a service's readiness check); true on exit code 0.
    fn probe(&self, step: &Self::Step, command: &[String]) -> impl Future<Output = Result<bool, BackendError>> + Send;

    fn wait(&self, step: &Self::Step) -> impl Future<Output = Result<i64, BackendError>> + Send;

    fn stop(&self, step: &Self::Step) -> impl Future<Output = ()> + Send;

    fn remove(&self, step: Self::Step) -> impl Future<Output = ()> + Send;

    /// The images a build step pushed, once `wait` returned; none for other steps and for
    /// backends that cannot build images.
    fn published(&self, step: &Self::Step) -> Vec<PublishedImage> {
        let _ = step;
        Vec::new()
    }

    fn teardown(&self, workflow: Self::Workflow) -> impl Future<Output = ()> + Send;
}
