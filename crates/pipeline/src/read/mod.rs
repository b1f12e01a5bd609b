//! Reading: YAML nodes to the spanned model, collecting every diagnostic on the way.
//!
//! Readers never stop at the first problem: a value of the wrong type is reported and left out,
//! and reading goes on, so that one `gantry lint` shows everything that is wrong in a file.

mod condition;
mod drone;
mod step;
mod woodpecker;

use std::borrow::Cow;

use crate::diagnostic::{Diagnostic, code, did_you_mean};
use crate::model::{Dependency, Dialect, EnvironmentEntry, SettingValue, SourceFile, WorkflowSpec};
use crate::yaml::{self, Node, NodeValue, Span};

/// The workflows of one file and what reading them found.
#[derive(Debug)]
pub struct ReadFile {
    pub workflows: Vec<WorkflowSpec>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Which dialect a file is written in, from its name: `.drone.yml` and `.drone.yaml` (in any
/// folder) are Drone, everything else Woodpecker.
pub fn dialect_of(path: &str) -> Dialect {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let lower = base.to_ascii_lowercase();
    if lower.starts_with(".drone") || lower.starts_with("drone.") { Dialect::Drone } else { Dialect::Woodpecker }
}

/// Reads one pipeline file in the dialect its name implies; a file with another name (a custom
/// config path) is Drone when a document says `kind: pipeline`, else Woodpecker.
pub fn read_file(source: &SourceFile) -> ReadFile {
    let base = source.path.rsplit(['/', '\\']).next().unwrap_or(&source.path).to_ascii_lowercase();
    let named_for_woodpecker = base.starts_with(".woodpecker") || source.path.contains(".woodpecker/");
    let dialect = match dialect_of(&source.path) {
        Dialect::Woodpecker if !named_for_woodpecker && looks_like_drone(&source.text) => Dialect::Drone,
        dialect => dialect,
    };
    read_file_as(source, dialect)
}

/// A cheap look at the text: a top-level `kind: pipeline` line is Drone's mark.
fn looks_like_drone(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_end();
        line == "kind: pipeline" || line == "kind: \"pipeline\"" || line == "kind: 'pipeline'"
    }) || text.contains("\"kind\": \"pipeline\"")
}

/// Reads one pipeline file in the given dialect.
pub fn read_file_as(source: &SourceFile, dialect: Dialect) -> ReadFile {
    let mut reader = Reader::new(&source.path);
    let documents = match yaml::parse_documents(&source.text) {
        Ok(documents) => documents,
        Err(error) => {
            let mut diagnostic = Diagnostic::error(code::YAML_SYNTAX, &source.path, error.span, error.message);
            diagnostic.hint = error.hint;
            return ReadFile { workflows: Vec::new(), diagnostics: vec![diagnostic] };
        }
    };
    let workflows = match dialect {
        Dialect::Woodpecker => woodpecker::read_documents(&mut reader, documents),
        Dialect::Drone => drone::read_documents(&mut reader, documents),
    };
    ReadFile { workflows, diagnostics: reader.diagnostics }
}

/// Reads a workflow document again, after substitution, without collecting diagnostics twice.
pub(crate) fn reread_document(workflow: &WorkflowSpec, document: Node) -> (Option<WorkflowSpec>, Vec<Diagnostic>) {
    let mut reader = Reader::new(&workflow.file);
    let spec = match workflow.dialect {
        Dialect::Woodpecker => woodpecker::read_workflow(&mut reader, &workflow.name, document),
        Dialect::Drone => drone::read_documents(&mut reader, vec![document]).into_iter().next(),
    };
    (spec, reader.diagnostics)
}

/// The workflow name Woodpecker gives a file: its base name without leading dots and extension.
pub fn workflow_name_from_path(path: &str) -> String {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let base = base.trim_start_matches('.');
    let stem = base.strip_suffix(".yml").or_else(|| base.strip_suffix(".yaml")).or_else(|| base.strip_suffix(".json")).unwrap_or(base);
    if stem.is_empty() { "woodpecker".to_owned() } else { stem.to_owned() }
}

/// Diagnostics sink and typed accessors shared by both dialect readers.
pub(crate) struct Reader<'a> {
    pub file: &'a str,
    pub diagnostics: Vec<Diagnostic>,
    /// The document is in the format from before `settings` (a `pipeline:` key): unknown keys
    /// of plugin steps are their parameters.
    pub legacy_plugin_parameters: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(file: &'a str) -> Self {
        Self { file, diagnostics: Vec::new(), legacy_plugin_parameters: false }
    }

    pub(crate) fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::error(code, self.file, span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub(crate) fn warning(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::warning(code, self.file, span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub(crate) fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        self.error(code::WRONG_TYPE, node.span, format!("`{field}` must be {expected}, found {}", node.type_name()));
    }

    /// The entries of a mapping, reporting anything else. Null counts as an empty mapping.
    pub(crate) fn mapping<'n>(&mut self, node: &'n Node, field: &str) -> &'n [(Node, Node)] {
        match &node.value {
            NodeValue::Mapping(entries) => entries,
            NodeValue::Null => &[],
            _ => {
                self.wrong_type(node, field, "a mapping");
                &[]
            }
        }
    }

    /// A key's text; keys are scalars in every format we read.
    pub(crate) fn key_text<'n>(&mut self, key: &'n Node) -> Option<Cow<'n, str>> {
        let text = key.scalar_text();
        if text.is_none() {
            self.error(code::WRONG_TYPE, key.span, format!("a key must be a plain name, found {}", key.type_name()));
        }
        text
    }

    pub(crate) fn unknown_key(&mut self, key: &Node, name: &str, known: &[&str], context: &str) {
        let diagnostic = self.warning(code::UNKNOWN_KEY, key.span, format!("unknown key `{name}` in {context}; it is ignored"));
        if let Some(suggestion) = did_you_mean(name, known.iter().copied()) {
            diagnostic.hint = Some(format!("did you mean `{suggestion}`?"));
        }
    }

    /// A scalar as text (numbers as written, booleans as `true`/`false`).
    pub(crate) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) => Some(text.into_owned()),
            None if node.is_null() => None,
            None => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// A string or a list of strings.
    pub(crate) fn string_list(&mut self, node: &Node, field: &str) -> Vec<String> {
        match &node.value {
            NodeValue::Null => Vec::new(),
            NodeValue::Sequence(items) => items
                .iter()
                .filter_map(|item| match item.scalar_text() {
                    Some(text) => Some(text.into_owned()),
                    None => {
                        self.wrong_type(item, &format!("{field} item"), "a string");
                        None
                    }
                })
                .collect(),
            _ => self.string(node, field).into_iter().collect(),
        }
    }

    /// A boolean; the strings `true` and `false` are accepted because substitution produces strings.
    pub(crate) fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(value) => Some(*value),
            NodeValue::Null => None,
            NodeValue::String(text) if yaml_1_1_boolean(text).is_some() => yaml_1_1_boolean(text),
            _ => {
                let diagnostic =
                    self.error(code::WRONG_TYPE, node.span, format!("`{field}` must be true or false, found {}", describe(node)));
                diagnostic.hint = Some(format!("write `{field}: true` or `{field}: false`"));
                None
            }
        }
    }

    pub(crate) fn unsigned(&mut self, node: &Node, field: &str) -> Option<u32> {
        match node.scalar_text().map(|text| text.trim().parse::<u32>()) {
            Some(Ok(value)) => Some(value),
            _ if node.is_null() => None,
            _ => {
                self.error(code::WRONG_TYPE, node.span, format!("`{field}` must be a whole number, found {}", describe(node)));
                None
            }
        }
    }

    /// `depends_on`: a name, a list of names, or a list of `{name, optional}`.
    pub(crate) fn dependencies(&mut self, node: &Node, field: &str) -> Vec<Dependency> {
        let items: Vec<&Node> = match &node.value {
            NodeValue::Sequence(items) => items.iter().collect(),
            NodeValue::Null => Vec::new(),
            _ => vec![node],
        };
        let mut dependencies = Vec::new();
        for item in items {
            match &item.value {
                NodeValue::Mapping(_) => {
                    let mut name = None;
                    let mut optional = false;
                    for (key, value) in self.mapping(item, field) {
                        let Some(key_name) = self.key_text(key) else { continue };
                        match key_name.as_ref() {
                            "name" => name = self.string(value, "depends_on.name"),
                            "optional" => optional = self.boolean(value, "depends_on.optional").unwrap_or(false),
                            other => self.unknown_key(key, other, &["name", "optional"], "a dependency"),
                        }
                    }
                    match name {
                        Some(name) => dependencies.push(Dependency { name, optional, span: item.span }),
                        None => {
                            self.error(code::MISSING_KEY, item.span, "a dependency written as a mapping needs `name`");
                        }
                    }
                }
                _ => {
                    if let Some(name) = self.string(item, field) {
                        dependencies.push(Dependency { name, optional: false, span: item.span });
                    }
                }
            }
        }
        dependencies
    }

    /// `environment` as a mapping, or the old list form `- NAME=value`.
    pub(crate) fn environment(&mut self, node: &Node, field: &str) -> Vec<EnvironmentEntry> {
        let mut entries = Vec::new();
        match &node.value {
            NodeValue::Mapping(pairs) => {
                for (key, value) in pairs {
                    let Some(name) = self.key_text(key) else { continue };
                    let value = self.setting_value(value);
                    entries.push(EnvironmentEntry { name: name.into_owned(), value, span: key.span });
                }
            }
            NodeValue::Sequence(items) => {
                for item in items {
                    match item.as_str().and_then(|text| text.split_once('=')) {
                        Some((name, value)) => entries.push(EnvironmentEntry {
                            name: name.to_owned(),
                            value: SettingValue::Scalar(value.to_owned()),
                            span: item.span,
                        }),
                        None => {
                            self.error(code::WRONG_TYPE, item.span, format!("`{field}` items in list form are `NAME=value`")).hint =
                                Some("or write the environment as a mapping: `NAME: value`".into());
                        }
                    }
                }
            }
            NodeValue::Null => {}
            _ => self.wrong_type(node, field, "a mapping of names to values"),
        }
        entries
    }

    /// A settings or environment value, with `{from_secret: name}` recognised at any depth.
    pub(crate) fn setting_value(&mut self, node: &Node) -> SettingValue {
        match &node.value {
            NodeValue::Null => SettingValue::Null,
            NodeValue::Bool(_) | NodeValue::Number(_) | NodeValue::String(_) => {
                SettingValue::Scalar(node.scalar_text().map(Cow::into_owned).unwrap_or_default())
            }
            NodeValue::Sequence(items) => SettingValue::List(items.iter().map(|item| self.setting_value(item)).collect()),
            NodeValue::Mapping(entries) => {
                if let [(key, value)] = entries.as_slice()
                    && key.as_str() == Some("from_secret")
                {
                    return match value.scalar_text() {
                        Some(name) if !name.trim().is_empty() => SettingValue::Secret(name.trim().to_owned()),
                        _ => {
                            self.error(code::WRONG_TYPE, value.span, "`from_secret` must name a secret");
                            SettingValue::Null
                        }
                    };
                }
                let mut map = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    if key.as_str() == Some("from_secret") {
                        self.error(code::INVALID_VALUE, key.span, "`from_secret` must be the only key of its mapping");
                    }
                    let Some(name) = self.key_text(key) else { continue };
                    let value = self.setting_value(value);
                    map.push((name.into_owned(), value));
                }
                SettingValue::Map(map)
            }
        }
    }
}

/// go-yaml v3 reads YAML 1.1 booleans (`yes`, `on`, ...) into typed boolean fields, so files
/// have them there; elsewhere they stay strings.
pub(crate) fn yaml_1_1_boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A node for messages: scalars quoted, containers by type.
pub(crate) fn describe(node: &Node) -> String {
    match node.scalar_text() {
        Some(text) => format!("{text:?}"),
        None => node.type_name().to_owned(),
    }
}

/// Converts a node to JSON for opaque pass-through values (`backend_options`).
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    match &node.value {
        NodeValue::Null => serde_json::Value::Null,
        NodeValue::Bool(value) => serde_json::Value::Bool(*value),
        NodeValue::Number(text) => text
            .parse::<i64>()
            .map(serde_json::Value::from)
            .or_else(|_| text.parse::<f64>().map(serde_json::Value::from))
            .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
        NodeValue::String(text) => serde_json::Value::String(text.clone()),
        NodeValue::Sequence(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        NodeValue::Mapping(entries) => serde_json::Value::Object(
            entries.iter().map(|(key, value)| (key.scalar_text().map(Cow::into_owned).unwrap_or_default(), to_json(value))).collect(),
        ),
    }
}
