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

/// The workflows of all files and the diagnostics of reading and linting them.
pub fn read_and_lint(files: &[SourceFile]) -> (Vec<WorkflowSpec>, Vec<Diagnostic>) {
    let mut workflows = Vec::new();
    let mut diagnostics = Vec::new();
    for file in files {
        let read = read_file(file);
        workflows.extend(read.workflows);
        diagnostics.extend(read.diagnostics);
    }
    diagnostics.extend(lint::lint_workflows(&workflows));
    diagnostic::sort(&mut diagnostics);
    (workflows, diagnostics)
}
