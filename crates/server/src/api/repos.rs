//! Repositories: register any git remote, change its settings, members and roles, poll now.

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::{Member, MemberSet, Repo, RepoCreate, RepoUpdate, Role, TriggerResult};
use proto::{ForgeKind, LostPolicy};
use store::{NewRepo, RepoRecord};

use crate::auth::Caller;
use crate::crypto::new_token;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};
use crate::views;

const DEFAULT_TIMEOUT_MINUTES: u32 = 60;
const MAX_TIMEOUT_MINUTES: u32 = 24 * 60;
const MIN_POLL_SECONDS: u32 = 10;

/// Repositories the caller can see, with the caller's role.
#[utoipa::path(get, path = "/api/v1/repos", tag = "repos", responses((status = 200, body = [Repo])))]
pub async fn list(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<Repo>>> {
    let mut repos = Vec::new();
    for repo in state.store.list_repos().await? {
        if let Some(role) = caller.role_on(&state, &repo).await? {
            repos.push(views::repo(&state, &repo, Some(role)));
        }
    }
    Ok(Json(repos))
}

/// Registers a repository; the caller becomes its admin.
#[utoipa::path(post, path = "/api/v1/repos", tag = "repos", request_body = RepoCreate,
    responses((status = 201, body = Repo), (status = 400, body = proto::api::ErrorBody), (status = 409, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<RepoCreate>,
) -> ApiResult<(StatusCode, Json<Repo>)> {
    validate_full_name(&body.full_name)?;
    validate_clone_url(&body.clone_url)?;
    require_admin_for_local_remote(&caller, &body.clone_url)?;
    if body.trust.is_some_and(|trust| trust.is_any()) {
        caller.require_server_admin()?;
    }
    let poll = check_poll(body.poll_interval_seconds)?;
    let timeout = check_timeout(body.timeout_minutes)?;
    let forge = body.forge.unwrap_or_else(|| guess_forge(&body.clone_url));
    let new_repo = NewRepo {
        full_name: body.full_name.clone(),
        clone_url: body.clone_url.clone(),
        forge,
        default_branch: body.default_branch.clone().filter(|branch| !branch.is_empty()).unwrap_or_else(|| "main".into()),
        config_path: body.config_path.clone().unwrap_or_default(),
        webhook_secret: body.webhook_secret.clone().filter(|secret| !secret.is_empty()).unwrap_or_else(|| new_token("")),
        trust: body.trust.unwrap_or_default(),
        timeout_minutes: timeout.unwrap_or(DEFAULT_TIMEOUT_MINUTES),
        cancel_previous: body.cancel_previous.unwrap_or(false),
        poll_interval_seconds: poll.filter(|seconds| *seconds > 0),
        lost_policy: body.lost_policy.unwrap_or(LostPolicy::Requeue),
        approval: body.approval.unwrap_or_default(),
        forge_token: body.forge_token.clone().filter(|token| !token.is_empty()),
        forge_api_url: check_api_url(body.forge_api_url.as_deref())?.filter(|url| !url.is_empty()),
        clone_username: body.clone_username.clone().filter(|name| !name.is_empty()),
        clone_password: body.clone_password.clone().filter(|password| !password.is_empty()),
    };
    let repo = state.store.create_repo(&new_repo, now_ms()).await?;
    if let Some(user) = &caller.user {
        state.store.set_member(repo.id, user.id, Role::Admin.as_str()).await?;
    }
    tracing::info!(repo = %repo.full_name, by = caller.login(), "repository registered");
    let mut view = views::repo(&state, &repo, Some(Role::Admin));
    if body.webhook_secret.as_deref().is_none_or(str::is_empty) {
        view.webhook_secret = Some(repo.webhook_secret.clone());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// One repository.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = Repo), (status = 404, body = proto::api::ErrorBody)))]
pub async fn show(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Repo>> {
    let (repo, role) = caller.repo(&state, &owner, &name, Role::Read).await?;
    Ok(Json(views::repo(&state, &repo, Some(role))))
}

/// Changes settings (repository admins; trust flags: server admins).
#[utoipa::path(patch, path = "/api/v1/repos/{owner}/{name}", tag = "repos", request_body = RepoUpdate,
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Repo), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn update(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<RepoUpdate>,
) -> ApiResult<Json<Repo>> {
    let (mut repo, role) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if let Some(trust) = body.trust {
        if trust != repo.trust {
            caller.require_server_admin()?;
        }
        repo.trust = trust;
    }
    if let Some(url) = &body.clone_url {
        require_admin_for_local_remote(&caller, url)?;
    }
    apply_update(&mut repo, &body)?;
    state.store.update_repo(&repo).await?;
    Ok(Json(views::repo(&state, &repo, Some(role))))
}

fn apply_update(repo: &mut RepoRecord, body: &RepoUpdate) -> ApiResult<()> {
    if let Some(url) = &body.clone_url {
        validate_clone_url(url)?;
        repo.clone_url = url.clone();
    }
    if let Some(forge) = body.forge {
        repo.forge = forge;
    }
    if let Some(branch) = &body.default_branch {
        if branch.trim().is_empty() {
            return Err(ApiError::invalid("default_branch", "the default branch cannot be empty"));
        }
        repo.default_branch = branch.clone();
    }
    if let Some(path) = &body.config_path {
        repo.config_path = path.clone();
    }
    if let Some(secret) = &body.webhook_secret {
        if secret.is_empty() {
            return Err(ApiError::invalid("webhook_secret", "the webhook secret cannot be empty"));
        }
        repo.webhook_secret = secret.clone();
    }
    if let Some(timeout) = check_timeout(body.timeout_minutes)? {
        repo.timeout_minutes = timeout;
    }
    if let Some(cancel_previous) = body.cancel_previous {
        repo.cancel_previous = cancel_previous;
    }
    if let Some(seconds) = check_poll(body.poll_interval_seconds)? {
        repo.poll_interval_seconds = (seconds > 0).then_some(seconds);
    }
    if let Some(policy) = body.lost_policy {
        repo.lost_policy = policy;
    }
    if let Some(approval) = body.approval {
        repo.approval = approval;
    }
    if let Some(token) = &body.forge_token {
        repo.forge_token = (!token.is_empty()).then(|| token.clone());
    }
    if let Some(url) = check_api_url(body.forge_api_url.as_deref())? {
        repo.forge_api_url = (!url.is_empty()).then_some(url);
    }
    if let Some(username) = &body.clone_username {
        repo.clone_username = (!username.is_empty()).then(|| username.clone());
    }
    if let Some(password) = &body.clone_password {
        repo.clone_password = (!password.is_empty()).then(|| password.clone());
    }
    Ok(())
}

/// Removes the repository with its builds, logs and secrets.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 204), (status = 403, body = proto::api::ErrorBody)))]
pub async fn delete(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    state.store.delete_repo(repo.id).await?;
    // The mirror's folder is named by `forge` (the key and a digest of it).
    if let Ok(mirror) = forge::git::Mirror::open(&state.mirrors, &repo.id.to_string()).await {
        let _ = tokio::fs::remove_dir_all(mirror.dir()).await;
    }
    tracing::info!(repo = %repo.full_name, by = caller.login(), "repository removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Members and their roles.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/members", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = [Member])))]
pub async fn members(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Member>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    let members = state
        .store
        .list_members(repo.id)
        .await?
        .into_iter()
        .filter_map(|(login, role)| Role::parse(&role).map(|role| Member { login, role }))
        .collect();
    Ok(Json(members))
}

/// Gives a user a role on the repository.
#[utoipa::path(put, path = "/api/v1/repos/{owner}/{name}/members/{login}", tag = "repos", request_body = MemberSet,
    params(("owner" = String, Path), ("name" = String, Path), ("login" = String, Path)),
    responses((status = 200, body = Member), (status = 404, body = proto::api::ErrorBody)))]
pub async fn set_member(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, login)): Path<(String, String, String)>,
    Json(body): Json<MemberSet>,
) -> ApiResult<Json<Member>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    let user = state.store.user_by_login(&login).await?.ok_or_else(|| ApiError::not_found(format!("user {login} does not exist")))?;
    state.store.set_member(repo.id, user.id, body.role.as_str()).await?;
    Ok(Json(Member { login, role: body.role }))
}

/// Takes a user's role away.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/members/{login}", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path), ("login" = String, Path)), responses((status = 204)))]
pub async fn remove_member(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, login)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    let user = state.store.user_by_login(&login).await?.ok_or_else(|| ApiError::not_found(format!("user {login} does not exist")))?;
    state.store.remove_member(repo.id, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Polls the remote now: new commits on branches and new tags start builds.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/poll", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = TriggerResult)))]
pub async fn poll(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<TriggerResult>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    let builds = crate::background::poll_repo(&state, &repo).await.map_err(|error| ApiError::bad_request(error.to_string()))?;
    let ignored = builds.is_empty().then(|| "no new commits or tags".to_owned());
    Ok(Json(TriggerResult { builds, ignored }))
}

fn validate_full_name(full_name: &str) -> ApiResult<()> {
    let valid_part = |part: &str| {
        !part.is_empty()
            && part.len() <= crate::limits::MAX_REPO_PART
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && part != "."
            && part != ".."
    };
    match full_name.split_once('/') {
        Some((owner, name)) if valid_part(owner) && valid_part(name) => Ok(()),
        _ => Err(ApiError::invalid(
            "full_name",
            format!(
                "`{}` is not `owner/name` (letters, digits, `-`, `_`, `.`; at most {} each)",
                full_name.chars().take(120).collect::<String>(),
                crate::limits::MAX_REPO_PART
            ),
        )),
    }
}

fn validate_clone_url(url: &str) -> ApiResult<()> {
    let known = ["file://", "http://", "https://", "ssh://", "git://"].iter().any(|scheme| url.starts_with(scheme));
    let scp_like = !url.contains("://") && url.contains('@') && url.contains(':');
    if url.trim().is_empty() || url.starts_with('-') || !(known || scp_like) {
        return Err(ApiError::invalid("clone_url", format!("`{url}` is not a git remote (file://, http(s)://, ssh:// or user@host:path)")));
    }
    Ok(())
}

/// A `file://` remote is a folder on the server's own disk: only server admins may point a
/// repository at one, or any user could read the server's files through builds.
fn require_admin_for_local_remote(caller: &Caller, url: &str) -> ApiResult<()> {
    if url.starts_with("file://") && !caller.server_admin {
        return Err(ApiError {
            field: Some("clone_url".into()),
            ..ApiError::forbidden("only server administrators may register a file:// remote")
        });
    }
    Ok(())
}

fn check_api_url(url: Option<&str>) -> ApiResult<Option<String>> {
    match url {
        Some(url) if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") => {
            Err(ApiError::invalid("forge_api_url", format!("`{url}` is not an http(s) address")))
        }
        other => Ok(other.map(|url| url.trim_end_matches('/').to_owned())),
    }
}

fn check_poll(seconds: Option<u32>) -> ApiResult<Option<u32>> {
    match seconds {
        Some(seconds) if seconds != 0 && seconds < MIN_POLL_SECONDS => {
            Err(ApiError::invalid("poll_interval_seconds", format!("poll at most every {MIN_POLL_SECONDS} seconds (0 turns polling off)")))
        }
        other => Ok(other),
    }
}

fn check_timeout(minutes: Option<u32>) -> ApiResult<Option<u32>> {
    match minutes {
        Some(minutes) if minutes == 0 || minutes > MAX_TIMEOUT_MINUTES => {
            Err(ApiError::invalid("timeout_minutes", format!("a timeout is 1 to {MAX_TIMEOUT_MINUTES} minutes")))
        }
        other => Ok(other),
    }
}

fn guess_forge(clone_url: &str) -> ForgeKind {
    if clone_url.contains("github.com") {
        ForgeKind::Github
    } else if clone_url.contains("gitlab") {
        ForgeKind::Gitlab
    } else if clone_url.contains("gitea") || clone_url.contains("forgejo") || clone_url.contains("codeberg.org") {
        ForgeKind::Gitea
    } else {
        ForgeKind::Generic
    }
}
