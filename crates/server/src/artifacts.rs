//! Artifacts: the images an agent reports its build steps pushed, checked against the
//! workflow's plan, recorded with the build, and announced to the repository's delivery
//! webhooks.
//!
//! An agent is trusted with its job's steps, not with what deployers believe: a report that
//! names a step that builds no image, or a repository the step was not planned to push, is
//! refused, so an agent cannot make a build announce an image it did not build.

use pipeline::plan::Plan;
use proto::artifact::PublishedImage;
use store::{ArtifactChange, NewArtifact, WorkflowRecord};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};

const MAX_TAGS: usize = 100;
const MAX_NAME: usize = 512;
/// A provenance statement is a few kilobytes; more is not one.
const MAX_PROVENANCE_BYTES: usize = 1024 * 1024;

/// Records what the job's steps pushed; a new or changed artifact is announced.
pub async fn record(state: &AppState, workflow: &WorkflowRecord, published: &[PublishedImage]) -> ApiResult<()> {
    if published.is_empty() {
        return Ok(());
    }
    let from_fork = state.store.build_by_id(workflow.build_id).await?.is_none_or(|build| build.from_fork);
    let plan: Plan = serde_json::from_value(workflow.plan.clone())
        .map_err(|error| ApiError::invalid("published", format!("the workflow's stored plan cannot be read: {error}")))?;
    for image in published {
        check(&plan, image)?;
        let provenance = image.provenance.as_ref().map(serde_json::Value::to_string);
        if provenance.as_ref().is_some_and(|text| text.len() > MAX_PROVENANCE_BYTES) {
            return Err(ApiError::invalid("published.provenance", "a provenance statement is at most 1 MiB"));
        }
        let artifact = NewArtifact {
            build_id: workflow.build_id,
            workflow_id: workflow.id,
            step: image.step.clone(),
            repository: image.repository.clone(),
            digest: image.digest.clone(),
            tags: image.tags.clone(),
            size: image.size,
            provenance,
            provenance_digest: image.provenance_digest.clone(),
        };
        if let ArtifactChange::Recorded(record) = state.store.record_artifact(&artifact, now_ms()).await? {
            tracing::info!(build = workflow.build_id, step = %record.step, image = %record.repository, digest = %record.digest, "image published");
            metrics::counter!("gantry_images_published_total").increment(1);
            // A fork's pull request runs a stranger's code: what it pushed is listed with its
            // build, but never announced to deployers.
            if !from_fork {
                crate::notify::image_published(state, &record).await;
            }
        }
    }
    Ok(())
}

fn check(plan: &Plan, image: &PublishedImage) -> ApiResult<()> {
    let build = plan
        .workflows
        .iter()
        .flat_map(|workflow| workflow.steps.iter())
        .find(|step| step.name == image.step)
        .ok_or_else(|| ApiError::invalid("published.step", format!("the workflow has no step `{}`", image.step)))?
        .build
        .as_ref()
        .ok_or_else(|| ApiError::invalid("published.step", format!("step `{}` builds no image", image.step)))?;
    if !build.push {
        return Err(ApiError::invalid("published.step", format!("step `{}` does not push", image.step)));
    }
    if !build.repositories.contains(&image.repository) {
        return Err(ApiError::invalid(
            "published.repository",
            format!("step `{}` was not planned to push `{}`", image.step, image.repository),
        ));
    }
    if !is_digest(&image.digest) {
        return Err(ApiError::invalid("published.digest", "a manifest digest is `sha256:` and 64 hex digits"));
    }
    if let Some(digest) = &image.provenance_digest
        && !is_digest(digest)
    {
        return Err(ApiError::invalid("published.provenance_digest", "a manifest digest is `sha256:` and 64 hex digits"));
    }
    if image.tags.len() > MAX_TAGS || image.tags.iter().any(|tag| !is_tag(tag)) || image.repository.len() > MAX_NAME {
        return Err(ApiError::invalid("published.tags", "tags are at most 100 names of `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`"));
    }
    Ok(())
}

pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
}

/// The OCI distribution spec's tag grammar.
fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    tag.len() <= 128
        && bytes.next().is_some_and(|first| first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}
