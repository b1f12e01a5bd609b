//! Diagnostics: what is wrong or doubtful in a pipeline file, where, and what to do about it.

use std::fmt::Write as _;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::yaml::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Not a problem: something a reviewer should see before the pipeline runs (a step that
    /// needs trust). Never changes an exit code.
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// Stable codes: tools and people match on these, so they never change meaning.
pub mod code {
    pub const YAML_SYNTAX: &str = "yaml-syntax";
    pub const WRONG_TYPE: &str = "wrong-type";
    pub const MISSING_KEY: &str = "missing-key";
    pub const INVALID_VALUE: &str = "invalid-value";
    pub const UNKNOWN_KEY: &str = "unknown-key";
    pub const DEPRECATED: &str = "deprecated";
    pub const UNKNOWN_DEPENDENCY: &str = "unknown-dependency";
    pub const DEPENDENCY_CYCLE: &str = "dependency-cycle";
    pub const DUPLICATE_NAME: &str = "duplicate-name";
    pub const MATRIX_LIMIT: &str = "matrix-limit";
    pub const INVALID_WHEN: &str = "invalid-when";
    pub const INVALID_GLOB: &str = "invalid-glob";
    pub const INVALID_REGEX: &str = "invalid-regex";
    pub const INVALID_EXPRESSION: &str = "invalid-expression";
    pub const INVALID_SUBSTITUTION: &str = "invalid-substitution";
    pub const UNREACHABLE_STEP: &str = "unreachable-step";
    pub const UNSUPPORTED: &str = "unsupported";
    pub const NO_STEPS: &str = "no-steps";
    pub const EMPTY_SUBSTITUTION: &str = "empty-substitution";
    pub const NEEDS_TRUST: &str = "needs-trust";
}

/// One finding in one file. `line` and `column` are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// One of the constants in `code`; owned only when read back from the wire.
    pub code: Cow<'static, str>,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, file: &str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, file, span, message)
    }

    pub fn warning(code: &'static str, file: &str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, file, span, message)
    }

    pub fn note(code: &'static str, file: &str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, code, file, span, message)
    }

    fn new(severity: Severity, code: &'static str, file: &str, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity,
            code: Cow::Borrowed(code),
            file: file.to_owned(),
            line: span.line,
            column: span.column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }

    /// Renders rustc-style: the message, the location, the source line and a caret under the column.
    pub fn render(&self, source: Option<&str>) -> String {
        self.render_with(source, false)
    }

    /// As `render`, with ANSI colours when `colored` (the caller knows whether it writes to a terminal).
    pub fn render_with(&self, source: Option<&str>, colored: bool) -> String {
        let paint = |code: &str, text: &str| if colored { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
        let severity = self.severity.as_str();
        let severity_color = match self.severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Note => "1;32",
        };
        let mut out = String::new();
        let _ =
            writeln!(out, "{}{}", paint(severity_color, &format!("{severity}[{}]", self.code)), paint("1", &format!(": {}", self.message)));
        let line_text = source.and_then(|text| text.lines().nth(self.line.saturating_sub(1) as usize));
        let gutter = " ".repeat(self.line.to_string().len());
        let _ = writeln!(out, "{gutter}{} {}:{}:{}", paint("1;34", "-->"), self.file, self.line, self.column);
        if let Some(line_text) = line_text {
            // Tabs are shown as one space each so that the caret lines up in any terminal, and a
            // long line (minified JSON) is cut to a window around the column.
            let chars: Vec<char> = line_text.trim_end().chars().map(|c| if c == '\t' || c.is_control() { ' ' } else { c }).collect();
            let column = (self.column.saturating_sub(1) as usize).min(chars.len());
            let start = column.saturating_sub(60);
            let end = (start + 120).min(chars.len());
            let mut shown: String = chars[start..end].iter().collect();
            if start > 0 {
                shown.insert(0, '…');
            }
            if end < chars.len() {
                shown.push('…');
            }
            let caret_at = column - start + usize::from(start > 0);
            let bar = paint("1;34", "|");
            let _ = writeln!(out, "{gutter} {bar}");
            let _ = writeln!(out, "{} {bar} {shown}", paint("1;34", &self.line.to_string()));
            let caret = paint(severity_color, "^");
            let _ = writeln!(out, "{gutter} {bar} {}{caret}", " ".repeat(caret_at));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{gutter} {} {hint}", paint("1;36", "= help:"));
        }
        out
    }
}

/// Sorts diagnostics by file, then position, errors before warnings before notes at the same place.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.line, a.column, a.severity, a.code.as_ref()).cmp(&(
            b.file.as_str(),
            b.line,
            b.column,
            b.severity,
            b.code.as_ref(),
        ))
    });
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&word_lower, &candidate.to_lowercase()), candidate))
        .filter(|(distance, candidate)| {
            let limit = (candidate.chars().count().max(word.chars().count()) / 3).max(1);
            *distance <= limit
        })
        // Ties go to the alphabetically first candidate, so the hint is the same on every run.
        .min_by(|(a_distance, a), (b_distance, b)| a_distance.cmp(b_distance).then_with(|| a.cmp(b)))
        .map(|(_, candidate)| candidate)
}

/// Damerau-Levenshtein (optimal string alignment) distance: a swapped pair counts as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}
