//! Artifacts: the images a build published, their provenance, and the reverse lookup from an
//! image digest to the build that produced it (what a deployer and an inventory ask).

use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use proto::api::{Artifact, ArtifactOrigin, Role};
use serde::Deserialize;
use store::ArtifactRecord;

use crate::api::builds::find;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The images a build's steps pushed, in the order they were pushed.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}/artifacts", tag = "artifacts",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = [Artifact]), (status = 404, body = proto::api::ErrorBody)))]
pub async fn list(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> ApiResult<Json<Vec<Artifact>>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    let artifacts = state.store.artifacts_of_build(build.id).await?;
    Ok(Json(artifacts.iter().map(|artifact| view(artifact, &repo.full_name)).collect()))
}

/// The provenance statement of an artifact (in-toto Statement v1, SLSA provenance v1): who
/// built it, from which commit and pipeline file, with which parameters and materials.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}/artifacts/{id}/provenance", tag = "artifacts",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = proto::api::ErrorBody)))]
pub async fn provenance(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number, id)): Path<(String, String, i64, i64)>,
) -> ApiResult<Json<serde_json::Value>> {
    let (repo, _) = caller.repo(&state, &owner, &name, Role::Read).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    let text = state
        .store
        .artifact_provenance(build.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("build {number} of {} has no artifact {id} with provenance", repo.full_name)))?;
    let statement = serde_json::from_str(&text).map_err(|error| {
        tracing::error!(%error, artifact = id, "a stored provenance statement is not JSON");
        ApiError::internal("the stored provenance statement cannot be read")
    })?;
    Ok(Json(statement))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// `registry/repository@sha256:<hex>` (a tag before `@` is ignored), or a bare digest.
    pub image: String,
}

/// Which builds produced an image, newest first: only builds of repositories the caller can
/// read. 404 when there is none the caller can see.
#[utoipa::path(get, path = "/api/v1/artifacts", tag = "artifacts", params(LookupQuery),
    responses((status = 200, body = [ArtifactOrigin]), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn lookup(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Query(query): Query<LookupQuery>,
) -> ApiResult<Json<Vec<ArtifactOrigin>>> {
    let (repository, digest) = parse_image(&query.image)?;
    let origins = visible_origins(&state, &caller, repository, digest).await?;
    if origins.is_empty() {
        return Err(ApiError::not_found(format!("no build you can see published {}", query.image)));
    }
    Ok(Json(origins))
}

/// The builds that published `digest` (to `repository`, when given) in repositories the caller
/// can read, newest first.
pub async fn visible_origins(state: &AppState, caller: &Caller, repository: Option<&str>, digest: &str) -> ApiResult<Vec<ArtifactOrigin>> {
    let mut origins = Vec::new();
    for artifact in state.store.artifacts_by_digest(digest).await? {
        if repository.is_some_and(|repository| repository != artifact.repository) {
            continue;
        }
        let Some(repo) = state.store.repo_by_id(artifact.repo_id).await? else { continue };
        if caller.role_on(state, &repo).await?.is_none() {
            continue;
        }
        let Some(build) = state.store.build_by_id(artifact.build_id).await? else { continue };
        origins.push(ArtifactOrigin {
            repo: repo.full_name.clone(),
            artifact: view(&artifact, &repo.full_name),
            build: crate::views::build(&build, &repo.full_name, None),
            url: state.build_url(&repo.full_name, build.number),
        });
    }
    Ok(origins)
}

/// `(repository without tag, digest)`; the repository is `None` for a bare digest.
pub fn parse_image(image: &str) -> ApiResult<(Option<&str>, &str)> {
    let (name, digest) = match image.rsplit_once('@') {
        Some((name, digest)) => (Some(name), digest),
        None => (None, image),
    };
    if !crate::artifacts::is_digest(digest) {
        return Err(ApiError::invalid("image", "name an image by digest: `registry/repository@sha256:<64 hex digits>`"));
    }
    let repository = name.map(|name| {
        // A tag is after the last `:` that follows the last `/` (`127.0.0.1:5000/app:1.2`).
        let last_slash = name.rfind('/').map_or(0, |slash| slash + 1);
        match name[last_slash..].find(':') {
            Some(colon) => &name[..last_slash + colon],
            None => name,
        }
    });
    if repository.is_some_and(str::is_empty) {
        return Err(ApiError::invalid("image", "the image's repository is empty"));
    }
    Ok((repository, digest))
}

pub fn view(artifact: &ArtifactRecord, full_name: &str) -> Artifact {
    Artifact {
        id: artifact.id,
        build: artifact.build_number,
        workflow: artifact.workflow.clone(),
        step: artifact.step.clone(),
        image: artifact.repository.clone(),
        digest: artifact.digest.clone(),
        pinned: format!("{}@{}", artifact.repository, artifact.digest),
        tags: artifact.tags.clone(),
        size: artifact.size,
        provenance: artifact.has_provenance.then(|| {
            format!("{}/repos/{full_name}/builds/{}/artifacts/{}/provenance", proto::api::PREFIX, artifact.build_number, artifact.id)
        }),
        provenance_digest: artifact.provenance_digest.clone(),
        created: artifact.created / 1000,
    }
}
