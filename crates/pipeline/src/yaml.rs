//! The YAML layer: text to a tree of spanned nodes, with anchors, `<<` merges and sequence merges expanded.
//!
//! Parsing is delegated to serde-saphyr (YAML 1.2 booleans, duplicate keys rejected, alias bombs
//! bounded). Merge keys are expanded here rather than by the parser so that we control their
//! placement (merged keys stand where the `<<` key stands, which keeps step order) and support
//! Woodpecker's sequence merge (`- <<: *list` splices a list into a list).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML value with the place it is used in the file.
///
/// For values that come through an alias or a merge, `span` is where they are used (the alias or
/// the `<<` line), which is where a user looks to fix a problem with this particular use.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    /// A number, kept as written (`1.20` stays `1.20`, not `1.2`), so that versions survive.
    Number(String),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    pub fn new(value: NodeValue, span: Span) -> Self {
        Self { value, span }
    }

    /// The text of a scalar: strings, numbers as written and booleans. `None` for null,
    /// sequences and mappings.
    pub fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match &self.value {
            NodeValue::String(text) | NodeValue::Number(text) => Some(Cow::Borrowed(text)),
            NodeValue::Bool(value) => Some(Cow::Borrowed(if *value { "true" } else { "false" })),
            NodeValue::Null | NodeValue::Sequence(_) | NodeValue::Mapping(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Sequence(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?.iter().find(|(candidate, _)| candidate.scalar_text().as_deref() == Some(key)).map(|(_, value)| value)
    }

    /// A short name of this node's YAML type, for messages ("expected a list, found a mapping").
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Sequence(_) => "a list",
            NodeValue::Mapping(_) => "a mapping",
        }
    }

    /// Applies `rewrite` to every string scalar, keys included, and returns the new tree.
    /// Used for `${VAR}` substitution, which must not move any span.
    pub fn map_strings<E>(&self, rewrite: &mut impl FnMut(&str, Span) -> Result<String, E>) -> Result<Node, E> {
        let value = match &self.value {
            NodeValue::String(text) => NodeValue::String(rewrite(text, self.span)?),
            NodeValue::Sequence(items) => {
                NodeValue::Sequence(items.iter().map(|item| item.map_strings(rewrite)).collect::<Result<_, _>>()?)
            }
            NodeValue::Mapping(entries) => NodeValue::Mapping(
                entries
                    .iter()
                    .map(|(key, value)| Ok((key.map_strings(rewrite)?, value.map_strings(rewrite)?)))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        };
        Ok(Node::new(value, self.span))
    }
}

/// A YAML document that could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

/// Largest input we read. Pipeline files are small; a bigger one is a mistake or an attack.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Reads every document of a YAML stream (JSON is YAML too).
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(YamlError {
            message: format!("file is {} bytes, more than the {} bytes a pipeline file may have", text.len(), MAX_INPUT_BYTES),
            span: Span::new(1, 1),
            hint: None,
        });
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        merge_keys: serde_saphyr::MergeKeyPolicy::AsOrdinary,
        with_snippet: false,
    };
    let documents: Vec<Spanned<RawValue>> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|error| yaml_error(text, &error))?;
    documents.into_iter().map(|document| lower(document, text)).collect()
}

fn yaml_error(text: &str, error: &serde_saphyr::Error) -> YamlError {
    let inner = error.without_snippet();
    let message = serde_saphyr::UserMessageFormatter.format_message(inner).into_owned();
    let span = error
        .location()
        .map(|location| Span::new(saturate(location.line()), saturate(location.column())))
        .filter(|span| span.line > 0)
        .unwrap_or(Span::new(1, 1));
    let at_error: &str = text
        .lines()
        .nth(span.line.saturating_sub(1) as usize)
        .and_then(|line| line.char_indices().nth(span.column.saturating_sub(1) as usize).map(|(index, _)| &line[index..]))
        .unwrap_or("");
    if let Some(alias) = at_error.strip_prefix('*') {
        let name: String = alias.chars().take_while(|c| !c.is_whitespace() && !",]}".contains(*c)).collect();
        return YamlError {
            message: format!("alias `*{name}` refers to an anchor that is not defined"),
            span,
            hint: Some(format!("define `&{name}` on a value before this line, e.g. under `variables:`")),
        };
    }
    // The parser may report a tab at the start of the construct it was reading; point at the
    // line that really holds the tab, which is where the user must edit.
    let tab_line = text.lines().enumerate().skip(span.line.saturating_sub(1) as usize).take(4).find_map(|(index, line)| {
        let leading = &line[..line.len() - line.trim_start().len()];
        leading.find('\t').map(|column| Span::new(index as u32 + 1, column as u32 + 1))
    });
    match tab_line {
        Some(tab_span) if message.contains("tab") || tab_span.line == span.line => YamlError {
            message: "tab character in indentation".into(),
            span: tab_span,
            hint: Some("YAML indents with spaces only; replace the tabs on this line with spaces".into()),
        },
        _ => YamlError { message, span, hint: None },
    }
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn span_of<T>(spanned: &Spanned<T>) -> Span {
    Span::new(saturate(spanned.referenced.line()), saturate(spanned.referenced.column()))
}

/// The tree exactly as serde-saphyr hands it over, before merges are expanded.
enum RawValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Sequence(Vec<Spanned<RawValue>>),
    Mapping(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawValue;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_none<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawValue, D::Error> {
                RawValue::deserialize(deserializer)
            }
            fn visit_bool<E>(self, value: bool) -> Result<RawValue, E> {
                Ok(RawValue::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<RawValue, E> {
                Ok(RawValue::Int(value.into()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<RawValue, E> {
                Ok(RawValue::Int(value.into()))
            }
            fn visit_i128<E>(self, value: i128) -> Result<RawValue, E> {
                Ok(RawValue::Int(value))
            }
            fn visit_u128<E>(self, value: u128) -> Result<RawValue, E> {
                Ok(i128::try_from(value).map(RawValue::Int).unwrap_or(RawValue::Float(value as f64)))
            }
            fn visit_f64<E>(self, value: f64) -> Result<RawValue, E> {
                Ok(RawValue::Float(value))
            }
            fn visit_str<E>(self, value: &str) -> Result<RawValue, E> {
                Ok(RawValue::String(value.to_owned()))
            }
            fn visit_string<E>(self, value: String) -> Result<RawValue, E> {
                Ok(RawValue::String(value))
            }
            fn visit_bytes<E>(self, value: &[u8]) -> Result<RawValue, E> {
                Ok(RawValue::String(String::from_utf8_lossy(value).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<RawValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = access.next_element()? {
                    items.push(item);
                }
                Ok(RawValue::Sequence(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<RawValue, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawValue::Mapping(entries))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

/// The source text of a number at `location`, when the parser knows its bytes; else `fallback`.
fn number_text(text: &str, spanned: &Spanned<RawValue>, fallback: String) -> String {
    let span = spanned.defined.span();
    if let (Some(offset), Some(length)) = (span.byte_offset(), span.byte_len()) {
        let (offset, length) = (offset as usize, length as usize);
        if let Some(raw) = text.get(offset..offset.saturating_add(length)) {
            let raw = raw.trim();
            if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c)) {
                return raw.to_owned();
            }
        }
    }
    fallback
}

fn is_merge_key(key: &Spanned<RawValue>) -> bool {
    matches!(&key.value, RawValue::String(text) if text == "<<")
}

/// Turns the raw tree into nodes, expanding `<<` merges in mappings and sequences.
fn lower(raw: Spanned<RawValue>, text: &str) -> Result<Node, YamlError> {
    let span = span_of(&raw);
    let value = match raw.value {
        RawValue::Null => NodeValue::Null,
        RawValue::Bool(value) => NodeValue::Bool(value),
        RawValue::Int(value) => NodeValue::Number(number_text(text, &raw, value.to_string())),
        RawValue::Float(value) => NodeValue::Number(number_text(text, &raw, value.to_string())),
        RawValue::String(value) => NodeValue::String(value),
        RawValue::Sequence(items) => {
            let mut lowered = Vec::with_capacity(items.len());
            for item in items {
                // `- <<: *list` splices the aliased list in place (a go-yaml extension Woodpecker documents).
                if let RawValue::Mapping(entries) = &item.value
                    && entries.len() == 1
                    && is_merge_key(&entries[0].0)
                    && matches!(entries[0].1.value, RawValue::Sequence(_))
                {
                    let RawValue::Mapping(mut entries) = item.value else { unreachable!() };
                    let (_, list) = entries.remove(0);
                    let merge_span = span_of(&list);
                    let RawValue::Sequence(spliced) = list.value else { unreachable!() };
                    // `- <<: [*a, *b]` splices several lists, in order.
                    let several = !spliced.is_empty() && spliced.iter().all(|entry| matches!(entry.value, RawValue::Sequence(_)));
                    let spliced: Vec<Spanned<RawValue>> = if several {
                        spliced
                            .into_iter()
                            .flat_map(|entry| match entry.value {
                                RawValue::Sequence(items) => items,
                                _ => Vec::new(),
                            })
                            .collect()
                    } else {
                        spliced
                    };
                    for spliced_item in spliced {
                        let mut node = lower(spliced_item, text)?;
                        node.span = merge_span;
                        lowered.push(node);
                    }
                    continue;
                }
                lowered.push(lower(item, text)?);
            }
            NodeValue::Sequence(lowered)
        }
        RawValue::Mapping(entries) => NodeValue::Mapping(lower_mapping(entries, text)?),
    };
    Ok(Node::new(value, span))
}

fn lower_mapping(entries: Vec<(Spanned<RawValue>, Spanned<RawValue>)>, text: &str) -> Result<Vec<(Node, Node)>, YamlError> {
    // Explicit keys win over merged ones wherever they stand, so collect them first.
    let mut explicit: Vec<String> = Vec::new();
    for (key, _) in &entries {
        if !is_merge_key(key)
            && let Some(name) = raw_key_text(&key.value)
        {
            explicit.push(name);
        }
    }
    let mut result: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if !is_merge_key(&key) {
            result.push((lower(key, text)?, lower(value, text)?));
            continue;
        }
        let merge_span = span_of(&value);
        let sources: Vec<Spanned<RawValue>> = match value.value {
            RawValue::Mapping(_) => vec![value],
            RawValue::Sequence(items) if items.iter().all(|item| matches!(item.value, RawValue::Mapping(_))) => items,
            _ => {
                return Err(YamlError {
                    message: "`<<` merges a mapping or a list of mappings here".into(),
                    span: merge_span,
                    hint: Some("point the alias at a mapping, e.g. `<<: *defaults` where `defaults` is a mapping".into()),
                });
            }
        };
        // With several sources the earlier one wins (YAML merge spec).
        for source in sources {
            let RawValue::Mapping(source_entries) = source.value else { continue };
            for (merged_key, merged_value) in lower_mapping(source_entries, text)? {
                let name = merged_key.scalar_text().map(Cow::into_owned);
                let taken = name.as_ref().is_some_and(|name| {
                    explicit.contains(name) || result.iter().any(|(existing, _)| existing.scalar_text().as_deref() == Some(name.as_str()))
                });
                if !taken {
                    let mut key_node = merged_key;
                    key_node.span = merge_span;
                    let mut value_node = merged_value;
                    value_node.span = merge_span;
                    result.push((key_node, value_node));
                }
            }
        }
    }
    Ok(result)
}

fn raw_key_text(value: &RawValue) -> Option<String> {
    match value {
        RawValue::String(text) => Some(text.clone()),
        RawValue::Int(value) => Some(value.to_string()),
        RawValue::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}
