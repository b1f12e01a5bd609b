//! Text helpers: escapes for Markdown and Mermaid, counts, shortening, slugs.

use crate::model::Dialect;
use std::collections::BTreeMap;

pub(super) fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Woodpecker => "Woodpecker",
        Dialect::Drone => "Drone",
    }
}

pub(super) fn count(number: usize, one: &str, many: &str) -> String {
    format!("{number} {}", if number == 1 { one } else { many })
}

/// "a", "a or b", "a, b or c".
pub(super) fn join_words(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

pub(super) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_ascii_lowercase() => first.to_ascii_uppercase().to_string() + chars.as_str(),
        _ => text.to_owned(),
    }
}

/// At most `width` characters, with `…` when cut.
pub(super) fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let cut: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// Inline code that survives any content: backticks in the text get a longer fence, line
/// breaks become spaces.
pub(super) fn code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    if text.is_empty() {
        return "` `".to_owned();
    }
    let longest = longest_run(&text, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A fenced code block whose fence is longer than any backtick run inside.
pub(super) fn fenced(language: &str, text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    format!("{fence}{language}\n{text}\n{fence}\n")
}

pub(super) fn longest_run(text: &str, wanted: char) -> usize {
    let (mut longest, mut current) = (0, 0);
    for c in text.chars() {
        current = if c == wanted { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}

/// A table cell: pipes escaped (also inside code spans, as GitHub wants), no line breaks.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Mermaid node id: a prefix and position (unique), then the name's ASCII letters and digits
/// for readability. Never a Mermaid keyword, never anything that needs quoting.
pub(super) fn node_id(prefix: char, index: usize, name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
        if slug.len() >= 24 {
            break;
        }
    }
    let slug = slug.trim_end_matches('_');
    if slug.is_empty() { format!("{prefix}{index}") } else { format!("{prefix}{index}_{slug}") }
}

/// A node label: the name, and tags on a second line.
pub(super) fn label(name: &str, tags: &[String]) -> String {
    let name = mermaid_text(name);
    if tags.is_empty() { name } else { format!("{name}<br/><small>{}</small>", mermaid_text(&tags.join(", "))) }
}

/// Text inside a quoted Mermaid label: quotes and the characters Mermaid or HTML would read
/// as markup become entity codes.
pub(super) fn mermaid_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("#quot;"),
            '#' => escaped.push_str("#35;"),
            '<' => escaped.push_str("#60;"),
            '>' => escaped.push_str("#62;"),
            '&' => escaped.push_str("#38;"),
            '`' => escaped.push_str("#96;"),
            '\n' | '\r' | '\t' => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

/// GitHub's heading anchors, from a heading's text as rendered (no Markdown): lower case,
/// punctuation dropped, spaces to `-`, repeats numbered.
#[derive(Default)]
pub(super) struct Slugger {
    pub(super) seen: BTreeMap<String, usize>,
}

impl Slugger {
    pub(super) fn slug(&mut self, heading: &str) -> String {
        let mut base = String::new();
        for c in heading.to_lowercase().chars() {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                base.push(c);
            } else if c == ' ' {
                base.push('-');
            }
        }
        // As github-slugger: the first is `base`, then `base-1`, `base-2`, skipping taken ones.
        let mut slug = base.clone();
        while self.seen.contains_key(&slug) {
            let count = self.seen.get_mut(&base).expect("base is taken");
            *count += 1;
            slug = format!("{base}-{count}");
        }
        self.seen.insert(slug.clone(), 0);
        slug
    }
}

/// `90` → `90 seconds`, `1800` → `30 minutes`, `3600` → `1 hour`.
pub(super) fn human_duration(seconds: u32) -> String {
    let (count, unit) = match seconds {
        seconds if seconds % 3600 == 0 => (seconds / 3600, "hour"),
        seconds if seconds % 60 == 0 => (seconds / 60, "minute"),
        seconds => (seconds, "second"),
    };
    if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") }
}
