//! Reporting one job: `JobSink` turns the runtime's events into step states and numbered log
//! lines, and the uploader sends them to the server, keeping each until it is acknowledged.
//!
//! The sink and the uploader share one queue of entries in the order they happened. The
//! uploader sends a prefix of it (every ~200 ms, or at once when 500 lines wait); a state leaves
//! the queue once a request carrying it succeeded, a line once the server's `next_seq` for its
//! step is past its number. A failed request is sent again from the first unacknowledged line,
//! so a line is never lost and, since the server appends only the number it expects, never
//! doubled.
//!
//! Memory stays bounded: when `MAX_PENDING_LINES` lines (or `MAX_PENDING_BYTES` of text) wait,
//! `emit` blocks the step's output task until the server has taken some. The runtime's
//! `EventSink::emit` is synchronous and is called on tokio worker threads, so it blocks inside
//! `tokio::task::block_in_place`, which hands the thread's other tasks to another worker first.
//! A blocked output task stops reading the container's output, and the engine in turn stops the
//! step's writes: a step printing gigabytes to a slow server slows down instead of filling
//! memory or disk. Only log lines wait; state changes are few and are always queued.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use proto::State;
use proto::agent::{JobUpdates, LogBatch, LogLine, LogStream, StepUpdate};
use proto::artifact::PublishedImage;
use runtime::{Event, EventSink, OutputStream, Status};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{Backoff, ServerClient};
use crate::control::JobControl;

/// Lines waiting that make the uploader send at once rather than at the next interval.
pub const SEND_AT_LINES: usize = 2_000;
/// Shortest time between two requests while fewer than `SEND_AT_LINES` lines wait.
pub const SEND_INTERVAL: Duration = Duration::from_millis(200);
/// Lines waiting for the server beyond which a step's output waits.
pub const MAX_PENDING_LINES: usize = 40_000;
/// Text waiting for the server beyond which a step's output waits (lines may be 64 KiB long).
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// Most lines in one request.
const BATCH_LINES: usize = 10_000;
/// Most text in one request, well below the 32 MiB the server accepts on agent routes
/// even when JSON escaping doubles it.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// What a queued line costs beyond its text (its step name, number, stream and time).
const LINE_OVERHEAD: usize = 64;

/// Milliseconds since the Unix epoch on this machine's clock.
pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn state_of(status: Status) -> State {
    match status {
        Status::Success => State::Success,
        Status::Failure => State::Failure,
        Status::Skipped => State::Skipped,
        Status::Killed => State::Killed,
        Status::Error => State::Error,
    }
}

enum Entry {
    Line {
        step: Arc<str>,
        seq: u64,
        line: LogLine,
    },
    State(StepUpdate),
    /// An image a build step pushed; like a state, sent once and kept until acknowledged.
    Published(PublishedImage),
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Lines in `entries` and what they cost.
    lines: usize,
    bytes: usize,
    /// Per step, the number the next line gets.
    next_seq: HashMap<Arc<str>, u64>,
    /// Per step, the number the server expects next: every line below it is stored.
    acknowledged: HashMap<Arc<str>, u64>,
    /// The latest state of every step, in the order the steps were first reported.
    steps: Vec<StepUpdate>,
    /// The job ended: send what is left, then stop.
    finishing: bool,
    /// Nothing more will be sent (the server refused the job, or the agent gave up): lines are
    /// dropped instead of queued.
    closed: bool,
    dropped: u64,
}

impl Queue {
    fn is_full(&self) -> bool {
        self.lines >= MAX_PENDING_LINES || self.bytes >= MAX_PENDING_BYTES
    }

    fn step_name(&mut self, step: &str) -> Arc<str> {
        match self.next_seq.get_key_value(step) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(step);
                self.next_seq.insert(name.clone(), 0);
                name
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.entries.clear();
        self.lines = 0;
        self.bytes = 0;
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when lines leave the queue or it is closed: blocked emitters look again.
    room: Condvar,
    /// Wakes the uploader: there is something to send, or the job ended.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `EventSink` of one job; also takes the agent's own reports (the clone step).
pub(crate) struct JobSink {
    shared: Arc<Shared>,
}

impl JobSink {
    pub(crate) fn step_started(&self, step: &str) {
        let mut queue = self.shared.lock();
        let now = now_ms();
        let started_ms = match queue.steps.iter().find(|update| update.step == step) {
            // Reported running once already (the agent's clone before the runtime's): keep the
            // first start.
            Some(known) => known.started_ms.or(Some(now)),
            None => Some(now),
        };
        let update =
            StepUpdate { step: step.to_owned(), state: State::Running, exit_code: None, started_ms, finished_ms: None, reason: None };
        self.push_state(&mut queue, update);
    }

    pub(crate) fn step_finished(&self, step: &str, state: State, exit_code: Option<i64>, reason: Option<String>) {
        let mut queue = self.shared.lock();
        let started_ms = queue.steps.iter().find(|update| update.step == step).and_then(|update| update.started_ms);
        let update = StepUpdate { step: step.to_owned(), state, exit_code, started_ms, finished_ms: Some(now_ms()), reason };
        self.push_state(&mut queue, update);
    }

    /// Queues one line of a step's output, waiting while too many lines wait for the server.
    pub(crate) fn log(&self, step: &str, stream: LogStream, text: String) {
        let queue = self.shared.lock();
        let mut queue = self.wait_for_room(queue);
        if queue.closed {
            queue.dropped += 1;
            return;
        }
        let name = queue.step_name(step);
        let seq = {
            let next = queue.next_seq.get_mut(&name).expect("step_name inserts the step");
            let seq = *next;
            *next += 1;
            seq
        };
        let was_empty = queue.entries.is_empty();
        queue.lines += 1;
        queue.bytes += text.len() + LINE_OVERHEAD;
        queue.entries.push_back(Entry::Line { step: name, seq, line: LogLine { at_ms: now_ms(), stream, text } });
        let send_now = was_empty || queue.lines == SEND_AT_LINES;
        drop(queue);
        if send_now {
            self.shared.wake.notify_one();
        }
    }

    /// The latest state of each step in `order`, then of any other step reported.
    pub(crate) fn final_steps<'a>(&self, order: impl IntoIterator<Item = &'a str>) -> Vec<StepUpdate> {
        let queue = self.shared.lock();
        let mut steps: Vec<StepUpdate> = Vec::with_capacity(queue.steps.len());
        for name in order {
            if let Some(update) = queue.steps.iter().find(|update| update.step == name)
                && !steps.iter().any(|known| known.step == name)
            {
                steps.push(update.clone());
            }
        }
        for update in &queue.steps {
            if !steps.iter().any(|known| known.step == update.step) {
                steps.push(update.clone());
            }
        }
        steps
    }

    /// The latest state reported for `step`.
    pub(crate) fn state(&self, step: &str) -> Option<State> {
        self.shared.lock().steps.iter().find(|update| update.step == step).map(|update| update.state)
    }

    /// Queues an image a build step pushed, for the server's artifacts.
    pub(crate) fn published(&self, step: &str, image: runtime::PublishedImage) {
        let mut queue = self.shared.lock();
        if queue.closed {
            return;
        }
        queue.entries.push_back(Entry::Published(PublishedImage {
            step: step.to_owned(),
            repository: image.repository,
            tags: image.tags,
            digest: image.digest,
            size: image.size,
            provenance: image.provenance,
            provenance_digest: image.provenance_digest,
        }));
        drop(queue);
        self.shared.wake.notify_one();
    }

    fn push_state(&self, queue: &mut Queue, update: StepUpdate) {
        match queue.steps.iter_mut().find(|known| known.step == update.step) {
            Some(known) => *known = update.clone(),
            None => queue.steps.push(update.clone()),
        }
        if queue.closed {
            return;
        }
        queue.entries.push_back(Entry::State(update));
        self.shared.wake.notify_one();
    }

    fn wait_for_room<'a>(&'a self, queue: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        if !queue.is_full() || queue.closed {
            return queue;
        }
        self.shared.wake.notify_one();
        let wait = |mut queue: MutexGuard<'a, Queue>| {
            while queue.is_full() && !queue.closed {
                queue = self.shared.room.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
            queue
        };
        match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| wait(queue)),
            // Blocking the only thread would stop the uploader too: let the queue grow instead.
            Ok(_) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| tracing::warn!("the agent runs on a current-thread runtime: log lines cannot wait for the server"));
                queue
            }
            // Called from a thread of its own: waiting there stops nobody else.
            Err(_) => wait(queue),
        }
    }
}

impl EventSink for JobSink {
    fn emit(&self, event: Event) {
        match event {
            Event::StepStarted { step, .. } => self.step_started(&step),
            Event::StepFinished { step, status, exit_code, reason, .. } => self.step_finished(&step, state_of(status), exit_code, reason),
            Event::Log { step, stream, line, .. } => {
                let stream = match stream {
                    OutputStream::Stdout => LogStream::Stdout,
                    OutputStream::Stderr => LogStream::Stderr,
                };
                self.log(&step, stream, line);
            }
            Event::ImagePublished { step, image, .. } => self.published(&step, image),
            Event::RunStarted { run, .. } => tracing::debug!(run = %run, "run started"),
            Event::WorkflowStarted { .. } | Event::WorkflowFinished { .. } | Event::RunFinished { .. } => {}
        }
    }
}

/// How the uploader ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// The server has every state and line.
    Everything,
    /// The server says the job is not this agent's any more.
    JobGone,
    /// The server refuses the updates (a client error): what it said.
    Refused(String),
    /// The agent is shutting down and the server did not take everything in time.
    Abandoned,
}

/// The running uploader of one job.
pub(crate) struct Uploads {
    shared: Arc<Shared>,
    task: JoinHandle<Flushed>,
}

impl Uploads {
    /// Sends everything still queued and waits until the server has it (or the uploader ends).
    pub(crate) async fn finish(self) -> Flushed {
        self.shared.lock().finishing = true;
        self.shared.wake.notify_one();
        let flushed = self.task.await.unwrap_or_else(|error| {
            tracing::error!(%error, "the log uploader failed");
            Flushed::Abandoned
        });
        let dropped = self.shared.lock().dropped;
        if dropped > 0 {
            tracing::warn!(dropped, "log lines were not sent: the server did not take them");
        }
        flushed
    }
}

/// Where a job's uploads go.
pub(crate) struct Destination {
    pub client: ServerClient,
    pub agent_id: i64,
    pub job_id: i64,
}

/// Starts the uploader of a job. `abandon` makes it give up (at shutdown, after a grace
/// period); `control` is cancelled when the server asks for it or refuses the job.
pub(crate) fn start(destination: Destination, control: JobControl, abandon: CancellationToken) -> (Arc<JobSink>, Uploads) {
    let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), room: Condvar::new(), wake: Notify::new() });
    let uploader = Uploader { shared: shared.clone(), destination, control, abandon, batch_lines: BATCH_LINES, batch_bytes: BATCH_BYTES };
    let task = tokio::spawn(uploader.run());
    (Arc::new(JobSink { shared: shared.clone() }), Uploads { shared, task })
}

struct Uploader {
    shared: Arc<Shared>,
    destination: Destination,
    control: JobControl,
    abandon: CancellationToken,
    /// Limits of one request; halved when the server says a request is too large.
    batch_lines: usize,
    batch_bytes: usize,
}

/// One request's content: the first `entries` entries of the queue.
struct Batch {
    updates: JobUpdates,
    entries: usize,
    lines: usize,
}

impl Uploader {
    async fn run(mut self) -> Flushed {
        let mut backoff = Backoff::new();
        let mut last_send: Option<Instant> = None;
        let mut failures: u32 = 0;
        loop {
            // Wait until something is worth a request.
            loop {
                let (lines, empty, finishing) = {
                    let queue = self.shared.lock();
                    (queue.lines, queue.entries.is_empty(), queue.finishing)
                };
                if empty && finishing {
                    return Flushed::Everything;
                }
                let due = last_send.map_or_else(Instant::now, |at| at + SEND_INTERVAL);
                if !empty && (finishing || lines >= SEND_AT_LINES || Instant::now() >= due) {
                    break;
                }
                tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(due.into()), if !empty => {}
                    _ = self.abandon.cancelled() => return self.give_up(Flushed::Abandoned),
                }
            }
            let batch = self.batch();
            last_send = Some(Instant::now());
            let result = tokio::select! {
                result = self.destination.client.updates(self.destination.job_id, &batch.updates) => result,
                _ = self.abandon.cancelled() => return self.give_up(Flushed::Abandoned),
            };
            let delay = match result {
                Ok(response) => {
                    if response.cancel {
                        self.control.cancel("cancelled on the server");
                    }
                    let progressed = self.acknowledge(&batch, &response.next_seq);
                    if failures > 0 {
                        tracing::info!(failures, "the server takes updates again");
                        failures = 0;
                    }
                    if progressed {
                        backoff.reset();
                        continue;
                    }
                    // Lines went out and none was taken: the server expects other numbers than
                    // the agent has. Sending again at full speed would only spin.
                    tracing::warn!(
                        expected = ?response.next_seq,
                        "the server took none of the lines sent; sending again"
                    );
                    backoff.next_delay()
                }
                Err(error) if error.job_is_gone() => {
                    tracing::warn!(%error, "the server no longer assigns this job to this agent; stopping it");
                    self.control.cancel("the server no longer assigns this job to this agent");
                    return self.give_up(Flushed::JobGone);
                }
                Err(error) if error.status() == Some(413) && (self.batch_lines > 1) => {
                    self.batch_lines = (self.batch_lines / 2).max(1);
                    self.batch_bytes = (self.batch_bytes / 2).max(16 * 1024);
                    tracing::warn!(
                        lines = self.batch_lines,
                        bytes = self.batch_bytes,
                        "the server finds the updates too large; sending fewer"
                    );
                    continue;
                }
                Err(error) if !error.is_retryable() => {
                    tracing::error!(%error, "the server refuses the job's updates; stopping the job");
                    self.control.cancel(format!("the server refuses the job's updates: {error}"));
                    return self.give_up(Flushed::Refused(error.to_string()));
                }
                Err(error) => {
                    failures += 1;
                    // The first failure says why; the rest are counted (the server may be down
                    // for minutes).
                    if failures == 1 {
                        tracing::warn!(%error, "sending updates failed; retrying");
                    } else {
                        tracing::debug!(%error, failures, "sending updates failed again");
                    }
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.abandon.cancelled() => return self.give_up(Flushed::Abandoned),
            }
        }
    }

    /// The next request: states and lines from the front of the queue, up to the limits.
    fn batch(&self) -> Batch {
        let queue = self.shared.lock();
        let mut updates = JobUpdates { agent_id: self.destination.agent_id, steps: Vec::new(), logs: Vec::new(), published: Vec::new() };
        let mut entries = 0;
        let mut lines = 0;
        let mut bytes = 0;
        for entry in &queue.entries {
            match entry {
                Entry::State(update) => updates.steps.push(update.clone()),
                Entry::Published(image) => updates.published.push(image.clone()),
                Entry::Line { step, seq, line } => {
                    if lines >= self.batch_lines || (lines > 0 && bytes + line.text.len() > self.batch_bytes) {
                        break;
                    }
                    lines += 1;
                    bytes += line.text.len();
                    // A step's lines in the queue are consecutive numbers, so one batch per step.
                    match updates.logs.iter_mut().find(|batch| *batch.step == **step) {
                        Some(batch) => batch.lines.push(line.clone()),
                        None => updates.logs.push(LogBatch { step: step.to_string(), first_seq: *seq, lines: vec![line.clone()] }),
                    }
                }
            }
            entries += 1;
        }
        Batch { updates, entries, lines }
    }

    /// Removes what the server now has: the batch's states, and every line below the number the
    /// server expects next for its step. Returns whether anything left the queue.
    fn acknowledge(&self, batch: &Batch, next_seq: &std::collections::BTreeMap<String, u64>) -> bool {
        let mut queue = self.shared.lock();
        if queue.closed {
            return true;
        }
        for sent in &batch.updates.logs {
            let expected = next_seq.get(&sent.step).copied();
            let known = queue.acknowledged.get(sent.step.as_str()).copied().unwrap_or(0);
            match expected {
                Some(expected) if expected < sent.first_seq && expected < known => {
                    // The server lost lines it had acknowledged: they cannot be sent again, and
                    // it would never take the ones after them. Count the batch's lines as sent.
                    let last = sent.first_seq + sent.lines.len() as u64;
                    tracing::error!(
                        step = %sent.step,
                        expected,
                        acknowledged = known,
                        "the server lost log lines it had acknowledged; they cannot be sent again"
                    );
                    let name = queue.step_name(&sent.step);
                    queue.acknowledged.insert(name, last);
                    queue.dropped += sent.lines.len() as u64;
                }
                Some(expected) => {
                    let name = queue.step_name(&sent.step);
                    let current = queue.acknowledged.entry(name).or_insert(0);
                    *current = (*current).max(expected);
                }
                None => {}
            }
        }
        let before = queue.entries.len();
        let mut index = 0;
        let mut removed_lines = 0;
        let mut removed_bytes = 0;
        let entries = std::mem::take(&mut queue.entries);
        let acknowledged = &queue.acknowledged;
        let kept: VecDeque<Entry> = entries
            .into_iter()
            .filter(|entry| {
                let in_batch = index < batch.entries;
                index += 1;
                let keep = match entry {
                    Entry::State(_) | Entry::Published(_) => !in_batch,
                    Entry::Line { step, seq, .. } => *seq >= acknowledged.get(step).copied().unwrap_or(0),
                };
                if !keep && let Entry::Line { line, .. } = entry {
                    removed_lines += 1;
                    removed_bytes += line.text.len() + LINE_OVERHEAD;
                }
                keep
            })
            .collect();
        queue.entries = kept;
        queue.lines -= removed_lines;
        queue.bytes -= removed_bytes;
        let progressed = queue.entries.len() < before || batch.lines == 0;
        drop(queue);
        self.shared.room.notify_all();
        progressed
    }

    /// Stops for good: nothing queued will be sent, and blocked emitters go on (dropping lines).
    fn give_up(&self, how: Flushed) -> Flushed {
        let mut queue = self.shared.lock();
        let left = queue.lines as u64;
        queue.dropped += left;
        queue.close();
        drop(queue);
        self.shared.room.notify_all();
        how
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn unreachable_destination() -> Destination {
        // Nothing listens on port 1: every request fails, nothing is ever acknowledged.
        Destination { client: ServerClient::new("http://127.0.0.1:1", "secret").unwrap(), agent_id: 1, job_id: 1 }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_waits_when_too_many_lines_wait_for_the_server_and_goes_on_when_the_agent_gives_up() {
        let abandon = CancellationToken::new();
        let (sink, uploads) = start(unreachable_destination(), JobControl::new(), abandon.clone());
        let written = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (sink, written) = (sink.clone(), written.clone());
            // As the runtime's output tasks do: emit from a task on a worker thread.
            tokio::spawn(async move {
                for number in 0..MAX_PENDING_LINES + 500 {
                    sink.log("step", LogStream::Stdout, number.to_string());
                    written.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The writer is blocked at the limit, and the runtime still runs other tasks.
        assert_eq!(written.load(Ordering::SeqCst), MAX_PENDING_LINES);
        assert!(!writer.is_finished());

        abandon.cancel();
        tokio::time::timeout(Duration::from_secs(5), writer).await.expect("the writer goes on").unwrap();
        assert_eq!(written.load(Ordering::SeqCst), MAX_PENDING_LINES + 500);
        assert_eq!(uploads.finish().await, Flushed::Abandoned);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_lines_count_against_the_limit_by_their_size() {
        let abandon = CancellationToken::new();
        let (sink, uploads) = start(unreachable_destination(), JobControl::new(), abandon.clone());
        let written = Arc::new(AtomicUsize::new(0));
        let line = "x".repeat(64 * 1024);
        let writer = {
            let (sink, written) = (sink.clone(), written.clone());
            tokio::spawn(async move {
                for _ in 0..1_000 {
                    sink.log("step", LogStream::Stdout, line.clone());
                    written.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let at_limit = written.load(Ordering::SeqCst);
        assert!(at_limit * 64 * 1024 <= MAX_PENDING_BYTES + 64 * 1024 && at_limit > 100, "{at_limit} lines of 64 KiB queued");
        abandon.cancel();
        tokio::time::timeout(Duration::from_secs(5), writer).await.expect("the writer goes on").unwrap();
        assert_eq!(uploads.finish().await, Flushed::Abandoned);
    }

    #[test]
    fn states_map_one_to_one() {
        let pairs = [
            (Status::Success, State::Success),
            (Status::Failure, State::Failure),
            (Status::Skipped, State::Skipped),
            (Status::Killed, State::Killed),
            (Status::Error, State::Error),
        ];
        for (status, state) in pairs {
            assert_eq!(state_of(status), state);
        }
    }
}
