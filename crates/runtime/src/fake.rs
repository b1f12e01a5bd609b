//! A `Backend` in memory, for tests of the scheduler and of what drives it (feature `fake`).
//!
//! Each step does what its commands say, one command a line, in order:
//!
//! | command | what the step does |
//! |---|---|
//! | `echo TEXT` | prints TEXT (`$NAME` is replaced by the step's variable `NAME`) |
//! | `exit CODE` | ends with exit code CODE |
//! | `sleep MS` | waits MS milliseconds |
//! | `await STEP` | waits until STEP of the same workflow has started (ends with 1 after 10 s) |
//! | `hang` | runs until stopped (cancellation, a timeout, the end of its workflow) |
//! | `fail prepare TEXT` / `fail start TEXT` | that call fails with a backend error saying TEXT (`$NAME` replaced) |
//! | `panic prepare` / `panic start` / `panic wait` / `panic stop` / `panic probe` | that call panics |
//! | `unready` | its readiness check (a service's `healthcheck`) fails |
//!
//! A step without commands ends with 0 at once, except a service, which runs until stopped.
//! Every call is recorded (`FakeBackend::calls`), in the order the calls were made.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::{
    Backend, BackendError, OutputChunk, OutputStream, OutputStreamOf, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource,
};
use pipeline::plan::StepKind;

/// The exit code of a step stopped before it ended, as a container killed by SIGKILL.
pub const STOPPED_EXIT_CODE: i64 = 137;

/// How long `await STEP` waits for the other step before it gives up.
const AWAIT_CEILING: Duration = Duration::from_secs(10);

/// A call the runtime made, with the workflow (its name) and the step it was for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Sweep,
    Setup {
        workflow: String,
    },
    Populate {
        workflow: String,
    },
    Prepare {
        workflow: String,
        step: String,
    },
    Start {
        workflow: String,
        step: String,
    },
    Probe {
        workflow: String,
        step: String,
    },
    /// `wait` returned this exit code.
    Exited {
        workflow: String,
        step: String,
        code: i64,
    },
    Stop {
        workflow: String,
        step: String,
    },
    Remove {
        workflow: String,
        step: String,
    },
    Teardown {
        workflow: String,
    },
}

/// The in-memory backend. Cheap to clone: clones share what they record.
#[derive(Clone, Default)]
pub struct FakeBackend {
    state: Arc<FakeState>,
}

#[derive(Default)]
struct FakeState {
    calls: Mutex<Vec<Call>>,
    requests: Mutex<Vec<(String, StepRequest)>>,
    /// `(workflow key, step)` of every step started, for `await`.
    started: Mutex<HashSet<(String, String)>>,
    started_changed: Notify,
    /// `(workflow key, stop)` of every step started: the teardown stops its workflow's.
    processes: Mutex<Vec<(String, CancellationToken)>>,
}

/// A workflow of the fake.
pub struct FakeWorkflow {
    /// Unique among the runs of this backend.
    key: String,
    name: String,
}

/// A step of the fake: what it will do, and once started, its process.
pub struct FakeStep {
    workflow_key: String,
    workflow: String,
    name: String,
    commands: Vec<Command>,
    environment: BTreeMap<String, String>,
    stop: CancellationToken,
    exit: Mutex<Option<watch::Receiver<Option<i64>>>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    Echo(String),
    Exit(i64),
    Sleep(Duration),
    Await(String),
    Hang,
    Fail { call: String, message: String },
    Panic { call: String },
    Unready,
}

/// What the runtime asked for, one command a line: a commands step's lines, or nothing.
fn commands_of(request: &StepRequest) -> Vec<Command> {
    // The runtime runs a commands step as `sh -c SCRIPT`, where the script echoes each command
    // (`printf '%s\n' '+ …'`) before the command itself: the commands are the other lines.
    let Some(script) = request.command.first().filter(|_| request.entrypoint.is_some()) else { return Vec::new() };
    script
        .lines()
        .filter(|line| *line != "set -e" && !line.starts_with("printf '%s\\n' "))
        .filter(|line| !line.trim().is_empty())
        .map(parse_command)
        .collect()
}

fn parse_command(line: &str) -> Command {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let (call, text) = rest.split_once(' ').unwrap_or((rest, ""));
    match word {
        "echo" => Command::Echo(rest.to_owned()),
        "exit" => Command::Exit(rest.parse().unwrap_or(1)),
        "sleep" => Command::Sleep(Duration::from_millis(rest.parse().unwrap_or(0))),
        "await" => Command::Await(rest.to_owned()),
        "hang" => Command::Hang,
        "fail" => Command::Fail { call: call.to_owned(), message: text.to_owned() },
        "panic" => Command::Panic { call: call.to_owned() },
        "unready" => Command::Unready,
        // An unknown command fails the step the way a shell does.
        _ => Command::Exit(127),
    }
}

/// `$NAME` replaced by the variable's value (an unknown one by nothing), as a shell would.
fn expand(text: &str, environment: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(|character: char| !(character.is_ascii_alphanumeric() || character == '_')).unwrap_or(after.len());
        if end == 0 {
            out.push('$');
        } else if let Some(value) = environment.get(&after[..end]) {
            out.push_str(value);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The fake panics on command, sometimes while it holds nothing; a poisoned lock is usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state.calls).clone()
    }

    /// The request each step was prepared with, by workflow name, in the order of the calls.
    pub fn requests(&self) -> Vec<(String, StepRequest)> {
        lock(&self.state.requests).clone()
    }

    /// A commands step's script for the fake, from its lines: what a plan's `commands` become.
    /// For tests that build a `StepRequest` themselves.
    pub fn script(commands: &[&str]) -> String {
        let commands: Vec<String> = commands.iter().map(|command| (*command).to_owned()).collect();
        crate::script::commands_script(&commands)
    }

    fn record(&self, call: Call) {
        lock(&self.state.calls).push(call);
    }

    fn wants(step: &FakeStep, what: &str) -> Option<Command> {
        step.commands
            .iter()
            .find(|command| match command {
                Command::Fail { call, .. } | Command::Panic { call } => call == what,
                _ => false,
            })
            .cloned()
    }
}

impl Backend for FakeBackend {
    type Workflow = FakeWorkflow;
    type Step = FakeStep;

    fn name(&self) -> &'static str {
        "fake"
    }

    async fn sweep(&self) -> Result<(), BackendError> {
        self.record(Call::Sweep);
        Ok(())
    }

    async fn setup(&self, run: &RunInfo, workflow: &WorkflowSetup) -> Result<FakeWorkflow, BackendError> {
        self.record(Call::Setup { workflow: workflow.name.clone() });
        Ok(FakeWorkflow { key: format!("{}-{}", run.id, workflow.key), name: workflow.name.clone() })
    }

    async fn populate_workspace(&self, workflow: &FakeWorkflow, _source: &WorkspaceSource) -> Result<(), BackendError> {
        self.record(Call::Populate { workflow: workflow.name.clone() });
        Ok(())
    }

    async fn prepare(&self, workflow: &FakeWorkflow, request: &StepRequest) -> Result<FakeStep, BackendError> {
        self.record(Call::Prepare { workflow: workflow.name.clone(), step: request.name.clone() });
        lock(&self.state.requests).push((workflow.name.clone(), request.clone()));
        let mut commands = commands_of(request);
        if commands.is_empty() && request.kind == StepKind::Service {
            commands.push(Command::Hang);
        }
        let step = FakeStep {
            workflow_key: workflow.key.clone(),
            workflow: workflow.name.clone(),
            name: request.name.clone(),
            commands,
            environment: request.environment.clone(),
            stop: CancellationToken::new(),
            exit: Mutex::new(None),
        };
        match Self::wants(&step, "prepare") {
            Some(Command::Panic { .. }) => panic!("the fake backend panics in prepare of step `{}`", step.name),
            Some(Command::Fail { message, .. }) => Err(BackendError::Operation {
                operation: format!("prepare step `{}`", step.name),
                message: expand(&message, &step.environment),
            }),
            _ => Ok(step),
        }
    }

    async fn start(&self, step: &FakeStep) -> Result<OutputStreamOf, BackendError> {
        self.record(Call::Start { workflow: step.workflow.clone(), step: step.name.clone() });
        match Self::wants(step, "start") {
            Some(Command::Panic { .. }) => panic!("the fake backend panics in start of step `{}`", step.name),
            Some(Command::Fail { message, .. }) => {
                return Err(BackendError::Operation {
                    operation: format!("start step `{}`", step.name),
                    message: expand(&message, &step.environment),
                });
            }
            _ => {}
        }
        lock(&self.state.started).insert((step.workflow_key.clone(), step.name.clone()));
        self.state.started_changed.notify_waiters();
        lock(&self.state.processes).push((step.workflow_key.clone(), step.stop.clone()));

        let (output, receiver) = mpsc::unbounded_channel::<Result<OutputChunk, BackendError>>();
        let (exit_sender, exit) = watch::channel(None);
        *lock(&step.exit) = Some(exit);
        let commands = step.commands.clone();
        let environment = step.environment.clone();
        let stop = step.stop.clone();
        let state = self.state.clone();
        let workflow_key = step.workflow_key.clone();
        tokio::spawn(async move {
            let code = tokio::select! {
                code = run_commands(&commands, &environment, &output, &state, &workflow_key) => code,
                _ = stop.cancelled() => STOPPED_EXIT_CODE,
            };
            // The output ends before the exit code is known, as a container's does.
            drop(output);
            let _ = exit_sender.send(Some(code));
        });
        let stream =
            futures_util::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) });
        Ok(Box::pin(stream))
    }

    async fn probe(&self, step: &FakeStep, _command: &[String]) -> Result<bool, BackendError> {
        self.record(Call::Probe { workflow: step.workflow.clone(), step: step.name.clone() });
        if let Some(Command::Panic { .. }) = Self::wants(step, "probe") {
            panic!("the fake backend panics in probe of step `{}`", step.name);
        }
        Ok(!step.commands.contains(&Command::Unready))
    }

    async fn wait(&self, step: &FakeStep) -> Result<i64, BackendError> {
        if let Some(Command::Panic { .. }) = Self::wants(step, "wait") {
            panic!("the fake backend panics in wait of step `{}`", step.name);
        }
        let exit = lock(&step.exit).clone();
        let Some(mut exit) = exit else {
            return Err(BackendError::Operation { operation: format!("wait for step `{}`", step.name), message: "not started".into() });
        };
        let code = match exit.wait_for(Option::is_some).await {
            Ok(code) => code.unwrap_or(STOPPED_EXIT_CODE),
            Err(_) => STOPPED_EXIT_CODE,
        };
        self.record(Call::Exited { workflow: step.workflow.clone(), step: step.name.clone(), code });
        Ok(code)
    }

    async fn stop(&self, step: &FakeStep) {
        self.record(Call::Stop { workflow: step.workflow.clone(), step: step.name.clone() });
        if let Some(Command::Panic { .. }) = Self::wants(step, "stop") {
            panic!("the fake backend panics in stop of step `{}`", step.name);
        }
        step.stop.cancel();
    }

    async fn remove(&self, step: FakeStep) {
        self.record(Call::Remove { workflow: step.workflow.clone(), step: step.name.clone() });
        step.stop.cancel();
    }

    /// Stops every step of the workflow still running, removed or not (a step whose task
    /// panicked was never removed), as the teardown of a container engine removes them.
    async fn teardown(&self, workflow: FakeWorkflow) {
        self.record(Call::Teardown { workflow: workflow.name.clone() });
        lock(&self.state.processes).retain(|(key, stop)| {
            if *key == workflow.key {
                stop.cancel();
            }
            *key != workflow.key
        });
    }
}

/// Runs a started step's commands; returns its exit code.
async fn run_commands(
    commands: &[Command],
    environment: &BTreeMap<String, String>,
    output: &mpsc::UnboundedSender<Result<OutputChunk, BackendError>>,
    state: &FakeState,
    workflow_key: &str,
) -> i64 {
    let print = |line: String| {
        let _ = output.send(Ok(OutputChunk { stream: OutputStream::Stdout, bytes: Bytes::from(format!("{line}\n")) }));
    };
    for command in commands {
        match command {
            Command::Echo(text) => print(expand(text, environment)),
            Command::Exit(code) => return *code,
            Command::Sleep(duration) => tokio::time::sleep(*duration).await,
            Command::Await(other) => {
                let key = (workflow_key.to_owned(), other.clone());
                let waiting = async {
                    loop {
                        let changed = state.started_changed.notified();
                        if lock(&state.started).contains(&key) {
                            return;
                        }
                        changed.await;
                    }
                };
                if tokio::time::timeout(AWAIT_CEILING, waiting).await.is_err() {
                    print(format!("step `{other}` did not start within {} s", AWAIT_CEILING.as_secs()));
                    return 1;
                }
            }
            Command::Hang => std::future::pending::<()>().await,
            Command::Fail { .. } | Command::Panic { .. } | Command::Unready => {}
        }
    }
    0
}
