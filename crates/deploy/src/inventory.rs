//! What runs in the environment, as the deployer answers it after each reconcile: every
//! application with its owner, version and digest, replicas healthy of desired, since when,
//! who deployed it, the environment revision, the build and commit that produced the image,
//! and its drift. `GET /api/v1/inventory` and `gantry env status` show it; the metrics are
//! counted beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::history::{DeploymentOutcome, DeploymentRecord};
use crate::model::{EnvironmentRepo, Owner};
use crate::plan::{Action, Change, ObservedApp};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub environment: String,
    /// The environment repository's commit reconciled last.
    pub revision: String,
    /// Whether the last fetch reached the repository (false: the last known good state runs).
    pub repository_reachable: bool,
    /// The deployer's own commits (rollbacks, image updates) not pushed yet.
    pub pending_commits: usize,
    /// Unix seconds of the last reconcile.
    pub reconciled_at: u64,
    pub apps: Vec<InventoryApp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryApp {
    pub name: String,
    pub owner: InventoryOwner,
    pub target: String,
    /// As the repository writes it: `repository:tag@digest`.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// What the target runs, as it was labelled (differs from `image` during a rollout or
    /// after a failed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_image: Option<String>,
    pub replicas_desired: u32,
    pub replicas_running: u32,
    /// Running and passing their health check (or running, without one).
    pub replicas_healthy: u32,
    /// Unix seconds since which this version runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// The environment repository's commit it was deployed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_revision: Option<String>,
    /// Who made that commit: a person, or the deployer (rollback, image automation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
    /// The build that produced the image, from its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, String>,
    /// `in-sync`, `drifted` (with `drift` saying how), `progressing`, `failed`, `missing`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryOwner {
    pub team: String,
    pub contact: String,
}

impl From<&Owner> for InventoryOwner {
    fn from(owner: &Owner) -> Self {
        InventoryOwner { team: owner.team.clone(), contact: owner.contact.clone() }
    }
}

/// The provenance labels shown, by their short names.
pub const PROVENANCE_LABELS: &[(&str, &str)] = &[
    ("repo", "io.gantry.repo"),
    ("build", "io.gantry.build"),
    ("pipeline", "io.gantry.pipeline"),
    ("commit", "org.opencontainers.image.revision"),
    ("source", "org.opencontainers.image.source"),
    ("build_url", "org.opencontainers.image.url"),
    ("created", "org.opencontainers.image.created"),
];

/// The inventory of `repository` as observed, with what the plan still wants changed (after
/// apply: what failed or is only warned about), the history and the images' labels.
pub fn build(
    repository: &EnvironmentRepo,
    revision: &str,
    observed: &[ObservedApp],
    remaining: &[Change],
    history: &[DeploymentRecord],
    image_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Inventory {
    let apps = repository
        .apps
        .values()
        .map(|app| {
            let running = observed.iter().find(|observed| observed.name == app.name);
            let last = history.iter().rev().find(|record| record.app == app.name && record.outcome == DeploymentOutcome::Succeeded);
            let last_failure = history
                .iter()
                .rev()
                .take_while(|record| record.app != app.name || record.outcome != DeploymentOutcome::Succeeded)
                .find(|record| record.app == app.name && record.outcome == DeploymentOutcome::Failed)
                .and_then(|record| record.reason.clone());
            let change = remaining.iter().find(|change| change.app == app.name);
            let drift = match change.map(|change| &change.action) {
                Some(Action::Heal { drift } | Action::Warn { drift }) => drift.clone(),
                _ => Vec::new(),
            };
            let state = match (running, change) {
                (None, _) => "missing",
                (Some(_), None) => "in-sync",
                (Some(_), Some(Change { action: Action::Heal { .. } | Action::Warn { .. }, .. })) => "drifted",
                (Some(_), Some(_)) if last_failure.is_some() => "failed",
                (Some(_), Some(_)) => "progressing",
            };
            let labels = running.and_then(|running| image_labels.get(&running.image));
            InventoryApp {
                name: app.name.clone(),
                owner: (&app.owner).into(),
                target: app.target.clone(),
                image: app.image.to_string(),
                version: app.image.tag.clone(),
                digest: app.image.digest.clone(),
                running_image: running.map(|running| running.image.clone()),
                replicas_desired: app.replicas,
                replicas_running: running.map_or(0, |running| count(running, |instance| instance.running)),
                replicas_healthy: running.map_or(0, |running| {
                    count(running, |instance| instance.running && instance.health.as_deref().is_none_or(|health| health == "healthy"))
                }),
                since: running.map(|running| running.since).filter(|since| *since > 0),
                deployed_revision: running.map(|running| running.revision.clone()).filter(|revision| !revision.is_empty()),
                deployed_by: last.map(|record| record.author.clone()).filter(|author| !author.is_empty()),
                provenance: labels
                    .map(|labels| {
                        PROVENANCE_LABELS
                            .iter()
                            .filter_map(|(short, label)| labels.get(*label).map(|value| ((*short).to_owned(), value.clone())))
                            .collect()
                    })
                    .unwrap_or_default(),
                state: state.to_owned(),
                drift,
                last_failure,
                holds: app.holds.clone(),
            }
        })
        .collect();
    Inventory {
        environment: repository.environment.name.clone(),
        revision: revision.to_owned(),
        repository_reachable: true,
        pending_commits: 0,
        reconciled_at: crate::history::now_ms() / 1000,
        apps,
    }
}

fn count(app: &ObservedApp, keep: impl Fn(&crate::plan::ObservedInstance) -> bool) -> u32 {
    u32::try_from(app.instances.iter().filter(|instance| keep(instance)).count()).unwrap_or(u32::MAX)
}

/// The inventory as `gantry env status` prints it: one line per application.
pub fn render(inventory: &Inventory) -> String {
    let mut out = String::new();
    let short = |revision: &str| revision.chars().take(8).collect::<String>();
    let _ = writeln!(
        out,
        "environment {} at {}{}",
        inventory.environment,
        short(&inventory.revision),
        if inventory.repository_reachable { "" } else { " (repository unreachable: running the last known good state)" }
    );
    let _ = writeln!(out, "{:<16} {:<18} {:<28} {:>7} {:<10} {:<24} BUILD", "APP", "OWNER", "VERSION", "HEALTHY", "STATE", "DEPLOYED BY");
    for app in &inventory.apps {
        let version = match (&app.version, &app.digest) {
            (Some(tag), Some(digest)) => format!("{tag}@{}", &digest[..digest.len().min(19)]),
            (Some(tag), None) => tag.clone(),
            (None, Some(digest)) => digest[..digest.len().min(19)].to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let build = match (app.provenance.get("repo"), app.provenance.get("build"), app.provenance.get("commit")) {
            (Some(repo), Some(build), commit) => {
                format!("{repo}#{build}{}", commit.map(|commit| format!(" {}", short(commit))).unwrap_or_default())
            }
            (_, _, Some(commit)) => short(commit),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<18} {:<28} {:>7} {:<10} {:<24} {build}",
            app.name,
            app.owner.team,
            version,
            format!("{}/{}", app.replicas_healthy, app.replicas_desired),
            app.state,
            app.deployed_by.as_deref().unwrap_or("-"),
        );
        for drift in &app.drift {
            let _ = writeln!(out, "  drift: {drift}");
        }
        if let Some(failure) = &app.last_failure {
            let _ = writeln!(out, "  last failure: {failure}");
        }
    }
    out
}

/// Counters for `/metrics`, in Prometheus' text format.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub reconciles: u64,
    pub reconcile_failures: u64,
    /// Seconds the last reconcile took, and their sum over all.
    pub last_reconcile_seconds: f64,
    pub reconcile_seconds_sum: f64,
    pub deployments: BTreeMap<String, u64>,
    pub drifted_apps: u64,
    pub apps: u64,
    pub rollbacks: u64,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP gantry_deployer_reconciles_total Reconciles run, by result.");
        let _ = writeln!(out, "# TYPE gantry_deployer_reconciles_total counter");
        let _ = writeln!(out, "gantry_deployer_reconciles_total{{result=\"ok\"}} {}", self.reconciles - self.reconcile_failures);
        let _ = writeln!(out, "gantry_deployer_reconciles_total{{result=\"failed\"}} {}", self.reconcile_failures);
        let _ = writeln!(out, "# HELP gantry_deployer_reconcile_duration_seconds How long reconciles took.");
        let _ = writeln!(out, "# TYPE gantry_deployer_reconcile_duration_seconds summary");
        let _ = writeln!(out, "gantry_deployer_reconcile_duration_seconds_sum {}", self.reconcile_seconds_sum);
        let _ = writeln!(out, "gantry_deployer_reconcile_duration_seconds_count {}", self.reconciles);
        let _ = writeln!(out, "# HELP gantry_deployer_last_reconcile_duration_seconds How long the last reconcile took.");
        let _ = writeln!(out, "# TYPE gantry_deployer_last_reconcile_duration_seconds gauge");
        let _ = writeln!(out, "gantry_deployer_last_reconcile_duration_seconds {}", self.last_reconcile_seconds);
        let _ = writeln!(out, "# HELP gantry_deployer_deployments_total Deployments, by outcome.");
        let _ = writeln!(out, "# TYPE gantry_deployer_deployments_total counter");
        for outcome in ["succeeded", "failed", "interrupted"] {
            let _ =
                writeln!(out, "gantry_deployer_deployments_total{{outcome=\"{outcome}\"}} {}", self.deployments.get(outcome).unwrap_or(&0));
        }
        let _ = writeln!(out, "# HELP gantry_deployer_rollbacks_total Rollbacks the deployer committed.");
        let _ = writeln!(out, "# TYPE gantry_deployer_rollbacks_total counter");
        let _ = writeln!(out, "gantry_deployer_rollbacks_total {}", self.rollbacks);
        let _ = writeln!(out, "# HELP gantry_deployer_drifted_apps Applications whose running state differs from the repository.");
        let _ = writeln!(out, "# TYPE gantry_deployer_drifted_apps gauge");
        let _ = writeln!(out, "gantry_deployer_drifted_apps {}", self.drifted_apps);
        let _ = writeln!(out, "# HELP gantry_deployer_apps Applications in the environment repository.");
        let _ = writeln!(out, "# TYPE gantry_deployer_apps gauge");
        let _ = writeln!(out, "gantry_deployer_apps {}", self.apps);
        out
    }
}
