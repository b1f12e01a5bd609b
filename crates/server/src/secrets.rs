//! Which secrets a job receives: only those its steps reference, only if the build's event may
//! have them, never for pull requests from forks, and only for allowed images when a secret is
//! limited to some. A referenced secret that is withheld fails the workflow before it reaches an
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
                wanted.push((step.name.as_str(), step.image.as_deref().unwrap_or(""), reference.secret.as_str()));
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
    for (step, image, name) in wanted {
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
        if !secret.images.is_empty() && !secret.images.iter().any(|allowed| image_matches(allowed, image)) {
            return Err(format!("step `{step}` needs secret `{name}`, which only these images may use: {}", secret.images.join(", ")));
        }
        if !values.contains_key(name) {
            let value = state.secrets.open(repo.id, name, &secret.ciphertext).map_err(|error| error.to_string())?;
            values.insert(name.to_owned(), value);
        }
    }
    Ok(values)
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
