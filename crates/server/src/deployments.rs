//! Deployment events from deployers (`gantry deployer --notify URL --notify-secret S`): a
//! deployment started, succeeded, failed or was rolled back, and drift. Each body is checked
//! against the environment's signing secret (`X-Gantry-Signature: sha256=<hex HMAC-SHA256>`,
//! in constant time, by `forge`) before anything in it is read, then recorded.
//!
//! No user signs these requests: the secret is the only thing the server shares with the
//! environment, and it grants nothing but reporting. An unknown environment and a body that
//! fails its check get the same answer, so that the receiver cannot be used to learn which
//! environments exist. Recording is idempotent: a redelivery changes nothing, and an older state
//! of a deployment (its start, arriving after its end) never replaces a newer one. The event's
//! name is read from the signed body: `X-Gantry-Event` is not signed, and not trusted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::api::EventReceipt;
use proto::delivery::{
    DEPLOYMENT_FAILED, DEPLOYMENT_ROLLED_BACK, DEPLOYMENT_STARTED, DEPLOYMENT_SUCCEEDED, DRIFT_DETECTED, DeploymentEvent, DeploymentRecord,
};
use store::{DeploymentChange, EnvironmentRecord};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};

/// The most an event's body may hold. A deployer's event is well under a kilobyte; the drift
/// of a large application a few.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// A deployment's id is the deployer's (16 hex digits); anything much longer is not one.
const MAX_DEPLOYMENT_ID: usize = 128;

/// The same drift of an application reported again within this time is a redelivery.
const DRIFT_REPEAT_WINDOW_MS: i64 = 10 * 60 * 1000;

fn count(result: &'static str) {
    metrics::counter!("gantry_deployment_events_total", "result" => result).increment(1);
}

// Verified, read, checked against the path, then recorded. (The doc line below is the
// operation's summary in the OpenAPI document.)
/// Receives a deployment event from the deployer of environment `environment`.
#[utoipa::path(post, path = "/api/v1/environments/{environment}/events", tag = "environments",
    params(("environment" = String, Path)), request_body = DeploymentEvent,
    responses((status = 200, body = EventReceipt), (status = 202, body = EventReceipt), (status = 400, body = proto::api::ErrorBody),
        (status = 401, body = proto::api::ErrorBody), (status = 413, body = proto::api::ErrorBody)))]
pub async fn receive(
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let record = verify(&state, &environment, &headers, &body).await?;
    let event: DeploymentEvent = serde_json::from_slice(&body).map_err(|error| {
        count("malformed");
        ApiError::bad_request(format!("the body is not a deployment event: {error}"))
    })?;
    let report = read(&record, &event).inspect_err(|_| count("malformed"))?;
    let now = now_ms();
    state.store.touch_environment(record.id, now).await?;
    let changed = match report {
        Report::Deployment(deployment) => record_deployment(&state, &record, &event, deployment, now).await?,
        Report::Drift => {
            let repeated_since = now - DRIFT_REPEAT_WINDOW_MS;
            let owner_team = event.owner_team.as_deref();
            let changed = state.store.record_drift(record.id, &event.app, owner_team, &event.drift, now, repeated_since).await?;
            if changed {
                tracing::info!(environment = %record.name, app = %event.app, "drift recorded");
            }
            changed
        }
        Report::Ignored(reason) => {
            count("ignored");
            return Ok((StatusCode::ACCEPTED, Json(EventReceipt { changed: false, ignored: Some(reason) })).into_response());
        }
    };
    count(if changed { "recorded" } else { "unchanged" });
    if changed {
        crate::notify::deployment_reported(&state, &record, &event).await;
    }
    Ok((StatusCode::OK, Json(EventReceipt { changed, ignored: None })).into_response())
}

/// What a verified event reports.
enum Report<'a> {
    Deployment(&'a DeploymentRecord),
    Drift,
    /// An event the server does not record, and why.
    Ignored(String),
}

/// The environment registered as `name` whose secret signed `body`; the same refusal for an
/// unknown environment as for a body without a good signature.
pub(crate) async fn verify(state: &AppState, name: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<EnvironmentRecord> {
    let signature = headers
        .get(proto::api::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .unwrap_or_default();
    let Some((record, secret)) = state.store.environment_signing_secret(name).await? else {
        // The same work as for a registered environment, then the same answer.
        let _ = forge::webhook::verify_hex_signature(signature, body, UNKNOWN_ENVIRONMENT_SECRET);
        count("unknown_environment");
        tracing::info!(environment = %name, "deployment event for an environment that is not registered");
        return Err(not_accepted());
    };
    if !forge::webhook::verify_hex_signature(signature, body, &secret) {
        count("unauthorized");
        let signed = !signature.is_empty();
        tracing::warn!(environment = %name, signed, "deployment event refused: not signed with the environment's secret");
        return Err(not_accepted());
    }
    Ok(record)
}

/// What a verified event reports, once it agrees with the environment it was sent to and
/// with itself.
fn read<'a>(environment: &EnvironmentRecord, event: &'a DeploymentEvent) -> ApiResult<Report<'a>> {
    if event.environment != environment.name {
        return Err(ApiError::invalid(
            "environment",
            format!(
                "the event is for environment `{}`, but was sent to `{}`; set --notify to that environment's events URL",
                event.environment, environment.name
            ),
        ));
    }
    let deployment_event = match event.event.as_str() {
        DEPLOYMENT_STARTED | DEPLOYMENT_SUCCEEDED | DEPLOYMENT_FAILED | DEPLOYMENT_ROLLED_BACK => true,
        DRIFT_DETECTED => false,
        other => return Ok(Report::Ignored(format!("`{other}` is not an event the server records"))),
    };
    if !proto::delivery::is_valid_name(&event.app) {
        return Err(ApiError::invalid("app", "the event's `app` is not a valid application name"));
    }
    if !deployment_event {
        return Ok(if event.drift.is_empty() { Report::Ignored("the drift event reports no drift".to_owned()) } else { Report::Drift });
    }
    let Some(deployment) = &event.deployment else {
        return Err(ApiError::invalid("deployment", format!("a `{}` event carries its deployment", event.event)));
    };
    if deployment.environment != event.environment || deployment.app != event.app {
        return Err(ApiError::invalid("deployment", "the deployment's environment and app must be the event's"));
    }
    if deployment.id.is_empty() || deployment.id.len() > MAX_DEPLOYMENT_ID || deployment.id.chars().any(char::is_control) {
        return Err(ApiError::invalid("deployment", format!("a deployment's id is 1 to {MAX_DEPLOYMENT_ID} printable characters")));
    }
    let fits = |ms: u64| i64::try_from(ms).is_ok();
    if !fits(deployment.started_at) || !deployment.finished_at.is_none_or(fits) {
        return Err(ApiError::invalid("deployment", "a deployment's times are Unix milliseconds"));
    }
    Ok(Report::Deployment(deployment))
}

/// Records the deployment an event carries; a `deployment.rolled-back` also marks it rolled
/// back. True when anything changed.
async fn record_deployment(
    state: &AppState,
    environment: &EnvironmentRecord,
    event: &DeploymentEvent,
    deployment: &DeploymentRecord,
    now: i64,
) -> ApiResult<bool> {
    let change = state.store.record_deployment(environment.id, deployment, event.owner_team.as_deref(), now).await?;
    let rolled_back = event.event == DEPLOYMENT_ROLLED_BACK && state.store.mark_rolled_back(environment.id, &deployment.id, now).await?;
    let changed = change != DeploymentChange::Unchanged || rolled_back;
    if changed {
        tracing::info!(
            environment = %environment.name,
            app = %deployment.app,
            deployment = %deployment.id,
            event = %event.event,
            outcome = ?deployment.outcome,
            "deployment recorded"
        );
    } else {
        tracing::debug!(environment = %environment.name, deployment = %deployment.id, event = %event.event, "deployment event changed nothing");
    }
    Ok(changed)
}

/// Checked against events for environments that do not exist: it matches nothing a sender can
/// know, and costs what a real check costs.
const UNKNOWN_ENVIRONMENT_SECRET: &str = "gantry: no environment is registered under this name";

/// The one answer to an event that is not accepted: unsigned, wrongly signed, or for an
/// environment that is not registered.
fn not_accepted() -> ApiError {
    ApiError::unauthorized("the event is not signed with the secret of an environment registered under this name")
}
