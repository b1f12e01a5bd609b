//! The server's settings, as the `gantry server` command collects them from flags and `GANTRY_*`
//! variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::egress::EgressPolicy;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// SQLite database, secret key file, git mirrors and logs live here.
    pub data_dir: PathBuf,
    /// `postgres://…`; SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    /// How forges and browsers reach this server: the base of webhook URLs and links.
    pub public_url: String,
    /// An API token with server-admin rights, for automation and the first start.
    pub admin_token: Option<String>,
    /// What agents present. Agents are refused when it is not set.
    pub agent_secret: Option<String>,
    /// 32 bytes, hex or base64; a key file in `data_dir` otherwise.
    pub secret_key: Option<String>,
    /// Logs of steps finished longer ago are deleted; `None` keeps them.
    pub log_retention: Option<Duration>,
    /// Largest webhook body accepted.
    pub max_webhook_bytes: usize,
    /// An agent silent this long has its workflows marked lost.
    pub agent_lost_after: Duration,
    /// How often background loops (poll, cron, lost agents) look for work.
    pub tick: Duration,
    /// `/metrics` asks for `Authorization: Bearer <this>` when set; open otherwise.
    pub metrics_token: Option<String>,
    /// Behind a reverse proxy: take the client's address from the last `X-Forwarded-For` entry
    /// (for throttling failed sign-ins) instead of the connection's.
    pub trust_forwarded_for: bool,
    /// Who may register repositories.
    pub repo_creation: RepoCreation,
    /// Where the remotes, forge APIs and notifiers of non-admins may point.
    pub egress: EgressPolicy,
}

/// Who may register repositories (`GANTRY_REPO_CREATION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepoCreation {
    /// Any signed-in user.
    #[default]
    Users,
    /// Server administrators only.
    Admins,
}

impl std::str::FromStr for RepoCreation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "users" => Ok(RepoCreation::Users),
            "admins" => Ok(RepoCreation::Admins),
            other => Err(format!("`{other}` is not who may create repositories: `users` or `admins`")),
        }
    }
}

impl ServerConfig {
    /// Defaults for a server on `listen` keeping its data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            database_url: None,
            public_url: format!("http://{listen}"),
            admin_token: None,
            agent_secret: None,
            secret_key: None,
            log_retention: None,
            max_webhook_bytes: 5 * 1024 * 1024,
            agent_lost_after: Duration::from_secs(proto::agent::LOST_AFTER_SECONDS),
            tick: Duration::from_secs(1),
            metrics_token: None,
            trust_forwarded_for: false,
            repo_creation: RepoCreation::default(),
            egress: EgressPolicy::default(),
        }
    }
}
