//! The top of the page: title, overview, the order of workflows and their graph.

use crate::context::EVENTS;
use crate::model::WorkflowSpec;
use crate::plan::RunOn;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::collect::*;
use super::secrets::*;
use super::text::*;
use super::workflow::*;

pub(super) fn title(workflows: &[WorkflowSpec]) -> String {
    let files = files_of(workflows);
    match files.as_slice() {
        [] => "CI pipeline".to_owned(),
        [file] => format!("CI pipeline {}", code(file)),
        _ => match common_folder(&files) {
            Some(folder) => format!("CI pipeline {}", code(&format!("{folder}/"))),
            None => "CI pipeline".to_owned(),
        },
    }
}

pub(super) fn files_of<'a>(workflows: impl IntoIterator<Item = &'a WorkflowSpec>) -> Vec<&'a str> {
    let mut files: Vec<&str> = Vec::new();
    for workflow in workflows {
        if !files.contains(&workflow.file.as_str()) {
            files.push(&workflow.file);
        }
    }
    files
}

pub(super) fn common_folder(files: &[&str]) -> Option<String> {
    let folders: BTreeSet<&str> = files.iter().map(|file| file.rsplit_once(['/', '\\']).map_or("", |(folder, _)| folder)).collect();
    match folders.into_iter().collect::<Vec<_>>().as_slice() {
        [folder] if !folder.is_empty() => Some((*folder).to_owned()),
        _ => None,
    }
}

pub(super) fn render_overview(out: &mut String, docs: &[WorkflowDoc<'_>], secrets_anchor: &str) {
    if docs.is_empty() {
        out!(out, "No workflows were found in the pipeline files. Run `gantry lint` to see why.");
        out!(out);
        return;
    }
    let files: Vec<String> = files_of(docs.iter().map(|doc| doc.spec)).into_iter().map(str::to_owned).collect();
    let dialects: BTreeSet<&str> = docs.iter().map(|doc| dialect_name(doc.spec.dialect)).collect();
    let dialect = dialects.into_iter().collect::<Vec<_>>().join(" and ");
    let step_count: usize = docs.iter().map(|doc| doc.spec.steps.len()).sum();
    let mut paragraph = String::new();
    if let [doc] = docs {
        let _ = write!(
            paragraph,
            "This {dialect} pipeline is one workflow, {}, of {}, read from {}.",
            code(&doc.spec.name),
            count(step_count, "step", "steps"),
            list_files(&files)
        );
    } else {
        let _ = write!(
            paragraph,
            "This {dialect} pipeline has {} with {} in total, read from {}.",
            count(docs.len(), "workflow", "workflows"),
            count(step_count, "step", "steps"),
            list_files(&files),
        );
    }

    // Which events start it.
    let mut events: Vec<String> = Vec::new();
    let mut unfiltered: Vec<&str> = Vec::new();
    for doc in docs {
        match doc.spec.when.possible_events() {
            Some(found) => {
                for event in found {
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
            }
            None => unfiltered.push(&doc.spec.name),
        }
    }
    events.sort_by_key(|event| (EVENTS.iter().position(|known| known == event).unwrap_or(EVENTS.len()), event.clone()));
    let event_list = join_words(&events.iter().map(|event| code(event)).collect::<Vec<_>>(), "and");
    if unfiltered.is_empty() {
        let _ = write!(paragraph, " It is triggered by {event_list} events.");
    } else if events.is_empty() {
        paragraph.push_str(if docs.len() == 1 {
            " It runs on every event."
        } else {
            " It runs on every event: no workflow filters events."
        });
    } else {
        let names = join_words(&unfiltered.iter().map(|name| code(name)).collect::<Vec<_>>(), "and");
        let verb = if unfiltered.len() == 1 { "has no event filter and runs" } else { "have no event filter and run" };
        let _ = write!(paragraph, " It is triggered by {event_list} events; {names} {verb} on every event.");
    }
    if docs.len() > 1 {
        let _ = write!(paragraph, " {}", order_sentence(docs));
    }
    let secrets: BTreeSet<String> = all_secret_uses(docs).into_iter().map(|(secret, ..)| secret).collect();
    if !secrets.is_empty() {
        let _ = write!(paragraph, " It needs {} (see [Secrets](#{secrets_anchor})).", count(secrets.len(), "secret", "secrets"));
    }
    out!(out, "{paragraph}");
    out!(out);

    if docs.len() > 1 {
        out!(out, "| Workflow | File | Events | Waits for | Steps |");
        out!(out, "|---|---|---|---|---:|");
        for doc in docs {
            let events = match doc.spec.when.possible_events() {
                Some(events) => events.iter().map(|event| code(event)).collect::<Vec<_>>().join(", "),
                None => "any".to_owned(),
            };
            let after = if doc.spec.depends_on.is_empty() {
                "—".to_owned()
            } else {
                doc.spec.depends_on.iter().map(|dependency| code(&dependency.name)).collect::<Vec<_>>().join(", ")
            };
            let mut steps = doc.spec.steps.len().to_string();
            if let Some(rows) = matrix_count(doc.spec) {
                let _ = write!(steps, " × {rows} rows");
            }
            out!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&format!("[{}](#{})", code(&doc.spec.name), doc.anchor)),
                cell(&code(&doc.spec.file)),
                cell(&events),
                cell(&after),
                cell(&steps)
            );
        }
        out!(out);
        render_workflow_graph(out, docs);
    }
}

pub(super) fn list_files(files: &[String]) -> String {
    match files {
        [file] => code(file),
        _ => match common_folder(&files.iter().map(String::as_str).collect::<Vec<_>>()) {
            Some(folder) => format!("{} files in {}", files.len(), code(&format!("{folder}/"))),
            _ => join_words(&files.iter().map(|file| code(file)).collect::<Vec<_>>(), "and"),
        },
    }
}

/// "Workflows run in this order: `lint` → `build`, `test` → `deploy`."
pub(super) fn order_sentence(docs: &[WorkflowDoc<'_>]) -> String {
    if docs.iter().all(|doc| doc.spec.depends_on.is_empty()) {
        return "All workflows start at the same time.".to_owned();
    }
    let levels = workflow_levels(docs);
    let mut stages: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (doc, level) in docs.iter().zip(&levels) {
        stages.entry(*level).or_default().push(code(&doc.spec.name));
    }
    let stages: Vec<String> = stages.into_values().map(|names| names.join(", ")).collect();
    format!("Workflows run in this order: {}.", stages.join(" → "))
}

/// Longest chain of dependencies before each workflow; cycles stop growing after `n` rounds.
pub(super) fn workflow_levels(docs: &[WorkflowDoc<'_>]) -> Vec<usize> {
    let index_of = |name: &str| docs.iter().position(|doc| doc.spec.name == name);
    let mut levels = vec![0; docs.len()];
    for _ in 0..docs.len() {
        let mut changed = false;
        for (index, doc) in docs.iter().enumerate() {
            let level = doc
                .spec
                .depends_on
                .iter()
                .filter_map(|dependency| index_of(&dependency.name))
                .filter(|&target| target != index)
                .map(|target| levels[target] + 1)
                .max()
                .unwrap_or(0);
            if level != levels[index] {
                levels[index] = level;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    levels
}

pub(super) fn render_workflow_graph(out: &mut String, docs: &[WorkflowDoc<'_>]) {
    out!(out, "```mermaid");
    out!(out, "flowchart LR");
    let mut ids = Vec::new();
    let mut classes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, doc) in docs.iter().enumerate() {
        let id = node_id('w', index + 1, &doc.spec.name);
        let mut tags = Vec::new();
        if let Some(rows) = matrix_count(doc.spec) {
            tags.push(format!("matrix: {rows} rows"));
        }
        let statuses = statuses_of(&doc.spec.when);
        if statuses == [RunOn::Failure] {
            tags.push("only after a failure".to_owned());
            classes.entry("failure").or_default().push(id.clone());
        } else if statuses.len() == 2 {
            tags.push("even after a failure".to_owned());
        }
        if doc.rows.first().is_some_and(|row| !row.runnable) {
            tags.push("not run by Gantry".to_owned());
        }
        out!(out, "  {id}[\"{}\"]", label(&doc.spec.name, &tags));
        ids.push(id);
    }
    let mut missing = 0;
    for (index, doc) in docs.iter().enumerate() {
        for dependency in &doc.spec.depends_on {
            let arrow = if dependency.optional { "-. optional .->" } else { "-->" };
            match docs.iter().position(|other| other.spec.name == dependency.name) {
                Some(target) => out!(out, "  {} {arrow} {}", ids[target], ids[index]),
                None => {
                    missing += 1;
                    let id = format!("missing{missing}");
                    out!(out, "  {id}[\"{}\"]", label(&dependency.name, &["no such workflow".to_owned()]));
                    classes.entry("missing").or_default().push(id.clone());
                    out!(out, "  {id} {arrow} {}", ids[index]);
                }
            }
        }
    }
    class_lines(out, &classes);
    out!(out, "```");
    out!(out);
}
