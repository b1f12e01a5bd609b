//! Reading Drone files: several YAML documents, each a `kind: pipeline`, `secret`, `signature` or `template`.

use crate::diagnostic::code;
use crate::model::{CloneSpec, Concurrency, Dialect, Named, VolumeKind, VolumeSpec, WorkflowSpec};
use crate::read::condition::{ConditionScope, read_when};
use crate::read::step::{StepRole, read_steps};
use crate::read::woodpecker::{read_string_map, read_workspace};
use crate::read::{Reader, woodpecker};
use crate::yaml::{Node, Span};

const PIPELINE_KEYS: &[&str] = &[
    "kind",
    "type",
    "name",
    "platform",
    "node",
    "trigger",
    "steps",
    "services",
    "volumes",
    "workspace",
    "clone",
    "depends_on",
    "concurrency",
    "environment",
    "image_pull_secrets",
    "version",
];

/// Runner types Gantry can run; the rest are read and planned with a warning.
const RUNNABLE_TYPES: &[&str] = &["docker", "exec"];

pub(crate) fn read_documents(reader: &mut Reader<'_>, documents: Vec<Node>) -> Vec<WorkflowSpec> {
    let mut workflows = Vec::new();
    if documents.is_empty() {
        reader.error(code::NO_STEPS, Span::new(1, 1), "the file is empty").hint = Some("add a `kind: pipeline` document".into());
    }
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        if document.as_mapping().is_none() {
            reader.wrong_type(&document, "a document", "a mapping with `kind`");
            continue;
        }
        let kind = document.get("kind").and_then(|node| node.scalar_text().map(std::borrow::Cow::into_owned));
        match kind.as_deref() {
            Some("pipeline") => {
                if let Some(workflow) = read_pipeline(reader, document) {
                    workflows.push(workflow);
                }
            }
            Some("secret" | "signature" | "template" | "approval" | "deployment") => {}
            Some(other) => {
                let span = document.get("kind").map_or(document.span, |node| node.span);
                reader.warning(code::UNSUPPORTED, span, format!("documents of kind `{other}` are not understood and are ignored"));
            }
            None if document.get("pipeline").is_some() => {
                // Drone 0.8 files have no `kind` and read like Woodpecker's format, which descends from them.
                reader
                    .warning(code::DEPRECATED, document.span, "this is a Drone 0.8 file (no `kind`); read in the Woodpecker format")
                    .hint = Some("Drone 1.0 and later write `kind: pipeline` and `steps:` as a list".into());
                let name = if index == 0 { "default".to_owned() } else { format!("default-{}", index + 1) };
                if let Some(mut workflow) = woodpecker::read_workflow(reader, &name, document) {
                    workflow.dialect = Dialect::Drone;
                    workflows.push(workflow);
                }
            }
            None => {
                reader.error(code::MISSING_KEY, document.span, "a Drone document needs `kind`").hint =
                    Some("start the document with `kind: pipeline`".into());
            }
        }
    }
    workflows
}

fn read_pipeline(reader: &mut Reader<'_>, document: Node) -> Option<WorkflowSpec> {
    // The document is moved in at the end; reading borrows it.
    let mut workflow = WorkflowSpec::new("default", reader.file, Dialect::Drone, document.span);
    // The runner type decides whether steps need images, so read it before the steps.
    let runner_type = match document.get("type") {
        Some(node) => reader.string(node, "type").map(|name| Named { name, span: node.span }),
        None => None,
    };
    let runner_name = runner_type.as_ref().map_or("docker", |named| named.name.as_str()).to_owned();
    if let Some(named) = &runner_type
        && !RUNNABLE_TYPES.contains(&named.name.as_str())
    {
        reader
            .warning(
                code::UNSUPPORTED,
                named.span,
                format!("pipelines of type `{}` cannot run on Gantry; it is planned but not run", named.name),
            )
            .hint = Some("Gantry runs `type: docker` and `type: exec` pipelines".into());
    }
    // Only container runners need images; exec, ssh, digitalocean, vm and macstadium run on a machine.
    let images_required = matches!(runner_name.as_str(), "docker" | "kubernetes");
    workflow.runner_type = Some(runner_type.unwrap_or(Named { name: "docker".into(), span: document.span }));
    let mut saw_steps = false;
    for (key, value) in document.as_mapping().unwrap_or_default() {
        let Some(key_name) = reader.key_text(key) else { continue };
        match key_name.as_ref() {
            "kind" | "type" | "version" => {}
            "name" => {
                if let Some(name) = reader.string(value, "name") {
                    workflow.name = name;
                    workflow.span = value.span;
                }
            }
            "platform" => workflow.platform = read_platform(reader, value),
            "node" => workflow.labels = read_string_map(reader, value, "node"),
            "trigger" => workflow.when = read_when(reader, value, Dialect::Drone, ConditionScope::Workflow),
            "steps" => {
                saw_steps = true;
                workflow.steps = read_steps(reader, value, Dialect::Drone, StepRole::Step, "steps", images_required);
            }
            "services" => workflow.services = read_steps(reader, value, Dialect::Drone, StepRole::Service, "services", images_required),
            "volumes" => workflow.volumes = read_volumes(reader, value),
            "workspace" => workflow.workspace = read_workspace(reader, value),
            "clone" => workflow.clone = read_clone(reader, value),
            "depends_on" => workflow.depends_on = reader.dependencies(value, "depends_on"),
            "concurrency" => {
                let mut limit = None;
                for (key, value) in reader.mapping(value, "concurrency") {
                    let Some(name) = reader.key_text(key) else { continue };
                    match name.as_ref() {
                        "limit" => limit = reader.unsigned(value, "concurrency.limit"),
                        other => reader.unknown_key(key, other, &["limit"], "`concurrency`"),
                    }
                }
                workflow.concurrency = limit.map(|limit| Concurrency { limit, group: None });
            }
            "environment" => workflow.environment = reader.environment(value, "environment"),
            "image_pull_secrets" => workflow.image_pull_secrets = reader.string_list(value, "image_pull_secrets"),
            // Kubernetes runner settings: the pipeline is already flagged as not runnable here.
            "metadata" | "service_account_name" | "node_selector" | "tolerations" | "dns_config" | "host_aliases" | "resources"
                if runner_name == "kubernetes" => {}
            // Machine runners: where to run (ssh, digitalocean, macstadium) or which pool (vm).
            "server" | "pool" | "token" | "instance" if !matches!(runner_name.as_str(), "docker" | "kubernetes" | "exec") => {}
            other => reader.unknown_key(key, other, PIPELINE_KEYS, "a Drone pipeline"),
        }
    }
    if let Some(platform) = &workflow.platform {
        workflow.labels.entry("platform".into()).or_insert_with(|| platform.clone());
    }
    if !saw_steps || workflow.steps.is_empty() {
        reader.error(code::NO_STEPS, workflow.span, format!("pipeline `{}` has no steps", workflow.name)).hint =
            Some("add `steps:` with at least one step".into());
    }
    workflow.document = document;
    Some(workflow)
}

/// `platform: {os, arch, variant}` as `os/arch[/variant]`.
fn read_platform(reader: &mut Reader<'_>, node: &Node) -> Option<String> {
    let mut os = "linux".to_owned();
    let mut arch = "amd64".to_owned();
    let mut variant = None;
    for (key, value) in reader.mapping(node, "platform") {
        let Some(name) = reader.key_text(key) else { continue };
        match name.as_ref() {
            "os" => os = reader.string(value, "platform.os").unwrap_or(os),
            "arch" => arch = reader.string(value, "platform.arch").unwrap_or(arch),
            "variant" => variant = reader.string(value, "platform.variant"),
            "version" => {}
            other => reader.unknown_key(key, other, &["os", "arch", "variant", "version"], "`platform`"),
        }
    }
    Some(match variant {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    })
}

fn read_volumes(reader: &mut Reader<'_>, node: &Node) -> Vec<VolumeSpec> {
    let mut volumes = Vec::new();
    let Some(items) = node.as_sequence() else {
        if !node.is_null() {
            reader.wrong_type(node, "volumes", "a list of `{name, temp}` or `{name, host}`");
        }
        return volumes;
    };
    for item in items {
        let mut name = None;
        let mut kind = None;
        for (key, value) in reader.mapping(item, "volume") {
            let Some(key_name) = reader.key_text(key) else { continue };
            match key_name.as_ref() {
                "name" => name = reader.string(value, "volumes.name"),
                "temp" => {
                    let memory = value.get("medium").and_then(Node::scalar_text).is_some_and(|medium| medium == "memory");
                    kind = Some(VolumeKind::Temporary { memory });
                }
                "host" => match value.get("path").and_then(Node::scalar_text) {
                    Some(path) => kind = Some(VolumeKind::Host { path: path.into_owned() }),
                    None => {
                        reader.error(code::MISSING_KEY, value.span, "a host volume needs `path`");
                    }
                },
                "claim" | "config_map" | "secret" => {
                    reader.warning(
                        code::UNSUPPORTED,
                        key.span,
                        format!("`{key_name}` volumes are Kubernetes-only; read as a temporary volume"),
                    );
                    kind = Some(VolumeKind::Temporary { memory: false });
                }
                other => reader.unknown_key(key, other, &["name", "temp", "host"], "a volume"),
            }
        }
        match name {
            Some(name) => volumes.push(VolumeSpec { name, kind: kind.unwrap_or(VolumeKind::Temporary { memory: false }), span: item.span }),
            None => {
                reader.error(code::MISSING_KEY, item.span, "a volume needs `name`");
            }
        }
    }
    volumes
}

fn read_clone(reader: &mut Reader<'_>, node: &Node) -> CloneSpec {
    let mut disable = false;
    let mut depth = None;
    for (key, value) in reader.mapping(node, "clone") {
        let Some(name) = reader.key_text(key) else { continue };
        match name.as_ref() {
            "disable" => disable = reader.boolean(value, "clone.disable").unwrap_or(false),
            "depth" => depth = reader.unsigned(value, "clone.depth"),
            "retries" | "skip_verify" | "trace" => {}
            other => reader.unknown_key(key, other, &["disable", "depth", "retries", "skip_verify", "trace"], "`clone`"),
        }
    }
    if disable { CloneSpec::Skip } else { CloneSpec::Default { depth, tags: None, submodules: None, lfs: None } }
}
