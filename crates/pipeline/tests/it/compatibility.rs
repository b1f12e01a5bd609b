//! Forms real files use that are easy to get wrong: old Woodpecker and Drone syntax, YAML 1.1
//! booleans in boolean fields, machine runners without images. Each row is one file that must
//! read without errors, and what it must mean.

use pipeline::plan::WorkflowPlan;
use pipeline::{CompileOptions, Context, Severity, SourceFile, plan_files};

fn plan(path: &str, yaml: &str) -> (WorkflowPlan, Vec<String>) {
    let plan = plan_files(&[SourceFile::new(path, yaml)], &Context::default(), CompileOptions::default());
    let errors: Vec<String> = plan.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{path}: {errors:?}");
    let warnings = plan.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
    (plan.workflows.into_iter().next().unwrap(), warnings)
}

#[test]
fn plugin_parameters_on_the_step_in_the_old_format_are_settings() {
    let yaml = "pipeline:\n  publish:\n    image: plugins/docker\n    repo: acme/app\n    tags: [latest, v1]\n  test:\n    image: golang\n    commands: [go test]\n    foo: bar\n";
    let (workflow, warnings) = plan(".woodpecker.yml", yaml);
    let publish = &workflow.steps[1];
    assert_eq!(publish.environment["PLUGIN_REPO"], "acme/app");
    assert_eq!(publish.environment["PLUGIN_TAGS"], "latest,v1");
    assert!(warnings.iter().any(|w| w.contains("(`repo`, `tags`) are read as `settings`")), "{warnings:?}");
    // A commands step keeps unknown keys unknown.
    assert!(warnings.iter().any(|w| w == "unknown-key: unknown key `foo` in a step; it is ignored"), "{warnings:?}");
    // In the current format a stray key stays a stray key.
    let (_, warnings) = plan(".woodpecker.yml", "steps:\n  publish:\n    image: plugins/webhook\n    repo: acme/app\n");
    assert!(warnings.iter().any(|w| w.starts_with("unknown-key: unknown key `repo`")), "{warnings:?}");
}

#[test]
fn yaml_1_1_booleans_are_read_in_boolean_fields_as_go_yaml_does() {
    let yaml = "steps:\n  a:\n    image: docker\n    privileged: yes\n    detach: on\n    commands: [ls]\n  b:\n    image: alpine\n    pull: yes\n    commands: [ls]\n";
    let (workflow, _) = plan(".woodpecker.yml", yaml);
    assert!(workflow.steps[1].container.privileged && workflow.steps[1].detach);
    assert_eq!(workflow.steps[2].pull, pipeline::model::PullPolicy::Always);
    // Elsewhere they stay text: an environment value `yes` is the string "yes".
    let (workflow, _) = plan(".woodpecker.yml", "steps:\n  a:\n    image: alpine\n    environment: {ENABLED: yes}\n    commands: [env]\n");
    assert_eq!(workflow.steps[1].environment["ENABLED"], "yes");
}

#[test]
fn labels_as_a_list_and_volumes_of_one_path() {
    let yaml = "labels: [platform=linux/arm64, type=large]\nsteps:\n  a:\n    image: alpine\n    volumes: [/cache]\n    commands: [ls]\n";
    let (workflow, _) = plan(".woodpecker.yml", yaml);
    assert_eq!(workflow.labels["platform"], "linux/arm64");
    assert_eq!(workflow.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(workflow.steps[1].container.volumes, ["/cache"]);
}

#[test]
fn drone_machine_runners_need_no_images() {
    for runner in ["ssh", "vm", "digitalocean", "macstadium", "exec"] {
        // Where to run: a server (ssh, digitalocean, macstadium) or a pool (vm); exec runs where the runner is.
        let placement = if runner == "exec" { "" } else { "server: {host: 10.0.0.1, user: root}\npool: {use: ubuntu}\n" };
        let yaml = format!("kind: pipeline\ntype: {runner}\nname: native\n{placement}steps:\n- name: build\n  commands: [go build]\n");
        let (workflow, warnings) = plan(".drone.yml", &yaml);
        assert_eq!(workflow.steps[1].image, None, "{runner}");
        assert!(!warnings.iter().any(|w| w.contains("unknown key")), "{runner}: {warnings:?}");
    }
    let plan = plan_files(
        &[SourceFile::new(".drone.yml", "kind: pipeline\nname: c\nsteps:\n- name: build\n  commands: [go build]\n")],
        &Context::default(),
        CompileOptions::default(),
    );
    assert!(plan.diagnostics.iter().any(|d| d.message == "step `build` has no `image`"), "docker steps do need one");
}

#[test]
fn runs_on_is_the_workflow_status_and_unnamed_steps_are_numbered_from_zero() {
    let yaml = "runs_on: [success, failure]\nsteps:\n  - image: alpine\n    commands: [ls]\n  - image: alpine\n    commands: [ls]\n";
    let (workflow, warnings) = plan(".woodpecker/notify.yml", yaml);
    assert_eq!(workflow.runs_on, [pipeline::plan::RunOn::Success, pipeline::plan::RunOn::Failure]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<&str> = workflow.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(names, ["clone", "step-0", "step-1"]);
}

#[test]
fn a_dependency_on_a_workflow_that_does_not_exist_is_reported_by_lint() {
    let files = [
        SourceFile::new(".woodpecker/build.yml", "steps:\n  a: {image: alpine, commands: [ls]}\n"),
        SourceFile::new(".woodpecker/deploy.yml", "depends_on: [biuld]\nsteps:\n  a: {image: alpine, commands: [ls]}\n"),
    ];
    let diagnostics = pipeline::lint_files(&files);
    let error = diagnostics.iter().find(|d| d.code == "unknown-dependency").expect("an unknown-dependency error");
    assert_eq!((error.file.as_str(), error.line, error.column), (".woodpecker/deploy.yml", 1, 14));
    assert_eq!(error.hint.as_deref(), Some("did you mean `build`?"));
}
