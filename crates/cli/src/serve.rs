//! `gantry server`: settings from flags and GANTRY_* variables, then the server until SIGTERM
//! or Ctrl-C (open requests finish; long-polls end).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Clone, Debug)]
pub(crate) struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "GANTRY_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// Folder for the SQLite database, the secret key file, git mirrors and logs.
    #[arg(long, env = "GANTRY_DATA", default_value = "gantry-data")]
    pub data: PathBuf,
    /// PostgreSQL instead of SQLite: postgres://user:password@host/database.
    #[arg(long, env = "GANTRY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How forges and browsers reach this server (webhook URLs, links); default http://<listen>.
    #[arg(long, env = "GANTRY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// An API token with server-admin rights (automation, first start).
    #[arg(long, env = "GANTRY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The secret agents present; without it no agent is accepted.
    #[arg(long, env = "GANTRY_AGENT_SECRET", hide_env_values = true)]
    pub agent_secret: Option<String>,
    /// Key for secrets at rest: 32 bytes as 64 hex digits or base64 (default: <data>/secret.key, made on first start).
    #[arg(long, env = "GANTRY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Delete step logs this many days after the step finished (default: keep).
    #[arg(long, env = "GANTRY_LOG_RETENTION_DAYS")]
    pub log_retention_days: Option<u32>,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, env = "GANTRY_MAX_WEBHOOK_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_webhook_bytes: usize,
    /// Seconds without a heartbeat after which an agent's workflows are marked lost.
    #[arg(long, env = "GANTRY_AGENT_LOST_AFTER", default_value_t = proto::agent::LOST_AFTER_SECONDS)]
    pub agent_lost_after: u64,
    /// A bearer token `/metrics` asks for (default: metrics are open).
    #[arg(long, env = "GANTRY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Behind a reverse proxy: take each client's address from the last X-Forwarded-For entry
    /// (failed sign-ins are throttled per address).
    #[arg(long, env = "GANTRY_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Who may register repositories: `users` (any signed-in user) or `admins` (server administrators).
    #[arg(long, env = "GANTRY_REPO_CREATION", default_value = "users")]
    pub repo_creation: server::config::RepoCreation,
    /// Networks the remotes, forge APIs and notifiers of non-admins may not reach: addresses,
    /// CIDR blocks and `loopback`, `link-local`, `unspecified`, `private`, or `none`.
    #[arg(long, env = "GANTRY_EGRESS_DENY", default_value = server::egress::DEFAULT_DENY)]
    pub egress_deny: String,
    /// Exceptions to --egress-deny (e.g. the address of a forge on this machine's network).
    #[arg(long, env = "GANTRY_EGRESS_ALLOW", default_value = "")]
    pub egress_allow: String,
}

pub(crate) fn execute(args: ServerArgs) -> anyhow::Result<u8> {
    let mut config = server::ServerConfig::new(args.listen, args.data.clone());
    config.database_url = args.database_url.filter(|url| !url.is_empty());
    if let Some(url) = args.public_url.filter(|url| !url.is_empty()) {
        config.public_url = url;
    } else if args.listen.ip().is_unspecified() {
        // 0.0.0.0 is no address to give a forge: name this machine instead.
        config.public_url = format!("http://{}:{}", backend_docker::host_name(), args.listen.port());
        eprintln!("note: webhook URLs and links use {}; set GANTRY_PUBLIC_URL to how forges reach this server", config.public_url);
    }
    config.admin_token = args.admin_token.filter(|token| !token.is_empty());
    config.agent_secret = args.agent_secret.filter(|secret| !secret.is_empty());
    config.secret_key = args.secret_key.filter(|key| !key.is_empty());
    config.log_retention = args.log_retention_days.map(|days| Duration::from_secs(u64::from(days) * 24 * 3600));
    config.max_webhook_bytes = args.max_webhook_bytes;
    config.agent_lost_after = Duration::from_secs(args.agent_lost_after.max(1));
    config.metrics_token = args.metrics_token.filter(|token| !token.is_empty());
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.repo_creation = args.repo_creation;
    config.egress = server::egress::EgressPolicy {
        deny: server::egress::parse_networks(&args.egress_deny).map_err(anyhow::Error::msg).context("--egress-deny")?,
        allow: server::egress::parse_networks(&args.egress_allow).map_err(anyhow::Error::msg).context("--egress-allow")?,
    };
    if config.agent_secret.is_none() {
        eprintln!("note: GANTRY_AGENT_SECRET is not set, so no agent can connect");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        server::serve(config, shutdown).await.context("the server stopped")?;
        Ok(0)
    })
}

/// SIGTERM or Ctrl-C cancels `shutdown`.
pub(crate) fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            tracing::warn!("cannot listen for SIGTERM");
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
