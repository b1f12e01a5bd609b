//! Reading an environment repository: the files' text to the model, and every mistake at once
//! with its file, line and column. No IO: the caller hands over the files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipeline::diagnostic::{Diagnostic, code, did_you_mean};
use pipeline::yaml::{Node, NodeValue, Span, parse_documents};

use crate::model::*;

/// Codes of mistakes only an environment repository can have (the rest are the pipeline's).
pub mod codes {
    pub const UNSUPPORTED_VERSION: &str = "unsupported-version";
    pub const UNKNOWN_TARGET: &str = "unknown-target";
    pub const PORT_CONFLICT: &str = "port-conflict";
    pub const UNKNOWN_SECRET: &str = "unknown-secret";
    pub const DIGEST_REQUIRED: &str = "digest-required";
    pub const MISSING_FILE: &str = "missing-file";
    pub const STOP_FIRST: &str = "stop-first";
    pub const PROBE_ON_SWARM: &str = "probe-on-swarm";
    pub const UNREACHABLE_APPROVALS: &str = "unreachable-approvals";
}

/// One file of the repository: its path relative to the root (`apps/web.yml`) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoFile {
    pub path: String,
    pub text: String,
}

/// What the checks may know beyond the files.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The names in the deployer's secret store; `None` when it is not at hand (`gantry lint`
    /// on a laptop), which leaves secret names unchecked.
    pub known_secrets: Option<BTreeSet<String>>,
}

/// The repository when it has no errors, and every diagnostic (errors and warnings) either way:
/// the applications are read even when the environment file has mistakes.
pub fn read_repository(files: &[RepoFile], options: &ReadOptions) -> (Option<EnvironmentRepo>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let paths: BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
    let Some(environment_file) = files.iter().find(|file| file.path == ENVIRONMENT_FILE) else {
        diagnostics.push(
            Diagnostic::error(
                code::MISSING_KEY,
                ENVIRONMENT_FILE,
                Span::new(1, 1),
                "an environment repository has an environment.yml at its root",
            )
            .with_hint("start from examples/environment/environment.yml"),
        );
        return (None, diagnostics);
    };
    let environment = read_environment(environment_file, &mut diagnostics);
    let mut apps = BTreeMap::new();
    for file in files.iter().filter(|file| is_app_file(&file.path)) {
        if let Some(environment) = &environment
            && let Some(app) = read_app(file, environment, &paths, &mut diagnostics)
        {
            apps.insert(app.name.clone(), app);
        }
    }
    if let Some(environment) = &environment {
        check_across(environment, &apps, options, &mut diagnostics);
    }
    pipeline::diagnostic::sort(&mut diagnostics);
    let repository =
        environment.filter(|_| !diagnostics.iter().any(Diagnostic::is_error)).map(|environment| EnvironmentRepo { environment, apps });
    (repository, diagnostics)
}

/// `apps/<name>.yml` or `.yaml`, directly in the folder (deeper files are the apps' configs).
pub fn is_app_file(path: &str) -> bool {
    path.strip_prefix(APPS_FOLDER)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.contains('/') && (name.ends_with(".yml") || name.ends_with(".yaml")))
}

/// True when these paths look like an environment repository.
pub fn is_environment_repository(paths: &[&str]) -> bool {
    paths.contains(&ENVIRONMENT_FILE)
}

/// Diagnostics of one file, and typed reads of its values.
struct FileReader<'a> {
    file: &'a str,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl FileReader<'_> {
    fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::error(code, self.file, span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn warning(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::warning(code, self.file, span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        self.error(code::WRONG_TYPE, node.span, format!("`{field}` must be {expected}, found {}", node.type_name()));
    }

    /// The entries of a mapping by key text; unknown keys are reported with a did-you-mean.
    fn fields<'n>(&mut self, node: &'n Node, context: &str, known: &[&str]) -> Vec<(&'n str, &'n Node, Span)> {
        let entries = match &node.value {
            NodeValue::Mapping(entries) => entries,
            NodeValue::Null => return Vec::new(),
            _ => {
                self.wrong_type(node, context, "a mapping");
                return Vec::new();
            }
        };
        let mut fields = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                self.error(code::WRONG_TYPE, key.span, format!("a key must be a plain name, found {}", key.type_name()));
                continue;
            };
            if known.contains(&name) {
                fields.push((name, value, key.span));
            } else {
                let diagnostic = self.error(code::UNKNOWN_KEY, key.span, format!("unknown key `{name}` in {context}"));
                diagnostic.hint = Some(match did_you_mean(name, known.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("known keys: {}", known.join(", ")),
                });
            }
        }
        fields
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) if !text.trim().is_empty() => Some(text.into_owned()),
            _ if matches!(node.value, NodeValue::Sequence(_) | NodeValue::Mapping(_)) => {
                self.wrong_type(node, field, "a string");
                None
            }
            _ => {
                self.error(code::INVALID_VALUE, node.span, format!("`{field}` is empty"));
                None
            }
        }
    }

    /// A list of strings, or one string split on whitespace (as compose reads `command`).
    fn words(&mut self, node: &Node, field: &str) -> Vec<String> {
        match &node.value {
            NodeValue::Sequence(items) => items.iter().filter_map(|item| self.string(item, &format!("{field} item"))).collect(),
            _ => self.string(node, field).map(|text| text.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
        }
    }

    fn unsigned(&mut self, node: &Node, field: &str, minimum: u32) -> Option<u32> {
        match node.scalar_text().and_then(|text| text.trim().parse::<u32>().ok()) {
            Some(value) if value >= minimum => Some(value),
            _ => {
                self.error(
                    code::INVALID_VALUE,
                    node.span,
                    format!("`{field}` must be a whole number of at least {minimum}, found {}", shown(node)),
                );
                None
            }
        }
    }

    fn port_number(&mut self, text: &str, span: Span, field: &str) -> Option<u16> {
        match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => {
                self.error(code::INVALID_VALUE, span, format!("`{field}` must be a port from 1 to 65535, found `{text}`"));
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let parsed = node.scalar_text().and_then(|text| parse_duration(&text));
        if parsed.is_none() {
            self.error(
                code::INVALID_VALUE,
                node.span,
                format!("`{field}` must be a duration such as `30s`, `1m30s` or `500ms`, found {}", shown(node)),
            )
            .hint = Some("units: ms, s, m, h; a bare number is seconds".to_owned());
        }
        parsed
    }

    fn string_map(&mut self, node: &Node, field: &str) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        match &node.value {
            NodeValue::Mapping(entries) => {
                for (key, value) in entries {
                    let (Some(name), Some(text)) = (key.scalar_text(), value.scalar_text().or_else(|| value.is_null().then(|| "".into())))
                    else {
                        self.wrong_type(value, &format!("{field} value"), "a string");
                        continue;
                    };
                    map.insert(name.into_owned(), text.into_owned());
                }
            }
            // Compose's list form: `- KEY=value`.
            NodeValue::Sequence(items) => {
                for item in items {
                    match item.as_str().and_then(|text| text.split_once('=')) {
                        Some((name, value)) if !name.is_empty() => {
                            map.insert(name.to_owned(), value.to_owned());
                        }
                        _ => {
                            self.error(code::INVALID_VALUE, item.span, format!("a `{field}` item is `NAME=value`, found {}", shown(item)));
                        }
                    }
                }
            }
            NodeValue::Null => {}
            _ => self.wrong_type(node, field, "a mapping"),
        }
        map
    }

    fn version(&mut self, root: &Node) {
        match root.get("version") {
            None => {
                self.error(code::MISSING_KEY, root.span, "the file says which format version it is in: `version: 1`");
            }
            Some(node) => match node.scalar_text().and_then(|text| text.parse::<u32>().ok()) {
                Some(FORMAT_VERSION) => {}
                Some(later) if later > FORMAT_VERSION => {
                    self.error(
                        codes::UNSUPPORTED_VERSION,
                        node.span,
                        format!("format version {later} is newer than this deployer reads ({FORMAT_VERSION})"),
                    )
                    .hint = Some("upgrade gantry".to_owned());
                }
                _ => {
                    self.error(codes::UNSUPPORTED_VERSION, node.span, format!("`version` must be {FORMAT_VERSION}, found {}", shown(node)));
                }
            },
        }
    }
}

/// The one document of a file, or a diagnostic.
fn document(file: &RepoFile, diagnostics: &mut Vec<Diagnostic>) -> Option<Node> {
    match parse_documents(&file.text) {
        Ok(mut documents) if documents.len() == 1 => documents.pop(),
        Ok(documents) if documents.is_empty() => {
            diagnostics.push(Diagnostic::error(code::MISSING_KEY, &file.path, Span::new(1, 1), "the file is empty"));
            None
        }
        Ok(documents) => {
            diagnostics.push(Diagnostic::error(
                code::INVALID_VALUE,
                &file.path,
                documents[1].span,
                "one document per file: this one has several",
            ));
            None
        }
        Err(error) => {
            let mut diagnostic = Diagnostic::error(code::YAML_SYNTAX, &file.path, error.span, error.message);
            diagnostic.hint = error.hint;
            diagnostics.push(diagnostic);
            None
        }
    }
}

const ENVIRONMENT_KEYS: &[&str] = &["version", "name", "targets", "defaults", "promotion"];
const TARGET_KEYS: &[&str] = &["kind", "docker_host"];
const DEFAULTS_KEYS: &[&str] = &["target", "require_digest", "drift", "update"];
const UPDATE_KEYS: &[&str] = &["order", "parallelism", "monitor", "failure_action"];

fn read_environment(file: &RepoFile, diagnostics: &mut Vec<Diagnostic>) -> Option<Environment> {
    let root = document(file, diagnostics)?;
    let mut reader = FileReader { file: &file.path, diagnostics };
    reader.version(&root);
    let mut name = None;
    let mut targets = BTreeMap::new();
    let mut defaults = Defaults { target: None, require_digest: true, drift: DriftPolicy::Heal, update: UpdatePolicy::default() };
    let mut default_target_span = None;
    let mut promotion = default_promotion_rules();
    for (key, value, _) in reader.fields(&root, "the environment file", ENVIRONMENT_KEYS) {
        match key {
            "version" => {}
            "promotion" => promotion = read_promotion(&mut reader, value),
            "name" => name = reader.string(value, "name").filter(|name| check_name(&mut reader, name, value.span, "name")),
            "targets" => {
                for (target_name, target, span) in mapping_entries(&mut reader, value, "targets") {
                    if !check_name(&mut reader, &target_name, span, "a target's name") {
                        continue;
                    }
                    let mut kind = None;
                    let mut docker_host = None;
                    for (field, node, _) in reader.fields(target, &format!("target `{target_name}`"), TARGET_KEYS) {
                        match field {
                            "kind" => {
                                kind = match node.as_str() {
                                    Some("docker") => Some(TargetKind::Docker),
                                    Some("swarm") => Some(TargetKind::Swarm),
                                    _ => {
                                        reader.error(
                                            code::INVALID_VALUE,
                                            node.span,
                                            format!("a target's `kind` is `docker` or `swarm`, found {}", shown(node)),
                                        );
                                        None
                                    }
                                }
                            }
                            _ => docker_host = reader.string(node, "docker_host"),
                        }
                    }
                    match kind {
                        Some(kind) => {
                            targets.insert(target_name, Target { kind, docker_host });
                        }
                        None if target.get("kind").is_none() => {
                            reader.error(code::MISSING_KEY, span, format!("target `{target_name}` needs a `kind`: `docker` or `swarm`"));
                        }
                        None => {}
                    }
                }
            }
            _ => {
                for (field, node, _) in reader.fields(value, "defaults", DEFAULTS_KEYS) {
                    match field {
                        "target" => {
                            defaults.target = reader.string(node, "defaults.target");
                            default_target_span = Some(node.span);
                        }
                        "require_digest" => match node.value {
                            NodeValue::Bool(value) => defaults.require_digest = value,
                            _ => reader.wrong_type(node, "defaults.require_digest", "true or false"),
                        },
                        "drift" => defaults.drift = drift_policy(&mut reader, node, "defaults.drift").unwrap_or(defaults.drift),
                        _ => defaults.update = update_policy(&mut reader, node, "defaults.update", &defaults.update),
                    }
                }
            }
        }
    }
    if root.get("name").is_none() {
        reader.error(code::MISSING_KEY, root.span, "the environment needs a `name` (`production`, `staging`)");
    }
    if root.get("targets").is_none() {
        reader.error(code::MISSING_KEY, root.span, "the environment needs `targets`: where its applications run").hint =
            Some("targets: {main: {kind: docker}}".to_owned());
    }
    match (&defaults.target, default_target_span) {
        (Some(target), Some(span)) if !targets.contains_key(target) => {
            let known: Vec<&str> = targets.keys().map(String::as_str).collect();
            unknown_target(&mut reader, target, span, &known);
        }
        (None, _) if targets.len() == 1 => defaults.target = targets.keys().next().cloned(),
        _ => {}
    }
    // Returned with its mistakes too, so that the applications are read against it and every
    // mistake of the repository is reported at once.
    Some(Environment { name: name.unwrap_or_default(), targets, defaults, promotion })
}

const PROMOTION_KEYS: &[&str] = &["from", "approvals", "approvers", "timeout", "soak", "checks", "freeze", "review"];
const FREEZE_KEYS: &[&str] = &["from", "to", "reason"];
/// The roles an approver entry may name (`role:admin`): the roles the server knows on the
/// repository that built the image.
const APPROVER_ROLES: &[&str] = &["admin", "write"];

/// What an environment takes when its file has no `promotion:`, and what the keys it leaves
/// out mean: promotions from any environment, no approvals, a day to wait for them, no soak,
/// no checks, no freeze, committed on the branch.
fn default_promotion_rules() -> PromotionRules {
    PromotionRules { timeout_ms: proto::delivery::DEFAULT_APPROVAL_TIMEOUT_MS, ..PromotionRules::default() }
}

fn read_promotion(reader: &mut FileReader<'_>, node: &Node) -> PromotionRules {
    // Written, even empty: the environment takes promotions.
    let mut rules = PromotionRules { open: true, ..default_promotion_rules() };
    let mut approvals_span = node.span;
    for (field, value, _) in reader.fields(node, "promotion", PROMOTION_KEYS) {
        match field {
            "from" => {
                for item in sequence(reader, value, "promotion.from") {
                    if let Some(environment) = reader
                        .string(item, "promotion.from item")
                        .filter(|environment| check_name(reader, environment, item.span, "an environment's name"))
                        && !rules.from.contains(&environment)
                    {
                        rules.from.push(environment);
                    }
                }
            }
            "approvals" => {
                approvals_span = value.span;
                rules.approvals = reader.unsigned(value, "promotion.approvals", 0).unwrap_or(rules.approvals);
            }
            "approvers" => {
                for item in sequence(reader, value, "promotion.approvers") {
                    let Some(approver) = reader.string(item, "promotion.approvers item") else { continue };
                    match approver.strip_prefix("role:") {
                        Some(role) if !APPROVER_ROLES.contains(&role) => {
                            let diagnostic = reader.error(
                                code::INVALID_VALUE,
                                item.span,
                                format!("`{approver}` is not a role that approves: `role:admin` or `role:write`"),
                            );
                            diagnostic.hint = Some(match did_you_mean(role, APPROVER_ROLES.iter().copied()) {
                                Some(suggestion) => format!("did you mean `role:{suggestion}`?"),
                                None => {
                                    "a user name, `role:admin` or `role:write` (the role on the repository that built the image)".to_owned()
                                }
                            });
                        }
                        _ if rules.approvers.contains(&approver) => {}
                        _ => rules.approvers.push(approver),
                    }
                }
            }
            "timeout" => match reader.duration(value, "promotion.timeout") {
                Some(timeout) if timeout.is_zero() => {
                    reader.error(code::INVALID_VALUE, value.span, "`promotion.timeout` must be longer than 0").hint =
                        Some("how long a request waits for its approvals: `24h`, `30m`".to_owned());
                }
                Some(timeout) => rules.timeout_ms = milliseconds(timeout),
                None => {}
            },
            "soak" => rules.soak_ms = reader.duration(value, "promotion.soak").map_or(rules.soak_ms, milliseconds),
            "checks" => {
                for item in sequence(reader, value, "promotion.checks") {
                    if let Some(workflow) = reader.string(item, "promotion.checks item")
                        && !rules.checks.contains(&workflow)
                    {
                        rules.checks.push(workflow);
                    }
                }
            }
            "freeze" => {
                for item in sequence(reader, value, "promotion.freeze") {
                    rules.freezes.extend(read_freeze(reader, item));
                }
            }
            _ => match value.as_str() {
                Some("commit") => rules.review = PromotionReview::Commit,
                Some("branch") => rules.review = PromotionReview::Branch,
                _ => {
                    reader.error(
                        code::INVALID_VALUE,
                        value.span,
                        format!("`promotion.review` is `commit` or `branch`, found {}", shown(value)),
                    );
                }
            },
        }
    }
    // Approvals come from different people: a list of names shorter than what is required,
    // with no role to widen it, can never be met, and every request would expire.
    let named_users = rules.approvers.iter().filter(|approver| !approver.starts_with("role:")).count();
    if rules.approvals > 0 && named_users > 0 && named_users == rules.approvers.len() && named_users < rules.approvals as usize {
        reader
            .warning(
                codes::UNREACHABLE_APPROVALS,
                approvals_span,
                format!(
                    "`promotion.approvals` asks for {} approvals but `approvers` names {named_users} {}: no promotion can be approved",
                    rules.approvals,
                    if named_users == 1 { "person" } else { "people" },
                ),
            )
            .hint = Some("name more approvers, add `role:write` or `role:admin`, or ask for fewer approvals".to_owned());
    }
    rules
}

/// `{from, to, reason}`: times in RFC 3339, `to` after `from`.
fn read_freeze(reader: &mut FileReader<'_>, item: &Node) -> Option<FreezeWindow> {
    let (mut from, mut to, mut reason) = (None, None, String::new());
    for (field, node, _) in reader.fields(item, "a freeze window", FREEZE_KEYS) {
        match field {
            "from" => from = timestamp(reader, node, "promotion.freeze.from"),
            "to" => to = timestamp(reader, node, "promotion.freeze.to").map(|at| (at, node.span)),
            _ => reason = reader.string(node, "promotion.freeze.reason").unwrap_or_default(),
        }
    }
    let written_as_mapping = item.as_mapping().is_some() || item.is_null();
    if written_as_mapping && (item.get("from").is_none() || item.get("to").is_none()) {
        reader.error(code::MISSING_KEY, item.span, "a freeze window needs `from` and `to`").hint =
            Some("{from: '2026-12-24T00:00:00Z', to: '2026-12-27T00:00:00Z', reason: holidays}".to_owned());
        return None;
    }
    let (from_ms, (to_ms, to_span)) = (from?, to?);
    if to_ms <= from_ms {
        reader.error(code::INVALID_VALUE, to_span, "a freeze window's `to` must be after its `from`");
        return None;
    }
    Some(FreezeWindow { from_ms, to_ms, reason })
}

/// An RFC 3339 time with its offset (`2026-12-24T00:00:00Z`, `2026-12-24T09:00:00+01:00`) as
/// Unix milliseconds.
fn timestamp(reader: &mut FileReader<'_>, node: &Node, field: &str) -> Option<u64> {
    let parsed = node
        .scalar_text()
        .and_then(|text| time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok())
        .and_then(|at| u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok());
    if parsed.is_none() {
        reader
            .error(
                code::INVALID_VALUE,
                node.span,
                format!("`{field}` must be a time such as `2026-12-24T00:00:00Z`, found {}", shown(node)),
            )
            .hint = Some("RFC 3339: a date, `T`, a time and its offset (`Z` for UTC, or `+01:00`)".to_owned());
    }
    parsed
}

fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

const APP_KEYS: &[&str] = &[
    "version",
    "owner",
    "target",
    "image",
    "replicas",
    "ports",
    "command",
    "environment",
    "configs",
    "secrets",
    "healthcheck",
    "resources",
    "networks",
    "volumes",
    "labels",
    "update",
    "drift",
    "image_policy",
    "holds",
];
const OWNER_KEYS: &[&str] = &["team", "contact"];
const PORT_KEYS: &[&str] = &["published", "target", "protocol"];
const CONFIG_KEYS: &[&str] = &["file", "target"];
const SECRET_KEYS: &[&str] = &["name", "target"];
const HEALTHCHECK_KEYS: &[&str] = &["command", "http", "interval", "timeout", "retries", "start_period"];
const HTTP_PROBE_KEYS: &[&str] = &["path", "port"];
const RESOURCE_KEYS: &[&str] = &["cpus", "memory"];
const VOLUME_KEYS: &[&str] = &["volume", "target", "read_only"];
const IMAGE_POLICY_KEYS: &[&str] = &["semver", "regex", "order", "branch", "maturing"];

fn read_app(file: &RepoFile, environment: &Environment, paths: &BTreeSet<&str>, diagnostics: &mut Vec<Diagnostic>) -> Option<App> {
    let root = document(file, diagnostics)?;
    let mut reader = FileReader { file: &file.path, diagnostics };
    let stem = file.path.rsplit('/').next().unwrap_or_default();
    let name = stem.trim_end_matches(".yaml").trim_end_matches(".yml").to_owned();
    check_name(&mut reader, &name, Span::new(1, 1), "an application's name (its file's name)");
    reader.version(&root);
    let folder = file.path.rsplit_once('/').map_or("", |(folder, _)| folder);
    let mut app = App {
        name,
        file: file.path.clone(),
        owner: Owner { team: String::new(), contact: String::new() },
        target: environment.defaults.target.clone().unwrap_or_default(),
        image: ImageRef { repository: String::new(), tag: None, digest: None },
        replicas: 1,
        ports: Vec::new(),
        command: Vec::new(),
        environment: BTreeMap::new(),
        configs: Vec::new(),
        secrets: Vec::new(),
        healthcheck: None,
        resources: Resources::default(),
        networks: Vec::new(),
        volumes: Vec::new(),
        labels: BTreeMap::new(),
        update: environment.defaults.update.clone(),
        drift: environment.defaults.drift,
        image_policy: None,
        holds: Vec::new(),
        spans: AppSpans::default(),
    };
    for (key, value, _) in reader.fields(&root, "an application file", APP_KEYS) {
        match key {
            "version" => {}
            "owner" => {
                for (field, node, _) in reader.fields(value, "owner", OWNER_KEYS) {
                    let text = reader.string(node, &format!("owner.{field}")).unwrap_or_default();
                    if field == "team" { app.owner.team = text } else { app.owner.contact = text }
                }
                for (field, what) in [("team", "the team that owns it"), ("contact", "how to reach them (an address, a channel)")] {
                    if value.get(field).is_none() && value.as_mapping().is_some() {
                        reader.error(code::MISSING_KEY, value.span, format!("`owner.{field}` is required: {what}"));
                    }
                }
            }
            "target" => {
                app.spans.target = value.span;
                app.target = reader.string(value, "target").unwrap_or_default();
            }
            "image" => {
                app.spans.image = value.span;
                if let Some(text) = reader.string(value, "image") {
                    match parse_image(&text) {
                        Ok(image) => app.image = image,
                        Err(why) => {
                            reader.error(code::INVALID_VALUE, value.span, format!("`image` is not an image reference: {why}")).hint =
                                Some("registry.example.com/team/app:1.4.0@sha256:<64 hex digits>".to_owned());
                        }
                    }
                }
            }
            "replicas" => app.replicas = reader.unsigned(value, "replicas", 0).unwrap_or(1),
            "ports" => {
                for item in sequence(&mut reader, value, "ports") {
                    if let Some(port) = read_port(&mut reader, item) {
                        app.ports.push(port);
                        app.spans.ports.push(item.span);
                    }
                }
            }
            "command" => app.command = reader.words(value, "command"),
            "environment" => app.environment = reader.string_map(value, "environment"),
            "configs" => {
                for item in sequence(&mut reader, value, "configs") {
                    if let Some(config) = read_config(&mut reader, item, folder, paths) {
                        app.configs.push(config);
                        app.spans.configs.push(item.span);
                    }
                }
            }
            "secrets" => {
                for item in sequence(&mut reader, value, "secrets") {
                    if let Some(secret) = read_secret(&mut reader, item) {
                        app.secrets.push(secret);
                        app.spans.secrets.push(item.span);
                    }
                }
            }
            "healthcheck" => {
                app.spans.healthcheck = value.span;
                app.healthcheck = read_healthcheck(&mut reader, value);
            }
            "resources" => {
                for (field, node, _) in reader.fields(value, "resources", RESOURCE_KEYS) {
                    let text = node.scalar_text().unwrap_or_default();
                    if field == "cpus" {
                        match text.trim().parse::<f64>() {
                            Ok(cpus) if cpus > 0.0 && cpus.is_finite() => app.resources.cpus = Some(cpus),
                            _ => {
                                reader.error(
                                    code::INVALID_VALUE,
                                    node.span,
                                    format!("`resources.cpus` must be a positive number (`0.5`, `2`), found {}", shown(node)),
                                );
                            }
                        }
                    } else {
                        match parse_bytes(&text) {
                            Some(bytes) => app.resources.memory = Some(bytes),
                            None => {
                                reader.error(
                                    code::INVALID_VALUE,
                                    node.span,
                                    format!("`resources.memory` must be a size (`256M`, `1G`, `512k`), found {}", shown(node)),
                                );
                            }
                        }
                    }
                }
            }
            "networks" => {
                for item in sequence(&mut reader, value, "networks") {
                    if let Some(network) = reader
                        .string(item, "networks item")
                        .filter(|network| check_name(&mut reader, network, item.span, "a network's name"))
                    {
                        app.networks.push(network);
                    }
                }
            }
            "volumes" => {
                for item in sequence(&mut reader, value, "volumes") {
                    if let Some(volume) = read_volume(&mut reader, item) {
                        app.volumes.push(volume);
                    }
                }
            }
            "labels" => app.labels = reader.string_map(value, "labels"),
            "update" => app.update = update_policy(&mut reader, value, "update", &environment.defaults.update),
            "drift" => app.drift = drift_policy(&mut reader, value, "drift").unwrap_or(app.drift),
            "holds" => {
                for item in sequence(&mut reader, value, "holds") {
                    if let Some(hold) = reader.string(item, "holds item") {
                        let digest_like = hold.starts_with("sha256:");
                        if digest_like && parse_image(&format!("x@{hold}")).is_err() {
                            reader.error(code::INVALID_VALUE, item.span, format!("`{hold}` is not a digest (`sha256:` and 64 hex digits)"));
                        } else {
                            app.holds.push(hold);
                        }
                    }
                }
            }
            _ => app.image_policy = read_image_policy(&mut reader, value),
        }
    }
    if root.get("owner").is_none() {
        reader
            .error(code::MISSING_KEY, root.span, format!("application `{}` needs an `owner`: the team and how to reach them", app.name))
            .hint = Some("owner: {team: payments, contact: payments@example.com}".to_owned());
    }
    if root.get("image").is_none() {
        reader.error(code::MISSING_KEY, root.span, format!("application `{}` needs an `image`", app.name));
    }
    if root.get("target").is_none() && environment.defaults.target.is_none() {
        reader.error(code::MISSING_KEY, root.span, "the environment has several targets and no default: name this application's `target`");
    }
    // Kept with its mistakes too, for the checks across files.
    Some(app)
}

fn read_port(reader: &mut FileReader<'_>, item: &Node) -> Option<Port> {
    if item.as_mapping().is_some() {
        let (mut published, mut target, mut protocol) = (None, None, Protocol::Tcp);
        for (field, node, _) in reader.fields(item, "a port", PORT_KEYS) {
            let text = node.scalar_text().unwrap_or_default().into_owned();
            match field {
                "published" => published = reader.port_number(&text, node.span, "published"),
                "target" => target = reader.port_number(&text, node.span, "target"),
                _ => protocol = read_protocol(reader, &text, node.span)?,
            }
        }
        return match (published, target) {
            (Some(published), Some(target)) => Some(Port { published, target, protocol }),
            _ => {
                reader.error(code::MISSING_KEY, item.span, "a port needs `published` (on the host) and `target` (in the container)");
                None
            }
        };
    }
    let text = item.scalar_text()?.into_owned();
    let (ports, protocol) = match text.split_once('/') {
        Some((ports, protocol)) => (ports, read_protocol(reader, protocol, item.span)?),
        None => (text.as_str(), Protocol::Tcp),
    };
    let Some((published, target)) = ports.split_once(':') else {
        reader.error(code::INVALID_VALUE, item.span, format!("a port is `PUBLISHED:TARGET` (`8080:80`), found `{text}`")).hint =
            Some("a deployed port is always published: write the host's port too".to_owned());
        return None;
    };
    if published.contains(':') {
        reader.error(code::INVALID_VALUE, item.span, "a port binds every address of the target; `IP:PUBLISHED:TARGET` is not supported");
        return None;
    }
    Some(Port {
        published: reader.port_number(published, item.span, "published")?,
        target: reader.port_number(target, item.span, "target")?,
        protocol,
    })
}

fn read_protocol(reader: &mut FileReader<'_>, text: &str, span: Span) -> Option<Protocol> {
    match text {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => {
            reader.error(code::INVALID_VALUE, span, format!("a port's protocol is `tcp` or `udp`, found `{text}`"));
            None
        }
    }
}

fn read_config(reader: &mut FileReader<'_>, item: &Node, folder: &str, paths: &BTreeSet<&str>) -> Option<ConfigFile> {
    let (mut file, mut target) = (None, None);
    for (field, node, _) in reader.fields(item, "a config", CONFIG_KEYS) {
        let text = reader.string(node, &format!("configs.{field}"));
        if field == "file" { file = text } else { target = text }
    }
    let (Some(file), Some(target)) = (file, target) else {
        reader.error(
            code::MISSING_KEY,
            item.span,
            "a config needs `file` (beside the application file) and `target` (a path in the container)",
        );
        return None;
    };
    if !target.starts_with('/') {
        reader.error(code::INVALID_VALUE, item.span, format!("a config's `target` is an absolute path in the container, found `{target}`"));
        return None;
    }
    let Some(path) = repository_path(folder, &file) else {
        reader.error(code::INVALID_VALUE, item.span, format!("config `{file}` is outside the repository")).hint =
            Some("config files live in the environment repository, beside their application".to_owned());
        return None;
    };
    if !paths.contains(path.as_str()) {
        reader.error(codes::MISSING_FILE, item.span, format!("config file `{path}` is not in the repository"));
        return None;
    }
    Some(ConfigFile { file: path, target })
}

fn read_secret(reader: &mut FileReader<'_>, item: &Node) -> Option<SecretRef> {
    let (name, target) = if item.as_mapping().is_some() {
        let (mut name, mut target) = (None, None);
        for (field, node, _) in reader.fields(item, "a secret", SECRET_KEYS) {
            let text = reader.string(node, &format!("secrets.{field}"));
            if field == "name" { name = text } else { target = text }
        }
        (name, target)
    } else {
        (reader.string(item, "secrets item"), None)
    };
    let name = name?;
    if !check_name(reader, &name, item.span, "a secret's name") {
        return None;
    }
    let target = target.unwrap_or_else(|| format!("/run/secrets/{name}"));
    if !target.starts_with('/') {
        reader.error(code::INVALID_VALUE, item.span, format!("a secret's `target` is an absolute path in the container, found `{target}`"));
        return None;
    }
    Some(SecretRef { name, target })
}

fn read_healthcheck(reader: &mut FileReader<'_>, node: &Node) -> Option<Healthcheck> {
    let mut probe = None;
    let mut check = Healthcheck {
        probe: Probe::Command(Vec::new()),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        retries: 3,
        start_period: Duration::ZERO,
    };
    for (field, value, _) in reader.fields(node, "healthcheck", HEALTHCHECK_KEYS) {
        match field {
            "command" => {
                let words = reader.words(value, "healthcheck.command");
                if !words.is_empty() {
                    probe = Some(Probe::Command(words));
                }
            }
            "http" => {
                let (mut path, mut port) = ("/".to_owned(), None);
                for (key, item, _) in reader.fields(value, "healthcheck.http", HTTP_PROBE_KEYS) {
                    let text = item.scalar_text().unwrap_or_default().into_owned();
                    if key == "path" {
                        if !text.starts_with('/') {
                            reader.error(
                                code::INVALID_VALUE,
                                item.span,
                                format!("`healthcheck.http.path` starts with `/`, found `{text}`"),
                            );
                        }
                        path = text;
                    } else {
                        port = reader.port_number(&text, item.span, "healthcheck.http.port");
                    }
                }
                match port {
                    Some(port) => probe = Some(Probe::Http { path, port }),
                    None if value.get("port").is_none() => {
                        reader.error(code::MISSING_KEY, value.span, "`healthcheck.http` needs the container's `port`");
                    }
                    None => {}
                }
            }
            "interval" => check.interval = reader.duration(value, "healthcheck.interval").unwrap_or(check.interval),
            "timeout" => check.timeout = reader.duration(value, "healthcheck.timeout").unwrap_or(check.timeout),
            "retries" => check.retries = reader.unsigned(value, "healthcheck.retries", 1).unwrap_or(check.retries),
            _ => check.start_period = reader.duration(value, "healthcheck.start_period").unwrap_or(check.start_period),
        }
    }
    if node.get("command").is_some() && node.get("http").is_some() {
        reader.error(code::INVALID_VALUE, node.span, "a health check is a `command` or an `http` probe, not both");
        return None;
    }
    if node.get("command").is_none() && node.get("http").is_none() {
        reader.error(code::MISSING_KEY, node.span, "a health check needs a `command` (run in the container) or an `http` probe");
        return None;
    }
    check.probe = probe?;
    Some(check)
}

fn read_volume(reader: &mut FileReader<'_>, item: &Node) -> Option<VolumeMount> {
    let (volume, target, read_only) = if item.as_mapping().is_some() {
        let (mut volume, mut target, mut read_only) = (None, None, false);
        for (field, node, _) in reader.fields(item, "a volume", VOLUME_KEYS) {
            match field {
                "volume" => volume = reader.string(node, "volumes.volume"),
                "target" => target = reader.string(node, "volumes.target"),
                _ => read_only = matches!(node.value, NodeValue::Bool(true)),
            }
        }
        (volume?, target?, read_only)
    } else {
        let text = reader.string(item, "volumes item")?;
        let mut parts = text.split(':');
        let (Some(volume), Some(target)) = (parts.next(), parts.next()) else {
            reader.error(code::INVALID_VALUE, item.span, format!("a volume is `NAME:/path` (or `NAME:/path:ro`), found `{text}`"));
            return None;
        };
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(mode) => {
                reader.error(code::INVALID_VALUE, item.span, format!("a volume's mode is `ro` or `rw`, found `{mode}`"));
                return None;
            }
        };
        (volume.to_owned(), target.to_owned(), read_only)
    };
    if volume.starts_with('/') || volume.starts_with('.') || volume.starts_with('~') {
        reader.error(code::INVALID_VALUE, item.span, format!("`{volume}` is a path on the host; only named volumes are mounted")).hint =
            Some("a commit to the environment repository must not reach into the host's files".to_owned());
        return None;
    }
    if !check_name(reader, &volume, item.span, "a volume's name") {
        return None;
    }
    if !target.starts_with('/') {
        reader.error(code::INVALID_VALUE, item.span, format!("a volume's target is an absolute path in the container, found `{target}`"));
        return None;
    }
    Some(VolumeMount { volume, target, read_only })
}

fn read_image_policy(reader: &mut FileReader<'_>, node: &Node) -> Option<ImagePolicy> {
    let mut rules = Vec::new();
    let mut order = RegexOrder::Numeric;
    let mut maturing = Duration::ZERO;
    for (field, value, _) in reader.fields(node, "image_policy", IMAGE_POLICY_KEYS) {
        match field {
            "semver" => rules.extend(reader.string(value, "image_policy.semver").map(|range| (ImageRule::Semver(range), value.span))),
            "branch" => rules.extend(reader.string(value, "image_policy.branch").map(|branch| (ImageRule::Branch(branch), value.span))),
            "regex" => {
                let pattern = reader.string(value, "image_policy.regex");
                rules.extend(pattern.map(|pattern| (ImageRule::Regex { pattern, order }, value.span)));
            }
            "order" => {
                order = match value.as_str() {
                    Some("numeric") => RegexOrder::Numeric,
                    Some("alphabetical") => RegexOrder::Alphabetical,
                    _ => {
                        reader.error(
                            code::INVALID_VALUE,
                            value.span,
                            format!("`image_policy.order` is `numeric` or `alphabetical`, found {}", shown(value)),
                        );
                        order
                    }
                };
            }
            _ => maturing = reader.duration(value, "image_policy.maturing").unwrap_or(maturing),
        }
    }
    if rules.len() != 1 {
        reader.error(code::INVALID_VALUE, node.span, "an image policy is one of `semver`, `regex` or `branch`");
        return None;
    }
    let (rule, span) = rules.remove(0);
    let rule = match rule {
        ImageRule::Regex { pattern, .. } => ImageRule::Regex { pattern, order },
        rule => rule,
    };
    // The deployer would skip the application at every poll: say it now, where it is written.
    if let Err(error) = crate::automation::Rule::new(&rule) {
        let hint = match error {
            crate::automation::PolicyError::InvalidRange { .. } => "`^1.4` (1.4 and later 1.x), `~1.4.2` (1.4.x from 1.4.2), `>=2.0.0, <3`",
            crate::automation::PolicyError::InvalidPattern { .. } => {
                "a Rust regular expression whose first group orders the tags: '^main-(\\d+)$'"
            }
        };
        reader.error(code::INVALID_VALUE, span, error.to_string()).hint = Some(hint.to_owned());
        return None;
    }
    Some(ImagePolicy { rule, maturing })
}

fn update_policy(reader: &mut FileReader<'_>, node: &Node, context: &str, base: &UpdatePolicy) -> UpdatePolicy {
    let mut policy = base.clone();
    for (field, value, _) in reader.fields(node, context, UPDATE_KEYS) {
        match field {
            "order" => match value.as_str() {
                Some("start-first") => policy.order = UpdateOrder::StartFirst,
                Some("stop-first") => policy.order = UpdateOrder::StopFirst,
                _ => {
                    reader.error(
                        code::INVALID_VALUE,
                        value.span,
                        format!("`{context}.order` is `start-first` or `stop-first`, found {}", shown(value)),
                    );
                }
            },
            "parallelism" => {
                policy.parallelism = reader.unsigned(value, &format!("{context}.parallelism"), 1).unwrap_or(policy.parallelism);
            }
            "monitor" => policy.monitor = reader.duration(value, &format!("{context}.monitor")).unwrap_or(policy.monitor),
            _ => match value.as_str() {
                Some("rollback") => policy.failure_action = FailureAction::Rollback,
                Some("pause") => policy.failure_action = FailureAction::Pause,
                _ => {
                    reader.error(
                        code::INVALID_VALUE,
                        value.span,
                        format!("`{context}.failure_action` is `rollback` or `pause`, found {}", shown(value)),
                    );
                }
            },
        }
    }
    policy
}

fn drift_policy(reader: &mut FileReader<'_>, node: &Node, field: &str) -> Option<DriftPolicy> {
    match node.as_str() {
        Some("heal") => Some(DriftPolicy::Heal),
        Some("warn") => Some(DriftPolicy::Warn),
        _ => {
            reader.error(code::INVALID_VALUE, node.span, format!("`{field}` is `heal` or `warn`, found {}", shown(node)));
            None
        }
    }
}

/// The entries of a mapping of named things (`targets`), names as text.
fn mapping_entries<'n>(reader: &mut FileReader<'_>, node: &'n Node, field: &str) -> Vec<(String, &'n Node, Span)> {
    match &node.value {
        NodeValue::Mapping(entries) => {
            entries.iter().filter_map(|(key, value)| Some((key.scalar_text()?.into_owned(), value, key.span))).collect()
        }
        _ => {
            reader.wrong_type(node, field, "a mapping of names");
            Vec::new()
        }
    }
}

fn sequence<'n>(reader: &mut FileReader<'_>, node: &'n Node, field: &str) -> &'n [Node] {
    match &node.value {
        NodeValue::Sequence(items) => items,
        NodeValue::Null => &[],
        _ => {
            reader.wrong_type(node, field, "a list");
            &[]
        }
    }
}

/// Names end up in container, service, volume and label names: the rule is
/// `proto::delivery::is_valid_name`, which the server applies to environments too.
fn check_name(reader: &mut FileReader<'_>, name: &str, span: Span, what: &str) -> bool {
    let valid = proto::delivery::is_valid_name(name);
    if !valid {
        reader.error(code::INVALID_VALUE, span, format!("`{name}` is not valid as {what}")).hint = Some(format!(
            "lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit, at most {}",
            proto::delivery::MAX_NAME
        ));
    }
    valid
}

fn unknown_target(reader: &mut FileReader<'_>, target: &str, span: Span, known: &[&str]) {
    let diagnostic = reader.error(codes::UNKNOWN_TARGET, span, format!("the environment has no target `{target}`"));
    diagnostic.hint = Some(match did_you_mean(target, known.iter().copied()) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => format!("its targets: {}", known.join(", ")),
    });
}

/// Checks that need every file: targets exist, no host port is published twice on one target,
/// secrets are in the deployer's store, images are pinned where digests are required, and
/// start-first is possible.
fn check_across(environment: &Environment, apps: &BTreeMap<String, App>, options: &ReadOptions, diagnostics: &mut Vec<Diagnostic>) {
    let known_targets: Vec<&str> = environment.targets.keys().map(String::as_str).collect();
    let mut published: BTreeMap<(&str, u16, Protocol), &App> = BTreeMap::new();
    for app in apps.values() {
        let mut reader = FileReader { file: &app.file, diagnostics };
        if environment.defaults.require_digest && app.image.digest.is_none() && !app.image.repository.is_empty() {
            let diagnostic =
                reader.error(codes::DIGEST_REQUIRED, app.spans.image, format!("image `{}` is not pinned by digest", app.image));
            diagnostic.hint = Some(
                "this environment requires digests (`defaults.require_digest`): write `repository:tag@sha256:…`, as `gantry artifact show` prints it".to_owned(),
            );
        }
        let Some(target) = environment.targets.get(&app.target) else {
            // An empty target was reported where it is missing.
            if !app.target.is_empty() {
                unknown_target(&mut reader, &app.target, app.spans.target, &known_targets);
            }
            continue;
        };
        for (port, span) in app.ports.iter().zip(&app.spans.ports) {
            match published.get(&(app.target.as_str(), port.published, port.protocol)) {
                Some(other) => {
                    reader.error(
                        codes::PORT_CONFLICT,
                        *span,
                        format!("port {} is already published on target `{}` by application `{}`", port.published, app.target, other.name),
                    );
                }
                None => {
                    published.insert((app.target.as_str(), port.published, port.protocol), app);
                }
            }
        }
        if target.kind == TargetKind::Docker && !app.ports.is_empty() && app.replicas > 1 {
            let diagnostic = reader.error(
                codes::PORT_CONFLICT,
                app.spans.ports.first().copied().unwrap_or_default(),
                format!("{} replicas cannot all publish port {} on one engine", app.replicas, app.ports[0].published),
            );
            diagnostic.hint = Some("run one replica here, or deploy it to a swarm target (its routing mesh shares the port)".to_owned());
        }
        if target.kind == TargetKind::Docker && !app.ports.is_empty() && app.update.order == UpdateOrder::StartFirst {
            let diagnostic = reader.warning(
                codes::STOP_FIRST,
                app.spans.ports.first().copied().unwrap_or_default(),
                "a host port on one engine cannot be held by two containers: this application is updated stop-first",
            );
            diagnostic.hint = Some("write `update: {order: stop-first}` to say so, or deploy it to a swarm target".to_owned());
        }
        if target.kind == TargetKind::Swarm && app.healthcheck.as_ref().is_some_and(|check| matches!(check.probe, Probe::Http { .. })) {
            let diagnostic = reader.warning(
                codes::PROBE_ON_SWARM,
                app.spans.healthcheck,
                "on a swarm, health is what Swarm's own checks say: an `http` check is not run there, and a task counts as healthy once it runs",
            );
            diagnostic.hint =
                Some("use a `command` check (`[wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/health']`) for swarm targets".to_owned());
        }
        if let Some(known) = &options.known_secrets {
            for (secret, span) in app.secrets.iter().zip(&app.spans.secrets) {
                if !known.contains(&secret.name) {
                    let diagnostic =
                        reader.error(codes::UNKNOWN_SECRET, *span, format!("secret `{}` is not in the deployer's store", secret.name));
                    diagnostic.hint = Some(match did_you_mean(&secret.name, known.iter().map(String::as_str)) {
                        Some(suggestion) => format!("did you mean `{suggestion}`?"),
                        None => format!("add it with `gantry deployer secret add {}`", secret.name),
                    });
                }
            }
        }
    }
}

/// `repository[:tag][@sha256:<hex>]`.
pub fn parse_image(text: &str) -> Result<ImageRef, String> {
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest
        && !digest
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(format!("`{digest}` is not a digest (`sha256:` and 64 hex digits)"));
    }
    let last_slash = name.rfind('/').map_or(0, |slash| slash + 1);
    let (repository, tag) = match name[last_slash..].find(':') {
        Some(colon) => (&name[..last_slash + colon], Some(&name[last_slash + colon + 1..])),
        None => (name, None),
    };
    if repository.is_empty() || repository.chars().any(|c| c.is_whitespace() || c.is_ascii_uppercase()) {
        return Err(format!("`{repository}` is not a repository name (lower case, no spaces)"));
    }
    if let Some(tag) = tag
        && (tag.is_empty()
            || tag.len() > 128
            || !tag.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')))
    {
        return Err(format!("`{tag}` is not a tag"));
    }
    Ok(ImageRef { repository: repository.to_owned(), tag: tag.map(str::to_owned), digest: digest.map(str::to_owned) })
}

/// `30s`, `1m30s`, `500ms`, `2h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_length = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_length] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_length..];
    }
    Some(total)
}

/// `256M`, `1G`, `512k`, `1024` (bytes), as Docker reads them (powers of 1024).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (number, multiplier) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1u64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier).filter(|bytes| *bytes > 0)
}

/// Where a path written in an application file (relative to its folder) is in the
/// repository; `None` when it leaves it.
fn repository_path(folder: &str, written: &str) -> Option<String> {
    if written.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = folder.split('/').filter(|part| !part.is_empty()).collect();
    for part in written.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

fn shown(node: &Node) -> String {
    match node.scalar_text() {
        Some(text) => format!("`{text}`"),
        None => node.type_name().to_owned(),
    }
}
