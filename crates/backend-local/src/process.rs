//! Host processes for steps: each in its own process group, output streamed from the first byte,
//! the whole group signalled on stop and killed when the step's main process exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use nix::sys::signal::Signal;
use runtime::backend::OutputStreamOf;
use runtime::{BackendError, OutputChunk, OutputStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::LocalError;

/// Bytes read from a pipe at once; a chunk carries at most this many.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Chunks buffered between the pipes and the consumer of the output stream. When the consumer
/// falls this far behind, the readers stop reading and the step blocks on its next write, as it
/// would on a full terminal: memory stays bounded, and nothing is dropped.
const BUFFERED_CHUNKS: usize = 256;

/// How long the output readers wait for more bytes once the step's process group is gone. Only
/// a process that left the group (`setsid`) can still hold the pipes open then; past this
/// silence its output is abandoned so that the stream ends.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How long `terminate` waits for the step to be reaped after SIGKILL before giving up on it
/// (a process in uninterruptible sleep ignores even that until its IO finishes).
const REAP_AFTER_KILL: Duration = Duration::from_secs(10);

/// Everything needed to start a step's process, decided in `prepare`.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub(crate) step: String,
    pub(crate) program: String,
    pub(crate) arguments: Vec<String>,
    pub(crate) environment: BTreeMap<String, OsString>,
    pub(crate) working_dir: PathBuf,
}

impl Launch {
    fn command(&self, program: &str, arguments: &[String]) -> Command {
        let mut command = Command::new(program);
        command
            .args(arguments)
            // Exactly the step's environment: nothing of gantry's own (tokens, SSH agent) leaks in.
            .env_clear()
            .envs(&self.environment)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            // A group of its own, led by the step's process, so that stopping the step reaches
            // everything it started (`sleep 100 &`), the way stopping a container does.
            .process_group(0);
        command
    }

    fn spawn_error(&self, program: &str, source: std::io::Error) -> LocalError {
        LocalError::Spawn { step: self.step.clone(), program: program.to_owned(), source }
    }
}

/// The exit of a step's main process, once known: its code, or why waiting for it failed.
type Exit = Option<Result<i64, String>>;

/// A started step.
pub(crate) struct RunningProcess {
    step: String,
    /// The group's id, which is the main process's pid (it leads its own group).
    process_group: i32,
    exit: watch::Receiver<Exit>,
}

impl RunningProcess {
    /// Starts the process and the tasks that forward its output; the returned stream holds
    /// every byte from the first one. `workflow_ended` makes the output readers give up on
    /// processes that escaped the group, once the workflow is torn down.
    pub(crate) fn spawn(launch: &Launch, workflow_ended: CancellationToken) -> Result<(Arc<RunningProcess>, OutputStreamOf), LocalError> {
        let mut command = launch.command(&launch.program, &launch.arguments);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| launch.spawn_error(&launch.program, source))?;
        let process_group = child.id().and_then(|pid| i32::try_from(pid).ok()).expect("a child just spawned has a pid");
        tracing::debug!(step = %launch.step, pid = process_group, "step process started");

        let (exit_sender, exit_receiver) = watch::channel(None);
        let group_exited = CancellationToken::new();
        let (chunk_sender, chunk_receiver) = mpsc::channel(BUFFERED_CHUNKS);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        for (reader, stream) in
            [(Box::new(stdout) as Box<dyn AsyncRead + Send + Unpin>, OutputStream::Stdout), (Box::new(stderr), OutputStream::Stderr)]
        {
            let forwarder = OutputForwarder {
                step: launch.step.clone(),
                stream,
                sender: chunk_sender.clone(),
                group_exited: group_exited.clone(),
                workflow_ended: workflow_ended.clone(),
            };
            tokio::spawn(forwarder.run(reader));
        }
        tokio::spawn(watch_exit(launch.step.clone(), child, process_group, exit_sender, group_exited));

        let output = futures_util::stream::unfold(chunk_receiver, next_chunk);
        let process = Arc::new(RunningProcess { step: launch.step.clone(), process_group, exit: exit_receiver });
        Ok((process, Box::pin(output)))
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// The exit code: the process's own, or 128 + the signal that killed it (as a shell says).
    pub(crate) async fn wait(&self) -> Result<i64, BackendError> {
        let mut exit = self.exit.clone();
        let outcome = match exit.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().expect("waited for an exit"),
            // The sender lives in the task that reaps the process; it ends only after sending.
            Err(_) => Err("the task watching the process ended early".to_owned()),
        };
        outcome.map_err(|message| BackendError::Operation { operation: format!("wait for step `{}`", self.step), message })
    }

    /// Stops the step: SIGTERM to its whole group, then SIGKILL if it has not exited after
    /// `grace`. Returns once the main process has been reaped (and so the group killed).
    pub(crate) async fn terminate(&self, grace: Duration) {
        if self.has_exited() {
            // The exit watcher already killed what was left of the group.
            return;
        }
        // Between the check above and this signal the main process could exit and be reaped,
        // freeing its pid; a new process would have to be given that same pid, and lead a group,
        // within microseconds for this to reach anything else. Linux hands out pids in order.
        signal_group(self.process_group, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.wait()).await.is_ok() {
            return;
        }
        tracing::debug!(step = %self.step, ?grace, "step still running after SIGTERM; sending SIGKILL");
        signal_group(self.process_group, Signal::SIGKILL);
        if tokio::time::timeout(REAP_AFTER_KILL, self.wait()).await.is_err() {
            tracing::warn!(step = %self.step, pid = self.process_group, "step process did not exit after SIGKILL");
        }
    }
}

/// Reaps the main process, then kills whatever is left of its group: when a container's main
/// process exits, the kernel kills every other process in it, and a step on the host behaves
/// the same so that a forgotten `server &` does not outlive its step (or keep its output open).
async fn watch_exit(step: String, mut child: Child, process_group: i32, exit_sender: watch::Sender<Exit>, group_exited: CancellationToken) {
    let outcome = child.wait().await.map(exit_code).map_err(|error| error.to_string());
    signal_group(process_group, Signal::SIGKILL);
    tracing::debug!(%step, exit = ?outcome, "step process exited");
    group_exited.cancel();
    let _ = exit_sender.send(Some(outcome));
}

type ChunkReceiver = mpsc::Receiver<Result<OutputChunk, BackendError>>;

/// The next chunk either pipe produced; `None` once both forwarders have ended.
async fn next_chunk(mut receiver: ChunkReceiver) -> Option<(Result<OutputChunk, BackendError>, ChunkReceiver)> {
    let chunk = receiver.recv().await?;
    Some((chunk, receiver))
}

pub(crate) fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        // Neither a code nor a signal: not produced by waitpid on Unix.
        (None, None) => -1,
    }
}

/// Sends `signal` to every process in the group `process_group`.
pub(crate) fn signal_group(process_group: i32, signal: Signal) {
    // kill(-1) would signal every process we may signal, and kill(0) our own group: never.
    if process_group <= 1 {
        tracing::error!(process_group, "refusing to signal an invalid process group");
        return;
    }
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(process_group), signal) {
        // ESRCH: the group is already gone, which is what we wanted.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => tracing::warn!(process_group, %signal, %error, "could not signal process group"),
    }
}

/// Runs `command` with the step's environment and working directory, in a group of its own
/// that is killed when it exits or when this future is dropped; true on exit code 0.
pub(crate) async fn probe(launch: &Launch, command: &[String]) -> Result<bool, LocalError> {
    let Some((program, arguments)) = command.split_first() else {
        return Ok(false);
    };
    let mut process = launch.command(program, arguments);
    process.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = match process.spawn() {
        Ok(child) => child,
        // In a container a missing or unusable program is a failed check (exit 126 or 127),
        // not an error of the engine; the same here, so the runtime keeps polling.
        Err(error) if matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => {
            tracing::debug!(step = %launch.step, %program, %error, "probe could not start");
            return Ok(false);
        }
        Err(error) => return Err(launch.spawn_error(program, error)),
    };
    let process_group = child.id().and_then(|pid| i32::try_from(pid).ok()).expect("a child just spawned has a pid");
    let _group = KillGroupOnDrop(process_group);
    let status = child.wait().await.map_err(|source| launch.spawn_error(program, source))?;
    Ok(status.success())
}

/// Kills a process group when dropped: a probe cancelled by a timeout leaves nothing behind.
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

/// Moves one pipe's bytes into the step's output channel.
struct OutputForwarder {
    step: String,
    stream: OutputStream,
    sender: mpsc::Sender<Result<OutputChunk, BackendError>>,
    group_exited: CancellationToken,
    workflow_ended: CancellationToken,
}

impl OutputForwarder {
    async fn run(self, mut reader: impl AsyncRead + Unpin) {
        // Once the consumer has dropped the stream, the pipe is still drained (and the bytes
        // dropped) so that the step never blocks on a write nobody will read.
        let mut consumer_gone = false;
        loop {
            let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
            let read = tokio::select! {
                // `read_buf` is cancel safe: when another branch wins, no byte was consumed.
                read = reader.read_buf(&mut buffer) => read,
                () = self.workflow_ended.cancelled() => break,
                // Until the group is gone, the pipe ends only when every writer closed it; after,
                // a silent writer can only be an escaped process (see `DRAIN_AFTER_EXIT`).
                () = drained_after_exit(&self.group_exited) => break,
            };
            let item = match read {
                Ok(0) => break,
                Ok(_) => Ok(OutputChunk { stream: self.stream, bytes: buffer.freeze() }),
                Err(error) => Err(BackendError::Operation {
                    operation: format!("read {} of step `{}`", stream_name(self.stream), self.step),
                    message: error.to_string(),
                }),
            };
            let failed = item.is_err();
            if !consumer_gone && self.sender.send(item).await.is_err() {
                consumer_gone = true;
            }
            if failed {
                break;
            }
        }
    }
}

async fn drained_after_exit(group_exited: &CancellationToken) {
    group_exited.cancelled().await;
    tokio::time::sleep(DRAIN_AFTER_EXIT).await;
}

fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}
