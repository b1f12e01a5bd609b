//! Builds: list, show with workflows and steps, start by hand, cancel, restart, and approve or
//! decline a build that waits for a maintainer (a fork's pull request, by the repository's
//! approval policy).

use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use proto::State;
use proto::api::{Build, BuildCreate, Role};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::limits::{MAX_VARIABLE_NAME, MAX_VARIABLE_VALUE, check_length};
use crate::state::{AppState, now_ms};
use crate::trigger::{BuildRequest, Outcome, TriggerError};
use crate::views;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (default 25, at most 100).
    pub limit: Option<i64>,
    /// Builds numbered below this (paging).
    pub before: Option<i64>,
}

/// Builds of a repository, newest first.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ListQuery), responses((status = 200, body = [Build])))]
pub async fn list(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<Build>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    let limit = query.limit.unwrap_or(25).clamp(1, 100);
    let builds = state.store.list_builds(repo.id, limit, query.before).await?;
    Ok(Json(builds.iter().map(|build| views::build(build, &repo.full_name, None)).collect()))
}

/// One build with its workflows and steps.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = Build), (status = 404, body = proto::api::ErrorBody)))]
pub async fn show(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<Json<Build>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    Ok(Json(views::full_build(&state, &build, &repo.full_name).await?))
}

pub async fn find(state: &AppState, repo_id: i64, full_name: &str, number: i64) -> ApiResult<store::BuildRecord> {
    state.store.build_by_number(repo_id, number).await?.ok_or_else(|| ApiError::not_found(format!("{full_name} has no build {number}")))
}

/// Starts a build of a branch (default: the default branch) by hand, with optional variables.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/builds", tag = "builds", request_body = BuildCreate,
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 201, body = Build), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<BuildCreate>,
) -> ApiResult<(StatusCode, Json<Build>)> {
    let (repo, build) = start_manual(&state, &caller, &owner, &name, &body).await?;
    Ok((StatusCode::CREATED, Json(views::full_build(&state, &build, &repo.full_name).await?)))
}

/// Starts a build by hand (the API and the run form): the write role, variables checked.
pub async fn start_manual(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    body: &BuildCreate,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, _) = caller.repo(state, owner, name, Role::Write).await?;
    for (key, value) in &body.variables {
        if key.is_empty() || key.len() > MAX_VARIABLE_NAME || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::invalid(
                "variables",
                format!("`{key}` is not a variable name (letters, digits, `_`; at most {MAX_VARIABLE_NAME})"),
            ));
        }
        check_length("variables", value, MAX_VARIABLE_VALUE)?;
    }
    let branch = body.branch.clone().filter(|branch| !branch.is_empty()).unwrap_or_else(|| repo.settings.default_branch.clone());
    let request = BuildRequest::manual(branch, body.commit.clone(), caller.login(), body.variables.clone());
    let build = started(crate::trigger::start_build(state, &repo, request).await, caller)?;
    Ok((repo, build))
}

/// The outcome of a trigger a person asked for, as an answer: git's own words only for server
/// administrators (see `TriggerError::public_message`).
pub fn started(outcome: Result<Outcome, TriggerError>, caller: &Caller) -> ApiResult<store::BuildRecord> {
    match outcome {
        Ok(Outcome::Started(build)) => Ok(*build),
        Ok(Outcome::Ignored(reason)) => Err(ApiError::bad_request(reason.to_string())),
        Err(error) => Err(error.into_api_error(caller.server_admin)),
    }
}

/// Cancels a pending or running build.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/builds/{number}/cancel", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = Build), (status = 409, body = proto::api::ErrorBody)))]
pub async fn cancel(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<Json<Build>> {
    let (repo, build) = cancel_build(&state, &caller, &owner, &name, number).await?;
    Ok(Json(views::full_build(&state, &build, &repo.full_name).await?))
}

/// Cancels a build that has not finished: the write role.
pub async fn cancel_build(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: i64,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, _) = caller.repo(state, owner, name, Role::Write).await?;
    let build = find(state, repo.id, &repo.full_name, number).await?;
    if build.state.is_finished() {
        return Err(ApiError::conflict(format!("build {number} has already finished ({})", build.state)));
    }
    crate::queue::cancel_build(state, &build, &format!("cancelled by {}", caller.login())).await?;
    let build = find(state, repo.id, &repo.full_name, number).await?;
    Ok((repo, build))
}

/// Starts a new build of the same commit, event and variables.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/builds/{number}/restart", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 201, body = Build), (status = 404, body = proto::api::ErrorBody)))]
pub async fn restart(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<(StatusCode, Json<Build>)> {
    let (repo, build) = restart_build(&state, &caller, &owner, &name, number).await?;
    Ok((StatusCode::CREATED, Json(views::full_build(&state, &build, &repo.full_name).await?)))
}

/// Starts a new build of build `number`'s commit, event and variables: the write role.
pub async fn restart_build(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: i64,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, _) = caller.repo(state, owner, name, Role::Write).await?;
    let old = find(state, repo.id, &repo.full_name, number).await?;
    let request = BuildRequest::restart(&old, approver(caller));
    let build = started(crate::trigger::start_build(state, &repo, request).await, caller)?;
    Ok((repo, build))
}

/// How an approval records who gave it.
fn approver(caller: &Caller) -> String {
    match &caller.user {
        Some(user) => format!("user:{}", user.login),
        None => "admin-token".to_owned(),
    }
}

/// Approves a build that waits for a maintainer: its workflows are queued. Needs the write role.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/builds/{number}/approve", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = Build), (status = 404, body = proto::api::ErrorBody), (status = 409, body = proto::api::ErrorBody)))]
pub async fn approve(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<Json<Build>> {
    let (repo, build) = approve_build(&state, &caller, &owner, &name, number).await?;
    Ok(Json(views::full_build(&state, &build, &repo.full_name).await?))
}

/// Approves a build waiting for a maintainer: the write role.
pub async fn approve_build(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: i64,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, build) = waiting_build(state, caller, owner, name, number).await?;
    if !state.store.approve_build(build.id, &approver(caller), now_ms()).await? {
        return Err(not_waiting(number, build.state));
    }
    tracing::info!(repo = %repo.full_name, build = number, by = caller.login(), "build approved");
    crate::queue::settle_build(state, build.id).await?;
    state.hub.notify(crate::hub::Topic::Queue);
    let build = find(state, repo.id, &repo.full_name, number).await?;
    crate::queue::build_changed(state, &build).await;
    Ok((repo, build))
}

/// Declines a build that waits for a maintainer: it ends as killed, saying who declined it.
/// Needs the write role.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/builds/{number}/decline", tag = "builds",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = Build), (status = 404, body = proto::api::ErrorBody), (status = 409, body = proto::api::ErrorBody)))]
pub async fn decline(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<Json<Build>> {
    let (repo, build) = decline_build(&state, &caller, &owner, &name, number).await?;
    Ok(Json(views::full_build(&state, &build, &repo.full_name).await?))
}

/// Declines a build waiting for a maintainer: the write role.
pub async fn decline_build(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: i64,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, build) = waiting_build(state, caller, owner, name, number).await?;
    crate::queue::cancel_build(state, &build, &format!("declined by {}", caller.login())).await?;
    tracing::info!(repo = %repo.full_name, build = number, by = caller.login(), "build declined");
    let build = find(state, repo.id, &repo.full_name, number).await?;
    Ok((repo, build))
}

/// Repository and build `number` for a decision on it: the write role, and the build waiting.
async fn waiting_build(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: i64,
) -> ApiResult<(store::RepoRecord, store::BuildRecord)> {
    let (repo, _) = caller.repo(state, owner, name, Role::Write).await?;
    let build = find(state, repo.id, &repo.full_name, number).await?;
    if build.state != State::Blocked {
        return Err(not_waiting(number, build.state));
    }
    Ok((repo, build))
}

fn not_waiting(number: i64, state: State) -> ApiError {
    ApiError::conflict(format!("build {number} is not waiting for approval (it is {state})"))
}
