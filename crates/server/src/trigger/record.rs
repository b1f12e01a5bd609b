//! The store phase of a build: store the build, compile its pipeline for the build's number,
//! store the workflows and steps (blocked while a maintainer's approval is due), cancel the
//! builds it supersedes, and tell the queue, statuses and notifications.

use pipeline::plan::{Plan, WorkflowPlan};
use pipeline::{CompileOptions, Context};
use proto::State;
use proto::api::BuildDiagnostic;
use store::{BuildRecord, NewBuild, NewStep, NewWorkflow, RepoRecord};

use super::fetch::Checkout;
use super::request::{BuildRequest, short};
use super::{TriggerError, WAITING_FOR_APPROVAL};
use crate::state::{AppState, now_ms};

/// Records the build `request` asks for at `checkout`, with `clone_url` (without credentials)
/// as steps see it. A pipeline that is missing or has errors makes a build in state `error`.
pub(super) async fn record(
    state: &AppState,
    repo: &RepoRecord,
    clone_url: &str,
    request: &BuildRequest,
    checkout: Checkout,
) -> Result<BuildRecord, TriggerError> {
    let needs_approval = repo.settings.approval.requires_approval(&request.event, request.from_fork);
    let mut new_build = new_build(repo, request, &checkout, needs_approval);
    if checkout.files.is_empty() {
        new_build.state = State::Error;
        new_build.reason = Some(no_pipeline_reason(&repo.settings.config_path));
        let build = state.store.create_build(&new_build, &[], now_ms()).await?;
        crate::queue::build_changed(state, &build).await;
        return Ok(build);
    }

    // The build's number is part of the pipeline's variables, so the build is stored first and
    // its workflows added once compiled for that number.
    let build = state.store.create_build(&new_build, &[], now_ms()).await?;
    let context = context(repo, clone_url, request, &checkout, &state.config.public_url, build.number);
    let plan = pipeline::plan_files(&checkout.files, &context, CompileOptions::default());
    let diagnostics = build_diagnostics(&plan);
    if plan.has_errors() {
        state.store.set_build_diagnostics(build.id, &diagnostics).await?;
        state.store.set_build_state(build.id, State::Error, Some("the pipeline has errors"), now_ms()).await?;
        let build = state.store.build_by_id(build.id).await?.unwrap_or(build);
        crate::queue::build_changed(state, &build).await;
        return Ok(build);
    }
    if repo.settings.cancel_previous && request.event != "tag" {
        cancel_older_builds(state, repo, &build).await?;
    }
    let mut workflows: Vec<NewWorkflow> = plan.workflows.iter().map(new_workflow).collect();
    // Code nobody with access has looked at waits for someone who has: nothing of it reaches an
    // agent until a maintainer approves.
    let blocked = needs_approval && build.approved_by.is_none();
    if blocked {
        for workflow in workflows.iter_mut().filter(|workflow| workflow.state == State::Pending) {
            workflow.state = State::Blocked;
            workflow.reason = Some(WAITING_FOR_APPROVAL.to_owned());
        }
    }
    state.store.set_build_diagnostics(build.id, &diagnostics).await?;
    state.store.add_workflows(build.id, &workflows, now_ms()).await?;
    if workflows.iter().any(|workflow| workflow.state == State::Blocked) {
        state.store.set_build_state(build.id, State::Blocked, Some(WAITING_FOR_APPROVAL), now_ms()).await?;
    }
    crate::queue::settle_build(state, build.id).await?;
    state.hub.notify(crate::hub::Topic::Queue);
    let build = state.store.build_by_id(build.id).await?.unwrap_or(build);
    tracing::info!(repo = %repo.full_name, build = build.number, event = %build.event, commit = %short(&build.commit), "build queued");
    if !build.state.is_finished() {
        // Finished builds (every workflow skipped) were reported by `settle_build`.
        crate::queue::build_changed(state, &build).await;
    }
    Ok(build)
}

/// The build row, pending: an approver is recorded only where approval is needed.
fn new_build(repo: &RepoRecord, request: &BuildRequest, checkout: &Checkout, needs_approval: bool) -> NewBuild {
    NewBuild {
        repo_id: repo.id,
        event: request.event.clone(),
        state: State::Pending,
        reference: request.reference.clone(),
        branch: request.branch.clone(),
        commit: checkout.commit.clone(),
        message: checkout.message.clone(),
        author: checkout.author.clone(),
        trigger: request.trigger.clone(),
        pull_request: request.pull_request.clone(),
        reason: None,
        diagnostics: Vec::new(),
        variables: request.variables.clone(),
        from_fork: request.from_fork,
        approved_by: request.approved_by.clone().filter(|_| needs_approval),
    }
}

/// The context the pipeline is compiled for: build number `number` of `request` at `checkout`.
fn context(repo: &RepoRecord, clone_url: &str, request: &BuildRequest, checkout: &Checkout, public_url: &str, number: i64) -> Context {
    Context {
        event: request.event.clone(),
        branch: request.branch.clone(),
        tag: request.tag.clone(),
        reference: request.reference.clone(),
        commit_sha: checkout.commit.clone(),
        commit_message: checkout.message.clone(),
        commit_author: checkout.author.clone(),
        commit_author_email: checkout.author_email.clone(),
        changed_files: checkout.changed_files.clone(),
        repo: repo.full_name.clone(),
        // Without credentials: these reach every step's environment.
        repo_clone_url: clone_url.to_owned(),
        repo_url: web_url(clone_url),
        default_branch: repo.settings.default_branch.clone(),
        pull_request: request.pull_request.clone(),
        source_branch: request.source_branch.clone(),
        target_branch: request.target_branch.clone(),
        action: request.action.clone(),
        deploy_target: None,
        cron: request.cron.clone(),
        platform: "linux/amd64".into(),
        instance: instance_host(public_url),
        pipeline_number: number.max(0) as u64,
        extra_environment: request.variables.clone(),
    }
    .normalized()
}

/// Cancels builds of the same branch that are still pending or running.
async fn cancel_older_builds(state: &AppState, repo: &RepoRecord, newer: &BuildRecord) -> Result<(), store::StoreError> {
    for older in state.store.active_builds_of_branch(repo.id, &newer.branch).await? {
        if older.id != newer.id && older.number < newer.number && older.event == newer.event {
            crate::queue::cancel_build(state, &older, &format!("superseded by build {}", newer.number)).await?;
        }
    }
    Ok(())
}

/// A stored workflow: its plan alone (dependencies left to the server), its steps in order.
fn new_workflow(workflow: &WorkflowPlan) -> NewWorkflow {
    let mut alone = workflow.clone();
    alone.depends_on.clear();
    let job_plan = Plan { workflows: vec![alone], diagnostics: Vec::new() };
    let mut labels = workflow.labels.clone();
    if let Some(platform) = &workflow.platform {
        labels.entry("platform".into()).or_insert_with(|| platform.clone());
    }
    let steps = workflow
        .services
        .iter()
        .chain(workflow.steps.iter())
        .map(|step| NewStep {
            name: step.name.clone(),
            state: if step.skipped || workflow.skipped { State::Skipped } else { State::Pending },
            reason: step.skip_reason.clone(),
        })
        .collect();
    let (state, reason) = if workflow.skipped {
        (State::Skipped, workflow.skip_reason.clone())
    } else if !workflow.runnable {
        (State::Error, Some(format!("no agent can run a `{}` pipeline", workflow.runner_type.as_deref().unwrap_or("unknown"))))
    } else {
        (State::Pending, None)
    };
    NewWorkflow {
        name: workflow.name.clone(),
        state,
        reason,
        depends_on: workflow.depends_on.clone(),
        labels,
        plan: serde_json::to_value(&job_plan).unwrap_or(serde_json::Value::Null),
        steps,
    }
}

fn build_diagnostics(plan: &Plan) -> Vec<BuildDiagnostic> {
    plan.diagnostics
        .iter()
        .map(|diagnostic| BuildDiagnostic {
            severity: diagnostic.severity.as_str().into(),
            code: diagnostic.code.to_string(),
            file: diagnostic.file.clone(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message.clone(),
            hint: diagnostic.hint.clone(),
        })
        .collect()
}

fn no_pipeline_reason(config_path: &str) -> String {
    if config_path.is_empty() {
        "no pipeline found at this commit: expected .woodpecker/*.yml, .woodpecker.yml or .drone.yml".into()
    } else {
        format!("no pipeline found at {config_path} at this commit")
    }
}

/// `https://host/owner/name.git` → `https://host/owner/name`; other remotes as they are.
fn web_url(clone_url: &str) -> String {
    clone_url.strip_suffix(".git").unwrap_or(clone_url).to_owned()
}

fn instance_host(public_url: &str) -> String {
    let without_scheme = public_url.split_once("://").map(|(_, rest)| rest).unwrap_or(public_url);
    without_scheme.split('/').next().unwrap_or("localhost").to_owned()
}
