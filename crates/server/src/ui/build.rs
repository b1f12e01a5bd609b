//! A build's page: what was built and why, its workflows and steps (with the step graph), its
//! diagnostics and artifacts, the actions the viewer may take, and one step's log.
//!
//! The log is served two ways: the page itself holds the first lines as text (readable without
//! JavaScript), and the log viewer script pages through the rest by ranges over the logs API
//! and follows a running step over its event stream. The DOM contract between the two is the
//! `#log` section's `data-*` attributes (see `build.html`).

use askama::Template;
use axum::extract::{Path, Query, State as AxumState};
use proto::State;
use proto::api::Role;
use serde::Deserialize;

use crate::api::builds::{approve_build, cancel_build, decline_build, find, restart_build};
use crate::api::logs::strip_ansi;
use crate::state::AppState;
use crate::ui::graph::{self, GraphNode};
use crate::ui::page::{Layout, PageResult, Posted, Viewer, clock_time, duration_between, iso_time, render, see_other};

/// Lines of the selected step's log written into the page; the script loads the rest.
const LINES_IN_PAGE: u64 = 1000;

#[derive(Deserialize, Default)]
pub struct BuildQuery {
    /// The step whose log is shown.
    pub step: Option<i64>,
    /// `live`: only the part that changes.
    pub part: Option<String>,
}

pub struct Diagnostic {
    pub severity: String,
    pub code: String,
    pub place: String,
    pub message: String,
    pub hint: Option<String>,
}

pub struct StepView {
    pub id: i64,
    pub name: String,
    pub state: &'static str,
    pub duration: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub link: String,
    pub selected: bool,
    pub service: bool,
}

pub struct WorkflowView {
    pub name: String,
    pub state: &'static str,
    pub reason: Option<String>,
    pub agent: Option<String>,
    pub duration: String,
    pub steps: Vec<StepView>,
    /// The step graph's SVG, built by `graph::render` (escaped there).
    pub graph: String,
}

pub struct ArtifactView {
    pub step: String,
    pub image: String,
    pub digest: String,
    pub pinned: String,
    pub tags: String,
    pub provenance: Option<String>,
}

#[derive(Template)]
#[template(path = "build_live.html")]
pub struct Live {
    pub base: String,
    pub csrf: String,
    pub can_write: bool,
    pub number: i64,
    pub state: &'static str,
    pub finished: bool,
    pub blocked: bool,
    pub title: String,
    pub message_rest: String,
    pub event: String,
    pub branch: String,
    pub reference: String,
    pub commit: String,
    pub short_commit: String,
    pub author: String,
    pub trigger: String,
    pub pull_request: Option<String>,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub from_fork: bool,
    pub created: String,
    pub created_iso: String,
    pub duration: String,
    pub diagnostics: Vec<Diagnostic>,
    pub workflows: Vec<WorkflowView>,
    pub artifacts: Vec<ArtifactView>,
}

/// One line written into the page.
pub struct LineView {
    pub number: u64,
    pub text: String,
    pub stderr: bool,
}

pub struct LogView {
    pub step_id: i64,
    pub step_name: String,
    pub total: u64,
    pub finished: bool,
    pub lines: Vec<LineView>,
    pub api: String,
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    layout: Layout,
    live_part: String,
    live: Live,
    log: Option<LogView>,
}

/// What the plan says about a workflow's steps: only what the graph needs.
#[derive(Deserialize, Default)]
struct PlanShape {
    #[serde(default)]
    workflows: Vec<WorkflowShape>,
}

#[derive(Deserialize, Default)]
struct WorkflowShape {
    #[serde(default)]
    steps: Vec<StepShape>,
    #[serde(default)]
    services: Vec<StepShape>,
}

#[derive(Deserialize, Default)]
struct StepShape {
    name: String,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// `GET /repos/{owner}/{name}/builds/{number}`.
pub async fn show(
    viewer: Viewer,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(query): Query<BuildQuery>,
) -> PageResult {
    let (repo, role) = viewer.repo(&state, &owner, &name, Role::Read).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    let base = format!("/repos/{}/builds/{number}", repo.full_name);

    let mut steps_by_workflow = Vec::new();
    for workflow in state.store.workflows_of_build(build.id).await? {
        let steps = state.store.steps_of_workflow(workflow.id).await?;
        let agent = match workflow.agent_id {
            Some(id) => state.store.agent_by_id(id).await?.map(|agent| agent.name),
            None => None,
        };
        steps_by_workflow.push((workflow, steps, agent));
    }
    let all_steps = || steps_by_workflow.iter().flat_map(|(_, steps, _)| steps.iter());
    let selected = query
        .step
        .and_then(|id| all_steps().find(|step| step.id == id))
        .or_else(|| all_steps().find(|step| matches!(step.state, State::Failure | State::Error)))
        .or_else(|| all_steps().find(|step| step.state == State::Running))
        .or_else(|| all_steps().rfind(|step| step.log_lines > 0))
        .or_else(|| all_steps().next())
        .cloned();

    let workflows = steps_by_workflow
        .iter()
        .map(|(workflow, steps, agent)| {
            let shape: PlanShape = serde_json::from_value(workflow.plan.clone()).unwrap_or_default();
            let shape = shape.workflows.into_iter().next().unwrap_or_default();
            let services: Vec<&str> = shape.services.iter().map(|service| service.name.as_str()).collect();
            let step_views: Vec<StepView> = steps
                .iter()
                .map(|step| StepView {
                    id: step.id,
                    name: step.name.clone(),
                    state: step.state.as_str(),
                    duration: duration_between(step.started, step.finished),
                    exit_code: step.exit_code,
                    reason: step.reason.clone(),
                    link: format!("{base}?step={}#log", step.id),
                    selected: selected.as_ref().is_some_and(|chosen| chosen.id == step.id),
                    service: services.contains(&step.name.as_str()),
                })
                .collect();
            let nodes: Vec<GraphNode<'_>> = shape
                .steps
                .iter()
                .filter_map(|planned| {
                    let view = step_views.iter().find(|view| view.name == planned.name)?;
                    Some(GraphNode {
                        name: &planned.name,
                        depends_on: planned.depends_on.iter().map(String::as_str).collect(),
                        state: view.state,
                        link: view.link.clone(),
                    })
                })
                .collect();
            WorkflowView {
                name: workflow.name.clone(),
                state: workflow.state.as_str(),
                reason: workflow.reason.clone(),
                agent: agent.clone(),
                duration: duration_between(workflow.started, workflow.finished),
                graph: graph::render(&format!("Steps of {}", workflow.name), &nodes),
                steps: step_views,
            }
        })
        .collect();

    let artifacts = state
        .store
        .artifacts_of_build(build.id)
        .await?
        .iter()
        .map(|artifact| {
            let view = crate::api::artifacts::view(artifact, &repo.full_name);
            ArtifactView {
                step: format!("{} / {}", view.workflow, view.step),
                image: view.image,
                digest: view.digest,
                pinned: view.pinned,
                tags: view.tags.join(", "),
                provenance: view.provenance,
            }
        })
        .collect();

    let mut message = build.message.lines();
    let title = message.next().unwrap_or_default().to_owned();
    let live = Live {
        base: base.clone(),
        csrf: viewer.csrf.clone().unwrap_or_default(),
        can_write: role >= Role::Write,
        number,
        state: build.state.as_str(),
        finished: build.state.is_finished(),
        blocked: build.state == State::Blocked,
        title: if title.is_empty() { format!("Build {number}") } else { title },
        message_rest: message.collect::<Vec<_>>().join("\n").trim().to_owned(),
        event: build.event.clone(),
        branch: build.branch.clone(),
        reference: build.reference.clone(),
        short_commit: build.commit.chars().take(10).collect(),
        commit: build.commit.clone(),
        author: build.author.clone(),
        trigger: build.trigger.clone(),
        pull_request: build.pull_request.clone(),
        reason: build.reason.clone(),
        approved_by: build.approved_by.clone(),
        from_fork: build.from_fork,
        created: clock_time(build.created),
        created_iso: iso_time(build.created),
        duration: duration_between(build.started, build.finished),
        diagnostics: build
            .diagnostics
            .iter()
            .map(|diagnostic| Diagnostic {
                severity: diagnostic.severity.clone(),
                code: diagnostic.code.clone(),
                place: format!("{}:{}:{}", diagnostic.file, diagnostic.line, diagnostic.column),
                message: diagnostic.message.clone(),
                hint: diagnostic.hint.clone(),
            })
            .collect(),
        workflows,
        artifacts,
    };
    let step_query = selected.as_ref().map(|step| format!("&step={}", step.id)).unwrap_or_default();
    if query.part.as_deref() == Some("live") {
        return Ok(render(&live));
    }

    let log = match selected {
        Some(step) => {
            let entries = state.store.logs().read(step.id, 0, LINES_IN_PAGE as usize).await?;
            Some(LogView {
                step_id: step.id,
                step_name: step.name.clone(),
                total: step.log_lines.max(entries.len() as u64),
                finished: step.state.is_finished(),
                lines: entries
                    .into_iter()
                    .map(|entry| LineView { number: entry.seq + 1, text: strip_ansi(&entry.text), stderr: entry.stream == "stderr" })
                    .collect(),
                api: format!("{}/repos/{}/builds/{number}/steps/{}/log", proto::api::PREFIX, repo.full_name, step.id),
            })
        }
        None => None,
    };
    let layout = Layout::new(Some(&viewer), format!("#{number} · {}", repo.full_name))
        .crumb(repo.full_name.clone(), format!("/repos/{}", repo.full_name))
        .crumb(format!("#{number}"), base.clone());
    Ok(render(&BuildPage { layout, live_part: format!("{base}?part=live{step_query}"), live, log }))
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST …/cancel`.
pub async fn cancel(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
    posted: Posted<NoFields>,
) -> PageResult {
    let (repo, build) = cancel_build(&state, &posted.viewer, &owner, &name, number).await?;
    Ok(see_other(&format!("/repos/{}/builds/{}", repo.full_name, build.number)))
}

/// `POST …/restart`: shows the new build.
pub async fn restart(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
    posted: Posted<NoFields>,
) -> PageResult {
    let (repo, build) = restart_build(&state, &posted.viewer, &owner, &name, number).await?;
    Ok(see_other(&format!("/repos/{}/builds/{}", repo.full_name, build.number)))
}

/// `POST …/approve`.
pub async fn approve(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
    posted: Posted<NoFields>,
) -> PageResult {
    let (repo, build) = approve_build(&state, &posted.viewer, &owner, &name, number).await?;
    Ok(see_other(&format!("/repos/{}/builds/{}", repo.full_name, build.number)))
}

/// `POST …/decline`.
pub async fn decline(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
    posted: Posted<NoFields>,
) -> PageResult {
    let (repo, build) = decline_build(&state, &posted.viewer, &owner, &name, number).await?;
    Ok(see_other(&format!("/repos/{}/builds/{}", repo.full_name, build.number)))
}
