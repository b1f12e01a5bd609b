//! The step graph: file order without `depends_on`, each step's own dependencies with it,
//! skipped steps taken out, and dependencies between workflows.

use pipeline::{CompileOptions, Context, SourceFile, plan_files};

/// Plans one Woodpecker file for a push to main and returns `step <- dependencies` lines.
fn edges(yaml: &str) -> Vec<String> {
    let plan = plan_files(&[SourceFile::new(".woodpecker.yml", yaml)], &Context::default(), CompileOptions::default());
    assert!(!plan.has_errors(), "{:?}", plan.diagnostics);
    plan.workflows[0]
        .steps
        .iter()
        .map(|step| {
            let marker = if step.skipped { " (skipped)" } else { "" };
            format!("{} <- {}{marker}", step.name, step.depends_on.join(", "))
        })
        .collect()
}

#[test]
fn without_depends_on_steps_run_in_file_order_after_clone() {
    let yaml = "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b]}\n  c: {image: x, commands: [c]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- a", "c <- b"]);
}

#[test]
fn with_depends_on_a_step_waits_only_for_its_own_dependencies() {
    // fan-out: b and c only need a; fan-in: d needs both; e has no depends_on and starts after clone.
    let yaml = "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b], depends_on: [a]}\n  c: {image: x, commands: [c], depends_on: [a]}\n  d: {image: x, commands: [d], depends_on: [b, c]}\n  e: {image: x, commands: [e]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- a", "c <- a", "d <- b, c", "e <- clone"]);
}

#[test]
fn an_empty_depends_on_switches_to_graph_mode() {
    let yaml = "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b], depends_on: []}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- clone"]);
}

#[test]
fn a_skipped_step_passes_its_dependencies_on() {
    let yaml =
        "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b], when: {event: tag}}\n  c: {image: x, commands: [c]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- a (skipped)", "c <- a"]);
}

#[test]
fn woodpecker_skips_a_step_whose_required_dependency_does_not_run() {
    let yaml = "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b], depends_on: [a], when: {branch: dev}}\n  c: {image: x, commands: [c], depends_on: [b]}\n  d: {image: x, commands: [d], depends_on: [{name: b, optional: true}]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- a (skipped)", "c <- b (skipped)", "d <- a"]);
}

#[test]
fn drone_runs_a_step_after_a_skipped_dependency() {
    let yaml = "kind: pipeline\nsteps:\n- {name: a, image: x, commands: [a]}\n- {name: b, image: x, commands: [b], depends_on: [a], when: {branch: dev}}\n- {name: c, image: x, commands: [c], depends_on: [b]}\n";
    let plan = plan_files(&[SourceFile::new(".drone.yml", yaml)], &Context::default(), CompileOptions::default());
    let edges: Vec<String> = plan.workflows[0]
        .steps
        .iter()
        .map(|s| format!("{} <- {}{}", s.name, s.depends_on.join(", "), if s.skipped { " (skipped)" } else { "" }))
        .collect();
    assert_eq!(edges, ["clone <- ", "a <- clone", "b <- a (skipped)", "c <- a"]);
}

#[test]
fn skip_clone_and_custom_clone_steps() {
    assert_eq!(edges("skip_clone: true\nsteps:\n  a: {image: x, commands: [a]}\n"), ["a <- "]);
    let yaml = "clone:\n  git: {image: woodpeckerci/plugin-git, settings: {depth: 1}}\n  lfs: {image: my/lfs}\nsteps:\n  a: {image: x, commands: [a]}\n";
    assert_eq!(edges(yaml), ["git <- ", "lfs <- git", "a <- lfs"]);
}

#[test]
fn duplicate_names_in_file_order_mode_run_as_numbered_copies() {
    let yaml = "steps:\n  - {name: test, image: x, commands: [a]}\n  - {name: test, image: x, commands: [b]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "test <- clone", "test-2 <- test"]);
}

/// Plans a folder of workflows for a context and returns `workflow <- deps: status`.
fn workflows(files: &[(&str, &str)], context: Context) -> Vec<String> {
    let files: Vec<SourceFile> = files.iter().map(|(path, text)| SourceFile::new(*path, *text)).collect();
    let plan = plan_files(&files, &context, CompileOptions::default());
    assert!(!plan.has_errors(), "{:?}", plan.diagnostics);
    plan.workflows
        .iter()
        .map(|w| format!("{} <- {}: {}", w.name, w.depends_on.join(", "), w.skip_reason.as_deref().unwrap_or("runs")))
        .collect()
}

#[test]
fn workflow_dependencies_resolve_across_files_and_skipping_spreads() {
    let files = [
        (".woodpecker/build.yml", "steps:\n  a: {image: x, commands: [a]}\n"),
        (".woodpecker/deploy.yml", "depends_on: [build, test]\nwhen: {branch: main}\nsteps:\n  a: {image: x, commands: [a]}\n"),
        (".woodpecker/notify.yml", "depends_on: [deploy]\nsteps:\n  a: {image: x, commands: [a]}\n"),
        (".woodpecker/optional.yml", "depends_on: [{name: deploy, optional: true}]\nsteps:\n  a: {image: x, commands: [a]}\n"),
        (".woodpecker/test.yml", "matrix: {GO: ['1.22', '1.23']}\nsteps:\n  a: {image: 'golang:${GO}', commands: [a]}\n"),
    ];
    assert_eq!(
        workflows(&files, Context::default()),
        [
            "build <- : runs",
            "deploy <- build, test (GO=1.22), test (GO=1.23): runs",
            "notify <- deploy: runs",
            "optional <- deploy: runs",
            "test (GO=1.22) <- : runs",
            "test (GO=1.23) <- : runs",
        ]
    );
    let on_dev = Context { branch: "dev".into(), ..Context::default() };
    assert_eq!(
        workflows(&files, on_dev),
        [
            "build <- : runs",
            "deploy <- build, test (GO=1.22), test (GO=1.23): branch is \"dev\", condition wants main",
            "notify <- deploy: it depends on workflow `deploy`, which does not run",
            "optional <- : runs",
            "test (GO=1.22) <- : runs",
            "test (GO=1.23) <- : runs",
        ]
    );
}

#[test]
fn steps_of_one_legacy_group_run_in_parallel_between_their_neighbours() {
    let yaml = "steps:\n  a: {image: x, commands: [a]}\n  b: {image: x, commands: [b], group: checks}\n  c: {image: x, commands: [c], group: checks}\n  d: {image: x, commands: [d]}\n";
    assert_eq!(edges(yaml), ["clone <- ", "a <- clone", "b <- a", "c <- a", "d <- b, c"]);
}
