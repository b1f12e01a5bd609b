//! The YAML layer: anchors, `<<` merges (mapping and sequence), YAML 1.2 scalars, spans.

use pipeline::yaml::{Node, NodeValue, Span, parse_documents};

fn parse(text: &str) -> Node {
    parse_documents(text).unwrap().remove(0)
}

fn strings(node: &Node) -> Vec<String> {
    node.as_sequence().unwrap().iter().map(|item| item.scalar_text().unwrap().into_owned()).collect()
}

#[test]
fn mapping_merge_keeps_explicit_keys_and_takes_the_rest_in_place() {
    let root = parse(
        "defaults: &defaults\n  image: alpine:3.20\n  pull: true\nsteps:\n  build:\n    name: build\n    <<: *defaults\n    pull: false\n",
    );
    let build = root.get("steps").unwrap().get("build").unwrap();
    let keys: Vec<String> = build.as_mapping().unwrap().iter().map(|(key, _)| key.scalar_text().unwrap().into_owned()).collect();
    // Merged keys stand where `<<` stands; the explicit `pull` wins even though it comes later.
    assert_eq!(keys, ["name", "image", "pull"]);
    assert_eq!(build.get("pull").unwrap().value, NodeValue::Bool(false));
    assert_eq!(build.get("image").unwrap().span, Span::new(7, 9), "a merged value points at the `<<` line");
}

#[test]
fn merge_of_several_mappings_lets_the_earlier_win() {
    let root = parse("a: &a {timeout: 30, x: 1}\nb: &b {timeout: 99, y: 2}\nmulti:\n  <<: [*a, *b]\n");
    let multi = root.get("multi").unwrap();
    assert_eq!(multi.get("timeout").unwrap().scalar_text().unwrap(), "30");
    assert_eq!(multi.get("y").unwrap().scalar_text().unwrap(), "2");
}

#[test]
fn sequence_merge_splices_lists_into_lists() {
    let root = parse(
        "pre: &pre\n  - echo start\n  - whoami\npost: &post\n  - echo stop\ncommands:\n  - <<: *pre\n  - make\n  - <<: [*post, *pre]\n",
    );
    assert_eq!(strings(root.get("commands").unwrap()), ["echo start", "whoami", "make", "echo stop", "echo start", "whoami"]);
}

#[test]
fn yaml_1_1_booleans_stay_strings_and_numbers_stay_as_written() {
    let root = parse("on: yes\ncountry: NO\nflag: off\nreal: true\nversion: 1.20\nhex: 0x1F\nbig: 12345678901234567890123\n");
    assert_eq!(root.get("on").unwrap().value, NodeValue::String("yes".into()));
    assert_eq!(root.get("country").unwrap().value, NodeValue::String("NO".into()));
    assert_eq!(root.get("flag").unwrap().value, NodeValue::String("off".into()));
    assert_eq!(root.get("real").unwrap().value, NodeValue::Bool(true));
    assert_eq!(root.get("version").unwrap().scalar_text().unwrap(), "1.20");
    assert_eq!(root.get("hex").unwrap().scalar_text().unwrap(), "0x1F");
    assert!(root.get("big").unwrap().scalar_text().is_some());
}

#[test]
fn json_is_yaml() {
    let root = parse(r#"{"kind": "pipeline", "steps": [{"name": "a", "image": "alpine"}]}"#);
    assert_eq!(root.get("kind").unwrap().as_str(), Some("pipeline"));
}

#[test]
fn several_documents_are_read_in_order() {
    let documents = parse_documents("kind: pipeline\nname: a\n---\nkind: pipeline\nname: b\n...\n").unwrap();
    let names: Vec<_> = documents.iter().map(|d| d.get("name").unwrap().scalar_text().unwrap().into_owned()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn errors_name_the_problem_and_the_place() {
    let check = |text: &str, line: u32, column: u32, needle: &str| {
        let error = parse_documents(text).unwrap_err();
        assert_eq!((error.span.line, error.span.column), (line, column), "{text:?}: {error:?}");
        assert!(error.message.contains(needle), "{text:?}: message {:?} lacks {needle:?}", error.message);
    };
    check("steps:\n  build:\n\timage: x\n", 3, 1, "tab");
    check("a: 1\na: 2\n", 2, 1, "duplicate");
    check("a: *nope\n", 1, 4, "anchor");
    check("a: [1, 2\n", 1, 4, "unclosed bracket");
    check("m:\n  <<: plain\n", 2, 7, "merges a mapping");
}

#[test]
fn an_alias_bomb_is_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let previous = level - 1;
        text.push_str(&format!("a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"));
    }
    assert!(parse_documents(&text).is_err());
}
