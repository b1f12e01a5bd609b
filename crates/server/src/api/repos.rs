//! Repositories: register any git remote, change its settings, members and roles, poll now.

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::{Member, MemberSet, Repo, RepoCreate, RepoUpdate, Role, TriggerResult};
use proto::remote::RemoteKind;
use proto::{ForgeKind, LostPolicy};
use store::{NewRepo, RepoRecord, RepoSettings};

use crate::auth::Caller;
use crate::config::RepoCreation;
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

/// Registers a repository; the caller becomes its admin. Who may is a server setting (any
/// user, or server administrators only). Credentials written into an http(s) `clone_url`
/// become its clone credentials (`clone_username`, `clone_password`, which win when given too)
/// and are not kept in the URL. A remote git would read from the server's disk (a path,
/// `file://`, a `/` before the first `:`) or through a remote helper (`ext::`) is for server
/// administrators; for other users, the hosts of `clone_url` and `forge_api_url` must not
/// resolve to addresses the server keeps them from (loopback, link-local, unspecified, and
/// what the server's egress settings add).
#[utoipa::path(post, path = "/api/v1/repos", tag = "repos", request_body = RepoCreate,
    responses((status = 201, body = Repo), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<RepoCreate>,
) -> ApiResult<(StatusCode, Json<Repo>)> {
    if state.config.repo_creation == RepoCreation::Admins && !caller.server_admin {
        return Err(ApiError::forbidden("on this server, only server administrators register repositories"));
    }
    validate_full_name(&body.full_name)?;
    let remote = check_clone_url(&state, &caller, &body.clone_url).await?;
    if body.settings.trust.is_some_and(proto::Trust::is_any) {
        caller.require_server_admin()?;
    }
    let poll = check_poll(body.settings.poll_interval_seconds)?;
    let timeout = check_timeout(body.settings.timeout_minutes)?;
    let forge_api_url = check_api_url(&state, &caller, body.settings.forge_api_url.as_deref()).await?.filter(|url| !url.is_empty());
    let forge = body.settings.forge.unwrap_or_else(|| guess_forge(&remote.url));
    let (clone_username, clone_password) = match (&body.settings.clone_username, &body.settings.clone_password, &remote.credentials) {
        (None, None, Some(credentials)) => (Some(credentials.username.clone()), Some(credentials.password.clone())),
        _ => (body.settings.clone_username.clone(), body.settings.clone_password.clone()),
    };
    let new_repo = NewRepo {
        full_name: body.full_name.clone(),
        settings: RepoSettings {
            clone_url: remote.url.clone(),
            forge,
            default_branch: body.settings.default_branch.clone().filter(|branch| !branch.is_empty()).unwrap_or_else(|| "main".into()),
            config_path: body.settings.config_path.clone().unwrap_or_default(),
            webhook_secret: body.settings.webhook_secret.clone().filter(|secret| !secret.is_empty()).unwrap_or_else(|| new_token("")),
            trust: body.settings.trust.unwrap_or_default(),
            timeout_minutes: timeout.unwrap_or(DEFAULT_TIMEOUT_MINUTES),
            cancel_previous: body.settings.cancel_previous.unwrap_or(false),
            poll_interval_seconds: poll.filter(|seconds| *seconds > 0),
            lost_policy: body.settings.lost_policy.unwrap_or(LostPolicy::Requeue),
            approval: body.settings.approval.unwrap_or_default(),
            forge_token: body.settings.forge_token.clone().filter(|token| !token.is_empty()),
            forge_api_url,
            clone_username: clone_username.filter(|name| !name.is_empty()),
            clone_password: clone_password.filter(|password| !password.is_empty()),
        },
    };
    let repo = state.store.create_repo(&new_repo, now_ms()).await?;
    if let Some(user) = &caller.user {
        state.store.set_member(repo.id, user.id, Role::Admin.as_str()).await?;
    }
    if caller.server_admin {
        state.store.approve_remote(repo.id, &repo.settings.clone_url, caller.login(), now_ms()).await?;
    }
    tracing::info!(repo = %repo.full_name, by = caller.login(), "repository registered");
    let mut view = views::repo(&state, &repo, Some(Role::Admin));
    if body.settings.webhook_secret.as_deref().is_none_or(str::is_empty) {
        view.webhook_secret = Some(repo.settings.webhook_secret.clone());
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

/// Changes settings (repository admins; trust flags: server admins). `clone_url` and
/// `forge_api_url` follow the rules of registering. Stored credentials belong to where they were
/// sent: when a change moves the clone URL to another origin (scheme, host or port),
/// `clone_username` and `clone_password` are cleared unless the same request sets them again
/// (or the new URL holds them); when it moves the forge's API (set, or derived from the clone
/// URL and forge) to another origin, `forge_token` is cleared unless the request sets it again.
#[utoipa::path(patch, path = "/api/v1/repos/{owner}/{name}", tag = "repos", request_body = RepoUpdate,
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Repo), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn update(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Json(mut body): Json<RepoUpdate>,
) -> ApiResult<Json<Repo>> {
    let (mut repo, role) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if let Some(trust) = body.settings.trust {
        if trust != repo.settings.trust {
            caller.require_server_admin()?;
        }
        repo.settings.trust = trust;
    }
    let before = repo.clone();
    if let Some(url) = &body.clone_url {
        let remote = check_clone_url(&state, &caller, url).await?;
        if let (Some(credentials), None, None) = (&remote.credentials, &body.settings.clone_username, &body.settings.clone_password) {
            body.settings.clone_username = Some(credentials.username.clone());
            body.settings.clone_password = Some(credentials.password.clone());
        }
        body.clone_url = Some(remote.url);
    }
    let forge_api_url = check_api_url(&state, &caller, body.settings.forge_api_url.as_deref()).await?;
    apply_update(&mut repo, &body, forge_api_url)?;
    keep_credentials_with_their_origin(&before, &mut repo, &body);
    state.store.update_repo(&repo).await?;
    if repo.settings.clone_url != before.settings.clone_url {
        if caller.server_admin {
            state.store.approve_remote(repo.id, &repo.settings.clone_url, caller.login(), now_ms()).await?;
        } else {
            state.store.forget_remote_approval(repo.id).await?;
        }
    }
    Ok(Json(views::repo(&state, &repo, Some(role))))
}

/// Clears the stored credentials whose origin the update moved and that it did not set again.
fn keep_credentials_with_their_origin(before: &RepoRecord, after: &mut RepoRecord, body: &RepoUpdate) {
    let clone_moved =
        proto::remote::credential_scope(&before.settings.clone_url) != proto::remote::credential_scope(&after.settings.clone_url);
    if clone_moved && body.settings.clone_username.is_none() && body.settings.clone_password.is_none() {
        if before.settings.clone_username.is_some() || before.settings.clone_password.is_some() {
            tracing::info!(repo = %after.full_name, "the clone URL moved to another origin: its credentials are cleared");
        }
        after.settings.clone_username = None;
        after.settings.clone_password = None;
    }
    let api_origin = |repo: &RepoRecord| {
        repo.settings
            .forge_api_url
            .clone()
            .or_else(|| forge::status::api_base_from_clone_url(repo.settings.forge, &repo.settings.clone_url))
            .map(|url| proto::remote::credential_scope(&url))
    };
    if api_origin(before) != api_origin(after) && body.settings.forge_token.is_none() {
        if before.settings.forge_token.is_some() {
            tracing::info!(repo = %after.full_name, "the forge API moved to another origin: its token is cleared");
        }
        after.settings.forge_token = None;
    }
}

fn apply_update(repo: &mut RepoRecord, body: &RepoUpdate, forge_api_url: Option<String>) -> ApiResult<()> {
    if let Some(url) = &body.clone_url {
        repo.settings.clone_url = url.clone();
    }
    if let Some(forge) = body.settings.forge {
        repo.settings.forge = forge;
    }
    if let Some(branch) = &body.settings.default_branch {
        if branch.trim().is_empty() {
            return Err(ApiError::invalid("default_branch", "the default branch cannot be empty"));
        }
        repo.settings.default_branch = branch.clone();
    }
    if let Some(path) = &body.settings.config_path {
        repo.settings.config_path = path.clone();
    }
    if let Some(secret) = &body.settings.webhook_secret {
        if secret.is_empty() {
            return Err(ApiError::invalid("webhook_secret", "the webhook secret cannot be empty"));
        }
        repo.settings.webhook_secret = secret.clone();
    }
    if let Some(timeout) = check_timeout(body.settings.timeout_minutes)? {
        repo.settings.timeout_minutes = timeout;
    }
    if let Some(cancel_previous) = body.settings.cancel_previous {
        repo.settings.cancel_previous = cancel_previous;
    }
    if let Some(seconds) = check_poll(body.settings.poll_interval_seconds)? {
        repo.settings.poll_interval_seconds = (seconds > 0).then_some(seconds);
    }
    if let Some(policy) = body.settings.lost_policy {
        repo.settings.lost_policy = policy;
    }
    if let Some(approval) = body.settings.approval {
        repo.settings.approval = approval;
    }
    if let Some(token) = &body.settings.forge_token {
        repo.settings.forge_token = (!token.is_empty()).then(|| token.clone());
    }
    if let Some(url) = forge_api_url {
        repo.settings.forge_api_url = (!url.is_empty()).then_some(url);
    }
    if let Some(username) = &body.settings.clone_username {
        repo.settings.clone_username = (!username.is_empty()).then(|| username.clone());
    }
    if let Some(password) = &body.settings.clone_password {
        repo.settings.clone_password = (!password.is_empty()).then(|| password.clone());
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
    // The mirror's folder is named by `forge` (an HMAC of the key under the cache's secret).
    match forge::git::Mirror::folder(&state.mirrors, &repo.id.to_string()).await {
        Ok(folder) => {
            if let Err(error) = tokio::fs::remove_dir_all(&folder).await
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(repo = %repo.full_name, %error, "cannot remove the repository's mirror");
            }
        }
        Err(error) => tracing::warn!(repo = %repo.full_name, %error, "cannot find the repository's mirror"),
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

/// Gives a user a role on the repository. The answer is the same whether or not an account has
/// that login (and nothing is created when none has): logins are known to server
/// administrators only, and this is no way to test them. The member list shows who holds a role.
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
    match state.store.user_by_login(&login).await? {
        Some(user) => state.store.set_member(repo.id, user.id, body.role.as_str()).await?,
        None => tracing::info!(repo = %repo.full_name, %login, by = caller.login(), "a role for a login no account has"),
    }
    Ok(Json(Member { login, role: body.role }))
}

/// Takes a user's role away; the same answer whether or not an account has that login.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/members/{login}", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path), ("login" = String, Path)), responses((status = 204)))]
pub async fn remove_member(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, login)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if let Some(user) = state.store.user_by_login(&login).await? {
        state.store.remove_member(repo.id, user.id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Polls the remote now: new commits on branches and new tags start builds. Why git failed is
/// told to server administrators only.
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/poll", tag = "repos",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = TriggerResult)))]
pub async fn poll(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<TriggerResult>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    let builds = crate::background::poll_repo(&state, &repo).await.map_err(|error| error.into_api_error(caller.server_admin))?;
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

/// A clone URL as it will be stored: without credentials, and with those it held.
struct CheckedRemote {
    url: String,
    credentials: Option<forge::git::Credentials>,
}

/// Checks a clone URL the caller sets: an address git can use; on the server's disk or through
/// a remote helper only for server administrators; for other users, a host the egress rules
/// let them reach.
async fn check_clone_url(state: &AppState, caller: &Caller, url: &str) -> ApiResult<CheckedRemote> {
    let not_a_remote = |why: &str| {
        ApiError::invalid("clone_url", format!("`{url}` is not a git remote ({why}): use http(s)://, ssh://, git:// or user@host:path"))
    };
    let kind = proto::remote::classify(url).map_err(|error| not_a_remote(&error.reason))?;
    if kind == RemoteKind::Local && !url.starts_with('/') && !url.starts_with("file://") {
        // Relative to whatever folder the server was started in: a typo, not a remote.
        return Err(not_a_remote("a path on the server is absolute, or file://"));
    }
    match kind {
        RemoteKind::Network(_) => {}
        RemoteKind::Local | RemoteKind::Helper { .. } if caller.server_admin => {}
        RemoteKind::Local => {
            return Err(ApiError {
                field: Some("clone_url".into()),
                ..ApiError::forbidden("git reads this remote from the server's disk: only server administrators may register one")
            });
        }
        RemoteKind::Helper { name } => {
            return Err(ApiError {
                field: Some("clone_url".into()),
                ..ApiError::forbidden(format!(
                    "git reaches this remote through the `{name}` helper program: only server administrators may register one"
                ))
            });
        }
    }
    let (stored, credentials) = proto::remote::split_credentials(url);
    if !caller.server_admin {
        crate::egress::check_field(&state.config.egress, "clone_url", &stored).await?;
    }
    Ok(CheckedRemote { url: stored, credentials })
}

async fn check_api_url(state: &AppState, caller: &Caller, url: Option<&str>) -> ApiResult<Option<String>> {
    match url {
        Some(url) if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") => {
            Err(ApiError::invalid("forge_api_url", format!("`{url}` is not an http(s) address")))
        }
        Some(url) if !url.is_empty() && !caller.server_admin => {
            crate::egress::check_field(&state.config.egress, "forge_api_url", url).await?;
            Ok(Some(url.trim_end_matches('/').to_owned()))
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
