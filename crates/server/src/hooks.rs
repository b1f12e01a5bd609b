//! Webhook deliveries from GitHub, Gitea/Forgejo and GitLab: checked (signature or token, in
//! constant time, by `forge`), de-duplicated by delivery id and by a digest of the body within
//! [`crate::background::DELIVERY_WINDOW`], and turned into builds. Events that start nothing are
//! answered 202 and ignored.
//!
//! An unknown repository and a delivery that fails its check get the same answer, so that
//! deliveries cannot be used to learn which repositories exist. A delivery is claimed before
//! its build starts (a concurrent duplicate starts nothing) and given up if the build cannot
//! start, so that the forge's redelivery is taken rather than answered "already received".

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use forge::webhook::{Delivery, WebhookError};
use proto::ForgeKind;
use proto::api::TriggerResult;
use store::RepoRecord;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};
use crate::trigger::{BuildRequest, Ignored, Outcome, TriggerError};

fn count(result: &'static str) {
    metrics::counter!("gantry_webhooks_total", "result" => result).increment(1);
}

fn ignored(reason: &Ignored) -> Response {
    count("ignored");
    (StatusCode::ACCEPTED, Json(TriggerResult { builds: Vec::new(), ignored: Some(reason.to_string()) })).into_response()
}

// Verified, turned into a build request (or ignored), claimed against redeliveries, then
// started. (The doc line below is the operation's summary in the OpenAPI document.)
/// Receives a webhook for repository `owner/name`.
#[utoipa::path(post, path = "/api/hooks/{owner}/{name}", tag = "webhooks",
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = TriggerResult), (status = 202, body = TriggerResult), (status = 401, body = proto::api::ErrorBody),
        (status = 400, body = proto::api::ErrorBody), (status = 413, body = proto::api::ErrorBody)))]
pub async fn receive(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let full_name = format!("{owner}/{name}");
    let (repo, Delivery { id, event }) = verify(&state, &full_name, &headers, &body).await?;
    let request = match BuildRequest::from_hook(repo.settings.forge, event) {
        Ok(request) => request,
        Err(reason) => return Ok(ignored(&reason)),
    };
    // A forge's redelivery repeats the id and the body; a replay by someone who kept a signed
    // body may come with any id (or none), but not with other bytes.
    let mut keys: Vec<String> = id.iter().cloned().collect();
    keys.push(body_key(&body));
    let now = now_ms();
    let stale_before = now - CLAIM_STALE_AFTER.as_millis() as i64;
    if !state.store.claim_delivery(repo.id, &keys, now, stale_before).await? {
        count("duplicate");
        let what = id.as_deref().map_or_else(|| "this delivery".to_owned(), |id| format!("delivery {id}"));
        return Ok((StatusCode::OK, Json(TriggerResult { builds: Vec::new(), ignored: Some(format!("{what} was already received")) }))
            .into_response());
    }
    let outcome = crate::trigger::start_build(&state, &repo, request).await;
    match &outcome {
        Ok(_) => state.store.complete_delivery(repo.id, &keys, now_ms()).await?,
        Err(_) => state.store.release_delivery(repo.id, &keys).await?,
    }
    answer(&full_name, outcome)
}

/// The repository registered as `full_name` and the delivery its webhook secret verifies; the
/// same refusal for an unknown repository as for a delivery that fails its check.
async fn verify(state: &AppState, full_name: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<(RepoRecord, Delivery)> {
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.as_str().to_ascii_lowercase(), value.to_owned())))
        .collect();
    let Some(repo) = state.store.repo_by_name(full_name).await? else {
        count("unknown_repository");
        // The same work as for a registered repository, then the same answer.
        let _ = forge::webhook::parse(ForgeKind::Github, &header_pairs, body, UNKNOWN_REPOSITORY_SECRET);
        tracing::info!(repo = %full_name, "webhook for a repository that is not registered");
        return Err(not_accepted());
    };
    match forge::webhook::parse(repo.settings.forge, &header_pairs, body, &repo.settings.webhook_secret) {
        Ok(delivery) => Ok((repo, delivery)),
        Err(error @ WebhookError::Malformed { .. }) => {
            count("malformed");
            Err(ApiError::bad_request(error.to_string()))
        }
        Err(error) => {
            count("unauthorized");
            tracing::warn!(repo = %full_name, %error, "webhook refused");
            Err(not_accepted())
        }
    }
}

/// The answer to a delivery whose build was asked for.
fn answer(full_name: &str, outcome: Result<Outcome, TriggerError>) -> ApiResult<Response> {
    match outcome {
        Ok(Outcome::Started(build)) => {
            count("started");
            Ok((StatusCode::OK, Json(TriggerResult { builds: vec![build.number], ignored: None })).into_response())
        }
        Ok(Outcome::Ignored(reason)) => Ok(ignored(&reason)),
        Err(error) => {
            count("error");
            tracing::warn!(repo = %full_name, %error, "webhook could not start a build");
            // The sender is anonymous: no network detail, whatever the remote said.
            Err(error.into_api_error(false))
        }
    }
}

/// A claim older than this was left by a server that stopped before the build existed; the
/// longest a start takes is a fetch's limit.
const CLAIM_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Checked against deliveries for repositories that do not exist: it matches nothing a sender
/// can know, and costs what a real check costs.
const UNKNOWN_REPOSITORY_SECRET: &str = "gantry: no repository is registered under this name";

/// The one answer to a delivery that is not accepted: unsigned, wrongly signed, or for a
/// repository that is not registered.
fn not_accepted() -> ApiError {
    ApiError::unauthorized("the delivery is not signed with the webhook secret of a repository registered under this name")
}

/// The key of a delivery's body among its repository's deliveries.
fn body_key(body: &[u8]) -> String {
    use sha2::Digest as _;
    format!("body:sha256:{}", hex::encode(sha2::Sha256::digest(body)))
}
