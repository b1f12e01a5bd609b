//! A fake server: the agent protocol of `proto::agent` on 127.0.0.1, recording everything it
//! receives, storing log lines by the protocol's rule (a line is appended only when its number
//! is the next one expected), and failing on request where a test wants it to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use proto::agent::{
    CancelWaitResponse, Heartbeat, HeartbeatResponse, Job, JobDone, JobUpdates, JobUpdatesResponse, LeaseRequest, LogLine, PREFIX,
    RegisterRequest, RegisterResponse, StepUpdate,
};
use proto::api::ErrorBody;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const SECRET: &str = "agent-secret-for-tests";
/// The token the fake server hands out at registration; every later request must carry it.
pub(crate) const AGENT_TOKEN: &str = "gtg_agent-token-for-tests";
pub(crate) const AGENT_ID: i64 = 7;
/// How long the fake holds a long-poll (the real server holds them 25 s).
const LONG_POLL: Duration = Duration::from_secs(2);

/// What the server received, and what it is told to do.
#[derive(Default)]
pub(crate) struct Recorded {
    pub registrations: Vec<RegisterRequest>,
    pub queue: VecDeque<Job>,
    /// Jobs handed out as they are, before `queue`: what a newer server might send.
    pub raw_jobs: VecDeque<serde_json::Value>,
    /// Stored lines per job and step.
    pub logs: BTreeMap<(i64, String), Vec<LogLine>>,
    /// Every step update per job, in arrival order.
    pub steps: BTreeMap<i64, Vec<(Instant, StepUpdate)>>,
    pub done: BTreeMap<i64, JobDone>,
    /// Lines stored for the job when its `done` came.
    pub lines_at_done: BTreeMap<i64, usize>,
    pub heartbeats: Vec<Heartbeat>,
    /// Jobs whose cancel-wait answers `cancelled: true`.
    pub cancel_by_wait: BTreeSet<i64>,
    /// Jobs named in heartbeat answers' `stop`.
    pub stop_by_heartbeat: BTreeSet<i64>,
    /// When the agent was first told to stop each job, by a cancel-wait or a heartbeat answer.
    pub stops_told: BTreeMap<i64, Instant>,
    /// Update requests to answer 503 before looking at them.
    pub reject_updates: usize,
    /// Update requests to store and then answer 503 (the answer is lost).
    pub lose_update_answers: usize,
    pub update_requests: usize,
    /// Batches that started past the next expected line (the agent skipped lines).
    pub gaps: usize,
    /// Lines that came again after they were stored.
    pub resent_lines: usize,
    pub done_requests: usize,
    /// Answer the next lease 404, as a server that lost the agent's record does.
    pub forget_agent: bool,
}

impl Recorded {
    pub(crate) fn lines(&self, job: i64, step: &str) -> Vec<String> {
        self.logs.get(&(job, step.to_owned())).map(|lines| lines.iter().map(|line| line.text.clone()).collect()).unwrap_or_default()
    }

    /// Step updates received for one step, as states.
    pub(crate) fn states(&self, job: i64, step: &str) -> Vec<proto::State> {
        self.steps
            .get(&job)
            .map(|updates| updates.iter().filter(|(_, u)| u.step == step).map(|(_, u)| u.state).collect())
            .unwrap_or_default()
    }

    pub(crate) fn first_update(&self, job: i64, step: &str, state: proto::State) -> Option<Instant> {
        self.steps.get(&job)?.iter().find(|(_, update)| update.step == step && update.state == state).map(|(at, _)| *at)
    }
}

#[derive(Default)]
pub(crate) struct ServerState {
    recorded: Mutex<Recorded>,
    pub heartbeat_seconds: u64,
}

impl ServerState {
    /// A state as a fresh fake server starts with.
    pub(crate) fn new() -> Arc<ServerState> {
        Arc::new(ServerState { heartbeat_seconds: 1, ..ServerState::default() })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) struct FakeServer {
    pub url: String,
    pub address: SocketAddr,
    pub state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub(crate) async fn start() -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeServer::serve(listener, ServerState::new())
    }

    /// A server on `address` (free a moment ago), with `state`: a restart keeps what was stored.
    pub(crate) async fn start_at(address: SocketAddr, state: Arc<ServerState>) -> FakeServer {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        FakeServer::serve(listener, state)
    }

    fn serve(listener: tokio::net::TcpListener, state: Arc<ServerState>) -> FakeServer {
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route(&format!("{PREFIX}/register"), post(register))
            .route(&format!("{PREFIX}/lease"), post(lease))
            .route(&format!("{PREFIX}/heartbeat"), post(heartbeat))
            .route(&format!("{PREFIX}/jobs/{{job}}/updates"), post(updates))
            .route(&format!("{PREFIX}/jobs/{{job}}/cancel-wait"), post(cancel_wait))
            .route(&format!("{PREFIX}/jobs/{{job}}/done"), post(done))
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        FakeServer { url: format!("http://{address}"), address, state, stop: Some(stop), task: Some(task) }
    }

    /// Stops listening and closes every connection; what was stored stays in `state`.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // Long-polls in flight end within `LONG_POLL`.
            tokio::time::timeout(LONG_POLL * 3, task).await.expect("the fake server stops").unwrap();
        }
    }

    pub(crate) fn push_job(&self, job: Job) {
        self.state.lock().queue.push_back(job);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.state.lock()
    }

    /// Waits until `condition` holds, polling; false when `limit` passed first.
    pub(crate) async fn wait_for(&self, limit: Duration, condition: impl Fn(&Recorded) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if condition(&self.state.lock()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the job's `done`.
    pub(crate) async fn done(&self, job: i64, limit: Duration) -> JobDone {
        assert!(self.wait_for(limit, |recorded| recorded.done.contains_key(&job)).await, "job {job} reported no end within {limit:?}");
        self.state.lock().done[&job].clone()
    }
}

/// An address where something takes each request and closes the connection without an answer,
/// as a server that is not up yet does, recording each request's first line
/// (`POST /api/agent/v1/register HTTP/1.1`): what an agent tried, and how often.
pub(crate) struct SilentServer {
    pub(crate) address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl SilentServer {
    pub(crate) async fn start() -> SilentServer {
        SilentServer::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    /// On `address` (free a moment ago): where a server was, as it restarts.
    pub(crate) async fn start_at(address: SocketAddr) -> SilentServer {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(connection);
                    let mut request_line = String::new();
                    if tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut request_line).await.is_ok() && !request_line.is_empty() {
                        recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request_line.trim_end().to_owned());
                    }
                    // Dropped here: the connection closes with no answer.
                });
            }
        });
        SilentServer { address, requests, task }
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Waits until `count` requests whose first line contains `path` came, polling; false when
    /// `limit` passed first.
    pub(crate) async fn wait_for_requests(&self, path: &str, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.requests().iter().filter(|request| request.contains(path)).count() < count {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops listening, so that a server can take the address; returns what was recorded.
    pub(crate) async fn stop(self) -> Vec<String> {
        let requests = self.requests();
        self.task.abort();
        let _ = self.task.await;
        requests
    }
}

/// The answer to a registration without the agent secret.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {SECRET}");
    match headers.get("authorization").and_then(|value| value.to_str().ok()) {
        Some(value) if value == expected => None,
        _ => Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "the agent secret is wrong")),
    }
}

/// The answer to a request without the agent's own token (or after the server forgot it).
fn not_the_agent(state: &ServerState, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {AGENT_TOKEN}");
    let given = headers.get("authorization").and_then(|value| value.to_str().ok());
    if given != Some(expected.as_str()) {
        return Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "agents send their own token after registering"));
    }
    if state.lock().forget_agent {
        return Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "this agent's token is not valid"));
    }
    None
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody { code: code.to_owned(), error: message.to_owned(), field: None })).into_response()
}

async fn register(State(state): State<Arc<ServerState>>, headers: HeaderMap, Json(request): Json<RegisterRequest>) -> Response {
    if let Some(response) = unauthorized(&headers) {
        return response;
    }
    state.lock().registrations.push(request);
    Json(RegisterResponse { agent_id: AGENT_ID, heartbeat_seconds: state.heartbeat_seconds, token: AGENT_TOKEN.to_owned() }).into_response()
}

async fn lease(State(state): State<Arc<ServerState>>, headers: HeaderMap, Json(request): Json<LeaseRequest>) -> Response {
    if let Some(response) = not_the_agent(&state, &headers) {
        return response;
    }
    assert_eq!(request.agent_id, AGENT_ID);
    let deadline = Instant::now() + LONG_POLL;
    loop {
        if let Some(raw) = state.lock().raw_jobs.pop_front() {
            return Json(raw).into_response();
        }
        if let Some(job) = state.lock().queue.pop_front() {
            return Json(job).into_response();
        }
        if Instant::now() > deadline {
            return StatusCode::NO_CONTENT.into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn heartbeat(State(state): State<Arc<ServerState>>, headers: HeaderMap, Json(beat): Json<Heartbeat>) -> Response {
    if let Some(response) = not_the_agent(&state, &headers) {
        return response;
    }
    let mut recorded = state.lock();
    let stop: Vec<i64> = beat.jobs.iter().copied().filter(|job| recorded.stop_by_heartbeat.contains(job)).collect();
    let now = Instant::now();
    for job in &stop {
        recorded.stops_told.entry(*job).or_insert(now);
    }
    recorded.heartbeats.push(beat);
    Json(HeartbeatResponse { stop }).into_response()
}

async fn updates(
    State(state): State<Arc<ServerState>>,
    Path(job): Path<i64>,
    headers: HeaderMap,
    Json(updates): Json<JobUpdates>,
) -> Response {
    if let Some(response) = not_the_agent(&state, &headers) {
        return response;
    }
    let mut recorded = state.lock();
    recorded.update_requests += 1;
    if recorded.reject_updates > 0 {
        recorded.reject_updates -= 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again later");
    }
    assert_eq!(updates.agent_id, AGENT_ID);
    let now = Instant::now();
    recorded.steps.entry(job).or_default().extend(updates.steps.into_iter().map(|update| (now, update)));
    let mut next_seq = BTreeMap::new();
    for batch in updates.logs {
        let stored_count = recorded.logs.get(&(job, batch.step.clone())).map_or(0, Vec::len) as u64;
        if batch.first_seq > stored_count {
            recorded.gaps += 1;
        } else {
            let already = (stored_count - batch.first_seq) as usize;
            recorded.resent_lines += already.min(batch.lines.len());
            let stored = recorded.logs.entry((job, batch.step.clone())).or_default();
            stored.extend(batch.lines.into_iter().skip(already));
        }
        let stored_count = recorded.logs.get(&(job, batch.step.clone())).map_or(0, Vec::len) as u64;
        next_seq.insert(batch.step, stored_count);
    }
    if recorded.lose_update_answers > 0 {
        recorded.lose_update_answers -= 1;
        return error(StatusCode::BAD_GATEWAY, "unavailable", "the answer was lost");
    }
    Json(JobUpdatesResponse { next_seq, cancel: false }).into_response()
}

async fn cancel_wait(State(state): State<Arc<ServerState>>, Path(job): Path<i64>, headers: HeaderMap) -> Response {
    if let Some(response) = not_the_agent(&state, &headers) {
        return response;
    }
    let deadline = Instant::now() + LONG_POLL;
    loop {
        let cancelled = {
            let mut recorded = state.lock();
            let cancelled = recorded.cancel_by_wait.contains(&job);
            if cancelled {
                recorded.stops_told.entry(job).or_insert_with(Instant::now);
            }
            cancelled
        };
        if cancelled {
            return Json(CancelWaitResponse { cancelled: true }).into_response();
        }
        if Instant::now() > deadline {
            return Json(CancelWaitResponse { cancelled: false }).into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn done(State(state): State<Arc<ServerState>>, Path(job): Path<i64>, headers: HeaderMap, Json(done): Json<JobDone>) -> Response {
    if let Some(response) = not_the_agent(&state, &headers) {
        return response;
    }
    let mut recorded = state.lock();
    recorded.done_requests += 1;
    let lines = recorded.logs.iter().filter(|((id, _), _)| *id == job).map(|(_, lines)| lines.len()).sum();
    recorded.lines_at_done.insert(job, lines);
    recorded.done.insert(job, done);
    StatusCode::NO_CONTENT.into_response()
}
