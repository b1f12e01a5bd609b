//! Which secrets a job receives: only those its steps reference, only if the build's event may
//! have them, never for pull requests from forks, and, when a secret is limited to some images,
//! only for plugin steps of those images: a step that runs its own `commands` or overrides the
//! image's `entrypoint` could print the secret whatever its image, so it never gets one (as in
//! Woodpecker). A referenced secret that is withheld fails the workflow before it reaches an
//! agent, with the reason, rather than running the step without it.
//!
//! Registry credentials (`registries_for_job`) follow the same rule of who may have them: none
//! for a fork's pull request, and a secret named in `image_pull_secrets` only for the events it
//! allows. They are never given to a step (the agent pulls, builds and pushes with them), so a
//! secret's image limit does not apply to them; and a job without them still runs (its images may
//! be public), so one that is withheld or unusable is left out, with a warning for a mistake.

use std::collections::BTreeMap;

use pipeline::plan::Plan;
use proto::artifact::RegistryAuth;
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

/// The registry credentials a job carries: those of the secrets its workflow names in
/// `image_pull_secrets` (each a Docker config JSON), then the repository's own (`gantry registry
/// add`); of two for one host, the first. A named secret that is missing or not a Docker config
/// JSON is left out with a warning that names it (never its value); the pull that needed it then
/// fails with the registry's answer. `Err` only when the store cannot be read.
pub async fn registries_for_job(
    state: &AppState,
    repo: &RepoRecord,
    build: &BuildRecord,
    plan: &Plan,
) -> Result<Vec<RegistryAuth>, String> {
    if build.from_fork {
        // A fork's code runs with no credentials of the repository's at all.
        return Ok(Vec::new());
    }
    let mut auths: Vec<RegistryAuth> = Vec::new();
    let pull_secrets: Vec<(&str, &str)> = plan
        .workflows
        .iter()
        .flat_map(|workflow| workflow.image_pull_secrets.iter().map(move |name| (workflow.name.as_str(), name.as_str())))
        .collect();
    if !pull_secrets.is_empty() {
        let stored = state.store.list_secrets(repo.id).await.map_err(|error| {
            tracing::error!(%error, "cannot list secrets");
            "the server could not read the repository's secrets".to_owned()
        })?;
        for (workflow, name) in pull_secrets {
            let Some(secret) = stored.iter().find(|secret| secret.name == name) else {
                tracing::warn!(repo = %repo.full_name, build = build.number, workflow, secret = name,
                    "`image_pull_secrets` names a secret the repository does not have; the job gets no registry login from it");
                continue;
            };
            if !secret.events.iter().any(|event| event == &build.event) {
                tracing::info!(repo = %repo.full_name, build = build.number, workflow, secret = name, event = %build.event,
                    "an `image_pull_secrets` secret is not available to this event; the job gets no registry login from it");
                continue;
            }
            let value = state.secrets.open(repo.id, name, &secret.ciphertext).map_err(|error| error.to_string())?;
            match proto::artifact::docker_config_auths(&value) {
                Ok(found) => add_new_hosts(&mut auths, found),
                Err(error) => tracing::warn!(repo = %repo.full_name, build = build.number, workflow, secret = name, %error,
                    "an `image_pull_secrets` secret is not a Docker config JSON; the job gets no registry login from it"),
            }
        }
    }
    let own = state.store.registry_auths(repo.id).await.map_err(|error| {
        tracing::error!(%error, "cannot read registry credentials");
        "the server could not read the repository's registry credentials".to_owned()
    })?;
    add_new_hosts(&mut auths, own);
    Ok(auths)
}

/// Appends the credentials of hosts `auths` has none for yet.
fn add_new_hosts(auths: &mut Vec<RegistryAuth>, found: Vec<RegistryAuth>) {
    for auth in found {
        if !auths.iter().any(|known| known.host == auth.host) {
            auths.push(auth);
        }
    }
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
