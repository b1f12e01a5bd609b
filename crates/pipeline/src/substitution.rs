//! `${NAME}` substitution with the semantics of drone/envsubst v1.0.3, the version Woodpecker CI and Drone run over
//! the raw pipeline file before parsing it as YAML.
//!
//! drone/envsubst is not bash, and a file should behave here as it does there, so its quirks are kept on purpose
//! (the tests pin each one):
//! - only `${...}` is an expression; `$NAME` without braces stays as written;
//! - `$$`, `\\` and `\/` are escapes in plain text and in replace arguments, but not in other arguments;
//! - names are letters, digits and `_`, so `${A-b}` is an error rather than bash's "default if unset";
//! - unset and empty are the same, and every default form (`=`, `:=`, `:-`, `:+`, `:?`) means "the value, or
//!   the argument when the value is empty": `:+` does not substitute and `:?` does not fail;
//! - `#` and `%` take a glob and never match an empty prefix or suffix, so `${p#*}` drops the first character;
//!   `%` and `%%` match the reversed pattern against the reversed value, so bracket classes never match there;
//! - `/#` and `/%` without a replacement leave the value alone, and `/`, `//` match literally, not as globs.
//!
//! Where drone/envsubst works on bytes this module works on characters (`${#p}`, `${p:1:2}`, globs), so results
//! stay valid UTF-8; they agree on ASCII.

use std::borrow::Cow;
use std::iter::Peekable;
use std::str::Chars;

/// drone/envsubst recurses without bound; past this depth an error is safer than exhausting the stack.
const MAX_NESTING_DEPTH: usize = 64;

/// A `${...}` expression that could not be read. `offset` is the byte offset in the input where the bad expression starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SubstitutionError {
    pub offset: usize,
    pub message: String,
}

/// Replaces `${NAME}` and its operator forms using `lookup`; `$$` escapes a dollar.
/// An unknown variable is the empty string (as in Woodpecker/Drone).
///
/// # Errors
/// The first `${...}` expression that cannot be read; nothing is substituted then.
pub fn substitute(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstitutionError> {
    // Expressions and escapes all start with `$` or `\`; anything else is copied as it is.
    if !input.bytes().any(|byte| byte == b'$' || byte == b'\\') {
        return Ok(input.to_owned());
    }
    // The whole input is parsed before any lookup, so a bad expression anywhere fails the whole input, as in drone.
    let segments = Parser::new(input).parse_template()?;
    let mut output = String::with_capacity(input.len());
    for segment in &segments {
        match segment {
            Segment::Text(text) => output.push_str(text),
            Segment::Expression(expression) => output.push_str(&evaluate(expression, lookup)),
        }
    }
    Ok(output)
}

/// The variables `input` refers to (not escaped), each with the byte offset of its `$`, in order of appearance,
/// including those nested in operator arguments. Used by lint to warn about variables that will be empty.
///
/// # Errors
/// The same error as [`substitute`] for the same input.
pub fn referenced_variables(input: &str) -> Result<Vec<(String, usize)>, SubstitutionError> {
    if !input.contains('$') {
        return Ok(Vec::new());
    }
    let segments = Parser::new(input).parse_template()?;
    let mut variables = Vec::new();
    for segment in &segments {
        if let Segment::Expression(expression) = segment {
            collect_variables(expression, &mut variables);
        }
    }
    Ok(variables)
}

enum Segment {
    Text(String),
    Expression(Expression),
}

struct Expression {
    name: String,
    /// Byte offset of the `$`.
    offset: usize,
    operation: Operation,
}

enum Argument {
    Text(String),
    Expression(Box<Expression>),
}

enum Operation {
    Value,
    Length,
    LowerFirst,
    LowerAll,
    UpperFirst,
    UpperAll,
    Substring {
        position: Argument,
        length: Option<Argument>,
    },
    Trim {
        side: Side,
        longest: bool,
        pattern: Argument,
    },
    Replace {
        mode: ReplaceMode,
        pattern: Argument,
        replacement: Option<Argument>,
    },
    /// Every default form; drone evaluates them all alike.
    Default {
        fallback: Vec<Argument>,
    },
}

impl Operation {
    /// The arguments in the order they appear in the input.
    fn arguments(&self) -> Vec<&Argument> {
        match self {
            Operation::Value
            | Operation::Length
            | Operation::LowerFirst
            | Operation::LowerAll
            | Operation::UpperFirst
            | Operation::UpperAll => Vec::new(),
            Operation::Substring { position, length } => std::iter::once(position).chain(length).collect(),
            Operation::Trim { pattern, .. } => vec![pattern],
            Operation::Replace { pattern, replacement, .. } => std::iter::once(pattern).chain(replacement).collect(),
            Operation::Default { fallback } => fallback.iter().collect(),
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Prefix,
    Suffix,
}

#[derive(Clone, Copy)]
enum ReplaceMode {
    First,
    All,
    Prefix,
    Suffix,
}

/// Recursive descent over the input, never backtracking, so parsing is linear in the input length.
struct Parser<'a> {
    input: &'a str,
    position: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self { input, position: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.position..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn advance(&mut self) {
        if let Some(character) = self.peek() {
            self.position += character.len_utf8();
        }
    }

    fn advance_while(&mut self, wanted: char) {
        while self.peek() == Some(wanted) {
            self.advance();
        }
    }

    fn at_expression_start(&self) -> bool {
        self.rest().starts_with("${")
    }

    fn parse_template(&mut self) -> Result<Vec<Segment>, SubstitutionError> {
        let mut segments = Vec::new();
        while self.position < self.input.len() {
            if self.at_expression_start() {
                segments.push(Segment::Expression(self.parse_expression(0)?));
            } else {
                segments.push(Segment::Text(self.scan_text(|_| false, true)));
            }
        }
        Ok(segments)
    }

    /// Literal text up to `${`, the end of input, or a character `stop` accepts. An escape takes the character
    /// after it literally, so `$${` is text and `\/` does not stop at `/`.
    fn scan_text(&mut self, stop: impl Fn(char) -> bool, escapes: bool) -> String {
        let mut text = String::new();
        while !self.at_expression_start() {
            if escapes && let Some(escaped) = self.escaped_character() {
                text.push(escaped);
                self.position += 2;
                continue;
            }
            match self.peek() {
                Some(character) if !stop(character) => {
                    text.push(character);
                    self.position += character.len_utf8();
                }
                _ => break,
            }
        }
        text
    }

    fn escaped_character(&self) -> Option<char> {
        match self.rest().as_bytes() {
            [b'$', b'$', ..] => Some('$'),
            [b'\\', second @ (b'\\' | b'/'), ..] => Some(char::from(*second)),
            _ => None,
        }
    }

    fn scan_name(&mut self) -> String {
        let start = self.position;
        while let Some(character) = self.peek().filter(|&character| is_name_character(character)) {
            self.position += character.len_utf8();
        }
        self.input[start..self.position].to_owned()
    }

    /// Parses the `${...}` starting at the current position.
    fn parse_expression(&mut self, depth: usize) -> Result<Expression, SubstitutionError> {
        let offset = self.position;
        if depth > MAX_NESTING_DEPTH {
            return Err(SubstitutionError { offset, message: "${ expressions are nested too deeply".to_owned() });
        }
        self.position += "${".len();
        if self.peek() == Some('#') {
            self.advance();
            let name = self.scan_name();
            if name.is_empty() {
                return Err(self.unexpected(offset, "a variable name after '${#'"));
            }
            self.expect_closing_brace(offset, "after the variable name")?;
            return Ok(Expression { name, offset, operation: Operation::Length });
        }
        let name = self.scan_name();
        if name.is_empty() {
            return Err(self.unexpected(offset, "a variable name after '${'"));
        }
        let operation = match self.peek() {
            Some('}') => {
                self.advance();
                Operation::Value
            }
            // `:` then `=`, `-`, `?` or `+` is a default, anything else a substring: `${p:-1}` is a default.
            Some(':') => match self.peek_second() {
                Some('=' | '-' | '?' | '+') => {
                    self.position += 2;
                    self.parse_default(offset, depth)?
                }
                _ => {
                    self.advance();
                    self.parse_substring(offset, depth)?
                }
            },
            Some('=') => {
                self.advance();
                self.parse_default(offset, depth)?
            }
            Some(marker @ (',' | '^')) => self.parse_case(offset, marker)?,
            Some('/') => self.parse_replace(offset, depth)?,
            Some(marker @ ('#' | '%')) => self.parse_trim(offset, depth, marker)?,
            _ => return Err(self.unexpected(offset, "'}' after the variable name")),
        };
        Ok(Expression { name, offset, operation })
    }

    /// One argument: a nested expression, or non-empty text (drone rejects an empty argument).
    fn parse_argument(
        &mut self,
        offset: usize,
        depth: usize,
        stop: impl Fn(char) -> bool,
        escapes: bool,
        expected: &str,
    ) -> Result<Argument, SubstitutionError> {
        if self.at_expression_start() {
            return Ok(Argument::Expression(Box::new(self.parse_expression(depth + 1)?)));
        }
        let text = self.scan_text(stop, escapes);
        if text.is_empty() {
            return Err(self.unexpected(offset, expected));
        }
        Ok(Argument::Text(text))
    }

    /// After `=` or `:=`, `:-`, `:+`, `:?`: any mix of text and nested expressions up to `}`.
    fn parse_default(&mut self, offset: usize, depth: usize) -> Result<Operation, SubstitutionError> {
        let mut fallback = Vec::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.advance();
                    return Ok(Operation::Default { fallback });
                }
                None => return Err(self.unexpected(offset, "'}'")),
                Some(_) => fallback.push(self.parse_argument(offset, depth, |character| character == '}', false, "a default value")?),
            }
        }
    }

    /// After `:`: an offset, then optionally `:` and a length, each text or a single nested expression.
    fn parse_substring(&mut self, offset: usize, depth: usize) -> Result<Operation, SubstitutionError> {
        let position =
            self.parse_argument(offset, depth, |character| character == ':' || character == '}', false, "an offset after ':'")?;
        match self.peek() {
            Some('}') => {
                self.advance();
                return Ok(Operation::Substring { position, length: None });
            }
            // drone takes any run of colons as the separator.
            Some(':') => self.advance_while(':'),
            _ => return Err(self.unexpected(offset, "':' or '}' after the offset")),
        }
        let length = self.parse_argument(offset, depth, |character| character == '}', false, "a length after ':'")?;
        self.expect_closing_brace(offset, "after the length")?;
        Ok(Operation::Substring { position, length: Some(length) })
    }

    /// `#`, `##`, `%` or `%%`, then one pattern: text or a single nested expression.
    fn parse_trim(&mut self, offset: usize, depth: usize, marker: char) -> Result<Operation, SubstitutionError> {
        self.advance();
        let longest = self.peek() == Some(marker);
        if longest {
            self.advance();
        }
        let (side, expected) = if marker == '#' { (Side::Prefix, "a pattern after '#'") } else { (Side::Suffix, "a pattern after '%'") };
        let pattern = self.parse_argument(offset, depth, |character| character == '}', false, expected)?;
        self.expect_closing_brace(offset, "after the pattern")?;
        Ok(Operation::Trim { side, longest, pattern })
    }

    /// `/`, `//`, `/#` or `/%`, a pattern, `/`, and an optional replacement.
    fn parse_replace(&mut self, offset: usize, depth: usize) -> Result<Operation, SubstitutionError> {
        self.advance();
        let mode = match self.peek() {
            Some('/') => ReplaceMode::All,
            Some('#') => ReplaceMode::Prefix,
            Some('%') => ReplaceMode::Suffix,
            _ => ReplaceMode::First,
        };
        if !matches!(mode, ReplaceMode::First) {
            self.advance();
        }
        // Only `/` ends the pattern: drone reads `${p/a}` as the pattern `a}` followed by whatever comes next.
        let pattern = self.parse_argument(offset, depth, |character| character == '/', true, "a pattern after '/'")?;
        if self.peek() != Some('/') {
            return Err(self.unexpected(offset, "'/' after the pattern"));
        }
        // drone takes any run of slashes as the separator.
        self.advance_while('/');
        if self.peek() == Some('}') {
            self.advance();
            return Ok(Operation::Replace { mode, pattern, replacement: None });
        }
        let replacement = self.parse_argument(offset, depth, |character| character == '}', true, "a replacement or '}' after '/'")?;
        self.expect_closing_brace(offset, "after the replacement")?;
        Ok(Operation::Replace { mode, pattern, replacement: Some(replacement) })
    }

    /// `,`, `,,`, `^` or `^^`.
    fn parse_case(&mut self, offset: usize, first: char) -> Result<Operation, SubstitutionError> {
        self.advance();
        let second = self.peek().filter(|&character| character == ',' || character == '^');
        if second.is_some() {
            self.advance();
        }
        self.expect_closing_brace(offset, "after the case operator")?;
        Ok(match (first, second) {
            (',', None) => Operation::LowerFirst,
            (',', Some(',')) => Operation::LowerAll,
            ('^', None) => Operation::UpperFirst,
            ('^', Some('^')) => Operation::UpperAll,
            // drone parses `,^` and `^,` but has no function for them, which leaves the value as it is.
            _ => Operation::Value,
        })
    }

    fn expect_closing_brace(&mut self, offset: usize, context: &str) -> Result<(), SubstitutionError> {
        if self.peek() == Some('}') {
            self.advance();
            return Ok(());
        }
        Err(self.unexpected(offset, &format!("'}}' {context}")))
    }

    fn unexpected(&self, offset: usize, expected: &str) -> SubstitutionError {
        let message = match self.peek() {
            None => "unterminated ${ expression".to_owned(),
            Some(found) => format!("invalid ${{ expression: expected {expected}, found {found:?}"),
        };
        SubstitutionError { offset, message }
    }
}

/// drone accepts Unicode letters and digits; `-` and `.` end a name.
fn is_name_character(character: char) -> bool {
    character == '_' || character.is_alphabetic() || character.is_numeric()
}

fn collect_variables(expression: &Expression, variables: &mut Vec<(String, usize)>) {
    variables.push((expression.name.clone(), expression.offset));
    for argument in expression.operation.arguments() {
        if let Argument::Expression(nested) = argument {
            collect_variables(nested, variables);
        }
    }
}

fn evaluate(expression: &Expression, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let value = lookup(&expression.name).unwrap_or_default();
    match &expression.operation {
        Operation::Value => value,
        Operation::Length => value.chars().count().to_string(),
        Operation::LowerFirst => map_first_character(&value, to_lower),
        Operation::LowerAll => value.chars().map(to_lower).collect(),
        Operation::UpperFirst => map_first_character(&value, to_upper),
        Operation::UpperAll => value.chars().map(to_upper).collect(),
        Operation::Substring { position, length } => {
            let position = evaluate_argument(position, lookup);
            let length = length.as_ref().map(|length| evaluate_argument(length, lookup));
            substring(&value, &position, length.as_deref())
        }
        Operation::Trim { side, longest, pattern } => trim(&value, &evaluate_argument(pattern, lookup), *side, *longest),
        Operation::Replace { mode, pattern, replacement } => {
            let pattern = evaluate_argument(pattern, lookup);
            let replacement = replacement.as_ref().map(|replacement| evaluate_argument(replacement, lookup));
            replace(&value, *mode, &pattern, replacement.as_deref())
        }
        Operation::Default { fallback } if value.is_empty() => {
            fallback.iter().map(|argument| evaluate_argument(argument, lookup)).collect()
        }
        Operation::Default { .. } => value,
    }
}

fn evaluate_argument<'a>(argument: &'a Argument, lookup: &dyn Fn(&str) -> Option<String>) -> Cow<'a, str> {
    match argument {
        Argument::Text(text) => Cow::Borrowed(text),
        Argument::Expression(expression) => Cow::Owned(evaluate(expression, lookup)),
    }
}

/// Go maps a character to one character (its simple case mapping) and keeps it when there is none;
/// Rust's full mapping can give several (`ß` to `SS`), which is where Go keeps the character.
fn to_upper(character: char) -> char {
    single(character.to_uppercase()).unwrap_or(character)
}

fn to_lower(character: char) -> char {
    // The one common letter whose full lowercase is two characters but whose simple lowercase exists.
    if character == 'İ' {
        return 'i';
    }
    single(character.to_lowercase()).unwrap_or(character)
}

fn single(mut characters: impl Iterator<Item = char>) -> Option<char> {
    let first = characters.next()?;
    characters.next().is_none().then_some(first)
}

fn map_first_character(value: &str, map: fn(char) -> char) -> String {
    let mut characters = value.chars();
    let Some(first) = characters.next() else {
        return String::new();
    };
    let mut mapped = String::with_capacity(value.len());
    mapped.push(map(first));
    mapped.push_str(characters.as_str());
    mapped
}

/// `${p:position}` and `${p:position:length}`, counted in characters.
fn substring(value: &str, position: &str, length: Option<&str>) -> String {
    // Like bash, drone keeps the whole value when the offset or length is not an integer.
    let Ok(mut start) = position.parse::<i64>() else {
        return value.to_owned();
    };
    let count = i64::try_from(value.chars().count()).unwrap_or(i64::MAX);
    if start < 0 {
        start = (count + start).max(0);
    }
    let end = match length {
        None => count,
        Some(length) => {
            let Ok(length) = length.parse::<i64>() else {
                return value.to_owned();
            };
            let end = start.saturating_add(length);
            if end >= count {
                count
            } else if length < 0 {
                // drone panics here (slice end before start); bash counts a negative length back from the end.
                count + length
            } else {
                end
            }
        }
    };
    if start >= end {
        return String::new();
    }
    // Both bounds are within 0..=count here.
    let skip = usize::try_from(start).unwrap_or(usize::MAX);
    let take = usize::try_from(end - start).unwrap_or(usize::MAX);
    value.chars().skip(skip).take(take).collect()
}

fn replace(value: &str, mode: ReplaceMode, pattern: &str, replacement: Option<&str>) -> String {
    match (mode, replacement) {
        (ReplaceMode::First, replacement) => value.replacen(pattern, replacement.unwrap_or(""), 1),
        (ReplaceMode::All, replacement) => value.replace(pattern, replacement.unwrap_or("")),
        (ReplaceMode::Prefix, Some(replacement)) => match value.strip_prefix(pattern) {
            Some(rest) => format!("{replacement}{rest}"),
            None => value.to_owned(),
        },
        (ReplaceMode::Suffix, Some(replacement)) => match value.strip_suffix(pattern) {
            Some(rest) => format!("{rest}{replacement}"),
            None => value.to_owned(),
        },
        // drone anchors only when a replacement is given.
        (ReplaceMode::Prefix | ReplaceMode::Suffix, None) => value.to_owned(),
    }
}

fn trim(value: &str, pattern: &str, side: Side, longest: bool) -> String {
    match side {
        Side::Prefix => trim_prefix(value, pattern, longest),
        // drone reverses the value and the pattern, so a class like `[a-z]` becomes `]z-a[` and never matches.
        Side::Suffix => {
            let reversed_value: String = value.chars().rev().collect();
            let reversed_pattern: String = pattern.chars().rev().collect();
            trim_prefix(&reversed_value, &reversed_pattern, longest).chars().rev().collect()
        }
    }
}

fn trim_prefix(value: &str, pattern: &str, longest: bool) -> String {
    // A malformed pattern never matches in drone, which leaves the value as it is.
    let Some(glob) = Glob::compile(pattern) else {
        return value.to_owned();
    };
    match glob.matching_prefix(value, longest) {
        Some(end) => value[end..].to_owned(),
        None => value.to_owned(),
    }
}

/// The shell pattern dialect of drone/envsubst's matcher: `*` and `?` also match `/`, classes are `[...]` or
/// `[^...]` with ranges, and `\` escapes the next character.
struct Glob {
    tokens: Vec<GlobToken>,
}

enum GlobToken {
    Literal(char),
    AnyCharacter,
    AnySequence,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl GlobToken {
    /// Whether the token consumes `character`; `AnySequence` is handled by the matcher.
    fn accepts(&self, character: char) -> bool {
        match self {
            GlobToken::Literal(literal) => *literal == character,
            GlobToken::AnyCharacter => true,
            GlobToken::AnySequence => false,
            GlobToken::Class { negated, ranges } => ranges.iter().any(|&(low, high)| low <= character && character <= high) != *negated,
        }
    }
}

impl Glob {
    /// `None` for a pattern drone's matcher rejects: a trailing `\`, or a class that is unclosed, empty, or has
    /// an unescaped `-` or `]` where a member is expected.
    fn compile(pattern: &str) -> Option<Glob> {
        let mut characters = pattern.chars().peekable();
        let mut tokens = Vec::new();
        while let Some(character) = characters.next() {
            tokens.push(match character {
                '*' => GlobToken::AnySequence,
                '?' => GlobToken::AnyCharacter,
                '\\' => GlobToken::Literal(characters.next()?),
                '[' => Self::compile_class(&mut characters)?,
                literal => GlobToken::Literal(literal),
            });
        }
        Some(Glob { tokens })
    }

    fn compile_class(characters: &mut Peekable<Chars<'_>>) -> Option<GlobToken> {
        let negated = characters.next_if_eq(&'^').is_some();
        let mut ranges = Vec::new();
        loop {
            if !ranges.is_empty() && characters.next_if_eq(&']').is_some() {
                return Some(GlobToken::Class { negated, ranges });
            }
            let low = Self::class_member(characters)?;
            let high = if characters.next_if_eq(&'-').is_some() { Self::class_member(characters)? } else { low };
            ranges.push((low, high));
        }
    }

    fn class_member(characters: &mut Peekable<Chars<'_>>) -> Option<char> {
        match characters.next()? {
            '-' | ']' => None,
            '\\' => characters.next(),
            member => Some(member),
        }
    }

    /// Byte length of the shortest or longest non-empty prefix of `text` that the whole pattern matches.
    /// Runs the pattern as a set of states over `text` once, so it costs length of text times length of pattern.
    fn matching_prefix(&self, text: &str, longest: bool) -> Option<usize> {
        let accepting = self.tokens.len();
        let mut states = vec![false; accepting + 1];
        let mut next_states = vec![false; accepting + 1];
        states[0] = true;
        self.skip_stars(&mut states);
        let mut found = None;
        for (index, character) in text.char_indices() {
            next_states.fill(false);
            let mut alive = false;
            for (state, token) in self.tokens.iter().enumerate().filter(|&(state, _)| states[state]) {
                if matches!(token, GlobToken::AnySequence) {
                    next_states[state] = true;
                    alive = true;
                } else if token.accepts(character) {
                    next_states[state + 1] = true;
                    alive = true;
                }
            }
            if !alive {
                break;
            }
            self.skip_stars(&mut next_states);
            std::mem::swap(&mut states, &mut next_states);
            if states[accepting] {
                found = Some(index + character.len_utf8());
                if !longest {
                    break;
                }
            }
        }
        found
    }

    /// A `*` may match nothing, so a state before it also stands after it.
    fn skip_stars(&self, states: &mut [bool]) {
        for (state, token) in self.tokens.iter().enumerate() {
            if states[state] && matches!(token, GlobToken::AnySequence) {
                states[state + 1] = true;
            }
        }
    }
}
