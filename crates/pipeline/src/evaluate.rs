//! Woodpecker's `when.evaluate`: expr-lang conditions over environment variables, checked once and evaluated per step or matrix row.
//!
//! Woodpecker compiles `evaluate` with Go's expr against a `map[string]string` of CI_* and custom
//! variables, so every variable is a string. Here expressions run on the `expr-lang` crate, with
//! guards that crate lacks: a size and nesting limit (its parser and evaluator recurse), and no
//! construct whose memory use can outgrow its input (Go's expr has a memory budget; expr-lang has none).
//! Undefined variables are the empty string, as in Woodpecker.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

use expr::{Context, ContextProvider, Environment, Program, Value};

/// Longer sources are rejected before parsing: a condition is a line or two.
const MAXIMUM_LENGTH: usize = 4096;
/// pest and expr-lang's evaluator recurse once per bracket and per operator. On a 2 MiB thread
/// (a test or tokio worker) the evaluator overflowed near 110 chained `+` with dependencies at
/// opt-level 0, and near 650 chained `??` at opt-level 1; these limits hold at either.
const MAXIMUM_NESTING: usize = 32;
const MAXIMUM_OPERATORS: usize = 64;
/// expr-lang builds `a..b` as an array up front, so a large range is a large allocation.
const MAXIMUM_RANGE_LENGTH: i128 = 10_000;
/// Most bytes one call of a string builtin may produce: `repeat`, `replace`, `join` and `split`
/// can produce far more than they are given (`join(split(X, ""), X)` is quadratic in `X`).
const MAXIMUM_BUILTIN_OUTPUT: usize = 1 << 20;
/// Builtins that keep one computed value per element (or an accumulator that can double each
/// step), so nothing bounds their output by their input.
const UNBOUNDED_FUNCTIONS: [&str; 4] = ["map", "reduce", "groupBy", "sortBy"];
const WORD_OPERATORS: [&str; 8] = ["and", "or", "not", "in", "contains", "startsWith", "endsWith", "matches"];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateError {
    /// The expression does not parse. `column` is 1-based within the expression text when known.
    #[error("invalid expression: {message}")]
    Syntax { message: String, column: Option<usize> },
    /// A regular expression used with `matches` is invalid.
    #[error("invalid regular expression `{pattern}`: {message}")]
    Regex { pattern: String, message: String },
    /// The expression ran but failed, or did not give a boolean.
    #[error("{message}")]
    Runtime { message: String },
}

/// A parsed `evaluate` expression, checked once and evaluated many times (once per matrix row / step).
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expression {
    // The program is a large AST; the source says the same thing.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Expression").field("source", &self.source).finish()
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expression {}

impl Expression {
    /// Parses and checks the expression: syntax, and every string literal used as the right side of `matches` compiles as a regex.
    ///
    /// Also rejects what expr-lang cannot run safely: sources over 4096 bytes, brackets nested
    /// deeper than 32, more than 64 operators and brackets, `let` statements, `map`, `reduce`,
    /// `groupBy` and `sortBy`, ranges that are not two integer literals at most 10000 apart, and
    /// names expr-lang would misread (`notify` as `not ify`).
    /// `column` in errors counts characters from the start of the source, 1-based.
    pub fn parse(source: &str) -> Result<Expression, EvaluateError> {
        if source.len() > MAXIMUM_LENGTH {
            return Err(syntax(format!("expression is {} bytes long, more than the {MAXIMUM_LENGTH} allowed", source.len()), None));
        }
        let tokens = tokenize(source);
        check_size(source, &tokens)?;
        let rewritten = rewrite_negated_operators(source);
        let parsed = rewritten.as_deref().unwrap_or(source);
        let parsed_tokens = if rewritten.is_some() { tokenize(parsed) } else { tokens.clone() };
        // expr-lang's AST builder has `unreachable!`s; a bug there must not take the caller down.
        let program = match catch_unwind(AssertUnwindSafe(|| expr::compile(parsed))) {
            Ok(Ok(program)) => program,
            Ok(Err(error)) => return Err(compile_error(parsed, &parsed_tokens, error)),
            Err(_) => return Err(syntax("the expression parser failed on this input", None)),
        };
        check_supported(source, &tokens)?;
        check_regular_expressions(&parsed_tokens)?;
        Ok(Expression { source: source.to_owned(), program })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against environment variables. A variable that is not in `environment` reads as
    /// the empty string, as in Woodpecker (Go's expr reads a missing key of its `map[string]string`
    /// as `""`): `UNSET == ""` is true, and `CI_COMMIT_TAG matches "^v"` is false on a push rather
    /// than an error. The result must be a boolean.
    pub fn evaluate(&self, environment: &BTreeMap<String, String>) -> Result<bool, EvaluateError> {
        let variables = Variables::new(environment, Value::String(String::new()));
        match self.run(&variables) {
            Ok(Value::Bool(result)) => Ok(result),
            Ok(other) => Err(runtime(format!("expression gave {}, not a boolean", type_name(other)), &variables)),
            Err(message) => Err(runtime(message, &variables)),
        }
    }

    fn run(&self, variables: &Variables<'_>) -> Result<Value, String> {
        // expr-lang's evaluator has `unreachable!`s too.
        match catch_unwind(AssertUnwindSafe(|| ENVIRONMENT.run(&self.program, variables))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(runtime_message(&error)),
            Err(_) => Err("the expression evaluator failed on this input".to_owned()),
        }
    }
}

/// The variables an expression sees: the environment as strings, anything else undefined.
struct Variables<'a> {
    environment: &'a BTreeMap<String, String>,
    values: BTreeMap<&'a str, Value>,
    /// What names outside the environment read as.
    undefined: Value,
    /// Undefined names the evaluation looked up, to explain errors such as `nil contains "x"`.
    looked_up_undefined: RefCell<BTreeSet<String>>,
}

impl<'a> Variables<'a> {
    fn new(environment: &'a BTreeMap<String, String>, undefined: Value) -> Self {
        let values = environment.iter().map(|(name, value)| (name.as_str(), Value::String(value.clone()))).collect();
        Variables { environment, values, undefined, looked_up_undefined: RefCell::default() }
    }
}

impl ContextProvider for Variables<'_> {
    // Answering every name is what makes undefined variables empty rather than "unknown variable" errors.
    fn get(&self, key: &str) -> Option<&Value> {
        match self.values.get(key) {
            Some(value) => Some(value),
            None => {
                self.looked_up_undefined.borrow_mut().insert(key.to_owned());
                Some(&self.undefined)
            }
        }
    }

    /// What `$env` sees.
    fn to_context(&self) -> Context {
        self.environment.iter().map(|(name, value)| (name, value.clone())).collect()
    }
}

/// expr-lang's builtins, used by the budgeted wrappers below and to name types.
static BUILTINS: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);

/// The builtins with the string functions that can amplify their input put behind a budget.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut environment = Environment::new();
    let budgeted: [(&'static str, ProjectedOutput); 5] = [
        ("repeat", repeat_output),
        ("replace", replace_output),
        ("join", join_output),
        ("split", split_output),
        ("splitAfter", split_output),
    ];
    for (name, projected_output) in budgeted {
        environment.add_function(name, move |call| {
            let size = projected_output(&call.args);
            if size > MAXIMUM_BUILTIN_OUTPUT {
                return Err(expr::Error::ExprError(format!(
                    "{name}() would produce about {size} bytes, more than the {MAXIMUM_BUILTIN_OUTPUT} allowed"
                )));
            }
            // These take no predicate, so nothing runs inside the unguarded builtins.
            BUILTINS.eval_func(call.ctx, name, call.args, None)
        });
    }
    environment
});

/// Bytes a builtin would produce for these arguments.
type ProjectedOutput = fn(&[Value]) -> usize;

// Projected output sizes in bytes, checked before the allocation happens. Arguments of the
// wrong shape project 0 and reach the builtin, which reports them.

fn repeat_output(arguments: &[Value]) -> usize {
    match arguments {
        [Value::String(text), Value::Integer(count)] => text.len().saturating_mul(usize::try_from(*count).unwrap_or(0)),
        _ => 0,
    }
}

fn replace_output(arguments: &[Value]) -> usize {
    let [Value::String(text), Value::String(from), Value::String(to), rest @ ..] = arguments else { return 0 };
    // An empty pattern matches between every two characters.
    let mut occurrences = if from.is_empty() { text.chars().count() + 1 } else { text.matches(from.as_str()).count() };
    if let [Value::Integer(limit)] = rest
        && let Ok(limit) = usize::try_from(*limit)
    {
        occurrences = occurrences.min(limit);
    }
    text.len().saturating_add(occurrences.saturating_mul(to.len()))
}

fn join_output(arguments: &[Value]) -> usize {
    let [Value::Array(items), rest @ ..] = arguments else { return 0 };
    let separator = match rest {
        [Value::String(separator)] => separator.len(),
        _ => 0,
    };
    let text: usize = items.iter().map(|item| if let Value::String(item) = item { item.len() } else { 0 }).sum();
    text.saturating_add(items.len().saturating_sub(1).saturating_mul(separator))
}

fn split_output(arguments: &[Value]) -> usize {
    let [Value::String(text), Value::String(separator), rest @ ..] = arguments else { return 0 };
    let mut pieces = if separator.is_empty() { text.chars().count() + 2 } else { text.matches(separator.as_str()).count() + 1 };
    if let [Value::Integer(limit)] = rest
        && let Ok(limit) = usize::try_from(*limit)
        && limit > 0
    {
        pieces = pieces.min(limit);
    }
    // Each piece is a whole `Value` besides its bytes.
    text.len().saturating_add(pieces.saturating_mul(size_of::<Value>()))
}

/// expr-lang's name for a value's type, as its `type()` builtin gives it.
fn type_name(value: Value) -> String {
    match BUILTINS.eval_func(&Context::default(), "type", vec![value], None) {
        Ok(Value::String(name)) => name,
        _ => "a value".to_owned(),
    }
}

fn syntax(message: impl Into<String>, column: Option<usize>) -> EvaluateError {
    EvaluateError::Syntax { message: message.into(), column }
}

fn runtime(message: String, variables: &Variables<'_>) -> EvaluateError {
    let undefined = variables.looked_up_undefined.borrow();
    let message = if undefined.is_empty() {
        message
    } else {
        let names: Vec<&str> = undefined.iter().map(String::as_str).collect();
        format!("{message} (undefined: {})", names.join(", "))
    };
    EvaluateError::Runtime { message }
}

fn runtime_message(error: &expr::Error) -> String {
    match error {
        expr::Error::RegexError(error) => format!("invalid regular expression: {}", regex_message(error)),
        other => lowercase_first(&other.to_string()),
    }
}

/// The one line of a regex error that says what is wrong; its Display also draws the pattern.
fn regex_message(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text.lines().find_map(|line| line.strip_prefix("error: ")).unwrap_or(text).to_owned(),
        regex::Error::CompiledTooBig(limit) => format!("it compiles to more than {limit} bytes"),
        other => lowercase_first(&other.to_string()),
    }
}

/// expr-lang capitalises some messages ("Invalid operands ..."); ours are lowercase.
fn lowercase_first(message: &str) -> String {
    let mut characters = message.chars();
    match (characters.next(), characters.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            first.to_lowercase().chain(message[first.len_utf8()..].chars()).collect()
        }
        _ => message.to_owned(),
    }
}

/// 1-based character position of a byte offset, as `EvaluateError::Syntax::column` reports it.
fn column_of(source: &str, offset: usize) -> Option<usize> {
    source.get(..offset).map(|before| before.chars().count() + 1)
}

/// Where an offset is, for a message: the column, or line and column in a multi-line source.
fn describe_position(source: &str, offset: usize) -> String {
    let Some(before) = source.get(..offset) else { return String::new() };
    match before.rfind('\n') {
        None if !source.contains('\n') => format!("at column {}", before.chars().count() + 1),
        None => format!("at line 1, column {}", before.chars().count() + 1),
        Some(line_start) => {
            let line = before.matches('\n').count() + 1;
            format!("at line {line}, column {}", before[line_start + 1..].chars().count() + 1)
        }
    }
}

fn compile_error(source: &str, tokens: &[Token<'_>], error: expr::Error) -> EvaluateError {
    let error = match error {
        expr::Error::PestError(error) => *error,
        // Numeric literal errors come without a position.
        other => return syntax(lowercase_first(&other.to_string()), None),
    };
    // pest's positions are only reachable through types this crate cannot name (no pest
    // dependency); the derived Debug of `InputLocation` is `Pos(offset)` or `Span((start, end))`.
    let offset = first_number(&format!("{:?}", error.location)).filter(|offset| *offset <= source.len());
    let Some(offset) = offset.filter(|offset| source.is_char_boundary(*offset)) else {
        return syntax(error.variant.message().into_owned(), None);
    };
    if let Some(opener) = unclosed_bracket(tokens)
        && source[offset..].trim().is_empty()
    {
        return syntax(format!("unclosed `{}` {}", opener.text, describe_position(source, opener.start)), column_of(source, opener.start));
    }
    let mut expected = BTreeSet::new();
    let error = error.renamed_rules(|rule| {
        expected.insert(describe_rule(&format!("{rule:?}")));
        String::new()
    });
    let position = describe_position(source, offset);
    let rest = &source[offset..];
    let message = match rest.chars().next() {
        None => format!("unexpected end of expression {position}"),
        // pest stops at the opening quote of a string it cannot finish.
        Some('"' | '\'' | '`') => return syntax(format!("unterminated string or unknown escape {position}"), column_of(source, offset)),
        Some(first) if first.is_ascii_alphanumeric() || first == '_' || first == '$' || first == '#' => {
            let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '#')).collect();
            format!("unexpected `{word}` {position}")
        }
        Some(first) => format!("unexpected `{first}` {position}"),
    };
    let message = if expected.is_empty() {
        if error.variant.message().is_empty() { message } else { format!("{message}: {}", error.variant.message()) }
    } else {
        let expected: Vec<&str> = expected.into_iter().map(|(_, description)| description).collect();
        format!("{message}, expected {}", join_alternatives(&expected))
    };
    syntax(message, column_of(source, offset))
}

fn first_number(text: &str) -> Option<usize> {
    let digits: String = text.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Groups pest's rule names into what a reader can act on, ordered for the message.
fn describe_rule(rule: &str) -> (u8, &'static str) {
    match rule {
        "EOI" => (3, "end of expression"),
        // Prefix operators start a value.
        "negation_op" | "sign_op" => (0, "a value"),
        "block" | "predicate" => (2, "`{`"),
        _ if rule.ends_with("_op") || matches!(rule, "ternary" | "pipe" | "method_call") => (1, "an operator"),
        _ => (0, "a value"),
    }
}

fn join_alternatives(alternatives: &[&str]) -> String {
    match alternatives {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The expression's size, before parsing, which recurses.
fn check_size(source: &str, tokens: &[Token<'_>]) -> Result<(), EvaluateError> {
    let mut depth = 0usize;
    let mut operators = 0usize;
    for token in tokens {
        if token.is_symbol("(") || token.is_symbol("[") || token.is_symbol("{") {
            depth += 1;
            if depth > MAXIMUM_NESTING {
                let message = format!("brackets nest deeper than {MAXIMUM_NESTING} levels {}", describe_position(source, token.start));
                return Err(syntax(message, column_of(source, token.start)));
            }
        } else if token.is_symbol(")") || token.is_symbol("]") || token.is_symbol("}") {
            depth = depth.saturating_sub(1);
        }
        if token.is_operator() {
            operators += 1;
            if operators > MAXIMUM_OPERATORS {
                let message =
                    format!("more than {MAXIMUM_OPERATORS} operators and brackets, the last {}", describe_position(source, token.start));
                return Err(syntax(message, column_of(source, token.start)));
            }
        }
    }
    Ok(())
}

/// The first opening bracket never closed, if any.
fn unclosed_bracket<'a>(tokens: &[Token<'a>]) -> Option<Token<'a>> {
    let mut open = Vec::new();
    for token in tokens {
        if token.is_symbol("(") || token.is_symbol("[") || token.is_symbol("{") {
            open.push(*token);
        } else if token.is_symbol(")") || token.is_symbol("]") || token.is_symbol("}") {
            open.pop();
        }
    }
    open.first().copied()
}

/// Constructs that parse but that expr-lang would run without bounding memory, or read
/// differently from Go's expr.
fn check_supported(source: &str, tokens: &[Token<'_>]) -> Result<(), EvaluateError> {
    for (index, token) in tokens.iter().enumerate() {
        let previous = index.checked_sub(1).and_then(|at| tokens.get(at));
        let next = tokens.get(index + 1);
        if let Some(rest) = misread_negation(previous, token, next) {
            let message = format!(
                "`{}` would be read as `not {rest}`, write `$env.{}` {}",
                token.text,
                token.text,
                describe_position(source, token.start)
            );
            return Err(syntax(message, column_of(source, token.start)));
        }
        // `;` only ends `let` statements, which let one value be reused (and so doubled) without limit.
        if token.is_symbol(";") {
            let statement =
                tokens[..index].iter().rev().find(|token| token.kind == Kind::Word && token.text.starts_with("let")).unwrap_or(token);
            let message = format!("`let` statements are not supported {}", describe_position(source, statement.start));
            return Err(syntax(message, column_of(source, statement.start)));
        }
        if token.kind == Kind::Word && UNBOUNDED_FUNCTIONS.contains(&token.text) && next.is_some_and(|next| next.is_symbol("(")) {
            let message = format!(
                "`{}` is not supported, its result is not bounded by its input, {}",
                token.text,
                describe_position(source, token.start)
            );
            return Err(syntax(message, column_of(source, token.start)));
        }
        if token.is_symbol("..") && !is_small_literal_range(tokens, index) {
            let message = format!(
                "a range needs two integer literals at most {MAXIMUM_RANGE_LENGTH} apart as bounds {}",
                describe_position(source, token.start)
            );
            return Err(syntax(message, column_of(source, token.start)));
        }
    }
    Ok(())
}

/// What follows `not` in a name like `notify` where an operand starts: expr-lang's grammar tries
/// the `not` prefix before the name, so `notify == "x"` would mean `(not ify) == "x"`.
fn misread_negation<'a>(previous: Option<&Token<'_>>, token: &Token<'a>, next: Option<&Token<'_>>) -> Option<&'a str> {
    let rest = token.text.strip_prefix("not").filter(|rest| token.kind == Kind::Word && !rest.is_empty())?;
    let operand_starts_here = match previous {
        None => true,
        // After `.` and `?.` a name is a member; after `|` it is a function name; neither takes `not`.
        Some(previous) if previous.is_symbol(".") || previous.is_symbol("?.") || previous.is_symbol("|") => false,
        Some(previous) => !previous.ends_operand(),
    };
    let map_key =
        previous.is_some_and(|previous| previous.is_symbol("{") || previous.is_symbol(",")) && next.is_some_and(|next| next.is_symbol(":"));
    (operand_starts_here && !map_key).then_some(rest)
}

/// Whether the `..` at `index` ranges between two integer literals over few enough numbers.
fn is_small_literal_range(tokens: &[Token<'_>], index: usize) -> bool {
    // Operators that bind tighter than `..` would take the literal as their operand instead.
    const TIGHTER_BEFORE: [&str; 10] = ["+", "-", "*", "/", "%", "^", "**", "!", "..", "??"];
    const TIGHTER_AFTER: [&str; 11] = ["+", "-", "*", "/", "%", "^", "**", ".", "?.", "[", "??"];
    let (Some(start), Some(end)) = (index.checked_sub(1).and_then(|at| tokens.get(at)), tokens.get(index + 1)) else { return false };
    let before = index.checked_sub(2).and_then(|at| tokens.get(at));
    let after = tokens.get(index + 2);
    if before.is_some_and(|token| token.is_word("not") || (token.kind == Kind::Symbol && TIGHTER_BEFORE.contains(&token.text))) {
        return false;
    }
    if after.is_some_and(|token| token.kind == Kind::Symbol && TIGHTER_AFTER.contains(&token.text)) {
        return false;
    }
    match (literal_value(start), literal_value(end)) {
        (Some(Value::Integer(start)), Some(Value::Integer(end))) => (i128::from(end) - i128::from(start) + 1) <= MAXIMUM_RANGE_LENGTH,
        _ => false,
    }
}

/// Checks every regular expression given as a string literal to `matches`.
fn check_regular_expressions(tokens: &[Token<'_>]) -> Result<(), EvaluateError> {
    // Operators that bind tighter than `matches`: with one after the literal, the right side is
    // an operation on it, built at run time.
    const TIGHTER: [&str; 12] = ["..", "+", "-", "*", "/", "%", "^", "**", ".", "?.", "[", "??"];
    for (index, token) in tokens.iter().enumerate() {
        let after_operand = index.checked_sub(1).and_then(|at| tokens.get(at)).is_some_and(Token::ends_operand);
        if !token.is_word("matches") || !after_operand {
            continue;
        }
        // `x matches ("re")` is a literal too: parentheses leave no trace in expr-lang's AST.
        let mut cursor = index + 1;
        let mut parentheses = 0;
        while tokens.get(cursor).is_some_and(|token| token.is_symbol("(")) {
            parentheses += 1;
            cursor += 1;
        }
        let Some(literal) = tokens.get(cursor).filter(|token| token.kind == Kind::Text) else { continue };
        cursor += 1;
        if !(0..parentheses).all(|offset| tokens.get(cursor + offset).is_some_and(|token| token.is_symbol(")"))) {
            continue;
        }
        cursor += parentheses;
        if tokens.get(cursor).is_some_and(|token| token.kind == Kind::Symbol && TIGHTER.contains(&token.text)) {
            continue;
        }
        let Some(Value::String(pattern)) = literal_value(literal) else { continue };
        if let Err(error) = regex::Regex::new(&pattern) {
            return Err(EvaluateError::Regex { pattern, message: regex_message(&error) });
        }
    }
    Ok(())
}

/// A literal token's value, decoded by expr-lang itself so escapes and number forms agree.
fn literal_value(token: &Token<'_>) -> Option<Value> {
    if !matches!(token.kind, Kind::Number | Kind::Text) {
        return None;
    }
    expr::eval(token.text, &Context::default()).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Identifiers, keywords and word operators.
    Word,
    Number,
    /// String literals: quoted or backquoted.
    Text,
    Bytes,
    Symbol,
}

/// A lexical token, following expr-lang's grammar closely enough to count, nest and find literals.
/// It never fails: anything unexpected becomes a one-character symbol for the parser to reject.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// Byte offset in the source.
    start: usize,
}

impl Token<'_> {
    fn is_symbol(&self, text: &str) -> bool {
        self.kind == Kind::Symbol && self.text == text
    }

    fn is_word(&self, text: &str) -> bool {
        self.kind == Kind::Word && self.text == text
    }

    /// Counted towards the operator limit: each can add a level to the parsed tree.
    fn is_operator(&self) -> bool {
        match self.kind {
            Kind::Symbol => !matches!(self.text, ")" | "]" | "}" | "," | ":"),
            // expr-lang's grammar does not end a word operator at a word boundary: it reads
            // `a andtrue` as `a and true`. Counting the glued forms too keeps the limit a limit.
            Kind::Word => WORD_OPERATORS.iter().any(|operator| self.text.starts_with(operator)),
            _ => false,
        }
    }

    fn ends_operand(&self) -> bool {
        match self.kind {
            Kind::Word => !WORD_OPERATORS.contains(&self.text),
            Kind::Number | Kind::Text | Kind::Bytes => true,
            Kind::Symbol => matches!(self.text, ")" | "]" | "}"),
        }
    }
}

/// Operators Go's expr also accepts negated (`a not contains b`); expr-lang 2.1 knows only `not in`.
const NEGATABLE_OPERATORS: [&str; 4] = ["contains", "matches", "startsWith", "endsWith"];

/// Rewrites `L not OP R` to `(not (L OP R))`, which expr-lang parses, or `None` when the source has
/// no such operator. The operands are the tokens up to the nearest comparison or logical
/// operator (or bracket) on either side, which is how the negated forms are written in practice.
fn rewrite_negated_operators(source: &str) -> Option<String> {
    let mut text = source.to_owned();
    let mut changed = false;
    // One at a time, re-reading the text: each rewrite moves what follows it.
    for _ in 0..16 {
        let tokens = tokenize(&text);
        let Some(found) = (1..tokens.len().saturating_sub(1)).find(|&index| {
            tokens[index].is_word("not")
                && tokens[index + 1].kind == Kind::Word
                && NEGATABLE_OPERATORS.contains(&tokens[index + 1].text)
                && tokens[index - 1].ends_operand()
        }) else {
            break;
        };
        let is_boundary = |token: &Token<'_>| match token.kind {
            Kind::Symbol => matches!(token.text, "==" | "!=" | "<" | ">" | "<=" | ">=" | "&&" | "||" | "?" | ":" | "??" | ","),
            Kind::Word => matches!(token.text, "and" | "or" | "in" | "not") || NEGATABLE_OPERATORS.contains(&token.text),
            _ => false,
        };
        let mut first = found;
        let mut depth = 0usize;
        while first > 0 {
            let token = &tokens[first - 1];
            match token.text {
                ")" | "]" | "}" if token.kind == Kind::Symbol => depth += 1,
                "(" | "[" | "{" if token.kind == Kind::Symbol => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                _ if depth == 0 && is_boundary(token) => break,
                _ => {}
            }
            first -= 1;
        }
        let mut last = found + 2;
        depth = 0;
        while last < tokens.len() {
            let token = &tokens[last];
            match token.text {
                "(" | "[" | "{" if token.kind == Kind::Symbol => depth += 1,
                ")" | "]" | "}" if token.kind == Kind::Symbol => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                _ if depth == 0 && is_boundary(token) => break,
                _ => {}
            }
            last += 1;
        }
        if first == found || last == found + 2 {
            // No operand on one side: leave it for the parser to report.
            break;
        }
        let start = tokens[first].start;
        let end = tokens[last - 1].start + tokens[last - 1].text.len();
        let left = text[start..tokens[found].start].trim_end();
        let operator = tokens[found + 1].text;
        let right = &text[tokens[found + 2].start..end];
        let replacement = format!("(not ({left} {operator} {right}))");
        text.replace_range(start..end, &replacement);
        changed = true;
    }
    changed.then_some(text)
}

fn tokenize(source: &str) -> Vec<Token<'_>> {
    const TWO_CHARACTER_SYMBOLS: [&str; 10] = ["**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", ".."];
    let bytes = source.as_bytes();
    let mut tokens: Vec<Token<'_>> = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let rest = &source[position..];
        let first = bytes[position];
        let second = bytes.get(position + 1).copied();
        let (kind, length) = match first {
            b' ' | b'\t' | b'\r' | b'\n' => {
                position += 1;
                continue;
            }
            b'/' if second == Some(b'/') => {
                position += rest.find('\n').unwrap_or(rest.len());
                continue;
            }
            b'/' if second == Some(b'*') => {
                position += rest[2..].find("*/").map_or(rest.len(), |end| end + 4);
                continue;
            }
            b'"' | b'\'' => (Kind::Text, quoted_length(rest)),
            b'`' => (Kind::Text, rest[1..].find('`').map_or(rest.len(), |end| end + 2)),
            b'b' | b'B' if matches!(second, Some(b'"' | b'\'')) => (Kind::Bytes, 1 + quoted_length(&rest[1..])),
            b'0'..=b'9' => (Kind::Number, number_length(rest)),
            b'.' if second.is_some_and(|byte| byte.is_ascii_digit()) && !tokens.last().is_some_and(Token::ends_operand) => {
                (Kind::Number, number_length(rest))
            }
            b'#' | b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                (Kind::Word, 1 + rest[1..].bytes().take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_').count())
            }
            _ if TWO_CHARACTER_SYMBOLS.iter().any(|symbol| rest.starts_with(symbol)) => (Kind::Symbol, 2),
            _ => (Kind::Symbol, rest.chars().next().map_or(1, char::len_utf8)),
        };
        tokens.push(Token { kind, text: &rest[..length], start: position });
        position += length;
    }
    tokens
}

/// Length of a quoted literal starting at `text[0]`, through its closing quote or to the end.
fn quoted_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[0];
    let mut index = 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            byte if byte == quote => return index + 1,
            _ => index += 1,
        }
    }
    // Ends at the end of the text, never inside a character.
    bytes.len()
}

/// Length of a number: decimal, `0x`/`0o`/`0b`, with `_` separators, fraction and exponent.
fn number_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let is_digit_or_separator = |byte: &u8| byte.is_ascii_digit() || *byte == b'_';
    let mut end = bytes.iter().take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_').count();
    let prefixed = bytes.len() > 1 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B');
    // `1.5`, but not the range `1..5`.
    if !prefixed && bytes.get(end) == Some(&b'.') && bytes.get(end + 1) != Some(&b'.') {
        end += 1;
        end += bytes[end..].iter().take_while(|byte| is_digit_or_separator(byte)).count();
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            end += 1;
        }
    }
    // An exponent sign: `1e-5`, `1.5E+3`.
    if !prefixed
        && end > 0
        && matches!(bytes[end - 1], b'e' | b'E')
        && matches!(bytes.get(end), Some(b'+' | b'-'))
        && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
    {
        end += 1;
        end += bytes[end..].iter().take_while(|byte| is_digit_or_separator(byte)).count();
    }
    end.max(1)
}
