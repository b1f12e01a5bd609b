//! The server's agent API as typed calls, and how their failures are told apart: worth a retry
//! (the server is down or overloaded) or final (the server refuses).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use proto::agent::{
    CANCEL_WAIT_SECONDS, CancelWaitResponse, Heartbeat, HeartbeatResponse, Job, JobDone, JobUpdates, JobUpdatesResponse,
    LEASE_WAIT_SECONDS, LeaseRequest, PREFIX, RegisterRequest, RegisterResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// Longest wait for an answer to an ordinary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a long-poll may take beyond what the server holds it for.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most of an error body quoted in a message.
const MAX_QUOTED_BODY: usize = 300;

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// No answer: the server is down, restarting, or too slow.
    #[error("the server did not answer {path}: {message}")]
    Unreachable { path: String, message: String },
    #[error("the server answered {path} with {status}: {message}")]
    Status { path: String, status: u16, message: String },
    /// An answer the agent cannot read (another protocol version).
    #[error("the server's answer to {path} cannot be read: {message}")]
    Decode { path: String, message: String },
}

impl RequestError {
    /// Whether the same request may succeed later: no answer, a server error, or "try later".
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            RequestError::Unreachable { .. } => true,
            RequestError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            RequestError::Decode { .. } => false,
        }
    }

    /// The server says the job is not (or no longer) this agent's: unknown, finished, re-leased.
    pub(crate) fn job_is_gone(&self) -> bool {
        matches!(self, RequestError::Status { status: 404 | 409 | 410, .. })
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            RequestError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a lease request brought.
pub(crate) enum Lease {
    /// Nothing to run before the server's wait ended.
    Nothing,
    Job(Box<Job>),
    /// A job the agent cannot read, with the id it can still report to.
    Unreadable {
        id: i64,
        message: String,
    },
}

/// The agent's side of the protocol in `proto::agent`. Cheap to clone; clones share the
/// agent's token.
#[derive(Clone)]
pub(crate) struct ServerClient {
    http: reqwest::Client,
    /// The server's address with the protocol's prefix, without a trailing slash.
    base: String,
    /// The shared agent secret: registration only.
    secret: String,
    /// The agent's own token, from its registration: every other request.
    token: Arc<RwLock<Option<String>>>,
    /// Cancelled when the server refuses the agent's token (an administrator removed the agent):
    /// the agent stops.
    refused: CancellationToken,
}

impl ServerClient {
    pub(crate) fn new(server: &str, secret: &str) -> Result<ServerClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gantry-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ServerClient {
            http,
            base: format!("{}{PREFIX}", server.trim_end_matches('/')),
            secret: secret.to_owned(),
            token: Arc::default(),
            refused: CancellationToken::new(),
        })
    }

    /// Registers with the shared secret; later requests carry the token it returns.
    pub(crate) async fn register(&self, request: &RegisterRequest) -> Result<RegisterResponse, RequestError> {
        let response = self.send("/register", request, REQUEST_TIMEOUT, &self.secret).await?;
        let registration: RegisterResponse = decode("/register", response).await?;
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = Some(registration.token.clone());
        Ok(registration)
    }

    /// Cancelled once the server has refused the agent's token.
    pub(crate) fn refused(&self) -> &CancellationToken {
        &self.refused
    }

    pub(crate) async fn lease(&self, agent_id: i64) -> Result<Lease, RequestError> {
        let path = "/lease";
        let response = self.post(path, &LeaseRequest { agent_id }, Duration::from_secs(LEASE_WAIT_SECONDS) + LONG_POLL_MARGIN).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Lease::Nothing);
        }
        let bytes = response.bytes().await.map_err(|error| unreachable(path, &error))?;
        match serde_json::from_slice::<Job>(&bytes) {
            Ok(job) => Ok(Lease::Job(Box::new(job))),
            Err(error) => {
                // A job of a newer server (a plan this agent does not know): report it as an
                // error rather than leave it leased to nobody.
                let id = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|value| value.get("id")?.as_i64());
                match id {
                    Some(id) => Ok(Lease::Unreadable { id, message: error.to_string() }),
                    None => Err(RequestError::Decode { path: path.into(), message: error.to_string() }),
                }
            }
        }
    }

    pub(crate) async fn updates(&self, job: i64, updates: &JobUpdates) -> Result<JobUpdatesResponse, RequestError> {
        let path = format!("/jobs/{job}/updates");
        let response = self.post(&path, updates, REQUEST_TIMEOUT).await?;
        decode(&path, response).await
    }

    pub(crate) async fn cancel_wait(&self, job: i64, agent_id: i64) -> Result<bool, RequestError> {
        let path = format!("/jobs/{job}/cancel-wait");
        let timeout = Duration::from_secs(CANCEL_WAIT_SECONDS) + LONG_POLL_MARGIN;
        // The protocol has no type of its own for this body; the server reads a `LeaseRequest`.
        let response = self.post(&path, &LeaseRequest { agent_id }, timeout).await?;
        Ok(decode::<CancelWaitResponse>(&path, response).await?.cancelled)
    }

    pub(crate) async fn done(&self, job: i64, done: &JobDone) -> Result<(), RequestError> {
        self.post(&format!("/jobs/{job}/done"), done, REQUEST_TIMEOUT).await.map(drop)
    }

    pub(crate) async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatResponse, RequestError> {
        let response = self.post("/heartbeat", heartbeat, REQUEST_TIMEOUT).await?;
        decode("/heartbeat", response).await
    }

    /// Sends `body` with the agent's token. A 401 means the server no longer knows the token.
    async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B, timeout: Duration) -> Result<reqwest::Response, RequestError> {
        let token = self.token.read().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
        let result = self.send(path, body, timeout, &token).await;
        if let Err(RequestError::Status { status: 401, message, .. }) = &result {
            if !self.refused.is_cancelled() {
                tracing::error!(%message, "the server refuses this agent's token");
            }
            self.refused.cancel();
        }
        result
    }

    /// Sends `body` with `bearer`; a status other than 2xx is an error carrying what the server
    /// said.
    async fn send<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
        bearer: &str,
    ) -> Result<reqwest::Response, RequestError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|error| unreachable(path, &error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        // The protocol's error body says what is wrong; anything else is quoted, shortened.
        let message = serde_json::from_str::<proto::api::ErrorBody>(&text).map(|body| body.error).unwrap_or_else(|_| {
            let text = text.trim();
            if text.is_empty() { status.canonical_reason().unwrap_or("no reason given").to_owned() } else { shorten(text) }
        });
        Err(RequestError::Status { path: path.to_owned(), status: status.as_u16(), message })
    }
}

async fn decode<T: DeserializeOwned>(path: &str, response: reqwest::Response) -> Result<T, RequestError> {
    let bytes = response.bytes().await.map_err(|error| unreachable(path, &error))?;
    serde_json::from_slice(&bytes).map_err(|error| RequestError::Decode { path: path.to_owned(), message: error.to_string() })
}

fn unreachable(path: &str, error: &reqwest::Error) -> RequestError {
    // The chain holds the useful part ("connection refused"); the URL carries no secrets.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    RequestError::Unreachable { path: path.to_owned(), message }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_BODY) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Waits between retries: doubling from `FIRST` to `MAX`, with jitter so that many agents
/// coming back after a server restart do not all call at the same instant.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Backoff::FIRST }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }

    /// The next pause: the current one ±25 %, then doubled.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.subsec_nanos());
        let jitter = f64::from(nanos % 1000) / 1000.0 * 0.5 - 0.25;
        base.mul_f64(1.0 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_limit_and_starts_over_after_a_reset() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(250), "{delays:?}");
        assert!(delays[1] >= Duration::from_millis(300), "{delays:?}");
        assert!(delays.iter().all(|delay| *delay <= Backoff::MAX.mul_f64(1.25)), "{delays:?}");
        assert!(delays[7] >= Backoff::MAX.mul_f64(0.75), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(250));
    }

    #[test]
    fn failures_worth_a_retry_are_told_from_refusals() {
        let status = |status| RequestError::Status { path: "/x".into(), status, message: String::new() };
        assert!(RequestError::Unreachable { path: "/x".into(), message: String::new() }.is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(status(409).job_is_gone());
        assert!(!status(503).job_is_gone());
    }
}
