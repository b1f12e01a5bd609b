//! `when` and Drone `trigger`: which filters apply to which events, OR across list items,
//! include/exclude, path filters, status, evaluate.

use pipeline::{CompileOptions, Context, SourceFile, plan_files};

fn push(branch: &str) -> Context {
    Context { event: "push".into(), branch: branch.into(), repo: "acme/app".into(), ..Context::default() }
}

fn tag(name: &str) -> Context {
    Context { event: "tag".into(), tag: Some(name.into()), branch: "main".into(), repo: "acme/app".into(), ..Context::default() }
}

fn with_files(mut context: Context, files: &[&str], message: &str) -> Context {
    context.changed_files = Some(files.iter().map(ToString::to_string).collect());
    context.commit_message = message.into();
    context
}

/// Decision for a Woodpecker step with this `when`: `run` (and on which statuses) or `skip`.
fn step(when: &str, context: Context) -> String {
    let yaml = format!("steps:\n  s:\n    image: alpine\n    commands: [true]\n    when: {when}\n");
    decide(".woodpecker.yml", &yaml, context, |plan| {
        let step = plan.workflows[0].steps.iter().find(|s| s.name == "s").unwrap();
        (step.skipped, step.runs_on.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>())
    })
}

/// Decision for a Drone pipeline with this `trigger`.
fn trigger(trigger: &str, context: Context) -> String {
    let yaml = format!("kind: pipeline\nname: p\ntrigger: {trigger}\nsteps:\n- name: s\n  image: alpine\n  commands: [true]\n");
    decide(".drone.yml", &yaml, context, |plan| {
        let workflow = &plan.workflows[0];
        (workflow.skipped, workflow.runs_on.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>())
    })
}

fn decide(path: &str, yaml: &str, context: Context, pick: impl Fn(&pipeline::Plan) -> (bool, Vec<String>)) -> String {
    let plan = plan_files(&[SourceFile::new(path, yaml)], &context, CompileOptions::default());
    if let Some(error) = plan.diagnostics.iter().find(|d| d.is_error()) {
        return format!("error: {}", error.message);
    }
    match pick(&plan) {
        (true, _) => "skip".into(),
        (false, statuses) => format!("run on {}", statuses.join("+")),
    }
}

#[test]
fn branch_event_ref_and_repo_filters() {
    let cases: &[(&str, Context, &str)] = &[
        ("{branch: main}", push("main"), "run on success"),
        ("{branch: main}", push("dev"), "skip"),
        ("{branch: [main, 'release/*']}", push("release/1.2"), "run on success"),
        // `*` stays within a segment; `**` crosses `/`.
        ("{branch: 'release/*'}", push("release/1.2/hotfix"), "skip"),
        ("{branch: 'release/**'}", push("release/1.2/hotfix"), "run on success"),
        ("{branch: {include: ['feature/*'], exclude: ['feature/wip-*']}}", push("feature/wip-x"), "skip"),
        ("{branch: {exclude: [main]}}", push("dev"), "run on success"),
        // Branch filters do not apply to tags.
        ("{branch: main, event: tag}", tag("v1.0.0"), "run on success"),
        ("{event: [push, pull_request]}", tag("v1.0.0"), "skip"),
        ("{event: tag, ref: 'refs/tags/v*'}", tag("v1.0.0"), "run on success"),
        ("{event: tag, ref: 'refs/tags/v*'}", tag("nightly"), "skip"),
        ("{repo: acme/app}", push("main"), "run on success"),
        ("{repo: 'other/*'}", push("main"), "skip"),
        // A list of maps is an OR.
        ("[{event: tag}, {branch: main}]", push("main"), "run on success"),
        ("[{event: tag}, {branch: main}]", push("dev"), "skip"),
    ];
    for (when, context, expected) in cases {
        assert_eq!(step(when, context.clone()), *expected, "when: {when}");
    }
}

#[test]
fn path_filters_apply_to_push_and_pull_requests_only() {
    let cases: &[(&str, Context, &str)] = &[
        ("{path: 'docs/**'}", with_files(push("main"), &["docs/index.md"], ""), "run on success"),
        ("{path: 'docs/**'}", with_files(push("main"), &["src/main.rs"], ""), "skip"),
        ("{path: {include: ['src/**'], exclude: ['**/*.md']}}", with_files(push("main"), &["src/README.md"], ""), "skip"),
        // Excluded only when every changed file is excluded.
        ("{path: {exclude: ['**/*.md']}}", with_files(push("main"), &["a.md", "b.rs"], ""), "run on success"),
        (
            "{path: {include: ['src/**'], ignore_message: '[ALL]'}}",
            with_files(push("main"), &["docs/x"], "fix [all] things"),
            "run on success",
        ),
        ("{path: {include: ['src/**'], on_empty: false}}", with_files(push("main"), &[], ""), "skip"),
        ("{path: {include: ['src/**']}}", with_files(push("main"), &[], ""), "run on success"),
        // Tags have no changed files: the filter does not apply.
        ("{path: 'docs/**'}", with_files(tag("v1"), &["src/a"], ""), "run on success"),
        // Unknown changed files (no diff): the filter passes.
        ("{path: 'docs/**'}", push("main"), "run on success"),
    ];
    for (when, context, expected) in cases {
        assert_eq!(step(when, context.clone()), *expected, "when: {when}");
    }
}

#[test]
fn status_decides_success_and_failure_runs() {
    assert_eq!(step("{status: failure}", push("main")), "run on failure");
    assert_eq!(step("{status: [success, failure]}", push("main")), "run on success+failure");
    // As Woodpecker: a matching item that lists statuses without `success` rules out success runs.
    assert_eq!(step("[{status: failure}, {branch: main}]", push("main")), "run on failure");
    assert_eq!(step("{status: [failure], branch: dev}", push("main")), "skip");
}

#[test]
fn evaluate_sees_builtin_and_extra_variables() {
    let mut context = push("main");
    context.extra_environment.insert("DEPLOY".into(), "yes".into());
    assert_eq!(step(r#"{evaluate: 'CI_COMMIT_BRANCH == "main" && DEPLOY == "yes"'}"#, context.clone()), "run on success");
    assert_eq!(step(r#"{evaluate: 'CI_PIPELINE_EVENT == "tag"'}"#, context), "skip");
    assert!(step(r#"{evaluate: 'CI_COMMIT_BRANCH == ('}"#, push("main")).starts_with("error: "));
}

#[test]
fn cron_filters_apply_to_cron_events_only() {
    let cron = Context { event: "cron".into(), cron: Some("nightly".into()), ..push("main") };
    assert_eq!(step("{event: cron, cron: nightly}", cron.clone()), "run on success");
    assert_eq!(step("{event: cron, cron: weekly}", cron), "skip");
    assert_eq!(step("{cron: weekly}", push("main")), "run on success");
}

#[test]
fn drone_triggers() {
    let cases: &[(&str, Context, &str)] = &[
        ("{branch: [main]}", push("main"), "run on success"),
        ("{branch: {exclude: [main]}}", push("main"), "skip"),
        ("{event: {exclude: [pull_request]}}", push("main"), "run on success"),
        (
            "{event: [promote], target: [production]}",
            Context { event: "promote".into(), deploy_target: Some("production".into()), ..push("main") },
            "run on success",
        ),
        (
            "{event: [promote], target: [production]}",
            Context { event: "promote".into(), deploy_target: Some("staging".into()), ..push("main") },
            "skip",
        ),
        ("{status: [success, failure]}", push("main"), "run on success+failure"),
        (
            "{event: pull_request, action: [opened, synchronized]}",
            Context { event: "pull_request".into(), action: Some("closed".into()), ..push("main") },
            "skip",
        ),
    ];
    for (condition, context, expected) in cases {
        assert_eq!(trigger(condition, context.clone()), *expected, "trigger: {condition}");
    }
}
