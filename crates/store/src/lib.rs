//! Gantry's persistence. Metadata lives in SQLite (WAL, in the data folder) or PostgreSQL,
//! chosen at start by the database address; log bodies live in files (`logs`), never in rows.
//!
//! Every time is Unix milliseconds (`i64`) in the store; callers pass `now` so that tests can
//! fix the clock. All queries use `$1`-style parameters and SQL both databases accept.

mod error;
pub mod logs;
mod records;

pub use error::StoreError;
pub use logs::LogFiles;
pub use records::*;

use std::collections::BTreeMap;
use std::path::Path;

/// Where the metadata lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing, opened in WAL mode.
    Sqlite(std::path::PathBuf),
    /// `postgres://user:password@host/db`.
    Postgres(String),
}

/// The store: a pool of connections and the log folder. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    // filled in by the implementation
}

impl Store {
    /// Opens (creating when missing) and migrates the database; logs go to `data_dir/logs`.
    pub async fn open(database: &Database, data_dir: &Path) -> Result<Store, StoreError> {
        todo!()
    }

    pub fn logs(&self) -> &LogFiles {
        todo!()
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        todo!()
    }

    /// For `/readyz`: one round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        todo!()
    }

    // ---- users and tokens ----

    /// `StoreError::Conflict` when the login exists.
    pub async fn create_user(&self, login: &str, password_hash: &str, admin: bool, now: i64) -> Result<UserRecord, StoreError> {
        todo!()
    }
    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        todo!()
    }
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        todo!()
    }
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        todo!()
    }
    /// Stores a token by the SHA-256 hex of its text; returns its id.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        kind: TokenKind,
        expires: Option<i64>,
        now: i64,
    ) -> Result<i64, StoreError> {
        todo!()
    }
    /// The user owning a token that has not expired at `now`.
    pub async fn user_by_token_hash(&self, token_hash: &str, now: i64) -> Result<Option<(UserRecord, TokenRecord)>, StoreError> {
        todo!()
    }
    pub async fn delete_token(&self, id: i64) -> Result<(), StoreError> {
        todo!()
    }

    // ---- repositories and members ----

    /// `StoreError::Conflict` when `full_name` exists.
    pub async fn create_repo(&self, repo: &NewRepo, now: i64) -> Result<RepoRecord, StoreError> {
        todo!()
    }
    pub async fn repo_by_name(&self, full_name: &str) -> Result<Option<RepoRecord>, StoreError> {
        todo!()
    }
    pub async fn repo_by_id(&self, id: i64) -> Result<Option<RepoRecord>, StoreError> {
        todo!()
    }
    pub async fn list_repos(&self) -> Result<Vec<RepoRecord>, StoreError> {
        todo!()
    }
    /// Writes every field of `repo` except `id` and `created`.
    pub async fn update_repo(&self, repo: &RepoRecord) -> Result<(), StoreError> {
        todo!()
    }
    /// Removes the repository with its members, secrets, builds, crons, notifiers and log files.
    pub async fn delete_repo(&self, id: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn set_member(&self, repo_id: i64, user_id: i64, role: &str) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn remove_member(&self, repo_id: i64, user_id: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn member_role(&self, repo_id: i64, user_id: i64) -> Result<Option<String>, StoreError> {
        todo!()
    }
    /// `(login, role)` by login.
    pub async fn list_members(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        todo!()
    }

    // ---- secrets (values encrypted by the caller) ----

    /// Creates or replaces.
    pub async fn put_secret(&self, repo_id: i64, secret: &NewSecret, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn list_secrets(&self, repo_id: i64) -> Result<Vec<SecretRecord>, StoreError> {
        todo!()
    }
    /// False when there was none.
    pub async fn delete_secret(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        todo!()
    }

    // ---- builds, workflows, steps ----

    /// In one transaction: the next number of the repository, the build, its workflows and their
    /// steps (all `pending`, or as given).
    pub async fn create_build(&self, build: &NewBuild, workflows: &[NewWorkflow], now: i64) -> Result<BuildRecord, StoreError> {
        todo!()
    }
    pub async fn build_by_id(&self, id: i64) -> Result<Option<BuildRecord>, StoreError> {
        todo!()
    }
    pub async fn build_by_number(&self, repo_id: i64, number: i64) -> Result<Option<BuildRecord>, StoreError> {
        todo!()
    }
    /// Newest first; `before` is a build number for paging.
    pub async fn list_builds(&self, repo_id: i64, limit: i64, before: Option<i64>) -> Result<Vec<BuildRecord>, StoreError> {
        todo!()
    }
    /// Builds in `pending` or `running` of a branch (for "cancel older builds").
    pub async fn active_builds_of_branch(&self, repo_id: i64, branch: &str) -> Result<Vec<BuildRecord>, StoreError> {
        todo!()
    }
    /// Sets the state; `started` is set on the first `running`, `finished` on a finished state.
    pub async fn set_build_state(&self, build_id: i64, state: proto::State, reason: Option<&str>, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn workflows_of_build(&self, build_id: i64) -> Result<Vec<WorkflowRecord>, StoreError> {
        todo!()
    }
    pub async fn workflow_by_id(&self, id: i64) -> Result<Option<WorkflowRecord>, StoreError> {
        todo!()
    }
    pub async fn steps_of_workflow(&self, workflow_id: i64) -> Result<Vec<StepRecord>, StoreError> {
        todo!()
    }
    pub async fn step_by_id(&self, id: i64) -> Result<Option<StepRecord>, StoreError> {
        todo!()
    }
    /// Workflows in `pending`, oldest first: the queue. The caller matches labels and dependencies.
    pub async fn pending_workflows(&self, limit: i64) -> Result<Vec<WorkflowRecord>, StoreError> {
        todo!()
    }
    /// Number of pending workflows (queue depth).
    pub async fn count_workflows(&self, state: proto::State) -> Result<i64, StoreError> {
        todo!()
    }
    /// `pending` → `running` on `agent_id`, only if still pending: true when this call won it.
    pub async fn claim_workflow(&self, workflow_id: i64, agent_id: i64, now: i64) -> Result<bool, StoreError> {
        todo!()
    }
    /// Sets the state and reason; stamps `started`/`finished` as for builds. `running` and
    /// `lost` keep the agent; `pending` clears it (a re-queue).
    pub async fn set_workflow_state(&self, workflow_id: i64, state: proto::State, reason: Option<&str>, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    /// Workflows held by an agent in one of `states`.
    pub async fn workflows_of_agent(&self, agent_id: i64, states: &[proto::State]) -> Result<Vec<WorkflowRecord>, StoreError> {
        todo!()
    }
    /// Sets the cancel flag of every unfinished workflow of the build.
    pub async fn request_cancel(&self, build_id: i64) -> Result<(), StoreError> {
        todo!()
    }
    /// Applies a step's reported state by name; stamps as given.
    pub async fn update_step(&self, workflow_id: i64, update: &StepChange) -> Result<(), StoreError> {
        todo!()
    }
    /// Every step of the workflow back to `pending` with no times, exit code or logs count (a re-queue).
    pub async fn reset_steps(&self, workflow_id: i64) -> Result<(), StoreError> {
        todo!()
    }
    /// Records how many log lines a step has (kept beside the files for listing).
    pub async fn set_step_log_lines(&self, step_id: i64, lines: u64) -> Result<(), StoreError> {
        todo!()
    }
    /// Builds by state, for metrics.
    pub async fn count_builds_by_state(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        todo!()
    }

    // ---- agents ----

    /// Creates the agent, or updates the one with the same name (an agent restarting).
    pub async fn register_agent(&self, agent: &NewAgent, now: i64) -> Result<AgentRecord, StoreError> {
        todo!()
    }
    pub async fn agent_by_id(&self, id: i64) -> Result<Option<AgentRecord>, StoreError> {
        todo!()
    }
    pub async fn touch_agent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        todo!()
    }

    // ---- triggers ----

    /// Remembers a webhook delivery id; false when it was seen before (a redelivery).
    pub async fn record_delivery(&self, repo_id: i64, delivery_id: &str, now: i64) -> Result<bool, StoreError> {
        todo!()
    }
    /// The refs (`refs/heads/main` → sha) seen by the last poll of a repository.
    pub async fn polled_refs(&self, repo_id: i64) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        todo!()
    }
    pub async fn set_polled_refs(&self, repo_id: i64, refs: &BTreeMap<String, String>, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    /// Creates or replaces a schedule by name.
    pub async fn put_cron(&self, cron: &NewCron, now: i64) -> Result<(), StoreError> {
        todo!()
    }
    pub async fn list_crons(&self, repo_id: i64) -> Result<Vec<CronRecord>, StoreError> {
        todo!()
    }
    pub async fn delete_cron(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        todo!()
    }
    /// Schedules whose `next` is at or before `now`.
    pub async fn due_crons(&self, now: i64) -> Result<Vec<CronRecord>, StoreError> {
        todo!()
    }
    /// Moves a schedule on, only if its `next` is still `previous` (so two servers fire it once):
    /// true when this call moved it.
    pub async fn advance_cron(&self, id: i64, previous: i64, next: i64) -> Result<bool, StoreError> {
        todo!()
    }

    // ---- notifiers ----

    pub async fn create_notifier(&self, repo_id: i64, kind: &str, url: &str, states: &[proto::State]) -> Result<NotifierRecord, StoreError> {
        todo!()
    }
    pub async fn list_notifiers(&self, repo_id: i64) -> Result<Vec<NotifierRecord>, StoreError> {
        todo!()
    }
    pub async fn delete_notifier(&self, repo_id: i64, id: i64) -> Result<bool, StoreError> {
        todo!()
    }
}
