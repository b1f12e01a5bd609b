//! The server side of the agent protocol (`proto::agent`): registration, long-poll leases,
//! state and log updates (idempotent by sequence number), cancellation, completion, heartbeats.
//!
//! The shared agent secret only registers; registration hands the agent a token of its own, and
//! every other request is that agent's (`AgentCaller`): it leases for itself and may report
//! only on jobs leased to it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use proto::State;
use proto::agent::{
    CANCEL_WAIT_SECONDS, CancelWaitResponse, HEARTBEAT_SECONDS, Heartbeat, HeartbeatResponse, JobDone, JobUpdates, JobUpdatesResponse,
    LEASE_WAIT_SECONDS, LeaseRequest, RegisterRequest, RegisterResponse, StepUpdate,
};
use store::{AgentRecord, StepChange, StoreError, WorkflowRecord};

use crate::auth::{AgentCaller, AgentSecret};
use crate::crypto::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::hub::Topic;
use crate::state::{AppState, now_ms};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/lease", post(lease))
        .route("/heartbeat", post(heartbeat))
        .route("/jobs/{job}/updates", post(updates))
        .route("/jobs/{job}/cancel-wait", post(cancel_wait))
        .route("/jobs/{job}/done", post(done))
}

/// Longest agent name, label key or value accepted.
const MAX_AGENT_TEXT: usize = 128;
/// Most labels an agent may declare.
const MAX_AGENT_LABELS: usize = 64;

async fn register(
    _secret: AgentSecret,
    AxumState(state): AxumState<AppState>,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<Json<RegisterResponse>> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_AGENT_TEXT || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", format!("an agent needs a name of 1 to {MAX_AGENT_TEXT} characters")));
    }
    if request.labels.len() > MAX_AGENT_LABELS
        || request
            .labels
            .iter()
            .any(|(key, value)| key.is_empty() || key.chars().count() > MAX_AGENT_TEXT || value.chars().count() > MAX_AGENT_TEXT)
    {
        return Err(ApiError::invalid(
            "labels",
            format!("at most {MAX_AGENT_LABELS} labels, each key and value at most {MAX_AGENT_TEXT} characters"),
        ));
    }
    let previous = state.store.agent_by_name(name).await?;
    let same_agent = match (&previous, &request.token) {
        (Some(_), Some(token)) => state.store.agent_token_matches(name, &token_hash(token)).await?,
        _ => false,
    };
    if let Some(previous) = &previous
        && !same_agent
    {
        let silent = now_ms() - previous.last_seen;
        if silent < state.config.agent_lost_after.as_millis() as i64 {
            // Another process under this name is alive: taking the name would take its work.
            tracing::warn!(agent = %previous.name, "refused a registration under the name of a connected agent");
            return Err(ApiError::conflict(format!(
                "agent {name} is connected (seen {}s ago): give this agent its own --name, or wait until the other has been silent for {}s",
                silent / 1000,
                state.config.agent_lost_after.as_secs()
            )));
        }
    }
    let token = new_token("gtg_");
    let new_agent = store::NewAgent { name: name.to_owned(), labels: request.labels, capacity: request.capacity, version: request.version };
    let agent = state.store.register_agent(&new_agent, &token_hash(&token), now_ms()).await?;
    tracing::info!(agent = %agent.name, id = agent.id, restart = same_agent, "agent registered");
    // An agent registers when it starts: whatever ran under its name before is gone with the old
    // process.
    crate::queue::lose_workflows_of(&state, &agent, &format!("agent {} restarted", agent.name)).await?;
    Ok(Json(RegisterResponse { agent_id: agent.id, heartbeat_seconds: HEARTBEAT_SECONDS, token }))
}

/// The `agent_id` a body names must be the token's agent.
fn same_agent(agent: &AgentRecord, claimed: i64) -> ApiResult<()> {
    if agent.id == claimed {
        return Ok(());
    }
    tracing::warn!(agent = %agent.name, claimed, "an agent's request named another agent");
    Err(ApiError::forbidden(format!("this token belongs to agent {}, not agent {claimed}", agent.name)))
}

/// Holds the request until a workflow this agent may run is pending, or the wait is over (204).
async fn lease(
    AgentCaller(agent): AgentCaller,
    AxumState(state): AxumState<AppState>,
    Json(request): Json<LeaseRequest>,
) -> ApiResult<Response> {
    same_agent(&agent, request.agent_id)?;
    let deadline = Instant::now() + Duration::from_secs(LEASE_WAIT_SECONDS);
    loop {
        let mut queue_changed = state.hub.subscribe(Topic::Queue);
        state.store.touch_agent(agent.id, now_ms()).await?;
        if let Some(job) = crate::queue::lease(&state, &agent).await? {
            return Ok(Json(job).into_response());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // Other servers on the same database do not wake us: look again every few seconds.
        tokio::select! {
            _ = queue_changed.wait(left.min(Duration::from_secs(3))) => {}
            _ = state.shutdown.cancelled() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// The workflow `job` if `agent` holds it and it is running. A request about a job another
/// agent holds is refused and logged: an agent may report only on its own jobs.
async fn leased(state: &AppState, job: i64, agent: &AgentRecord) -> ApiResult<WorkflowRecord> {
    let workflow = state.store.workflow_by_id(job).await?.ok_or_else(|| ApiError::not_found(format!("job {job} does not exist")))?;
    held_by(workflow, agent)
}

/// `workflow` when `agent` holds it and it is running; a conflict otherwise.
fn held_by(workflow: WorkflowRecord, agent: &AgentRecord) -> ApiResult<WorkflowRecord> {
    let job = workflow.id;
    if workflow.agent_id != Some(agent.id) || workflow.state != State::Running {
        if workflow.agent_id.is_some_and(|holder| holder != agent.id) {
            tracing::warn!(agent = %agent.name, job, holder = workflow.agent_id, "an agent reported on a job leased to another agent");
        }
        return Err(ApiError::conflict(format!("job {job} is no longer leased to this agent (it is {})", workflow.state)));
    }
    Ok(workflow)
}

async fn updates(
    AgentCaller(agent): AgentCaller,
    AxumState(state): AxumState<AppState>,
    Path(job): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult<Json<JobUpdatesResponse>> {
    // Read directly rather than through `Json`, whose error paths cost a tenth of ingesting a
    // large log: these bodies are written by agents, not people.
    let request: JobUpdates =
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(format!("the updates body is not valid: {error}")))?;
    same_agent(&agent, request.agent_id)?;
    let workflow = leased(&state, job, &agent).await?;
    let steps = state.store.steps_of_workflow(workflow.id).await?;
    let step_id = |name: &str| steps.iter().find(|step| step.name == name).map(|step| step.id);
    let mut next_seq = BTreeMap::new();
    for batch in &request.logs {
        let Some(id) = step_id(&batch.step) else {
            return Err(ApiError::invalid("logs.step", format!("workflow {} has no step `{}`", workflow.name, batch.step)));
        };
        let next = match state.store.logs().append(id, batch.first_seq, &batch.lines).await {
            Ok(next) => next,
            Err(StoreError::LogGap { expected, .. }) => expected,
            Err(error) => return Err(error.into()),
        };
        state.store.set_step_log_lines(id, next).await?;
        metrics::counter!("gantry_log_bytes_total").increment(batch.lines.iter().map(|line| line.text.len() as u64 + 1).sum());
        next_seq.insert(batch.step.clone(), next);
        state.hub.notify(Topic::Step(id));
    }
    apply_steps(&state, &workflow, &request.steps, &steps).await?;
    crate::artifacts::record(&state, &workflow, &request.published).await?;
    Ok(Json(JobUpdatesResponse { next_seq, cancel: workflow.cancel_requested }))
}

async fn apply_steps(state: &AppState, workflow: &WorkflowRecord, updates: &[StepUpdate], steps: &[store::StepRecord]) -> ApiResult<()> {
    for update in updates {
        let Some(step) = steps.iter().find(|step| step.name == update.step) else {
            return Err(ApiError::invalid("steps.step", format!("workflow {} has no step `{}`", workflow.name, update.step)));
        };
        let change = StepChange {
            name: update.step.clone(),
            state: update.state,
            exit_code: update.exit_code,
            reason: update.reason.clone(),
            started: update.started_ms,
            finished: update.finished_ms,
        };
        state.store.update_step(workflow.id, &change).await?;
        if update.state.is_finished()
            && !step.state.is_finished()
            && let (Some(started), Some(finished)) = (update.started_ms, update.finished_ms)
        {
            metrics::histogram!("gantry_step_duration_seconds").record((finished - started).max(0) as f64 / 1000.0);
        }
        state.hub.notify(Topic::Step(step.id));
        if update.state != step.state {
            state.hub.notify(Topic::Build(workflow.build_id));
        }
    }
    Ok(())
}

async fn cancel_wait(
    AgentCaller(agent): AgentCaller,
    AxumState(state): AxumState<AppState>,
    Path(job): Path<i64>,
    Json(request): Json<LeaseRequest>,
) -> ApiResult<Json<CancelWaitResponse>> {
    same_agent(&agent, request.agent_id)?;
    let deadline = Instant::now() + Duration::from_secs(CANCEL_WAIT_SECONDS);
    loop {
        let mut cancelled = state.hub.subscribe(Topic::Cancel(job));
        let workflow = match leased(&state, job, &agent).await {
            Ok(workflow) => workflow,
            Err(error) if error.status == StatusCode::CONFLICT => return Ok(Json(CancelWaitResponse { cancelled: true })),
            Err(error) => return Err(error),
        };
        if workflow.cancel_requested {
            return Ok(Json(CancelWaitResponse { cancelled: true }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Json(CancelWaitResponse { cancelled: false }));
        }
        tokio::select! {
            _ = cancelled.wait(left.min(Duration::from_secs(1))) => {}
            _ = state.shutdown.cancelled() => return Ok(Json(CancelWaitResponse { cancelled: false })),
        }
    }
}

async fn done(
    AgentCaller(agent): AgentCaller,
    AxumState(state): AxumState<AppState>,
    Path(job): Path<i64>,
    Json(request): Json<JobDone>,
) -> ApiResult<StatusCode> {
    same_agent(&agent, request.agent_id)?;
    let workflow = state.store.workflow_by_id(job).await?.ok_or_else(|| ApiError::not_found(format!("job {job} does not exist")))?;
    if workflow.agent_id == Some(agent.id) && workflow.state.is_finished() {
        // A retried `done` whose answer was lost.
        return Ok(StatusCode::OK);
    }
    // Judged on the record just read: a second read could see the workflow finished by a `done`
    // racing this one, and answer that retry with a conflict.
    let workflow = held_by(workflow, &agent)?;
    let steps = state.store.steps_of_workflow(workflow.id).await?;
    apply_steps(&state, &workflow, &request.steps, &steps).await?;
    // Steps the agent never reported (it failed before them) are skipped, not left pending.
    let steps = crate::queue::end_unfinished_steps(&state, workflow.id, request.state, None, Some(now_ms())).await?;
    for step in &steps {
        if let Err(error) = state.store.logs().finish(step.id).await {
            tracing::warn!(%error, step = step.id, "cannot compress a finished step's log");
        }
        state.hub.notify(Topic::Step(step.id));
    }
    let final_state = if workflow.cancel_requested && request.state.is_failure() { State::Killed } else { request.state };
    // Of two `done` for one job (a retry racing its original), one finishes the workflow and
    // settles the build; the other changes nothing.
    if state.store.set_workflow_state(workflow.id, final_state, request.reason.as_deref(), now_ms()).await? {
        tracing::info!(workflow = workflow.id, state = %final_state, "workflow finished");
        state.hub.notify(Topic::Build(workflow.build_id));
        crate::queue::settle_build(&state, workflow.build_id).await?;
    }
    Ok(StatusCode::OK)
}

async fn heartbeat(
    AgentCaller(agent): AgentCaller,
    AxumState(state): AxumState<AppState>,
    Json(request): Json<Heartbeat>,
) -> ApiResult<Json<HeartbeatResponse>> {
    same_agent(&agent, request.agent_id)?;
    state.store.touch_agent(agent.id, now_ms()).await?;
    let mut stop = Vec::new();
    for job in request.jobs {
        let keep = match state.store.workflow_by_id(job).await? {
            Some(workflow) => workflow.agent_id == Some(agent.id) && workflow.state == State::Running && !workflow.cancel_requested,
            None => false,
        };
        if !keep {
            stop.push(job);
        }
    }
    Ok(Json(HeartbeatResponse { stop }))
}
