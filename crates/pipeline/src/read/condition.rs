//! Reading `when` (a mapping or a list of mappings) and Drone's `trigger` into conditions.

use crate::condition::{ConditionSet, Filter, GlobPattern, PathFilter, RunStatus, When};
use crate::context::EVENTS;
use crate::diagnostic::{code, did_you_mean};
use crate::evaluate::{EvaluateError, Expression};
use crate::model::Dialect;
use crate::read::{Reader, describe};
use crate::yaml::{Node, NodeValue};

/// Where a condition stands decides which keys it may have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionScope {
    Workflow,
    Step,
}

const WOODPECKER_KEYS: &[&str] =
    &["repo", "branch", "event", "ref", "cron", "instance", "platform", "status", "matrix", "path", "evaluate", "local"];
const DRONE_KEYS: &[&str] = &["branch", "event", "ref", "repo", "status", "target", "cron", "action", "instance", "paths", "platform"];

pub(crate) fn read_when(reader: &mut Reader<'_>, node: &Node, dialect: Dialect, scope: ConditionScope) -> When {
    let mut when = When { alternatives: Vec::new(), span: Some(node.span) };
    match &node.value {
        NodeValue::Null => when.span = None,
        NodeValue::Mapping(_) => when.alternatives.push(read_set(reader, node, dialect, scope)),
        NodeValue::Sequence(items) if dialect == Dialect::Woodpecker => {
            for item in items {
                if item.as_mapping().is_some() {
                    when.alternatives.push(read_set(reader, item, dialect, scope));
                } else {
                    reader.wrong_type(item, "when item", "a mapping of conditions");
                }
            }
        }
        _ => {
            let expected = if dialect == Dialect::Woodpecker { "a mapping or a list of mappings" } else { "a mapping" };
            reader.wrong_type(node, "when", expected);
        }
    }
    when
}

fn read_set(reader: &mut Reader<'_>, node: &Node, dialect: Dialect, scope: ConditionScope) -> ConditionSet {
    let mut set = ConditionSet { span: node.span, ..ConditionSet::default() };
    let known = if dialect == Dialect::Woodpecker { WOODPECKER_KEYS } else { DRONE_KEYS };
    for (key, value) in reader.mapping(node, "when") {
        let Some(name) = reader.key_text(key) else { continue };
        let name = name.into_owned();
        match name.as_str() {
            "branch" | "branches" => {
                if name == "branches" {
                    reader.warning(code::DEPRECATED, key.span, "`branches` in a condition is read as `branch`").hint =
                        Some("rename it to `branch`".into());
                }
                set.branch = read_filter(reader, value, "branch");
            }
            "event" => {
                set.event = read_filter(reader, value, "event");
                if set.event.is_some() {
                    check_events(reader, value);
                }
            }
            "ref" => set.reference = read_filter(reader, value, "ref"),
            "repo" => set.repo = read_filter(reader, value, "repo"),
            "instance" => set.instance = read_filter(reader, value, "instance"),
            "platform" => set.platform = read_filter(reader, value, "platform"),
            "cron" => set.cron = read_filter(reader, value, "cron"),
            "target" if dialect == Dialect::Drone => set.target = read_filter(reader, value, "target"),
            "action" if dialect == Dialect::Drone => set.action = read_filter(reader, value, "action"),
            "status" => set.status = read_status(reader, value),
            "path" | "paths" => set.path = read_path(reader, value, &name),
            "evaluate" if dialect == Dialect::Woodpecker => set.evaluate = read_evaluate(reader, value),
            "matrix" if dialect == Dialect::Woodpecker => {
                if scope == ConditionScope::Workflow {
                    reader.warning(code::UNKNOWN_KEY, key.span, "`matrix` conditions apply to steps, not to a workflow; it is ignored");
                } else {
                    set.matrix = read_matrix_condition(reader, value);
                }
            }
            "local" if dialect == Dialect::Woodpecker => set.local = reader.boolean(value, "local"),
            other => reader.unknown_key(key, other, known, "a condition"),
        }
    }
    set
}

/// A filter: a pattern, a list of patterns, or `{include, exclude}`.
fn read_filter(reader: &mut Reader<'_>, node: &Node, field: &str) -> Option<Filter> {
    let mut filter = Filter { span: node.span, ..Filter::default() };
    match &node.value {
        NodeValue::Null => return None,
        NodeValue::Mapping(entries) => {
            for (key, value) in entries {
                let Some(name) = reader.key_text(key) else { continue };
                match name.as_ref() {
                    "include" => filter.include = read_patterns(reader, value, field),
                    "exclude" => filter.exclude = read_patterns(reader, value, field),
                    other => reader.unknown_key(key, other, &["include", "exclude"], &format!("the `{field}` filter")),
                }
            }
        }
        _ => filter.include = read_patterns(reader, node, field),
    }
    Some(filter)
}

fn read_patterns(reader: &mut Reader<'_>, node: &Node, field: &str) -> Vec<GlobPattern> {
    let items: Vec<&Node> = match &node.value {
        NodeValue::Sequence(items) => items.iter().collect(),
        NodeValue::Null => Vec::new(),
        _ => vec![node],
    };
    let mut patterns = Vec::new();
    for item in items {
        let Some(text) = reader.string(item, field) else { continue };
        match GlobPattern::new(&text) {
            Ok(pattern) => patterns.push(pattern),
            Err(message) => {
                reader.error(code::INVALID_GLOB, item.span, format!("invalid glob `{text}` in `{field}`: {message}")).hint =
                    Some("globs use `*` within a segment, `**` across `/`, `?`, `[abc]` and `{a,b}`; escape a literal with `\\`".into());
            }
        }
    }
    patterns
}

fn check_events(reader: &mut Reader<'_>, node: &Node) {
    let items: Vec<&Node> = match &node.value {
        NodeValue::Sequence(items) => items.iter().collect(),
        NodeValue::Mapping(entries) => entries
            .iter()
            .flat_map(|(_, value)| match &value.value {
                NodeValue::Sequence(items) => items.iter().collect::<Vec<_>>(),
                _ => vec![value],
            })
            .collect(),
        _ => vec![node],
    };
    for item in items {
        let Some(text) = item.scalar_text() else { continue };
        let has_glob = text.contains(['*', '?', '[', '{']);
        if !has_glob && !EVENTS.contains(&text.as_ref()) {
            let diagnostic = reader.error(code::INVALID_WHEN, item.span, format!("unknown event `{text}`"));
            diagnostic.hint = Some(match did_you_mean(&text, EVENTS.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("events are {}", EVENTS.join(", ")),
            });
        }
    }
}

fn read_status(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<RunStatus>> {
    let values = reader.string_list(node, "status");
    let mut statuses = Vec::new();
    for value in values {
        match value.as_str() {
            "success" => statuses.push(RunStatus::Success),
            "failure" => statuses.push(RunStatus::Failure),
            "changed" => {
                reader.warning(code::UNSUPPORTED, node.span, "status `changed` (Drone 0.8) is not supported and is ignored").hint =
                    Some("use `status: [success, failure]` and decide in the step".into());
            }
            other => {
                let span = node
                    .as_sequence()
                    .and_then(|items| items.iter().find(|item| item.scalar_text().as_deref() == Some(other)))
                    .map_or(node.span, |item| item.span);
                reader.error(code::INVALID_WHEN, span, format!("unknown status `{other}`")).hint =
                    Some("status is `success`, `failure`, or both".into());
            }
        }
    }
    Some(statuses)
}

fn read_path(reader: &mut Reader<'_>, node: &Node, field: &str) -> Option<PathFilter> {
    let mut path = PathFilter { span: node.span, ..PathFilter::default() };
    match &node.value {
        NodeValue::Null => return None,
        NodeValue::Mapping(entries) => {
            for (key, value) in entries {
                let Some(name) = reader.key_text(key) else { continue };
                match name.as_ref() {
                    "include" => path.include = read_patterns(reader, value, field),
                    "exclude" => path.exclude = read_patterns(reader, value, field),
                    "ignore_message" => path.ignore_message = reader.string(value, "ignore_message"),
                    "on_empty" => path.on_empty = reader.boolean(value, "on_empty"),
                    other => reader.unknown_key(
                        key,
                        other,
                        &["include", "exclude", "ignore_message", "on_empty"],
                        &format!("the `{field}` filter"),
                    ),
                }
            }
        }
        _ => path.include = read_patterns(reader, node, field),
    }
    Some(path)
}

fn read_evaluate(reader: &mut Reader<'_>, node: &Node) -> Option<(Expression, crate::yaml::Span)> {
    let text = reader.string(node, "evaluate")?;
    match Expression::parse(&text) {
        Ok(expression) => Some((expression, node.span)),
        Err(error) => {
            let code = match error {
                EvaluateError::Regex { .. } => code::INVALID_REGEX,
                _ => code::INVALID_EXPRESSION,
            };
            let diagnostic = reader.error(code, node.span, format!("`evaluate` {error}"));
            diagnostic.hint =
                Some("evaluate takes an expr-lang expression over CI_* variables, e.g. `CI_COMMIT_BRANCH == \"main\"`".into());
            None
        }
    }
}

fn read_matrix_condition(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<(String, GlobPattern)>> {
    let mut filter = Vec::new();
    for (key, value) in reader.mapping(node, "matrix") {
        let Some(axis) = reader.key_text(key) else { continue };
        let Some(text) = reader.string(value, "matrix value") else { continue };
        match GlobPattern::new(&text) {
            Ok(pattern) => filter.push((axis.into_owned(), pattern)),
            Err(message) => {
                reader.error(code::INVALID_GLOB, value.span, format!("invalid glob {} in `matrix`: {message}", describe(value)));
            }
        }
    }
    Some(filter)
}
