//! The agent: lease a workflow, run it, report states and logs, heartbeat.
//!
//! `run` connects to Docker (removing what dead runs on this host left behind), registers with
//! the server, and then leases jobs while it has a free slot, each job in a task of its own
//! (`job`): clone (`clone`), run on the runtime, report states and lines (`report`), and
//! `done`. A heartbeat task tells the server which jobs run and stops those it names.
//!
//! Every request to the server is retried with backoff while the server does not answer or
//! answers 5xx, so the agent rides out a server restart; nothing it reports is lost meanwhile.
//!
//! The agent registers with the shared agent secret and then speaks with the token the server
//! gave it. The token is kept in the work folder (0600), so that an agent restarting under its
//! name proves it is the same agent and takes its name back at once; a server that refuses the
//! token (an administrator removed the agent) stops the agent.

mod client;
mod clone;
mod control;
mod job;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backend_docker::{DockerBackend, DockerBackendOptions, NetworkPolicy};
use proto::agent::{HEARTBEAT_SECONDS, Heartbeat, RegisterRequest, RegisterResponse};
use runtime::Backend as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::client::{Backoff, Lease, RequestError, ServerClient};
use crate::control::JobControl;
use crate::job::AgentContext;

pub use crate::report::{MAX_PENDING_BYTES, MAX_PENDING_LINES, SEND_AT_LINES, SEND_INTERVAL};

/// How an agent runs. `AgentConfig::new` fills everything but the server and its secret.
#[derive(Clone)]
pub struct AgentConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub server: String,
    /// The agent secret (`GANTRY_AGENT_SECRET`), sent as a bearer token.
    pub secret: String,
    /// Shown in the server's UI and logs; the host name by default.
    pub name: String,
    /// What workflows this agent takes: `default_labels()` plus any of the user's.
    pub labels: BTreeMap<String, String>,
    /// Most workflows at once.
    pub capacity: u32,
    /// Where clones are made, one fresh folder per job, removed after it.
    pub work_dir: PathBuf,
    pub docker: DockerBackendOptions,
    /// Most steps running at once within one workflow.
    pub parallel: usize,
    /// After shutdown was asked for, how long the agent keeps trying to give an unreachable
    /// server the last states, lines and ends of its jobs before it exits anyway.
    pub shutdown_grace: Duration,
}

impl AgentConfig {
    pub fn new(server: impl Into<String>, secret: impl Into<String>) -> AgentConfig {
        AgentConfig {
            server: server.into(),
            secret: secret.into(),
            name: backend_docker::host_name(),
            labels: default_labels(),
            capacity: 1,
            work_dir: std::env::temp_dir().join("gantry-agent"),
            docker: default_docker_options(),
            parallel: 4,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("capacity", &self.capacity)
            .field("work_dir", &self.work_dir)
            .field("docker", &self.docker)
            .field("parallel", &self.parallel)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish_non_exhaustive()
    }
}

/// The Docker options an agent runs with, as `gantry exec` does: a workflow gets its own
/// network only once something in it is addressed by name, and services are killed at once.
pub fn default_docker_options() -> DockerBackendOptions {
    DockerBackendOptions { network_policy: NetworkPolicy::WhenAddressed, service_stop_grace: Duration::ZERO, ..Default::default() }
}

/// `platform=<os>/<arch>` in Docker's spelling (`linux/amd64`, `linux/arm64`) and
/// `backend=docker`.
pub fn default_labels() -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    BTreeMap::from([("platform".to_owned(), format!("{}/{arch}", std::env::consts::OS)), ("backend".to_owned(), "docker".to_owned())])
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{message}")]
    DockerUnavailable { message: String, hint: String },
    #[error("the docker engine cannot be used: {message}")]
    Docker { message: String },
    #[error("the server at {server} refused to register this agent ({status}): {message}")]
    Rejected { server: String, status: u16, message: String },
    #[error("the server at {server} answered the registration with something the agent cannot read: {message}")]
    Protocol { server: String, message: String },
    #[error("work folder {path}: {source}")]
    WorkDir { path: PathBuf, source: std::io::Error },
    #[error("capacity must be at least 1")]
    NoCapacity,
    #[error("cannot make an HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error(
        "the server at {server} no longer accepts this agent's token (an administrator removed the agent, or another agent registered under its name); start it again to register"
    )]
    Refused { server: String },
}

/// Runs the agent until `shutdown` is cancelled: then it leases nothing more, stops its
/// running jobs (they end as killed), reports them, and returns.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let span = tracing::info_span!("agent", agent = %config.name, agent_id = tracing::field::Empty);
    run_agent(config, shutdown, span.clone()).instrument(span).await
}

async fn run_agent(config: AgentConfig, shutdown: CancellationToken, span: tracing::Span) -> Result<(), AgentError> {
    if config.capacity == 0 {
        return Err(AgentError::NoCapacity);
    }
    std::fs::create_dir_all(&config.work_dir).map_err(|source| AgentError::WorkDir { path: config.work_dir.clone(), source })?;
    let backend = DockerBackend::connect_with(config.docker.clone()).await.map_err(docker_error)?;
    // What runs of a killed agent left on this host goes before anything new starts.
    if let Err(error) = backend.sweep().await {
        match error {
            runtime::BackendError::Unavailable { .. } => return Err(docker_error(error)),
            other => tracing::warn!(error = %other, "could not remove what earlier runs left behind"),
        }
    }
    let client = ServerClient::new(&config.server, &config.secret).map_err(AgentError::Http)?;
    let identity = IdentityFile::new(&config);
    let registration_request = RegisterRequest {
        name: config.name.clone(),
        labels: config.labels.clone(),
        capacity: config.capacity,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        token: identity.read(),
    };
    let Some(registration) = register(&client, &registration_request, &config.server, &shutdown).await? else { return Ok(()) };
    identity.write(&registration.token);
    span.record("agent_id", registration.agent_id);
    tracing::info!(capacity = config.capacity, labels = ?config.labels, "registered");

    let abandon = CancellationToken::new();
    let grace = {
        let (shutdown, abandon, grace) = (shutdown.clone(), abandon.clone(), config.shutdown_grace);
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            abandon.cancel();
        })
    };
    let context = Arc::new(AgentContext {
        client,
        agent_id: registration.agent_id,
        name: config.name.clone(),
        server: config.server.trim_end_matches('/').to_owned(),
        backend: Arc::new(backend),
        work_dir: config.work_dir.clone(),
        parallel: config.parallel.max(1),
        abandon,
        engine_down: tokio::sync::watch::Sender::new(false),
    });
    let jobs = Arc::new(RunningJobs::default());
    let heartbeat_stop = CancellationToken::new();
    let heartbeat_interval =
        Duration::from_secs(if registration.heartbeat_seconds > 0 { registration.heartbeat_seconds } else { HEARTBEAT_SECONDS });
    let heartbeat = tokio::spawn(heartbeat(context.clone(), jobs.clone(), heartbeat_interval, heartbeat_stop.clone()).in_current_span());

    lease_loop(&context, &jobs, config.capacity, &shutdown).await;

    grace.abort();
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    if context.client.refused().is_cancelled() {
        identity.forget();
        return Err(AgentError::Refused { server: config.server.clone() });
    }
    tracing::info!("stopped");
    Ok(())
}

/// Where the agent keeps the token of its registration with one server under one name.
struct IdentityFile {
    path: PathBuf,
    server: String,
}

impl IdentityFile {
    fn new(config: &AgentConfig) -> IdentityFile {
        let name: String = config
            .name
            .chars()
            .map(|character| if character.is_ascii_alphanumeric() || "-_.".contains(character) { character } else { '_' })
            .collect();
        IdentityFile { path: config.work_dir.join(format!("agent-{name}.token")), server: config.server.trim_end_matches('/').to_owned() }
    }

    /// The token kept for this server, if any.
    fn read(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let (server, token) = text.split_once('\n')?;
        (server == self.server && !token.trim().is_empty()).then(|| token.trim().to_owned())
    }

    fn write(&self, token: &str) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut file| file.write_all(format!("{}\n{token}\n", self.server).as_bytes()));
        if let Err(error) = written {
            // Not fatal: a restart then waits until the server takes the old process for lost.
            tracing::warn!(path = %self.path.display(), %error, "cannot keep the agent's token");
        }
    }

    fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn docker_error(error: runtime::BackendError) -> AgentError {
    match error {
        runtime::BackendError::Unavailable { message, hint } => AgentError::DockerUnavailable { message, hint },
        other => AgentError::Docker { message: other.to_string() },
    }
}

/// Registers, retrying while the server does not answer. `None` when shut down meanwhile.
async fn register(
    client: &ServerClient,
    request: &RegisterRequest,
    server: &str,
    shutdown: &CancellationToken,
) -> Result<Option<RegisterResponse>, AgentError> {
    let mut backoff = Backoff::new();
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            result = client.register(request) => result,
            _ = shutdown.cancelled() => return Ok(None),
        };
        match result {
            Ok(response) => return Ok(Some(response)),
            Err(error) if error.is_retryable() => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "cannot register yet; retrying until the server answers");
                }
            }
            // Another process holds the name (or this one's earlier process, not yet taken for
            // lost): wait for the server to let it go.
            Err(error) if error.status() == Some(409) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "the name is held by a connected agent; retrying until the server lets it go");
                }
            }
            Err(RequestError::Status { status, message, .. }) => {
                return Err(AgentError::Rejected { server: server.to_owned(), status, message });
            }
            Err(error) => return Err(AgentError::Protocol { server: server.to_owned(), message: error.to_string() }),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

/// The jobs running now, by id, with what stops each.
#[derive(Default)]
struct RunningJobs {
    jobs: Mutex<HashMap<i64, JobControl>>,
}

impl RunningJobs {
    fn insert(&self, id: i64, control: JobControl) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).insert(id, control);
    }

    fn remove(&self, id: i64) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn stop(&self, id: i64, reason: &str) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        match jobs.get(&id) {
            Some(control) => {
                control.cancel(reason);
                true
            }
            None => false,
        }
    }

    fn stop_all(&self, reason: &str) {
        for control in self.jobs.lock().unwrap_or_else(PoisonError::into_inner).values() {
            control.cancel(reason);
        }
    }
}

/// Removes a job from the running ones when its task ends, however it ends.
struct Running {
    jobs: Arc<RunningJobs>,
    id: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.jobs.remove(self.id);
    }
}

/// Leases jobs while a slot is free, until shutdown; then stops the running jobs and waits
/// until each has been reported.
async fn lease_loop(context: &Arc<AgentContext>, jobs: &Arc<RunningJobs>, capacity: u32, shutdown: &CancellationToken) {
    let slots = Arc::new(Semaphore::new(capacity as usize));
    let refused = context.client.refused().clone();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Backoff::new();
    let mut failures: u32 = 0;
    loop {
        while let Some(ended) = tasks.try_join_next() {
            if let Err(error) = ended {
                tracing::error!(%error, "a job task failed");
            }
        }
        let slot = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = refused.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        // Looked at once a slot is free: the job that freed it may have found the engine gone.
        if context.engine_is_down() && !wait_for_engine(context, shutdown).await {
            break;
        }
        let mut engine_down = context.engine_down.subscribe();
        let lease = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = refused.cancelled() => break,
            // Another job found the engine gone while this request waited for work: a job leased
            // now could only fail.
            _ = async { let _ = engine_down.wait_for(|down| *down).await; } => continue,
            lease = context.client.lease(context.agent_id()) => lease,
        };
        if lease.is_ok() && failures > 0 {
            tracing::info!(failures, "the server answers again");
            failures = 0;
            backoff.reset();
        }
        match lease {
            Ok(Lease::Nothing) => continue,
            Ok(Lease::Job(job)) => {
                let id = job.id;
                let control = JobControl::new();
                jobs.insert(id, control.clone());
                let running = Running { jobs: jobs.clone(), id };
                let context = context.clone();
                tasks.spawn(
                    async move {
                        job::run_job(context, *job, control).await;
                        drop(running);
                        drop(slot);
                    }
                    .in_current_span(),
                );
                continue;
            }
            Ok(Lease::Unreadable { id, message }) => {
                let context = context.clone();
                tasks.spawn(
                    async move {
                        job::report_unreadable(context, id, message).await;
                        drop(slot);
                    }
                    .in_current_span(),
                );
                continue;
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || !error.is_retryable() {
                    tracing::warn!(%error, "leasing failed; retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.cancelled() => break,
            _ = refused.cancelled() => break,
        }
    }
    let reason = if refused.is_cancelled() { "the server no longer accepts this agent" } else { "the agent is shutting down" };
    tracing::info!(jobs = ?jobs.ids(), "{reason}: stopping the running jobs");
    jobs.stop_all(reason);
    while let Some(ended) = tasks.join_next().await {
        if let Err(error) = ended {
            tracing::error!(%error, "a job task failed");
        }
    }
}

/// Waits until the Docker engine answers again, then removes what the runs it interrupted
/// could not; false when shut down first.
async fn wait_for_engine(context: &AgentContext, shutdown: &CancellationToken) -> bool {
    tracing::warn!("the docker engine does not answer; leasing nothing until it does");
    let mut backoff = Backoff::new();
    loop {
        if context.engine_answers().await.is_ok() {
            tracing::info!("the docker engine answers again");
            if let Err(error) = context.backend.sweep().await {
                tracing::warn!(%error, "could not remove what runs left behind while the engine was away");
            }
            context.engine_down.send_replace(false);
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.cancelled() => return false,
        }
    }
}

/// Tells the server every `interval` which jobs run, and stops those it names.
async fn heartbeat(context: Arc<AgentContext>, jobs: Arc<RunningJobs>, interval: Duration, stop: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        let beat = Heartbeat { agent_id: context.agent_id(), jobs: jobs.ids() };
        let result = tokio::select! {
            result = context.client.heartbeat(&beat) => result,
            _ = stop.cancelled() => return,
        };
        match result {
            Ok(response) => {
                failures = 0;
                for id in response.stop {
                    if jobs.stop(id, "the server asked the agent to stop it") {
                        tracing::info!(job = id, "the server asked to stop the job");
                    }
                }
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "heartbeat failed");
                }
            }
        }
    }
}
