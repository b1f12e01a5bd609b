//! Secrets and things to know: which step uses which secret, and notes on what a step needs.

use crate::compile::matrix_rows;
use crate::environment::encode_value;
use crate::model::{FailurePolicy, SettingValue, VolumeKind};
use crate::plan::StepKind;
use std::collections::BTreeMap;
use std::fmt::Write;

use super::collect::*;
use super::steps::*;
use super::text::*;

/// Every use of a secret: (secret, where, how), in page order.
pub(super) fn all_secret_uses(docs: &[WorkflowDoc<'_>]) -> Vec<(String, String, String)> {
    let mut uses = Vec::new();
    for doc in docs {
        for secret in &doc.spec.image_pull_secrets {
            uses.push((
                secret.clone(),
                format!("[{}](#{})", code(&doc.spec.name), doc.anchor),
                "registry login (`image_pull_secrets`)".to_owned(),
            ));
        }
        for entry in &doc.spec.environment {
            let mut references = Vec::new();
            encode_value(&entry.value, &entry.name, &mut references);
            for reference in references {
                uses.push((
                    reference.secret,
                    format!("[{}](#{})", code(&doc.spec.name), doc.anchor),
                    format!("{} of the pipeline's `environment` — **given to no step**", code(&format!("${}", entry.name))),
                ));
            }
        }
        for step in doc.steps.iter().chain(doc.services.iter()) {
            for secret in &step.secrets {
                uses.push((secret.secret.clone(), step_link(doc, step, docs.len() > 1), secret.how.clone()));
            }
        }
    }
    uses
}

pub(super) fn step_link(doc: &WorkflowDoc<'_>, step: &StepView<'_>, several: bool) -> String {
    let link = step_name_link(step);
    if several { format!("{} › {link}", code(&doc.spec.name)) } else { link }
}

pub(super) fn render_secrets(out: &mut String, docs: &[WorkflowDoc<'_>]) {
    out!(out, "## Secrets");
    out!(out);
    let uses = all_secret_uses(docs);
    if uses.is_empty() {
        out!(out, "This pipeline uses no secrets.");
        out!(out);
        return;
    }
    out!(
        out,
        "Secret values are never shown here: the pipeline only names them, and each must exist on the CI server \
         (as a repository or organization secret) for the steps below to get it. Pull requests from forks usually get no secrets."
    );
    out!(out);
    // Secret → how → where, each in first-seen order within a sorted list of secrets.
    let mut grouped: BTreeMap<&str, Vec<(&str, Vec<&str>)>> = BTreeMap::new();
    for (secret, place, how) in &uses {
        let entries = grouped.entry(secret).or_default();
        match entries.iter_mut().find(|(existing, _)| existing == how) {
            Some((_, places)) => {
                if !places.contains(&place.as_str()) {
                    places.push(place);
                }
            }
            None => entries.push((how, vec![place])),
        }
    }
    out!(out, "| Secret | Used by | As |");
    out!(out, "|---|---|---|");
    for (secret, entries) in grouped {
        for (index, (how, places)) in entries.iter().enumerate() {
            let name = if index == 0 { code(secret) } else { "″".to_owned() };
            out!(out, "| {} | {} | {} |", cell(&name), cell(&places.join(", ")), cell(how));
        }
    }
    out!(out);
}

pub(super) fn render_notes(out: &mut String, docs: &[WorkflowDoc<'_>], several: bool) {
    let mut notes: Vec<String> = Vec::new();
    for doc in docs {
        let spec = doc.spec;
        let workflow = code(&spec.name);
        // Host paths written on steps, each once with every step that mounts it; Drone's named
        // host volumes are reported with the volume.
        let mut host_paths: Vec<(&str, Vec<String>)> = Vec::new();
        for step in doc.steps.iter().chain(doc.services.iter()) {
            for mount in step.spec.map_or(&[][..], |spec| &spec.container.volumes).iter().filter(|mount| mount.starts_with('/')) {
                let host = mount.split(':').next().unwrap_or(mount);
                let at = step_link(doc, step, several);
                match host_paths.iter_mut().find(|(path, _)| *path == host) {
                    Some((_, users)) if !users.contains(&at) => users.push(at),
                    Some(_) => {}
                    None => host_paths.push((host, vec![at])),
                }
            }
        }
        for (host, users) in host_paths {
            let extra = if host.ends_with("docker.sock") { " (the Docker socket: control over the agent's Docker)" } else { "" };
            notes.push(format!("Host path {}{extra} is mounted by {}: needs a trusted repository.", code(host), join_words(&users, "and")));
        }
        if let Some(row) = doc.rows.first()
            && !row.runnable
        {
            notes.push(format!(
                "Workflow {workflow} is a {} pipeline: Gantry plans it but does not run it.",
                code(row.runner_type.as_deref().unwrap_or("?"))
            ));
        }
        if spec.runner_type.as_ref().is_some_and(|runner| runner.name == "exec") {
            notes.push(format!(
                "Workflow {workflow} uses the `exec` runner: its commands run directly on the agent's machine, not in containers."
            ));
        }
        if let Some(matrix) = &spec.matrix
            && let Err(count) = matrix_rows(matrix)
        {
            notes.push(format!("Workflow {workflow} has a matrix of {count} rows, over Gantry's limit: it does not run."));
        }
        for volume in &spec.volumes {
            if let VolumeKind::Host { path } = &volume.kind {
                let users: Vec<String> = doc
                    .steps
                    .iter()
                    .chain(doc.services.iter())
                    .filter(|step| {
                        step.spec.is_some_and(|spec| {
                            spec.container.volumes.iter().any(|mount| mount.split(':').next() == Some(volume.name.as_str()))
                        })
                    })
                    .map(|step| step_link(doc, step, several))
                    .collect();
                let by = if users.is_empty() { String::new() } else { format!(", mounted by {}", join_words(&users, "and")) };
                notes.push(format!(
                    "Workflow {workflow} declares host volume {} → {}{by}: needs a trusted repository.",
                    code(&volume.name),
                    code(path)
                ));
            }
        }
        for entry in &spec.environment {
            if matches!(entry.value, SettingValue::Secret(_)) {
                notes.push(format!(
                    "Workflow {workflow} puts a secret in the pipeline-level `environment` ({}); no step receives it.",
                    code(&entry.name)
                ));
            }
        }
        for step in doc.steps.iter().chain(doc.services.iter()) {
            let Some(spec) = step.spec else { continue };
            let at = step_link(doc, step, several);
            let what = if step.kind == StepKind::Service { "Service" } else { "Step" };
            if spec.container.privileged {
                notes.push(format!("{what} {at} runs **privileged**: it has full access to the agent's host."));
            }
            if let Some(mode) = spec.container.network_mode.as_deref().filter(|mode| *mode == "host") {
                notes.push(format!("{what} {at} uses the host's network (`network_mode: {mode}`)."));
            }
            if !spec.container.devices.is_empty() {
                notes.push(format!(
                    "{what} {at} gets host devices {}.",
                    spec.container.devices.iter().map(|device| code(device)).collect::<Vec<_>>().join(", ")
                ));
            }
            if step.kind == StepKind::Service && !spec.container.ports.is_empty() {
                let ports: Vec<String> = spec.container.ports.iter().map(|port| code(port)).collect();
                notes.push(format!("Service {at} listens on {}; steps reach it at host {}.", join_words(&ports, "and"), code(&step.name)));
            }
            if step.detach() {
                notes.push(format!("Step {at} is detached: it keeps running in the background and the steps after it do not wait for it."));
            }
            match step.failure() {
                FailurePolicy::Ignore => notes.push(format!("{what} {at} may fail without failing the workflow (`failure: ignore`).")),
                FailurePolicy::Cancel => notes.push(format!("If {} {at} fails, the whole pipeline is cancelled.", what.to_lowercase())),
                FailurePolicy::Fail => {}
            }
            if step.only_on_failure() {
                notes.push(format!("Step {at} runs only after something failed."));
            }
        }
    }
    out!(out, "## Things to know");
    out!(out);
    if notes.is_empty() {
        out!(out, "Nothing unusual: no privileged steps, host mounts, detached steps or ignored failures.");
        out!(out);
        return;
    }
    for note in notes {
        out!(out, "- {note}");
    }
    out!(out);
}
