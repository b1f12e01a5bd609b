//! Repository secrets: values are write-only (encrypted at rest, never returned), each limited
//! to events (pull requests excluded by default) and optionally to plugin images.

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::{DEFAULT_SECRET_EVENTS, Role, Secret, SecretWrite};
use store::{NewSecret, SecretRecord};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::limits::{MAX_NAME, MAX_SECRET_VALUE, check_length};
use crate::state::{AppState, now_ms, seconds};

fn view(record: &SecretRecord) -> Secret {
    Secret {
        name: record.name.clone(),
        events: record.events.clone(),
        images: record.images.clone(),
        created: seconds(record.created),
        updated: seconds(record.updated),
    }
}

/// Secrets of a repository: names and limits, never values.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/secrets", tag = "secrets",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = [Secret])))]
pub async fn list(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Secret>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Write).await?;
    Ok(Json(state.store.list_secrets(repo.id).await?.iter().map(view).collect()))
}

/// Creates or replaces a secret.
#[utoipa::path(put, path = "/api/v1/repos/{owner}/{name}/secrets/{secret}", tag = "secrets", request_body = SecretWrite,
    params(("owner" = String, Path), ("name" = String, Path), ("secret" = String, Path)),
    responses((status = 200, body = Secret), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn put(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, secret)): Path<(String, String, String)>,
    Json(body): Json<SecretWrite>,
) -> ApiResult<Json<Secret>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if secret.is_empty()
        || secret == "."
        || secret == ".."
        || !secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(ApiError::invalid("name", format!("`{secret}` is not a secret name (letters, digits, `_`, `-`, `.`)")));
    }
    check_length("name", &secret, MAX_NAME)?;
    if body.value.is_empty() {
        return Err(ApiError::invalid("value", "a secret's value cannot be empty"));
    }
    if body.value.len() > MAX_SECRET_VALUE {
        return Err(ApiError::invalid("value", format!("a secret's value is at most {MAX_SECRET_VALUE} bytes")));
    }
    let events = body.events.clone().unwrap_or_else(|| DEFAULT_SECRET_EVENTS.iter().map(|event| (*event).to_owned()).collect());
    if let Some(unknown) = events.iter().find(|event| !pipeline::context::EVENTS.contains(&event.as_str())) {
        return Err(ApiError::invalid("events", format!("`{unknown}` is not an event; known: {}", pipeline::context::EVENTS.join(", "))));
    }
    let new_secret = NewSecret {
        name: secret.clone(),
        ciphertext: state.secrets.seal(repo.id, &secret, &body.value),
        events,
        images: body.images.clone().unwrap_or_default(),
    };
    state.store.put_secret(repo.id, &new_secret, now_ms()).await?;
    let stored = state.store.list_secrets(repo.id).await?;
    let record =
        stored.iter().find(|record| record.name == secret).ok_or_else(|| ApiError::internal("a secret vanished after writing it"))?;
    tracing::info!(repo = %repo.full_name, secret = %secret, by = caller.login(), "secret written");
    Ok(Json(view(record)))
}

/// Removes a secret.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/secrets/{secret}", tag = "secrets",
    params(("owner" = String, Path), ("name" = String, Path), ("secret" = String, Path)),
    responses((status = 204), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, secret)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if state.store.delete_secret(repo.id, &secret).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{} has no secret {secret}", repo.full_name)))
    }
}
