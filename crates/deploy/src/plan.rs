//! Diff-then-apply, the diff half: what the repository wants (desired) against what a target
//! runs (observed, found by labels), as a plan of changes a person can read before anything is
//! applied. No IO: a target reports what it observed; the apply half acts on the plan.
//!
//! Each application's desired state is summed up in one digest (`spec_digest`) over everything
//! that needs its containers replaced: the image by digest, command, environment, ports,
//! the content of its config files, its secrets' versions, health check, resources, volumes,
//! networks, labels. A target labels what it runs with that digest, so an unchanged
//! application is one string comparison: nothing to do costs nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::model::{App, DriftPolicy, TargetKind, UpdateOrder};

/// What a target runs of one application, as its labels and the engine say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedApp {
    pub name: String,
    /// The `spec_digest` label of its containers (or service); `None` when they disagree.
    pub spec_digest: Option<String>,
    /// The image reference it runs, as labelled.
    pub image: String,
    pub instances: Vec<ObservedInstance>,
    /// Replicas asked of the target (a Swarm service's count; containers on an engine).
    pub desired_replicas: u32,
    /// The environment repository's commit it was deployed from (its label).
    pub revision: String,
    /// When what runs was deployed (Unix seconds): the oldest instance's start.
    pub since: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedInstance {
    /// Container or task id.
    pub id: String,
    pub running: bool,
    /// `healthy`, `unhealthy`, `starting` when the target checks its health; `None` otherwise.
    pub health: Option<String>,
    /// Set when the target sees the instance run another image than the one it was deployed
    /// with (started again by hand with another image): what it runs.
    pub foreign_image: Option<String>,
    /// False for a container that claims the application by its labels but was not started by
    /// the deployer (it carries no revision the deployer deployed).
    pub managed: bool,
}

/// One application's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub app: String,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Not running yet: start it.
    Create { image: String, replicas: u32 },
    /// The repository changed it: roll it out.
    Update { from: String, to: String, order: UpdateOrder, why: Vec<String> },
    /// No longer in the repository: stop and remove it.
    Remove { image: String },
    /// What runs differs from what was deployed (changed by hand): put it back.
    Heal { drift: Vec<String> },
    /// The same, for an application whose policy is only to report it.
    Warn { drift: Vec<String> },
}

/// The changes that bring `observed` to `desired`, by application name; unchanged
/// applications do not appear.
pub fn plan(
    desired: &BTreeMap<String, App>,
    spec_digests: &BTreeMap<String, String>,
    kinds: &BTreeMap<String, TargetKind>,
    observed: &[ObservedApp],
) -> Vec<Change> {
    let observed_by_name: BTreeMap<&str, &ObservedApp> = observed.iter().map(|app| (app.name.as_str(), app)).collect();
    let mut changes = Vec::new();
    for (name, app) in desired {
        let digest = spec_digests.get(name).map(String::as_str).unwrap_or_default();
        let Some(running) = observed_by_name.get(name.as_str()) else {
            changes.push(Change { app: name.clone(), action: Action::Create { image: app.image.to_string(), replicas: app.replicas } });
            continue;
        };
        if running.spec_digest.as_deref() != Some(digest) {
            let mut why = Vec::new();
            if running.image != app.image.to_string() {
                why.push(format!("image {} → {}", running.image, app.image));
            }
            if running.desired_replicas != app.replicas {
                why.push(format!("replicas {} → {}", running.desired_replicas, app.replicas));
            }
            if running.spec_digest.is_none() {
                // The containers disagree: a rollout was interrupted, or someone started one
                // with the deployer's labels. Deploying again leaves one version.
                why.push("instances of more than one version run (an interrupted rollout, or one started by hand)".to_owned());
            }
            if why.is_empty() {
                why.push("configuration changed".to_owned());
            }
            let order = effective_order(app, kinds.get(&app.target).copied());
            changes.push(Change {
                app: name.clone(),
                action: Action::Update { from: running.image.clone(), to: app.image.to_string(), order, why },
            });
            continue;
        }
        let drift = drift_of(app, running);
        if !drift.is_empty() {
            let action = match app.drift {
                DriftPolicy::Heal => Action::Heal { drift },
                DriftPolicy::Warn => Action::Warn { drift },
            };
            changes.push(Change { app: name.clone(), action });
        }
    }
    for running in observed.iter().filter(|running| !desired.contains_key(&running.name)) {
        changes.push(Change { app: running.name.clone(), action: Action::Remove { image: running.image.clone() } });
    }
    changes
}

/// How a rollout must go: start-first cannot work for a host port on one engine (two
/// containers cannot hold it), so such an application is updated stop-first whatever it asks.
pub fn effective_order(app: &App, kind: Option<TargetKind>) -> UpdateOrder {
    if kind == Some(TargetKind::Docker) && !app.ports.is_empty() { UpdateOrder::StopFirst } else { app.update.order }
}

fn drift_of(app: &App, running: &ObservedApp) -> Vec<String> {
    let mut drift = Vec::new();
    let up = running.instances.iter().filter(|instance| instance.running).count();
    if running.desired_replicas != app.replicas {
        drift.push(format!("replicas set to {} by hand (the repository says {})", running.desired_replicas, app.replicas));
    }
    if up < app.replicas as usize {
        drift.push(format!("{up} of {} running", app.replicas));
    }
    if up > app.replicas as usize {
        drift.push(format!("{up} running, {} wanted", app.replicas));
    }
    for instance in running.instances.iter().filter(|instance| !instance.managed) {
        drift.push(format!("{} claims the application by its labels but was not started by the deployer", short(&instance.id)));
    }
    for instance in &running.instances {
        if let Some(actual) = &instance.foreign_image {
            drift.push(format!("{} runs {actual}, not the deployed {}", short(&instance.id), app.image));
        }
    }
    drift
}

/// The digest of everything in `app` that needs its containers replaced when it changes;
/// `config_digests` are the sha256 of the repository's files by path, `secret_versions` a
/// version per secret name (so that rotating a secret rolls the applications using it).
pub fn spec_digest(app: &App, config_digests: &BTreeMap<String, String>, secret_versions: &BTreeMap<String, String>) -> String {
    #[derive(Serialize)]
    struct Spec<'a> {
        image: String,
        command: &'a [String],
        environment: &'a BTreeMap<String, String>,
        ports: &'a [crate::model::Port],
        configs: Vec<(&'a str, &'a str, Option<&'a String>)>,
        secrets: Vec<(&'a str, &'a str, Option<&'a String>)>,
        healthcheck: &'a Option<crate::model::Healthcheck>,
        resources: &'a crate::model::Resources,
        volumes: &'a [crate::model::VolumeMount],
        networks: &'a [String],
        labels: &'a BTreeMap<String, String>,
    }
    let spec = Spec {
        image: app.image.pull_reference(),
        command: &app.command,
        environment: &app.environment,
        ports: &app.ports,
        configs: app
            .configs
            .iter()
            .map(|config| (config.file.as_str(), config.target.as_str(), config_digests.get(&config.file)))
            .collect(),
        secrets: app
            .secrets
            .iter()
            .map(|secret| (secret.name.as_str(), secret.target.as_str(), secret_versions.get(&secret.name)))
            .collect(),
        healthcheck: &app.healthcheck,
        resources: &app.resources,
        volumes: &app.volumes,
        networks: &app.networks,
        labels: &app.labels,
    };
    // Serializing plain data to a string cannot fail.
    let canonical = serde_json::to_string(&spec).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// The sha256 of a file's content, as `spec_digest` takes it.
pub fn content_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The plan as a person reads it (`gantry deployer plan`).
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "nothing to do: every application runs as the repository says\n".to_owned();
    }
    let mut out = String::new();
    for change in changes {
        let _ = match &change.action {
            Action::Create { image, replicas } => writeln!(out, "+ {}: start {image} ×{replicas}", change.app),
            Action::Update { from, to, order, why } => {
                let order = match order {
                    UpdateOrder::StartFirst => "start-first",
                    UpdateOrder::StopFirst => "stop-first",
                };
                writeln!(out, "~ {}: {from} → {to} ({order}; {})", change.app, why.join(", "))
            }
            Action::Remove { image } => writeln!(out, "- {}: stop and remove {image}", change.app),
            Action::Heal { drift } => writeln!(out, "! {}: heal drift: {}", change.app, drift.join("; ")),
            Action::Warn { drift } => writeln!(out, "? {}: drift (warn only): {}", change.app, drift.join("; ")),
        };
    }
    out
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
