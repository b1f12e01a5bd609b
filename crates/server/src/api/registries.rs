//! Registry credentials of a repository (`gantry registry add`): a username and a write-only
//! password per registry host, which the repository's jobs pull, build `FROM` and push with.
//! Access is that of secrets: admins write, maintainers (write) see which hosts have one.

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::{Registry, RegistryWrite, Role};
use proto::artifact::RegistryHost;
use store::NewRegistryCredential;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::limits::{MAX_REGISTRY_PASSWORD, MAX_REGISTRY_USERNAME, check_length};
use crate::state::{AppState, now_ms};
use crate::views;

/// The host of the path, as credentials are kept by it, or a 400 naming `host`.
fn parse_host(text: &str) -> ApiResult<RegistryHost> {
    RegistryHost::parse(text).map_err(|error| ApiError::invalid("host", error.to_string()))
}

/// Registry credentials of a repository: hosts and usernames, never passwords.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/registries", tag = "registries",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = [Registry])))]
pub async fn list(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Registry>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    Ok(Json(state.store.list_registry_credentials(repo.id).await?.iter().map(views::registry).collect()))
}

/// Creates or replaces the credentials of a registry host (`registry.example.com`,
/// `127.0.0.1:5000`, `docker.io`); `https://` and Docker Hub's other names are read as that host.
#[utoipa::path(put, path = "/api/v1/repos/{owner}/{name}/registries/{host}", tag = "registries", request_body = RegistryWrite,
    params(("owner" = String, Path), ("name" = String, Path), ("host" = String, Path)),
    responses((status = 200, body = Registry), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn put(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, host)): Path<(String, String, String)>,
    Json(body): Json<RegistryWrite>,
) -> ApiResult<Json<Registry>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    let host = parse_host(&host)?;
    if body.username.trim().is_empty() {
        return Err(ApiError::invalid("username", "a registry login needs a username"));
    }
    check_length("username", &body.username, MAX_REGISTRY_USERNAME)?;
    // Registries get `username:password` in Basic authentication: a `:` would split it wrongly.
    if body.username.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid("username", "a registry username cannot hold `:`, spaces or control characters"));
    }
    if body.password.is_empty() {
        return Err(ApiError::invalid("password", "a registry login needs a password (or a token)"));
    }
    if body.password.len() > MAX_REGISTRY_PASSWORD {
        return Err(ApiError::invalid("password", format!("a registry password is at most {MAX_REGISTRY_PASSWORD} bytes")));
    }
    // A line break is what a file or a pipe adds by mistake, and no registry's password has one.
    if body.password.chars().any(char::is_control) {
        return Err(ApiError::invalid("password", "a registry password cannot hold control characters such as a line break"));
    }
    let credential = NewRegistryCredential { host: host.clone(), username: body.username.clone(), password: body.password.clone() };
    let record = state.store.put_registry_credential(repo.id, &credential, now_ms()).await?;
    tracing::info!(repo = %repo.full_name, registry = %host, by = caller.login(), "registry credentials written");
    Ok(Json(views::registry(&record)))
}

/// Removes the credentials of a registry host.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/registries/{host}", tag = "registries",
    params(("owner" = String, Path), ("name" = String, Path), ("host" = String, Path)),
    responses((status = 204), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, host)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    let host = parse_host(&host)?;
    if state.store.delete_registry_credential(repo.id, &host).await? {
        tracing::info!(repo = %repo.full_name, registry = %host, by = caller.login(), "registry credentials removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{} has no credentials for registry {host}", repo.full_name)))
    }
}
