//! What every handler and background loop shares: settings, store, secret box, wake-ups.

use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use store::Store;

use crate::config::ServerConfig;
use crate::crypto::SecretBox;
use crate::hub::Hub;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: ServerConfig,
    pub store: Store,
    pub secrets: SecretBox,
    pub hub: Hub,
    /// Bare mirrors of repositories, for reading pipeline files at a commit.
    pub mirrors: PathBuf,
    /// For notifications and commit statuses.
    pub http: reqwest::Client,
    pub metrics: PrometheusHandle,
    /// Bounds password hashing and throttles failed sign-ins.
    pub login: crate::login::LoginGuard,
    /// One lock per repository mirror: git does not like two fetches into one repository.
    git_locks: std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Cancelled when the server shuts down: long-polls and log streams end at once, so the
    /// graceful shutdown does not wait for them.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The one-time code the first-start page asks for while the server has no users.
    pub setup_code: std::sync::OnceLock<String>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: ServerConfig, store: Store, secrets: SecretBox, metrics: PrometheusHandle) -> Self {
        let mirrors = config.data_dir.join("git");
        let http = reqwest::Client::builder()
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .expect("an HTTP client with static settings builds");
        Self(Arc::new(Inner {
            config,
            store,
            secrets,
            hub: Hub::default(),
            mirrors,
            http,
            metrics,
            login: Default::default(),
            git_locks: Default::default(),
            shutdown: Default::default(),
            setup_code: Default::default(),
        }))
    }

    /// The lock of a repository's mirror.
    pub fn git_lock(&self, repo_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.git_locks.lock().expect("git lock map").entry(repo_id).or_default().clone()
    }

    /// The address forges deliver a repository's webhooks to.
    pub fn webhook_url(&self, full_name: &str) -> String {
        format!("{}/api/hooks/{full_name}", self.config.public_url.trim_end_matches('/'))
    }

    /// Where an environment's deployer sends its events (`gantry deployer --notify`).
    pub fn environment_events_url(&self, environment: &str) -> String {
        format!("{}/api/v1/environments/{environment}/events", self.config.public_url.trim_end_matches('/'))
    }

    /// The UI link of a build.
    pub fn build_url(&self, full_name: &str, number: i64) -> String {
        format!("{}/repos/{full_name}/builds/{number}", self.config.public_url.trim_end_matches('/'))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}

/// Store milliseconds → API seconds.
pub fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}
