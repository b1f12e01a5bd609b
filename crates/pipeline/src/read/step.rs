//! Reading steps and services, and the map-or-list collections that hold them.

use crate::diagnostic::code;
use crate::model::{Dialect, EnvironmentEntry, FailurePolicy, Healthcheck, PullPolicy, SettingValue, StepSpec};
use crate::read::condition::{ConditionScope, read_when};
use crate::read::{Reader, describe, to_json, yaml_1_1_boolean};
use crate::yaml::{Node, NodeValue, Span};

/// What a collection holds; services have a slightly different set of keys and name rules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepRole {
    Step,
    Service,
    Clone,
}

impl StepRole {
    fn noun(self) -> &'static str {
        match self {
            StepRole::Step => "step",
            StepRole::Service => "service",
            StepRole::Clone => "clone step",
        }
    }
}

const WOODPECKER_STEP_KEYS: &[&str] = &[
    "name",
    "image",
    "pull",
    "commands",
    "entrypoint",
    "environment",
    "secrets",
    "settings",
    "build",
    "directory",
    "when",
    "depends_on",
    "failure",
    "detach",
    "volumes",
    "privileged",
    "ports",
    "dns",
    "dns_search",
    "network_mode",
    "extra_hosts",
    "devices",
    "tmpfs",
    "backend_options",
    "healthcheck",
    "timeout",
    "group",
    "shell",
];
const DRONE_STEP_KEYS: &[&str] = &[
    "name",
    "image",
    "pull",
    "commands",
    "command",
    "entrypoint",
    "environment",
    "settings",
    "build",
    "when",
    "depends_on",
    "failure",
    "detach",
    "volumes",
    "privileged",
    "dns",
    "dns_search",
    "network_mode",
    "extra_hosts",
    "devices",
    "user",
    "working_dir",
    "shell",
    "mem_limit",
    "memswap_limit",
    "shm_size",
    "cpu_period",
    "cpu_quota",
    "cpu_shares",
    "cpu_set",
    "healthcheck",
    "timeout",
    "ports",
    "resources",
];

/// Reads `steps:` / `services:` / `clone:` written as a mapping (key = name) or a list.
pub(crate) fn read_steps(
    reader: &mut Reader<'_>,
    node: &Node,
    dialect: Dialect,
    role: StepRole,
    field: &str,
    image_required: bool,
) -> Vec<StepSpec> {
    let mut steps = Vec::new();
    match &node.value {
        NodeValue::Null => {}
        NodeValue::Mapping(entries) if dialect == Dialect::Woodpecker => {
            for (key, value) in entries {
                let Some(name) = reader.key_text(key) else { continue };
                let name = name.into_owned();
                if let Some(step) = read_step(reader, value, dialect, role, Some((name, key)), image_required) {
                    steps.push(step);
                }
            }
        }
        NodeValue::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                if let Some(mut step) = read_step(reader, item, dialect, role, None, image_required) {
                    if step.name.is_empty() {
                        if role == StepRole::Service || dialect == Dialect::Drone {
                            reader.error(code::MISSING_KEY, item.span, format!("{} needs a `name`", role.noun())).hint =
                                Some(if role == StepRole::Service {
                                    "the name is the host name other steps reach the service at".into()
                                } else {
                                    "add `name: <step name>`".into()
                                });
                        }
                        // Woodpecker numbers unnamed steps by their position, from 0.
                        step.name = format!("{}-{}", role.noun().replace(' ', "-"), index);
                        step.generated_name = true;
                    }
                    steps.push(step);
                }
            }
        }
        _ => {
            let expected = if dialect == Dialect::Woodpecker { "a mapping of names to steps, or a list" } else { "a list" };
            reader.wrong_type(node, field, expected);
        }
    }
    steps
}

fn read_step(
    reader: &mut Reader<'_>,
    node: &Node,
    dialect: Dialect,
    role: StepRole,
    keyed_name: Option<(String, &Node)>,
    image_required: bool,
) -> Option<StepSpec> {
    let span = keyed_name.as_ref().map_or(node.span, |(_, key)| key.span);
    let mut step = StepSpec::new(keyed_name.as_ref().map(|(name, _)| name.clone()).unwrap_or_default(), span);
    let NodeValue::Mapping(entries) = &node.value else {
        reader.wrong_type(node, role.noun(), "a mapping of step keys");
        return None;
    };
    let known = if dialect == Dialect::Woodpecker { WOODPECKER_STEP_KEYS } else { DRONE_STEP_KEYS };
    let mut legacy_secrets = Vec::new();
    let mut unknown: Vec<(&Node, &Node, String)> = Vec::new();
    for (key, value) in entries {
        let Some(name) = reader.key_text(key) else { continue };
        let name = name.into_owned();
        step.key_spans.push((name.clone(), key.span));
        match name.as_str() {
            "name" => {
                // A `name` inside a keyed step renames it, as Woodpecker allows.
                if let Some(text) = reader.string(value, "name") {
                    step.name = text;
                    step.span = value.span;
                }
            }
            "image" => step.image = reader.string(value, "image").filter(|image| !image.trim().is_empty()),
            "pull" => step.pull = read_pull(reader, value),
            "commands" => step.commands = read_commands(reader, value, "commands"),
            "command" => step.command = read_commands(reader, value, "command"),
            "entrypoint" => step.entrypoint = Some(read_entrypoint(reader, value)),
            "environment" => step.environment = reader.environment(value, "environment"),
            "secrets" if dialect == Dialect::Woodpecker => {
                reader
                    .warning(code::DEPRECATED, key.span, "`secrets` was removed in Woodpecker 3; read as `environment` with `from_secret`")
                    .hint = Some("write `environment: {NAME: {from_secret: name}}`".into());
                legacy_secrets = read_legacy_secrets(reader, value);
            }
            "settings" => step.settings = read_settings(reader, value, "settings", &mut step.key_spans),
            "build" => step.build = Some(read_settings(reader, value, "build", &mut step.key_spans)),
            "directory" | "working_dir" => step.directory = reader.string(value, &name),
            "when" => step.when = read_when(reader, value, dialect, ConditionScope::Step),
            "depends_on" => {
                if role == StepRole::Service {
                    reader.warning(code::UNKNOWN_KEY, key.span, "services start before all steps; `depends_on` is ignored here");
                } else {
                    step.depends_on = Some(reader.dependencies(value, "depends_on"));
                }
            }
            "failure" => step.failure = read_failure(reader, value, dialect),
            "detach" => step.detach = reader.boolean(value, "detach").unwrap_or(false),
            "privileged" => step.container.privileged = reader.boolean(value, "privileged").unwrap_or(false),
            "volumes" => step.container.volumes = read_volumes(reader, value),
            "ports" => step.container.ports = reader.string_list(value, "ports"),
            "dns" => step.container.dns = reader.string_list(value, "dns"),
            "dns_search" => step.container.dns_search = reader.string_list(value, "dns_search"),
            "network_mode" => step.container.network_mode = reader.string(value, "network_mode"),
            "extra_hosts" => step.container.extra_hosts = reader.string_list(value, "extra_hosts"),
            "devices" => step.container.devices = read_volumes(reader, value),
            "tmpfs" => step.container.tmpfs = reader.string_list(value, "tmpfs"),
            "user" => step.container.user = reader.string(value, "user"),
            "shell" => step.shell = reader.string(value, "shell"),
            "backend_options" => {
                if value.as_mapping().is_none() && !value.is_null() {
                    reader.wrong_type(value, "backend_options", "a mapping");
                } else if !value.is_null() {
                    // An empty key is no options: `Some(null)` would not survive the plan's
                    // trip through JSON to an agent (the fuzzer found it).
                    step.backend_options = Some(to_json(value));
                }
            }
            "healthcheck" => step.healthcheck = read_healthcheck(reader, value),
            "timeout" => step.timeout_seconds = read_timeout(reader, value),
            "mem_limit" => step.container.memory_limit = reader.string(value, "mem_limit"),
            "shm_size" => step.container.shm_size = reader.string(value, "shm_size"),
            "memswap_limit" | "cpu_period" | "cpu_quota" | "cpu_shares" | "cpu_set" | "resources" => {
                reader.warning(code::UNSUPPORTED, key.span, format!("`{name}` is read but not applied by Gantry yet"));
            }
            "group" => {
                reader.warning(code::DEPRECATED, key.span, "`group` was removed from Woodpecker; read as a stage of parallel steps").hint =
                    Some("use `depends_on` to run steps in parallel".into());
                step.group = reader.string(value, "group");
            }
            _ => unknown.push((key, value, name)),
        }
    }
    // Before `settings` existed (Woodpecker 0.15, Drone 0.8) a plugin's parameters stood on the
    // step itself; both read such keys as settings, and so does Gantry for files in that format.
    if reader.legacy_plugin_parameters && step.commands.is_empty() && role != StepRole::Service && !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|(_, _, name)| format!("`{name}`")).collect();
        reader
            .warning(
                code::DEPRECATED,
                unknown[0].0.span,
                format!("plugin parameters on the step ({}) are read as `settings`", names.join(", ")),
            )
            .hint = Some("move them under `settings:`".into());
        for (_, value, name) in unknown {
            let value = reader.setting_value(value);
            step.settings.push((name, value));
        }
    } else {
        for (key, _, name) in unknown {
            reader.unknown_key(key, &name, known, &format!("a {}", role.noun()));
        }
    }
    for entry in legacy_secrets {
        if !step.environment.iter().any(|existing| existing.name == entry.name) {
            step.environment.push(entry);
        }
    }
    if step.build.is_some() {
        let conflicting: Vec<String> = ["image", "commands", "command", "entrypoint", "settings"]
            .into_iter()
            .filter(|key| step.key_spans.iter().any(|(written, _)| written == key))
            .map(|key| format!("`{key}`"))
            .collect();
        if role != StepRole::Step {
            reader.error(code::INVALID_VALUE, step.key_span("build"), format!("only a step can build an image, not a {}", role.noun()));
        } else if !conflicting.is_empty() {
            reader
                .error(
                    code::INVALID_VALUE,
                    step.key_span("build"),
                    format!("step `{}` builds an image, so it takes no {}", step.name, conflicting.join(", ")),
                )
                .hint = Some("Gantry builds the image itself: move commands to a step of their own".into());
        }
    } else if step.image.is_none() && image_required {
        reader.error(code::MISSING_KEY, span, format!("{} `{}` has no `image`", role.noun(), step.name)).hint =
            Some("every step runs in a container: add `image: <name>:<tag>`".into());
    }
    if !step.commands.is_empty() && !step.settings.is_empty() && dialect == Dialect::Woodpecker {
        reader
            .warning(
                code::INVALID_VALUE,
                span,
                format!("step `{}` has both `commands` and `settings`; the settings reach the commands as PLUGIN_* variables", step.name),
            )
            .hint = Some("Woodpecker 2 and later refuse this: a step either runs commands or is a plugin configured by settings".into());
    }
    Some(step)
}

fn read_pull(reader: &mut Reader<'_>, node: &Node) -> Option<PullPolicy> {
    match &node.value {
        NodeValue::Bool(true) => Some(PullPolicy::Always),
        NodeValue::Bool(false) => Some(PullPolicy::IfNotPresent),
        NodeValue::Null => None,
        _ => match node.scalar_text().as_deref() {
            Some("always") => Some(PullPolicy::Always),
            Some("if-not-exists" | "if-not-present" | "default") => Some(PullPolicy::IfNotPresent),
            Some("never") => Some(PullPolicy::Never),
            Some(text) if yaml_1_1_boolean(text).is_some() => {
                Some(if yaml_1_1_boolean(text) == Some(true) { PullPolicy::Always } else { PullPolicy::IfNotPresent })
            }
            _ => {
                reader.error(
                    code::INVALID_VALUE,
                    node.span,
                    format!("`pull` must be true, false, always, if-not-exists or never, found {}", describe(node)),
                );
                None
            }
        },
    }
}

fn read_commands(reader: &mut Reader<'_>, node: &Node, field: &str) -> Vec<String> {
    let items: Vec<&Node> = match &node.value {
        NodeValue::Mapping(_) => {
            reader.wrong_type(node, field, "a string or a list of strings");
            return Vec::new();
        }
        NodeValue::Sequence(items) => items.iter().collect(),
        NodeValue::Null => return Vec::new(),
        _ => vec![node],
    };
    let mut commands = Vec::with_capacity(items.len());
    for item in items {
        match item.scalar_text() {
            Some(text) => commands.push(text.into_owned()),
            None if item.as_mapping().is_some() => {
                // The classic: an unquoted command containing `: ` reads as a mapping.
                let key = item.as_mapping().and_then(|entries| entries.first()).and_then(|(key, _)| key.scalar_text()).unwrap_or_default();
                reader
                    .error(code::WRONG_TYPE, item.span, format!("this {field} item is read as a mapping because of the `: ` after `{key}`"))
                    .hint =
                    Some("YAML reads `word: text` as a key and a value; put the whole command in single quotes, or use a `|` block".into());
            }
            None => reader.wrong_type(item, &format!("{field} item"), "a string"),
        }
    }
    commands
}

fn read_entrypoint(reader: &mut Reader<'_>, node: &Node) -> Vec<String> {
    match &node.value {
        NodeValue::Sequence(_) => reader.string_list(node, "entrypoint"),
        _ => reader.string(node, "entrypoint").map(|text| text.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
    }
}

/// Woodpecker 2's `secrets: [name]` or `[{source, target}]`, as environment entries.
fn read_legacy_secrets(reader: &mut Reader<'_>, node: &Node) -> Vec<EnvironmentEntry> {
    let mut entries = Vec::new();
    for item in node.as_sequence().unwrap_or_default() {
        match &item.value {
            NodeValue::Mapping(_) => {
                let source = item.get("source").and_then(|value| value.scalar_text().map(std::borrow::Cow::into_owned));
                let target = item.get("target").and_then(|value| value.scalar_text().map(std::borrow::Cow::into_owned));
                if let Some(source) = source {
                    let name = target.unwrap_or_else(|| source.clone()).to_uppercase();
                    entries.push(EnvironmentEntry { name, value: SettingValue::Secret(source), span: item.span });
                }
            }
            _ => {
                if let Some(name) = reader.string(item, "secrets") {
                    entries.push(EnvironmentEntry { name: name.to_uppercase(), value: SettingValue::Secret(name), span: item.span });
                }
            }
        }
    }
    entries
}

/// A mapping of plugin settings (or `build:`); each key's place is kept as `<section>.<key>`.
fn read_settings(reader: &mut Reader<'_>, node: &Node, section: &str, key_spans: &mut Vec<(String, Span)>) -> Vec<(String, SettingValue)> {
    let mut settings = Vec::new();
    for (key, value) in reader.mapping(node, section) {
        let Some(name) = reader.key_text(key) else { continue };
        key_spans.push((format!("{section}.{name}"), key.span));
        let value = reader.setting_value(value);
        settings.push((name.into_owned(), value));
    }
    settings
}

fn read_failure(reader: &mut Reader<'_>, node: &Node, dialect: Dialect) -> FailurePolicy {
    match reader.string(node, "failure").as_deref() {
        None | Some("" | "fail") => FailurePolicy::Fail,
        Some("ignore") => FailurePolicy::Ignore,
        Some("cancel") if dialect == Dialect::Woodpecker => FailurePolicy::Cancel,
        Some("fail-fast" | "fast") if dialect == Dialect::Drone => FailurePolicy::Cancel,
        Some("always") if dialect == Dialect::Drone => FailurePolicy::Fail,
        Some(other) => {
            let choices = if dialect == Dialect::Woodpecker { "fail, ignore or cancel" } else { "fail, ignore or fail-fast" };
            reader.error(code::INVALID_VALUE, node.span, format!("unknown failure policy `{other}`")).hint =
                Some(format!("`failure` is {choices}"));
            FailurePolicy::Fail
        }
    }
}

/// Volumes as `source:target[:mode]` strings. Drone writes `{name, path}` and refers to a
/// pipeline-level volume by name; that stays `name:path` and the compiler resolves it.
fn read_volumes(reader: &mut Reader<'_>, node: &Node) -> Vec<String> {
    let mut volumes = Vec::new();
    let items: Vec<&Node> = match &node.value {
        NodeValue::Sequence(items) => items.iter().collect(),
        NodeValue::Null => Vec::new(),
        _ => vec![node],
    };
    for item in items {
        match &item.value {
            NodeValue::Mapping(_) => {
                let name = item.get("name").and_then(|value| value.scalar_text().map(std::borrow::Cow::into_owned));
                let path = item.get("path").and_then(|value| value.scalar_text().map(std::borrow::Cow::into_owned));
                match (name, path) {
                    (Some(name), Some(path)) => volumes.push(format!("{name}:{path}")),
                    _ => {
                        reader.error(code::MISSING_KEY, item.span, "a volume written as a mapping needs `name` and `path`");
                    }
                }
            }
            _ => {
                if let Some(text) = reader.string(item, "volumes") {
                    // A lone absolute path is a volume of its own at that path, as in Docker.
                    if !text.contains(':') && !text.starts_with('/') {
                        reader.error(code::INVALID_VALUE, item.span, format!("volume `{text}` has no target path")).hint =
                            Some("write `source:/path/in/container` (add `:ro` for read-only)".into());
                        continue;
                    }
                    volumes.push(text);
                }
            }
        }
    }
    volumes
}

fn read_healthcheck(reader: &mut Reader<'_>, node: &Node) -> Option<Healthcheck> {
    let mut healthcheck = Healthcheck { command: Vec::new(), interval_seconds: 1, retries: 60 };
    for (key, value) in reader.mapping(node, "healthcheck") {
        let Some(name) = reader.key_text(key) else { continue };
        match name.as_ref() {
            "command" | "test" => healthcheck.command = read_commands(reader, value, "healthcheck.command"),
            "interval" => healthcheck.interval_seconds = read_seconds(reader, value, "healthcheck.interval").unwrap_or(1),
            "retries" => healthcheck.retries = reader.unsigned(value, "healthcheck.retries").unwrap_or(60),
            other => reader.unknown_key(key, other, &["command", "interval", "retries"], "a healthcheck"),
        }
    }
    if healthcheck.command.is_empty() {
        reader.error(code::MISSING_KEY, node.span, "a healthcheck needs a `command` that succeeds once the service is ready");
        return None;
    }
    Some(healthcheck)
}

/// Seconds as a number or with a unit: `5`, `5s`, `2m`.
fn read_seconds(reader: &mut Reader<'_>, node: &Node, field: &str) -> Option<u32> {
    let text = reader.string(node, field)?;
    let text = text.trim();
    let (digits, multiplier) = if let Some(digits) = text.strip_suffix('s') {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 60)
    } else {
        (text, 1)
    };
    match digits.trim().parse::<u32>() {
        Ok(value) => Some(value.saturating_mul(multiplier)),
        Err(_) => {
            reader.error(
                code::INVALID_VALUE,
                node.span,
                format!("`{field}` must be a duration like `5s` or `2m`, found {}", describe(node)),
            );
            None
        }
    }
}

/// Step timeout in minutes: a number of minutes, or `30m`, `1h`.
/// Step timeout in seconds: a number of minutes, or `90s`, `30m`, `1h`.
fn read_timeout(reader: &mut Reader<'_>, node: &Node) -> Option<u32> {
    let text = reader.string(node, "timeout")?;
    let text = text.trim();
    let (digits, multiplier) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3600),
        _ => (text, 60),
    };
    let parsed = digits.trim().parse::<u32>().ok().filter(|value| *value > 0).map(|value| value.saturating_mul(multiplier));
    if parsed.is_none() {
        reader.error(
            code::INVALID_VALUE,
            node.span,
            format!("`timeout` must be a duration like `90s`, `30m` or `1h` (a bare number is minutes), found {}", describe(node)),
        );
    }
    parsed
}
