//! `when.evaluate` as a table: expression, variables, outcome.

use std::collections::BTreeMap;

use pipeline::evaluate::*;
use proptest::prelude::*;

#[derive(Debug)]
enum Outcome {
    Is(bool),
    /// A syntax error whose message contains the text, at this column (or none).
    Syntax(&'static str, Option<usize>),
    /// A regex error for this pattern, whose message contains the text.
    Regex(&'static str, &'static str),
    /// A runtime error whose message contains the text.
    Runtime(&'static str),
}

use Outcome::*;

type Variables<'a> = &'a [(&'a str, &'a str)];

const NONE: Variables = &[];
const PUSH: Variables = &[
    ("CI_PIPELINE_EVENT", "push"),
    ("CI_COMMIT_BRANCH", "main"),
    ("CI_COMMIT_MESSAGE", "Ship it [deploy]"),
    ("CI_COMMIT_AUTHOR", "woodpecker-ci"),
    ("CI_REPO", "acme/app"),
    ("CI_REPO_OWNER", "acme"),
    ("CI_REPO_DEFAULT_BRANCH", "main"),
    ("CI_REPO_PRIVATE", "false"),
    ("CI_PIPELINE_NUMBER", "42"),
];
const PULL: Variables = &[
    ("CI_PIPELINE_EVENT", "pull_request"),
    ("CI_COMMIT_BRANCH", "main"),
    ("CI_COMMIT_SOURCE_BRANCH", "feature/login"),
    ("CI_COMMIT_PULL_REQUEST_LABELS", "bug,deploy-staging"),
    ("CI_COMMIT_MESSAGE", "Fix login"),
    ("CI_REPO_OWNER", "acme"),
];
// Woodpecker sets no branch for tag events.
const TAG: Variables = &[("CI_PIPELINE_EVENT", "tag"), ("CI_COMMIT_TAG", "v1.2.3"), ("CI_REPO_OWNER", "acme")];

fn environment(variables: Variables) -> BTreeMap<String, String> {
    variables.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

fn check(source: &str, variables: Variables, expected: &Outcome) {
    let actual = Expression::parse(source).and_then(|expression| {
        assert_eq!(expression.source(), source);
        expression.evaluate(&environment(variables))
    });
    let matches = match (expected, &actual) {
        (Is(want), Ok(got)) => want == got,
        (Syntax(text, want_column), Err(EvaluateError::Syntax { message, column })) => message.contains(text) && want_column == column,
        (Regex(want_pattern, text), Err(EvaluateError::Regex { pattern, message })) => want_pattern == pattern && message.contains(text),
        (Runtime(text), Err(EvaluateError::Runtime { message })) => message.contains(text),
        _ => false,
    };
    // Long rows are generated; their first characters identify them.
    let shown: String = source.chars().take(120).collect();
    assert!(matches, "`{shown}`\n  expected {expected:?}\n       got {actual:?}");
}

fn check_all(rows: &[(&str, Variables, Outcome)]) {
    for (source, variables, expected) in rows {
        check(source, variables, expected);
    }
}

#[test]
fn woodpecker_conditions() {
    check_all(&[
        (r#"CI_COMMIT_BRANCH == "main""#, PUSH, Is(true)),
        (r#"CI_COMMIT_BRANCH == "main""#, &[("CI_COMMIT_BRANCH", "dev")], Is(false)),
        (r#"CI_PIPELINE_EVENT != "pull_request" && CI_COMMIT_BRANCH == "main""#, PUSH, Is(true)),
        (r#"CI_PIPELINE_EVENT != "pull_request" && CI_COMMIT_BRANCH == "main""#, PULL, Is(false)),
        (r#"CI_COMMIT_BRANCH in ["main", "dev"]"#, PUSH, Is(true)),
        (r#"CI_COMMIT_BRANCH in ["main", "dev"]"#, &[("CI_COMMIT_BRANCH", "feature/x")], Is(false)),
        (r#"CI_COMMIT_BRANCH not in ["main", "dev"]"#, PUSH, Is(false)),
        (r#"CI_COMMIT_BRANCH startsWith "release/""#, &[("CI_COMMIT_BRANCH", "release/1.0")], Is(true)),
        (r#"CI_COMMIT_BRANCH startsWith "release/""#, PUSH, Is(false)),
        (r#"CI_COMMIT_MESSAGE contains "[deploy]""#, PUSH, Is(true)),
        (r#"CI_COMMIT_MESSAGE contains "[deploy]""#, PULL, Is(false)),
        (r#"CI_COMMIT_TAG matches "^v[0-9]+""#, TAG, Is(true)),
        (r#"CI_COMMIT_TAG matches "^v[0-9]+""#, &[("CI_COMMIT_TAG", "latest")], Is(false)),
        (r#"not (CI_COMMIT_BRANCH endsWith "-wip")"#, PUSH, Is(true)),
        (r#"not (CI_COMMIT_BRANCH endsWith "-wip")"#, &[("CI_COMMIT_BRANCH", "login-wip")], Is(false)),
        // Labels are one comma-joined string, so `contains` is a substring test: "deploy-staging" matches.
        (r#"CI_COMMIT_PULL_REQUEST_LABELS contains "deploy""#, PULL, Is(true)),
        // An exact label needs a split.
        (r#""deploy" in split(CI_COMMIT_PULL_REQUEST_LABELS, ",")"#, PULL, Is(false)),
        (r#"any(split(CI_COMMIT_PULL_REQUEST_LABELS, ","), # startsWith "deploy")"#, PULL, Is(true)),
        // As in Woodpecker, an undefined variable reads as "", not nil.
        ("SOME_UNSET_VAR == nil", PUSH, Is(false)),
        ("len(CI_COMMIT_MESSAGE) > 3", PUSH, Is(true)),
        // The branch is undefined on tag events; `"" == "main"` is simply false.
        (r#"CI_COMMIT_BRANCH == "main" || CI_PIPELINE_EVENT == "tag""#, TAG, Is(true)),
        (r#"(CI_PIPELINE_EVENT == "push") and CI_REPO_OWNER == "acme""#, PUSH, Is(true)),
        (r#"(CI_PIPELINE_EVENT == "push") and CI_REPO_OWNER == "acme""#, TAG, Is(false)),
        // Woodpecker's documentation examples.
        (r#"CI_PIPELINE_EVENT == "push" && CI_REPO == "acme/app" && CI_COMMIT_BRANCH == CI_REPO_DEFAULT_BRANCH"#, PUSH, Is(true)),
        (r#"CI_COMMIT_AUTHOR == "woodpecker-ci""#, PUSH, Is(true)),
        (r#"not (CI_COMMIT_MESSAGE contains "please ignore me")"#, PUSH, Is(true)),
        (r#"SKIP != "true""#, PUSH, Is(true)),
        (r#"SKIP != "true""#, &[("SKIP", "true")], Is(false)),
        // Custom variables, as in Woodpecker's constraint tests.
        (r#"TESTVAR == "testval""#, &[("TESTVAR", "testval")], Is(true)),
        (r#"TESTVAR == "testval""#, &[("TESTVAR", "qwe")], Is(false)),
        // Spellings: single quotes, comments, line breaks from a YAML block scalar.
        ("CI_COMMIT_BRANCH == 'main'", PUSH, Is(true)),
        (r#"CI_COMMIT_BRANCH == "main" // only the default branch"#, PUSH, Is(true)),
        ("CI_COMMIT_BRANCH == \"main\"\n  && CI_PIPELINE_EVENT == \"push\"\n", PUSH, Is(true)),
        (r#"$env.CI_COMMIT_BRANCH == "main""#, PUSH, Is(true)),
        (r#"$env["CI_COMMIT_BRANCH"] == "main""#, PUSH, Is(true)),
        // The unread branch of a ternary does not touch the undefined tag.
        (r#"CI_PIPELINE_EVENT == "tag" ? CI_COMMIT_TAG startsWith "v" : true"#, PUSH, Is(true)),
        (r#"if CI_PIPELINE_EVENT == "push" { CI_COMMIT_BRANCH == "main" } else { false }"#, PUSH, Is(true)),
    ]);
}

#[test]
fn every_variable_is_a_string() {
    check_all(&[
        (r#"CI_PIPELINE_NUMBER == "42""#, PUSH, Is(true)),
        // No coercion: a string never equals a number. (Woodpecker's Go checker rejects it as mismatched types.)
        ("CI_PIPELINE_NUMBER == 42", PUSH, Is(false)),
        ("int(CI_PIPELINE_NUMBER) > 40", PUSH, Is(true)),
        // Ordering a string against a number fails when evaluated (Woodpecker: when compiled).
        ("CI_PIPELINE_NUMBER > 40", PUSH, Runtime("invalid operands for operator >")),
        // "false" is a string, not a boolean.
        ("CI_REPO_PRIVATE == false", PUSH, Is(false)),
        (r#"CI_REPO_PRIVATE == "false""#, PUSH, Is(true)),
        (r#"CI_COMMIT_BRANCH + "/x" == "main/x""#, PUSH, Is(true)),
        // Strings order bytewise.
        (r#"CI_PIPELINE_NUMBER < "5""#, PUSH, Is(true)),
    ]);
}

/// Go's expr negates `contains`, `matches`, `startsWith` and `endsWith` with `not`, as it does `in`.
#[test]
fn negated_word_operators() {
    let message: Variables = &[("CI_COMMIT_MESSAGE", "chore(version): 1.2"), ("CI_COMMIT_BRANCH", "release/1.2")];
    check_all(&[
        (r#"CI_COMMIT_MESSAGE not contains "chore(version):""#, message, Is(false)),
        (r#"CI_COMMIT_MESSAGE not contains "fix""#, message, Is(true)),
        (r#"CI_COMMIT_BRANCH not startsWith "release/" || CI_COMMIT_MESSAGE contains "1.2""#, message, Is(true)),
        (r#"CI_COMMIT_BRANCH not endsWith ".2" && true"#, message, Is(false)),
        (r#"CI_COMMIT_BRANCH not matches "^release/[0-9]+" and CI_COMMIT_MESSAGE != """#, message, Is(false)),
        (r#"(CI_COMMIT_MESSAGE not contains "x") == true"#, message, Is(true)),
        (r#"lower(CI_COMMIT_MESSAGE) not contains "chore" == false"#, message, Is(true)),
        (r#"CI_COMMIT_BRANCH not in ["main"] && CI_COMMIT_BRANCH not contains "main""#, message, Is(true)),
        // The regular expression of a negated `matches` is checked too.
        (r#"CI_COMMIT_BRANCH not matches "(""#, message, Regex("(", "unclosed")),
        (r#"CI_COMMIT_BRANCH not contains"#, message, Syntax("unexpected `not`", Some(18))),
    ]);
}

#[test]
fn undefined_variables() {
    check_all(&[
        // Woodpecker reads a missing key of its map[string]string as "", and so does Gantry.
        ("SOME_UNSET_VAR == nil", NONE, Is(false)),
        (r#"SOME_UNSET_VAR == """#, NONE, Is(true)),
        (r#"SOME_UNSET_VAR != "true""#, NONE, Is(true)),
        (r#"$env["SOME_UNSET_VAR"] == nil"#, NONE, Is(true)),
        // Defined but empty reads the same.
        (r#"SOME_VAR == """#, &[("SOME_VAR", "")], Is(true)),
        // String operators and `len` work on the empty string: false, not an error.
        (r#"CI_COMMIT_TAG matches "^v[0-9]+""#, PUSH, Is(false)),
        (r#"CI_COMMIT_PULL_REQUEST_LABELS contains "deploy""#, PUSH, Is(false)),
        ("len(SOME_UNSET_VAR) == 0", NONE, Is(true)),
        (r#"CI_COMMIT_SOURCE_BRANCH matches "^(feature|fix)/" || CI_PIPELINE_EVENT == "tag""#, TAG, Is(true)),
        (r#"SOME_UNSET_VAR == "" || SOME_UNSET_VAR contains "x""#, NONE, Is(true)),
        // A type error names the undefined variable, which is what usually needs fixing.
        ("SOME_UNSET_VAR > 1", NONE, Runtime("(undefined: SOME_UNSET_VAR)")),
        // Guarding with the event first never reads the undefined tag.
        (r#"CI_PIPELINE_EVENT == "tag" && CI_COMMIT_TAG matches "^v""#, PUSH, Is(false)),
        // A name is a variable wherever it is one, even an operator's name.
        (r#"matches == "(""#, &[("matches", "(")], Is(true)),
        // expr-lang would read `notify` as `not ify`; `$env` reaches such names.
        (
            r#"notify == "true""#,
            &[("notify", "true")],
            Syntax("`notify` would be read as `not ify`, write `$env.notify` at column 1", Some(1)),
        ),
        (r#"CI_COMMIT_BRANCH == "main" && not_ready != "true""#, PUSH, Syntax("`not_ready` would be read as `not _ready`", Some(31))),
        (r#"$env.notify == "true""#, &[("notify", "true")], Is(true)),
        (r#"not (CI_COMMIT_BRANCH == "dev")"#, PUSH, Is(true)),
    ]);
}

#[test]
fn results_must_be_booleans() {
    check_all(&[
        ("CI_COMMIT_BRANCH", PUSH, Runtime("expression gave string, not a boolean")),
        ("SOME_UNSET_VAR", NONE, Runtime("expression gave string, not a boolean (undefined: SOME_UNSET_VAR)")),
        ("nil", NONE, Runtime("expression gave nil, not a boolean")),
        ("1 + 1", NONE, Runtime("expression gave int, not a boolean")),
        ("[true]", NONE, Runtime("expression gave array, not a boolean")),
        ("true", NONE, Is(true)),
    ]);
}

#[test]
fn syntax_errors_say_where() {
    check_all(&[
        ("CI_COMMIT_BRANCH ==", NONE, Syntax("unexpected end of expression at column 20, expected a value", Some(20))),
        (r#"CI_COMMIT_BRANCH = "main""#, NONE, Syntax("unexpected `=` at column 18, expected an operator or end of expression", Some(18))),
        (r#"(CI_COMMIT_BRANCH == "main""#, NONE, Syntax("unclosed `(` at column 1", Some(1))),
        (r#"CI_COMMIT_BRANCH in ["main", "dev""#, NONE, Syntax("unclosed `[` at column 21", Some(21))),
        (r#"CI_COMMIT_BRANCH == "main")"#, NONE, Syntax("unexpected `)` at column 27", Some(27))),
        (r#"CI_COMMIT_BRANCH == "main"#, NONE, Syntax("unterminated string or unknown escape at column 21", Some(21))),
        (r#"CI_COMMIT_BRANCH == "\q""#, NONE, Syntax("unterminated string or unknown escape at column 21", Some(21))),
        (r#"CI_COMMIT_BRANCH == "main" @"#, NONE, Syntax("unexpected `@` at column 28", Some(28))),
        ("", NONE, Syntax("unexpected end of expression at column 1", Some(1))),
        // Columns count characters, not bytes.
        (r#""é" == "é" && é"#, NONE, Syntax("unexpected `é` at column 15", Some(15))),
        // In a multi-line source the message gives the line; `column` counts from the start of the source.
        ("CI_COMMIT_BRANCH == \"main\" &&\n  CI_PIPELINE_EVENT ==", NONE, Syntax("at line 2, column 23, expected a value", Some(53))),
        ("CI_PIPELINE_NUMBER == 0x10000000000000000", NONE, Syntax("invalid integer literal 0x10000000000000000", None)),
    ]);
}

#[test]
fn regular_expressions_are_checked_when_parsed() {
    check_all(&[
        (r#"CI_COMMIT_TAG matches "^v[0-9""#, NONE, Regex("^v[0-9", "unclosed character class")),
        // Parentheses around the literal change nothing.
        (r#"CI_COMMIT_TAG matches ("(")"#, NONE, Regex("(", "unclosed group")),
        // The pattern is the decoded string: `\\q` is `\q`, which no regex dialect knows.
        (r#"CI_COMMIT_TAG matches "\\q""#, NONE, Regex(r"\q", "unrecognized escape sequence")),
        (r#"CI_COMMIT_TAG matches "(?=v)""#, NONE, Regex("(?=v)", "look-around")),
        (r#"CI_COMMIT_TAG matches "^v\\d+\\.\\d+""#, TAG, Is(true)),
        (r"CI_COMMIT_TAG matches `^v\d+`", TAG, Is(true)),
        // Only a literal right side is known when parsing; anything else is compiled when evaluated.
        (r#"CI_COMMIT_TAG matches "(" + ")""#, TAG, Is(true)),
        (r#"CI_COMMIT_TAG matches "(" + "(""#, TAG, Runtime("invalid regular expression: unclosed group")),
        ("CI_COMMIT_TAG matches PATTERN", &[("CI_COMMIT_TAG", "v1"), ("PATTERN", "^v")], Is(true)),
        (
            "CI_COMMIT_TAG matches PATTERN",
            &[("CI_COMMIT_TAG", "v1"), ("PATTERN", "[")],
            Runtime("invalid regular expression: unclosed character class"),
        ),
        // A string literal elsewhere is not a pattern.
        (r#""(" in ["("] && CI_COMMIT_TAG matches "^v""#, TAG, Is(true)),
    ]);
}

#[test]
fn limits_keep_parsing_and_evaluation_bounded() {
    let long = format!(r#"CI_COMMIT_BRANCH == "{}""#, "x".repeat(4100));
    let ten_thousand_deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    let two_thousand_deep = format!("{}true{}", "(".repeat(2_000), ")".repeat(2_000));
    let thirty_two_deep = format!("{}true{}", "(".repeat(32), ")".repeat(32));
    let thirty_three_deep = format!("{}true{}", "(".repeat(33), ")".repeat(33));
    let operators_64 = format!("true{}", " && true".repeat(64));
    let operators_65 = format!("true{}", " && true".repeat(65));
    let chained_defaults = format!("nil{}", "??nil".repeat(700));
    let glued_operators = format!("true{}", " andtrue".repeat(300));
    let message_2000 = "x".repeat(2_000);
    let message_20000 = "x".repeat(20_000);
    let long_message: Variables = &[("CI_COMMIT_MESSAGE", &message_2000)];
    let longer_message: Variables = &[("CI_COMMIT_MESSAGE", &message_20000)];
    check_all(&[
        (&long, NONE, Syntax("expression is 4122 bytes long, more than the 4096 allowed", None)),
        (&ten_thousand_deep, NONE, Syntax("bytes long", None)),
        // Would overflow the parser's stack on a 2 MiB thread.
        (&two_thousand_deep, NONE, Syntax("brackets nest deeper than 32 levels at column 33", Some(33))),
        (&thirty_three_deep, NONE, Syntax("brackets nest deeper than 32 levels at column 33", Some(33))),
        (&thirty_two_deep, NONE, Is(true)),
        (&operators_64, NONE, Is(true)),
        (&operators_65, NONE, Syntax("more than 64 operators and brackets, the last at column 518", Some(518))),
        // Would overflow the evaluator's stack.
        (&chained_defaults, NONE, Syntax("more than 64 operators", Some(324))),
        // expr-lang reads `andtrue` as `and true`, so these are 300 operators too.
        (&glued_operators, NONE, Syntax("more than 64 operators", Some(518))),
        // Ranges are built as arrays: `1..100000000` alone would allocate 7 GB and abort the process.
        ("5 in 1..10", NONE, Is(true)),
        ("0x10..0x11 == [16, 17]", NONE, Is(true)),
        ("5 in 1..100000", NONE, Syntax("a range needs two integer literals at most 10000 apart as bounds at column 7", Some(7))),
        ("1..100000000 == nil", NONE, Syntax("a range needs two integer literals", Some(2))),
        ("5 in 1..int(CI_PIPELINE_NUMBER)", PUSH, Syntax("a range needs two integer literals", Some(7))),
        // `+` binds tighter than `..`, so the bound is not a literal.
        ("5 in 1..9 + 1", NONE, Syntax("a range needs two integer literals", Some(7))),
        // `let` reuses values, so `a + a` can double them again and again.
        ("let x = 1; x == 1", NONE, Syntax("`let` statements are not supported at column 1", Some(1))),
        // One result per element, or an accumulator, with nothing bounding their size.
        (r#"map(split(CI_COMMIT_MESSAGE, ""), CI_COMMIT_MESSAGE) != []"#, PUSH, Syntax("`map` is not supported", Some(1))),
        (r#"CI_COMMIT_MESSAGE | split(" ") | reduce(#acc + #acc, "x") != """#, PUSH, Syntax("`reduce` is not supported", Some(34))),
        ("groupBy([1], #) != nil", NONE, Syntax("`groupBy` is not supported", Some(1))),
        ("sortBy([1], #) != nil", NONE, Syntax("`sortBy` is not supported", Some(1))),
        // String builtins whose output can outgrow their input have a 1 MiB budget per call.
        (r#"len(repeat("ab", 1000)) == 2000"#, NONE, Is(true)),
        (
            r#"repeat(repeat("ab", 1000), 1000) != """#,
            NONE,
            Runtime("repeat() would produce about 2000000 bytes, more than the 1048576 allowed"),
        ),
        (r#"join(split(CI_COMMIT_MESSAGE, ""), CI_COMMIT_MESSAGE) != """#, long_message, Runtime("join() would produce")),
        (r#"replace(CI_COMMIT_MESSAGE, "", CI_COMMIT_MESSAGE) != """#, long_message, Runtime("replace() would produce")),
        (r#"replace(CI_COMMIT_MESSAGE, "x", "y") startsWith "y""#, long_message, Is(true)),
        // Each piece costs a whole value besides its bytes.
        (r#"split(CI_COMMIT_MESSAGE, "") != []"#, longer_message, Runtime("split() would produce")),
        (r#"len(split(CI_COMMIT_MESSAGE, "")) > 0"#, long_message, Is(true)),
    ]);
}

#[test]
fn parsed_once_evaluated_per_step() {
    let expression = Expression::parse(r#"CI_COMMIT_BRANCH == "main""#).unwrap();
    assert_eq!(expression.source(), r#"CI_COMMIT_BRANCH == "main""#);
    assert_eq!(expression.evaluate(&environment(PUSH)), Ok(true));
    assert_eq!(expression.evaluate(&environment(&[("CI_COMMIT_BRANCH", "dev")])), Ok(false));
    assert_eq!(expression.evaluate(&environment(NONE)), Ok(false));
    // Plans keep expressions and may share them across threads.
    fn shareable<T: Clone + Send + Sync>() {}
    shareable::<Expression>();
    assert_eq!(
        Expression::parse("CI_COMMIT_BRANCH ==").unwrap_err().to_string(),
        "invalid expression: unexpected end of expression at column 20, expected a value"
    );
    assert_eq!(
        Expression::parse(r#"CI_COMMIT_TAG matches "[""#).unwrap_err().to_string(),
        "invalid regular expression `[`: unclosed character class"
    );
}

/// Pieces of expressions, so that random sequences often parse and reach evaluation.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "CI_COMMIT_BRANCH", "UNSET", "$env", "#", "\"main\"", "'('", "\"\"", "`x`", "1", "3", "nil", "true",
    "(", ")", "[", "]", "{", "}", ",", ":", "?", "??", ".", "?.", "..", "==", "!=", "<", "+", "-", "*", "/", "%", "**",
    "&&", "||", "!", "not", "in", "contains", "startsWith", "matches", "len(", "split(", "any(", "filter(", "repeat(",
    "join(", "|", "if", "else", ";", "let", "//", "/*",
];

fn exercise(source: &str) {
    if let Ok(expression) = Expression::parse(source) {
        let _ = expression.evaluate(&environment(PUSH));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(source in any::<String>()) {
        exercise(&source);
    }

    #[test]
    fn sequences_of_pieces_never_panic(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40)) {
        exercise(&pieces.join(" "));
    }
}
