//! What the output modes' tests share: events of a small run, its summary, a writer and a terminal that record.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::TermLike;
use runtime::run::{RunSummary, StepSummary, WorkflowSummary};
use runtime::{Event, EventSink, OutputStream, Status};

use super::{ExecOutput, OutputMode};

/// A writer the test can read back while the output still holds it.
#[derive(Clone, Default)]
pub(super) struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuffer {
    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A terminal for the live view that records what is written to it, or throws it away (to
/// measure the live view's own cost).
#[derive(Debug, Clone)]
pub(super) struct TestTerminal {
    screen: Option<Arc<Mutex<String>>>,
}

impl TestTerminal {
    pub(super) fn recording() -> TestTerminal {
        TestTerminal { screen: Some(Arc::default()) }
    }

    pub(super) fn discarding() -> TestTerminal {
        TestTerminal { screen: None }
    }

    /// Everything written so far, with indicatif's line fillers as line breaks.
    pub(super) fn screen(&self) -> String {
        self.screen.as_ref().map(|screen| screen.lock().unwrap().clone()).unwrap_or_default()
    }
}

impl TermLike for TestTerminal {
    fn width(&self) -> u16 {
        100
    }
    fn height(&self) -> u16 {
        40
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, text: &str) -> std::io::Result<()> {
        if let Some(screen) = &self.screen {
            let mut screen = screen.lock().unwrap();
            screen.push_str(text);
            screen.push('\n');
        }
        Ok(())
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        if let Some(screen) = &self.screen {
            let mut screen = screen.lock().unwrap();
            screen.push_str(text.trim_end_matches(' '));
            if text.chars().all(|character| character == ' ') && !text.is_empty() {
                // The filler indicatif writes after each line stands for its line break.
                screen.push('\n');
            }
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn run_started(workflows: &[&str]) -> Event {
    Event::RunStarted { run: "r1".into(), workflows: workflows.iter().map(ToString::to_string).collect() }
}

pub(super) fn workflow_started(workflow: &str, steps: &[&str]) -> Event {
    Event::WorkflowStarted { workflow: workflow.into(), steps: steps.iter().map(ToString::to_string).collect() }
}

pub(super) fn step_started(workflow: &str, step: &str) -> Event {
    Event::StepStarted { workflow: workflow.into(), step: step.into() }
}

pub(super) fn log(workflow: &str, step: &str, line: &str) -> Event {
    Event::Log { workflow: workflow.into(), step: step.into(), stream: OutputStream::Stdout, line: line.into() }
}

pub(super) fn step_finished(
    workflow: &str,
    step: &str,
    status: Status,
    exit_code: Option<i64>,
    millis: u64,
    reason: Option<&str>,
) -> Event {
    Event::StepFinished {
        workflow: workflow.into(),
        step: step.into(),
        status,
        exit_code,
        duration: Duration::from_millis(millis),
        reason: reason.map(str::to_owned),
    }
}

pub(super) fn workflow_finished(workflow: &str, status: Status, millis: u64) -> Event {
    Event::WorkflowFinished { workflow: workflow.into(), status, duration: Duration::from_millis(millis), reason: None }
}

/// One workflow: a pass, a failure with output, a skip.
pub(super) fn one_workflow_events() -> Vec<Event> {
    vec![
        run_started(&["build"]),
        workflow_started("build", &["clone", "test", "deploy"]),
        step_started("build", "clone"),
        log("build", "clone", "Cloning into 'repo'..."),
        step_finished("build", "clone", Status::Success, Some(0), 1200, None),
        step_started("build", "test"),
        log("build", "test", "running 3 tests"),
        log("build", "test", "test parse ... FAILED"),
        step_finished("build", "test", Status::Failure, Some(3), 400, None),
        step_finished("build", "deploy", Status::Skipped, None, 0, Some("branch is not main")),
        workflow_finished("build", Status::Failure, 1700),
        Event::RunFinished { status: Status::Failure, duration: Duration::from_millis(1750) },
    ]
}

pub(super) fn one_workflow_summary() -> RunSummary {
    let step = |name: &str, status, exit_code, millis| StepSummary {
        name: name.into(),
        status,
        exit_code,
        duration: Duration::from_millis(millis),
        reason: None,
    };
    RunSummary {
        status: Status::Failure,
        duration: Duration::from_millis(1750),
        workflows: vec![WorkflowSummary {
            name: "build".into(),
            status: Status::Failure,
            duration: Duration::from_millis(1700),
            reason: None,
            steps: vec![
                step("clone", Status::Success, Some(0), 1200),
                step("test", Status::Failure, Some(3), 400),
                step("deploy", Status::Skipped, None, 0),
            ],
        }],
    }
}

/// Everything `mode` writes for `events`, then for `finish(summary)` when one is given.
pub(super) fn render(mode: OutputMode, events: Vec<Event>, summary: Option<&RunSummary>) -> String {
    let buffer = SharedBuffer::default();
    let output = ExecOutput::with_writer(mode, Box::new(buffer.clone()));
    for event in events {
        output.emit(event);
    }
    if let Some(summary) = summary {
        output.finish(summary);
    }
    drop(output);
    buffer.text()
}
