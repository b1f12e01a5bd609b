//! One leased job from start to report: checks (plan, trust, secrets), the clone, the run on
//! the runtime, the wait for the server to have every line, and the final `done`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_docker::DockerBackend;
use pipeline::plan::{Plan, StepKind, StepPlan};
use proto::agent::{Job, JobDone, LogStream};
use proto::{State, Trust};
use runtime::run::RunError;
use runtime::{EventSink, PublishOptions, RegistryCredential, RunOptions, RunSummary, Status, WorkspaceSource};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::client::{Backoff, ServerClient};
use crate::clone::{CloneError, CloneRequest};
use crate::control::JobControl;
use crate::report::{self, Destination, Flushed, JobSink, state_of};

/// What every job of an agent shares.
pub(crate) struct AgentContext {
    pub client: ServerClient,
    /// The id the registration gave; fixed for the life of the process.
    pub agent_id: i64,
    /// The agent's name and its server's address: who built an image, and where the build is.
    pub name: String,
    pub server: String,
    pub backend: Arc<DockerBackend>,
    pub work_dir: PathBuf,
    pub parallel: usize,
    /// Cancelled when the agent stops trying to reach the server (a while after shutdown).
    pub abandon: CancellationToken,
    /// True while the Docker engine is gone: a job that found it gone sets it, and the lease
    /// loop, which watches it, leases nothing (and drops a lease request in flight) until the
    /// engine answers again, rather than fail every job of the queue.
    pub engine_down: tokio::sync::watch::Sender<bool>,
}

/// How long the engine gets to answer a ping before it counts as gone.
const ENGINE_PING_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentContext {
    pub(crate) fn agent_id(&self) -> i64 {
        self.agent_id
    }

    pub(crate) fn engine_is_down(&self) -> bool {
        *self.engine_down.borrow()
    }

    /// Whether the engine answers a ping (in time); why not when it does not.
    pub(crate) async fn engine_answers(&self) -> Result<(), String> {
        match tokio::time::timeout(ENGINE_PING_TIMEOUT, self.backend.engine().ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("the docker engine did not answer within {} s", ENGINE_PING_TIMEOUT.as_secs())),
        }
    }
}

/// How a job ended.
#[derive(Debug)]
struct Outcome {
    state: State,
    reason: Option<String>,
}

impl Outcome {
    fn new(state: State, reason: impl Into<String>) -> Outcome {
        Outcome { state, reason: Some(reason.into()) }
    }
}

/// Runs a job and reports it. Returns once the server has the final state (or the job was
/// taken away, or the agent gave up at shutdown) and the job's files are removed.
pub(crate) async fn run_job(context: Arc<AgentContext>, job: Job, control: JobControl) {
    let span = tracing::info_span!("job", job = job.id, build = job.build_number, repo = %job.repo.full_name);
    async move {
        tracing::info!(commit = %job.commit, "job started");
        // The job belongs to the agent as registered when it was leased.
        let agent_id = context.agent_id();
        let destination = Destination { client: context.client.clone(), agent_id, job_id: job.id };
        let (sink, uploads) = report::start(destination, control.clone(), context.abandon.clone());
        let watching = CancellationToken::new();
        let watcher =
            tokio::spawn(watch_cancel(context.client.clone(), agent_id, job.id, control.clone(), watching.clone()).in_current_span());

        let folder = tempfile::Builder::new().prefix(&format!("job-{}-", job.id)).tempdir_in(&context.work_dir);
        let outcome = match &folder {
            Ok(folder) => execute(&context, &job, folder.path(), &sink, &control).await,
            Err(error) => {
                Outcome::new(State::Error, format!("cannot make a folder for the job in {}: {error}", context.work_dir.display()))
            }
        };
        finish_unreported_steps(&job.plan, &sink, &outcome);
        let flushed = uploads.finish().await;
        watching.cancel();
        let _ = watcher.await;

        let steps = sink.final_steps(step_names(&job.plan));
        let done = JobDone { agent_id, state: outcome.state, reason: outcome.reason.clone(), steps };
        match flushed {
            Flushed::Everything | Flushed::Refused(_) => send_done(&context, job.id, &done).await,
            Flushed::JobGone => tracing::info!("not reporting the end of a job the server took away"),
            Flushed::Abandoned => tracing::warn!("the server did not take the job's logs before shutdown; its end is not reported"),
        }
        tracing::info!(state = %outcome.state, reason = outcome.reason.as_deref().unwrap_or(""), "job finished");
        if let Ok(folder) = folder {
            // Removing a large checkout takes a while: not on a worker thread.
            let _ = tokio::task::spawn_blocking(move || drop(folder)).await;
        }
    }
    .instrument(span)
    .await;
}

/// A job the agent cannot read (a newer server's plan): reported as an error at once.
pub(crate) async fn report_unreadable(context: Arc<AgentContext>, job_id: i64, message: String) {
    let span = tracing::info_span!("job", job = job_id);
    async move {
        tracing::error!(%message, "the leased job cannot be read");
        let done = JobDone {
            agent_id: context.agent_id(),
            state: State::Error,
            reason: Some(format!("the agent cannot read this job (is it older than the server?): {message}")),
            steps: Vec::new(),
        };
        send_done(&context, job_id, &done).await;
    }
    .instrument(span)
    .await;
}

async fn execute(context: &AgentContext, job: &Job, folder: &Path, sink: &Arc<JobSink>, control: &JobControl) -> Outcome {
    let plan = &job.plan;
    if plan.has_errors() {
        return Outcome::new(State::Error, "the pipeline has errors; `gantry lint` lists them");
    }
    let refusals = trust_refusals(plan, job.trust);
    if !refusals.is_empty() {
        return Outcome::new(State::Error, refusals.join("; "));
    }
    if let Some(missing) = missing_secret(plan, &job.secrets) {
        return Outcome::new(State::Error, missing.to_string());
    }
    let started = Instant::now();
    let timeout = (job.timeout_seconds > 0).then(|| Duration::from_secs(job.timeout_seconds));

    let workspace = match builtin_clone_step(plan) {
        None => WorkspaceSource::Empty,
        Some(step) => {
            let checkout = folder.join("repository");
            let helper = folder.join("git");
            if let Err(error) = std::fs::create_dir(&checkout).and_then(|()| std::fs::create_dir(&helper)) {
                return Outcome::new(State::Error, format!("cannot make the clone folder in {}: {error}", folder.display()));
            }
            sink.step_started(&step.name);
            let request = CloneRequest {
                url: &job.repo.clone_url,
                commit: &job.commit,
                reference: &job.reference,
                credentials: job.repo.clone_credentials.as_ref(),
                allow_local: job.repo.allow_local,
                options: step.clone.clone().unwrap_or_default(),
            };
            let secrets: Vec<&str> = job.secrets.values().map(String::as_str).collect();
            let output = |stream: LogStream, line: String| sink.log(&step.name, stream, line);
            let cloning = crate::clone::clone(&request, &checkout, &helper, &secrets, &output);
            let result = tokio::select! {
                result = cloning => result,
                _ = control.token().cancelled() => {
                    let reason = control.reason().unwrap_or_else(|| "cancelled".into());
                    sink.step_finished(&step.name, State::Killed, None, Some(reason.clone()));
                    return Outcome::new(State::Killed, reason);
                }
                _ = sleep_until_timeout(timeout) => {
                    let reason = timed_out(job.timeout_seconds);
                    sink.step_finished(&step.name, State::Killed, None, Some(reason.clone()));
                    return Outcome::new(State::Killed, reason);
                }
            };
            match result {
                Ok(()) => WorkspaceSource::WorkingTree(checkout),
                Err(error) => {
                    tracing::warn!(%error, "the clone failed");
                    let reason = error.to_string();
                    if !matches!(error, CloneError::Failed { .. }) {
                        // git's own output says why a command failed; other errors only here.
                        sink.log(&step.name, LogStream::Stderr, reason.clone());
                    }
                    sink.step_finished(&step.name, State::Failure, None, Some(reason.clone()));
                    return Outcome::new(State::Failure, format!("the clone failed: {reason}"));
                }
            }
        }
    };

    let publish = PublishOptions {
        push: true,
        registries: job
            .registries
            .iter()
            .map(|auth| RegistryCredential { host: auth.host.clone(), username: auth.username.clone(), password: auth.password.clone() })
            .collect(),
        builder_id: format!("{}/agents/{}", context.server, context.name),
        build_url: Some(format!("{}/api/v1/repos/{}/builds/{}", context.server, job.repo.full_name, job.build_number)),
        pipeline_files: pipeline_file_digests(plan, &workspace),
        source_date: match &workspace {
            WorkspaceSource::WorkingTree(checkout) => gitcmd::output_in(checkout, &["log", "-1", "--format=%cI"])
                .ok()
                .and_then(|output| runtime::publish::commit_date(&String::from_utf8_lossy(&output))),
            _ => None,
        },
    };
    let options = RunOptions {
        parallel: context.parallel,
        timeout: timeout.map(|timeout| timeout.saturating_sub(started.elapsed())),
        workspace,
        secrets: job.secrets.clone(),
        publish,
    };
    let events: Arc<dyn EventSink> = sink.clone();
    match runtime::run_plan(plan, context.backend.clone(), options, events, control.token().clone()).await {
        Ok(summary) => {
            record_summary(&summary, sink);
            let outcome = outcome_of(&summary, control, job.timeout_seconds);
            // A step whose engine went away fails with whatever the broken connection said
            // ("error reading a body from connection"): ask the engine whether it is still there,
            // so that the workflow says why, and the agent stops leasing until it is back.
            if matches!(outcome.state, State::Error | State::Failure)
                && let Err(gone) = context.engine_answers().await
            {
                context.engine_down.send_replace(true);
                return Outcome::new(State::Error, format!("the docker engine went away while the workflow ran: {gone}"));
            }
            outcome
        }
        Err(RunError::Backend(error)) => {
            if matches!(error, runtime::BackendError::Unavailable { .. }) {
                context.engine_down.send_replace(true);
            }
            Outcome::new(State::Error, format!("the docker engine cannot run steps: {error}"))
        }
        Err(error) => Outcome::new(State::Error, error.to_string()),
    }
}

async fn sleep_until_timeout(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

fn timed_out(seconds: u64) -> String {
    format!("the workflow timed out after {seconds} s")
}

/// The job's state from the run: the workflow's, or killed when the run was stopped.
/// sha256 of each workflow's file in the checkout, for the provenance of the images it builds.
fn pipeline_file_digests(plan: &Plan, workspace: &WorkspaceSource) -> BTreeMap<String, String> {
    let WorkspaceSource::WorkingTree(checkout) = workspace else { return BTreeMap::new() };
    plan.workflows
        .iter()
        .filter_map(|workflow| {
            let text = std::fs::read(checkout.join(&workflow.file)).ok()?;
            use sha2::Digest as _;
            Some((workflow.file.clone(), hex::encode(sha2::Sha256::digest(&text))))
        })
        .collect()
}

fn outcome_of(summary: &RunSummary, control: &JobControl, timeout_seconds: u64) -> Outcome {
    let workflow = match summary.workflows.as_slice() {
        [workflow] => Some(workflow),
        _ => None,
    };
    if summary.status == Status::Killed {
        let reason = control
            .reason()
            .or_else(|| {
                (timeout_seconds > 0 && summary.duration >= Duration::from_secs(timeout_seconds)).then(|| timed_out(timeout_seconds))
            })
            .or_else(|| workflow.and_then(|workflow| workflow.reason.clone()));
        return Outcome { state: State::Killed, reason };
    }
    match workflow {
        Some(workflow) => Outcome { state: state_of(workflow.status), reason: workflow.reason.clone() },
        None => Outcome { state: state_of(summary.status), reason: None },
    }
}

/// Steps the runtime summarised without an event (those of a skipped workflow) are reported
/// with their summary's state.
fn record_summary(summary: &RunSummary, sink: &JobSink) {
    for workflow in &summary.workflows {
        for step in &workflow.steps {
            if !sink.state(&step.name).is_some_and(State::is_finished) {
                sink.step_finished(&step.name, state_of(step.status), step.exit_code, step.reason.clone().or(workflow.reason.clone()));
            }
        }
    }
}

/// Every step gets a final state: a job that stopped before its steps reports them skipped.
fn finish_unreported_steps(plan: &Plan, sink: &JobSink, outcome: &Outcome) {
    for name in step_names(plan) {
        match sink.state(name) {
            Some(state) if state.is_finished() => {}
            // Started, and its end never came (the runtime failed): it ended with the job.
            Some(_) => {
                let state = if outcome.state == State::Killed { State::Killed } else { State::Error };
                sink.step_finished(name, state, None, outcome.reason.clone());
            }
            None => {
                let reason = match outcome.state {
                    State::Killed => "the workflow was stopped before this step".to_owned(),
                    _ => match &outcome.reason {
                        Some(reason) => format!("the workflow could not run: {reason}"),
                        None => "the workflow did not run it".to_owned(),
                    },
                };
                sink.step_finished(name, State::Skipped, None, Some(reason));
            }
        }
    }
}

/// Names of every step of the plan: services, then steps, per workflow.
fn step_names(plan: &Plan) -> impl Iterator<Item = &str> {
    plan.workflows.iter().flat_map(|workflow| workflow.services.iter().chain(&workflow.steps)).map(|step| step.name.as_str())
}

/// The runtime's own clone step, when a workflow that runs has one that runs.
fn builtin_clone_step(plan: &Plan) -> Option<&StepPlan> {
    plan.workflows
        .iter()
        .filter(|workflow| !workflow.skipped && workflow.runnable)
        .flat_map(|workflow| &workflow.steps)
        .find(|step| step.kind == StepKind::Clone && step.image.is_none() && !step.skipped)
}

/// The first secret a step that may run references and the job does not carry.
fn missing_secret(plan: &Plan, secrets: &BTreeMap<String, String>) -> Option<RunError> {
    for workflow in plan.workflows.iter().filter(|workflow| !workflow.skipped) {
        for step in workflow.services.iter().chain(&workflow.steps).filter(|step| !step.skipped) {
            if let Some(reference) = step.secrets.iter().find(|reference| !secrets.contains_key(&reference.secret)) {
                return Some(RunError::MissingSecret {
                    workflow: workflow.name.clone(),
                    step: step.name.clone(),
                    secret: reference.secret.clone(),
                });
            }
        }
    }
    None
}

/// What the plan needs beyond the repository's trust, one message per finding.
fn trust_refusals(plan: &Plan, trust: Trust) -> Vec<String> {
    let granted = runtime::trust::TrustFlags { privileged: trust.privileged, volumes: trust.volumes, network: trust.network };
    runtime::trust::refused(plan, granted)
        .into_iter()
        .map(|refusal| {
            format!(
                "step `{}` needs trust: {}; an admin must allow {} for this repository",
                refusal.step,
                refusal.reason,
                refusal.kind.allows()
            )
        })
        .collect()
}

/// Long-polls the server for a cancel of the job until `finished`.
async fn watch_cancel(client: ServerClient, agent_id: i64, job_id: i64, control: JobControl, finished: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            result = client.cancel_wait(job_id, agent_id) => result,
            _ = finished.cancelled() => return,
        };
        match result {
            Ok(true) => {
                tracing::info!("the server cancelled the job");
                control.cancel("cancelled on the server");
                return;
            }
            Ok(false) => backoff.reset(),
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "waiting for a cancel failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = finished.cancelled() => return,
                }
            }
            // The server has no cancel-wait for this job (or none at all): heartbeats and
            // update answers still carry cancels.
            Err(error) => {
                tracing::warn!(%error, "the server refuses to report cancels of the job; relying on heartbeats");
                return;
            }
        }
    }
}

/// Sends the job's end until the server has it, it refuses it, or the agent gives up.
async fn send_done(context: &AgentContext, job_id: i64, done: &JobDone) {
    let mut backoff = Backoff::new();
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            result = context.client.done(job_id, done) => result,
            _ = context.abandon.cancelled() => {
                tracing::warn!("the server did not take the job's end before shutdown");
                return;
            }
        };
        match result {
            Ok(()) => return,
            Err(error) if error.is_retryable() => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "reporting the job's end failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = context.abandon.cancelled() => {
                        tracing::warn!("the server did not take the job's end before shutdown");
                        return;
                    }
                }
            }
            Err(error) if error.job_is_gone() => {
                tracing::info!(%error, "the server no longer assigns this job to this agent; its end is not reported");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "the server refuses the job's end");
                return;
            }
        }
    }
}
