//! Fuzz target: any text, read as a Woodpecker file, a `.woodpecker/` folder and a Drone file,
//! is linted, planned for several triggers and documented without a panic, and every plan
//! survives the trip to an agent (JSON and back) unchanged.
//!
//! The input is one file's text; NUL bytes split it into the files of a `.woodpecker/` folder,
//! so that dependencies between workflows are reached too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline::plan::Plan;
use pipeline::{CompileOptions, Context, SourceFile};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The server reads a file in the dialect its name says; `gantry lint` on a custom path
    // guesses. Each reading is a separate way in.
    exercise(&[SourceFile::new(".woodpecker.yml", text.replace('\0', "\n"))], data);
    exercise(&[SourceFile::new(".drone.yml", text.replace('\0', "\n"))], data);
    if text.contains('\0') {
        let folder: Vec<SourceFile> =
            text.split('\0').enumerate().map(|(index, part)| SourceFile::new(format!(".woodpecker/w{index}.yml"), part)).collect();
        exercise(&folder, data);
    } else {
        exercise(&[SourceFile::new("ci/pipeline.yml", text.as_ref())], data);
    }
});

fn exercise(files: &[SourceFile], data: &[u8]) {
    // One trigger per input, picked by the input, keeps each run short; the fuzzer reaches the
    // others by changing the input.
    let context = contexts().swap_remove(data.iter().map(|byte| usize::from(*byte)).sum::<usize>() % CONTEXTS);
    let (workflows, diagnostics) = pipeline::read_and_lint(files);
    check_diagnostics(files, &diagnostics);
    let plan = pipeline::compile_with(&workflows, &context, CompileOptions::default());
    check_diagnostics(files, &plan.diagnostics);
    check_round_trip(&plan);
    // The server's entry point gives the same workflows: planning is deterministic, and the
    // same commit is planned again after a restart.
    let planned = pipeline::plan_files(files, &context, CompileOptions::default());
    check_diagnostics(files, &planned.diagnostics);
    assert_eq!(
        serde_json::to_string(&plan.workflows).expect("workflows serialize"),
        serde_json::to_string(&planned.workflows).expect("workflows serialize"),
        "planning the same files twice gave two plans"
    );
    // `gantry docs`: the pipeline as declared, as `gantry exec` would run it.
    let declared = pipeline::compile_with(&workflows, &context, CompileOptions { local: true, ignore_conditions: true });
    check_round_trip(&declared);
    let _ = pipeline::docs::render_markdown(&workflows, &declared);
}

const CONTEXTS: usize = 5;

/// Triggers that take different paths through conditions, substitution and the environment.
fn contexts() -> Vec<Context> {
    let base = Context {
        commit_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        // Not only ASCII: substitution slices values (`${CI_COMMIT_MESSAGE:3:5}`) by characters.
        commit_message: "fix: the ünïcödé thing ✓ 🚀\n\nlonger body".into(),
        commit_author: "Zoë Ångström".into(),
        commit_author_email: "octocat@example.com".into(),
        repo: "acme/app".into(),
        repo_clone_url: "https://git.example.com/acme/app.git".into(),
        repo_url: "https://git.example.com/acme/app".into(),
        pipeline_number: 7,
        ..Context::default()
    };
    vec![
        base.clone().normalized(),
        Context { event: "tag".into(), tag: Some("v1.2.0".into()), ..base.clone() }.normalized(),
        Context {
            event: "pull_request".into(),
            branch: "feature/straße".into(),
            pull_request: Some("42".into()),
            source_branch: Some("feature/straße".into()),
            target_branch: Some("main".into()),
            action: Some("opened".into()),
            changed_files: Some(vec!["docs/index.md".into(), "src/main.rs".into()]),
            ..base.clone()
        }
        .normalized(),
        Context { event: "cron".into(), cron: Some("nightly".into()), platform: "linux/arm64".into(), ..base.clone() }.normalized(),
        Context {
            event: "manual".into(),
            branch: "release".into(),
            deploy_target: Some("production".into()),
            extra_environment: [("DEPLOY_TO".to_owned(), "staging".to_owned()), ("CI".to_owned(), "overridden".to_owned())].into(),
            changed_files: Some(Vec::new()),
            ..base
        }
        .normalized(),
    ]
}

fn check_diagnostics(files: &[SourceFile], diagnostics: &[pipeline::Diagnostic]) {
    for diagnostic in diagnostics {
        assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "a diagnostic without a place: {diagnostic:?}");
        let source = files.iter().find(|file| file.path == diagnostic.file).map(|file| file.text.as_str());
        let _ = diagnostic.render(source);
    }
}

/// A plan reaches agents as JSON: reading it back must give the same plan.
fn check_round_trip(plan: &Plan) {
    let json = to_json(plan);
    let read: Plan = serde_json::from_str(&json).unwrap_or_else(|error| panic!("a plan does not read back: {error}\n{json}"));
    assert_eq!(json, to_json(&read), "a plan changed on its way through JSON");
}

fn to_json(plan: &Plan) -> String {
    serde_json::to_string(plan).expect("a plan serializes")
}
