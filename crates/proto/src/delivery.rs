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

pub const PROMOTION_REQUESTED: &str = "promotion.requested";
pub const PROMOTION_APPROVED: &str = "promotion.approved";
pub const PROMOTION_REJECTED: &str = "promotion.rejected";
pub const PROMOTION_EXPIRED: &str = "promotion.expired";
pub const PROMOTION_APPLIED: &str = "promotion.applied";
/// Every event the server sends about a promotion.
pub const PROMOTION_EVENTS: &[&str] = &[PROMOTION_REQUESTED, PROMOTION_APPROVED, PROMOTION_REJECTED, PROMOTION_EXPIRED, PROMOTION_APPLIED];

/// How an environment takes versions promoted into it, as its repository's `environment.yml`
/// says under `promotion:`. The deployer reads them and hands them to the server with every
/// sync; the server holds requests to them, and the deployer checks again what it can before it
/// commits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionRules {
    /// Whether the environment takes promotions at all: its `environment.yml` has a
    /// `promotion:` section. Without one, nothing is promoted into it.
    #[serde(default)]
    pub open: bool,
    /// The environments whose versions may be promoted here; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// Approvals a request needs, from people other than who asked.
    #[serde(default)]
    pub approvals: u32,
    /// Who may approve: user names, or `role:admin` / `role:write` (the role on the repository
    /// that built the image; a server admin holds every role). Empty: anyone with write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How long a request waits for its approvals, in milliseconds; then it expires, rejected.
    pub timeout_ms: u64,
    /// How long the version must have run healthy in the environment it comes from, in ms.
    #[serde(default)]
    pub soak_ms: u64,
    /// Workflows of the image's build that must have succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// When nothing is promoted here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<FreezeWindow>,
    /// How an approved promotion reaches the repository.
    #[serde(default)]
    pub review: PromotionReview,
}

/// The default wait for approvals: a day.
pub const DEFAULT_APPROVAL_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A change freeze: from `from_ms` (included) to `to_ms` (excluded), Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FreezeWindow {
    pub from_ms: u64,
    pub to_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl FreezeWindow {
    pub fn covers(&self, at_ms: u64) -> bool {
        (self.from_ms..self.to_ms).contains(&at_ms)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionReview {
    /// A commit on the branch the deployer follows.
    #[default]
    Commit,
    /// A branch `gantry/promote/<app>-<id>`, for people to review and merge.
    Branch,
}

/// What a deployer sends the server on every pass (`POST /api/v1/environments/{name}/promotions/sync`,
/// signed like its events): its environment's rules and what became of the promotions it was
/// given. The answer is the promotions ready for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionSync {
    pub environment: String,
    /// The environment repository's commit the rules were read at.
    pub revision: String,
    pub rules: PromotionRules,
    /// Unix milliseconds when sent: a sync far from the server's clock is refused, so that an
    /// old body cannot be played again later.
    pub sent_at: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PromotionResult>,
}

/// What became of one promotion a deployer was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionResult {
    pub id: i64,
    pub outcome: PromotionOutcome,
    /// The commit that pins the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The branch it is on (`review: branch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionOutcome {
    /// Committed on the branch the deployer follows: it deploys next.
    Applied,
    /// Pushed to a branch for review.
    Proposed,
    /// The deployer refused it (a hold, a freeze by its clock, an unknown application).
    Failed,
}

/// The server's answer to a sync: the promotions approved for this environment and not yet
/// carried out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionSyncAnswer {
    pub ready: Vec<ReadyPromotion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyPromotion {
    pub id: i64,
    pub app: String,
    /// Pinned by digest: exactly what runs in `from_environment`.
    pub image: String,
    pub from_environment: String,
    /// The user who asked.
    pub requested_by: String,
    /// Who approved, for the commit's trailers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}
