//! Cron schedules and notifiers of a repository.

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::{Cron, CronWrite, Notifier, NotifierCreate, Role};
use store::{CronRecord, NewCron};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms, seconds};

fn cron_view(record: &CronRecord) -> Cron {
    Cron {
        name: record.name.clone(),
        schedule: record.schedule.clone(),
        branch: record.branch.clone(),
        next: seconds(record.next),
        created: seconds(record.created),
    }
}

/// The next time `schedule` fires after `after_ms`, in milliseconds; an error names what is wrong.
pub fn next_fire(schedule: &str, after_ms: i64) -> Result<i64, String> {
    use std::str::FromStr as _;
    let cron = croner::Cron::from_str(schedule).map_err(|error| format!("`{schedule}` is not a schedule: {error}"))?;
    let after = chrono_time(after_ms);
    let next = cron.find_next_occurrence(&after, false).map_err(|error| format!("`{schedule}` never fires: {error}"))?;
    Ok(next.timestamp_millis())
}

fn chrono_time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Cron schedules of a repository.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/crons", tag = "crons",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = [Cron])))]
pub async fn list_crons(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Cron>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    Ok(Json(state.store.list_crons(repo.id).await?.iter().map(cron_view).collect()))
}

/// Creates or replaces a schedule (UTC).
#[utoipa::path(put, path = "/api/v1/repos/{owner}/{name}/crons/{cron}", tag = "crons", request_body = CronWrite,
    params(("owner" = String, Path), ("name" = String, Path), ("cron" = String, Path)),
    responses((status = 200, body = Cron), (status = 400, body = proto::api::ErrorBody)))]
pub async fn put_cron(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, cron)): Path<(String, String, String)>,
    Json(body): Json<CronWrite>,
) -> ApiResult<Json<Cron>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if cron.is_empty() || !cron.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::invalid("name", format!("`{cron}` is not a schedule name (letters, digits, `-`, `_`, `.`)")));
    }
    let next = next_fire(&body.schedule, now_ms()).map_err(|message| ApiError::invalid("schedule", message))?;
    let branch = body.branch.clone().filter(|branch| !branch.is_empty()).unwrap_or_else(|| repo.settings.default_branch.clone());
    state
        .store
        .put_cron(&NewCron { repo_id: repo.id, name: cron.clone(), schedule: body.schedule.clone(), branch, next }, now_ms())
        .await?;
    let record = state
        .store
        .list_crons(repo.id)
        .await?
        .into_iter()
        .find(|record| record.name == cron)
        .ok_or_else(|| ApiError::internal("a schedule vanished after writing it"))?;
    Ok(Json(cron_view(&record)))
}

/// Removes a schedule.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/crons/{cron}", tag = "crons",
    params(("owner" = String, Path), ("name" = String, Path), ("cron" = String, Path)), responses((status = 204), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete_cron(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, cron)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if state.store.delete_cron(repo.id, &cron).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{} has no schedule {cron}", repo.full_name)))
    }
}

/// Notifiers of a repository.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/notifiers", tag = "notifiers",
    params(("owner" = String, Path), ("name" = String, Path)), responses((status = 200, body = [Notifier])))]
pub async fn list_notifiers(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Notifier>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    let notifiers = state.store.list_notifiers(repo.id).await?;
    Ok(Json(notifiers.into_iter().map(notifier_view).collect()))
}

/// Adds a notifier: `webhook` (Gantry's JSON) or `slack`, sent when a build finishes
/// (`build.finished`) and/or when a build step pushes an image (`image.published`: a delivery
/// webhook). With a `secret`, every body is signed (`X-Gantry-Signature: sha256=<hex HMAC>`);
/// the secret is sealed and never shown again. For users who are not server administrators,
/// the URL's host must not resolve to an address the server keeps them from (loopback,
/// link-local, unspecified, and what the egress settings add).
#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/notifiers", tag = "notifiers", request_body = NotifierCreate,
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 201, body = Notifier), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody)))]
pub async fn create_notifier(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NotifierCreate>,
) -> ApiResult<(StatusCode, Json<Notifier>)> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if body.kind != "webhook" && body.kind != "slack" {
        return Err(ApiError::invalid("kind", format!("`{}` is not a notifier kind; use `webhook` or `slack`", body.kind)));
    }
    if !body.url.starts_with("http://") && !body.url.starts_with("https://") {
        return Err(ApiError::invalid("url", "a notifier's url starts with http:// or https://"));
    }
    let events = if body.events.is_empty() { vec![proto::api::BUILD_FINISHED.to_owned()] } else { body.events.clone() };
    if let Some(unknown) = events.iter().find(|event| !proto::api::NOTIFIER_EVENTS.contains(&event.as_str())) {
        return Err(ApiError::invalid(
            "events",
            format!("`{unknown}` is not a notifier event; use {}", proto::api::NOTIFIER_EVENTS.join(" or ")),
        ));
    }
    if let Some(secret) = &body.secret
        && !(MIN_SIGNING_SECRET..=MAX_SIGNING_SECRET).contains(&secret.len())
    {
        return Err(ApiError::invalid(
            "secret",
            format!("a signing secret is {MIN_SIGNING_SECRET} to {MAX_SIGNING_SECRET} bytes (try `openssl rand -hex 32`)"),
        ));
    }
    if !caller.server_admin {
        crate::egress::check_field(&state.config.egress, "url", &body.url).await?;
    }
    let new = store::NewNotifier {
        kind: body.kind.clone(),
        url: body.url.clone(),
        states: body.states.clone(),
        events,
        secret_ciphertext: body.secret.as_deref().map(|secret| state.secrets.seal_signing_key(repo.id, secret)),
    };
    let record = state.store.create_notifier(repo.id, &new).await?;
    Ok((StatusCode::CREATED, Json(notifier_view(record))))
}

/// Shorter secrets are guessable offline from one signed body.
const MIN_SIGNING_SECRET: usize = 16;
const MAX_SIGNING_SECRET: usize = 1024;

fn notifier_view(record: store::NotifierRecord) -> Notifier {
    Notifier {
        id: record.id,
        kind: record.kind,
        url: proto::remote::redact_credentials(&record.url),
        states: record.states,
        events: record.events,
        signed: record.secret_ciphertext.is_some(),
    }
}

/// Removes a notifier.
#[utoipa::path(delete, path = "/api/v1/repos/{owner}/{name}/notifiers/{id}", tag = "notifiers",
    params(("owner" = String, Path), ("name" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete_notifier(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, id)): Path<(String, String, i64)>,
) -> ApiResult<StatusCode> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Admin).await?;
    if state.store.delete_notifier(repo.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{} has no notifier {id}", repo.full_name)))
    }
}
