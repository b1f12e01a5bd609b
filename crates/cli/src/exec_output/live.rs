//! The live view: a line per workflow and step, redrawn in place, with log lines scrolling above it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtime::{Event, Status};

use super::model::{Phase, RunModel, StepView, WorkflowView};
use super::text::{BOLD, DIM, human_duration, outcome_text, plural, push_painted, status_colour, status_marker, status_word, step_colour};
use super::{ExecOutput, OutputMode, OutputState, lock, start_ticker};

/// How often the live view prints waiting log lines and redraws elapsed times (indicatif draws at most 20 times a second).
const LIVE_TICK_INTERVAL: Duration = Duration::from_millis(50);
/// Waiting log lines of the live view past this size are printed by the task that adds them, so
/// a flood of output holds a bounded amount of memory and slows its producer instead.
const LIVE_BATCH_LIMIT: usize = 256 * 1024;
const SPINNER_FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub(super) struct LiveView {
    multi: MultiProgress,
    /// Held while printing waiting log lines, so that two batches never swap places.
    print_order: Mutex<()>,
    terminal_rows: Box<dyn Fn() -> usize + Send + Sync>,
}

impl ExecOutput {
    /// The live view drawn on `target`; `writer` gets what is printed after it stops (the summary).
    pub(super) fn live(
        target: ProgressDrawTarget,
        writer: Box<dyn std::io::Write + Send>,
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

    /// Prints what still waits and takes the view off the terminal, so that the summary goes below it.
    pub(super) fn stop_live_view(&self, live: &LiveView) {
        self.print_pending_log_lines(live);
        let _ = live.multi.clear();
        // Hidden from now on, so that nothing redraws the view under the summary.
        live.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    /// A note goes above the view, after the log lines that were waiting before it.
    pub(super) fn note_above_live_view(&self, live: &LiveView, text: &str) {
        let _print_order = lock(&live.print_order);
        let waiting = std::mem::take(&mut lock(&self.state).pending_log_lines);
        let mut message = waiting;
        message.push_str(text);
        let _ = live.multi.println(message);
    }

    /// Waiting log lines are printed, and the lines of what runs show their new elapsed times.
    pub(super) fn tick_live_view(&self, live: &LiveView) {
        self.print_pending_log_lines(live);
        let now = Instant::now();
        let updates = lock(&self.state).run.running_lines(self.colored, now);
        for (bar, text) in updates {
            bar.set_message(text);
        }
    }

    pub(super) fn print_pending_log_lines(&self, live: &LiveView) {
        let _print_order = lock(&live.print_order);
        let mut waiting = std::mem::take(&mut lock(&self.state).pending_log_lines);
        if waiting.ends_with('\n') {
            waiting.pop();
            let _ = live.multi.println(waiting);
        }
    }

    pub(super) fn emit_live(&self, live: &LiveView, event: Event) {
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
            Event::RunStarted { .. } | Event::RunFinished { .. } | Event::Log { .. } | Event::ImagePublished { .. } => {}
        }
    }
}

impl RunModel {
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

fn spinner_frame(elapsed: Duration) -> &'static str {
    SPINNER_FRAMES[(elapsed.as_millis() / 80) as usize % SPINNER_FRAMES.len()]
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::{Duration, Instant};

    use indicatif::ProgressDrawTarget;
    use runtime::{EventSink, Status};

    use super::{LIVE_BATCH_LIMIT, push_terminal_safe};
    use crate::exec_output::fixtures::{
        SharedBuffer, TestTerminal, log, one_workflow_events, one_workflow_summary, run_started, step_finished, step_started,
        workflow_finished, workflow_started,
    };
    use crate::exec_output::model::RunModel;
    use crate::exec_output::text::{GREEN, RED, step_colour};
    use crate::exec_output::{ExecOutput, lock};

    /// The longest a flood of a few thousand lines may take on a terminal that discards them;
    /// it takes milliseconds, so reaching this means the view is stuck.
    const FLOOD_CEILING: Duration = Duration::from_secs(30);

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

    /// Regression: a flood of log lines past `LIVE_BATCH_LIMIT` made the emitting task print the
    /// batch while still holding the state lock, and the live view deadlocked. The flood runs on
    /// a thread of its own, so that a deadlock fails this test at a ceiling instead of hanging it.
    #[test]
    fn live_view_survives_a_flood_of_log_lines() {
        let (finished, flood_done) = std::sync::mpsc::channel();
        let flood = std::thread::spawn(move || {
            let terminal = ProgressDrawTarget::term_like(Box::new(TestTerminal::discarding()));
            let output = ExecOutput::live(terminal, Box::new(std::io::sink()), true, Box::new(|| 40));
            output.emit(workflow_started("build", &["test"]));
            let line = "x".repeat(100);
            for _ in 0..2 * LIVE_BATCH_LIMIT / 100 {
                output.emit(log("build", "test", &line));
            }
            output.finish(&one_workflow_summary());
            let _ = finished.send(());
        });
        match flood_done.recv_timeout(FLOOD_CEILING) {
            Ok(()) => flood.join().unwrap(),
            Err(RecvTimeoutError::Timeout) => panic!("the live view is stuck: a flood of log lines did not end within {FLOOD_CEILING:?}"),
            // The thread panicked before it could say it was done: its panic is the failure.
            Err(RecvTimeoutError::Disconnected) => std::panic::resume_unwind(flood.join().unwrap_err()),
        }
    }

    #[test]
    fn live_view_shows_steps_and_prefixed_log_lines_then_the_summary() {
        let terminal = TestTerminal::recording();
        let after = SharedBuffer::default();
        let output =
            ExecOutput::live(ProgressDrawTarget::term_like(Box::new(terminal.clone())), Box::new(after.clone()), false, Box::new(|| 40));
        output.note("images are ignored by the local backend");
        for event in one_workflow_events() {
            output.emit(event);
        }
        output.finish(&one_workflow_summary());
        let screen = terminal.screen();
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
        let terminal = TestTerminal::recording();
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

    /// The live view's cost of its own, 100,000 log lines drawn on a terminal that discards them.
    /// Measures: `cargo test --release -p cli --bin gantry throughput_of_live_view -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, run by hand"]
    fn throughput_of_live_view() {
        let terminal = ProgressDrawTarget::term_like(Box::new(TestTerminal::discarding()));
        let output = ExecOutput::live(terminal, Box::new(std::io::sink()), true, Box::new(|| 40));
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
