//! Reading Woodpecker workflow files (v3 syntax, with the older forms read and flagged).

use std::collections::BTreeMap;

use crate::condition::{ConditionSet, When};
use crate::diagnostic::code;
use crate::model::{CloneSpec, Concurrency, Dialect, Matrix, WorkflowSpec, WorkspaceSpec};
use crate::read::condition::{ConditionScope, read_when};
use crate::read::step::{StepRole, read_steps};
use crate::read::{Reader, describe, workflow_name_from_path};
use crate::yaml::{Node, NodeValue};

const WORKFLOW_KEYS: &[&str] = &[
    "steps",
    "services",
    "clone",
    "skip_clone",
    "workspace",
    "when",
    "depends_on",
    "matrix",
    "labels",
    "concurrency",
    "variables",
    "runs_on",
    "platform",
    "branches",
    "pipeline",
    "$schema",
    "version",
];

pub(crate) fn read_documents(reader: &mut Reader<'_>, documents: Vec<Node>) -> Vec<WorkflowSpec> {
    let mut documents = documents.into_iter();
    let Some(first) = documents.next() else {
        reader.error(code::NO_STEPS, crate::yaml::Span::new(1, 1), "the file is empty").hint = Some("add a `steps:` section".into());
        return Vec::new();
    };
    if let Some(extra) = documents.next() {
        reader.warning(code::UNSUPPORTED, extra.span, "a Woodpecker file holds one workflow; documents after the first are ignored").hint =
            Some("put each workflow in its own file under `.woodpecker/`".into());
    }
    let name = workflow_name_from_path(reader.file);
    read_workflow(reader, &name, first).into_iter().collect()
}

pub(crate) fn read_workflow(reader: &mut Reader<'_>, name: &str, document: Node) -> Option<WorkflowSpec> {
    if document.as_mapping().is_none() {
        reader.wrong_type(&document, "the workflow", "a mapping with `steps`");
        return None;
    }
    // The document is moved in at the end; reading borrows it.
    let mut workflow = WorkflowSpec::new(name, reader.file, Dialect::Woodpecker, document.span);
    let mut saw_steps = false;
    let mut skip_clone = false;
    let legacy_before = reader.legacy_plugin_parameters;
    reader.legacy_plugin_parameters = document.get("pipeline").is_some() && document.get("steps").is_none();
    let mut custom_clone = None;
    let mut legacy_branches = None;
    let mut runs_on = None;
    for (key, value) in document.as_mapping().unwrap_or_default() {
        let Some(key_name) = reader.key_text(key) else { continue };
        match key_name.as_ref() {
            "steps" | "pipeline" => {
                if key_name == "pipeline" {
                    reader.warning(code::DEPRECATED, key.span, "`pipeline:` is the old name of `steps:`").hint =
                        Some("rename it to `steps:`".into());
                }
                if saw_steps {
                    reader.error(code::DUPLICATE_NAME, key.span, "the workflow has both `steps` and `pipeline`; keep only `steps`");
                }
                saw_steps = true;
                workflow.steps = read_steps(reader, value, Dialect::Woodpecker, StepRole::Step, "steps", true);
            }
            "services" => workflow.services = read_steps(reader, value, Dialect::Woodpecker, StepRole::Service, "services", true),
            "clone" => custom_clone = Some(read_steps(reader, value, Dialect::Woodpecker, StepRole::Clone, "clone", true)),
            "skip_clone" => skip_clone = reader.boolean(value, "skip_clone").unwrap_or(false),
            "workspace" => workflow.workspace = read_workspace(reader, value),
            "when" => workflow.when = read_when(reader, value, Dialect::Woodpecker, ConditionScope::Workflow),
            "depends_on" => workflow.depends_on = reader.dependencies(value, "depends_on"),
            "matrix" => {
                workflow.matrix = read_matrix(reader, value);
                if let Some(matrix) = &mut workflow.matrix {
                    matrix.span = key.span;
                }
            }
            "labels" => workflow.labels = read_labels(reader, value),
            "concurrency" => workflow.concurrency = read_concurrency(reader, value),
            "variables" | "$schema" | "version" => {}
            // Documented for workflows that run after others, e.g. to notify on failure.
            "runs_on" => runs_on = Some(value.clone()),
            "platform" => {
                reader.warning(code::DEPRECATED, key.span, "top-level `platform` is deprecated").hint =
                    Some("use `labels: {platform: linux/arm64}`".into());
                workflow.platform = reader.string(value, "platform");
            }
            "branches" => {
                reader.warning(code::DEPRECATED, key.span, "top-level `branches` is deprecated").hint =
                    Some("use `when: {branch: ...}` on the workflow".into());
                legacy_branches = Some(value.clone());
            }
            other if other.starts_with("x-") || other.starts_with('.') => {
                // Extension keys hold anchors, like `variables`.
            }
            other => reader.unknown_key(key, other, WORKFLOW_KEYS, "a workflow"),
        }
    }
    if let Some(branches) = legacy_branches {
        // Old `branches:` took the same forms as a branch condition; read it as one and AND it in.
        let wrapped =
            Node::new(NodeValue::Mapping(vec![(Node::new(NodeValue::String("branch".into()), branches.span), branches)]), document.span);
        let extra = read_when(reader, &wrapped, Dialect::Woodpecker, ConditionScope::Workflow);
        merge_branch_condition(&mut workflow.when, extra);
    }
    if let Some(statuses) = runs_on {
        let wrapped =
            Node::new(NodeValue::Mapping(vec![(Node::new(NodeValue::String("status".into()), statuses.span), statuses)]), document.span);
        let extra = read_when(reader, &wrapped, Dialect::Woodpecker, ConditionScope::Workflow);
        if let Some(status) = extra.alternatives.into_iter().next().and_then(|set| set.status) {
            if workflow.when.alternatives.is_empty() {
                workflow.when.alternatives.push(ConditionSet { span: document.span, ..ConditionSet::default() });
            }
            for set in &mut workflow.when.alternatives {
                set.status.get_or_insert_with(|| status.clone());
            }
        }
    }
    if let Some(platform) = &workflow.platform {
        workflow.labels.entry("platform".into()).or_insert_with(|| platform.clone());
    }
    if !saw_steps {
        reader.error(code::NO_STEPS, document.span, format!("workflow `{name}` has no `steps`")).hint =
            Some("add `steps:` with at least one step".into());
    } else if workflow.steps.is_empty() {
        reader.error(code::NO_STEPS, document.span, format!("workflow `{name}` has an empty `steps` section"));
    }
    workflow.clone = match (skip_clone, custom_clone) {
        (true, _) => CloneSpec::Skip,
        (false, Some(steps)) => CloneSpec::Custom(steps),
        (false, None) => CloneSpec::Default { depth: None, tags: None, submodules: None, lfs: None },
    };
    reader.legacy_plugin_parameters = legacy_before;
    workflow.document = document;
    Some(workflow)
}

fn merge_branch_condition(when: &mut When, extra: When) {
    let Some(branch) = extra.alternatives.into_iter().next().and_then(|set| set.branch) else { return };
    if when.alternatives.is_empty() {
        when.alternatives.push(ConditionSet { span: branch.span, branch: Some(branch), ..ConditionSet::default() });
    } else {
        for set in &mut when.alternatives {
            set.branch.get_or_insert_with(|| branch.clone());
        }
    }
}

pub(crate) fn read_workspace(reader: &mut Reader<'_>, node: &Node) -> WorkspaceSpec {
    let mut workspace = WorkspaceSpec::default();
    for (key, value) in reader.mapping(node, "workspace") {
        let Some(name) = reader.key_text(key) else { continue };
        match name.as_ref() {
            "base" => workspace.base = reader.string(value, "workspace.base"),
            "path" => workspace.path = reader.string(value, "workspace.path"),
            other => reader.unknown_key(key, other, &["base", "path"], "`workspace`"),
        }
    }
    if let Some(base) = &workspace.base
        && !base.starts_with('/')
    {
        reader.error(code::INVALID_VALUE, node.span, format!("`workspace.base` must be an absolute path, found `{base}`"));
    }
    workspace
}

pub(crate) fn read_string_map(reader: &mut Reader<'_>, node: &Node, field: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (key, value) in reader.mapping(node, field) {
        let Some(name) = reader.key_text(key) else { continue };
        if let Some(text) = reader.string(value, &format!("{field}.{name}")) {
            map.insert(name.into_owned(), text);
        }
    }
    map
}

/// Labels as a mapping, or Woodpecker's list form `- key=value`.
fn read_labels(reader: &mut Reader<'_>, node: &Node) -> BTreeMap<String, String> {
    let Some(items) = node.as_sequence() else { return read_string_map(reader, node, "labels") };
    let mut labels = BTreeMap::new();
    for item in items {
        match item.as_str().and_then(|text| text.split_once('=')) {
            Some((key, value)) => {
                labels.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            None => {
                reader.error(code::WRONG_TYPE, item.span, "`labels` items in list form are `key=value`").hint =
                    Some("or write the labels as a mapping: `key: value`".into());
            }
        }
    }
    labels
}

fn read_concurrency(reader: &mut Reader<'_>, node: &Node) -> Option<Concurrency> {
    match &node.value {
        NodeValue::Mapping(entries) => {
            let mut concurrency = Concurrency { limit: 1, group: None };
            for (key, value) in entries {
                let Some(name) = reader.key_text(key) else { continue };
                match name.as_ref() {
                    "limit" => concurrency.limit = reader.unsigned(value, "concurrency.limit").unwrap_or(1),
                    "group" => concurrency.group = reader.string(value, "concurrency.group"),
                    other => reader.unknown_key(key, other, &["limit", "group"], "`concurrency`"),
                }
            }
            Some(concurrency)
        }
        _ => reader.unsigned(node, "concurrency").map(|limit| Concurrency { limit, group: None }),
    }
}

fn read_matrix(reader: &mut Reader<'_>, node: &Node) -> Option<Matrix> {
    let mut matrix = Matrix { span: node.span, axes: Vec::new(), include: Vec::new() };
    for (key, value) in reader.mapping(node, "matrix") {
        let Some(name) = reader.key_text(key) else { continue };
        if name == "include" {
            let Some(rows) = value.as_sequence() else {
                reader.wrong_type(value, "matrix.include", "a list of mappings");
                continue;
            };
            for row in rows {
                if row.as_mapping().is_none() {
                    reader.wrong_type(row, "matrix.include item", "a mapping of variables to values");
                    continue;
                }
                matrix.include.push(read_string_map(reader, row, "matrix.include"));
            }
            continue;
        }
        if !is_variable_name(&name) {
            reader.error(code::INVALID_VALUE, key.span, format!("matrix axis `{name}` is not a valid variable name")).hint =
                Some("use letters, digits and `_`, e.g. `GO_VERSION`".into());
        }
        let values = match &value.value {
            NodeValue::Sequence(items) => items
                .iter()
                .filter_map(|item| match item.scalar_text() {
                    Some(text) => Some(text.into_owned()),
                    None => {
                        reader.error(code::WRONG_TYPE, item.span, format!("matrix values are scalars, found {}", describe(item)));
                        None
                    }
                })
                .collect(),
            _ => {
                reader.wrong_type(value, &format!("matrix.{name}"), "a list of values");
                continue;
            }
        };
        matrix.axes.push((name.into_owned(), values));
    }
    Some(matrix)
}

pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
