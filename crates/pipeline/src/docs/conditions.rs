//! Conditions in words: `when` and `trigger` sets as phrases.

use crate::condition::{ConditionSet, Filter, GlobPattern, PathFilter, RunStatus};
use std::collections::BTreeMap;
use std::fmt::Write;

use super::text::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Workflow,
    Step,
}

/// Whether a condition set filters anything besides `status`.
pub(super) fn has_filters(set: &ConditionSet) -> bool {
    [&set.branch, &set.event, &set.reference, &set.repo, &set.instance, &set.platform, &set.cron, &set.target, &set.action]
        .iter()
        .any(|filter| filter.as_ref().is_some_and(|filter| !filter.is_empty()))
        || set.path.is_some()
        || set.evaluate.is_some()
        || set.matrix.as_ref().is_some_and(|matrix| !matrix.is_empty())
        || set.local.is_some()
}

/// One condition set as a phrase: "on `push` when the branch is `main`, even if an earlier step failed".
pub(super) fn describe_set(set: &ConditionSet, scope: Scope, rows: Option<&[BTreeMap<String, String>]>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let events: Vec<&str> =
        set.event.as_ref().map(|filter| filter.include.iter().map(|pattern| pattern.text.as_str()).collect()).unwrap_or_default();
    let only_events = |allowed: &[&str]| !events.is_empty() && events.iter().all(|event| allowed.contains(event));
    if let Some(event) = set.event.as_ref().filter(|filter| !filter.is_empty()) {
        parts.push(event_phrase(event));
    } else if scope == Scope::Workflow {
        parts.push("on any event".to_owned());
    }
    let mut clauses: Vec<String> = Vec::new();
    if let Some(filter) = &set.branch {
        let mut clause = filter_phrase("the branch", filter);
        if events.contains(&"tag") {
            clause.push_str(" (not checked for tags)");
        }
        clauses.extend(Some(clause).filter(|clause| !clause.is_empty()));
    }
    let simple: [(&Option<Filter>, &str); 6] = [
        (&set.reference, "the ref"),
        (&set.repo, "the repository"),
        (&set.instance, "the CI instance"),
        (&set.platform, "the platform"),
        (&set.target, "the deploy target"),
        (&set.action, "the pull request action"),
    ];
    for (filter, subject) in simple {
        if let Some(filter) = filter {
            clauses.extend(Some(filter_phrase(subject, filter)).filter(|clause| !clause.is_empty()));
        }
    }
    if let Some(filter) = &set.cron {
        let clause = filter_phrase("the cron job", filter);
        if !clause.is_empty() {
            clauses.push(if only_events(&["cron"]) { clause } else { format!("{clause} (checked for cron runs only)") });
        }
    }
    let mut unless = None;
    if let Some(path) = &set.path {
        let (path_clauses, path_unless) = path_phrases(path, !only_events(&["push", "pull_request"]));
        clauses.extend(path_clauses);
        unless = path_unless;
    }
    if let Some(matrix) = set.matrix.as_ref().filter(|matrix| !matrix.is_empty()) {
        let values: Vec<String> = matrix.iter().map(|(axis, pattern)| code(&format!("{axis}={}", pattern.text))).collect();
        let mut clause = format!("the matrix row has {}", values.join(", "));
        if let Some(rows) = rows {
            let matching = rows
                .iter()
                .filter(|row| matrix.iter().all(|(axis, pattern)| pattern.matches(row.get(axis).map_or("", String::as_str))))
                .count();
            let _ = write!(clause, " ({matching} of {} rows)", rows.len());
        }
        clauses.push(clause);
    }
    if let Some((expression, _)) = &set.evaluate {
        clauses.push(format!("{} is true", code(expression.source())));
    }
    match set.local {
        Some(false) => clauses.push("it is not a local run (`gantry exec`)".to_owned()),
        Some(true) => clauses.push("it is a local run (`gantry exec`)".to_owned()),
        None => {}
    }
    if !clauses.is_empty() {
        parts.push(format!("when {}", join_words(&clauses, "and")));
    }
    let mut text = parts.join(" ");
    if let Some(unless) = unless {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&unless);
    }
    if let Some(statuses) = &set.status {
        let earlier = if scope == Scope::Workflow { "a workflow it waits for" } else { "an earlier step" };
        let status = if statuses.is_empty() {
            Some("never (`status` lists nothing)".to_owned())
        } else if statuses.contains(&RunStatus::Failure) && statuses.contains(&RunStatus::Success) {
            Some(format!("even if {earlier} failed"))
        } else if statuses.contains(&RunStatus::Failure) {
            Some(format!("only if {earlier} failed"))
        } else {
            None
        };
        if let Some(status) = status {
            if text.is_empty() {
                text = status;
            } else {
                let _ = write!(text, ", {status}");
            }
        }
    }
    if text.is_empty() && scope == Scope::Workflow {
        text = "on any event".to_owned();
    }
    text
}

pub(super) fn event_phrase(filter: &Filter) -> String {
    let include: Vec<String> = filter.include.iter().map(|pattern| code(&pattern.text)).collect();
    let exclude: Vec<String> = filter.exclude.iter().map(|pattern| code(&pattern.text)).collect();
    match (include.is_empty(), exclude.is_empty()) {
        (false, true) => format!("on {}", join_words(&include, "or")),
        (true, false) => format!("on any event except {}", join_words(&exclude, "and")),
        (false, false) => format!("on {} except {}", join_words(&include, "or"), join_words(&exclude, "and")),
        (true, true) => "on any event".to_owned(),
    }
}

/// "the branch is `main` or `release/*`", "the branch is not `gh-pages`"; empty for an empty filter.
pub(super) fn filter_phrase(subject: &str, filter: &Filter) -> String {
    let texts = |patterns: &[GlobPattern]| patterns.iter().map(|pattern| code(&pattern.text)).collect::<Vec<_>>();
    let globs = |patterns: &[GlobPattern]| patterns.iter().any(|pattern| is_glob(&pattern.text));
    let (include, exclude) = (texts(&filter.include), texts(&filter.exclude));
    let positive = if globs(&filter.include) { "matches" } else { "is" };
    match (include.is_empty(), exclude.is_empty()) {
        (false, true) => format!("{subject} {positive} {}", join_words(&include, "or")),
        (true, false) => {
            let glob = globs(&filter.exclude);
            match exclude.as_slice() {
                [only] => format!("{subject} {} {only}", if glob { "does not match" } else { "is not" }),
                _ => format!("{subject} {} neither {}", if glob { "matches" } else { "is" }, join_words(&exclude, "nor")),
            }
        }
        (false, false) => format!("{subject} {positive} {} but not {}", join_words(&include, "or"), join_words(&exclude, "or")),
        (true, true) => String::new(),
    }
}

/// Clauses for `when …`, and an `unless …` for the excludes (which only skip when every changed
/// file is excluded).
pub(super) fn path_phrases(path: &PathFilter, note_events: bool) -> (Vec<String>, Option<String>) {
    let mut clauses = Vec::new();
    let include: Vec<String> = path.include.iter().map(|pattern| code(&pattern.text)).collect();
    let exclude: Vec<String> = path.exclude.iter().map(|pattern| code(&pattern.text)).collect();
    if !include.is_empty() {
        clauses.push(format!("a changed file matches {}", join_words(&include, "or")));
    }
    let mut extras = Vec::new();
    if note_events && !clauses.is_empty() {
        extras.push("file filters only apply to pushes and pull requests".to_owned());
    }
    if let Some(marker) = path.ignore_message.as_ref().filter(|marker| !marker.is_empty()) {
        extras.push(format!("a commit message containing {} runs it anyway", code(marker)));
    }
    match path.on_empty {
        Some(false) => extras.push("not when no file changed".to_owned()),
        Some(true) if !clauses.is_empty() => extras.push("also when no file changed".to_owned()),
        _ => {}
    }
    if let Some(last) = clauses.last_mut()
        && !extras.is_empty()
    {
        let _ = write!(last, " ({})", extras.join("; "));
    }
    let unless = (!exclude.is_empty()).then(|| format!("unless every changed file matches {}", join_words(&exclude, "or")));
    (clauses, unless)
}

pub(super) fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}
