//! `${...}` substitution as a table: each row is an input, the variables that are set, and the output or the
//! error (byte offset of the bad expression's `$` and a phrase of its message). Rows marked "drone:" pin a
//! drone/envsubst v1.0.3 behaviour that differs from bash; rows marked "gantry:" pin where we part from drone.

use std::collections::HashMap;

use pipeline::substitution::*;
use proptest::prelude::*;

#[track_caller]
fn check(input: &str, vars: &[(&str, &str)], expected: Result<&str, (usize, &str)>) {
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    let lookup = |name: &str| vars.get(name).map(|value| (*value).to_owned());
    match (substitute(input, &lookup), expected) {
        (Ok(actual), Ok(expected)) => assert_eq!(actual, expected, "input {input:?}"),
        (Err(error), Err((offset, phrase))) => {
            assert_eq!(error.offset, offset, "error offset for input {input:?}: {error:?}");
            assert!(error.message.contains(phrase), "error for input {input:?} should mention {phrase:?}: {error:?}");
        }
        (actual, expected) => panic!("input {input:?}: expected {expected:?}, got {actual:?}"),
    }
}

#[test]
fn plain_text_and_variables() {
    check("", &[], Ok(""));
    check("plain text", &[], Ok("plain text"));
    check("}text{", &[], Ok("}text{"));
    check("http://github.com", &[], Ok("http://github.com"));
    check("${a}", &[("a", "x")], Ok("x"));
    check("<${a}|${b}>", &[("a", "x"), ("b", "y")], Ok("<x|y>"));
    check("${a}${a}", &[("a", "x")], Ok("xx"));
    // Unknown and empty are both the empty string.
    check("[${missing}]", &[], Ok("[]"));
    check("[${a}]", &[("a", "")], Ok("[]"));
    check("${héllo}", &[("héllo", "x")], Ok("x"));
    check("${_1}", &[("_1", "x")], Ok("x"));
    check("${1}", &[("1", "x")], Ok("x"));
    check("héllo ${a} wörld", &[("a", "ä")], Ok("héllo ä wörld"));
    // The value is not substituted again.
    check("${a}", &[("a", "${b}"), ("b", "no")], Ok("${b}"));
}

#[test]
fn dollars_and_escapes() {
    // drone: `$NAME` without braces is not an expression.
    check("$a", &[("a", "x")], Ok("$a"));
    check("$", &[], Ok("$"));
    check("a$", &[], Ok("a$"));
    check("$ {a}", &[("a", "x")], Ok("$ {a}"));
    check("$$", &[], Ok("$"));
    check("$${a}", &[("a", "x")], Ok("${a}"));
    check("$$a", &[("a", "x")], Ok("$a"));
    check("$$$", &[], Ok("$$"));
    check("$$${a}", &[("a", "x")], Ok("$x"));
    check("$$$${a}", &[("a", "x")], Ok("$${a}"));
    check("some text ${v}$${var$${v}$v${v}", &[("v", "abc")], Ok("some text abc${var${v}$vabc"));
    check("something $${var=${d}}", &[("d", "foo")], Ok("something ${var=foo}"));
    // drone: `\\` and `\/` are escapes in plain text too (fixed only after v1.0.3, which Woodpecker and Drone use).
    check(r"a\\b", &[], Ok(r"a\b"));
    check(r"a\/b", &[], Ok("a/b"));
    check(r"\\.\pipe\pipename", &[], Ok(r"\.\pipe\pipename"));
    check(r"\\\\", &[], Ok(r"\\"));
    check(r"a\b\n\", &[], Ok(r"a\b\n\"));
    check(r"\${a}", &[("a", "x")], Ok(r"\x"));
    check(r"\$${a}", &[("a", "x")], Ok(r"\${a}"));
}

#[test]
fn variable_names() {
    // drone: `-` is not part of a name and `${a-b}` is not bash's default form, so this is an error.
    check("${a-b}", &[("a", "x")], Err((0, "expected '}' after the variable name, found '-'")));
    check("${string_A-b}", &[], Err((0, "found '-'")));
    check("${a.b}", &[], Err((0, "found '.'")));
    check("${a b}", &[], Err((0, "found ' '")));
    check("${}", &[], Err((0, "expected a variable name")));
    check("${ a}", &[], Err((0, "expected a variable name")));
    check("${-a}", &[], Err((0, "expected a variable name")));
    check("${${a}}", &[], Err((0, "expected a variable name")));
}

#[test]
fn length() {
    check("${#a}", &[("a", "abcdEFGH28ij")], Ok("12"));
    check("${#a}", &[], Ok("0"));
    // gantry: characters, where drone counts bytes (6).
    check("${#a}", &[("a", "héllo")], Ok("5"));
    check("hello ${#a} world", &[("a", "abc")], Ok("hello 3 world"));
    check("${#}", &[], Err((0, "expected a variable name after '${#'")));
    check("${##a}", &[], Err((0, "expected a variable name after '${#'")));
    check("${#a:1}", &[], Err((0, "expected '}'")));
    check("${#a", &[], Err((0, "unterminated")));
}

#[test]
fn case() {
    check("${a^}", &[("a", "abcdEFGH28ij")], Ok("AbcdEFGH28ij"));
    check("${a^^}", &[("a", "abcdEFGH28ij")], Ok("ABCDEFGH28IJ"));
    check("${a,}", &[("a", "ABCDEFGH28IJ")], Ok("aBCDEFGH28IJ"));
    check("${a,,}", &[("a", "ABCDEFGH28IJ")], Ok("abcdefgh28ij"));
    check("${a^}", &[], Ok(""));
    check("${a^}", &[("a", "élan")], Ok("Élan"));
    check("${a,,}", &[("a", "ÉLAN")], Ok("élan"));
    // Go maps one character to one: `ß` has no single-character uppercase and stays.
    check("${a^^}", &[("a", "straße")], Ok("STRAßE"));
    check("${a,,}", &[("a", "İ")], Ok("i"));
    // drone: mixed markers parse but name no function, so the value comes back unchanged.
    check("${a,^}", &[("a", "aB")], Ok("aB"));
    check("${a^,}", &[("a", "aB")], Ok("aB"));
    check("${a^^^}", &[("a", "x")], Err((0, "expected '}' after the case operator, found '^'")));
    check("${a,,,}", &[("a", "x")], Err((0, "found ','")));
    check("${a^", &[], Err((0, "unterminated")));
}

#[test]
fn substring() {
    let path = [("a", "/home/bozo/ideas/thoughts.for.today")];
    check("${a:11}", &path, Ok("ideas/thoughts.for.today"));
    check("${a:11:5}", &path, Ok("ideas"));
    let digits = [("a", "123456789123456789")];
    check("${a:0:8}", &digits, Ok("12345678"));
    check("${a:1:8}", &digits, Ok("23456789"));
    check("${a:9}", &digits, Ok("123456789"));
    check("${a:9:50}", &digits, Ok("123456789"));
    check("${a:+9}", &digits, Ok("123456789123456789")); // `:+` is a default form, not an offset.
    // Negative offsets are only reachable through a nested expression: `${a:-3}` is a default.
    check("${a:${p}:2}", &[("a", "123456789123456789"), ("p", "-3")], Ok("78"));
    check("${a:${p}:3}", &[("a", "123456789123456789"), ("p", "-300")], Ok("123"));
    check("${a:${p}}", &[("a", "abcdef"), ("p", "-2")], Ok("ef"));
    check("${a:-3}", &[("a", "abcdef")], Ok("abcdef"));
    check("${a:-3}", &[], Ok("3"));
    check("${a:9:1}", &[("a", "12345678")], Ok(""));
    check("${a:20}", &[("a", "abc")], Ok(""));
    check("${a:3}", &[("a", "abc")], Ok(""));
    check("${a:0}", &[], Ok(""));
    // gantry: characters, where drone slices bytes.
    check("${a:1}", &[("a", "héllo")], Ok("éllo"));
    check("${a:2:2}", &[("a", "héllo")], Ok("ll"));
    // drone: an offset or length that is not an integer keeps the whole value, as bash does.
    check("${a:x}", &[("a", "abc")], Ok("abc"));
    check("${a: 1}", &[("a", "abc")], Ok("abc"));
    check("${a:1:x}", &[("a", "abcdef")], Ok("abcdef"));
    check("${a:1:2:3}", &[("a", "abcdef")], Ok("abcdef")); // the length is "2:3"
    check("${a:99999999999999999999}", &[("a", "abc")], Ok("abc"));
    // drone: any run of colons separates offset and length.
    check("${a:1::2}", &[("a", "abcdef")], Ok("bc"));
    // gantry: drone panics on a negative length; we count it back from the end like bash.
    check("${a:1:-1}", &[("a", "abcdef")], Ok("bcde"));
    check("${a:4:-3}", &[("a", "abcdef")], Ok(""));
    // gantry: drone overflows the end and panics; a length past the end means "to the end".
    check("${a:1:9223372036854775807}", &[("a", "abcdef")], Ok("bcdef"));
    check("${a:${b}:${c}}", &[("a", "abcdef"), ("b", "1"), ("c", "2")], Ok("bc"));
    check("${a:}", &[], Err((0, "expected an offset after ':', found '}'")));
    check("${a::1}", &[], Err((0, "expected an offset")));
    check("${a:1:}", &[], Err((0, "expected a length after ':', found '}'")));
    check("${a:1x${b}}", &[], Err((0, "expected ':' or '}' after the offset, found '$'")));
    check("${a:${b}1}", &[], Err((0, "found '1'")));
    check("${a:1", &[], Err((0, "unterminated")));
    check("${a:1:2", &[], Err((0, "unterminated")));
}

#[test]
fn removal() {
    let file = [("f", "bash.string.txt")];
    check("${f#*.}", &file, Ok("string.txt"));
    check("${f##*.}", &file, Ok("txt"));
    check("${f%.*}", &file, Ok("bash.string"));
    check("${f%%.*}", &file, Ok("bash"));
    check("${f#*/}", &[("f", "path/to/file")], Ok("to/file"));
    check("${f#*/}", &[("f", "/path/to/file")], Ok("path/to/file"));
    check("${f##*/}", &[("f", "/path/to/file")], Ok("file"));
    check("${f%/*}", &[("f", "/path/to/file")], Ok("/path/to"));
    check("${f#a}", &[("f", "abc")], Ok("bc"));
    check("${f#b}", &[("f", "abc")], Ok("abc"));
    check("${f%c}", &[("f", "abc")], Ok("ab"));
    check("${f#*}", &[], Ok(""));
    // drone: the empty prefix is never tried, so the shortest match of `*` is one character.
    check("${f#*}", &[("f", "abc")], Ok("bc"));
    check("${f%*}", &[("f", "abc")], Ok("ab"));
    check("${f##*}", &[("f", "abc")], Ok(""));
    check("${f%%*}", &[("f", "abc")], Ok(""));
    check("${f#?}", &[("f", "héllo")], Ok("éllo"));
    // gantry: drone matches bytes here and cuts `é` in half.
    check("${f#h?}", &[("f", "héllo")], Ok("llo"));
    check("${f#[a-c]}", &[("f", "cab")], Ok("ab"));
    check("${f##[a-c]*[a-c]}", &[("f", "cab-b")], Ok(""));
    check("${f#[^a-c]}", &[("f", "cab")], Ok("cab"));
    check("${f#[^a-c]}", &[("f", "xab")], Ok("ab"));
    // drone: `!` does not negate a class.
    check("${f#[!a]}", &[("f", "!x")], Ok("x"));
    // drone: `%` reverses the pattern, so `[a-c]` becomes `]c-a[` and never matches.
    check("${f%[a-c]}", &[("f", "abc")], Ok("abc"));
    check(r"${f#\*}", &[("f", "*x")], Ok("x"));
    check(r"${f#\*}", &[("f", "ax")], Ok("ax"));
    // A malformed pattern never matches.
    check("${f#[}", &[("f", "[x")], Ok("[x"));
    check("${f#[]a]}", &[("f", "]x")], Ok("]x"));
    check("${f#a[b}", &[("f", "abc")], Ok("abc"));
    check(r"${f#a\}", &[("f", "abc")], Ok("abc"));
    check(r"${f#[\]]}", &[("f", "]x")], Ok("x"));
    check("${f###}", &[("f", "##x")], Ok("#x"));
    check("${f%%%}", &[("f", "x%%")], Ok("x%"));
    check("${f#${p}}", &[("f", "prefix-rest"), ("p", "*-")], Ok("rest"));
    check("${f#${p}}", &[("f", "abc")], Ok("abc"));
    check("${f#a:b=c}", &[("f", "a:b=cd")], Ok("d"));
    // drone: an empty pattern is an error, not a no-op.
    check("${f#}", &[], Err((0, "expected a pattern after '#', found '}'")));
    check("${f##}", &[], Err((0, "expected a pattern after '#'")));
    check("${f%}", &[], Err((0, "expected a pattern after '%'")));
    // drone: the pattern is text or one nested expression, not both.
    check("${f#x${p}}", &[], Err((0, "expected '}' after the pattern, found '$'")));
    check("${f#${p}x}", &[], Err((0, "found 'x'")));
    check("${f#x", &[], Err((0, "unterminated")));
}

#[test]
fn replacement() {
    let z = [("z", "abcABC123ABCabc")];
    check("${z/abc/xyz}", &z, Ok("xyzABC123ABCabc"));
    check("${z//abc/xyz}", &z, Ok("xyzABC123ABCxyz"));
    check("${z/#abc/XYZ}", &z, Ok("XYZABC123ABCabc"));
    check("${z/%abc/XYZ}", &z, Ok("abcABC123ABCXYZ"));
    check("${z/#ABC/XYZ}", &z, Ok("abcABC123ABCabc"));
    check("${z/%ABC/XYZ}", &z, Ok("abcABC123ABCabc"));
    check("${z/abc/}", &z, Ok("ABC123ABCabc"));
    check("${z//abc/}", &z, Ok("ABC123ABC"));
    check("${z/./}", &[("z", "foo.bar")], Ok("foobar"));
    check("${z/x/y}", &[], Ok(""));
    // drone: anchored forms without a replacement leave the value alone.
    check("${z/#abc/}", &z, Ok("abcABC123ABCabc"));
    check("${z/%abc/}", &z, Ok("abcABC123ABCabc"));
    // drone: patterns are literal text, not globs.
    check("${z/*/x}", &[("z", "a*b")], Ok("axb"));
    check("${z/?/x}", &[("z", "ab")], Ok("ab"));
    // Escapes work in both arguments.
    check(r"${z/\//-}", &[("z", "foo/bar")], Ok("foo-bar"));
    check(r"${z//\//-}", &[("z", "foo/bar/baz")], Ok("foo-bar-baz"));
    check(r"${z/-/\/}", &[("z", "a-b")], Ok("a/b"));
    check(r"${z/\\/x}", &[("z", r"a\b")], Ok("axb"));
    check(r"${z/\x/y}", &[("z", r"a\xb")], Ok("ayb"));
    check("${z/$$/x}", &[("z", "a$b")], Ok("axb"));
    // The escaped `$${` opens nothing, so the first `}` closes the expression and the last is text.
    check("${z/b/$${c}}", &[("z", "abc")], Ok("a${cc}"));
    // drone: any run of slashes separates pattern and replacement.
    check("${z/b//c}", &[("z", "abc")], Ok("acc"));
    // drone: only `/` ends the pattern, so `}` can be part of it.
    check("${z/}/x}", &[("z", "a}b")], Ok("axb"));
    check("${z/${p}/${r}}", &[("z", "hello"), ("p", "l"), ("r", "L")], Ok("heLlo"));
    check("${z//${p}/${r}}", &[("z", "hello"), ("p", "l"), ("r", "L")], Ok("heLLo"));
    // An empty pattern from a nested expression matches before every character, as in Go.
    check("${z//${p}/-}", &[("z", "abc")], Ok("-a-b-c-"));
    check("${z/${p}/-}", &[("z", "abc")], Ok("-abc"));
    check("${z/#${p}/-}", &[("z", "abc")], Ok("-abc"));
    check("${z/%${p}/-}", &[("z", "abc")], Ok("abc-"));
    check("${z/é/e}", &[("z", "héllo")], Ok("hello"));
    check("${z///x}", &[], Err((0, "expected a pattern after '/', found '/'")));
    check("${z/a}", &[], Err((0, "unterminated")));
    check("${z/a} and ${y}", &[], Err((0, "expected '/' after the pattern, found '$'")));
    check("${z/${p}a/b}", &[], Err((0, "expected '/' after the pattern, found 'a'")));
    check("${z/a/b${c}}", &[], Err((0, "expected '}' after the replacement, found '$'")));
    check("${z/a/${c}d}", &[], Err((0, "found 'd'")));
    check("${z/a/b", &[], Err((0, "unterminated")));
    check("${z/a/", &[], Err((0, "unterminated")));
}

#[test]
fn defaults() {
    check("${v=xyz}", &[], Ok("xyz"));
    check("${v=abc}", &[("v", "abc")], Ok("abc"));
    check("${v:=xyz}", &[], Ok("xyz"));
    check("${v:-xyz}", &[], Ok("xyz"));
    check("${v:-xyz}", &[("v", "")], Ok("xyz"));
    check("${v:-xyz}", &[("v", "set")], Ok("set"));
    // drone: `=` also replaces an empty value (unset and empty are the same).
    check("${v=xyz}", &[("v", "")], Ok("xyz"));
    // drone: `:+` is another default, not bash's "alternative when set".
    check("${v:+xyz}", &[("v", "set")], Ok("set"));
    check("${v:+xyz}", &[], Ok("xyz"));
    // drone: `:?` does not fail, it is a default too.
    check("${v:?must be set}", &[], Ok("must be set"));
    check("${v:?must be set}", &[("v", "set")], Ok("set"));
    check("[${v:-}]", &[], Ok("[]"));
    check("[${v=}]", &[("v", "x")], Ok("[x]"));
    check("something ${v=${d}}", &[("d", "foo")], Ok("something foo"));
    check("foo: ${v=${d}-suffix}", &[("d", "foo1")], Ok("foo: foo1-suffix"));
    check("foo: ${v=prefix${d}-suffix}", &[("d", "foo1")], Ok("foo: prefixfoo1-suffix"));
    check("${v=prefix${d} suffix}", &[("d", "x")], Ok("prefixx suffix"));
    check("${v:-${a}${b}}", &[("a", "1"), ("b", "2")], Ok("12"));
    check("${v:-${a:-${b:-deep}}}", &[], Ok("deep"));
    check("${v=${w^^}}", &[("w", "abcdEFGH28ij")], Ok("ABCDEFGH28IJ"));
    check("${v:-${w}}", &[("v", "set"), ("w", "unused")], Ok("set"));
    // No escapes inside defaults: `$$` and `\/` stay as written.
    check(r"${v:-a\/b}", &[], Ok(r"a\/b"));
    check("${v:-$$}", &[], Ok("$$"));
    check("${v:-$${w}}", &[("w", "x")], Ok("$x"));
    check("${v:-x:y=z#%/}", &[], Ok("x:y=z#%/"));
    check("${v==b}", &[], Ok("=b"));
    check("${v:--1}", &[], Ok("-1"));
    // The first `}` closes the expression; the rest is plain text.
    check("${v:-{}}", &[], Ok("{}"));
    check("${v:-a}b}", &[], Ok("ab}"));
    check("${v:-x", &[], Err((0, "unterminated")));
    check("${v:-${w}", &[], Err((0, "unterminated")));
    // The innermost expression is the one reported.
    check("${v:-${w", &[], Err((5, "unterminated")));
    check("${v:-${}}", &[], Err((5, "expected a variable name")));
    check("${v:-a${w:}}", &[], Err((6, "expected an offset")));
}

#[test]
fn errors() {
    check("${", &[], Err((0, "unterminated ${ expression")));
    check("abc ${", &[], Err((4, "unterminated ${ expression")));
    check("${a", &[], Err((0, "unterminated ${ expression")));
    check("ok ${a} bad ${b", &[], Err((12, "unterminated ${ expression")));
    check("héllo ${", &[], Err((7, "unterminated")));
    check("${a}\n${b\n}", &[], Err((5, r"found '\n'")));
    check("${a:", &[], Err((0, "unterminated")));
    check("${a:-", &[], Err((0, "unterminated")));
    check("${a/", &[], Err((0, "unterminated")));
    check("${a#", &[], Err((0, "unterminated")));
    check("${a,", &[], Err((0, "unterminated")));
    // drone: one bad expression fails the whole input, even after good ones.
    check("${a} ${b:}", &[("a", "x")], Err((5, "expected an offset")));
}

#[test]
fn error_display_is_the_message() {
    let error = substitute("x ${", &|_| None).unwrap_err();
    assert_eq!(error, SubstitutionError { offset: 2, message: "unterminated ${ expression".to_owned() });
    assert_eq!(error.to_string(), "unterminated ${ expression");
    let error = substitute("${a-b}", &|_| None).unwrap_err();
    assert_eq!(error.to_string(), "invalid ${ expression: expected '}' after the variable name, found '-'");
}

#[test]
fn nothing_is_looked_up_when_parsing_fails() {
    let result = substitute("${a} ${", &|name| panic!("looked up {name}"));
    assert_eq!(result.unwrap_err().offset, 5);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let input = format!("{}x{}", "${v:-".repeat(10_000), "}".repeat(10_000));
    let error = substitute(&input, &|_| None).unwrap_err();
    assert!(error.message.contains("nested too deeply"), "{error:?}");
    assert!(input[error.offset..].starts_with("${"));
    // Real files nest a handful of levels.
    let input = format!("{}x{}", "${v:-".repeat(20), "}".repeat(20));
    assert_eq!(substitute(&input, &|_| None).unwrap(), "x");
}

#[test]
fn long_inputs() {
    let text = "plain text without dollars, ".repeat(40_000);
    assert_eq!(substitute(&text, &|_| None).unwrap(), text);
    let expressions = "${a:-x}$${b}".repeat(40_000);
    assert_eq!(substitute(&expressions, &|_| None).unwrap(), "x${b}".repeat(40_000));
    let variables = referenced_variables(&expressions).unwrap();
    assert_eq!(variables.len(), 40_000);
    let value = "ab".repeat(20_000);
    let lookup = |_: &str| Some(value.clone());
    assert_eq!(substitute("${a%%b*}", &lookup).unwrap(), "a");
    assert_eq!(substitute("${a#*x}", &lookup).unwrap(), value);
}

#[test]
fn referenced_variables_in_order_with_offsets() {
    let input = "${a} $b $${c} ${d:-${e}} ${#f} ${g/${h}/${i}} ${j:${k}:${l}} ${m#${n}} \\${o}";
    let expected = [
        ("a", 0),
        ("d", 14),
        ("e", 19),
        ("f", 25),
        ("g", 31),
        ("h", 35),
        ("i", 40),
        ("j", 46),
        ("k", 50),
        ("l", 55),
        ("m", 61),
        ("n", 65),
        ("o", 72),
    ];
    let actual = referenced_variables(input).unwrap();
    let actual: Vec<(&str, usize)> = actual.iter().map(|(name, offset)| (name.as_str(), *offset)).collect();
    assert_eq!(actual, expected);
    for (name, offset) in &actual {
        assert!(input[*offset..].starts_with("${"), "{name} at {offset}");
    }
    assert_eq!(referenced_variables("no variables here").unwrap(), Vec::new());
    assert_eq!(referenced_variables("$$ $a $${b}").unwrap(), Vec::new());
    assert_eq!(referenced_variables("héllo ${wörld}").unwrap(), vec![("wörld".to_owned(), 7)]);
    assert_eq!(referenced_variables("${a} ${b").unwrap_err(), substitute("${a} ${b", &|_| None).unwrap_err());
}

/// Reference for text without `$`: only the two backslash escapes change it.
fn unescape_backslashes(input: &str) -> String {
    let mut output = String::new();
    let mut characters = input.chars().peekable();
    while let Some(character) = characters.next() {
        match (character, characters.peek()) {
            ('\\', Some(&next @ ('\\' | '/'))) => {
                output.push(next);
                characters.next();
            }
            _ => output.push(character),
        }
    }
    output
}

#[track_caller]
fn assert_consistent(input: &str) {
    let substituted = substitute(input, &|name| Some(format!("<{name}>")));
    let referenced = referenced_variables(input);
    match (&substituted, &referenced) {
        (Ok(_), Ok(variables)) => {
            for (_, offset) in variables {
                assert!(input[*offset..].starts_with("${"));
            }
        }
        (Err(error), Err(same)) => {
            assert_eq!(error, same);
            assert!(input[error.offset..].starts_with("${"), "{error:?}");
        }
        _ => panic!("substitute and referenced_variables disagree on {input:?}: {substituted:?} {referenced:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_text(input in any::<String>()) {
        assert_consistent(&input);
    }

    #[test]
    fn never_panics_on_operator_soup(input in r"(\$\{|[${}:#%/^,=+?*\[\]\\!a-c0-9é -])*") {
        assert_consistent(&input);
    }

    #[test]
    fn text_without_dollars_or_backslashes_is_unchanged(input in r"[^$\\]*") {
        prop_assert_eq!(substitute(&input, &|_| Some("value".to_owned())).unwrap(), input);
    }

    // drone: without `$` the only change is the `\\` and `\/` escapes.
    #[test]
    fn text_without_dollars_only_loses_escapes(input in r"([^$]|\\\\|\\/)*") {
        prop_assert_eq!(substitute(&input, &|_| None).unwrap(), unescape_backslashes(&input));
    }

    #[test]
    fn a_plain_reference_is_the_value(name in r"[A-Za-z_][A-Za-z0-9_]{0,20}", value in any::<String>()) {
        let input = format!("${{{name}}}");
        let lookup = |asked: &str| (asked == name).then(|| value.clone());
        prop_assert_eq!(substitute(&input, &lookup).unwrap(), value.clone());
    }
}
