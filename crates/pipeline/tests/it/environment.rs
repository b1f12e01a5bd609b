//! What a container receives: settings as `PLUGIN_*` with Woodpecker's (and Drone's) encoding,
//! environment values, secret references, built-in variables, workspace and working directory.

use std::collections::BTreeMap;

use pipeline::plan::{SecretReference, StepPlan, WorkflowPlan};
use pipeline::{CompileOptions, Context, SourceFile, plan_files};

fn plan(path: &str, yaml: &str, context: Context) -> WorkflowPlan {
    let plan = plan_files(&[SourceFile::new(path, yaml)], &context, CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    plan.workflows.into_iter().next().unwrap()
}

fn step<'a>(workflow: &'a WorkflowPlan, name: &str) -> &'a StepPlan {
    workflow.steps.iter().find(|step| step.name == name).unwrap()
}

fn own_environment(step: &StepPlan) -> BTreeMap<&str, &str> {
    step.environment
        .iter()
        .filter(|(key, _)| !key.starts_with("CI_STEP_") && !key.starts_with("DRONE_STEP_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn woodpecker_settings_become_plugin_variables() {
    let yaml = r#"
steps:
  publish:
    image: woodpeckerci/plugin-s3
    settings:
      repo: acme/app
      dry-run: true
      build.args: {VERSION: "1.2", DEBUG: false}
      tags: [latest, "1.2.0", 3]
      empty: []
      platforms: linux/amd64,linux/arm64
      anInt: 42
      version: 1.20
      nothing: null
      list_of_maps: [{a: 1}, {b: [x, y]}]
      password: {from_secret: docker_password}
      headers: {Authorization: {from_secret: api_token}, Accept: json}
"#;
    let workflow = plan(".woodpecker.yml", yaml, Context::default());
    let publish = step(&workflow, "publish");
    let expected: BTreeMap<&str, &str> = [
        ("PLUGIN_REPO", "acme/app"),
        ("PLUGIN_DRY_RUN", "true"),
        // Maps become JSON with every scalar a string and keys sorted, as Go writes them.
        ("PLUGIN_BUILD_ARGS", r#"{"DEBUG":"false","VERSION":"1.2"}"#),
        ("PLUGIN_TAGS", "latest,1.2.0,3"),
        ("PLUGIN_EMPTY", ""),
        ("PLUGIN_PLATFORMS", "linux/amd64,linux/arm64"),
        // camelCase is not split, only upper-cased.
        ("PLUGIN_ANINT", "42"),
        // Numbers keep their text: 1.20 is not 1.2.
        ("PLUGIN_VERSION", "1.20"),
        ("PLUGIN_LIST_OF_MAPS", r#"[{"a":"1"},{"b":["x","y"]}]"#),
        ("PLUGIN_HEADERS", r#"{"Accept":"json","Authorization":"((secret:api_token))"}"#),
    ]
    .into_iter()
    .collect();
    assert_eq!(own_environment(publish), expected);
    assert_eq!(
        publish.secrets,
        [
            SecretReference { env: "PLUGIN_PASSWORD".into(), secret: "docker_password".into(), embedded: false },
            SecretReference { env: "PLUGIN_HEADERS".into(), secret: "api_token".into(), embedded: true },
        ]
    );
    assert_eq!(publish.kind, pipeline::plan::StepKind::Plugin);
}

#[test]
fn drone_settings_are_upper_cased_without_replacing_dashes() {
    let yaml =
        "kind: pipeline\nsteps:\n- name: p\n  image: plugins/s3\n  settings:\n    strip_prefix: dist/\n    cache-control: max-age=60\n";
    let workflow = plan(".drone.yml", yaml, Context::default());
    let environment = own_environment(step(&workflow, "p"));
    assert_eq!(environment.get("PLUGIN_STRIP_PREFIX"), Some(&"dist/"));
    assert_eq!(environment.get("PLUGIN_CACHE-CONTROL"), Some(&"max-age=60"));
}

#[test]
fn environment_values_and_secrets() {
    let yaml = "steps:\n  test:\n    image: alpine\n    environment:\n      CGO_ENABLED: 0\n      GOFLAGS: -mod=vendor\n      FEATURES: [a, b]\n      COUNTRY: NO\n      TOKEN:\n        from_secret: api_token\n    commands: [env]\n";
    let workflow = plan(".woodpecker.yml", yaml, Context::default());
    let test = step(&workflow, "test");
    let expected: BTreeMap<&str, &str> =
        [("CGO_ENABLED", "0"), ("GOFLAGS", "-mod=vendor"), ("FEATURES", "a,b"), ("COUNTRY", "NO")].into_iter().collect();
    assert_eq!(own_environment(test), expected);
    assert_eq!(test.secrets, [SecretReference { env: "TOKEN".into(), secret: "api_token".into(), embedded: false }]);
    assert_eq!(test.kind, pipeline::plan::StepKind::Commands);
}

#[test]
fn builtin_variables_of_both_dialects() {
    let context = Context {
        event: "tag".into(),
        tag: Some("v1.4.2-rc.1".into()),
        branch: "main".into(),
        commit_sha: "abc123".into(),
        repo: "acme/app".into(),
        repo_url: "https://git.example.com/acme/app".into(),
        pipeline_number: 7,
        ..Context::default()
    };
    let woodpecker = plan(".woodpecker/build.yml", "steps:\n  a: {image: alpine, commands: [env]}\n", context.clone());
    let env = &woodpecker.environment;
    for (key, value) in [
        ("CI", "woodpecker"),
        ("CI_REPO", "acme/app"),
        ("CI_REPO_OWNER", "acme"),
        ("CI_REPO_NAME", "app"),
        ("CI_COMMIT_SHA", "abc123"),
        ("CI_COMMIT_TAG", "v1.4.2-rc.1"),
        ("CI_COMMIT_REF", "refs/tags/v1.4.2-rc.1"),
        ("CI_PIPELINE_EVENT", "tag"),
        ("CI_PIPELINE_NUMBER", "7"),
        ("CI_WORKFLOW_NAME", "build"),
        ("CI_WORKSPACE", "/woodpecker/src/git.example.com/acme/app"),
        ("CI_COMMIT_URL", "https://git.example.com/acme/app/commit/abc123"),
        ("DRONE_TAG", "v1.4.2-rc.1"),
        ("DRONE_BUILD_EVENT", "tag"),
        ("DRONE_SEMVER_MAJOR", "1"),
        ("DRONE_SEMVER_PRERELEASE", "rc.1"),
    ] {
        assert_eq!(env.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(step(&woodpecker, "a").environment["CI_STEP_NAME"], "a");
    let drone = plan(".drone.yml", "kind: pipeline\nname: ci\nsteps:\n- name: a\n  image: alpine\n  commands: [env]\n", context);
    assert_eq!(drone.environment["CI"], "true");
    assert_eq!(drone.environment["DRONE_STAGE_NAME"], "ci");
    assert_eq!(drone.environment["DRONE_WORKSPACE"], "/drone/src");
    assert_eq!(drone.workspace.directory(), "/drone/src");
}

#[test]
fn workspace_and_working_directory() {
    let yaml = "workspace: {base: /go, path: src/example.com/app}\nsteps:\n  a: {image: golang, commands: [go test], directory: cmd/app}\n  b: {image: golang, commands: [ls], directory: /tmp}\n";
    let workflow = plan(".woodpecker.yml", yaml, Context::default());
    assert_eq!(workflow.workspace.directory(), "/go/src/example.com/app");
    assert_eq!(step(&workflow, "a").working_dir, "/go/src/example.com/app/cmd/app");
    assert_eq!(step(&workflow, "b").working_dir, "/tmp");
}

#[test]
fn substitution_uses_context_and_matrix_and_keeps_escapes() {
    let yaml = "matrix:\n  GO: ['1.22', '1.23']\nsteps:\n  test:\n    image: golang:${GO}\n    commands:\n      - echo ${CI_COMMIT_SHA:0:7} ${CI_COMMIT_BRANCH^^}\n      - echo $${HOME} $HOME\n";
    let context = Context { commit_sha: "0123456789abcdef".into(), branch: "dev".into(), ..Context::default() };
    let plan = plan_files(&[SourceFile::new(".woodpecker.yml", yaml)], &context, CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let images: Vec<_> = plan.workflows.iter().map(|w| step(w, "test").image.clone().unwrap()).collect();
    assert_eq!(images, ["golang:1.22", "golang:1.23"]);
    assert_eq!(step(&plan.workflows[0], "test").commands, ["echo 0123456 DEV", "echo ${HOME} $HOME"]);
    assert_eq!(plan.workflows[0].matrix.as_ref().unwrap()["GO"], "1.22");
    assert_eq!(plan.workflows[0].environment["GO"], "1.22");
}

#[test]
fn drone_volumes_resolve_to_host_paths_and_workflow_volumes() {
    let yaml = "kind: pipeline\nname: ci\nvolumes:\n- name: sock\n  host: {path: /var/run/docker.sock}\n- name: cache\n  temp: {}\nsteps:\n- name: a\n  image: docker\n  volumes:\n  - name: sock\n    path: /var/run/docker.sock\n  - name: cache\n    path: /root/.cache\n  commands: [docker ps]\n";
    let workflow = plan(".drone.yml", yaml, Context::default());
    assert_eq!(step(&workflow, "a").container.volumes, ["/var/run/docker.sock:/var/run/docker.sock", "cache:/root/.cache"]);
    assert_eq!(workflow.volumes, ["cache"]);
}

#[test]
fn a_drone_mount_of_an_undeclared_volume_is_ignored_with_a_warning_as_drone_does() {
    // Real pipelines declare a `gopath` temp volume in their first pipeline only and mount it
    // in the next ones too; Drone's runner skips such a mount silently.
    let yaml = "kind: pipeline\nname: first\nvolumes:\n- name: gopath\n  temp: {}\nsteps:\n- name: a\n  image: golang\n  volumes:\n  - name: gopath\n    path: /go\n  commands: [go build]\n---\nkind: pipeline\nname: second\nsteps:\n- name: b\n  image: golang\n  volumes:\n  - name: gopath\n    path: /go\n  commands: [go test]\n";
    let plan = plan_files(&[SourceFile::new(".drone.yml", yaml)], &Context::default(), CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    assert!(plan.workflows[1].steps.iter().find(|s| s.name == "b").unwrap().container.volumes.is_empty());
    let warning = plan.diagnostics.iter().find(|d| d.message.contains("`gopath`")).unwrap();
    assert_eq!(warning.severity, pipeline::Severity::Warning);
    assert_eq!(warning.line, 19, "{warning:?}");
    assert!(warning.message.ends_with("which the pipeline does not declare; the mount is ignored, as Drone does"), "{warning:?}");
}
