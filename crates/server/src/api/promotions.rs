//! Promotions: running in one environment the exact image another one runs, held to the target
//! environment's rules (`promotion:` in its repository, sent by its deployer on every sync).
//!
//! A person with write on the repository that built the image asks; the request is checked
//! against the rules (where it may come from, soak time, required checks, change freezes) and
//! waits for its approvals from other people, until its timeout rejects it. Once approved, the
//! environment's deployer picks it up on its next sync and commits the image into the
//! environment's repository (or pushes a branch for review), then reports back. The server
//! never writes to an environment: it decides, the deployer carries out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use proto::api::{BuildLink, Promotion, PromotionDecision, PromotionDecisionRequest, PromotionRequest, PromotionState, Role};
use proto::delivery::{PromotionOutcome, PromotionRules, PromotionSync, PromotionSyncAnswer, ReadyPromotion};
use serde::Deserialize;
use store::{DecisionChange, NewPromotion, PromotionEnd, PromotionRecord, RepoRecord};

use crate::api::environments::{BuildLinks, DEFAULT_LIMIT, MAX_LIMIT, find};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::promotion_gates::{self, Decider, RequestFacts};
use crate::state::{AppState, now_ms};

/// The longest comment on a request or a decision.
const MAX_COMMENT: usize = 2000;
/// How far a deployer's clock may be from the server's when it syncs.
const SYNC_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// The most approvals rules may ask for.
const MAX_APPROVALS: u32 = 20;

/// Asks to run in environment `environment` the image application `app` runs in `from`.
#[utoipa::path(post, path = "/api/v1/environments/{environment}/promotions", tag = "environments",
    params(("environment" = String, Path)), request_body = PromotionRequest,
    responses((status = 201, body = Promotion), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody),
        (status = 404, body = proto::api::ErrorBody), (status = 409, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    Json(body): Json<PromotionRequest>,
) -> ApiResult<(StatusCode, Json<Promotion>)> {
    let target = find(&state, &environment).await?;
    if !proto::delivery::is_valid_name(&body.app) {
        return Err(ApiError::invalid("app", "not an application's name"));
    }
    check_comment(body.comment.as_deref())?;
    if body.from == target.name {
        return Err(ApiError::invalid("from", "promote from another environment than the one promoted to"));
    }
    let source =
        state.store.environment_by_name(&body.from).await?.ok_or_else(|| {
            ApiError::invalid("from", format!("there is no environment {}; `gantry environment ls` lists them", body.from))
        })?;
    let current = state.store.environment_apps(source.id).await?.into_iter().find(|app| app.app == body.app).and_then(|app| app.current);
    let Some(current) = current else {
        return Err(ApiError::invalid("app", format!("{} has no successful deployment in {} to promote", body.app, source.name)));
    };
    let image = current.record.to_image.clone().unwrap_or_default();
    let Ok((Some(_), digest)) = crate::api::artifacts::parse_image(&image) else {
        return Err(ApiError::invalid(
            "from",
            format!("{} runs `{image}` in {}, not pinned by digest: only an exact version can be promoted", body.app, source.name),
        ));
    };
    let origin = origin(&state, &image).await?;
    match &origin {
        Some((repo, _)) => {
            let role = caller.role_on(&state, repo).await?;
            if role < Some(Role::Write) {
                return Err(ApiError::forbidden(format!(
                    "promoting needs the write role on {}, whose build pushed the image",
                    repo.full_name
                )));
            }
        }
        None if caller.server_admin => {}
        None => {
            return Err(ApiError::forbidden(format!(
                "no build of this server pushed {digest}: only a server administrator may promote it"
            )));
        }
    }
    let Some((rules, _)) = state.store.promotion_rules(target.id).await? else {
        return Err(ApiError::conflict(format!(
            "the deployer of {} has not synced with this server yet, so its promotion rules are unknown; it syncs on every pass when its --notify is this server",
            target.name
        )));
    };
    if let Some(open) = state.store.open_promotion(target.id, &body.app).await? {
        return Err(ApiError::conflict(format!(
            "promotion {} of {} to {} is still {}; approve, reject or wait for it first",
            open.id,
            body.app,
            target.name,
            open.state.as_str()
        )));
    }
    let workflows = match &origin {
        Some((_, build_id)) => Some(
            state
                .store
                .workflows_of_build(*build_id)
                .await?
                .into_iter()
                .map(|workflow| (workflow.name, workflow.state == proto::state::State::Success))
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let now = now_ms();
    let healthy_since = current.record.finished_at.map_or(current.record.started_at, |finished| finished);
    let facts = RequestFacts {
        from_environment: &source.name,
        now_ms: now,
        healthy_since_ms: i64::try_from(healthy_since).unwrap_or(i64::MAX),
        workflows: workflows.as_deref(),
    };
    promotion_gates::check_request(&rules, &facts).map_err(|refusal| ApiError::invalid(refusal.field, refusal.message))?;
    let record = state
        .store
        .create_promotion(&NewPromotion {
            environment_id: target.id,
            app: &body.app,
            from_environment: &source.name,
            image: &image,
            requested_by: caller.login(),
            comment: body.comment.as_deref(),
            rules: &rules,
            now,
        })
        .await?;
    tracing::info!(id = record.id, environment = %target.name, app = %record.app, from = %source.name, by = caller.login(), "promotion requested");
    let event =
        if record.state == PromotionState::Approved { proto::delivery::PROMOTION_APPROVED } else { proto::delivery::PROMOTION_REQUESTED };
    crate::notify::promotion_changed(&state, &record, event).await;
    Ok((StatusCode::CREATED, Json(view(&state, &caller, &record).await?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromotionsQuery {
    /// Only promotions in this state.
    pub state: Option<PromotionState>,
    /// How many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
}

/// Promotions into an environment, newest first.
#[utoipa::path(get, path = "/api/v1/environments/{environment}/promotions", tag = "environments",
    params(("environment" = String, Path), PromotionsQuery),
    responses((status = 200, body = [Promotion]), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn list(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    Query(query): Query<PromotionsQuery>,
) -> ApiResult<Json<Vec<Promotion>>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("limit is 1 to {MAX_LIMIT}")));
    }
    let target = find(&state, &environment).await?;
    expire_due(&state).await;
    let records = state.store.promotions(Some(target.id), query.state, i64::from(limit)).await?;
    let mut answer = Vec::with_capacity(records.len());
    let mut builds = BuildLinks::new(&state, &caller);
    for record in &records {
        let build = builds.of_image(Some(&record.image)).await?;
        answer.push(to_view(record, build));
    }
    Ok(Json(answer))
}

/// One promotion, with its decisions.
#[utoipa::path(get, path = "/api/v1/promotions/{id}", tag = "environments", params(("id" = i64, Path)),
    responses((status = 200, body = Promotion), (status = 404, body = proto::api::ErrorBody)))]
pub async fn get(caller: Caller, AxumState(state): AxumState<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Promotion>> {
    expire_due(&state).await;
    let record = state.store.promotion(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Json(view(&state, &caller, &record).await?))
}

/// Approves a pending promotion: as one of the people its environment's rules name, and not
/// the one who asked. The last approval needed makes it ready for the environment's deployer.
#[utoipa::path(post, path = "/api/v1/promotions/{id}/approve", tag = "environments", params(("id" = i64, Path)),
    request_body = PromotionDecisionRequest,
    responses((status = 200, body = Promotion), (status = 403, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody)))]
pub async fn approve(
    caller: Caller,
    state: AxumState<AppState>,
    id: Path<i64>,
    body: Json<PromotionDecisionRequest>,
) -> ApiResult<Json<Promotion>> {
    decide(caller, state, id, body, true).await
}

/// Rejects a pending promotion (its approvers, or the one who asked, withdrawing it).
#[utoipa::path(post, path = "/api/v1/promotions/{id}/reject", tag = "environments", params(("id" = i64, Path)),
    request_body = PromotionDecisionRequest,
    responses((status = 200, body = Promotion), (status = 403, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody)))]
pub async fn reject(
    caller: Caller,
    state: AxumState<AppState>,
    id: Path<i64>,
    body: Json<PromotionDecisionRequest>,
) -> ApiResult<Json<Promotion>> {
    decide(caller, state, id, body, false).await
}

async fn decide(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<PromotionDecisionRequest>,
    approving: bool,
) -> ApiResult<Json<Promotion>> {
    check_comment(body.comment.as_deref())?;
    expire_due(&state).await;
    let record = state.store.promotion(id).await?.ok_or_else(|| not_found(id))?;
    if record.state != PromotionState::Pending {
        return Err(not_pending(&record));
    }
    let role = match origin(&state, &record.image).await? {
        Some((repo, _)) => caller.role_on(&state, &repo).await?,
        None => None,
    };
    let decider = Decider { login: caller.login(), server_admin: caller.server_admin, role };
    promotion_gates::may_decide(&record.rules, &record.requested_by, &decider, approving)
        .map_err(|refusal| ApiError::forbidden(refusal.message))?;
    let change = state.store.decide_promotion(id, caller.login(), approving, body.comment.as_deref(), now_ms()).await?;
    let record = state.store.promotion(id).await?.ok_or_else(|| not_found(id))?;
    match change {
        DecisionChange::AlreadyDecided => return Err(ApiError::conflict(format!("you already decided on promotion {id}"))),
        DecisionChange::NotPending => return Err(not_pending(&record)),
        DecisionChange::Recorded => {}
        DecisionChange::Approved => crate::notify::promotion_changed(&state, &record, proto::delivery::PROMOTION_APPROVED).await,
        DecisionChange::Rejected => crate::notify::promotion_changed(&state, &record, proto::delivery::PROMOTION_REJECTED).await,
    }
    tracing::info!(id, environment = %record.environment, app = %record.app, by = caller.login(), approving, state = record.state.as_str(), "promotion decided");
    Ok(Json(view(&state, &caller, &record).await?))
}

/// A deployer's sync (signed with its environment's secret, like its events): it sends its
/// environment's promotion rules and what became of the promotions it was given; the answer is
/// the approved promotions it should carry out now (none during a change freeze: they wait).
#[utoipa::path(post, path = "/api/v1/environments/{environment}/promotions/sync", tag = "environments",
    params(("environment" = String, Path)), request_body = PromotionSync,
    responses((status = 200, body = PromotionSyncAnswer), (status = 400, body = proto::api::ErrorBody), (status = 401, body = proto::api::ErrorBody)))]
pub async fn sync(
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<PromotionSyncAnswer>> {
    let record = crate::deployments::verify(&state, &environment, &headers, &body).await?;
    let sync: PromotionSync =
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(format!("the body is not a promotion sync: {error}")))?;
    if sync.environment != record.name {
        return Err(ApiError::invalid(
            "environment",
            format!("the sync is for environment `{}`, but was sent to `{}`", sync.environment, record.name),
        ));
    }
    let now = now_ms();
    let sent_at = i64::try_from(sync.sent_at).unwrap_or(i64::MAX);
    if (now - sent_at).abs() > SYNC_CLOCK_SKEW_MS {
        return Err(ApiError::invalid(
            "sent_at",
            format!(
                "the deployer's clock is {} off the server's; keep both on time (NTP)",
                promotion_gates::human_duration((now - sent_at).abs())
            ),
        ));
    }
    check_rules(&sync.rules)?;
    if sync.revision.is_empty() || sync.revision.len() > 128 || !sync.revision.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid("revision", "the environment repository's commit id"));
    }
    state.store.touch_environment(record.id, now).await?;
    state.store.set_promotion_rules(record.id, &sync.rules, &sync.revision, now).await?;
    for result in &sync.results {
        let to = match result.outcome {
            PromotionOutcome::Applied => PromotionState::Applied,
            PromotionOutcome::Proposed => PromotionState::Proposed,
            PromotionOutcome::Failed => PromotionState::Failed,
        };
        let reason = result.reason.as_deref().map(|reason| reason.chars().take(MAX_COMMENT).collect::<String>());
        let commit = result.commit.as_deref().filter(|commit| commit.len() <= 128 && commit.bytes().all(|byte| byte.is_ascii_hexdigit()));
        let branch = result.branch.as_deref().filter(|branch| branch.len() <= 255);
        let end = PromotionEnd { state: to, reason: reason.as_deref(), commit, branch };
        if state.store.finish_promotion(record.id, result.id, &end, now).await? {
            tracing::info!(environment = %record.name, id = result.id, outcome = ?result.outcome, "promotion carried out by the deployer");
            if let Some(promotion) = state.store.promotion(result.id).await? {
                let event =
                    if to == PromotionState::Failed { proto::delivery::PROMOTION_REJECTED } else { proto::delivery::PROMOTION_APPLIED };
                crate::notify::promotion_changed(&state, &promotion, event).await;
            }
        }
    }
    if let Some(freeze) = promotion_gates::active_freeze(&sync.rules, now) {
        tracing::debug!(environment = %record.name, until = freeze.to_ms, "change freeze: approved promotions wait");
        return Ok(Json(PromotionSyncAnswer::default()));
    }
    let ready = state
        .store
        .promotions(Some(record.id), Some(PromotionState::Approved), 100)
        .await?
        .into_iter()
        .rev()
        .map(|promotion| ReadyPromotion {
            approved_by: promotion.decisions.iter().filter(|decision| decision.approved).map(|decision| decision.login.clone()).collect(),
            id: promotion.id,
            app: promotion.app,
            image: promotion.image,
            from_environment: promotion.from_environment,
            requested_by: promotion.requested_by,
        })
        .collect();
    Ok(Json(PromotionSyncAnswer { ready }))
}

/// Moves every pending promotion whose time ran out to `expired`, telling who wants to know.
/// Called by the background loop, and before anything reads or decides on promotions, so that
/// nobody sees one pending past its time.
pub async fn expire_due(state: &AppState) {
    match state.store.expire_promotions(now_ms()).await {
        Ok(expired) => {
            for record in &expired {
                tracing::info!(id = record.id, environment = %record.environment, app = %record.app, "promotion expired: not approved in time");
                crate::notify::promotion_changed(state, record, proto::delivery::PROMOTION_EXPIRED).await;
            }
        }
        Err(error) => tracing::error!(%error, "cannot expire promotions"),
    }
}

/// The repository and build that pushed `image`, when a build of this server did (the newest).
pub(crate) async fn origin(state: &AppState, image: &str) -> ApiResult<Option<(RepoRecord, i64)>> {
    let Ok((repository, digest)) = crate::api::artifacts::parse_image(image) else { return Ok(None) };
    let artifacts = state.store.artifacts_by_digest(digest).await?;
    for artifact in artifacts.iter().filter(|artifact| repository.is_none_or(|repository| repository == artifact.repository)) {
        if let Some(repo) = state.store.repo_by_id(artifact.repo_id).await? {
            return Ok(Some((repo, artifact.build_id)));
        }
    }
    Ok(None)
}

fn check_rules(rules: &PromotionRules) -> ApiResult<()> {
    let invalid = |message: &str| Err(ApiError::invalid("rules", message.to_owned()));
    if !rules.from.iter().all(|from| proto::delivery::is_valid_name(from)) {
        return invalid("`from` lists environments by name");
    }
    if rules.approvals > MAX_APPROVALS {
        return invalid(&format!("at most {MAX_APPROVALS} approvals"));
    }
    if rules.timeout_ms == 0 || i64::try_from(rules.timeout_ms).is_err() || i64::try_from(rules.soak_ms).is_err() {
        return invalid("`timeout` is more than nothing, and times are Unix milliseconds");
    }
    if rules.approvers.iter().any(|approver| approver.is_empty() || approver.len() > 255) {
        return invalid("`approvers` are user names or roles");
    }
    if rules.freezes.iter().any(|freeze| freeze.from_ms >= freeze.to_ms) {
        return invalid("a freeze ends after it starts");
    }
    Ok(())
}

fn check_comment(comment: Option<&str>) -> ApiResult<()> {
    if comment.is_some_and(|comment| comment.chars().count() > MAX_COMMENT) {
        return Err(ApiError::invalid("comment", format!("a comment is at most {MAX_COMMENT} characters")));
    }
    Ok(())
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("there is no promotion {id}"))
}

fn not_pending(record: &PromotionRecord) -> ApiError {
    let reason = record.reason.as_deref().map(|reason| format!(" ({reason})")).unwrap_or_default();
    ApiError::conflict(format!("promotion {} is {}{reason}; only a pending promotion takes decisions", record.id, record.state.as_str()))
}

async fn view(state: &AppState, caller: &Caller, record: &PromotionRecord) -> ApiResult<Promotion> {
    let build = BuildLinks::new(state, caller).of_image(Some(&record.image)).await?;
    Ok(to_view(record, build))
}

pub fn to_view(record: &PromotionRecord, build: Option<BuildLink>) -> Promotion {
    Promotion {
        id: record.id,
        environment: record.environment.clone(),
        app: record.app.clone(),
        from_environment: record.from_environment.clone(),
        image: record.image.clone(),
        state: record.state,
        requested_by: record.requested_by.clone(),
        comment: record.comment.clone(),
        requested: record.requested_at / 1000,
        expires: record.expires_at / 1000,
        approvals_required: record.approvals_required,
        decisions: record
            .decisions
            .iter()
            .map(|decision| PromotionDecision {
                user: decision.login.clone(),
                approved: decision.approved,
                comment: decision.comment.clone(),
                at: decision.decided_at / 1000,
            })
            .collect(),
        updated: record.updated_at / 1000,
        reason: record.reason.clone(),
        commit: record.commit.clone(),
        branch: record.branch.clone(),
        build,
    }
}
