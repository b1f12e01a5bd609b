//! Environments whose deployers report to the server, and what they reported. Server admins
//! register an environment (which makes the secret its deployer signs events with, shown once),
//! regenerate that secret and remove it; every signed-in user reads the environments, their
//! deployments and, per application, what runs, with the build that produced its image.
//!
//! The server holds no credential of an environment: its deployer calls out with signed events
//! (`crate::deployments`), and nothing here calls in.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use proto::api::{BuildLink, DeliveryMetrics, Deployment, Environment, EnvironmentApp, EnvironmentCreate, EnvironmentSecret};
use serde::Deserialize;
use store::{DeploymentEntry, EnvironmentRecord};

use crate::auth::Caller;
use crate::crypto::new_token;
use crate::delivery_metrics::DeploymentFact;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};
use crate::views;

/// Deployments listed when the caller does not say how many, and the most they may ask for.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 500;

/// Environments known to the server, by name: when each last reported, and how much.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments", responses((status = 200, body = [Environment])))]
pub async fn list(_caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<Environment>>> {
    Ok(Json(state.store.list_environments().await?.iter().map(|record| views::environment(&state, record)).collect()))
}

/// Registers an environment (server admins only) and answers the secret its deployer signs
/// events with (`gantry deployer --notify <events_url> --notify-secret <secret>`): shown here
/// once, kept sealed, never shown again.
#[utoipa::path(post, path = "/api/v1/environments", tag = "environments", request_body = EnvironmentCreate,
    responses((status = 201, body = EnvironmentSecret), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<EnvironmentCreate>,
) -> ApiResult<(StatusCode, Json<EnvironmentSecret>)> {
    caller.require_server_admin()?;
    if !proto::delivery::is_valid_name(&body.name) {
        return Err(ApiError::invalid(
            "name",
            format!(
                "an environment's name is its `name` in environment.yml: lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit, at most {} characters",
                proto::delivery::MAX_NAME
            ),
        ));
    }
    let secret = new_secret();
    state.store.create_environment(&body.name, &secret, now_ms()).await?;
    tracing::info!(environment = %body.name, by = caller.login(), "environment registered");
    Ok((StatusCode::CREATED, Json(secret_answer(&state, &body.name, secret))))
}

/// Makes a new signing secret for an environment (server admins only), shown once; events
/// signed with the old one are refused from now on.
#[utoipa::path(post, path = "/api/v1/environments/{environment}/secret", tag = "environments",
    params(("environment" = String, Path)),
    responses((status = 200, body = EnvironmentSecret), (status = 403, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn regenerate_secret(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
) -> ApiResult<Json<EnvironmentSecret>> {
    caller.require_server_admin()?;
    let secret = new_secret();
    if !state.store.replace_environment_secret(&environment, &secret).await? {
        return Err(not_found(&environment));
    }
    tracing::warn!(%environment, by = caller.login(), "environment signing secret regenerated");
    Ok(Json(secret_answer(&state, &environment, secret)))
}

/// Removes an environment with everything its deployer reported (server admins only). The
/// deployer keeps running; its events are refused.
#[utoipa::path(delete, path = "/api/v1/environments/{environment}", tag = "environments", params(("environment" = String, Path)),
    responses((status = 204), (status = 403, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete(caller: Caller, AxumState(state): AxumState<AppState>, Path(environment): Path<String>) -> ApiResult<StatusCode> {
    caller.require_server_admin()?;
    if !state.store.delete_environment(&environment).await? {
        return Err(not_found(&environment));
    }
    tracing::warn!(%environment, by = caller.login(), "environment removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeploymentsQuery {
    /// Only this application's deployments.
    pub app: Option<String>,
    /// How many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
}

/// An environment's deployments, newest first, each with the build that produced its image
/// when the caller can read that build's repository.
#[utoipa::path(get, path = "/api/v1/environments/{environment}/deployments", tag = "environments",
    params(("environment" = String, Path), DeploymentsQuery),
    responses((status = 200, body = [Deployment]), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn deployments(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    Query(query): Query<DeploymentsQuery>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("limit is 1 to {MAX_LIMIT}")));
    }
    let record = find(&state, &environment).await?;
    let entries = state.store.deployments(record.id, query.app.as_deref().filter(|app| !app.is_empty()), i64::from(limit)).await?;
    let mut builds = BuildLinks::new(&state, &caller);
    let mut answer = Vec::with_capacity(entries.len());
    for entry in &entries {
        answer.push(views::deployment(entry, builds.of(entry).await?));
    }
    Ok(Json(answer))
}

/// Every application of an environment: the version that runs (its latest successful
/// deployment, with the build that produced the image), its latest deployment whatever the
/// outcome (failed, rolled back, running), and its latest drift.
#[utoipa::path(get, path = "/api/v1/environments/{environment}/apps", tag = "environments", params(("environment" = String, Path)),
    responses((status = 200, body = [EnvironmentApp]), (status = 404, body = proto::api::ErrorBody)))]
pub async fn apps(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
) -> ApiResult<Json<Vec<EnvironmentApp>>> {
    let record = find(&state, &environment).await?;
    let mut builds = BuildLinks::new(&state, &caller);
    let mut answer = Vec::new();
    for app in state.store.environment_apps(record.id).await? {
        let current = match &app.current {
            Some(entry) => Some(views::deployment(entry, builds.of(entry).await?)),
            None => None,
        };
        let latest = match &app.latest {
            Some(entry) => Some(views::deployment(entry, builds.of(entry).await?)),
            None => None,
        };
        let owner_team = [&app.latest, &app.current]
            .into_iter()
            .flatten()
            .find_map(|entry| entry.owner_team.clone())
            .or_else(|| app.drift.as_ref().and_then(|drift| drift.owner_team.clone()));
        answer.push(EnvironmentApp { app: app.app, owner_team, current, latest, drift: app.drift.as_ref().map(views::drift) });
    }
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Only this application.
    pub app: Option<String>,
    /// The window, in days back from now (default 30, at most 365).
    pub days: Option<u32>,
}

/// The longest metrics window, in days.
const MAX_METRICS_DAYS: u32 = 365;

/// The four keys of delivery performance of an environment, or of one application in it, over
/// the last `days` days: deployment frequency, lead time for changes, change failure rate and
/// time to restore, each with its performance level.
#[utoipa::path(get, path = "/api/v1/environments/{environment}/metrics", tag = "environments",
    params(("environment" = String, Path), MetricsQuery),
    responses((status = 200, body = DeliveryMetrics), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn metrics(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(environment): Path<String>,
    Query(query): Query<MetricsQuery>,
) -> ApiResult<Json<DeliveryMetrics>> {
    let days = query.days.unwrap_or(30);
    if !(1..=MAX_METRICS_DAYS).contains(&days) {
        return Err(ApiError::invalid("days", format!("days is 1 to {MAX_METRICS_DAYS}")));
    }
    let app = query.app.filter(|app| !app.is_empty());
    let record = find(&state, &environment).await?;
    let until = now_ms();
    let since = until - i64::from(days) * 86_400_000;
    let mut commits = CommitTimes::new(&state, &caller);
    let mut facts = Vec::new();
    for entry in state.store.deployments_since(record.id, app.as_deref(), since).await? {
        let mut fact = DeploymentFact::of(&entry);
        if fact.is_change() && fact.succeeded() {
            fact.commits = commits.brought(entry.record.from_image.as_deref(), entry.record.to_image.as_deref()).await?;
        }
        facts.push(fact);
    }
    let (deployment_frequency, lead_time, change_failure_rate, time_to_restore) = crate::delivery_metrics::compute(&facts, days);
    Ok(Json(DeliveryMetrics {
        environment: record.name,
        app,
        since: since / 1000,
        until: until / 1000,
        days,
        deployment_frequency,
        lead_time,
        change_failure_rate,
        time_to_restore,
    }))
}

/// The commit times of what deployments brought, read from the repositories' mirrors, for the
/// builds the caller can read.
struct CommitTimes<'a> {
    state: &'a AppState,
    builds: BuildLinks<'a>,
}

impl<'a> CommitTimes<'a> {
    fn new(state: &'a AppState, caller: &'a Caller) -> Self {
        Self { state, builds: BuildLinks::new(state, caller) }
    }

    /// When each commit between the build of `from_image` and the build of `to_image` was
    /// committed: every commit the deployment brought. Only the new build's own commit when
    /// the old image's build is unknown (a first deployment); `None` when the new one's is.
    async fn brought(&mut self, from_image: Option<&str>, to_image: Option<&str>) -> ApiResult<Option<Vec<i64>>> {
        let Some(to) = self.builds.of_image(to_image).await? else { return Ok(None) };
        let from = self.builds.of_image(from_image).await?.filter(|from| from.repo == to.repo);
        let Some(repo) = self.state.store.repo_by_name(&to.repo).await? else { return Ok(None) };
        let mirror = match forge::git::Mirror::open(&self.state.mirrors, &repo.id.to_string()).await {
            Ok(mirror) => mirror,
            Err(error) => {
                tracing::warn!(repo = %repo.full_name, %error, "delivery metrics: no mirror of the repository");
                return Ok(None);
            }
        };
        let commits = match &from {
            Some(from) => mirror.commits_between(Some(&from.commit), &to.commit, proto::api::CHANGELOG_LIMIT).await,
            None => mirror.commit_info(&to.commit).await.map(|commit| vec![commit]),
        };
        match commits {
            Ok(commits) => Ok(Some(commits.iter().map(|commit| commit.committed).collect())),
            Err(error) => {
                tracing::warn!(repo = %repo.full_name, %error, "delivery metrics: a deployed commit is not in the mirror");
                Ok(None)
            }
        }
    }
}

/// The environment `name`, or a 404.
pub(crate) async fn find(state: &AppState, name: &str) -> ApiResult<EnvironmentRecord> {
    state.store.environment_by_name(name).await?.ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no environment {name}; `gantry environment ls` lists them"))
}

/// 32 random bytes as hex.
fn new_secret() -> String {
    new_token("")
}

fn secret_answer(state: &AppState, name: &str, secret: String) -> EnvironmentSecret {
    EnvironmentSecret { name: name.to_owned(), secret, events_url: state.environment_events_url(name) }
}

/// The builds that produced deployed images, looked up once per image in a request, among the
/// repositories the caller can read.
pub(crate) struct BuildLinks<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    found: HashMap<String, Option<BuildLink>>,
}

impl<'a> BuildLinks<'a> {
    pub(crate) fn new(state: &'a AppState, caller: &'a Caller) -> Self {
        Self { state, caller, found: HashMap::new() }
    }

    /// The build of the deployment's new image, when it is pinned by a digest a build of a
    /// repository the caller can read published.
    async fn of(&mut self, entry: &DeploymentEntry) -> ApiResult<Option<BuildLink>> {
        self.of_image(entry.record.to_image.as_deref()).await
    }

    /// The build that published `image`, as [`BuildLinks::of`] finds it.
    pub(crate) async fn of_image(&mut self, image: Option<&str>) -> ApiResult<Option<BuildLink>> {
        let Some(image) = image else { return Ok(None) };
        if let Some(known) = self.found.get(image) {
            return Ok(known.clone());
        }
        let link = match crate::api::artifacts::parse_image(image) {
            Ok((repository, digest)) => {
                let origins = crate::api::artifacts::visible_origins(self.state, self.caller, repository, digest).await?;
                origins.into_iter().next().map(|origin| BuildLink {
                    repo: origin.repo,
                    build: origin.build.number,
                    commit: origin.build.commit,
                    url: origin.url,
                })
            }
            // A tag without a digest names no one build.
            Err(_) => None,
        };
        self.found.insert(image.to_owned(), link.clone());
        Ok(link)
    }
}
