//! Rows as the store returns them and the values it takes to create them. Not `Serialize`:
//! the server maps them to `proto::api` bodies, dropping what must never leave it (hashes,
//! webhook secrets, tokens, ciphertexts, registry passwords).

use std::collections::BTreeMap;

use proto::api::BuildDiagnostic;
use proto::artifact::RegistryHost;
use proto::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub login: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub admin: bool,
    pub created: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A bearer token for the API.
    Api,
    /// A browser session (cookie).
    Session,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub kind: TokenKind,
    pub expires: Option<i64>,
    pub created: i64,
}

/// What a repository is set to: everything about it but its identity (id, name, creation).
/// Credentials here are in the clear; the store seals them on the way in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSettings {
    pub clone_url: String,
    pub forge: ForgeKind,
    pub default_branch: String,
    pub config_path: String,
    pub webhook_secret: String,
    pub trust: Trust,
    pub timeout_minutes: u32,
    pub cancel_previous: bool,
    pub poll_interval_seconds: Option<u32>,
    pub lost_policy: LostPolicy,
    pub approval: ApprovalPolicy,
    pub forge_token: Option<String>,
    pub clone_username: Option<String>,
    pub clone_password: Option<String>,
    /// The forge's API base (`https://git.example.com/api/v1`); derived from the clone URL when absent.
    pub forge_api_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRepo {
    pub full_name: String,
    pub settings: RepoSettings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRecord {
    pub id: i64,
    pub full_name: String,
    pub settings: RepoSettings,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSecret {
    pub name: String,
    /// AES-256-GCM nonce followed by the ciphertext, made by the server's secret service.
    pub ciphertext: Vec<u8>,
    pub events: Vec<String>,
    pub images: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub ciphertext: Vec<u8>,
    pub events: Vec<String>,
    pub images: Vec<String>,
    pub created: i64,
    pub updated: i64,
}

/// Credentials for one registry host of a repository. The store seals the password; `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRegistryCredential {
    pub host: RegistryHost,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for NewRegistryCredential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NewRegistryCredential").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}

/// A repository's credentials for one registry host, without the password: only
/// `Store::registry_auths` opens passwords, for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCredentialRecord {
    pub id: i64,
    pub repo_id: i64,
    /// As `RegistryHost` reads it: `registry.example.com`, `127.0.0.1:5000`, `docker.io`.
    pub host: String,
    pub username: String,
    pub created: i64,
    pub updated: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBuild {
    pub repo_id: i64,
    pub event: String,
    pub state: State,
    pub reference: String,
    pub branch: String,
    pub commit: String,
    pub message: String,
    pub author: String,
    pub trigger: String,
    pub pull_request: Option<String>,
    pub reason: Option<String>,
    /// The plan's diagnostics.
    pub diagnostics: Vec<BuildDiagnostic>,
    /// Manual variables, kept so a restart runs with the same ones.
    pub variables: BTreeMap<String, String>,
    /// Whether the commit comes from a fork (pull requests): decides secrets.
    pub from_fork: bool,
    /// Who approved it at creation (a person restarting a build that would wait for approval).
    pub approved_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRecord {
    pub id: i64,
    pub repo_id: i64,
    pub number: i64,
    pub event: String,
    pub state: State,
    pub reference: String,
    pub branch: String,
    pub commit: String,
    pub message: String,
    pub author: String,
    pub trigger: String,
    pub pull_request: Option<String>,
    pub reason: Option<String>,
    pub diagnostics: Vec<BuildDiagnostic>,
    pub variables: BTreeMap<String, String>,
    pub from_fork: bool,
    /// Who approved it, when it waited for approval (`user:<login>` or `admin-token`).
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
}

/// Which builds of a repository a list shows; `None` matches any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildFilter {
    pub branch: Option<String>,
    pub event: Option<String>,
    pub state: Option<String>,
    pub author: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWorkflow {
    pub name: String,
    /// `pending`, or `skipped` when its conditions are false.
    pub state: State,
    pub reason: Option<String>,
    /// Names of workflows of the same build it waits for.
    pub depends_on: Vec<String>,
    /// Labels an agent must have.
    pub labels: BTreeMap<String, String>,
    /// The one-workflow `pipeline::Plan` as JSON: what the agent receives.
    pub plan: serde_json::Value,
    pub steps: Vec<NewStep>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStep {
    pub name: String,
    pub state: State,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowRecord {
    pub id: i64,
    pub build_id: i64,
    pub name: String,
    pub state: State,
    pub reason: Option<String>,
    pub depends_on: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub plan: serde_json::Value,
    pub agent_id: Option<i64>,
    pub cancel_requested: bool,
    /// How many times it was leased (re-queues count).
    pub attempts: i64,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    pub id: i64,
    pub workflow_id: i64,
    pub name: String,
    /// Declared order within the workflow, services first.
    pub position: i64,
    pub state: State,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub log_lines: u64,
}

/// A step's new state as an agent reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepChange {
    pub name: String,
    pub state: State,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub started: Option<i64>,
    pub finished: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAgent {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    pub version: String,
    pub last_seen: i64,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCron {
    pub repo_id: i64,
    pub name: String,
    pub schedule: String,
    pub branch: String,
    pub next: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronRecord {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub schedule: String,
    pub branch: String,
    pub next: i64,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifierRecord {
    pub id: i64,
    pub repo_id: i64,
    pub kind: String,
    pub url: String,
    pub states: Vec<State>,
    /// `build.finished`, `image.published` (see `proto::api::NOTIFIER_EVENTS`).
    pub events: Vec<String>,
    /// The signing secret sealed by the server's secret service; `None`: bodies go unsigned.
    pub secret_ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotifier {
    pub kind: String,
    pub url: String,
    pub states: Vec<State>,
    pub events: Vec<String>,
    pub secret_ciphertext: Option<Vec<u8>>,
}

/// An image a build step pushed, as the agent reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArtifact {
    pub build_id: i64,
    pub workflow_id: i64,
    pub step: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub size: Option<i64>,
    /// The in-toto statement as JSON text.
    pub provenance: Option<String>,
    pub provenance_digest: Option<String>,
}

/// A recorded artifact with the build that made it; the provenance statement is read apart
/// ([`crate::Store::artifact_provenance`]), as lists do not need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRecord {
    pub id: i64,
    pub repo_id: i64,
    pub build_id: i64,
    pub build_number: i64,
    pub workflow: String,
    pub step: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub size: Option<i64>,
    pub has_provenance: bool,
    pub provenance_digest: Option<String>,
    pub created: i64,
}

/// What recording an artifact changed: a report repeated by the agent changes nothing, and
/// only a change is announced to delivery webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactChange {
    Recorded(ArtifactRecord),
    Unchanged(ArtifactRecord),
}

/// An environment whose deployer reports to the server, with what it reported so far. Its
/// signing secret is not here: only [`crate::Store::environment_signing_secret`] opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentRecord {
    pub id: i64,
    pub name: String,
    pub created: i64,
    /// When the last event its deployer signed was accepted.
    pub last_event: Option<i64>,
    /// Deployments recorded.
    pub deployments: i64,
    /// Applications reported on (deployments or drift).
    pub apps: i64,
}

/// A deployment as recorded: the deployer's record, and what the server knows beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentEntry {
    pub record: proto::delivery::DeploymentRecord,
    pub owner_team: Option<String>,
    /// A `deployment.rolled-back` event arrived for it.
    pub rolled_back: bool,
    /// When its current state arrived.
    pub received_at: i64,
}

/// What recording a deployment changed. A redelivery, and a record older than the one kept (a
/// start arriving after the end), are `Unchanged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentChange {
    Created,
    Updated,
    Unchanged,
}

/// Drift a deployer reported for one application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftEntry {
    pub app: String,
    pub owner_team: Option<String>,
    pub drift: Vec<String>,
    pub received: i64,
}

/// One application of an environment: its latest successful deployment, its latest deployment
/// whatever the outcome, and its latest drift.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppDeployments {
    pub app: String,
    pub current: Option<DeploymentEntry>,
    pub latest: Option<DeploymentEntry>,
    pub drift: Option<DriftEntry>,
}

/// A request to promote an application's image into an environment, with the decisions on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionRecord {
    pub id: i64,
    pub environment_id: i64,
    pub environment: String,
    pub app: String,
    pub from_environment: String,
    /// Pinned by digest.
    pub image: String,
    /// The login of who asked.
    pub requested_by: String,
    pub comment: Option<String>,
    pub requested_at: i64,
    pub expires_at: i64,
    pub approvals_required: u32,
    /// The target environment's rules when it was asked: what its decisions are held to.
    pub rules: proto::delivery::PromotionRules,
    pub state: proto::api::PromotionState,
    pub updated_at: i64,
    pub reason: Option<String>,
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// In the order they were made.
    pub decisions: Vec<PromotionDecisionRecord>,
}

impl PromotionRecord {
    pub fn approvals(&self) -> usize {
        self.decisions.iter().filter(|decision| decision.approved).count()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionDecisionRecord {
    pub login: String,
    pub approved: bool,
    pub comment: Option<String>,
    pub decided_at: i64,
}

/// What a new promotion holds; the store gives it its id and state.
#[derive(Clone, Debug)]
pub struct NewPromotion<'a> {
    pub environment_id: i64,
    pub app: &'a str,
    pub from_environment: &'a str,
    pub image: &'a str,
    pub requested_by: &'a str,
    pub comment: Option<&'a str>,
    pub rules: &'a proto::delivery::PromotionRules,
    pub now: i64,
}

/// What a decision on a promotion did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionChange {
    /// Recorded; the promotion still waits for more approvals.
    Recorded,
    /// Recorded, and it was the last approval needed.
    Approved,
    /// Recorded as a rejection: the promotion is rejected.
    Rejected,
    /// Not recorded: this person already decided.
    AlreadyDecided,
    /// Not recorded: the promotion no longer waits for decisions (or expired meanwhile).
    NotPending,
}

/// The state a promotion moves to, with what is known of how it got there.
#[derive(Clone, Copy, Debug)]
pub struct PromotionEnd<'a> {
    pub state: proto::api::PromotionState,
    pub reason: Option<&'a str>,
    /// The environment repository's commit that pins the image.
    pub commit: Option<&'a str>,
    /// The branch it is on, for review.
    pub branch: Option<&'a str>,
}

impl PromotionEnd<'_> {
    pub fn new(state: proto::api::PromotionState) -> Self {
        Self { state, reason: None, commit: None, branch: None }
    }
}
