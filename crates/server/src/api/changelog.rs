//! What changed between two versions of an application: the commits between the builds that
//! produced the two images, read from the repository's mirror, each with the builds that ran
//! on it. A version is what runs in an environment (`production`), what one deployment put
//! there (`production:<deployment id>`), or an image by digest.
//!
//! The way from a version to its commit is exact: the deployment's image digest, the artifact
//! a build recorded for that digest, that build's commit. Nothing is guessed from tags or
//! names. The caller must be able to read the repository, as for any build.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use proto::api::{BuildLink, CHANGELOG_LIMIT, Changelog, ChangelogCommit, ChangelogVersion, CommitBuild};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangelogQuery {
    /// The version moved from: an environment (what runs there), `environment:deployment`, or
    /// an image by digest (`registry/repository@sha256:…`).
    pub from: String,
    /// The version moved to, written the same ways.
    pub to: String,
}

/// The commits between two versions of an application, both ways, each with its builds.
#[utoipa::path(get, path = "/api/v1/apps/{app}/changelog", tag = "environments",
    params(("app" = String, Path), ChangelogQuery),
    responses((status = 200, body = Changelog), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody)))]
pub async fn changelog(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path(app): Path<String>,
    Query(query): Query<ChangelogQuery>,
) -> ApiResult<Json<Changelog>> {
    Ok(Json(between(&state, &caller, &app, &query.from, &query.to).await?))
}

/// The changelog of `app` from version `from` to version `to`, as `caller` may see it.
pub async fn between(state: &AppState, caller: &Caller, app: &str, from: &str, to: &str) -> ApiResult<Changelog> {
    let from = resolve(state, caller, app, "from", from).await?;
    let to = resolve(state, caller, app, "to", to).await?;
    if from.build.repo != to.build.repo {
        return Err(ApiError::bad_request(format!(
            "{} was built from {} and {} from {}: a changelog compares versions built from one repository",
            from.version, from.build.repo, to.version, to.build.repo
        )));
    }
    let repo = state
        .store
        .repo_by_name(&to.build.repo)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no repository {}", to.build.repo)))?;
    let mirror =
        forge::git::Mirror::open(&state.mirrors, &repo.id.to_string()).await.map_err(|error| missing_history(&repo.full_name, &error))?;
    let limit = CHANGELOG_LIMIT + 1;
    let added = mirror
        .commits_between(Some(&from.build.commit), &to.build.commit, limit)
        .await
        .map_err(|error| missing_history(&repo.full_name, &error))?;
    let removed = mirror
        .commits_between(Some(&to.build.commit), &from.build.commit, limit)
        .await
        .map_err(|error| missing_history(&repo.full_name, &error))?;
    let truncated = added.len() > CHANGELOG_LIMIT || removed.len() > CHANGELOG_LIMIT;
    let (added, removed) = (&added[..added.len().min(CHANGELOG_LIMIT)], &removed[..removed.len().min(CHANGELOG_LIMIT)]);

    let shas: Vec<&str> = added.iter().chain(removed).map(|commit| commit.sha.as_str()).collect();
    let mut builds: HashMap<String, Vec<CommitBuild>> = HashMap::new();
    for build in state.store.builds_of_commits(repo.id, &shas).await? {
        builds.entry(build.commit.clone()).or_default().push(CommitBuild {
            number: build.number,
            event: build.event.clone(),
            state: build.state,
            url: state.build_url(&repo.full_name, build.number),
        });
    }
    let listed = |commits: &[forge::git::CommitInfo]| -> Vec<ChangelogCommit> {
        commits
            .iter()
            .map(|commit| ChangelogCommit {
                sha: commit.sha.clone(),
                author: format!("{} <{}>", commit.author, commit.author_email),
                title: commit.message.lines().next().unwrap_or_default().to_owned(),
                message: commit.message.clone(),
                committed: commit.committed,
                builds: builds.get(&commit.sha).cloned().unwrap_or_default(),
            })
            .collect()
    };
    Ok(Changelog { app: app.to_owned(), repo: repo.full_name.clone(), added: listed(added), removed: listed(removed), truncated, from, to })
}

/// The version `written` (of the query's `field`): its image, and the build that produced it.
async fn resolve(state: &AppState, caller: &Caller, app: &str, field: &str, written: &str) -> ApiResult<ChangelogVersion> {
    let written = written.trim();
    if written.is_empty() {
        return Err(ApiError::invalid(field, "name a version: an environment, `environment:deployment`, or an image by digest"));
    }
    let (image, environment, deployment, deployed) =
        if written.contains('@') || written.starts_with("sha256:") {
            (written.to_owned(), None, None, None)
        } else {
            let (environment, deployment_id) = match written.split_once(':') {
                Some((environment, deployment)) => (environment, Some(deployment)),
                None => (written, None),
            };
            let record =
                state.store.environment_by_name(environment).await?.ok_or_else(|| {
                    ApiError::not_found(format!("there is no environment {environment}; `gantry environment ls` lists them"))
                })?;
            let entry = match deployment_id {
            Some(id) => state.store.deployment_by_id(record.id, id).await?.filter(|entry| entry.record.app == app).ok_or_else(|| {
                ApiError::not_found(format!(
                    "{environment} has no deployment {id} of {app}; `gantry environment deployments {environment} --app {app}` lists them"
                ))
            })?,
            None => state
                .store
                .environment_apps(record.id)
                .await?
                .into_iter()
                .find(|deployed| deployed.app == app)
                .and_then(|deployed| deployed.current)
                .ok_or_else(|| ApiError::not_found(format!("no deployment of {app} has succeeded in {environment}")))?,
        };
            let image =
                entry.record.to_image.clone().ok_or_else(|| {
                    ApiError::bad_request(format!("deployment {} of {app} in {environment} names no image", entry.record.id))
                })?;
            let deployed = entry.record.finished_at.and_then(|finished| i64::try_from(finished / 1000).ok());
            (image, Some(environment.to_owned()), Some(entry.record.id.clone()), deployed)
        };
    let (repository, digest) = crate::api::artifacts::parse_image(&image)
        .map_err(|_| ApiError::invalid(field, format!("{written} is {image}, which is not pinned by digest: no one build produced it")))?;
    let origin = crate::api::artifacts::visible_origins(state, caller, repository, digest)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no build you can read published {image} ({field} = {written})")))?;
    let build = BuildLink { repo: origin.repo, build: origin.build.number, commit: origin.build.commit, url: origin.url };
    Ok(ChangelogVersion { version: written.to_owned(), image, environment, deployment, deployed, build })
}

/// The mirror lacks a commit (or the mirror itself): said without the server's paths.
fn missing_history(repo: &str, error: &forge::git::GitError) -> ApiError {
    tracing::warn!(%repo, %error, "changelog: the repository's history is not in its mirror");
    ApiError::conflict(format!(
        "the history of {repo} between these versions is not in the server's copy of the repository; a build of its branch fetches it"
    ))
}
