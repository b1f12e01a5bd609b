//! The server administrators' pages: the agents (and revoking one), the users (and creating
//! one), and the queue (workflows not finished, across repositories). Each page asks the
//! `Caller` what the API asks, mostly through the API's own functions, so nobody sees or does
//! here what the API would refuse them.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use proto::api::UserCreate;
use serde::Deserialize;

use crate::api::agents::{list_agents, remove_agent};
use crate::api::users::{create_user as create_user_as, list_users};
use crate::auth::Caller;
use crate::state::AppState;
use crate::ui::page::{Layout, PageResult, Posted, Viewer, clock_time, iso_time, render, see_other};

/// Unfinished builds the queue page reads, oldest first; the rest waits behind them anyway.
const QUEUE_BUILDS: i64 = 200;

/// The admin pages' frame: the title, and the breadcrumb back to the first of them.
fn admin_layout(viewer: &Caller, title: &str) -> Layout {
    Layout::new(Some(viewer), format!("Admin · {title}")).crumb("Admin", "/admin/agents")
}

/// A time given in Unix seconds (the API's views), as the pages show times.
fn times_of_seconds(seconds: i64) -> (String, String) {
    (clock_time(seconds * 1000), iso_time(seconds * 1000))
}

pub struct AgentRow {
    pub name: String,
    pub labels: String,
    pub capacity: u32,
    pub running: u32,
    pub version: String,
    pub connected: bool,
    pub last_seen: String,
    pub last_seen_iso: String,
}

#[derive(Template)]
#[template(path = "admin_agents.html")]
struct AgentsPage {
    layout: Layout,
    section: &'static str,
    agents: Vec<AgentRow>,
}

/// `GET /admin/agents`.
pub async fn agents(viewer: Viewer, AxumState(state): AxumState<AppState>) -> PageResult {
    let agents = list_agents(&state, &viewer)
        .await?
        .into_iter()
        .map(|agent| {
            let (last_seen, last_seen_iso) = times_of_seconds(agent.last_seen);
            AgentRow {
                labels: labels_text(&agent.labels),
                name: agent.name,
                capacity: agent.capacity,
                running: agent.running,
                version: agent.version,
                connected: agent.connected,
                last_seen,
                last_seen_iso,
            }
        })
        .collect();
    Ok(render(&AgentsPage { layout: admin_layout(&viewer, "Agents"), section: "agents", agents }))
}

/// `os=linux, arch=amd64`.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(", ")
}

/// `POST /admin/agents/{name}/revoke`: what `DELETE /api/v1/agents/{name}` does.
pub async fn revoke_agent(
    AxumState(state): AxumState<AppState>,
    Path(name): Path<String>,
    posted: Posted<HashMap<String, String>>,
) -> PageResult {
    remove_agent(&state, &posted.viewer, &name).await?;
    Ok(see_other("/admin/agents"))
}

pub struct UserRow {
    pub login: String,
    pub admin: bool,
    pub created: String,
    pub created_iso: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    layout: Layout,
    section: &'static str,
    users: Vec<UserRow>,
    /// What the form was last posted with, when it is shown again with `error`.
    login: String,
    admin: bool,
    error: Option<String>,
}

/// `GET /admin/users`.
pub async fn users(viewer: Viewer, AxumState(state): AxumState<AppState>) -> PageResult {
    users_page(&state, &viewer, String::new(), false, None).await
}

async fn users_page(state: &AppState, viewer: &Caller, login: String, admin: bool, error: Option<String>) -> PageResult {
    let users = list_users(state, viewer)
        .await?
        .iter()
        .map(|user| UserRow {
            login: user.login.clone(),
            admin: user.admin,
            created: clock_time(user.created),
            created_iso: iso_time(user.created),
        })
        .collect();
    Ok(render(&UsersPage { layout: admin_layout(viewer, "Users"), section: "users", users, login, admin, error }))
}

#[derive(Deserialize)]
pub struct UserForm {
    login: String,
    password: String,
    /// A checked box is sent as `admin=on`; an unchecked one not at all.
    #[serde(default)]
    admin: Option<String>,
}

/// `POST /admin/users`: creates a user as `POST /api/v1/users` does. A login or password the
/// API refuses shows the form again with the reason.
pub async fn create_user(AxumState(state): AxumState<AppState>, posted: Posted<UserForm>) -> PageResult {
    let Posted { viewer, form } = posted;
    let body = UserCreate { login: form.login, password: form.password, admin: form.admin.is_some() };
    match create_user_as(&state, &viewer, &body).await {
        Ok(_) => Ok(see_other("/admin/users")),
        Err(error) if matches!(error.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let status = error.status;
            let mut response: Response = users_page(&state, &viewer, body.login, body.admin, Some(error.message)).await?;
            *response.status_mut() = status;
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

pub struct QueueRow {
    pub repo: String,
    pub number: i64,
    pub link: String,
    pub workflow: String,
    pub state: &'static str,
    pub agent: Option<String>,
    pub created: String,
    pub created_iso: String,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    layout: Layout,
    section: &'static str,
    rows: Vec<QueueRow>,
    /// The page stopped at `QUEUE_BUILDS` builds.
    truncated: bool,
    limit: i64,
}

/// `GET /admin/queue`: every workflow not finished (waiting for approval, queued, running) of
/// the oldest unfinished builds, in the order they were queued.
pub async fn queue(viewer: Viewer, AxumState(state): AxumState<AppState>) -> PageResult {
    // No API lists the queue; the question is the one the agents' and users' APIs ask.
    viewer.require_server_admin()?;
    let builds = state.store.unfinished_builds(QUEUE_BUILDS).await?;
    let repos: HashMap<i64, String> = state.store.list_repos().await?.into_iter().map(|repo| (repo.id, repo.full_name)).collect();
    let agents: HashMap<i64, String> = state.store.list_agents().await?.into_iter().map(|agent| (agent.id, agent.name)).collect();
    let mut rows = Vec::new();
    for build in &builds {
        let Some(full_name) = repos.get(&build.repo_id) else {
            // Deleted between the two reads: its builds go with it.
            continue;
        };
        for workflow in state.store.workflows_of_build(build.id).await? {
            if workflow.state.is_finished() {
                continue;
            }
            rows.push(QueueRow {
                repo: full_name.clone(),
                number: build.number,
                link: format!("/repos/{full_name}/builds/{}", build.number),
                workflow: workflow.name,
                state: workflow.state.as_str(),
                agent: workflow.agent_id.map(|id| agents.get(&id).cloned().unwrap_or_else(|| format!("removed agent {id}"))),
                created: clock_time(workflow.created),
                created_iso: iso_time(workflow.created),
            });
        }
    }
    let truncated = builds.len() as i64 >= QUEUE_BUILDS;
    Ok(render(&QueuePage { layout: admin_layout(&viewer, "Queue"), section: "queue", rows, truncated, limit: QUEUE_BUILDS }))
}
