//! Bodies of the REST API under [`PREFIX`]. Times are Unix seconds, as in Woodpecker's API.
//! Secrets appear only as names: no response body ever holds a secret value or a registry password.
//! What the server generates is shown once, in the answer that creates it (an API token, a
//! repository's webhook secret, an environment's signing secret), and never again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::delivery::{DeploymentKind, DeploymentOutcome};
use crate::state::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};

pub const PREFIX: &str = "/api/v1";

/// Every 4xx and 5xx answer. `error` says what is wrong in a sentence; `field` names the input
/// that is wrong, when one is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `payload_too_large`, `method_not_allowed`, `unsupported_media_type`,
    /// `too_many_requests`, `unavailable`, `internal`.
    pub code: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A role on a repository. Each includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub login: String,
    /// A server administrator: every role on every repository, and the trust flags.
    pub admin: bool,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserCreate {
    pub login: String,
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Login {
    pub login: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreate {
    /// What the token is for, shown in lists.
    pub name: String,
    /// The token stops working this many days from now; absent: it works until deleted.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new API token. `token` is shown once, here; the server keeps only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    pub name: String,
    pub token: String,
    /// Unix seconds when it stops working, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// One of the caller's tokens: API tokens and sign-in sessions. Never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// `api` or `session`.
    pub kind: String,
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub login: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberSet {
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Repo {
    pub id: i64,
    /// `owner/name`: the repository's address in the API.
    pub full_name: String,
    pub clone_url: String,
    pub forge: ForgeKind,
    pub default_branch: String,
    /// A pipeline file or folder; empty for discovery (`.woodpecker/`, `.woodpecker.yml`, `.drone.yml`).
    pub config_path: String,
    pub trust: Trust,
    pub timeout_minutes: u32,
    /// Cancel running builds of the same branch when a newer one starts.
    pub cancel_previous: bool,
    /// Poll the remote for new commits and tags this often; absent: no polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_seconds: Option<u32>,
    pub lost_policy: LostPolicy,
    /// Which builds wait for a maintainer's approval before they are queued.
    pub approval: ApprovalPolicy,
    /// The forge's API base for commit statuses, when set; otherwise derived from the clone URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_api_url: Option<String>,
    /// Where the forge delivers webhooks for this repository.
    pub webhook_url: String,
    /// Your role on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The webhook secret, shown once: in the answer to registering the repository when the
    /// server generated it (configure it at the forge). Never returned again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    pub created: i64,
}

/// Registers a repository: its name and remote, and any settings that should not take their
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepoCreate {
    pub full_name: String,
    pub clone_url: String,
    #[serde(flatten)]
    pub settings: RepoSettingsChange,
}

/// Fields to change; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepoUpdate {
    #[serde(default)]
    pub clone_url: Option<String>,
    #[serde(flatten)]
    pub settings: RepoSettingsChange,
}

/// A repository's settings as a request gives them: registering one or changing it. An absent
/// field takes its default when registering and stays as it is when changing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepoSettingsChange {
    #[serde(default)]
    pub forge: Option<ForgeKind>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub config_path: Option<String>,
    /// Shared with the forge to sign webhooks; generated when registering without one. Never
    /// returned.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
    #[serde(default)]
    pub cancel_previous: Option<bool>,
    /// `0` turns polling off.
    #[serde(default)]
    pub poll_interval_seconds: Option<u32>,
    #[serde(default)]
    pub lost_policy: Option<LostPolicy>,
    /// Default: `forks` (pull requests from forks wait for a maintainer's approval).
    #[serde(default)]
    pub approval: Option<ApprovalPolicy>,
    /// Admins of the server only.
    #[serde(default)]
    pub trust: Option<Trust>,
    /// A token for the forge's status API (sent commit statuses); never returned.
    #[serde(default)]
    pub forge_token: Option<String>,
    /// The forge's API base (`https://git.example.com/api/v1`), when the clone URL does not
    /// tell it (self-hosted forges behind another address). Empty clears it.
    #[serde(default)]
    pub forge_api_url: Option<String>,
    /// Credentials for cloning over HTTP(S); never returned.
    #[serde(default)]
    pub clone_username: Option<String>,
    #[serde(default)]
    pub clone_password: Option<String>,
}

/// A problem in the pipeline files of a build, as `gantry lint` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildDiagnostic {
    /// `error`, `warning` or `note` (what a step needs trust for).
    pub severity: String,
    pub code: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    pub id: i64,
    pub repo: String,
    /// Counts up from 1 per repository.
    pub number: i64,
    /// `push`, `tag`, `pull_request`, `pull_request_closed`, `cron`, `manual`.
    pub event: String,
    pub state: State,
    pub reference: String,
    pub branch: String,
    pub commit: String,
    pub message: String,
    pub author: String,
    /// Who or what started it: `webhook`, `poll`, `cron:<name>`, `user:<login>`, `restart:<number>`.
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// Why it failed before running (pipeline errors, a missing commit), or why it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it came from a fork (pull requests): it gets no secrets and no trust.
    #[serde(default)]
    pub from_fork: bool,
    /// Who approved it, when it had to wait for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Unix seconds of the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<i64>,
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    #[serde(default)]
    pub diagnostics: Vec<BuildDiagnostic>,
    /// Absent in lists; present on one build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflows: Option<Vec<Workflow>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workflow {
    pub id: i64,
    pub name: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub id: i64,
    pub name: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// Lines stored so far.
    pub log_lines: u64,
}

/// A manual build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildCreate {
    /// Default: the repository's default branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Default: the branch's head.
    #[serde(default)]
    pub commit: Option<String>,
    /// Extra pipeline variables (never secrets).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// One stored log line, as served by the log endpoints. `seq` is the SSE event id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// The lines of a log that match a search, as `…/log/search` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogMatches {
    /// Numbers (`seq`) of the matching lines, in order.
    pub lines: Vec<u64>,
    /// True when the search stopped at its limit with lines left to look at.
    pub more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    pub name: String,
    /// Events whose builds receive it.
    pub events: Vec<String>,
    /// When not empty, only steps with one of these images receive it (plugin allowlist).
    pub images: Vec<String>,
    pub created: i64,
    pub updated: i64,
}

/// Creates or replaces a secret. The value is write-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretWrite {
    pub value: String,
    /// Default: every event except pull requests.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
}

/// Events a secret is available to when none are given: pull requests excluded, since their
/// code may come from a fork.
pub const DEFAULT_SECRET_EVENTS: &[&str] = &["push", "tag", "deployment", "cron", "manual", "promote", "rollback", "custom", "release"];

/// Credentials for one registry host, as the repository's builds pull and push with them. The
/// password is write-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    /// `registry.example.com`, `127.0.0.1:5000`, `docker.io` (Docker Hub).
    pub host: String,
    pub username: String,
    pub created: i64,
    pub updated: i64,
}

/// Creates or replaces the credentials of a registry host. The password is never shown again,
/// nor by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryWrite {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryWrite {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistryWrite").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cron {
    pub name: String,
    /// Five fields (`0 3 * * *`), six with seconds, or `@daily`-style; UTC.
    pub schedule: String,
    pub branch: String,
    /// Unix seconds of the next run.
    pub next: i64,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronWrite {
    pub schedule: String,
    /// Default: the repository's default branch.
    #[serde(default)]
    pub branch: Option<String>,
}

/// The events a notifier can be sent: a build finished (its final state is one of the
/// notifier's `states`), a build step pushed an image (the delivery webhook a deployer listens
/// to), or a deployer reported a deployment of an image the repository built, or drift of an
/// application running one.
pub const NOTIFIER_EVENTS: &[&str] = &[
    BUILD_FINISHED,
    IMAGE_PUBLISHED,
    crate::delivery::DEPLOYMENT_STARTED,
    crate::delivery::DEPLOYMENT_SUCCEEDED,
    crate::delivery::DEPLOYMENT_FAILED,
    crate::delivery::DEPLOYMENT_ROLLED_BACK,
    crate::delivery::DRIFT_DETECTED,
    crate::delivery::PROMOTION_REQUESTED,
    crate::delivery::PROMOTION_APPROVED,
    crate::delivery::PROMOTION_REJECTED,
    crate::delivery::PROMOTION_EXPIRED,
    crate::delivery::PROMOTION_APPLIED,
];
pub const BUILD_FINISHED: &str = "build.finished";
pub const IMAGE_PUBLISHED: &str = "image.published";

/// The header carrying a notification's signature, when its notifier has a secret:
/// `sha256=` and the hex HMAC-SHA256 of the body under that secret (GitHub's scheme).
pub const SIGNATURE_HEADER: &str = "X-Gantry-Signature";
/// The header naming the event of a notification (`build.finished`, `image.published`).
pub const EVENT_HEADER: &str = "X-Gantry-Event";

/// Where to send notifications: when a build finishes, when a build publishes an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notifier {
    pub id: i64,
    /// `webhook` (Gantry's JSON body) or `slack` (a Slack-compatible incoming webhook body).
    pub kind: String,
    pub url: String,
    /// Final states to notify about; empty: all.
    pub states: Vec<State>,
    /// What it is sent: `build.finished`, `image.published`.
    pub events: Vec<String>,
    /// Whether bodies carry an `X-Gantry-Signature` (the secret itself is never shown).
    pub signed: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotifierCreate {
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub states: Vec<State>,
    /// Default: `build.finished` only.
    #[serde(default)]
    pub events: Vec<String>,
    /// Signs every body with HMAC-SHA256 (`X-Gantry-Signature: sha256=<hex>`); write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl std::fmt::Debug for NotifierCreate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NotifierCreate")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("states", &self.states)
            .field("events", &self.events)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

/// An image a build pushed: every tag of one repository, pointing at one manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub id: i64,
    /// The build's number in its repository.
    pub build: i64,
    pub workflow: String,
    pub step: String,
    /// The image repository, registry included: `registry.example.com/team/app`.
    pub image: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// `image@digest`: what a deployer pins.
    pub pinned: String,
    pub tags: Vec<String>,
    /// Bytes of the manifest's config and layers, when the registry told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The API path of its provenance statement (in-toto, SLSA provenance v1), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// The digest of the provenance artifact pushed beside the image, referring to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_digest: Option<String>,
    /// Unix seconds of the push's report.
    pub created: i64,
}

/// Which build produced an image: the answer of `GET /api/v1/artifacts?image=IMAGE@DIGEST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactOrigin {
    pub repo: String,
    pub artifact: Artifact,
    pub build: Build,
    /// Link to the build in the UI.
    pub url: String,
}

/// The body of an `image.published` notification: what a deployer needs to act on a new
/// image without asking the CI server anything, and no credential of any environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImagePublished {
    /// Always `image.published`.
    pub event: String,
    /// The repository that built it: `owner/name`.
    pub repository: String,
    /// The build's number.
    pub build: i64,
    /// Link to the build in the UI.
    pub build_url: String,
    pub commit: String,
    pub branch: String,
    pub reference: String,
    /// The build's trigger event (`push`, `tag`, ...).
    pub trigger: String,
    pub workflow: String,
    pub step: String,
    /// The image repository, registry included.
    pub image: String,
    pub digest: String,
    /// `image@digest`.
    pub pinned: String,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_digest: Option<String>,
}

/// The body of a `webhook` notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildNotification {
    pub repo: String,
    pub build: Build,
    /// Link to the build in the UI.
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    pub version: String,
    /// Unix seconds of its last heartbeat.
    pub last_seen: i64,
    pub connected: bool,
    pub running: u32,
    /// Unix seconds of its first registration.
    pub created: i64,
}

/// The answer to a webhook delivery or a poll: what it started, if anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriggerResult {
    pub builds: Vec<i64>,
    /// Why nothing was started, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// An environment whose deployer reports to the server (`gantry deployer --notify`): its
/// deployments and drift arrive as signed events. Never its signing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Environment {
    pub name: String,
    pub created: i64,
    /// Unix seconds of the last event its deployer sent that was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<i64>,
    /// Deployments recorded.
    pub deployments: i64,
    /// Applications its deployer reported on.
    pub apps: i64,
    /// Where its deployer sends events: `gantry deployer --notify <events_url>`.
    pub events_url: String,
}

/// Registers an environment. Its name is the `name` of its `environment.yml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentCreate {
    pub name: String,
}

/// The secret an environment's deployer signs its events with (`--notify-secret`), shown
/// once: in the answer to registering the environment and to regenerating the secret. The
/// server keeps it sealed and never shows it again, nor does `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentSecret {
    pub name: String,
    pub secret: String,
    /// Where the deployer sends events: `gantry deployer --notify <events_url>`.
    pub events_url: String,
}

impl std::fmt::Debug for EnvironmentSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("EnvironmentSecret").field("name", &self.name).field("events_url", &self.events_url).finish_non_exhaustive()
    }
}

/// The build that produced a deployed image: the artifact recorded for the image's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildLink {
    /// The repository that built it: `owner/name`.
    pub repo: String,
    /// The build's number.
    pub build: i64,
    pub commit: String,
    /// Link to the build in the UI.
    pub url: String,
}

/// One deployment of an application, as its deployer reported it: written when it started and
/// again when it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    /// The deployer's id of the deployment, unique in its environment.
    pub id: String,
    pub environment: String,
    pub app: String,
    pub kind: DeploymentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<String>,
    /// The environment repository's commit deployed.
    pub revision: String,
    /// Who made that commit (`Name <email>`).
    pub author: String,
    /// Unix seconds.
    pub started: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub outcome: DeploymentOutcome,
    /// The deployer rolled the failed version back by a commit to the environment repository.
    #[serde(default)]
    pub rolled_back: bool,
    /// Why it failed, or why it was a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team: Option<String>,
    /// The build that produced `to_image`, when the image is pinned by a digest this server
    /// recorded and the caller can read its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildLink>,
}

/// Drift a deployer reported: what differs between an application's repository file and what
/// runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Drift {
    pub drift: Vec<String>,
    /// Unix seconds of the report.
    pub detected: i64,
}

/// One application of an environment: what runs and what happened last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentApp {
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team: Option<String>,
    /// The latest deployment that succeeded: the version that runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Deployment>,
    /// The latest deployment whatever its outcome (running, failed, rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Deployment>,
    /// The latest drift reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// What changed between two versions of an application: the commits between the builds that
/// produced their images, each with the builds of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Changelog {
    pub app: String,
    /// The repository both versions were built from: `owner/name`.
    pub repo: String,
    pub from: ChangelogVersion,
    pub to: ChangelogVersion,
    /// In `to` and not in `from`, newest first: what moving from `from` to `to` brings.
    pub added: Vec<ChangelogCommit>,
    /// In `from` and not in `to`, newest first: what that move takes away (a rollback, or a
    /// version built from another branch).
    pub removed: Vec<ChangelogCommit>,
    /// More commits than listed: each list stops at [`CHANGELOG_LIMIT`].
    pub truncated: bool,
}

/// The most commits a changelog lists each way.
pub const CHANGELOG_LIMIT: usize = 500;

/// One side of a changelog: the version asked for, the image it stands for and its build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangelogVersion {
    /// As asked: an environment, `environment:deployment`, or an image by digest.
    pub version: String,
    /// The image, pinned by digest.
    pub image: String,
    /// The environment it runs in, when asked by environment or deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The deployment that put it there (the deployer's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// When that deployment finished (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<i64>,
    pub build: BuildLink,
}

/// A commit in a changelog, with the builds that ran on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangelogCommit {
    pub sha: String,
    /// `Name <email>`.
    pub author: String,
    /// The message's first line.
    pub title: String,
    pub message: String,
    /// Unix seconds (the committer's time).
    pub committed: i64,
    /// Newest first.
    pub builds: Vec<CommitBuild>,
}

/// A build of a commit, as a changelog lists it: its outcome is the commit's test result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitBuild {
    pub number: i64,
    pub event: String,
    pub state: State,
    pub url: String,
}

/// The four keys of delivery performance of an environment, or of one application in it, over
/// a window of days back from now: computed from the deployments its deployer reported and the
/// commits of the builds behind their images, never guessed from job names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryMetrics {
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The window's start and end, Unix seconds, and its length in days.
    pub since: i64,
    pub until: i64,
    pub days: u32,
    pub deployment_frequency: DeploymentFrequency,
    pub lead_time: LeadTime,
    pub change_failure_rate: ChangeFailureRate,
    pub time_to_restore: TimeToRestore,
}

/// Where a key stands among the clusters of the 2023 Accelerate State of DevOps report; none
/// when there is nothing to judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PerformanceLevel {
    Elite,
    High,
    Medium,
    Low,
}

/// Changes (applications created or updated; not heals, removals or rollbacks) that succeeded.
/// Elite: at least one a day; high: one a week; medium: one a month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentFrequency {
    pub deployments: u64,
    pub per_day: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PerformanceLevel>,
}

/// From each commit's time to the end of the successful deployment that carried it. Elite:
/// a median under a day; high: under a week; medium: under 30 days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeadTime {
    /// Commits that reached the environment.
    pub commits: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<i64>,
    /// Successful changes whose image no build (that you can read) produced: their commits are
    /// unknown and not counted.
    pub unlinked_deployments: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PerformanceLevel>,
}

/// Changes that failed, or went live and were rolled back, over the changes that ended. Elite:
/// at most 5%; high: 10%; medium: 15%.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeFailureRate {
    pub deployments: u64,
    pub failures: u64,
    /// From 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PerformanceLevel>,
}

/// From a failure (a failed change's end, or when a change later rolled back went live) to the
/// end of the application's next successful deployment. Elite: a median under an hour; high:
/// under a day; medium: under a week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeToRestore {
    pub failures: u64,
    /// Failures followed by a successful deployment so far.
    pub restored: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PerformanceLevel>,
}

/// The answer to a deployment event: whether it changed what the server had recorded (a
/// redelivery changes nothing), or why it was ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventReceipt {
    pub changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// `POST /api/v1/environments/{name}/promotions`: promote what runs in `from` to this
/// environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionRequest {
    pub app: String,
    /// The environment whose running version is promoted.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `POST /api/v1/promotions/{id}/approve` and `…/reject`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionDecisionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionState {
    /// Waiting for approvals.
    Pending,
    /// Approved: waiting for the environment's deployer to commit it.
    Approved,
    /// Committed in the environment's repository.
    Applied,
    /// Pushed to a branch of the environment's repository for review.
    Proposed,
    Rejected,
    /// Not approved in time: rejected by the clock.
    Expired,
    /// The deployer refused it.
    Failed,
}

impl PromotionState {
    /// Its name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Applied => "applied",
            Self::Proposed => "proposed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }
}

/// One approval or rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionDecision {
    pub user: String,
    pub approved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// A request to run in one environment the version another one runs, with its approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Promotion {
    pub id: i64,
    pub environment: String,
    pub app: String,
    pub from_environment: String,
    /// Pinned by digest.
    pub image: String,
    pub state: PromotionState,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Unix seconds.
    pub requested: i64,
    /// When a pending request expires, Unix seconds.
    pub expires: i64,
    pub approvals_required: u32,
    pub decisions: Vec<PromotionDecision>,
    /// Unix seconds of its last change of state.
    pub updated: i64,
    /// Why it was rejected, expired or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The build that pushed the image, when the caller can read its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildLink>,
}
