//! Which secrets a job receives: only those its steps reference, only if the build's event may
//! have them, never for pull requests from forks, and, when a secret is limited to some images,
//! only for plugin steps of those images: a step that runs its own `commands` or overrides the
//! image's `entrypoint` could print the secret whatever its image, so it never gets one (as in
//! Woodpecker). A referenced secret that is withheld fails the workflow before it reaches an
//! agent, with the reason, rather than running the step without it.

use std::collections::BTreeMap;

use pipeline::plan::Plan;
use store::{BuildRecord, RepoRecord};

use crate::state::AppState;

pub async fn for_job(state: &AppState, repo: &RepoRecord, build: &BuildRecord, plan: &Plan) -> Result<BTreeMap<String, String>, String> {
    let mut wanted = Vec::new();
    for workflow in &plan.workflows {
        for step in workflow.services.iter().chain(workflow.steps.iter()).filter(|step| !step.skipped) {
            for reference in &step.secrets {
                wanted.push((step, reference.secret.as_str()));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let stored = state.store.list_secrets(repo.id).await.map_err(|error| {
        tracing::error!(%error, "cannot list secrets");
        "the server could not read the repository's secrets".to_owned()
    })?;
    let mut values = BTreeMap::new();
    for (step_plan, name) in wanted {
        let (step, image) = (step_plan.name.as_str(), step_plan.image.as_deref().unwrap_or(""));
        let Some(secret) = stored.iter().find(|secret| secret.name == name) else {
            return Err(format!(
                "step `{step}` needs secret `{name}`, which the repository does not have; add it with `gantry secret add`"
            ));
        };
        if build.from_fork {
            return Err(format!("step `{step}` needs secret `{name}`; secrets are not given to pull requests from forks"));
        }
        if !secret.events.iter().any(|event| event == &build.event) {
            return Err(format!(
                "step `{step}` needs secret `{name}`, which is not available to {} builds (allowed: {})",
                build.event,
                secret.events.join(", ")
            ));
        }
        if !secret.images.is_empty() {
            if !secret.images.iter().any(|allowed| image_matches(allowed, image)) {
                return Err(format!("step `{step}` needs secret `{name}`, which only these images may use: {}", secret.images.join(", ")));
            }
            if !is_plugin_step(step_plan) {
                return Err(format!(
                    "step `{step}` needs secret `{name}`, which is limited to plugin images; a step with its own `commands`, `command` or `entrypoint` could print it, so it gets none"
                ));
            }
        }
        if !values.contains_key(name) {
            let value = state.secrets.open(repo.id, name, &secret.ciphertext).map_err(|error| error.to_string())?;
            values.insert(name.to_owned(), value);
        }
    }
    Ok(values)
}

/// A plugin step runs its image as the image's author wrote it: no commands of the pipeline's,
/// no entrypoint and no arguments (`command`) of its own.
fn is_plugin_step(step: &pipeline::plan::StepPlan) -> bool {
    step.commands.is_empty() && step.command.is_empty() && step.entrypoint.is_none()
}

/// `plugins/docker` allows `plugins/docker:20`; `plugins/docker:20` allows only that tag.
pub fn image_matches(allowed: &str, image: &str) -> bool {
    if allowed == image {
        return true;
    }
    let name = image.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map(|(name, _)| name).unwrap_or(image);
    let name = name.split('@').next().unwrap_or(name);
    !allowed.contains(':') && allowed == name
}
