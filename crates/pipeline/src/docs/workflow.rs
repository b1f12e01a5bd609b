//! One workflow: when it runs, its settings, matrix and step graph.

use crate::compile::matrix_rows;
use crate::model::{CloneSpec, FailurePolicy, VolumeKind, WorkflowSpec};
use crate::plan::{RunOn, StepKind};
use std::collections::BTreeMap;
use std::fmt::Write;

use super::collect::*;
use super::conditions::*;
use super::steps::*;
use super::text::*;
use super::*;

pub(super) fn render_workflow(out: &mut String, doc: &mut WorkflowDoc<'_>, several: bool, slugs: &mut Slugger) {
    let spec = doc.spec;
    doc.anchor = slugs.slug(&format!("Workflow {}", spec.name));
    out!(out, "## Workflow {}", code(&spec.name));
    out!(out);
    let mut facts = vec![code(&spec.file), dialect_name(spec.dialect).to_owned()];
    if let Some(runner) = &spec.runner_type {
        facts.push(format!("{} runner", code(&runner.name)));
    }
    facts.push(count(spec.steps.len(), "step", "steps"));
    if !spec.services.is_empty() {
        facts.push(count(spec.services.len(), "service", "services"));
    }
    out!(out, "{}", facts.join(" · "));
    out!(out);

    out!(out, "**When it runs**");
    out!(out);
    for line in when_lines(doc, several) {
        out!(out, "- {line}");
    }
    out!(out);

    let settings = setting_lines(doc);
    if !settings.is_empty() {
        out!(out, "**Setup**");
        out!(out);
        for line in settings {
            out!(out, "- {line}");
        }
        out!(out);
    }

    if let Some(matrix) = &spec.matrix {
        render_matrix(out, spec, matrix);
    }

    out!(out, "**Steps**");
    out!(out);
    render_step_graph(out, doc);
    for step in doc.steps.iter_mut().chain(doc.services.iter_mut()).filter(|step| has_details(step)) {
        step.anchor = slugs.slug(&step.name);
    }
    render_step_table(out, doc);
    if !doc.services.is_empty() {
        render_service_table(out, doc);
    }
    for step in doc.steps.iter().chain(doc.services.iter()).filter(|step| has_details(step)) {
        render_step_details(out, step);
    }
}

/// The bullets of "When it runs".
pub(super) fn when_lines(doc: &WorkflowDoc<'_>, several: bool) -> Vec<String> {
    let spec = doc.spec;
    let mut lines = Vec::new();
    let sets: Vec<String> = spec.when.alternatives.iter().map(|set| describe_set(set, Scope::Workflow, None)).collect();
    match sets.as_slice() {
        [] => lines.push("On every event (no `when` condition).".to_owned()),
        [only] => lines.push(format!("{}.", capitalize(only))),
        _ => {
            let mut line = "In any of these cases:".to_owned();
            for set in &sets {
                let _ = write!(line, "\n  - {}", capitalize(set));
            }
            lines.push(line);
        }
    }
    if !spec.depends_on.is_empty() {
        let required: Vec<String> =
            spec.depends_on.iter().filter(|dependency| !dependency.optional).map(|dependency| code(&dependency.name)).collect();
        let optional: Vec<String> =
            spec.depends_on.iter().filter(|dependency| dependency.optional).map(|dependency| code(&dependency.name)).collect();
        let statuses = statuses_of(&spec.when);
        if !required.is_empty() {
            let (noun, subject) = if required.len() == 1 { ("workflow", "it") } else { ("workflows", "they") };
            let outcome = if statuses == [RunOn::Failure] {
                if required.len() == 1 { "failed".to_owned() } else { "finished and one of them failed".to_owned() }
            } else if statuses.len() == 2 {
                format!("finished, whether or not {subject} succeeded")
            } else {
                "succeeded".to_owned()
            };
            lines.push(format!("After {noun} {} {outcome}.", join_words(&required, "and")));
        }
        if !optional.is_empty() {
            lines.push(format!(
                "After {} too if {} part of the run (optional).",
                join_words(&optional, "and"),
                if optional.len() == 1 { "it is" } else { "they are" }
            ));
        }
    } else if several {
        lines.push("Starts right away; it waits for no other workflow.".to_owned());
    }
    if let Some(rows) = matrix_count(spec) {
        lines.push(format!("Once per matrix row: {rows} runs (see the matrix below)."));
    }
    if let Some(row) = doc.rows.first() {
        if !row.runnable {
            let kind = row.runner_type.as_deref().unwrap_or("this");
            lines.push(format!("**Gantry does not run it:** {} pipelines are planned but not run.", code(kind)));
        }
        if row.skipped {
            let reason = row.skip_reason.clone().unwrap_or_else(|| "it is skipped".into());
            lines.push(format!("**Never runs:** {}.", reason.trim_end_matches('.')));
        }
    }
    lines
}

/// Workflow-wide setup worth knowing: clone, platform, workspace, environment, volumes.
pub(super) fn setting_lines(doc: &WorkflowDoc<'_>) -> Vec<String> {
    let spec = doc.spec;
    let mut lines = Vec::new();
    match &spec.clone {
        CloneSpec::Skip => lines.push("No clone: the workspace starts empty.".to_owned()),
        CloneSpec::Custom(steps) => {
            let names: Vec<String> = steps.iter().map(|step| code(&step.name)).collect();
            lines.push(format!("Custom clone: {} instead of the built-in git clone.", join_words(&names, "then")));
        }
        CloneSpec::Default { .. } => lines.extend(clone_options(spec)),
    }
    if let Some(platform) = spec.labels.get("platform") {
        lines.push(format!("Platform: {}.", code(platform)));
    }
    let labels: Vec<String> =
        spec.labels.iter().filter(|(key, _)| key.as_str() != "platform").map(|(key, value)| code(&format!("{key}={value}"))).collect();
    if !labels.is_empty() {
        lines.push(format!("Runs on agents labelled {}.", join_words(&labels, "and")));
    }
    if spec.workspace.base.is_some() || spec.workspace.path.is_some() {
        let directory = match (doc.rows.first(), &spec.workspace.path) {
            (Some(row), Some(_)) => row.workspace.directory(),
            (_, path) => {
                let base = spec.workspace.base.clone().unwrap_or_default();
                match path {
                    Some(path) => format!("{}/{}", base.trim_end_matches('/'), path.trim_matches('/')),
                    None => base,
                }
            }
        };
        lines.push(format!("Workspace: {}.", code(&directory)));
    }
    if let Some(concurrency) = &spec.concurrency {
        let runs = if concurrency.limit == 1 { "one run".to_owned() } else { format!("{} runs", concurrency.limit) };
        let group = concurrency.group.as_ref().map(|group| format!(" in group {}", code(group))).unwrap_or_default();
        lines.push(format!("At most {runs} at a time{group}."));
    }
    if !spec.environment.is_empty() {
        let entries: Vec<String> = spec.environment.iter().map(|entry| environment_entry(&entry.name, &entry.value)).collect();
        lines.push(format!("Environment of every step: {}.", entries.join(", ")));
    }
    for volume in &spec.volumes {
        let what = match &volume.kind {
            VolumeKind::Temporary { memory: true } => "temporary, in memory".to_owned(),
            VolumeKind::Temporary { memory: false } => "temporary".to_owned(),
            VolumeKind::Host { path } => format!("host path {}", code(path)),
        };
        lines.push(format!("Volume {}: {what}.", code(&volume.name)));
    }
    if !spec.image_pull_secrets.is_empty() {
        let names: Vec<String> = spec.image_pull_secrets.iter().map(|name| code(name)).collect();
        lines.push(format!("Pulls images with registry credentials from {}.", join_words(&names, "and")));
    }
    lines
}

pub(super) fn render_matrix(out: &mut String, spec: &WorkflowSpec, matrix: &crate::model::Matrix) {
    out!(out, "**Matrix**");
    out!(out);
    match matrix_rows(matrix) {
        Err(count) => {
            out!(out, "The matrix expands to {count} rows, more than Gantry's limit; the workflow does not run.");
            out!(out);
        }
        Ok(rows) if !matrix.include.is_empty() => {
            let mut axes: Vec<&str> = Vec::new();
            for row in &rows {
                for key in row.keys() {
                    if !axes.contains(&key.as_str()) {
                        axes.push(key);
                    }
                }
            }
            out!(out, "{} listed with `include`:", count(rows.len(), "row", "rows"));
            out!(out);
            out!(out, "| {} |", axes.iter().map(|axis| cell(&code(axis))).collect::<Vec<_>>().join(" | "));
            out!(out, "|{}", "---|".repeat(axes.len().max(1)));
            for row in rows.iter().take(MAX_MATRIX_ROWS_SHOWN) {
                let cells: Vec<String> =
                    axes.iter().map(|axis| row.get(*axis).map_or("—".to_owned(), |value| cell(&code(value)))).collect();
                out!(out, "| {} |", cells.join(" | "));
            }
            out!(out);
            if rows.len() > MAX_MATRIX_ROWS_SHOWN {
                out!(out, "… and {} more rows (see {}).", rows.len() - MAX_MATRIX_ROWS_SHOWN, code(&spec.file));
                out!(out);
            }
        }
        Ok(rows) => {
            out!(out, "{} — every combination of:", count(rows.len(), "row", "rows"));
            out!(out);
            for (axis, values) in &matrix.axes {
                let values: Vec<String> = values.iter().map(|value| code(value)).collect();
                out!(out, "- {}: {}", code(axis), values.join(", "));
            }
            out!(out);
        }
    }
    let axes: Vec<String> = matrix_axes(matrix).iter().map(|axis| code(&format!("${{{axis}}}"))).collect();
    if !axes.is_empty() {
        out!(out, "Each row runs the steps below with {} replaced by the row's values.", join_words(&axes, "and"));
        out!(out);
    }
}

pub(super) fn matrix_axes(matrix: &crate::model::Matrix) -> Vec<String> {
    let mut axes: Vec<String> = matrix.axes.iter().map(|(axis, _)| axis.clone()).collect();
    if !matrix.include.is_empty() {
        axes.clear();
        for row in &matrix.include {
            for key in row.keys() {
                if !axes.contains(key) {
                    axes.push(key.clone());
                }
            }
        }
    }
    axes
}

pub(super) fn matrix_count(spec: &WorkflowSpec) -> Option<String> {
    let matrix = spec.matrix.as_ref()?;
    Some(match matrix_rows(matrix) {
        Ok(rows) => rows.len().to_string(),
        Err(count) => count.to_string(),
    })
}

pub(super) fn render_step_graph(out: &mut String, doc: &WorkflowDoc<'_>) {
    if doc.steps.is_empty() && doc.services.is_empty() {
        out!(out, "This workflow has no steps.");
        out!(out);
        return;
    }
    out!(out, "```mermaid");
    out!(out, "flowchart TD");
    let mut ids: Vec<String> = Vec::new();
    let mut classes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut legend: Vec<&str> = Vec::new();
    let note = |legend: &mut Vec<&str>, entry: &'static str| {
        if !legend.contains(&entry) {
            legend.push(entry);
        }
    };
    for (index, step) in doc.steps.iter().enumerate() {
        let id = node_id('s', index + 1, &step.name);
        let tags = graph_tags(step);
        let text = label(&step.name, &tags);
        let node = match step.kind {
            StepKind::Clone => {
                note(&mut legend, "rounded = clone");
                format!("([\"{text}\"])")
            }
            StepKind::Build => {
                note(&mut legend, "hexagon = image build");
                format!("{{{{\"{text}\"}}}}")
            }
            _ if step.is_plugin() => {
                note(&mut legend, "double-sided box = plugin");
                format!("[[\"{text}\"]]")
            }
            _ => {
                note(&mut legend, "box = commands");
                format!("[\"{text}\"]")
            }
        };
        out!(out, "  {id}{node}");
        if step.never.is_some() {
            classes.entry("never").or_default().push(id.clone());
            note(&mut legend, "grey = never runs");
        } else if step.only_on_failure() {
            classes.entry("failure").or_default().push(id.clone());
            note(&mut legend, "red = only after a failure");
        } else if step.conditional() {
            classes.entry("conditional").or_default().push(id.clone());
            note(&mut legend, "dashed = only under conditions");
        }
        ids.push(id);
    }
    let position = |name: &str| doc.steps.iter().position(|step| step.name == name);
    for (index, step) in doc.steps.iter().enumerate() {
        for dependency in &step.after {
            let Some(from) = position(dependency) else { continue };
            if doc.steps[from].detach() {
                note(&mut legend, "dotted arrow = does not wait for a detached step to finish");
                out!(out, "  {} -.-> {}", ids[from], ids[index]);
            } else {
                out!(out, "  {} --> {}", ids[from], ids[index]);
            }
        }
    }
    if !doc.services.is_empty() {
        note(&mut legend, "cylinder = service, running alongside all steps");
        out!(out, "  subgraph services[\"services\"]");
        for (index, service) in doc.services.iter().enumerate() {
            let id = node_id('v', index + 1, &service.name);
            out!(out, "    {id}[(\"{}\")]", label(&service.name, &graph_tags(service)));
            if service.conditional() {
                classes.entry("conditional").or_default().push(id);
                note(&mut legend, "dashed = only under conditions");
            }
        }
        out!(out, "  end");
    }
    class_lines(out, &classes);
    out!(out, "```");
    out!(out);
    out!(out, "<sub>{}.</sub>", capitalize(&legend.join(" · ")));
    out!(out);
}

pub(super) fn graph_tags(step: &StepView<'_>) -> Vec<String> {
    let mut tags = Vec::new();
    if step.never.is_some() {
        tags.push("never runs".to_owned());
    } else if step.only_on_failure() {
        tags.push("on failure".to_owned());
    } else if step.also_on_failure() && step.kind != StepKind::Service {
        tags.push("even after a failure".to_owned());
    }
    if step.conditional() {
        tags.push("conditional".to_owned());
    }
    if step.detach() {
        tags.push("detached".to_owned());
    }
    match step.failure() {
        FailurePolicy::Fail => {}
        FailurePolicy::Ignore => tags.push("failure ignored".to_owned()),
        FailurePolicy::Cancel => tags.push("failure cancels all".to_owned()),
    }
    tags
}

pub(super) fn class_lines(out: &mut String, classes: &BTreeMap<&str, Vec<String>>) {
    for (class, ids) in classes {
        let style = match *class {
            "conditional" => "stroke-dasharray: 5 5",
            "failure" => "stroke:#c0392b,stroke-width:2px",
            "never" => "fill:#eee,color:#888,stroke:#bbb",
            "missing" => "fill:#fdd,stroke:#c0392b",
            _ => continue,
        };
        out!(out, "  classDef {class} {style}");
        out!(out, "  class {} {class}", ids.join(","));
    }
}
