//! The pipeline as written: workflows and steps of either dialect, with the spans lint points at.
//!
//! Both dialects are read into this one model; what differs between them (defaults, variable
//! names, workspace) is decided later by the compiler from `Dialect`.

use std::collections::BTreeMap;

use crate::condition::When;
use crate::container::ContainerOptions;
use crate::yaml::{Node, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Woodpecker,
    Drone,
}

/// A pipeline file handed to the reader: a display path and its text. The caller does the IO.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
    /// Another file of the folder of workflows the planned files come from, read only for its
    /// workflows' names: planning `.woodpecker/deploy.yml` alone, a `depends_on` naming the
    /// workflow of `.woodpecker/build.yml` is a dependency left out, not a mistake.
    pub sibling: bool,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self { path: path.into(), text: text.into(), sibling: false }
    }

    /// A file of the same folder that is not planned (see `sibling`).
    pub fn sibling(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self { sibling: true, ..Self::new(path, text) }
    }
}

/// A name with the place it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub span: Span,
}

/// An entry of `depends_on`, between steps or between workflows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    /// An optional dependency is dropped silently when its target is not part of the run.
    pub optional: bool,
    pub span: Span,
}

/// A workflow: one Woodpecker file, or one `kind: pipeline` document of a Drone file.
#[derive(Clone, Debug)]
pub struct WorkflowSpec {
    pub name: String,
    pub file: String,
    pub dialect: Dialect,
    pub span: Span,
    /// The YAML document the workflow was read from, kept so that matrix rows can be
    /// substituted into it and read again.
    pub document: Node,
    /// Drone `type` (docker, exec, kubernetes, ...); Woodpecker workflows are `None`.
    pub runner_type: Option<Named>,
    pub when: When,
    pub depends_on: Vec<Dependency>,
    pub matrix: Option<Matrix>,
    pub labels: BTreeMap<String, String>,
    /// Drone `platform` as `os/arch`; Woodpecker's deprecated top-level `platform`.
    pub platform: Option<String>,
    pub workspace: WorkspaceSpec,
    pub clone: CloneSpec,
    pub steps: Vec<StepSpec>,
    pub services: Vec<StepSpec>,
    /// Drone's pipeline-level `environment`.
    pub environment: Vec<EnvironmentEntry>,
    /// Drone's pipeline-level named volumes.
    pub volumes: Vec<VolumeSpec>,
    pub concurrency: Option<Concurrency>,
    /// Drone `image_pull_secrets`: names of secrets holding registry credentials.
    pub image_pull_secrets: Vec<String>,
}

impl WorkflowSpec {
    /// An empty workflow of a file, with each field at what a file that says nothing means.
    pub fn new(name: &str, file: &str, dialect: Dialect, span: Span) -> Self {
        Self {
            name: name.to_owned(),
            file: file.to_owned(),
            dialect,
            span,
            document: Node::new(crate::yaml::NodeValue::Null, span),
            runner_type: None,
            when: When::default(),
            depends_on: Vec::new(),
            matrix: None,
            labels: BTreeMap::new(),
            platform: None,
            workspace: WorkspaceSpec::default(),
            clone: CloneSpec::Default { depth: None, tags: None, submodules: None, lfs: None },
            steps: Vec::new(),
            services: Vec::new(),
            environment: Vec::new(),
            volumes: Vec::new(),
            concurrency: None,
            image_pull_secrets: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceSpec {
    pub base: Option<String>,
    pub path: Option<String>,
}

#[derive(Clone, Debug)]
pub enum CloneSpec {
    /// The runtime clones the repository itself in a step named `clone`.
    Default { depth: Option<u32>, tags: Option<bool>, submodules: Option<bool>, lfs: Option<bool> },
    /// `skip_clone: true`, or Drone's `clone: {disable: true}`.
    Skip,
    /// Woodpecker's custom `clone:` steps replace the default one.
    Custom(Vec<StepSpec>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concurrency {
    pub limit: u32,
    pub group: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub span: Span,
    /// Axis name to values, in the order written.
    pub axes: Vec<(String, Vec<String>)>,
    /// Explicit rows given with `include`.
    pub include: Vec<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub kind: VolumeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    /// A volume that lives as long as the workflow (`temp: {}`); `memory` for tmpfs.
    Temporary { memory: bool },
    /// A host path; needs a trusted repository.
    Host { path: String },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// The step's failure fails the workflow and later steps do not run.
    #[default]
    Fail,
    /// The step shows as failed but the workflow goes on as if it passed.
    Ignore,
    /// The step's failure cancels the whole pipeline (Drone: `fail-fast`).
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    IfNotPresent,
    Always,
    Never,
}

/// An environment variable as written: a plain value or a secret reference.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentEntry {
    pub name: String,
    pub value: SettingValue,
    pub span: Span,
}

/// A value of `settings` or `environment`, kept structured until it is encoded for the container.
#[derive(Clone, Debug, PartialEq)]
pub enum SettingValue {
    Null,
    /// A scalar as text (numbers as written). Woodpecker encodes every nested scalar as a JSON
    /// string too, so the YAML type is not kept.
    Scalar(String),
    List(Vec<SettingValue>),
    Map(Vec<(String, SettingValue)>),
    /// `{from_secret: name}`; the plan carries the reference, never a value.
    Secret(String),
}

#[derive(Clone, Debug)]
pub struct StepSpec {
    pub name: String,
    pub span: Span,
    /// The step had no `name` in list form and was numbered.
    pub generated_name: bool,
    pub image: Option<String>,
    pub pull: Option<PullPolicy>,
    pub commands: Vec<String>,
    /// Drone's `command`: arguments to the image's entrypoint.
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub shell: Option<String>,
    pub environment: Vec<EnvironmentEntry>,
    pub settings: Vec<(String, SettingValue)>,
    /// Gantry's `build:` key: the step builds an image (see `image_build`).
    pub build: Option<Vec<(String, SettingValue)>>,
    /// Working directory: relative to the workspace path, or absolute.
    pub directory: Option<String>,
    pub when: When,
    /// `None` when the step does not say; `Some(vec![])` for an explicit empty list.
    pub depends_on: Option<Vec<Dependency>>,
    pub failure: FailurePolicy,
    /// Drone's `failure: always`... is not a thing; Drone steps run after failures with `when.status`.
    pub detach: bool,
    pub container: ContainerOptions,
    pub backend_options: Option<serde_json::Value>,
    /// Readiness check for services (a Gantry extension).
    pub healthcheck: Option<Healthcheck>,
    pub timeout_seconds: Option<u32>,
    /// Woodpecker's old `group`: consecutive steps of one group ran in parallel.
    pub group: Option<String>,
    /// Where each key of the step was written, in order, for diagnostics about a key; keys of
    /// `settings` and `build` as `settings.<key>`.
    pub key_spans: Vec<(String, Span)>,
}

/// How to tell a service is ready: a command run inside it until it succeeds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Healthcheck {
    pub command: Vec<String>,
    pub interval_seconds: u32,
    pub retries: u32,
}

impl StepSpec {
    pub fn new(name: impl Into<String>, span: Span) -> Self {
        Self {
            name: name.into(),
            span,
            generated_name: false,
            image: None,
            pull: None,
            commands: Vec::new(),
            command: Vec::new(),
            entrypoint: None,
            shell: None,
            environment: Vec::new(),
            settings: Vec::new(),
            build: None,
            directory: None,
            when: When::default(),
            depends_on: None,
            failure: FailurePolicy::Fail,
            detach: false,
            container: ContainerOptions::default(),
            backend_options: None,
            healthcheck: None,
            timeout_seconds: None,
            group: None,
            key_spans: Vec::new(),
        }
    }

    /// Where `key` was written in this step, or the step itself when it was not.
    pub fn key_span(&self, key: &str) -> Span {
        self.key_spans.iter().find(|(name, _)| name == key).map_or(self.span, |(_, span)| *span)
    }

    /// A step that runs its image's own entrypoint is a plugin. Woodpecker also demotes a step
    /// with `environment` to a commands step, but Drone plugins commonly have one and the step
    /// still runs the plugin, so Gantry goes by what runs.
    pub fn is_plugin(&self) -> bool {
        self.commands.is_empty() && self.entrypoint.is_none() && self.command.is_empty()
    }

    /// Names of all secrets this step references, in `environment` and anywhere in `settings`.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for entry in &self.environment {
            entry.value.collect_secrets(&mut names);
        }
        for (_, value) in &self.settings {
            value.collect_secrets(&mut names);
        }
        names
    }
}

impl SettingValue {
    pub fn collect_secrets<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            SettingValue::Secret(name) => {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
            SettingValue::List(items) => items.iter().for_each(|item| item.collect_secrets(names)),
            SettingValue::Map(entries) => entries.iter().for_each(|(_, value)| value.collect_secrets(names)),
            SettingValue::Null | SettingValue::Scalar(_) => {}
        }
    }
}
