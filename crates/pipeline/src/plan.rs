//! The plan: what will run for one trigger context, fully resolved. The boundary to the runtime.
//!
//! A container's environment is the workflow's `environment`, then the step's own `environment`,
//! then the step's built-in variables (`CI_STEP_*`); built-ins are set last so a pipeline cannot
//! override them, as in Woodpecker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::ContainerOptions;
use crate::diagnostic::Diagnostic;
use crate::image_build::ImageBuild;
use crate::model::{Dialect, FailurePolicy, Healthcheck, PullPolicy};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub workflows: Vec<WorkflowPlan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Plan {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPlan {
    /// Unique in the plan: the workflow name, followed by the matrix row for matrix workflows.
    pub name: String,
    /// The name as written, shared by all rows of a matrix.
    pub base_name: String,
    pub file: String,
    pub dialect: Dialect,
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Names (as in `name`) of the workflows that must finish first.
    pub depends_on: Vec<String>,
    /// Whether the workflow runs when its dependencies succeeded, failed, or both.
    pub runs_on: Vec<RunOn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<BTreeMap<String, String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Drone's runner type; `None` for Woodpecker workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_type: Option<String>,
    /// False when Gantry cannot run this workflow (e.g. a Drone `type: kubernetes` pipeline).
    pub runnable: bool,
    pub workspace: Workspace,
    pub environment: BTreeMap<String, String>,
    pub steps: Vec<StepPlan>,
    pub services: Vec<StepPlan>,
    /// Named volumes that live as long as the workflow (Drone `temp` volumes).
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyPlan>,
    /// Secrets holding registry credentials (Drone `image_pull_secrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOn {
    Success,
    Failure,
}

impl RunOn {
    /// The statuses a step or workflow runs on, success first.
    pub fn list(on_success: bool, on_failure: bool) -> Vec<RunOn> {
        let mut statuses = Vec::with_capacity(2);
        if on_success {
            statuses.push(RunOn::Success);
        }
        if on_failure {
            statuses.push(RunOn::Failure);
        }
        statuses
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Mount point of the shared workspace volume.
    pub base: String,
    /// Where the repository is, relative to `base`; the default working directory.
    pub path: String,
}

impl Workspace {
    pub fn directory(&self) -> String {
        if self.path.is_empty() { self.base.clone() } else { format!("{}/{}", self.base.trim_end_matches('/'), self.path) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyPlan {
    pub limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Clone,
    Commands,
    Plugin,
    Service,
    /// An image build Gantry runs itself (`step.build`): no container of the step's own.
    Build,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Clone => "clone",
            StepKind::Commands => "commands",
            StepKind::Plugin => "plugin",
            StepKind::Service => "service",
            StepKind::Build => "build",
        }
    }
}

/// A secret a step receives: the variable `env` is set to the value of secret `secret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretReference {
    pub env: String,
    pub secret: String,
    /// The secret is part of a larger value: the step's `environment[env]` holds
    /// `SECRET_PLACEHOLDER_PREFIX<secret>SECRET_PLACEHOLDER_SUFFIX` where the value goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedded: bool,
}

pub const SECRET_PLACEHOLDER_PREFIX: &str = "((secret:";
pub const SECRET_PLACEHOLDER_SUFFIX: &str = "))";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    pub name: String,
    pub kind: StepKind,
    /// `None` for the built-in clone step (the runtime clones with git) and Drone exec steps.
    pub image: Option<String>,
    pub pull: PullPolicy,
    pub commands: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretReference>,
    pub depends_on: Vec<String>,
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    pub runs_on: Vec<RunOn>,
    pub failure: FailurePolicy,
    pub detach: bool,
    #[serde(flatten)]
    pub container: ContainerOptions,
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_options: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Options of the built-in clone step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneOptions>,
    /// What an image build step builds and pushes (`kind: build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    pub tags: bool,
    pub submodules: bool,
    pub lfs: bool,
}
