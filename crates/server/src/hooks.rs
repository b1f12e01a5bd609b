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
use forge::webhook::{HookEvent, PullRequestAction, WebhookError};
use proto::ForgeKind;
use proto::api::TriggerResult;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};
use crate::trigger::{BuildRequest, Outcome};

fn count(result: &'static str) {
    metrics::counter!("gantry_webhooks_total", "result" => result).increment(1);
}

fn ignored(reason: impl Into<String>) -> Response {
    count("ignored");
    (StatusCode::ACCEPTED, Json(TriggerResult { builds: Vec::new(), ignored: Some(reason.into()) })).into_response()
}

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
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.as_str().to_ascii_lowercase(), value.to_owned())))
        .collect();
    let Some(repo) = state.store.repo_by_name(&full_name).await? else {
        count("unknown_repository");
        // The same work as for a registered repository, then the same answer.
        let _ = forge::webhook::parse(ForgeKind::Github, &header_pairs, &body, UNKNOWN_REPOSITORY_SECRET);
        tracing::info!(repo = %full_name, "webhook for a repository that is not registered");
        return Err(not_accepted());
    };
    let delivery = match forge::webhook::parse(repo.settings.forge, &header_pairs, &body, &repo.settings.webhook_secret) {
        Ok(delivery) => delivery,
        Err(error @ WebhookError::Malformed { .. }) => {
            count("malformed");
            return Err(ApiError::bad_request(error.to_string()));
        }
        Err(error) => {
            count("unauthorized");
            tracing::warn!(repo = %full_name, %error, "webhook refused");
            return Err(not_accepted());
        }
    };
    let request = match delivery.event {
        HookEvent::Push(push) => BuildRequest {
            event: "push".into(),
            reference: push.reference,
            branch: push.branch,
            commit: Some(push.commit),
            before: push.before,
            message: (!push.message.is_empty()).then_some(push.message),
            author: (!push.author.is_empty()).then_some(push.author),
            author_email: (!push.author_email.is_empty()).then_some(push.author_email),
            changed_files: push.changed_files,
            ..webhook_defaults()
        },
        HookEvent::Tag(tag) => BuildRequest {
            event: "tag".into(),
            reference: tag.reference,
            branch: String::new(),
            tag: Some(tag.tag),
            commit: Some(tag.commit),
            message: (!tag.message.is_empty()).then_some(tag.message),
            author: (!tag.author.is_empty()).then_some(tag.author),
            ..webhook_defaults()
        },
        HookEvent::PullRequest(pull) => {
            let forge::webhook::PullRequest { action, number, title, head_commit, head_branch, base_branch, from_fork, author, .. } = pull;
            let (event, action_name) = match action {
                PullRequestAction::Opened => ("pull_request", "opened"),
                PullRequestAction::Reopened => ("pull_request", "reopened"),
                PullRequestAction::Synchronized => ("pull_request", "synchronized"),
                PullRequestAction::Closed => ("pull_request_closed", "closed"),
            };
            let reference = match repo.settings.forge {
                ForgeKind::Gitlab => format!("refs/merge-requests/{number}/head"),
                _ => format!("refs/pull/{number}/head"),
            };
            BuildRequest {
                event: event.into(),
                reference,
                branch: base_branch.clone(),
                commit: Some(head_commit),
                message: Some(title),
                author: Some(author),
                pull_request: Some(number.to_string()),
                source_branch: Some(head_branch),
                target_branch: Some(base_branch),
                action: Some(action_name.into()),
                from_fork,
                ..webhook_defaults()
            }
        }
        HookEvent::Deleted { reference } => return Ok(ignored(format!("{reference} was deleted"))),
        HookEvent::Ping => return Ok(ignored("ping")),
        HookEvent::Ignored { event } => return Ok(ignored(format!("event `{event}` starts no build"))),
    };
    // A forge's redelivery repeats the id and the body; a replay by someone who kept a signed
    // body may come with any id (or none), but not with other bytes.
    let mut keys: Vec<String> = delivery.id.iter().cloned().collect();
    keys.push(body_key(&body));
    let now = now_ms();
    let stale_before = now - CLAIM_STALE_AFTER.as_millis() as i64;
    if !state.store.claim_delivery(repo.id, &keys, now, stale_before).await? {
        count("duplicate");
        let what = delivery.id.as_deref().map_or_else(|| "this delivery".to_owned(), |id| format!("delivery {id}"));
        return Ok((StatusCode::OK, Json(TriggerResult { builds: Vec::new(), ignored: Some(format!("{what} was already received")) }))
            .into_response());
    }
    let outcome = crate::trigger::start_build(&state, &repo, request).await;
    match &outcome {
        Ok(_) => state.store.complete_delivery(repo.id, &keys, now_ms()).await?,
        Err(_) => state.store.release_delivery(repo.id, &keys).await?,
    }
    match outcome {
        Ok(Outcome::Started(build)) => {
            count("started");
            Ok((StatusCode::OK, Json(TriggerResult { builds: vec![build.number], ignored: None })).into_response())
        }
        Ok(Outcome::Ignored(reason)) => Ok(ignored(reason)),
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

fn webhook_defaults() -> BuildRequest {
    BuildRequest { trigger: "webhook".into(), honour_skip_ci: true, ..BuildRequest::default() }
}
