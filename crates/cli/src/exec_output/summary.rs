//! The summary printed after a run (plain and live): a table of workflows and steps, then one line of totals.

use runtime::Status;
use runtime::run::RunSummary;

use super::model::RunModel;
use super::text::{BOLD, RED, human_duration, plural, push_painted, status_colour, status_word};

/// The table of workflows and steps with status, exit code and duration, then one line of totals.
/// Reasons (why skipped, what went wrong) come from the summary, or else from the events.
pub(super) fn render_summary(summary: &RunSummary, run: &RunModel, colored: bool) -> String {
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
    if !run.published.is_empty() {
        for image in &run.published {
            table.push_str(&format!("published {image}\n"));
        }
        table.push('\n');
    }
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
    use std::time::Duration;

    use runtime::Status;
    use runtime::run::{RunSummary, StepSummary, WorkflowSummary};

    use super::{render_summary, totals_line};
    use crate::exec_output::OutputMode;
    use crate::exec_output::fixtures::{one_workflow_events, one_workflow_summary, render};
    use crate::exec_output::model::RunModel;

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
}
