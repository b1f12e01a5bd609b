//! How `gantry exec` shows a run: a live view on a terminal, plain lines in CI and pipes, JSON events on request.
//!
//! The runtime calls [`ExecOutput::emit`] from many tasks at once, once per log line, so the hot
//! path only appends to a buffer under a short lock. A ticker thread flushes that buffer every
//! 100 ms (50 ms for the live view, which also redraws elapsed times), and every state change
//! flushes at once: output appears promptly without one write per line.
//!
//! Writing never fails the run: once stdout is gone (a closed pipe), output stops quietly.
//!
//! Here: choosing a mode and the sink every mode shares (its lock, ticker and lifecycle). Each
//! mode renders events in a module of its own (`live`, `plain`, `json`); `summary` is the table
//! printed at the end; `model` is what the events told so far; `text` holds the words and
//! colours they share; `buffer` is stdout behind a buffer that goes quiet once the reader left.

mod buffer;
#[cfg(test)]
mod fixtures;
mod json;
mod live;
mod mode;
mod model;
mod plain;
mod summary;
mod text;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use indicatif::ProgressDrawTarget;
use runtime::run::RunSummary;
use runtime::{Event, EventSink};

use buffer::BufferedOutput;
use live::LiveView;
pub(crate) use mode::OutputMode;
use model::RunModel;

/// How often buffered plain or JSON output reaches stdout while log lines keep coming.
const PLAIN_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Builds the sink for a mode, writing to stdout (logs, events) and keeping what the summary needs.
///
/// `Live` falls back to `Plain` when stdout is not a terminal that can show it, since the live
/// view would otherwise draw nothing at all, log lines included.
pub(crate) fn sink(mode: OutputMode) -> Arc<ExecOutput> {
    let stdout: Box<dyn Write + Send> = Box::new(std::io::stdout());
    let live_possible = std::io::stdout().is_terminal() && !console::is_dumb();
    match mode {
        OutputMode::Live if live_possible => {
            let colored = crate::output::use_color(&std::io::stdout());
            let terminal_rows = || console::Term::stdout().size_checked().map_or(24, |(rows, _)| usize::from(rows));
            ExecOutput::live(ProgressDrawTarget::stdout_with_hz(20), stdout, colored, Box::new(terminal_rows))
        }
        OutputMode::Live | OutputMode::Plain => ExecOutput::with_writer(OutputMode::Plain, stdout),
        OutputMode::Json => ExecOutput::with_writer(OutputMode::Json, stdout),
    }
}

/// Shows a run as it goes and summarises it at the end. Implements `runtime::EventSink`.
///
/// Lifecycle: built by [`sink`], handed to the runtime as its event sink, then [`finish`] once
/// the run has returned. Every method may be called from any thread.
///
/// [`finish`]: ExecOutput::finish
pub(crate) struct ExecOutput {
    mode: OutputMode,
    colored: bool,
    state: Mutex<OutputState>,
    /// Only in the live view.
    live: Option<LiveView>,
    finished: AtomicBool,
}

struct OutputState {
    run: RunModel,
    out: BufferedOutput,
    /// Live view: log lines waiting for the next tick, each ending in a line break.
    pending_log_lines: String,
}

impl ExecOutput {
    /// Plain or JSON output to `writer` (a `Live` mode renders as `Plain`: a writer is no terminal).
    pub(crate) fn with_writer(mode: OutputMode, writer: Box<dyn Write + Send>) -> Arc<ExecOutput> {
        let mode = if mode == OutputMode::Live { OutputMode::Plain } else { mode };
        let output = Arc::new(ExecOutput {
            mode,
            colored: false,
            state: Mutex::new(OutputState::new(writer)),
            live: None,
            finished: AtomicBool::new(false),
        });
        start_ticker(Arc::downgrade(&output), PLAIN_FLUSH_INTERVAL);
        output
    }

    /// Call once after the run: stops the live view and prints the summary table (plain and
    /// live; in Json mode prints nothing more, since `RunFinished` was already an event).
    pub(crate) fn finish(&self, summary: &RunSummary) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(live) = &self.live {
            self.stop_live_view(live);
        }
        let mut state = lock(&self.state);
        if self.mode != OutputMode::Json {
            let table = summary::render_summary(summary, &state.run, self.colored);
            state.out.write(b"\n");
            state.out.write(table.as_bytes());
        }
        state.out.flush();
    }

    /// For messages the command prints around the run: above the live view without breaking it;
    /// on stdout in plain mode; on stderr in JSON mode, which keeps stdout for events.
    pub(crate) fn note(&self, text: &str) {
        match (&self.live, self.mode) {
            (Some(live), _) if !self.finished.load(Ordering::Acquire) => self.note_above_live_view(live, text),
            (_, OutputMode::Json) => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            _ => {
                let mut state = lock(&self.state);
                state.out.write(text.as_bytes());
                state.out.write(b"\n");
                state.out.flush();
            }
        }
    }

    /// Called by the ticker thread: buffered output reaches stdout, the live view redraws elapsed times.
    fn tick(&self) {
        match &self.live {
            Some(live) => self.tick_live_view(live),
            None => {
                let mut state = lock(&self.state);
                if state.out.has_pending() {
                    state.out.flush();
                }
            }
        }
    }
}

impl EventSink for ExecOutput {
    fn emit(&self, event: Event) {
        match (&self.live, self.mode) {
            (Some(live), _) => self.emit_live(live, event),
            (None, OutputMode::Json) => self.emit_json(event),
            (None, _) => self.emit_plain(event),
        }
    }
}

impl Drop for ExecOutput {
    /// Whatever is still buffered reaches stdout, even when `finish` was never called (an error path).
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            self.print_pending_log_lines(live);
        }
        lock(&self.state).out.flush();
    }
}

impl OutputState {
    fn new(writer: Box<dyn Write + Send>) -> OutputState {
        OutputState { run: RunModel::default(), out: BufferedOutput::new(writer), pending_log_lines: String::new() }
    }
}

/// A poisoned lock only means another task panicked mid-write; the output is still worth showing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Flushes buffered output and redraws the live view until the output is finished or dropped.
/// Holds only a weak reference, so that dropping the last `Arc` ends it.
fn start_ticker(output: Weak<ExecOutput>, interval: Duration) {
    let ticker = move || {
        loop {
            std::thread::sleep(interval);
            let Some(output) = output.upgrade() else { break };
            if output.finished.load(Ordering::Acquire) {
                break;
            }
            output.tick();
        }
    };
    // Without the thread, output still appears at every state change and at the end.
    let _ = std::thread::Builder::new().name("exec-output".into()).spawn(ticker);
}
