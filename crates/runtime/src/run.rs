//! Running a plan: workflows in dependency order, steps as soon as their own dependencies finish.
//!
//! Per workflow: set up (network, workspace), create every step's container ahead of time (so
//! creation overlaps with running), fill the workspace, start services and wait until they are
//! ready, then run the step graph. Whatever happens — failure, timeout, cancellation — the
//! workflow is torn down before its result is reported.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{FutureExt as _, StreamExt};
use pipeline::graph::{Held, Outcome, ReadySet, runs_after};
use pipeline::image_build::ImageBuild;
use pipeline::plan::{Plan, SECRET_PLACEHOLDER_PREFIX, SECRET_PLACEHOLDER_SUFFIX, StepKind, StepPlan, WorkflowPlan};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::backend::{Backend, BackendError, OutputStream, OutputStreamOf, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource};
use crate::event::{Event, EventSink, Status};
use crate::mask::{LineSplitter, Masker};
use crate::publish::{BuildRequest, ProvenanceFacts, PublishOptions, RegistryCredential, image_labels, now_rfc3339};
use crate::script::commands_script;

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most steps running at once, across workflows (services and detached steps not counted).
    pub parallel: usize,
    /// Whole-run limit; steps still running then are killed.
    pub timeout: Option<Duration>,
    pub workspace: WorkspaceSource,
    /// Secret values by name. A step receives only those its plan references.
    pub secrets: BTreeMap<String, String>,
    /// How image build steps push, and what they say about it.
    pub publish: PublishOptions,
}

#[derive(Clone, Debug)]
pub struct StepSummary {
    pub name: String,
    pub status: Status,
    pub exit_code: Option<i64>,
    pub duration: Duration,
    pub reason: Option<String>,
}

#[derive(Clone, Debug)]
pub struct WorkflowSummary {
    pub name: String,
    pub status: Status,
    pub duration: Duration,
    pub reason: Option<String>,
    pub steps: Vec<StepSummary>,
}

#[derive(Clone, Debug)]
pub struct RunSummary {
    pub status: Status,
    pub duration: Duration,
    pub workflows: Vec<WorkflowSummary>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backend cannot run anything (no engine): nothing was started.
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("step `{step}` of workflow `{workflow}` needs secret `{secret}`, which was not given")]
    MissingSecret { workflow: String, step: String, secret: String },
}

/// Longest pause between two readiness checks of a service.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// Runs every workflow of `plan` that is not skipped. Returns when everything has finished and
/// been torn down; cancelling `cancel` stops running steps and tears down early.
pub async fn run_plan<B: Backend>(
    plan: &Plan,
    backend: Arc<B>,
    options: RunOptions,
    events: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let RunOptions { parallel, timeout, workspace, secrets, publish } = options;
    check_secrets(plan, &secrets)?;
    let registry_passwords = publish.registries.iter().map(|credential| credential.password.as_str());
    let masker = Masker::new(secrets.values().map(String::as_str).chain(registry_passwords));
    match guarded(backend.sweep()).await {
        Ok(Ok(())) => {}
        Ok(Err(error @ BackendError::Unavailable { .. })) => return Err(error.into()),
        Ok(Err(error)) => tracing::warn!(error = %mask_text(&masker, &error.to_string()), "could not remove leftovers of earlier runs"),
        Err(panic) => tracing::error!(%panic, "removing leftovers of earlier runs panicked"),
    }
    let run = RunInfo { id: run_id() };
    events.emit(Event::RunStarted { run: run.id.clone(), workflows: plan.workflows.iter().map(|w| w.name.clone()).collect() });

    // A step with `failure: cancel` and the run timeout cancel the run the same way Ctrl-C does.
    let run_cancel = cancel.child_token();
    if let Some(timeout) = timeout {
        let token = run_cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => token.cancel(),
                _ = token.cancelled() => {}
            }
        });
    }
    let shared = Arc::new(Shared {
        backend,
        events,
        run,
        masker,
        secrets,
        publish,
        workspace,
        step_slots: Arc::new(Semaphore::new(parallel.max(1))),
        creations: parallel,
        cancel: run_cancel.clone(),
    });

    let workflows: Vec<Arc<WorkflowPlan>> = plan.workflows.iter().cloned().map(Arc::new).collect();
    let mut graph = ReadySet::new(workflows.iter().map(|workflow| (workflow.name.as_str(), &workflow.depends_on)));
    let mut summaries: Vec<Option<WorkflowSummary>> = vec![None; workflows.len()];
    let step_ends: Vec<StepEnds> = workflows.iter().map(|_| StepEnds::default()).collect();
    let mut running: JoinSet<(usize, WorkflowSummary)> = JoinSet::new();
    let mut workflow_tasks: HashMap<tokio::task::Id, usize> = HashMap::new();
    loop {
        // Start (or skip) every workflow whose dependencies have all finished.
        while let Some(index) = graph.next_due() {
            let workflow = &workflows[index];
            match decide_workflow(workflow, graph.upstream_failed(index), shared.cancel.is_cancelled()) {
                Some(reason) => {
                    let reason = shared.mask(&reason);
                    shared.events.emit(Event::WorkflowFinished {
                        workflow: workflow.name.clone(),
                        status: Status::Skipped,
                        duration: Duration::ZERO,
                        reason: Some(reason.clone()),
                    });
                    graph.finish(index, Outcome::Skipped);
                    summaries[index] = Some(skipped_workflow(workflow, &reason));
                }
                None => {
                    let shared = shared.clone();
                    let workflow = workflow.clone();
                    let ends = step_ends[index].clone();
                    let task = running.spawn(async move { (index, run_workflow(shared, workflow, index, ends).await) });
                    workflow_tasks.insert(task.id(), index);
                }
            }
        }
        let summary = match running.join_next_with_id().await {
            Some(Ok((_, (index, summary)))) => (index, summary),
            // Backend calls are guarded, so a panic here is a bug of the runtime (or of the
            // event sink). The workflow fails and every step it did not report ends with it;
            // its teardown did not run, and the sweep of the next run removes what it left.
            Some(Err(error)) => {
                let Some(index) = workflow_tasks.get(&error.id()).copied() else { continue };
                let reason = format!("the workflow's task {}", join_failure(error));
                tracing::error!(workflow = %workflows[index].name, %reason, "a workflow task failed");
                (index, abandon_workflow(&shared, &workflows[index], &step_ends[index], &reason))
            }
            None => {
                // Nothing runs and nothing more can start: a dependency cycle (lint rejects
                // those) or a lost task. Report what is left rather than wait forever.
                for index in graph.waiting().collect::<Vec<_>>() {
                    graph.finish(index, Outcome::Skipped);
                    summaries[index] = Some(skipped_workflow(&workflows[index], "its dependencies never finished"));
                }
                break;
            }
        };
        let (index, summary) = summary;
        graph.finish(index, summary.status.into());
        summaries[index] = Some(summary);
    }
    let workflows: Vec<WorkflowSummary> = summaries.into_iter().flatten().collect();
    let status = if cancel.is_cancelled() { Status::Killed } else { graph.overall().into() };
    run_cancel.cancel();
    let duration = started.elapsed();
    shared.events.emit(Event::RunFinished { status, duration });
    Ok(RunSummary { status, duration, workflows })
}

/// How a workflow's steps ended, and why when the workflow itself says so.
type WorkflowEnd = (Status, Option<String>);

/// Why a workflow whose dependencies have finished does not run, if it does not.
fn decide_workflow(workflow: &WorkflowPlan, upstream_failed: bool, cancelled: bool) -> Option<String> {
    if workflow.skipped {
        return Some(workflow.skip_reason.clone().unwrap_or_else(|| "its conditions are false".into()));
    }
    if !workflow.runnable {
        let kind = workflow.runner_type.as_deref().unwrap_or("this");
        return Some(format!("`{kind}` pipelines cannot run here"));
    }
    if cancelled {
        return Some("the run was cancelled".into());
    }
    match runs_after(&workflow.runs_on, upstream_failed) {
        Ok(()) => None,
        Err(Held::AfterFailure) => Some("a workflow it depends on failed".into()),
        Err(Held::OnlyOnFailure) => Some("it runs only after a failure".into()),
    }
}

fn skipped_workflow(workflow: &WorkflowPlan, reason: &str) -> WorkflowSummary {
    WorkflowSummary {
        name: workflow.name.clone(),
        status: Status::Skipped,
        duration: Duration::ZERO,
        reason: Some(reason.to_owned()),
        steps: workflow
            .services
            .iter()
            .chain(&workflow.steps)
            .map(|step| StepSummary {
                name: step.name.clone(),
                status: Status::Skipped,
                exit_code: None,
                duration: Duration::ZERO,
                reason: None,
            })
            .collect(),
    }
}

/// Every secret a step that may run references must be given, before anything starts.
fn check_secrets(plan: &Plan, secrets: &BTreeMap<String, String>) -> Result<(), RunError> {
    for workflow in plan.workflows.iter().filter(|workflow| !workflow.skipped) {
        for step in workflow.services.iter().chain(&workflow.steps).filter(|step| !step.skipped) {
            for reference in &step.secrets {
                if !secrets.contains_key(&reference.secret) {
                    return Err(RunError::MissingSecret {
                        workflow: workflow.name.clone(),
                        step: step.name.clone(),
                        secret: reference.secret.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// Runs a backend call, turning a panic (a bug in the backend) into an error message, so that it
/// fails the one step or workflow it happened in instead of ending a task unseen.
async fn guarded<T>(future: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(future).catch_unwind().await.map_err(|payload| panic_message(payload.as_ref()))
}

/// "panicked: <message>", from a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload.downcast_ref::<&str>().map(|text| (*text).to_owned()).or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => format!("panicked: {message}"),
        None => "panicked".to_owned(),
    }
}

/// How a task ended without a result.
fn join_failure(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => panic_message(payload.as_ref()),
        Err(_) => "was cancelled".to_owned(),
    }
}

fn mask_text(masker: &Masker, text: &str) -> String {
    match masker.mask(text.as_bytes()) {
        std::borrow::Cow::Borrowed(_) => text.to_owned(),
        std::borrow::Cow::Owned(masked) => String::from_utf8_lossy(&masked).into_owned(),
    }
}

/// The final state of each step of one workflow. Kept outside the workflow's task, so that
/// what a task reported survives its panic; the first end reported for a step is its only one.
#[derive(Clone, Default)]
struct StepEnds(Arc<Mutex<HashMap<String, StepSummary>>>);

impl StepEnds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StepSummary>> {
        // A panic while the lock is held leaves the map as it was: still usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn contains(&self, step: &str) -> bool {
        self.lock().contains_key(step)
    }

    /// Records a step's end; false when it already had one.
    fn record(&self, summary: StepSummary) -> bool {
        let mut ends = self.lock();
        if ends.contains_key(&summary.name) {
            return false;
        }
        ends.insert(summary.name.clone(), summary);
        true
    }

    fn get(&self, step: &str) -> Option<StepSummary> {
        self.lock().get(step).cloned()
    }
}

/// Ends a workflow whose task died: every step it did not report fails with it.
fn abandon_workflow<B: Backend>(shared: &Shared<B>, workflow: &WorkflowPlan, ends: &StepEnds, reason: &str) -> WorkflowSummary {
    let reason = shared.mask(reason);
    let steps = workflow
        .services
        .iter()
        .chain(&workflow.steps)
        .map(|step| {
            let error = StepSummary {
                name: step.name.clone(),
                status: Status::Error,
                exit_code: None,
                duration: Duration::ZERO,
                reason: Some(reason.clone()),
            };
            if ends.record(error.clone()) {
                shared.events.emit(Event::StepFinished {
                    workflow: workflow.name.clone(),
                    step: step.name.clone(),
                    status: Status::Error,
                    exit_code: None,
                    duration: Duration::ZERO,
                    reason: Some(reason.clone()),
                });
            }
            ends.get(&step.name).unwrap_or(error)
        })
        .collect();
    shared.events.emit(Event::WorkflowFinished {
        workflow: workflow.name.clone(),
        status: Status::Error,
        duration: Duration::ZERO,
        reason: Some(reason.clone()),
    });
    WorkflowSummary { name: workflow.name.clone(), status: Status::Error, duration: Duration::ZERO, reason: Some(reason), steps }
}

/// What every workflow task of a run shares.
struct Shared<B: Backend> {
    backend: Arc<B>,
    events: Arc<dyn EventSink>,
    run: RunInfo,
    masker: Masker,
    secrets: BTreeMap<String, String>,
    publish: PublishOptions,
    workspace: WorkspaceSource,
    step_slots: Arc<Semaphore>,
    /// Containers created at once, ahead of their steps.
    creations: usize,
    cancel: CancellationToken,
}

impl<B: Backend> Shared<B> {
    /// Text that leaves the run in an event (a reason, often a backend's error) with every
    /// secret value masked, as in log lines.
    fn mask(&self, text: &str) -> String {
        mask_text(&self.masker, text)
    }
}

/// The process a step runs, with its environment complete.
fn step_request<B: Backend>(shared: &Shared<B>, workflow: &WorkflowPlan, step: &StepPlan) -> StepRequest {
    let mut environment = workflow.environment.clone();
    environment.extend(step.environment.iter().map(|(key, value)| (key.clone(), value.clone())));
    // Built-in variables win over a step's own, as in Woodpecker.
    for (key, value) in &workflow.environment {
        if key == "CI" || key.starts_with("CI_") || key.starts_with("DRONE_") {
            environment.insert(key.clone(), value.clone());
        }
    }
    for reference in &step.secrets {
        let Some(value) = shared.secrets.get(&reference.secret) else { continue };
        if reference.embedded {
            let placeholder = format!("{SECRET_PLACEHOLDER_PREFIX}{}{SECRET_PLACEHOLDER_SUFFIX}", reference.secret);
            if let Some(current) = environment.get_mut(&reference.env) {
                *current = current.replace(&placeholder, value);
            }
        } else {
            environment.insert(reference.env.clone(), value.clone());
        }
    }
    let (entrypoint, command) = if step.commands.is_empty() {
        (step.entrypoint.clone(), step.command.clone())
    } else {
        let script = commands_script(&step.commands);
        // Woodpecker passes the script in CI_SCRIPT too, for entrypoints that pick their own shell.
        environment.insert("CI_SCRIPT".into(), base64::engine::general_purpose::STANDARD.encode(&script));
        match &step.entrypoint {
            Some(entrypoint) => (Some(entrypoint.clone()), Vec::new()),
            None => {
                let shell = step.shell.clone().unwrap_or_else(|| "/bin/sh".into());
                (Some(vec![shell, "-c".into()]), vec![script])
            }
        }
    };
    StepRequest {
        name: step.name.clone(),
        kind: step.kind,
        image: step.image.clone(),
        pull: step.pull,
        entrypoint,
        command,
        working_dir: step.working_dir.clone(),
        // Services and detached steps are what other steps reach by name. Only they get a
        // name on the network: a backend may keep the others off the workflow's own network,
        // which makes starting them cheaper.
        network_aliases: if step.kind == StepKind::Service || step.detach { vec![step.name.clone()] } else { Vec::new() },
        container: step.container.clone(),
        build: step.build.as_ref().map(|build| build_request(shared, workflow, step, build, &environment)),
        pull_credentials: step.image.as_deref().and_then(|image| shared.publish.credential_for(image_registry(image))).cloned(),
        environment,
    }
}

/// The registry host an image reference names (`docker.io` when it names none).
fn image_registry(image: &str) -> &str {
    pipeline::image_build::registry_host(image)
}

/// An image build with everything from the step's environment and the run filled in.
fn build_request<B: Backend>(
    shared: &Shared<B>,
    workflow: &WorkflowPlan,
    step: &StepPlan,
    build: &ImageBuild,
    environment: &BTreeMap<String, String>,
) -> BuildRequest {
    let mut build_args = build.build_args.clone();
    for (argument, variable) in &build.build_args_from_env {
        build_args.insert(argument.clone(), environment.get(variable).cloned().unwrap_or_default());
    }
    let started_on = now_rfc3339();
    let created = shared.publish.source_date.clone().unwrap_or_else(|| started_on.clone());
    let mut labels = build.labels.clone();
    labels.extend(image_labels(environment, shared.publish.build_url.as_deref(), &workflow.file, &created));
    let mut credentials = Vec::new();
    if let Some(login) = &build.login {
        let username = environment.get(&login.username_variable).cloned().unwrap_or_default();
        let password = environment.get(&login.password_variable).cloned().unwrap_or_default();
        if !username.is_empty() || !password.is_empty() {
            credentials.push(RegistryCredential { host: login.registry.clone(), username, password });
        }
    }
    credentials.extend(shared.publish.registries.iter().cloned());
    let get = |key: &str| environment.get(key).cloned().unwrap_or_default();
    // The plan as written, minus nothing secret: secret values live only in the environment.
    let parameters = serde_json::to_value(build).unwrap_or_default();
    BuildRequest {
        build: build.clone(),
        build_args,
        labels,
        credentials,
        push: build.push && shared.publish.push,
        provenance: ProvenanceFacts {
            builder_id: shared.publish.builder_id.clone(),
            repository: get("CI_REPO"),
            repository_url: environment
                .get("CI_REPO_URL")
                .filter(|url| !url.is_empty())
                .cloned()
                .unwrap_or_else(|| get("CI_REPO_CLONE_URL")),
            commit: get("CI_COMMIT_SHA"),
            reference: get("CI_COMMIT_REF"),
            event: get("CI_PIPELINE_EVENT"),
            build_number: get("CI_PIPELINE_NUMBER"),
            build_url: shared.publish.build_url.clone(),
            workflow: workflow.name.clone(),
            step: step.name.clone(),
            pipeline_file: workflow.file.clone(),
            pipeline_file_sha256: shared.publish.pipeline_files.get(&workflow.file).cloned(),
            parameters,
            started_on,
        },
    }
}

/// Forwards a step's output to the events as masked lines. Returns when the output ends.
async fn forward_output(mut output: OutputStreamOf, events: Arc<dyn EventSink>, masker: Masker, workflow: String, step: String) {
    let mut stdout = LineSplitter::new(masker.clone());
    let mut stderr = LineSplitter::new(masker.clone());
    let emit = |stream: OutputStream| {
        let events = events.clone();
        let workflow = workflow.clone();
        let step = step.clone();
        move |line: &[u8]| {
            events.emit(Event::Log {
                workflow: workflow.clone(),
                step: step.clone(),
                stream,
                line: String::from_utf8_lossy(line).into_owned(),
            });
        }
    };
    let mut emit_stdout = emit(OutputStream::Stdout);
    let mut emit_stderr = emit(OutputStream::Stderr);
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(chunk) => match chunk.stream {
                OutputStream::Stdout => stdout.push(&chunk.bytes, &mut emit_stdout),
                OutputStream::Stderr => stderr.push(&chunk.bytes, &mut emit_stderr),
            },
            Err(error) => {
                tracing::warn!(error = %mask_text(&masker, &error.to_string()), step = %step, "reading output failed");
                break;
            }
        }
    }
    stdout.finish(&mut emit_stdout);
    stderr.finish(&mut emit_stderr);
}

/// A step's container, created ahead of time by a background task.
type Prepared<S> = oneshot::Receiver<Result<S, BackendError>>;

/// A step task's end: the step's index, how it ended, a detached step still running, and a
/// finished step's container, which the workflow removes off the critical path.
type StepOutcome<S> = (usize, Finished, Option<Background<S>>, Option<Arc<S>>);

struct Finished {
    status: Status,
    exit_code: Option<i64>,
    duration: Duration,
    reason: Option<String>,
}

async fn run_workflow<B: Backend>(shared: Arc<Shared<B>>, workflow: Arc<WorkflowPlan>, index: usize, ends: StepEnds) -> WorkflowSummary {
    let started = Instant::now();
    let names: Vec<String> = workflow.services.iter().chain(&workflow.steps).map(|step| step.name.clone()).collect();
    shared.events.emit(Event::WorkflowStarted { workflow: workflow.name.clone(), steps: names });
    let setup = WorkflowSetup {
        key: format!("w{index}"),
        name: workflow.name.clone(),
        workspace_base: workflow.workspace.base.clone(),
        workspace_path: workflow.workspace.path.clone(),
        volumes: workflow.volumes.clone(),
    };
    let setup_result = match guarded(shared.backend.setup(&shared.run, &setup)).await {
        Ok(result) => result.map_err(|error| format!("setting up the workflow failed: {error}")),
        Err(panic) => Err(format!("setting up the workflow {panic}")),
    };
    let handle = match setup_result {
        Ok(handle) => Arc::new(handle),
        Err(reason) => {
            let mut workflow_run = WorkflowRun {
                shared: shared.clone(),
                workflow: workflow.clone(),
                handle: None,
                ends: ends.clone(),
                removals: JoinSet::new(),
            };
            workflow_run.skip_remaining("the workflow could not be set up", &[]);
            let steps = workflow_steps(&workflow, &ends);
            return finish_workflow(&shared, &workflow, started, Status::Error, Some(reason), steps);
        }
    };
    let mut workflow_run = WorkflowRun {
        shared: shared.clone(),
        workflow: workflow.clone(),
        handle: Some(handle.clone()),
        ends: ends.clone(),
        removals: JoinSet::new(),
    };
    let (status, reason) = workflow_run.run().await;
    drop(workflow_run);
    // The last reference: every step task has ended, so teardown owns the workflow.
    match Arc::try_unwrap(handle) {
        Ok(handle) => {
            if let Err(panic) = guarded(shared.backend.teardown(handle)).await {
                tracing::error!(workflow = %workflow.name, %panic, "tearing the workflow down panicked; resources are left for the sweep");
            }
        }
        Err(_) => tracing::error!(workflow = %workflow.name, "workflow still in use at teardown; resources are left for the sweep"),
    }
    let steps = workflow_steps(&workflow, &ends);
    finish_workflow(&shared, &workflow, started, status, reason, steps)
}

/// The summaries of a workflow's steps in declared order (services first); a step that never
/// ended is reported as skipped.
fn workflow_steps(workflow: &WorkflowPlan, ends: &StepEnds) -> Vec<StepSummary> {
    workflow
        .services
        .iter()
        .chain(&workflow.steps)
        .map(|step| {
            ends.get(&step.name).unwrap_or(StepSummary {
                name: step.name.clone(),
                status: Status::Skipped,
                exit_code: None,
                duration: Duration::ZERO,
                reason: None,
            })
        })
        .collect()
}

fn finish_workflow<B: Backend>(
    shared: &Shared<B>,
    workflow: &WorkflowPlan,
    started: Instant,
    status: Status,
    reason: Option<String>,
    steps: Vec<StepSummary>,
) -> WorkflowSummary {
    let duration = started.elapsed();
    let reason = reason.map(|reason| shared.mask(&reason));
    shared.events.emit(Event::WorkflowFinished { workflow: workflow.name.clone(), status, duration, reason: reason.clone() });
    WorkflowSummary { name: workflow.name.clone(), status, duration, reason, steps }
}

/// One workflow while it runs.
struct WorkflowRun<B: Backend> {
    shared: Arc<Shared<B>>,
    workflow: Arc<WorkflowPlan>,
    /// `None` only when setting the workflow up failed, and nothing runs.
    handle: Option<Arc<B::Workflow>>,
    ends: StepEnds,
    /// Removals of finished steps' containers, awaited before teardown.
    removals: JoinSet<()>,
}

/// A started service or detached step, stopped when the workflow ends.
struct Background<S> {
    name: String,
    step: Arc<S>,
    output: tokio::task::JoinHandle<()>,
    started: Instant,
    /// Services do not fail their workflow; a detached step's exit code is reported.
    is_service: bool,
    /// How it ended, when the workflow decided that before stopping it (a service never ready).
    failed: Option<(Status, String)>,
}

impl<B: Backend> WorkflowRun<B> {
    /// Reports a step's end, once: its reason masked, recorded for the workflow's summary.
    fn emit_finished(&mut self, name: &str, finished: Finished) {
        let reason = finished.reason.map(|reason| self.shared.mask(&reason));
        let summary = StepSummary {
            name: name.to_owned(),
            status: finished.status,
            exit_code: finished.exit_code,
            duration: finished.duration,
            reason,
        };
        if !self.ends.record(summary.clone()) {
            tracing::error!(workflow = %self.workflow.name, step = name, "a step's end was reported twice; keeping the first");
            return;
        }
        self.shared.events.emit(Event::StepFinished {
            workflow: self.workflow.name.clone(),
            step: summary.name,
            status: summary.status,
            exit_code: summary.exit_code,
            duration: summary.duration,
            reason: summary.reason,
        });
    }

    fn handle(&self) -> &Arc<B::Workflow> {
        self.handle.as_ref().expect("steps run only in a workflow that was set up")
    }

    /// Creates the containers of every step that may run, in the background, a few at a time.
    fn prepare_all(&self) -> HashMap<String, Prepared<B::Step>> {
        let mut prepared = HashMap::new();
        // Creating containers is mostly waiting on the engine; several at once keep a fan-out's
        // containers ready by the time it starts.
        let creations = Arc::new(Semaphore::new(self.shared.creations.max(4)));
        for step in self.workflow.services.iter().chain(&self.workflow.steps) {
            if step.skipped || (step.kind == StepKind::Clone && step.image.is_none()) {
                continue;
            }
            let (sender, receiver) = oneshot::channel();
            let request = step_request(&self.shared, &self.workflow, step);
            let backend = self.shared.backend.clone();
            let handle = self.handle().clone();
            let creations = creations.clone();
            tokio::spawn(async move {
                let _permit = creations.acquire_owned().await;
                let result = guarded(backend.prepare(&handle, &request)).await.unwrap_or_else(|panic| {
                    Err(BackendError::Operation { operation: format!("creating step `{}`", request.name), message: panic })
                });
                // The receiver is gone only if the workflow ended early; remove the container then.
                if let Err(Ok(step)) = sender.send(result) {
                    backend.remove(step).await;
                }
            });
            prepared.insert(step.name.clone(), receiver);
        }
        prepared
    }

    async fn run(&mut self) -> (Status, Option<String>) {
        let mut prepared = self.prepare_all();
        let mut background: Vec<Background<B::Step>> = Vec::new();
        let result = self.run_steps(&mut prepared, &mut background).await;
        // Stop services and detached steps, all at once, then report them.
        let backend = self.shared.backend.clone();
        let stopped = futures_util::future::join_all(background.into_iter().map(|item| {
            let backend = backend.clone();
            async move {
                let ended = guarded(async {
                    backend.stop(&item.step).await;
                    backend.wait(&item.step).await.ok()
                })
                .await;
                (item, ended)
            }
        }))
        .await;
        let mut result = result;
        for (item, ended) in stopped {
            let kind = if item.is_service { "service" } else { "step" };
            let finished = match ended {
                Ok(_) if item.failed.is_some() => {
                    let _ = item.output.await;
                    let (status, reason) = item.failed.clone().unwrap_or((Status::Failure, String::new()));
                    Finished { status, exit_code: None, duration: item.started.elapsed(), reason: Some(reason) }
                }
                Ok(exit_code) => {
                    let _ = item.output.await;
                    // A service ends because the workflow stopped it; its exit code says nothing.
                    let exit_code = if item.is_service { None } else { exit_code };
                    let status = match (item.is_service, exit_code) {
                        (true, _) => Status::Success,
                        (false, Some(0)) | (false, None) => Status::Success,
                        // Stopped by us at the end (SIGKILL/SIGTERM) is the normal end of a detached step.
                        (false, Some(code)) if code == 137 || code == 143 => Status::Success,
                        (false, Some(_)) => Status::Failure,
                    };
                    Finished { status, exit_code, duration: item.started.elapsed(), reason: None }
                }
                // A bug fails the workflow, whatever kind of step. Its output would end only
                // with the teardown; what it still prints is not reported after its end.
                Err(panic) => {
                    item.output.abort();
                    let reason = format!("stopping the {kind} {panic}");
                    if !result.0.is_failure() {
                        result = (Status::Failure, Some(format!("{kind} `{}`: {reason}", item.name)));
                    }
                    Finished { status: Status::Error, exit_code: None, duration: item.started.elapsed(), reason: Some(reason) }
                }
            };
            self.emit_finished(&item.name, finished);
            if let Ok(step) = Arc::try_unwrap(item.step)
                && let Err(panic) = guarded(self.shared.backend.remove(step)).await
            {
                tracing::error!(workflow = %self.workflow.name, step = %item.name, %panic, "removing a step panicked");
            }
        }
        while self.removals.join_next().await.is_some() {}
        for (_, receiver) in prepared.drain() {
            if let Ok(Ok(step)) = receiver.await {
                let _ = guarded(self.shared.backend.remove(step)).await;
            }
        }
        result
    }

    async fn take_prepared(prepared: &mut HashMap<String, Prepared<B::Step>>, name: &str) -> Result<B::Step, String> {
        match prepared.remove(name) {
            Some(receiver) => match receiver.await {
                Ok(Ok(step)) => Ok(step),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err("the step's container could not be created".into()),
            },
            None => Err("the step was not prepared".into()),
        }
    }

    /// Services, their readiness, then the step graph: how the workflow's steps ended.
    async fn run_steps(
        &mut self,
        prepared: &mut HashMap<String, Prepared<B::Step>>,
        background: &mut Vec<Background<B::Step>>,
    ) -> WorkflowEnd {
        if let Err(end) = self.start_services(prepared, background).await {
            return end;
        }
        if let Err(end) = self.wait_until_services_ready(background).await {
            return end;
        }
        self.run_step_graph(prepared, background).await
    }

    /// Starts every service that is not skipped. A service that cannot start ends the workflow.
    async fn start_services(
        &mut self,
        prepared: &mut HashMap<String, Prepared<B::Step>>,
        background: &mut Vec<Background<B::Step>>,
    ) -> Result<(), WorkflowEnd> {
        let workflow = self.workflow.clone();
        let shared = self.shared.clone();
        for service in &workflow.services {
            if service.skipped {
                self.emit_finished(&service.name, skipped(service.skip_reason.clone()));
                continue;
            }
            let started = Instant::now();
            shared.events.emit(Event::StepStarted { workflow: workflow.name.clone(), step: service.name.clone() });
            let step = match Self::take_prepared(prepared, &service.name).await {
                Ok(step) => Arc::new(step),
                Err(reason) => {
                    self.emit_finished(
                        &service.name,
                        Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(reason.clone()) },
                    );
                    self.skip_remaining(&format!("service `{}` could not start", service.name), background);
                    return Err((Status::Error, Some(format!("service `{}`: {reason}", service.name))));
                }
            };
            let start = guarded(shared.backend.start(&step)).await.unwrap_or_else(|panic| {
                Err(BackendError::Operation { operation: format!("starting service `{}`", service.name), message: panic })
            });
            match start {
                Ok(output) => {
                    let task = tokio::spawn(forward_output(
                        output,
                        shared.events.clone(),
                        shared.masker.clone(),
                        workflow.name.clone(),
                        service.name.clone(),
                    ));
                    background.push(Background { name: service.name.clone(), step, output: task, started, is_service: true, failed: None });
                }
                Err(error) => {
                    self.emit_finished(
                        &service.name,
                        Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(error.to_string()) },
                    );
                    self.skip_remaining(&format!("service `{}` could not start", service.name), background);
                    return Err((Status::Error, Some(format!("service `{}`: {error}", service.name))));
                }
            }
        }
        Ok(())
    }

    /// Probes every service with a readiness check until it passes, backing off to its
    /// interval; one that never passes ends the workflow.
    async fn wait_until_services_ready(&mut self, background: &mut [Background<B::Step>]) -> Result<(), WorkflowEnd> {
        let workflow = self.workflow.clone();
        let shared = self.shared.clone();
        for service in workflow.services.iter().filter(|service| !service.skipped) {
            let Some(healthcheck) = &service.healthcheck else { continue };
            let Some(item) = background.iter_mut().find(|item| item.name == service.name) else { continue };
            let interval =
                Duration::from_secs(u64::from(healthcheck.interval_seconds)).max(Duration::from_millis(100)).min(MAX_PROBE_INTERVAL);
            // Most services are up within a moment: probe soon, then back off to the interval.
            // The retries still bound the wait at about `retries × interval`.
            let deadline = Instant::now() + interval * healthcheck.retries.max(1);
            let mut pause = Duration::from_millis(50).min(interval);
            let mut ready = false;
            let mut probe_panic = None;
            loop {
                if shared.cancel.is_cancelled() {
                    break;
                }
                match guarded(shared.backend.probe(&item.step, &healthcheck.command)).await {
                    Ok(Ok(true)) => {
                        ready = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(panic) => {
                        probe_panic = Some(panic);
                        break;
                    }
                }
                if Instant::now() + pause > deadline {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shared.cancel.cancelled() => break,
                }
                pause = (pause * 2).min(interval);
            }
            if !ready {
                let (service_status, reason) = match probe_panic {
                    Some(panic) => (Status::Error, format!("service `{}` did not become ready: its readiness check {panic}", service.name)),
                    None => (
                        Status::Failure,
                        format!("service `{}` did not become ready: `{}` kept failing", service.name, healthcheck.command.join(" ")),
                    ),
                };
                item.failed = Some((service_status, reason.clone()));
                self.skip_remaining(&reason, background);
                let status = if shared.cancel.is_cancelled() { Status::Killed } else { Status::Failure };
                return Err((status, Some(reason)));
            }
        }

        Ok(())
    }

    /// The runtime's own clone step: fills the workspace from the run's source.
    async fn fill_workspace(&mut self, step: &StepPlan) -> Finished {
        let started = Instant::now();
        self.shared.events.emit(Event::StepStarted { workflow: self.workflow.name.clone(), step: step.name.clone() });
        let result = match guarded(self.shared.backend.populate_workspace(self.handle(), &self.shared.workspace)).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(panic) => Err(format!("filling the workspace {panic}")),
        };
        match result {
            Ok(()) => Finished { status: Status::Success, exit_code: None, duration: started.elapsed(), reason: None },
            Err(reason) => Finished { status: Status::Failure, exit_code: None, duration: started.elapsed(), reason: Some(reason) },
        }
    }

    /// The step graph: each step starts once its own dependencies have finished, or is
    /// skipped with the reason `decide_step` gives.
    async fn run_step_graph(
        &mut self,
        prepared: &mut HashMap<String, Prepared<B::Step>>,
        background: &mut Vec<Background<B::Step>>,
    ) -> WorkflowEnd {
        let workflow = self.workflow.clone();
        let shared = self.shared.clone();
        let steps: Vec<&StepPlan> = workflow.steps.iter().collect();
        let mut graph = ReadySet::new(steps.iter().map(|step| (step.name.as_str(), &step.depends_on)));
        // Any failure so far, which is what `when.status` looks at (not only the dependencies').
        let mut failed = false;
        let mut running: JoinSet<StepOutcome<B::Step>> = JoinSet::new();
        let mut step_tasks: HashMap<tokio::task::Id, (usize, Instant)> = HashMap::new();
        loop {
            while let Some(index) = graph.next_due() {
                let step = steps[index];
                if let Some(reason) = decide_step(step, failed, shared.cancel.is_cancelled()) {
                    let status = if shared.cancel.is_cancelled() && !step.skipped { Status::Killed } else { Status::Skipped };
                    graph.finish(index, status.into());
                    let mut finished = skipped(Some(reason));
                    finished.status = status;
                    self.emit_finished(&step.name, finished);
                    continue;
                }
                if step.kind == StepKind::Clone && step.image.is_none() {
                    let finished = self.fill_workspace(step).await;
                    failed |= finished.status.is_failure();
                    graph.finish(index, finished.status.into());
                    self.emit_finished(&step.name, finished);
                    continue;
                }
                let prepared_step = Self::take_prepared(prepared, &step.name).await;
                let shared = shared.clone();
                let workflow_name = workflow.name.clone();
                let step_plan = (*step).clone();
                let task = running.spawn(async move {
                    let (finished, background, leftover) = execute_step(shared, workflow_name, step_plan, prepared_step).await;
                    (index, finished, background, leftover)
                });
                step_tasks.insert(task.id(), (index, Instant::now()));
            }
            let Some(joined) = running.join_next_with_id().await else { break };
            let (index, finished, detached, leftover) = match joined {
                Ok((_, outcome)) => outcome,
                // A panic in the step's task (its backend's `start`, `wait` or `stop`) fails the
                // step like any error, so that its dependents are decided and reported. Its
                // container is the workflow's, removed at teardown.
                Err(error) => {
                    let Some((index, started)) = step_tasks.get(&error.id()).copied() else { continue };
                    let reason = format!("the step {}", join_failure(error));
                    (
                        index,
                        Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(reason) },
                        None,
                        None,
                    )
                }
            };
            let step = steps[index];
            if let Some(leftover) = leftover {
                let backend = shared.backend.clone();
                self.removals.spawn(async move { backend.remove_arc(leftover).await });
            }
            if let Some(detached) = detached {
                // A detached step counts as done for its dependents as soon as it started.
                graph.finish(index, Outcome::Success);
                background.push(detached);
                continue;
            }
            if finished.status.is_failure() && step.failure != pipeline::model::FailurePolicy::Ignore {
                failed = true;
                if step.failure == pipeline::model::FailurePolicy::Cancel {
                    shared.cancel.cancel();
                }
            }
            graph.finish(index, finished.status.into());
            self.emit_finished(&step.name, finished);
        }
        let killed = (0..graph.len()).any(|index| graph.outcome(index) == Some(Outcome::Killed));
        let status = if shared.cancel.is_cancelled() && killed {
            Status::Killed
        } else if failed {
            Status::Failure
        } else {
            Status::Success
        };
        (status, None)
    }

    /// Reports every step not yet finished and not `running` as skipped, after the workflow
    /// could not go on. What runs (services) is reported when it is stopped.
    fn skip_remaining(&mut self, reason: &str, running: &[Background<B::Step>]) {
        let names: Vec<String> = self
            .workflow
            .services
            .iter()
            .chain(&self.workflow.steps)
            .map(|step| step.name.clone())
            .filter(|name| !self.ends.contains(name) && !running.iter().any(|item| &item.name == name))
            .collect();
        for name in names {
            self.emit_finished(&name, skipped(Some(reason.to_owned())));
        }
    }
}

fn skipped(reason: Option<String>) -> Finished {
    Finished { status: Status::Skipped, exit_code: None, duration: Duration::ZERO, reason }
}

/// Why a due step does not run, if it does not.
fn decide_step(step: &StepPlan, workflow_failed: bool, cancelled: bool) -> Option<String> {
    if step.skipped {
        return Some(step.skip_reason.clone().unwrap_or_else(|| "its conditions are false".into()));
    }
    if cancelled {
        return Some("the run was cancelled".into());
    }
    match runs_after(&step.runs_on, workflow_failed) {
        Ok(()) => None,
        Err(Held::AfterFailure) => Some("an earlier step failed".into()),
        Err(Held::OnlyOnFailure) => Some("it runs only after a failure".into()),
    }
}

/// Runs one step to its end (or, for a detached step, until it has started).
async fn execute_step<B: Backend>(
    shared: Arc<Shared<B>>,
    workflow: String,
    step: StepPlan,
    prepared: Result<B::Step, String>,
) -> (Finished, Option<Background<B::Step>>, Option<Arc<B::Step>>) {
    let _slot = if step.detach { None } else { shared.step_slots.clone().acquire_owned().await.ok() };
    let started = Instant::now();
    shared.events.emit(Event::StepStarted { workflow: workflow.clone(), step: step.name.clone() });
    let handle = match prepared {
        Ok(handle) => Arc::new(handle),
        Err(reason) => {
            return (Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(reason) }, None, None);
        }
    };
    if shared.cancel.is_cancelled() {
        return (
            Finished { status: Status::Killed, exit_code: None, duration: started.elapsed(), reason: Some("the run was cancelled".into()) },
            None,
            Some(handle),
        );
    }
    let output = match shared.backend.start(&handle).await {
        Ok(output) => output,
        Err(error) => {
            return (
                Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(error.to_string()) },
                None,
                Some(handle),
            );
        }
    };
    // Should `wait` or `stop` panic, the output is not reported after the step's end.
    let forwarding = AbortOnDropHandle::new(tokio::spawn(forward_output(
        output,
        shared.events.clone(),
        shared.masker.clone(),
        workflow.clone(),
        step.name.clone(),
    )));
    if step.detach {
        let background =
            Background { name: step.name.clone(), step: handle, output: forwarding.detach(), started, is_service: false, failed: None };
        return (Finished { status: Status::Success, exit_code: None, duration: Duration::ZERO, reason: None }, Some(background), None);
    }
    let timeout = step.timeout_seconds.map(|seconds| Duration::from_secs(u64::from(seconds)));
    let sleep_until_timeout = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let mut reason = None;
    let mut killed = false;
    let exit = tokio::select! {
        exit = shared.backend.wait(&handle) => exit,
        _ = sleep_until_timeout => {
            reason = Some(format!("timed out after {} s", step.timeout_seconds.unwrap_or_default()));
            shared.backend.stop(&handle).await;
            shared.backend.wait(&handle).await
        }
        _ = shared.cancel.cancelled() => {
            killed = true;
            reason = Some("the run was cancelled".into());
            shared.backend.stop(&handle).await;
            shared.backend.wait(&handle).await
        }
    };
    // Every line is reported before the step's end.
    let _ = forwarding.await;
    // Images pushed are reported even when a later push of the step failed: they exist.
    for image in shared.backend.published(&handle) {
        shared.events.emit(Event::ImagePublished { workflow: workflow.clone(), step: step.name.clone(), image });
    }
    let finished = match exit {
        _ if killed => Finished { status: Status::Killed, exit_code: None, duration: started.elapsed(), reason },
        Ok(0) if reason.is_none() => Finished { status: Status::Success, exit_code: Some(0), duration: started.elapsed(), reason: None },
        Ok(code) => Finished { status: Status::Failure, exit_code: Some(code), duration: started.elapsed(), reason },
        Err(error) => Finished { status: Status::Error, exit_code: None, duration: started.elapsed(), reason: Some(error.to_string()) },
    };
    (finished, None, Some(handle))
}

/// Removing a step that may still be shared (a handle cloned for a background task).
trait RemoveShared<B: Backend> {
    fn remove_arc(&self, step: Arc<B::Step>) -> impl std::future::Future<Output = ()> + Send;
}

impl<B: Backend> RemoveShared<B> for B {
    async fn remove_arc(&self, step: Arc<B::Step>) {
        if let Ok(step) = Arc::try_unwrap(step) {
            self.remove(step).await;
        }
    }
}
