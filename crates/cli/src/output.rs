//! Human and JSON output of diagnostics and plans.

use std::fmt::Write as _;

use pipeline::plan::{Plan, RunOn, StepPlan};
use pipeline::trust::{self, TrustKind};
use pipeline::{Context, Diagnostic, Severity, SourceFile};
use serde::Serialize;

/// Whether to colour output written to this stream: a terminal, and `NO_COLOR` not set.
pub(crate) fn use_color(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::env::var("TERM").map_or(true, |term| term != "dumb")
}

/// Diagnostics rustc-style with the source line and a caret; with `summary`, a closing count.
pub(crate) fn render_diagnostics(diagnostics: &[Diagnostic], files: &[SourceFile], summary: bool, colored: bool) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let source = files.iter().find(|file| file.path == diagnostic.file).map(|file| file.text.as_str());
        out.push_str(&diagnostic.render_with(source, colored));
        out.push('\n');
    }
    if summary {
        let [errors, warnings, notes] = counts(diagnostics);
        let files_word = if files.len() == 1 { "file" } else { "files" };
        let notes = if notes > 0 { format!(" ({} to review)", plural(notes, "note")) } else { String::new() };
        if errors + warnings == 0 {
            let _ = writeln!(out, "{} {files_word} checked: no problems{notes}", files.len());
        } else {
            let _ =
                writeln!(out, "{} {files_word} checked: {}, {}{notes}", files.len(), plural(errors, "error"), plural(warnings, "warning"));
        }
    }
    out
}

/// Errors, warnings and notes among `diagnostics`.
fn counts(diagnostics: &[Diagnostic]) -> [usize; 3] {
    let count = |severity: Severity| diagnostics.iter().filter(|diagnostic| diagnostic.severity == severity).count();
    [count(Severity::Error), count(Severity::Warning), count(Severity::Note)]
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}

#[derive(Serialize)]
pub(crate) struct LintReport<'a> {
    files: Vec<&'a str>,
    errors: usize,
    warnings: usize,
    /// Not problems: what a reviewer should see first (steps that need trust).
    notes: usize,
    diagnostics: &'a [Diagnostic],
}

pub(crate) fn lint_json<'a>(diagnostics: &'a [Diagnostic], files: &'a [SourceFile]) -> LintReport<'a> {
    let [errors, warnings, notes] = counts(diagnostics);
    LintReport { files: files.iter().map(|file| file.path.as_str()).collect(), errors, warnings, notes, diagnostics }
}

/// A plan as a readable outline: workflows, then each step with what it waits for.
pub(crate) fn render_plan(plan: &Plan, context: &Context) -> String {
    let mut out = String::new();
    let subject = match &context.tag {
        Some(tag) if context.event == "tag" => format!("tag {tag}"),
        _ => format!("branch {}", context.branch),
    };
    let _ = writeln!(out, "plan for {} on {} of {}", context.event, subject, context.repo);
    for workflow in &plan.workflows {
        let _ = writeln!(out);
        let status = if workflow.skipped {
            "skipped"
        } else if workflow.runnable {
            "runs"
        } else {
            "cannot run here"
        };
        let _ = write!(out, "workflow {} ({}) {status}", workflow.name, workflow.file);
        if let Some(reason) = &workflow.skip_reason {
            let _ = write!(out, ": {reason}");
        }
        let _ = writeln!(out);
        if !workflow.depends_on.is_empty() {
            let _ = writeln!(out, "  after: {}", workflow.depends_on.join(", "));
        }
        for service in &workflow.services {
            write_step(&mut out, service);
        }
        for step in &workflow.steps {
            write_step(&mut out, step);
        }
    }
    let running: usize = plan.workflows.iter().filter(|w| !w.skipped).map(|w| w.steps.iter().filter(|s| !s.skipped).count()).sum();
    let _ = writeln!(
        out,
        "\n{} of {} workflows run, {running} steps",
        plan.workflows.iter().filter(|w| !w.skipped).count(),
        plan.workflows.len()
    );
    out
}

fn write_step(out: &mut String, step: &StepPlan) {
    let marker = if step.skipped { "-" } else { "+" };
    let image = match &step.build {
        // What a build step makes is what a reviewer needs to see: every name it pushes.
        Some(build) => {
            let verb = if build.push { "push" } else { "build only" };
            let mut names = build.references();
            if let Some(file) = &build.tags_file {
                names.push(format!("(tags from {}{})", file.path, if file.required { "" } else { " if present" }));
            }
            format!("{verb} {}", names.join(" "))
        }
        None => step.image.as_deref().unwrap_or("(built-in)").to_owned(),
    };
    let _ = write!(out, "  {marker} {:<24} {:<9} {image}", step.name, step.kind.as_str());
    if step.skipped {
        let _ = write!(out, "  skipped: {}", step.skip_reason.as_deref().unwrap_or("condition is false"));
    } else {
        if !step.depends_on.is_empty() {
            let _ = write!(out, "  after {}", step.depends_on.join(", "));
        }
        if step.runs_on == [RunOn::Failure] {
            let _ = write!(out, "  (only on failure)");
        } else if step.runs_on.len() == 2 && step.kind != pipeline::plan::StepKind::Service {
            let _ = write!(out, "  (also on failure)");
        }
        if step.detach && step.kind != pipeline::plan::StepKind::Service {
            let _ = write!(out, "  (detached)");
        }
    }
    // Shown for skipped steps too: a reviewer reads the plan before it runs on another event.
    let mut kinds: Vec<TrustKind> = trust::step_needs(step).into_iter().map(|need| need.kind).collect();
    kinds.sort();
    kinds.dedup();
    if !kinds.is_empty() {
        let kinds: Vec<&str> = kinds.into_iter().map(TrustKind::as_str).collect();
        let _ = write!(out, "  (needs trust: {})", kinds.join(", "));
    }
    let _ = writeln!(out);
}
