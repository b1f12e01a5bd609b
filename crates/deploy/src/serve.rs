//! The deployer's HTTP listener (`--listen`): push webhooks from the environment repository's
//! forge and Gantry's signed `image.published` event wake the reconcile loop; the inventory,
//! the deployment history and Prometheus metrics are read here.
//!
//! - `POST /hooks/{github|gitea|gitlab|generic}`: a push, verified with the webhook secret
//!   (HMAC-SHA256 signature, or GitLab's token), for the deployer's branch → reconcile now.
//! - `POST /hooks/gantry`: `image.published`, `X-Gantry-Signature: sha256=<hex HMAC>` under the
//!   notifier's secret → image automation now.
//! - `GET /api/v1/inventory`, `GET /api/v1/history[?app=NAME]`: with `Authorization: Bearer
//!   <token>` when an API token is set.
//! - `GET /metrics`, `GET /healthz`.
//!
//! A hook without a configured secret is refused: an unsigned request must not be able to make
//! the deployer do anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::{Notify, RwLock};

use crate::history::History;
use crate::inventory::{Inventory, Metrics};

/// What the listener and the reconcile loop share.
pub struct Shared {
    pub inventory: RwLock<Option<Inventory>>,
    pub metrics: std::sync::Mutex<Metrics>,
    pub history: History,
    /// Wakes the loop before its next poll.
    pub wake: Notify,
    /// Set by `image.published`: look for new images on this pass.
    pub automation_due: AtomicBool,
    pub branch: String,
    pub webhook_secret: Option<String>,
    pub gantry_secret: Option<String>,
    pub api_token: Option<String>,
}

/// The largest body a hook may send.
const MAX_BODY: usize = 1024 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/hooks/gantry", post(gantry_hook))
        .route("/hooks/{forge}", post(push_hook))
        .route("/api/v1/inventory", get(inventory))
        .route("/api/v1/history", get(history))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn push_hook(State(shared): State<Arc<Shared>>, Path(forge): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let kind = match forge.as_str() {
        "github" => proto::ForgeKind::Github,
        "gitea" | "forgejo" => proto::ForgeKind::Gitea,
        "gitlab" => proto::ForgeKind::Gitlab,
        "generic" => proto::ForgeKind::Generic,
        _ => return error(StatusCode::NOT_FOUND, "no such hook: use github, gitea, gitlab, generic or gantry"),
    };
    let Some(secret) = shared.webhook_secret.as_deref() else {
        return error(StatusCode::FORBIDDEN, "this deployer has no webhook secret (GANTRY_DEPLOYER_WEBHOOK_SECRET); use polling");
    };
    let pairs: Vec<(String, String)> =
        headers.iter().filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))).collect();
    match forge::webhook::parse(kind, &pairs, &body, secret) {
        Ok(delivery) => match delivery.event {
            forge::HookEvent::Push(push) if push.branch == shared.branch => {
                tracing::info!(commit = %push.commit, "push webhook: reconciling now");
                shared.wake.notify_one();
                (StatusCode::ACCEPTED, "reconciling").into_response()
            }
            _ => (StatusCode::ACCEPTED, "nothing to do for this deployer").into_response(),
        },
        Err(forge::WebhookError::Unauthenticated(_)) => error(StatusCode::UNAUTHORIZED, "the signature does not match"),
        Err(other) => error(StatusCode::BAD_REQUEST, &other.to_string()),
    }
}

async fn gantry_hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = shared.gantry_secret.as_deref() else {
        return error(StatusCode::FORBIDDEN, "this deployer has no secret for Gantry's events (GANTRY_DEPLOYER_GANTRY_SECRET)");
    };
    let signature = headers.get(proto::api::SIGNATURE_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let Some(hex_digest) = signature.trim().strip_prefix("sha256=") else {
        return error(StatusCode::UNAUTHORIZED, "the signature is missing");
    };
    if !forge::webhook::verify_hex_signature(hex_digest, &body, secret) {
        return error(StatusCode::UNAUTHORIZED, "the signature does not match");
    }
    match serde_json::from_slice::<proto::api::ImagePublished>(&body) {
        Ok(event) if event.event == proto::api::IMAGE_PUBLISHED => {
            tracing::info!(image = %event.pinned, build = event.build, "image published: looking for updates now");
            shared.automation_due.store(true, Ordering::SeqCst);
            shared.wake.notify_one();
            (StatusCode::ACCEPTED, "looking for updates").into_response()
        }
        Ok(_) => (StatusCode::ACCEPTED, "nothing to do for this event").into_response(),
        Err(parse) => error(StatusCode::BAD_REQUEST, &format!("not an image.published body: {parse}")),
    }
}

/// Compares digests so that the time taken says nothing about the token.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = shared.api_token.as_deref() else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(Sha256::digest(given.as_bytes()).as_slice().ct_eq(Sha256::digest(token.as_bytes()).as_slice()))
}

async fn inventory(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid API token is required (Authorization: Bearer …)");
    }
    match shared.inventory.read().await.clone() {
        Some(inventory) => axum::Json(inventory).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the first reconcile has not finished yet"),
    }
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    app: Option<String>,
}

async fn history(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(query): Query<HistoryQuery>) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid API token is required (Authorization: Bearer …)");
    }
    match shared.history.read() {
        Ok(records) => {
            let records: Vec<_> = records.into_iter().filter(|record| query.app.as_ref().is_none_or(|app| &record.app == app)).collect();
            axum::Json(records).into_response()
        }
        Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, &failure.to_string()),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared.metrics.lock().map(|metrics| metrics.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
