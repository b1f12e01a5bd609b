//! What an environment repository says should run: the environment (its targets and
//! defaults) and its applications, each owned by a team, at one image version. Read from the
//! files by `read`; every value here was checked there.

use std::collections::BTreeMap;
use std::time::Duration;

use pipeline::yaml::Span;
pub use proto::delivery::{FreezeWindow, PromotionReview, PromotionRules};
use serde::Serialize;

/// The format's version: the `version` key of every file. A file of a later version is refused
/// with a hint to upgrade the deployer, rather than half read.
pub const FORMAT_VERSION: u32 = 1;

/// The environment file at the repository's root.
pub const ENVIRONMENT_FILE: &str = "environment.yml";
/// Where application files live: `apps/<name>.yml`, the name being the application's.
pub const APPS_FOLDER: &str = "apps";

/// A whole environment repository at one revision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvironmentRepo {
    pub environment: Environment,
    /// By name.
    pub apps: BTreeMap<String, App>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Environment {
    /// `production`, `staging`: in labels, events and the inventory.
    pub name: String,
    /// Where applications run, by name.
    pub targets: BTreeMap<String, Target>,
    pub defaults: Defaults,
    /// How versions are promoted here from other environments (`promotion:`); when the file
    /// says nothing, from any environment, without approvals, committed on the branch.
    pub promotion: PromotionRules,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub kind: TargetKind,
    /// The engine's address (`unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`); `None`:
    /// the deployer's own (`DOCKER_HOST` or the local socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Containers on one Docker engine.
    Docker,
    /// Services on a Docker Swarm.
    Swarm,
}

/// What applications get when their file does not say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Defaults {
    /// The target of applications that name none; `None` when the environment has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Images must be pinned by digest (`repo:tag@sha256:…`): what runs is then exactly what
    /// was reviewed, whatever happens to the tag.
    pub require_digest: bool,
    pub drift: DriftPolicy,
    pub update: UpdatePolicy,
}

/// One application: one image, run as `replicas` identical containers (or one service).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct App {
    pub name: String,
    /// The file it was read from, relative to the repository (`apps/web.yml`).
    pub file: String,
    pub owner: Owner,
    pub target: String,
    pub image: ImageRef,
    pub replicas: u32,
    pub ports: Vec<Port>,
    /// Replaces the image's `CMD`; empty: the image's.
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub configs: Vec<ConfigFile>,
    pub secrets: Vec<SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub resources: Resources,
    pub networks: Vec<String>,
    pub volumes: Vec<VolumeMount>,
    pub labels: BTreeMap<String, String>,
    pub update: UpdatePolicy,
    pub drift: DriftPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_policy: Option<ImagePolicy>,
    /// Image versions that must not come back (by digest `sha256:…`, or by tag): the deployer
    /// adds the digest of a version it rolled back; image automation skips them. A person
    /// removes a hold by a commit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
    /// Where the file says things, for diagnostics of checks across files.
    #[serde(skip)]
    pub spans: AppSpans,
}

/// Places in an application's file that checks across files point at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppSpans {
    pub image: Span,
    pub healthcheck: Span,
    pub target: Span,
    /// One per entry of `ports`, in order.
    pub ports: Vec<Span>,
    /// One per entry of `secrets`, in order.
    pub secrets: Vec<Span>,
    /// One per entry of `configs`, in order.
    pub configs: Vec<Span>,
}

/// Who to ask about an application: required, because "who owns this?" is the first question
/// about anything running in production.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub team: String,
    /// An address, a chat channel, a pager rota: how to reach the team.
    pub contact: String,
}

/// `repository[:tag][@digest]`. People read the tag; machines run the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// Registry included: `registry.example.com/team/app`.
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageRef {
    /// What the engine is asked to run: by digest when there is one.
    pub fn pull_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("{}@{digest}", self.repository),
            (None, Some(tag)) => format!("{}:{tag}", self.repository),
            (None, None) => format!("{}:latest", self.repository),
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A container port published on the target's hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Port {
    /// On the host (or the Swarm's routing mesh).
    pub published: u16,
    /// In the container.
    pub target: u16,
    pub protocol: Protocol,
}

/// A file of the repository mounted read-only into the containers; a change of its content
/// rolls the application out again (Swarm configs are named by content digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    /// Relative to the repository's root (`apps/web/nginx.conf`).
    pub file: String,
    /// Absolute path in the container.
    pub target: String,
}

/// A secret by name: its value lives only in the deployer's store, never in git.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub name: String,
    /// Absolute path in the container; default `/run/secrets/<name>`.
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub probe: Probe,
    #[serde(serialize_with = "seconds")]
    pub interval: Duration,
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(serialize_with = "seconds")]
    pub start_period: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// Run in the container: healthy when it exits 0 (Docker's `HEALTHCHECK CMD`).
    Command(Vec<String>),
    /// Asked by the deployer: healthy on a 2xx or 3xx answer to `GET path` on `port`.
    Http { path: String, port: u16 },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resources {
    /// Whole or fractional CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
}

/// A named volume (created by the deployer, kept across versions) mounted at `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

/// How a new version replaces the running one (Swarm's `update_config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpdatePolicy {
    pub order: UpdateOrder,
    /// Containers replaced at once.
    pub parallelism: u32,
    /// How long a new version must stay healthy before the rollout counts as done.
    #[serde(serialize_with = "seconds")]
    pub monitor: Duration,
    pub failure_action: FailureAction,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            order: UpdateOrder::StartFirst,
            parallelism: 1,
            monitor: Duration::from_secs(30),
            failure_action: FailureAction::Rollback,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// The new container runs and is healthy before the old one stops: no gap.
    StartFirst,
    /// The old container stops first (a host port on one engine leaves no other way).
    StopFirst,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Go back to the previous version, and say so in git.
    Rollback,
    /// Stop where it is and report.
    Pause,
}

/// What to do when what runs is not what the repository says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    /// Put it back.
    Heal,
    /// Report it, change nothing.
    Warn,
}

/// Which new images the deployer moves an application to by itself (by a commit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImagePolicy {
    pub rule: ImageRule,
    /// A new image must be this old before it is taken.
    #[serde(serialize_with = "seconds")]
    pub maturing: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageRule {
    /// The highest tag within a semver range (`^1.4`, `>=2.0.0, <3`).
    Semver(String),
    /// Tags matching `pattern`, the highest by its first capture group.
    Regex { pattern: String, order: RegexOrder },
    /// The newest image built from this branch (its provenance says which).
    Branch(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegexOrder {
    Numeric,
    Alphabetical,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
