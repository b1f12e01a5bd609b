//! The server↔agent protocol: HTTP/JSON on the server's port under [`PREFIX`].
//!
//! An agent has an identity of its own: the shared `GANTRY_AGENT_SECRET` only registers, and
//! every later request carries the token the registration returned
//! (`Authorization: Bearer <token>`). A job's updates are accepted only from the agent that
//! leased it; a request for another agent's job answers `409`. A token the server does not know
//! (an administrator removed the agent) answers `401`: the agent stops.
//!
//! The flow of one agent:
//! 1. `POST /register` once at start, with the agent secret, its name, labels and capacity, and
//!    the token of its previous registration if it kept one → its `agent_id` and a new token.
//!    A name that another connected agent holds is refused (`409`) unless the request proves,
//!    with that agent's token, that it is the same agent restarting.
//! 2. `POST /lease` (long-poll, up to [`LEASE_WAIT_SECONDS`]) while it has a free slot → `200`
//!    with a [`Job`] (one workflow), or `204` when nothing matched in time.
//! 3. For each job, `POST /jobs/{job}/updates` with step states and log lines. Lines are numbered
//!    per step from 0 by the agent; the server appends a line only when its number is the next
//!    one it expects and answers with that next number, so a retried batch is never doubled and
//!    a gap is resent. A batch is kept by the agent until acknowledged.
//! 4. `POST /jobs/{job}/cancel-wait` with `{"agent_id": …}` (a [`LeaseRequest`]; long-poll)
//!    returns as soon as the job is cancelled or is no longer the agent's.
//! 5. `POST /jobs/{job}/done` with the workflow's final state.
//! 6. `POST /heartbeat` every [`HEARTBEAT_SECONDS`] with the jobs it runs. The server marks the
//!    jobs of an agent silent for [`LOST_AFTER_SECONDS`] lost, and answers a heartbeat with the
//!    jobs the agent must stop (cancelled, or no longer its own). Registering again under the
//!    same name (a restarted agent) marks whatever that name was running lost.
//!
//! The `agent_id` the bodies carry must be the token's agent.
//!
//! A request for a job that is no longer leased to the agent answers `409`: the agent stops it.

use std::collections::BTreeMap;

use pipeline::plan::Plan;
use serde::{Deserialize, Serialize};

use crate::artifact::{PublishedImage, RegistryAuth};
use crate::state::{State, Trust};

pub const PREFIX: &str = "/api/agent/v1";
/// How long the server holds a lease request before answering `204`.
pub const LEASE_WAIT_SECONDS: u64 = 25;
/// How long the server holds a cancel-wait request before answering `cancelled: false`.
pub const CANCEL_WAIT_SECONDS: u64 = 25;
pub const HEARTBEAT_SECONDS: u64 = 5;
/// Silence after which an agent's jobs are lost.
pub const LOST_AFTER_SECONDS: u64 = 30;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Shown in the UI and logs; by default the host name.
    pub name: String,
    /// `platform=linux/amd64`, `backend=docker`, and whatever `--label k=v` adds. A workflow
    /// runs on an agent whose labels include all of the workflow's labels.
    pub labels: BTreeMap<String, String>,
    /// Most workflows at once.
    pub capacity: u32,
    pub version: String,
    /// The token an earlier registration under this name returned: proof that this is the same
    /// agent starting again, so it may take its name back at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegisterRequest")
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("capacity", &self.capacity)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: i64,
    pub heartbeat_seconds: u64,
    /// This agent's token for every later request. The server keeps only its hash.
    pub token: String,
}

impl std::fmt::Debug for RegisterResponse {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegisterResponse")
            .field("agent_id", &self.agent_id)
            .field("heartbeat_seconds", &self.heartbeat_seconds)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub agent_id: i64,
}

/// One workflow to run, with everything the agent needs and nothing more: the secrets are only
/// those its steps reference and its event may receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The workflow's id; the job's address in later requests.
    pub id: i64,
    pub build_id: i64,
    pub build_number: i64,
    pub repo: JobRepository,
    /// The commit to check out.
    pub commit: String,
    /// The git ref the build is for (`refs/heads/main`, `refs/pull/7/head`, `refs/tags/v1`).
    pub reference: String,
    /// A plan with exactly this one workflow, its dependencies already satisfied by the server.
    pub plan: Plan,
    pub secrets: BTreeMap<String, String>,
    pub trust: Trust,
    /// Limit for the whole workflow; steps still running then are killed.
    pub timeout_seconds: u64,
    /// Credentials for private registries: the repository's own (`gantry registry add`) and
    /// those of the workflow's `image_pull_secrets`. Used to pull step images and `FROM` images
    /// and to push built images; never given to a step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistryAuth>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRepository {
    pub id: i64,
    pub full_name: String,
    /// What `git fetch` reads from: `file://`, `http(s)://`, `ssh://` or scp-like; without
    /// credentials (they are in `clone_credentials`).
    pub clone_url: String,
    /// Credentials for the clone only, never given to steps, never written to `.git/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_credentials: Option<CloneCredentials>,
    /// A server administrator chose this remote, and it may be a path or `file://` on the
    /// agent's machine: git may use any transport. Otherwise (and when an older server does not
    /// say) the agent lets git use `http`, `https`, `ssh` and `git` only (`GIT_ALLOW_PROTOCOL`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_local: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for CloneCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("CloneCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a step's output, secrets already masked by the agent, without its line break.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch, on the agent's clock.
    pub at_ms: i64,
    pub stream: LogStream,
    pub text: String,
}

/// Consecutive lines of one step, numbered from `first_seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    pub step: String,
    pub first_seq: u64,
    pub lines: Vec<LogLine>,
}

/// A step's state as the agent knows it. Sent when it changes; repeating one is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUpdate {
    pub step: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobUpdates {
    pub agent_id: i64,
    #[serde(default)]
    pub steps: Vec<StepUpdate>,
    #[serde(default)]
    pub logs: Vec<LogBatch>,
    /// Images pushed since the last update (see [`PublishedImage`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedImage>,
}

/// The server's answer to [`JobUpdates`]: for every step that sent lines, the number of the next
/// line it expects (everything below is stored). `cancel` asks the agent to stop the job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobUpdatesResponse {
    pub next_seq: BTreeMap<String, u64>,
    pub cancel: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelWaitResponse {
    pub cancelled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDone {
    pub agent_id: i64,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Final states of every step, as in [`StepUpdate`].
    #[serde(default)]
    pub steps: Vec<StepUpdate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_id: i64,
    /// Jobs the agent is running.
    pub jobs: Vec<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Jobs to stop: cancelled, or no longer leased to this agent (it was marked lost).
    pub stop: Vec<i64>,
}
