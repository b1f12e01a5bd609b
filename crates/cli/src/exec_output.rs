//! How `gantry exec` shows a run: a live view on a terminal, plain lines in CI and pipes, JSON events on request.
//!
//! The runtime calls [`ExecOutput::emit`] from many tasks at once, once per log line, so the hot
//! path only appends to a buffer under a short lock. A ticker thread flushes that buffer every
//! 100 ms (50 ms for the live view, which also redraws elapsed times), and every state change
//! flushes at once: output appears promptly without one write per line.
//!
//! Writing never fails the run: once stdout is gone (a closed pipe), output stops quietly.

use std::collections::HashMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtime::run::RunSummary;
use runtime::{Event, EventSink, Status};

/// How often buffered plain or JSON output reaches stdout while log lines keep coming.
const PLAIN_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How often the live view prints waiting log lines and redraws elapsed times (indicatif draws at most 20 times a second).
const LIVE_TICK_INTERVAL: Duration = Duration::from_millis(50);
/// Waiting log lines of the live view past this size are printed by the task that adds them, so
/// a flood of output holds a bounded amount of memory and slows its producer instead.
const LIVE_BATCH_LIMIT: usize = 256 * 1024;
const WRITE_BUFFER_CAPACITY: usize = 64 * 1024;
/// Log prefixes of the live view are padded to line up, but not without bound.
const LIVE_PREFIX_WIDTH_LIMIT: usize = 24;
const SPINNER_FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Colours for step names, as ANSI SGR parameters. Red and green are left out: they mean failed and passed.
const STEP_PALETTE: [&str; 8] = ["36", "35", "33", "34", "96", "95", "93", "94"];
const GREEN: &str = "32";
const RED: &str = "31";
const BOLD: &str = "1";
const DIM: &str = "2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputMode {
    /// A redrawn view of workflows and steps with log lines scrolling above it.
    Live,
    /// One line per log line or state change, no colours: for CI logs, pipes and files.
    Plain,
    /// Each event as one line of JSON.
    Json,
}

impl OutputMode {
    /// Live on a terminal unless `CI` is set; Plain otherwise; Json when asked. `NO_COLOR` only
    /// turns colours off. A dumb terminal (`TERM=dumb` or unset) gets Plain, because it cannot
    /// move the cursor to redraw a view (and indicatif draws nothing there, log lines included).
    pub(crate) fn choose(json: bool) -> OutputMode {
        choose_mode(json, std::io::stdout().is_terminal(), |name| std::env::var(name).ok())
    }
}

fn choose_mode(json: bool, stdout_is_terminal: bool, variable: impl Fn(&str) -> Option<String>) -> OutputMode {
    if json {
        return OutputMode::Json;
    }
    // CI systems set CI to `true`, or to their own name (Woodpecker sets `woodpecker`).
    let in_ci = variable("CI").is_some_and(|value| !value.is_empty() && value != "false" && value != "0");
    let dumb_terminal = match variable("TERM") {
        Some(term) => term == "dumb",
        // Windows consoles do not set TERM; elsewhere a terminal without it is treated as dumb.
        None => !cfg!(windows),
    };
    if stdout_is_terminal && !in_ci && !dumb_terminal { OutputMode::Live } else { OutputMode::Plain }
}

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

struct LiveView {
    multi: MultiProgress,
    /// Held while printing waiting log lines, so that two batches never swap places.
    print_order: Mutex<()>,
    terminal_rows: Box<dyn Fn() -> usize + Send + Sync>,
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

    /// The live view drawn on `target`; `writer` gets what is printed after it stops (the summary).
    fn live(
        target: ProgressDrawTarget,
        writer: Box<dyn Write + Send>,
        colored: bool,
        terminal_rows: Box<dyn Fn() -> usize + Send + Sync>,
    ) -> Arc<ExecOutput> {
        let output = Arc::new(ExecOutput {
            mode: OutputMode::Live,
            colored,
            state: Mutex::new(OutputState::new(writer)),
            live: Some(LiveView { multi: MultiProgress::with_draw_target(target), print_order: Mutex::new(()), terminal_rows }),
            finished: AtomicBool::new(false),
        });
        start_ticker(Arc::downgrade(&output), LIVE_TICK_INTERVAL);
        output
    }

    /// Call once after the run: stops the live view and prints the summary table (plain and
    /// live; in Json mode prints nothing more, since `RunFinished` was already an event).
    pub(crate) fn finish(&self, summary: &RunSummary) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(live) = &self.live {
            self.print_pending_log_lines(live);
            let _ = live.multi.clear();
            // Hidden from now on, so that nothing redraws the view under the summary.
            live.multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let mut state = lock(&self.state);
        if self.mode != OutputMode::Json {
            let table = render_summary(summary, &state.run, self.colored);
            state.out.write(b"\n");
            state.out.write(table.as_bytes());
        }
        state.out.flush();
    }

    /// For messages the command prints around the run: above the live view without breaking it;
    /// on stdout in plain mode; on stderr in JSON mode, which keeps stdout for events.
    pub(crate) fn note(&self, text: &str) {
        match (&self.live, self.mode) {
            (Some(live), _) if !self.finished.load(Ordering::Acquire) => {
                let _print_order = lock(&live.print_order);
                let waiting = std::mem::take(&mut lock(&self.state).pending_log_lines);
                let mut message = waiting;
                message.push_str(text);
                let _ = live.multi.println(message);
            }
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
            Some(live) => {
                self.print_pending_log_lines(live);
                let now = Instant::now();
                let updates = lock(&self.state).run.running_lines(self.colored, now);
                for (bar, text) in updates {
                    bar.set_message(text);
                }
            }
            None => {
                let mut state = lock(&self.state);
                if state.out.has_pending() {
                    state.out.flush();
                }
            }
        }
    }

    fn print_pending_log_lines(&self, live: &LiveView) {
        let _print_order = lock(&live.print_order);
        let mut waiting = std::mem::take(&mut lock(&self.state).pending_log_lines);
        if waiting.ends_with('\n') {
            waiting.pop();
            let _ = live.multi.println(waiting);
        }
    }

    fn emit_plain(&self, event: Event) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        state.run.observe(&event);
        if let Event::Log { workflow, step, line, .. } = &event {
            let label = state.run.label(workflow, step);
            state.out.write(b"[");
            state.out.write(label.as_bytes());
            state.out.write(b"] ");
            state.out.write(line.as_bytes());
            state.out.write(b"\n");
            return;
        }
        if let Some(line) = plain_state_line(&event, &state.run) {
            state.out.write(line.as_bytes());
            state.out.write(b"\n");
        }
        state.out.flush();
    }

    fn emit_json(&self, event: Event) {
        // Serialised before taking the lock, which other tasks are waiting for.
        let Ok(serialized) = serde_json::to_vec(&event) else { return };
        // Every event says when it happened (milliseconds since the Unix epoch), so that a
        // consumer can tell how long anything took and what overlapped.
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_millis()).unwrap_or_default();
        let mut line = Vec::with_capacity(serialized.len() + 24);
        line.extend_from_slice(format!("{{\"at_ms\":{at},").as_bytes());
        line.extend_from_slice(serialized.get(1..).unwrap_or_default());
        line.push(b'\n');
        let mut state = lock(&self.state);
        state.run.observe(&event);
        state.out.write(&line);
        if !matches!(event, Event::Log { .. }) {
            state.out.flush();
        }
    }

    fn emit_live(&self, live: &LiveView, event: Event) {
        if self.finished.load(Ordering::Acquire) {
            // The view is gone; whatever still arrives is not lost, only plain.
            return self.emit_plain(event);
        }
        if let Event::Log { workflow, step, line, .. } = &event {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            let (colour, label, width) = state.run.log_prefix(workflow, step);
            let text = &mut state.pending_log_lines;
            push_painted(text, self.colored, colour, &label);
            text.extend(std::iter::repeat_n(' ', width.saturating_sub(label.chars().count())));
            text.push_str(" │ ");
            push_terminal_safe(text, line);
            text.push('\n');
            let flood = text.len() > LIVE_BATCH_LIMIT;
            drop(guard);
            if flood {
                self.print_pending_log_lines(live);
            }
            return;
        }
        let mut state = lock(&self.state);
        let run = &mut state.run;
        run.observe(&event);
        let now = Instant::now();
        match &event {
            Event::WorkflowStarted { workflow, .. }
            | Event::StepStarted { workflow, .. }
            | Event::StepFinished { workflow, .. }
            | Event::WorkflowFinished { workflow, .. } => {
                run.show_workflow(workflow, &live.multi, self.colored, now);
                if matches!(event, Event::WorkflowStarted { .. } | Event::WorkflowFinished { .. }) {
                    run.collapse_when_crowded(&live.multi, (live.terminal_rows)(), self.colored, now);
                }
            }
            Event::RunStarted { .. } | Event::RunFinished { .. } | Event::Log { .. } => {}
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

/// Stdout behind a large buffer. After the first failed write (the reader went away) it drops everything.
struct BufferedOutput {
    writer: BufWriter<Box<dyn Write + Send>>,
    broken: bool,
}

impl BufferedOutput {
    fn new(writer: Box<dyn Write + Send>) -> BufferedOutput {
        BufferedOutput { writer: BufWriter::with_capacity(WRITE_BUFFER_CAPACITY, writer), broken: false }
    }

    fn write(&mut self, bytes: &[u8]) {
        if !self.broken && self.writer.write_all(bytes).is_err() {
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.writer.flush().is_err() {
            self.broken = true;
        }
    }

    fn has_pending(&self) -> bool {
        !self.broken && !self.writer.buffer().is_empty()
    }
}

/// What is known of the run from its events: which workflows and steps exist, in which state,
/// and for the live view the lines that show them.
#[derive(Default)]
struct RunModel {
    /// From `RunStarted`; labels carry the workflow name when there are several.
    declared_workflows: usize,
    workflows: Vec<WorkflowView>,
    workflow_index: HashMap<String, usize>,
    /// Widest log prefix so far (live view), within `LIVE_PREFIX_WIDTH_LIMIT`.
    prefix_width: usize,
}

struct WorkflowView {
    name: String,
    phase: Phase,
    reason: Option<String>,
    steps: Vec<StepView>,
    step_index: HashMap<String, usize>,
    /// Live view: one line for the workflow, and whether its steps' lines were folded into it.
    line: Option<ProgressBar>,
    collapsed: bool,
}

struct StepView {
    name: String,
    colour: &'static str,
    phase: Phase,
    reason: Option<String>,
    line: Option<ProgressBar>,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Pending,
    Running { since: Instant },
    Finished { status: Status, exit_code: Option<i64>, duration: Duration },
}

impl RunModel {
    fn several_workflows(&self) -> bool {
        self.declared_workflows.max(self.workflows.len()) > 1
    }

    /// `step` alone in a single-workflow run, `workflow/step` otherwise.
    fn label(&self, workflow: &str, step: &str) -> String {
        if self.several_workflows() { format!("{workflow}/{step}") } else { step.to_owned() }
    }

    fn workflow_mut(&mut self, name: &str) -> &mut WorkflowView {
        let index = match self.workflow_index.get(name) {
            Some(index) => *index,
            None => {
                self.workflows.push(WorkflowView::new(name));
                self.workflow_index.insert(name.to_owned(), self.workflows.len() - 1);
                self.workflows.len() - 1
            }
        };
        &mut self.workflows[index]
    }

    fn workflow(&self, name: &str) -> Option<&WorkflowView> {
        self.workflow_index.get(name).map(|index| &self.workflows[*index])
    }

    fn step(&self, workflow: &str, step: &str) -> Option<&StepView> {
        let workflow = self.workflow(workflow)?;
        workflow.step_index.get(step).map(|index| &workflow.steps[*index])
    }

    fn observe(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::RunStarted { workflows, .. } => self.declared_workflows = workflows.len(),
            Event::WorkflowStarted { workflow, steps } => {
                let view = self.workflow_mut(workflow);
                view.phase = Phase::Running { since: now };
                for step in steps {
                    view.step_mut(step);
                }
                self.widen_prefixes(workflow);
            }
            Event::StepStarted { workflow, step } => {
                self.workflow_mut(workflow).step_mut(step).phase = Phase::Running { since: now };
                self.widen_prefixes(workflow);
            }
            Event::StepFinished { workflow, step, status, exit_code, duration, reason } => {
                let view = self.workflow_mut(workflow).step_mut(step);
                view.phase = Phase::Finished { status: *status, exit_code: *exit_code, duration: *duration };
                view.reason = reason.clone();
            }
            Event::WorkflowFinished { workflow, status, duration, reason } => {
                let view = self.workflow_mut(workflow);
                view.phase = Phase::Finished { status: *status, exit_code: None, duration: *duration };
                view.reason = reason.clone();
            }
            Event::Log { .. } | Event::RunFinished { .. } => {}
        }
    }

    fn widen_prefixes(&mut self, workflow: &str) {
        let several = self.several_workflows();
        let Some(view) = self.workflow(workflow) else { return };
        let widest = view.steps.iter().map(|step| step.name.chars().count()).max().unwrap_or(0);
        let widest = if several { widest + workflow.chars().count() + 1 } else { widest };
        self.prefix_width = self.prefix_width.max(widest.min(LIVE_PREFIX_WIDTH_LIMIT));
    }

    /// The colour, label and padded width of a log line's prefix in the live view.
    fn log_prefix(&mut self, workflow: &str, step: &str) -> (&'static str, String, usize) {
        let colour = match self.step(workflow, step) {
            Some(view) => view.colour,
            None => step_colour(workflow, None, step),
        };
        (colour, self.label(workflow, step), self.prefix_width)
    }

    /// Adds the live lines of a workflow and its steps that are not shown yet, and redraws them all.
    fn show_workflow(&mut self, workflow: &str, multi: &MultiProgress, colored: bool, now: Instant) {
        let Some(&index) = self.workflow_index.get(workflow) else { return };
        let view = &mut self.workflows[index];
        let header = view.line.get_or_insert_with(|| add_line(multi, None)).clone();
        header.set_message(view.header_text(colored, now));
        if view.collapsed {
            return;
        }
        let name_width = view.steps.iter().map(|step| step.name.chars().count()).max().unwrap_or(0);
        // Steps are kept in declared order under their workflow, so a step shown late goes after the last shown one.
        let mut last_shown = header;
        for step in &mut view.steps {
            let line = step.line.get_or_insert_with(|| add_line(multi, Some(&last_shown))).clone();
            line.set_message(step.line_text(name_width, colored, now));
            last_shown = line;
        }
    }

    /// The lines that change by themselves (running steps and workflows) with their new text.
    fn running_lines(&self, colored: bool, now: Instant) -> Vec<(ProgressBar, String)> {
        let mut lines = Vec::new();
        for workflow in &self.workflows {
            let Some(header) = &workflow.line else { continue };
            if !matches!(workflow.phase, Phase::Running { .. }) {
                continue;
            }
            lines.push((header.clone(), workflow.header_text(colored, now)));
            let name_width = workflow.steps.iter().map(|step| step.name.chars().count()).max().unwrap_or(0);
            for step in &workflow.steps {
                if let (Some(line), Phase::Running { .. }) = (&step.line, step.phase) {
                    lines.push((line.clone(), step.line_text(name_width, colored, now)));
                }
            }
        }
        lines
    }

    /// Folds finished workflows into their one header line, oldest first, while the view is
    /// taller than two thirds of the terminal: log lines need room too. The summary shows every step anyway.
    fn collapse_when_crowded(&mut self, multi: &MultiProgress, terminal_rows: usize, colored: bool, now: Instant) {
        let budget = (terminal_rows * 2 / 3).max(6);
        let mut height: usize = self
            .workflows
            .iter()
            .filter(|workflow| workflow.line.is_some())
            .map(|workflow| if workflow.collapsed { 1 } else { 1 + workflow.steps.len() })
            .sum();
        for workflow in &mut self.workflows {
            if height <= budget {
                break;
            }
            if workflow.collapsed || workflow.line.is_none() || !matches!(workflow.phase, Phase::Finished { .. }) {
                continue;
            }
            for step in &mut workflow.steps {
                if let Some(line) = step.line.take() {
                    multi.remove(&line);
                }
            }
            height -= workflow.steps.len();
            workflow.collapsed = true;
            if let Some(header) = &workflow.line {
                header.set_message(workflow.header_text(colored, now));
            }
        }
    }
}

/// A hidden bar with a template of just its message: the text of every line is composed here.
fn add_line(multi: &MultiProgress, after: Option<&ProgressBar>) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::hidden().with_style(style);
    match after {
        Some(after) => multi.insert_after(after, bar),
        None => multi.add(bar),
    }
}

impl WorkflowView {
    fn new(name: &str) -> WorkflowView {
        WorkflowView {
            name: name.to_owned(),
            phase: Phase::Pending,
            reason: None,
            steps: Vec::new(),
            step_index: HashMap::new(),
            line: None,
            collapsed: false,
        }
    }

    fn step_mut(&mut self, name: &str) -> &mut StepView {
        let index = match self.step_index.get(name) {
            Some(index) => *index,
            None => {
                let colour = step_colour(&self.name, Some(self.steps.len()), name);
                self.steps.push(StepView { name: name.to_owned(), colour, phase: Phase::Pending, reason: None, line: None });
                self.step_index.insert(name.to_owned(), self.steps.len() - 1);
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }

    fn header_text(&self, colored: bool, now: Instant) -> String {
        let mut text = String::new();
        push_painted(&mut text, colored, BOLD, &self.name);
        text.push_str("  ");
        match self.phase {
            Phase::Pending => push_painted(&mut text, colored, DIM, "waiting"),
            Phase::Running { since } => {
                push_painted(&mut text, colored, "36", spinner_frame(now - since));
                text.push(' ');
                text.push_str(&human_duration(now - since));
            }
            Phase::Finished { status, exit_code, duration } => {
                push_painted(&mut text, colored, status_colour(status), status_marker(status));
                text.push(' ');
                text.push_str(&outcome_text(status, exit_code, duration, self.reason.as_deref()));
                if self.collapsed {
                    text.push_str(&self.collapsed_detail());
                }
            }
        }
        text
    }

    /// What a folded workflow still says about its steps: how many, and which did not pass.
    fn collapsed_detail(&self) -> String {
        let not_passed: Vec<String> = self
            .steps
            .iter()
            .filter_map(|step| match step.phase {
                Phase::Finished { status, exit_code, .. } if status.is_failure() => Some(match exit_code {
                    Some(code) if status == Status::Failure => format!("{} (exit {code})", step.name),
                    _ => format!("{} ({})", step.name, status_word(status)),
                }),
                _ => None,
            })
            .collect();
        let steps = plural(self.steps.len(), "step");
        if not_passed.is_empty() { format!(" · {steps}") } else { format!(" · {steps}, not passed: {}", not_passed.join(", ")) }
    }
}

impl StepView {
    fn line_text(&self, name_width: usize, colored: bool, now: Instant) -> String {
        let mut text = String::from("  ");
        let (marker, marker_colour) = match self.phase {
            Phase::Pending => ("·", DIM),
            Phase::Running { since } => (spinner_frame(now - since), "36"),
            Phase::Finished { status, .. } => (status_marker(status), status_colour(status)),
        };
        push_painted(&mut text, colored, marker_colour, marker);
        text.push(' ');
        push_painted(&mut text, colored, self.colour, &self.name);
        text.extend(std::iter::repeat_n(' ', name_width.saturating_sub(self.name.chars().count()) + 2));
        match self.phase {
            Phase::Pending => push_painted(&mut text, colored, DIM, "waiting"),
            Phase::Running { since } => text.push_str(&human_duration(now - since)),
            Phase::Finished { status, exit_code, duration } => {
                let outcome = outcome_text(status, exit_code, duration, self.reason.as_deref());
                let colour = if status == Status::Skipped { DIM } else { "" };
                push_painted(&mut text, colored, colour, &outcome);
            }
        }
        text
    }
}

/// The palette colour of a step: declared steps of one workflow take consecutive colours from a
/// start that depends on the workflow's name, so neighbours differ and a pipeline looks the same
/// on every run. A step the workflow did not declare is coloured by its name.
fn step_colour(workflow: &str, declared_index: Option<usize>, step: &str) -> &'static str {
    let index = match declared_index {
        Some(index) => stable_hash(workflow.as_bytes()).wrapping_add(index as u64),
        None => stable_hash(format!("{workflow}/{step}").as_bytes()),
    };
    STEP_PALETTE[(index % STEP_PALETTE.len() as u64) as usize]
}

/// FNV-1a: the same on every run and platform, unlike the standard library's seeded hasher.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

fn spinner_frame(elapsed: Duration) -> &'static str {
    SPINNER_FRAMES[(elapsed.as_millis() / 80) as usize % SPINNER_FRAMES.len()]
}

fn push_painted(text: &mut String, colored: bool, colour: &str, words: &str) {
    if colored && !colour.is_empty() {
        text.push_str("\x1b[");
        text.push_str(colour);
        text.push('m');
        text.push_str(words);
        text.push_str("\x1b[0m");
    } else {
        text.push_str(words);
    }
}

/// Appends a container's line so that it cannot disturb the live view below it: cursor movement
/// and screen clearing are dropped, a carriage return keeps only what a terminal would show last,
/// tabs become spaces (indicatif measures widths without them), and colours are kept but reset at
/// the end so they do not run into the next line.
fn push_terminal_safe(text: &mut String, line: &str) {
    if !line.bytes().any(|byte| byte < 0x20 || byte == 0x7f) {
        text.push_str(line);
        return;
    }
    let line = line.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
    let mut column = 0;
    let mut coloured = false;
    let mut chars = line.chars().peekable();
    while let Some(character) = chars.next() {
        match character {
            '\x1b' => match chars.next() {
                Some('[') => {
                    let mut sequence = String::from("\x1b[");
                    for next in chars.by_ref() {
                        sequence.push(next);
                        if ('\x40'..='\x7e').contains(&next) {
                            break;
                        }
                    }
                    if sequence.ends_with('m') {
                        text.push_str(&sequence);
                        coloured = true;
                    }
                }
                // An operating system command (a window title, a hyperlink) runs to BEL or ESC \.
                Some(']') => {
                    while let Some(next) = chars.next() {
                        if next == '\x07' || (next == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => {
                let spaces = 8 - column % 8;
                text.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            character if character.is_control() => {}
            character => {
                text.push(character);
                column += 1;
            }
        }
    }
    if coloured {
        text.push_str("\x1b[0m");
    }
}

/// The line plain output prints for a state change; `None` for events it does not show.
fn plain_state_line(event: &Event, run: &RunModel) -> Option<String> {
    match event {
        Event::RunStarted { run: id, workflows } => Some(format!("▶ run {id}: {}", workflows.join(", "))),
        Event::WorkflowStarted { workflow, steps } => Some(format!("▶ workflow {workflow} started ({})", plural(steps.len(), "step"))),
        Event::StepStarted { workflow, step } => Some(format!("▶ {} started", run.label(workflow, step))),
        Event::StepFinished { workflow, step, status, exit_code, duration, reason } => Some(format!(
            "{} {} {}",
            status_marker(*status),
            run.label(workflow, step),
            outcome_text(*status, *exit_code, *duration, reason.as_deref())
        )),
        Event::WorkflowFinished { workflow, status, duration, reason } => {
            Some(format!("{} workflow {workflow} {}", status_marker(*status), outcome_text(*status, None, *duration, reason.as_deref())))
        }
        Event::Log { .. } | Event::RunFinished { .. } => None,
    }
}

fn status_marker(status: Status) -> &'static str {
    match status {
        Status::Success => "✓",
        Status::Failure => "✗",
        Status::Skipped => "–",
        Status::Killed => "■",
        Status::Error => "!",
    }
}

fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Success => GREEN,
        Status::Skipped => DIM,
        Status::Failure | Status::Killed | Status::Error => RED,
    }
}

/// The word people read for a status: `passed` rather than the wire's `success`.
fn status_word(status: Status) -> &'static str {
    match status {
        Status::Success => "passed",
        Status::Failure => "failed",
        Status::Skipped => "skipped",
        Status::Killed => "killed",
        Status::Error => "error",
    }
}

/// `passed in 1.2s`, `failed (exit 3) in 0.4s`, `skipped: reason`, `killed after 3.0s`, `error: reason`.
fn outcome_text(status: Status, exit_code: Option<i64>, duration: Duration, reason: Option<&str>) -> String {
    let mut text = String::from(status_word(status));
    match status {
        Status::Skipped | Status::Error => {}
        Status::Failure => {
            if let Some(code) = exit_code {
                text.push_str(&format!(" (exit {code})"));
            }
            text.push_str(&format!(" in {}", human_duration(duration)));
        }
        Status::Success => text.push_str(&format!(" in {}", human_duration(duration))),
        Status::Killed => text.push_str(&format!(" after {}", human_duration(duration))),
    }
    if let Some(reason) = reason.filter(|reason| !reason.is_empty()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

/// `0.4s`, `12.4s`, `2m 05s`, `1h 02m`.
fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        // Tenths rounded down, so that 59.96s does not read as 60.0s.
        format!("{}.{}s", seconds, duration.subsec_millis() / 100)
    } else if seconds < 3600 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60)
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}

/// The table of workflows and steps with status, exit code and duration, then one line of totals.
/// Reasons (why skipped, what went wrong) come from the summary, or else from the events.
fn render_summary(summary: &RunSummary, run: &RunModel, colored: bool) -> String {
    struct Row {
        label: String,
        status: Status,
        exit: String,
        duration: String,
        reason: String,
    }
    let mut rows = Vec::new();
    for workflow in &summary.workflows {
        let reason = workflow.reason.clone().or_else(|| run.workflow(&workflow.name).and_then(|view| view.reason.clone()));
        let reason = reason.unwrap_or_default();
        let duration = if workflow.status == Status::Skipped { "-".into() } else { human_duration(workflow.duration) };
        rows.push(Row { label: workflow.name.clone(), status: workflow.status, exit: String::new(), duration, reason });
        for step in &workflow.steps {
            let ran = step.status != Status::Skipped && step.status != Status::Error;
            rows.push(Row {
                label: format!("  {}", step.name),
                status: step.status,
                exit: step.exit_code.map_or_else(|| "-".into(), |code| code.to_string()),
                duration: if ran { human_duration(step.duration) } else { "-".into() },
                reason: step
                    .reason
                    .clone()
                    .or_else(|| run.step(&workflow.name, &step.name).and_then(|view| view.reason.clone()))
                    .unwrap_or_default(),
            });
        }
    }
    let label_width = rows.iter().map(|row| row.label.chars().count()).max().unwrap_or(0).max("STEP".len());
    let exit_width = rows.iter().map(|row| row.exit.len()).max().unwrap_or(0).max("EXIT".len());
    let duration_width = rows.iter().map(|row| row.duration.len()).max().unwrap_or(0).max("TIME".len());
    let status_width = "skipped".len();

    let mut table = String::new();
    let header = format!("{:<label_width$}  {:<status_width$}  {:>exit_width$}  {:>duration_width$}", "STEP", "STATUS", "EXIT", "TIME");
    push_painted(&mut table, colored, BOLD, &header);
    table.push('\n');
    for row in &rows {
        let mut line = format!("{:<label_width$}  ", row.label);
        push_painted(&mut line, colored, status_colour(row.status), &format!("{:<status_width$}", status_word(row.status)));
        line.push_str(&format!("  {:>exit_width$}  {:>duration_width$}", row.exit, row.duration));
        if !row.reason.is_empty() {
            line.push_str("  ");
            line.push_str(&row.reason);
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    table.push('\n');
    let totals = totals_line(summary);
    let totals_colour = if summary.status.is_failure() { RED } else { BOLD };
    push_painted(&mut table, colored, totals_colour, &totals);
    table.push('\n');
    table
}

/// `2 workflows, 9 steps: 7 passed, 1 failed, 1 skipped in 12.4s`; counts of zero are left out, except passed.
fn totals_line(summary: &RunSummary) -> String {
    let steps: Vec<Status> = summary.workflows.iter().flat_map(|workflow| workflow.steps.iter().map(|step| step.status)).collect();
    let count = |status: Status| steps.iter().filter(|step| **step == status).count();
    let mut counts = vec![format!("{} passed", count(Status::Success))];
    for (status, word) in
        [(Status::Failure, "failed"), (Status::Skipped, "skipped"), (Status::Killed, "killed"), (Status::Error, "could not run")]
    {
        let number = count(status);
        if number > 0 {
            counts.push(format!("{number} {word}"));
        }
    }
    let mut line = format!(
        "{}, {}: {} in {}",
        plural(summary.workflows.len(), "workflow"),
        plural(steps.len(), "step"),
        counts.join(", "),
        human_duration(summary.duration)
    );
    // A run can fail with no step failing (a workflow that could not be set up), or be cancelled.
    match summary.status {
        Status::Killed => line.push_str(" (cancelled)"),
        Status::Failure | Status::Error if !steps.iter().any(|status| status.is_failure()) => line.push_str(" (failed)"),
        _ => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use indicatif::{ProgressDrawTarget, TermLike};
    use runtime::run::{RunSummary, StepSummary, WorkflowSummary};
    use runtime::{Event, EventSink, OutputStream, Status};

    use super::*;

    /// A writer the test can read back while the output still holds it.
    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

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
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn run_started(workflows: &[&str]) -> Event {
        Event::RunStarted { run: "r1".into(), workflows: workflows.iter().map(ToString::to_string).collect() }
    }

    fn workflow_started(workflow: &str, steps: &[&str]) -> Event {
        Event::WorkflowStarted { workflow: workflow.into(), steps: steps.iter().map(ToString::to_string).collect() }
    }

    fn step_started(workflow: &str, step: &str) -> Event {
        Event::StepStarted { workflow: workflow.into(), step: step.into() }
    }

    fn log(workflow: &str, step: &str, line: &str) -> Event {
        Event::Log { workflow: workflow.into(), step: step.into(), stream: OutputStream::Stdout, line: line.into() }
    }

    fn step_finished(workflow: &str, step: &str, status: Status, exit_code: Option<i64>, millis: u64, reason: Option<&str>) -> Event {
        Event::StepFinished {
            workflow: workflow.into(),
            step: step.into(),
            status,
            exit_code,
            duration: Duration::from_millis(millis),
            reason: reason.map(str::to_owned),
        }
    }

    fn workflow_finished(workflow: &str, status: Status, millis: u64) -> Event {
        Event::WorkflowFinished { workflow: workflow.into(), status, duration: Duration::from_millis(millis), reason: None }
    }

    /// One workflow: a pass, a failure with output, a skip.
    fn one_workflow_events() -> Vec<Event> {
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

    fn one_workflow_summary() -> RunSummary {
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
    fn render(mode: OutputMode, events: Vec<Event>, summary: Option<&RunSummary>) -> String {
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

    #[test]
    fn plain_output_of_one_workflow_labels_lines_by_step() {
        let text = render(OutputMode::Plain, one_workflow_events(), None);
        insta::assert_snapshot!(text, @r"
        ▶ run r1: build
        ▶ workflow build started (3 steps)
        ▶ clone started
        [clone] Cloning into 'repo'...
        ✓ clone passed in 1.2s
        ▶ test started
        [test] running 3 tests
        [test] test parse ... FAILED
        ✗ test failed (exit 3) in 0.4s
        – deploy skipped: branch is not main
        ✗ workflow build failed in 1.7s
        ");
        assert!(!text.contains('\x1b'), "plain output has no escape codes");
    }

    #[test]
    fn plain_output_of_several_workflows_labels_lines_by_workflow_and_step() {
        let events = vec![
            run_started(&["build", "docs"]),
            workflow_started("build", &["test"]),
            workflow_started("docs", &["render"]),
            step_started("build", "test"),
            step_started("docs", "render"),
            log("docs", "render", "12 pages"),
            log("build", "test", "ok"),
            step_finished("docs", "render", Status::Killed, Some(137), 3000, Some("cancelled")),
            step_finished("build", "test", Status::Error, None, 0, Some("image `rust:9` is not on this machine")),
        ];
        insta::assert_snapshot!(render(OutputMode::Plain, events, None), @r"
        ▶ run r1: build, docs
        ▶ workflow build started (1 step)
        ▶ workflow docs started (1 step)
        ▶ build/test started
        ▶ docs/render started
        [docs/render] 12 pages
        [build/test] ok
        ■ docs/render killed after 3.0s: cancelled
        ! build/test error: image `rust:9` is not on this machine
        ");
    }

    #[test]
    fn summary_table_lists_every_step_and_totals() {
        let text = render(OutputMode::Plain, one_workflow_events(), Some(&one_workflow_summary()));
        let summary = &text[text.find("STEP").unwrap()..];
        insta::assert_snapshot!(summary, @r"
        STEP      STATUS   EXIT  TIME
        build     failed         1.7s
          clone   passed      0  1.2s
          test    failed      3  0.4s
          deploy  skipped     -     -  branch is not main

        1 workflow, 3 steps: 1 passed, 1 failed, 1 skipped in 1.7s
        ");
    }

    #[test]
    fn summary_totals_name_a_cancelled_run_and_long_durations() {
        let summary = RunSummary {
            status: Status::Killed,
            duration: Duration::from_secs(3725),
            workflows: vec![
                WorkflowSummary {
                    name: "a".into(),
                    status: Status::Killed,
                    duration: Duration::from_secs(125),
                    reason: None,
                    steps: vec![StepSummary {
                        name: "x".into(),
                        status: Status::Killed,
                        exit_code: None,
                        duration: Duration::from_secs(125),
                        reason: Some("cancelled".into()),
                    }],
                },
                WorkflowSummary {
                    name: "b".into(),
                    status: Status::Skipped,
                    duration: Duration::ZERO,
                    reason: Some("branch is not main".into()),
                    steps: vec![],
                },
            ],
        };
        assert_eq!(totals_line(&summary), "2 workflows, 1 step: 0 passed, 1 killed in 1h 02m (cancelled)");
        let table = render_summary(&summary, &RunModel::default(), false);
        insta::assert_snapshot!(table, @r"
        STEP  STATUS   EXIT    TIME
        a     killed         2m 05s
          x   killed      -  2m 05s  cancelled
        b     skipped             -  branch is not main

        2 workflows, 1 step: 0 passed, 1 killed in 1h 02m (cancelled)
        ");
    }

    #[test]
    fn json_output_is_one_event_per_line_and_nothing_else() {
        let text = render(OutputMode::Json, one_workflow_events(), Some(&one_workflow_summary()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), one_workflow_events().len());
        for (line, event) in lines.iter().zip(one_workflow_events()) {
            let mut parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            let at = parsed.as_object_mut().unwrap().remove("at_ms").expect("every event has a time");
            assert!(at.as_u64().unwrap() > 1_700_000_000_000, "{line}");
            assert_eq!(parsed, serde_json::to_value(&event).unwrap());
        }
        assert!(lines[4].contains(r#""event":"step_finished""#) && lines[4].contains(r#""duration_ms":1200"#), "{}", lines[4]);
    }

    #[test]
    fn step_colours_are_stable_and_differ_between_neighbours() {
        let colours = |steps: &[&str]| -> Vec<&'static str> {
            let mut model = RunModel::default();
            model.observe(&workflow_started("build", steps));
            steps.iter().map(|step| model.log_prefix("build", step).0).collect()
        };
        let steps = ["clone", "lint", "test", "build", "deploy"];
        let first = colours(&steps);
        assert_eq!(first, colours(&steps), "the same pipeline gets the same colours");
        for pair in first.windows(2) {
            assert_ne!(pair[0], pair[1], "neighbouring steps differ: {first:?}");
        }
        assert!(first.iter().all(|colour| *colour != GREEN && *colour != RED));
        // A step that was never declared is coloured by its name, the same way every time.
        assert_eq!(step_colour("build", None, "extra"), step_colour("build", None, "extra"));
    }

    #[test]
    fn mode_follows_terminal_ci_and_term() {
        let check = |json: bool, terminal: bool, variables: &[(&str, &str)], expected: OutputMode| {
            let lookup = |name: &str| variables.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
            assert_eq!(choose_mode(json, terminal, lookup), expected, "json={json} terminal={terminal} {variables:?}");
        };
        let xterm = ("TERM", "xterm-256color");
        check(false, true, &[xterm], OutputMode::Live);
        check(false, true, &[xterm, ("NO_COLOR", "1")], OutputMode::Live);
        check(false, false, &[xterm], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "true")], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "woodpecker")], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "false")], OutputMode::Live);
        check(false, true, &[("TERM", "dumb")], OutputMode::Plain);
        check(true, true, &[xterm], OutputMode::Json);
        check(true, false, &[("CI", "true")], OutputMode::Json);
    }

    /// A reader that went away must not panic the run, and the run must not keep formatting for it.
    #[test]
    fn closed_pipe_is_ignored() {
        struct ClosedPipe;
        impl Write for ClosedPipe {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        for mode in [OutputMode::Plain, OutputMode::Json] {
            let output = ExecOutput::with_writer(mode, Box::new(ClosedPipe));
            for event in one_workflow_events() {
                output.emit(event);
            }
            output.note("a note");
            output.finish(&one_workflow_summary());
        }
    }

    /// A log line followed by silence still shows up, through the ticker, without waiting for the step to end.
    #[test]
    fn buffered_log_line_appears_when_output_goes_quiet() {
        let buffer = SharedBuffer::default();
        let output = ExecOutput::with_writer(OutputMode::Plain, Box::new(buffer.clone()));
        output.emit(step_started("build", "test"));
        output.emit(log("build", "test", "compiling"));
        assert!(!buffer.text().contains("compiling"), "log lines are buffered");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !buffer.text().contains("[test] compiling") {
            assert!(Instant::now() < deadline, "the line did not appear: {:?}", buffer.text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn notes_go_to_stdout_in_plain_mode() {
        let buffer = SharedBuffer::default();
        let output = ExecOutput::with_writer(OutputMode::Plain, Box::new(buffer.clone()));
        output.note("images are ignored by the local backend");
        assert_eq!(buffer.text(), "images are ignored by the local backend\n");
    }

    #[test]
    fn container_lines_cannot_move_the_live_view() {
        let check = |line: &str, expected: &str| {
            let mut text = String::new();
            push_terminal_safe(&mut text, line);
            assert_eq!(text, expected, "for {line:?}");
        };
        check("plain text", "plain text");
        check("\x1b[32mok\x1b[0m", "\x1b[32mok\x1b[0m\x1b[0m");
        check("50%\r100%", "100%");
        check("done\r", "done");
        check("\x1b[2J\x1b[1Aup", "up");
        check("\x1b]0;title\x07after", "after");
        check("a\tb", "a       b");
        check("bell\x07", "bell");
    }

    /// A terminal that records what is written to it, for the live view.
    #[derive(Debug, Clone, Default)]
    struct RecordingTerminal(Arc<Mutex<String>>);

    impl TermLike for RecordingTerminal {
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
            let mut screen = self.0.lock().unwrap();
            screen.push_str(text);
            screen.push('\n');
            Ok(())
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            let mut screen = self.0.lock().unwrap();
            screen.push_str(text.trim_end_matches(' '));
            if text.chars().all(|character| character == ' ') && !text.is_empty() {
                // The filler indicatif writes after each line stands for its line break.
                screen.push('\n');
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

    /// A terminal that throws everything away, to measure the live view's own cost.
    #[derive(Debug)]
    struct Discard;
    impl TermLike for Discard {
        fn width(&self) -> u16 {
            120
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
        fn write_line(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn write_str(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Regression: a flood of log lines past `LIVE_BATCH_LIMIT` made the emitting task print the
    /// batch while still holding the state lock, and the live view deadlocked.
    #[test]
    fn live_view_survives_a_flood_of_log_lines() {
        let output = ExecOutput::live(ProgressDrawTarget::term_like(Box::new(Discard)), Box::new(std::io::sink()), true, Box::new(|| 40));
        output.emit(workflow_started("build", &["test"]));
        let line = "x".repeat(100);
        for _ in 0..2 * LIVE_BATCH_LIMIT / 100 {
            output.emit(log("build", "test", &line));
        }
        output.finish(&one_workflow_summary());
    }

    #[test]
    fn live_view_shows_steps_and_prefixed_log_lines_then_the_summary() {
        let terminal = RecordingTerminal::default();
        let after = SharedBuffer::default();
        let output =
            ExecOutput::live(ProgressDrawTarget::term_like(Box::new(terminal.clone())), Box::new(after.clone()), false, Box::new(|| 40));
        output.note("images are ignored by the local backend");
        for event in one_workflow_events() {
            output.emit(event);
        }
        output.finish(&one_workflow_summary());
        let screen = terminal.0.lock().unwrap().clone();
        assert!(screen.contains("images are ignored by the local backend"), "{screen}");
        assert!(screen.contains("clone  │ Cloning into 'repo'..."), "{screen}");
        assert!(screen.contains("test   │ test parse ... FAILED"), "{screen}");
        assert!(screen.contains("✗ test    failed (exit 3) in 0.4s"), "{screen}");
        assert!(screen.contains("– deploy  skipped: branch is not main"), "{screen}");
        assert!(after.text().contains("1 workflow, 3 steps: 1 passed, 1 failed, 1 skipped in 1.7s"), "{}", after.text());
        // Log lines come before the bars that were drawn after them, never inside them.
        assert!(screen.find("Cloning").unwrap() < screen.rfind("✓ clone").unwrap());
    }

    #[test]
    fn crowded_live_view_folds_finished_workflows() {
        let terminal = RecordingTerminal::default();
        let output = ExecOutput::live(
            ProgressDrawTarget::term_like(Box::new(terminal.clone())),
            Box::new(SharedBuffer::default()),
            false,
            Box::new(|| 9),
        );
        let steps = ["a", "b", "c", "d"];
        output.emit(workflow_started("first", &steps));
        for step in steps {
            output.emit(step_finished("first", step, Status::Success, Some(0), 100, None));
        }
        output.emit(workflow_finished("first", Status::Success, 500));
        output.emit(workflow_started("second", &steps));
        let state = lock(&output.state);
        assert!(state.run.workflows[0].collapsed);
        assert!(state.run.workflows[0].steps.iter().all(|step| step.line.is_none()), "folded steps leave the view");
        assert!(!state.run.workflows[1].collapsed);
        let header = state.run.workflows[0].header_text(false, Instant::now());
        assert_eq!(header, "first  ✓ passed in 0.5s · 4 steps");
    }

    /// Measures: `cargo test --release -p cli --bin gantry exec_output::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, run by hand"]
    fn throughput_of_plain_output_into_a_pipe() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let drain = std::thread::spawn(move || {
            let mut total = 0;
            let mut chunk = vec![0; 1 << 16];
            while let Ok(read @ 1..) = reader.read(&mut chunk) {
                total += read;
            }
            total
        });
        let output = ExecOutput::with_writer(OutputMode::Plain, Box::new(writer));
        output.emit(workflow_started("build", &["test"]));
        let line = "x".repeat(80);
        let started = Instant::now();
        for _ in 0..1_000_000 {
            output.emit(log("build", "test", &line));
        }
        output.finish(&one_workflow_summary());
        let elapsed = started.elapsed();
        drop(output);
        let bytes = drain.join().unwrap();
        eprintln!("plain: 1,000,000 log events, {} MiB, in {elapsed:?}", bytes >> 20);
    }

    /// The live view's cost of its own, 100,000 log lines drawn on a terminal that discards them.
    #[test]
    #[ignore = "measurement, run by hand"]
    fn throughput_of_live_view() {
        let output = ExecOutput::live(ProgressDrawTarget::term_like(Box::new(Discard)), Box::new(std::io::sink()), true, Box::new(|| 40));
        output.emit(run_started(&["build", "test"]));
        output.emit(workflow_started("build", &["clone", "compile", "lint"]));
        output.emit(workflow_started("test", &["unit", "e2e"]));
        for step in ["compile", "lint"] {
            output.emit(step_started("build", step));
        }
        let line = "x".repeat(80);
        let started = Instant::now();
        for index in 0..100_000 {
            let step = if index % 2 == 0 { "compile" } else { "lint" };
            output.emit(log("build", step, &line));
        }
        output.finish(&one_workflow_summary());
        eprintln!("live: 100,000 log events in {:?}", started.elapsed());
    }
}
