//! Builds: list, show with workflows and steps, start by hand, cancel, restart.

use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use proto::api::{Build, BuildCreate, Role};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
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
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    for key in body.variables.keys() {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::invalid("variables", format!("`{key}` is not a variable name (letters, digits, `_`)")));
        }
    }
    let branch = body.branch.clone().filter(|branch| !branch.is_empty()).unwrap_or_else(|| repo.default_branch.clone());
    let request = BuildRequest {
        event: "manual".into(),
        reference: format!("refs/heads/{branch}"),
        branch,
        commit: body.commit.clone(),
        trigger: format!("user:{}", caller.login()),
        variables: body.variables.clone(),
        ..BuildRequest::default()
    };
    let build = started(crate::trigger::start_build(&state, &repo, request).await)?;
    Ok((StatusCode::CREATED, Json(views::full_build(&state, &build, &repo.full_name).await?)))
}

/// The outcome of a trigger a person asked for, as an answer.
pub fn started(outcome: Result<Outcome, TriggerError>) -> ApiResult<store::BuildRecord> {
    match outcome {
        Ok(Outcome::Started(build)) => Ok(*build),
        Ok(Outcome::Ignored(reason)) => Err(ApiError::bad_request(reason)),
        Err(TriggerError::NotFound(message)) => Err(ApiError::bad_request(message)),
        Err(TriggerError::Git(error)) => Err(ApiError::bad_request(error.to_string())),
        Err(TriggerError::Store(error)) => Err(error.into()),
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
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    if build.state.is_finished() {
        return Err(ApiError::conflict(format!("build {number} has already finished ({})", build.state)));
    }
    crate::queue::cancel_build(&state, &build, &format!("cancelled by {}", caller.login())).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    Ok(Json(views::full_build(&state, &build, &repo.full_name).await?))
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
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    let old = find(&state, repo.id, &repo.full_name, number).await?;
    let tag = old.reference.strip_prefix("refs/tags/").map(str::to_owned);
    let request = BuildRequest {
        event: old.event.clone(),
        reference: old.reference.clone(),
        branch: old.branch.clone(),
        tag,
        commit: Some(old.commit.clone()),
        message: Some(old.message.clone()),
        author: Some(old.author.clone()),
        pull_request: old.pull_request.clone(),
        from_fork: old.from_fork,
        trigger: format!("restart:{number}"),
        variables: old.variables.clone(),
        ..BuildRequest::default()
    };
    let build = started(crate::trigger::start_build(&state, &repo, request).await)?;
    Ok((StatusCode::CREATED, Json(views::full_build(&state, &build, &repo.full_name).await?)))
}
