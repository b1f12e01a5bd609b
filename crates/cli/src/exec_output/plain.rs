//! Plain output: one line per log line (`[step] text`) or state change, no colours, for CI logs, pipes and files.

use runtime::Event;

use super::model::RunModel;
use super::text::{outcome_text, plural, status_marker};
use super::{ExecOutput, lock};

impl ExecOutput {
    /// Log lines are only buffered; a state change is written and flushed at once.
    pub(super) fn emit_plain(&self, event: Event) {
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
        Event::ImagePublished { workflow, step, image } => {
            Some(format!("▲ {} published {}", run.label(workflow, step), super::model::published_line(image)))
        }
        Event::Log { .. } | Event::RunFinished { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use runtime::{EventSink, Status};

    use crate::exec_output::fixtures::{
        SharedBuffer, log, one_workflow_events, one_workflow_summary, render, run_started, step_finished, step_started, workflow_started,
    };
    use crate::exec_output::{ExecOutput, OutputMode};

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

    /// Measures: `cargo test --release -p cli --bin gantry throughput_of_plain_output -- --ignored --nocapture`.
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
}
