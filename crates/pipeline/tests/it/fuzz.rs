//! No input makes reading, linting, planning or documenting panic: arbitrary bytes and
//! mutations of real pipelines. A bounded number of cases runs in the suite.

use pipeline::{CompileOptions, Context, SourceFile, plan_files};
use proptest::prelude::*;

fn exercise(path: &str, text: &str) {
    let files = [SourceFile::new(path, text)];
    let plan = plan_files(&files, &Context::default(), CompileOptions::default());
    for diagnostic in &plan.diagnostics {
        let _ = diagnostic.render(Some(text));
        assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "{diagnostic:?}");
    }
    // A plan reaches agents as JSON: it must read back as itself.
    let json = serde_json::to_string(&plan).expect("a plan serializes");
    let read: pipeline::Plan = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}: {json}"));
    assert!(read == plan, "a plan changed on its way through JSON: {json}");
    let (workflows, _) = pipeline::read_and_lint(&files);
    let all = pipeline::compile_with(&workflows, &Context::default(), CompileOptions { ignore_conditions: true, local: true });
    let _ = pipeline::docs::render_markdown(&workflows, &all);
}

/// Pieces of real pipelines, recombined.
const FRAGMENTS: &[&str] = &[
    "steps:\n",
    "  build:\n",
    "    image: alpine\n",
    "    commands: [echo ${CI_COMMIT_SHA:0:8}]\n",
    "  - name: x\n",
    "    depends_on: [build]\n",
    "    when:\n",
    "      branch: main\n",
    "      - event: [push, tag]\n",
    "matrix:\n",
    "  GO: [1, 2]\n",
    "    <<: *d\n",
    "x: &d {a: 1}\n",
    "kind: pipeline\n",
    "---\n",
    "trigger:\n",
    "  event:\n",
    "    exclude: [pull_request]\n",
    "    settings:\n",
    "      password: {from_secret: p}\n",
    "\t",
    ":",
    "- ",
    "{",
    "[",
    "\"",
    "'",
    "${",
    "$$",
    "evaluate: 'CI == \"x\"'\n",
    "services:\n",
    "depends_on: [a, b]\n",
    "path:\n",
    "  include: ['**/*.rs']\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        exercise(".woodpecker.yml", &text);
        exercise(".drone.yml", &text);
    }

    #[test]
    fn recombined_fragments_never_panic(pieces in prop::collection::vec(0..FRAGMENTS.len(), 0..40)) {
        let text: String = pieces.into_iter().map(|index| FRAGMENTS[index]).collect();
        exercise(".woodpecker/ci.yml", &text);
        exercise(".drone.yml", &text);
    }
}

#[test]
fn arbitrary_bytes_as_lossy_text_never_panic() {
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            exercise(".woodpecker.yml", &String::from_utf8_lossy(&bytes));
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_empty_backend_options_key_is_no_options_and_survives_json() {
    // Found by the fuzz target `pipeline_plan`: `Some(null)` was written as `null` and read
    // back as `None`, so an agent would have seen another plan than the server stored.
    exercise(".woodpecker.yml", "steps:\n  build:\n    image: alpine\n    commands: [true]\n    backend_options:\n");
    let files = [SourceFile::new(".woodpecker.yml", "steps:\n  build:\n    image: alpine\n    backend_options: ~\n")];
    let plan = plan_files(&files, &Context::default(), CompileOptions::default());
    let step = plan.workflows[0].steps.iter().find(|step| step.name == "build").expect("the step is planned");
    assert_eq!(step.backend_options, None);
}
