//! Gantry's pipeline language: Woodpecker and Drone YAML → spanned model → diagnostics → `Plan`.
//!
//! This crate does no IO: callers read files and pass their text. The flow is
//! `read_file` (YAML and shape, per file) → `lint_workflows` (the whole pipeline) →
//! `compile` (one trigger context). `lint_files` and `plan_files` run the whole flow.

pub mod compile;
pub mod condition;
pub mod container;
pub mod context;
pub mod dag;
pub mod diagnostic;
pub mod discovery;
pub mod docs;
pub mod environment;
pub mod evaluate;
pub mod graph;
pub mod image_build;
pub mod lint;
pub mod model;
pub mod plan;
pub mod read;
pub mod substitution;
pub mod trust;
pub mod yaml;

pub use compile::{CompileOptions, compile, compile_with};
pub use container::ContainerOptions;
pub use context::Context;
pub use diagnostic::{Diagnostic, Severity};
pub use model::{Dialect, SourceFile, WorkflowSpec};
pub use plan::Plan;
pub use read::{ReadFile, read_file};

/// Reads every file and lints them together: the diagnostics of a whole pipeline.
pub fn lint_files(files: &[SourceFile]) -> Vec<Diagnostic> {
    read_and_lint(files).1
}

/// Reads, lints and compiles the files of one pipeline for a context. The plan's diagnostics
/// hold everything found on the way.
pub fn plan_files(files: &[SourceFile], context: &Context, options: CompileOptions) -> Plan {
    let (workflows, mut diagnostics) = read_and_lint(files);
    let mut plan = compile_with(&workflows, context, options);
    diagnostics.append(&mut plan.diagnostics);
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|diagnostic| seen.insert(format!("{diagnostic:?}")));
    diagnostic::sort(&mut diagnostics);
    plan.diagnostics = diagnostics;
    plan
}

/// The workflows of all files and the diagnostics of reading and linting them. Sibling files
/// (see [`SourceFile::sibling`]) only name workflows: dependencies on them are left out with a
/// warning that says how to plan them too.
pub fn read_and_lint(files: &[SourceFile]) -> (Vec<WorkflowSpec>, Vec<Diagnostic>) {
    let mut workflows = Vec::new();
    let mut diagnostics = Vec::new();
    let mut siblings: Vec<(String, String)> = Vec::new();
    for file in files {
        let read = read_file(file);
        if file.sibling {
            siblings.extend(read.workflows.into_iter().map(|workflow| (workflow.name, workflow.file)));
            continue;
        }
        workflows.extend(read.workflows);
        diagnostics.extend(read.diagnostics);
    }
    siblings.retain(|(name, _)| !workflows.iter().any(|workflow| &workflow.name == name));
    for workflow in &mut workflows {
        let file = workflow.file.clone();
        let name = workflow.name.clone();
        workflow.depends_on.retain(|dependency| {
            let Some((_, sibling_file)) = siblings.iter().find(|(sibling, _)| *sibling == dependency.name) else { return true };
            let folder = sibling_file.rsplit_once('/').map_or(".", |(folder, _)| folder);
            diagnostics.push(
                Diagnostic::warning(
                    diagnostic::code::UNKNOWN_DEPENDENCY,
                    &file,
                    dependency.span,
                    format!(
                        "workflow `{name}` depends on `{}` of `{sibling_file}`, which is not loaded: it is planned without that dependency",
                        dependency.name
                    ),
                )
                .with_hint(format!("plan the whole folder (`{folder}`) to include `{}`", dependency.name)),
            );
            false
        });
    }
    diagnostics.extend(lint::lint_workflows(&workflows));
    diagnostic::sort(&mut diagnostics);
    (workflows, diagnostics)
}
