//! What a deployer reports: each deployment of an application (a record written when it
//! starts and again when it ends) and the events it sends to receivers, a Gantry server among
//! them. The deployer calls out with these; nothing of the environment's credentials is in
//! them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DEPLOYMENT_STARTED: &str = "deployment.started";
pub const DEPLOYMENT_SUCCEEDED: &str = "deployment.succeeded";
pub const DEPLOYMENT_FAILED: &str = "deployment.failed";
pub const DEPLOYMENT_ROLLED_BACK: &str = "deployment.rolled-back";
pub const DRIFT_DETECTED: &str = "drift.detected";
/// Every event a deployer sends.
pub const DEPLOYMENT_EVENTS: &[&str] =
    &[DEPLOYMENT_STARTED, DEPLOYMENT_SUCCEEDED, DEPLOYMENT_FAILED, DEPLOYMENT_ROLLED_BACK, DRIFT_DETECTED];

/// The longest name an environment or an application may have.
pub const MAX_NAME: usize = 63;

/// Whether `name` may name an environment or an application: names end up in container,
/// service, volume and label names, and in the server's URLs, so they keep to what every engine
/// and file system takes. Lower-case letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit, at most [`MAX_NAME`] bytes.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The event's name goes in `X-Gantry-Event` ([`crate::api::EVENT_HEADER`]) and the body is
/// signed like Gantry's notifications ([`crate::api::SIGNATURE_HEADER`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentOutcome {
    /// Under way.
    Running,
    Succeeded,
    /// Did not become healthy; what ran before runs (or runs again).
    Failed,
    /// The deployer stopped before it ended (killed, the machine restarted).
    Interrupted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentKind {
    Create,
    Update,
    Heal,
    Remove,
    /// Back to the previous version after a failed one (by the deployer or `gantry env rollback`).
    Rollback,
}

/// One deployment of one application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentRecord {
    pub id: String,
    pub environment: String,
    pub app: String,
    pub kind: DeploymentKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<String>,
    /// The environment repository's commit deployed.
    pub revision: String,
    /// Who made that commit (`Name <email>`); the deployer for its own rollbacks and automation.
    pub author: String,
    /// Unix milliseconds.
    pub started_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    pub outcome: DeploymentOutcome,
    /// Why it failed, or why it was a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DeploymentRecord {
    pub fn duration_ms(&self) -> Option<u64> {
        self.finished_at.map(|finished| finished.saturating_sub(self.started_at))
    }
}

/// One event a deployer sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentEvent {
    pub event: String,
    pub environment: String,
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}
