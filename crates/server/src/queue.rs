//! The queue: which pending workflow an agent gets, how a build moves on when its workflows
//! change, cancellation, and what happens to the workflows of an agent that went silent. The
//! queue itself is the store's `pending` workflows, so it survives restarts; this module only
//! decides.

use std::collections::{BTreeMap, HashMap};

use pipeline::graph::{Held, ReadySet, runs_after};
use pipeline::plan::Plan;
use proto::State;
use proto::agent::Job;
use store::{AgentRecord, BuildRecord, StoreError, WorkflowRecord};

use crate::hub::Topic;
use crate::state::{AppState, now_ms};

/// Most re-queues of one workflow after lost agents before it is failed instead.
const MAX_ATTEMPTS: i64 = 3;

/// True when an agent with `agent_labels` may run a workflow asking for `wanted`: every wanted
/// label is present with the same value (an agent's `*` accepts any value).
pub fn labels_match(wanted: &BTreeMap<String, String>, agent_labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(key, value)| agent_labels.get(key).is_some_and(|have| have == value || have == "*"))
}

/// The first pending workflow `agent` may run, claimed for it, as a job.
pub async fn lease(state: &AppState, agent: &AgentRecord) -> Result<Option<Job>, StoreError> {
    let candidates = state.store.pending_workflows(200).await?;
    // Per build with dependent workflows: its workflows and their graph, read once.
    let mut graphs: HashMap<i64, (Vec<WorkflowRecord>, ReadySet)> = HashMap::new();
    for workflow in candidates {
        if workflow.cancel_requested || !labels_match(&workflow.labels, &agent.labels) {
            continue;
        }
        if !workflow.depends_on.is_empty() {
            if let std::collections::hash_map::Entry::Vacant(entry) = graphs.entry(workflow.build_id) {
                let siblings = state.store.workflows_of_build(workflow.build_id).await?;
                let graph = workflow_graph(&siblings);
                entry.insert((siblings, graph));
            }
            let (siblings, graph) = &graphs[&workflow.build_id];
            let Some(index) = siblings.iter().position(|sibling| sibling.id == workflow.id) else { continue };
            if !graph.is_due(index) {
                continue;
            }
        }
        let Some(build) = state.store.build_by_id(workflow.build_id).await? else { continue };
        let Some(repo) = state.store.repo_by_id(build.repo_id).await? else { continue };
        let plan: Plan = match serde_json::from_value(workflow.plan.clone()) {
            Ok(plan) => plan,
            Err(error) => {
                finish_unrun(state, &workflow, State::Error, &format!("the stored plan cannot be read: {error}")).await?;
                continue;
            }
        };
        let secrets = match crate::secrets::for_job(state, &repo, &build, &plan).await {
            Ok(secrets) => secrets,
            Err(reason) => {
                finish_unrun(state, &workflow, State::Error, &reason).await?;
                continue;
            }
        };
        let registries = match crate::secrets::registries_for_job(state, &repo, &build, &plan).await {
            Ok(registries) => registries,
            Err(reason) => {
                finish_unrun(state, &workflow, State::Error, &reason).await?;
                continue;
            }
        };
        let job_repository = crate::trigger::job_repository(state, &repo).await?;
        if !state.store.claim_workflow(workflow.id, agent.id, now_ms()).await? {
            continue;
        }
        state.hub.notify(Topic::Build(build.id));
        if build.state == State::Pending {
            state.store.set_build_state(build.id, State::Running, None, now_ms()).await?;
            if let Some(build) = state.store.build_by_id(build.id).await? {
                build_changed(state, &build).await;
            }
        }
        tracing::info!(agent = %agent.name, repo = %repo.full_name, build = build.number, workflow = %workflow.name, "workflow leased");
        return Ok(Some(Job {
            id: workflow.id,
            build_id: build.id,
            build_number: build.number,
            repo: job_repository,
            commit: build.commit.clone(),
            reference: build.reference.clone(),
            plan,
            secrets,
            // A fork's code runs with no trust at all, whatever the repository is allowed.
            trust: if build.from_fork { proto::Trust::default() } else { repo.settings.trust },
            timeout_seconds: u64::from(repo.settings.timeout_minutes.max(1)) * 60,
            registries,
        }));
    }
    Ok(None)
}

/// The build's workflows as a dependency graph, each finished one with its outcome.
fn workflow_graph(workflows: &[WorkflowRecord]) -> ReadySet {
    let mut graph = ReadySet::new(workflows.iter().map(|workflow| (workflow.name.as_str(), &workflow.depends_on)));
    for (index, workflow) in workflows.iter().enumerate() {
        match workflow.state.outcome() {
            Some(outcome) => graph.finish(index, outcome),
            None if workflow.state != State::Pending => graph.start(index),
            None => {}
        }
    }
    graph
}

/// Ends a workflow that will not reach an agent, its unfinished steps skipped.
pub async fn finish_unrun(state: &AppState, workflow: &WorkflowRecord, final_state: State, reason: &str) -> Result<(), StoreError> {
    let now = now_ms();
    end_unfinished_steps(state, workflow.id, State::Skipped, Some(&format!("not run: {reason}")), Some(now)).await?;
    if state.store.set_workflow_state(workflow.id, final_state, Some(reason), now).await? {
        settle_build(state, workflow.build_id).await?;
    }
    Ok(())
}

/// Ends every unfinished step of a workflow: a running one becomes `running_becomes`, the others
/// `skipped`, with `reason` and `finished`; their followers are woken. Returns the workflow's
/// steps as they were before.
pub async fn end_unfinished_steps(
    state: &AppState,
    workflow_id: i64,
    running_becomes: State,
    reason: Option<&str>,
    finished: Option<i64>,
) -> Result<Vec<store::StepRecord>, StoreError> {
    let steps = state.store.steps_of_workflow(workflow_id).await?;
    for step in steps.iter().filter(|step| !step.state.is_finished()) {
        let change = store::StepChange {
            name: step.name.clone(),
            state: if step.state == State::Running { running_becomes } else { State::Skipped },
            exit_code: None,
            reason: reason.map(str::to_owned),
            started: None,
            finished,
        };
        state.store.update_step(workflow_id, &change).await?;
        state.hub.notify(Topic::Step(step.id));
    }
    Ok(steps)
}

/// Moves a build on after its workflows changed: dependents whose dependencies are done are
/// skipped when their `runs_on` does not match the outcome, and a build whose workflows have all
/// finished gets its final state.
pub async fn settle_build(state: &AppState, build_id: i64) -> Result<(), StoreError> {
    loop {
        let workflows = state.store.workflows_of_build(build_id).await?;
        let graph = workflow_graph(&workflows);
        let mut changed = false;
        for (index, workflow) in workflows.iter().enumerate() {
            if workflow.depends_on.is_empty() || !graph.is_due(index) {
                continue;
            }
            let runs_on = match runs_on(workflow) {
                Ok(runs_on) => runs_on,
                Err(reason) => {
                    tracing::error!(workflow = workflow.id, %reason, "a stored workflow cannot be read");
                    end_unfinished_steps(state, workflow.id, State::Skipped, Some(&format!("not run: {reason}")), None).await?;
                    changed |= state.store.set_workflow_state(workflow.id, State::Error, Some(&reason), now_ms()).await?;
                    continue;
                }
            };
            if let Err(held) = runs_after(&runs_on, graph.upstream_failed(index)) {
                let reason = match held {
                    Held::AfterFailure => "a workflow it depends on failed",
                    Held::OnlyOnFailure => "it runs only when a workflow it depends on fails",
                };
                end_unfinished_steps(state, workflow.id, State::Skipped, Some("not run: its workflow was skipped"), None).await?;
                changed |= state.store.set_workflow_state(workflow.id, State::Skipped, Some(reason), now_ms()).await?;
            }
        }
        if !changed {
            break;
        }
    }
    let workflows = state.store.workflows_of_build(build_id).await?;
    let Some(build) = state.store.build_by_id(build_id).await? else { return Ok(()) };
    if build.state.is_finished() || workflows.is_empty() {
        return Ok(());
    }
    let graph = workflow_graph(&workflows);
    if graph.all_finished() {
        let final_state = State::from(graph.overall());
        // Of two callers settling the same build (two agents' last `done`, two servers), the
        // one that finishes it reports it; the other finds it finished and says nothing.
        if state.store.set_build_state(build_id, final_state, None, now_ms()).await?
            && let Some(build) = state.store.build_by_id(build_id).await?
        {
            tracing::info!(build = build.number, state = %build.state, "build finished");
            build_changed(state, &build).await;
        }
    } else {
        // Unblocked dependents are now leasable.
        state.hub.notify(Topic::Queue);
    }
    Ok(())
}

/// When a dependent workflow runs, from its stored plan. A plan that cannot be read is an
/// error the workflow ends with, never a guess ("runs on success").
fn runs_on(workflow: &WorkflowRecord) -> Result<Vec<pipeline::plan::RunOn>, String> {
    let plan: Plan = serde_json::from_value(workflow.plan.clone()).map_err(|error| format!("its stored plan cannot be read: {error}"))?;
    let workflow_plan = plan.workflows.into_iter().next().ok_or_else(|| "its stored plan holds no workflow".to_owned())?;
    Ok(workflow_plan.runs_on)
}

/// Cancels a build: pending (and blocked) workflows are killed at once, running ones are asked
/// to stop (their agents hear it within a second or two and report them killed).
pub async fn cancel_build(state: &AppState, build: &BuildRecord, reason: &str) -> Result<(), StoreError> {
    state.store.request_cancel(build.id).await?;
    let workflows = state.store.workflows_of_build(build.id).await?;
    if workflows.is_empty() && !build.state.is_finished() {
        if state.store.set_build_state(build.id, State::Killed, Some(reason), now_ms()).await?
            && let Some(build) = state.store.build_by_id(build.id).await?
        {
            build_changed(state, &build).await;
        }
        return Ok(());
    }
    for workflow in workflows {
        match workflow.state {
            State::Pending | State::Lost | State::Blocked => {
                end_unfinished_steps(state, workflow.id, State::Skipped, Some(&format!("not run: {reason}")), None).await?;
                state.store.set_workflow_state(workflow.id, State::Killed, Some(reason), now_ms()).await?;
            }
            State::Running => state.hub.notify(Topic::Cancel(workflow.id)),
            _ => {}
        }
    }
    settle_build(state, build.id).await
}

/// Workflows of agents silent longer than the limit are marked lost, then re-queued or failed
/// by their repository's policy.
pub async fn reap_lost_agents(state: &AppState) -> Result<(), StoreError> {
    let now = now_ms();
    let limit = state.config.agent_lost_after.as_millis() as i64;
    for agent in state.store.list_agents().await? {
        if now - agent.last_seen < limit {
            continue;
        }
        let silent = (now - agent.last_seen) / 1000;
        lose_workflows_of(state, &agent, &format!("agent {} stopped answering {silent}s ago", agent.name)).await?;
    }
    Ok(())
}

/// Takes the running workflows of `agent` away for `reason`: each is re-queued in one
/// transition (its steps and logs reset), or failed, by its repository's policy and how often it
/// was tried.
pub async fn lose_workflows_of(state: &AppState, agent: &AgentRecord, reason: &str) -> Result<(), StoreError> {
    let now = now_ms();
    for workflow in state.store.workflows_of_agent(agent.id, &[State::Running]).await? {
        tracing::warn!(agent = %agent.name, workflow = workflow.id, %reason, "workflow lost");
        let Some(build) = state.store.build_by_id(workflow.build_id).await? else { continue };
        let Some(repo) = state.store.repo_by_id(build.repo_id).await? else { continue };
        let requeue =
            repo.settings.lost_policy == proto::LostPolicy::Requeue && workflow.attempts < MAX_ATTEMPTS && !workflow.cancel_requested;
        if requeue && state.store.requeue_workflow_of_lost_agent(workflow.id, agent.id, &format!("re-queued: {reason}")).await? {
            for step in state.store.steps_of_workflow(workflow.id).await? {
                state.hub.notify(Topic::Step(step.id));
            }
            state.hub.notify(Topic::Queue);
            continue;
        }
        // Not re-queued: by policy or attempts, because it was cancelled, or because it changed
        // meanwhile (it finished, or another server took it away first: nothing to do then).
        let Some(current) = state.store.workflow_by_id(workflow.id).await? else { continue };
        if current.state != State::Running || current.agent_id != Some(agent.id) {
            continue;
        }
        let (final_state, reason) = if current.cancel_requested {
            (State::Killed, reason.to_owned())
        } else {
            (State::Error, format!("{reason}; not re-queued (policy or attempts)"))
        };
        end_unfinished_steps(state, workflow.id, State::Error, Some("the agent was lost"), Some(now)).await?;
        if state.store.set_workflow_state(workflow.id, final_state, Some(&reason), now).await? {
            settle_build(state, workflow.build_id).await?;
        }
    }
    Ok(())
}

/// How long the trigger flow may take between numbering a build and storing its workflows.
const TRIGGER_GRACE_MS: i64 = 60_000;

/// Builds left without workflows by a server that stopped while reading their pipeline are
/// failed with that reason instead of waiting forever.
pub async fn fail_interrupted_builds(state: &AppState) -> Result<(), StoreError> {
    for build in state.store.builds_without_workflows(now_ms() - TRIGGER_GRACE_MS).await? {
        let reason = "the server stopped while reading the pipeline; restart the build";
        tracing::warn!(build = build.id, "{reason}");
        if state.store.set_build_state(build.id, State::Error, Some(reason), now_ms()).await?
            && let Some(build) = state.store.build_by_id(build.id).await?
        {
            build_changed(state, &build).await;
        }
    }
    Ok(())
}

/// A build changed state: wake its watchers, report the commit status, notify when finished.
pub async fn build_changed(state: &AppState, build: &BuildRecord) {
    state.hub.notify(Topic::Build(build.id));
    state.hub.notify(Topic::Repo(build.repo_id));
    state.hub.notify(Topic::Builds);
    crate::notify::build_changed(state, build).await;
}
