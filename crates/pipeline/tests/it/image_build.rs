//! Image build steps: builder plugins' settings and Gantry's `build:` key become one
//! `ImageBuild` that the agent runs itself (no plugin container, nothing privileged); what Gantry
//! cannot honour is said at the setting's own line, and then the plugin runs as it always did.

use pipeline::image_build::ImageBuild;
use pipeline::plan::{StepKind, StepPlan};
use pipeline::{CompileOptions, Context, Diagnostic, Plan, Severity, SourceFile, plan_files};

fn plan_with(path: &str, yaml: &str, context: &Context) -> Plan {
    plan_files(&[SourceFile::new(path, yaml)], context, CompileOptions::default())
}

fn step<'a>(plan: &'a Plan, name: &str) -> &'a StepPlan {
    plan.workflows[0].steps.iter().find(|step| step.name == name).unwrap_or_else(|| panic!("no step {name}: {plan:#?}"))
}

fn build<'a>(plan: &'a Plan, name: &str) -> &'a ImageBuild {
    let step = step(plan, name);
    assert_eq!(step.kind, StepKind::Build, "{step:#?}");
    step.build.as_ref().unwrap_or_else(|| panic!("no build: {step:#?}"))
}

fn push_to_main() -> Context {
    Context {
        event: "push".into(),
        branch: "main".into(),
        reference: "refs/heads/main".into(),
        default_branch: "main".into(),
        commit_sha: "4f1c2a9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a39".into(),
        repo: "acme/app".into(),
        ..Context::default()
    }
}

fn tag(name: &str) -> Context {
    Context { event: "tag".into(), tag: Some(name.into()), reference: format!("refs/tags/{name}"), branch: String::new(), ..push_to_main() }
}

fn messages(diagnostics: &[Diagnostic], severity: Severity) -> Vec<String> {
    diagnostics.iter().filter(|d| d.severity == severity).map(|d| format!("{}:{} {}", d.line, d.column, d.message)).collect()
}

const DRONE_DOCKER: &str = r#"kind: pipeline
type: docker
name: default
steps:
  - name: publish
    image: plugins/docker:20
    privileged: true
    settings:
      repo: 127.0.0.1:5000/acme/app
      tags: [latest, "${DRONE_COMMIT_SHA:0:8}"]
      dockerfile: docker/Dockerfile
      build_args: [VERSION=1.2, "DEBUG=false"]
      target: runtime
      username: ci
      password:
        from_secret: registry_password
      no_cache: true
      purge: false
"#;

#[test]
fn plugins_docker_settings_become_a_build_gantry_runs_without_privileges() {
    let plan = plan_with(".drone.yml", DRONE_DOCKER, &push_to_main());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let publish = step(&plan, "publish");
    assert_eq!(publish.image, None, "no plugin container is started");
    assert!(!publish.container.privileged, "a native build needs no privileges");
    let build = build(&plan, "publish");
    assert_eq!(build.plugin.as_deref(), Some("plugins/docker:20"));
    assert_eq!(build.context, "/drone/src");
    assert_eq!(build.dockerfile, "docker/Dockerfile");
    assert_eq!(build.references(), ["127.0.0.1:5000/acme/app:latest", "127.0.0.1:5000/acme/app:4f1c2a9e"]);
    assert_eq!(build.build_args.get("VERSION").map(String::as_str), Some("1.2"));
    assert_eq!(build.target.as_deref(), Some("runtime"));
    assert!(build.push && build.no_cache && !build.purge);
    let login = build.login.as_ref().unwrap();
    assert_eq!(
        (login.registry.as_str(), login.username_variable.as_str(), login.password_variable.as_str()),
        ("127.0.0.1:5000", "PLUGIN_USERNAME", "PLUGIN_PASSWORD")
    );
    // The password stays a secret reference; its value is never in the plan.
    assert!(publish.secrets.iter().any(|secret| secret.env == "PLUGIN_PASSWORD" && secret.secret == "registry_password"));
    // `privileged` is said to be unneeded, and nothing asks for trust.
    let notes = messages(&plan.diagnostics, Severity::Note);
    assert!(notes.iter().any(|note| note.contains("image build Gantry runs itself: `privileged` is not needed")), "{notes:?}");
    assert!(!plan.diagnostics.iter().any(|d| d.code == "needs-trust"), "{:#?}", plan.diagnostics);
}

#[test]
fn auto_tag_follows_plugins_docker_for_tags_the_default_branch_and_other_branches() {
    let yaml =
        "steps:\n  image:\n    image: woodpeckerci/plugin-docker-buildx\n    settings:\n      repo: acme/app\n      auto_tag: true\n";
    let on_tag = plan_with(".woodpecker.yml", yaml, &tag("v1.4.2"));
    assert_eq!(build(&on_tag, "image").tags, ["1", "1.4", "1.4.2"]);
    let zero = plan_with(".woodpecker.yml", yaml, &tag("0.3.1"));
    assert_eq!(build(&zero, "image").tags, ["0.3", "0.3.1"]);
    let prerelease = plan_with(".woodpecker.yml", yaml, &tag("v2.0.0-rc.1"));
    assert_eq!(build(&prerelease, "image").tags, ["2.0.0-rc.1"]);
    let main = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert_eq!(build(&main, "image").tags, ["latest"]);

    let feature = Context { branch: "feature/x".into(), reference: "refs/heads/feature/x".into(), ..push_to_main() };
    let plan = plan_with(".woodpecker.yml", yaml, &feature);
    let skipped = step(&plan, "image");
    assert!(skipped.skipped, "{skipped:#?}");
    assert!(skipped.skip_reason.as_deref().unwrap().contains("only tags and the default branch"), "{skipped:#?}");

    let suffixed = yaml.replace("auto_tag: true", "auto_tag: true\n      auto_tag_suffix: alpine");
    assert_eq!(build(&plan_with(".woodpecker.yml", &suffixed, &tag("v1.4.2")), "image").tags, ["1-alpine", "1.4-alpine", "1.4.2-alpine"]);
    assert_eq!(build(&plan_with(".woodpecker.yml", &suffixed, &push_to_main()), "image").tags, ["alpine"]);

    let not_semver = plan_with(".woodpecker.yml", yaml, &tag("release-7"));
    let errors = messages(&not_semver.diagnostics, Severity::Error);
    assert!(errors.iter().any(|error| error.contains("tag `release-7` is not a semantic version")), "{errors:?}");
}

#[test]
fn tags_files_are_read_when_the_step_runs() {
    // plugins/docker reads `.tags` when `tags` is not set, and builds `latest` without one.
    let drone =
        "kind: pipeline\nname: default\nsteps:\n  - name: publish\n    image: plugins/docker\n    settings:\n      repo: acme/app\n";
    let plan = plan_with(".drone.yml", drone, &push_to_main());
    let tags_file = build(&plan, "publish").tags_file.clone().unwrap();
    assert_eq!((tags_file.path.as_str(), tags_file.required), ("/drone/src/.tags", false));
    // buildx's `tags_file` is a file the step needs.
    let woodpecker = "steps:\n  image:\n    image: woodpeckerci/plugin-docker-buildx\n    directory: web\n    settings:\n      repo: acme/web\n      tags_file: .tags\n";
    let plan = plan_with(".woodpecker.yml", woodpecker, &push_to_main());
    let build = build(&plan, "image");
    assert_eq!(build.context, format!("{}/web", plan.workflows[0].workspace.directory()));
    assert_eq!(build.tags_file.as_ref().unwrap().path, format!("{}/web/.tags", plan.workflows[0].workspace.directory()));
    assert!(build.tags_file.as_ref().unwrap().required);
}

#[test]
fn a_tag_made_of_a_variable_empty_on_this_event_is_left_out() {
    // A release workflow tags with the git tag; planned for a push, that variable is empty.
    let yaml = "steps:\n  image:\n    image: woodpeckerci/plugin-docker-buildx:5\n    settings:\n      repo: acme/web\n      tags: [latest, \"${CI_COMMIT_TAG##v}\"]\n";
    let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert!(plan.diagnostics.is_empty(), "{:#?}", plan.diagnostics);
    assert_eq!(build(&plan, "image").tags, ["latest"]);
    let plan = plan_with(".woodpecker.yml", yaml, &tag("v1.4.0"));
    assert_eq!(build(&plan, "image").tags, ["latest", "1.4.0"]);
}

#[test]
fn secret_build_arguments_arrive_through_the_environment_and_never_as_values() {
    let yaml = r#"steps:
  image:
    image: woodpeckerci/plugin-docker-buildx:5
    environment:
      GIT_TOKEN:
        from_secret: git_token
    settings:
      repo: registry.example.com/acme/app
      build_args:
        VERSION: "1.0"
        NPM_TOKEN:
          from_secret: npm_token
      build_args_from_env: [GIT_TOKEN]
"#;
    let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let image = step(&plan, "image");
    let build = build(&plan, "image");
    assert_eq!(build.build_args_from_env.get("NPM_TOKEN").map(String::as_str), Some("GANTRY_BUILD_ARG_NPM_TOKEN"));
    assert_eq!(build.build_args_from_env.get("GIT_TOKEN").map(String::as_str), Some("GIT_TOKEN"));
    assert!(image.secrets.iter().any(|secret| secret.env == "GANTRY_BUILD_ARG_NPM_TOKEN" && secret.secret == "npm_token"));
    assert!(!build.build_args.contains_key("NPM_TOKEN"));
    // Both work, but the engine keeps build arguments in the image's history: the author is told.
    let warnings = messages(&plan.diagnostics, Severity::Warning);
    for (argument, secret) in [("NPM_TOKEN", "npm_token"), ("GIT_TOKEN", "git_token")] {
        let expected = format!("build argument `{argument}` holds secret `{secret}`: the engine's builder records");
        assert!(warnings.iter().any(|warning| warning.contains(&expected)), "{warnings:?}");
    }
}

#[test]
fn settings_gantry_cannot_use_are_named_at_their_line() {
    let yaml = "steps:\n  image:\n    image: plugins/docker\n    settings:\n      repo: acme/app\n      storage_driver: vfs\n      dockerfle: Dockerfile\n      cache_to: type=registry\n";
    let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let warnings = messages(&plan.diagnostics, Severity::Warning);
    assert!(
        warnings.contains(
            &"6:7 `settings.storage_driver` configures the plugin's own Docker daemon, which Gantry does not start; it is ignored"
                .to_owned()
        ),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.starts_with("7:7 `settings.dockerfle` is not a setting")), "{warnings:?}");
    let typo = plan.diagnostics.iter().find(|d| d.message.contains("dockerfle")).unwrap();
    assert_eq!(typo.hint.as_deref(), Some("did you mean `dockerfile`?"));
    assert!(warnings.iter().any(|w| w.starts_with("8:7 `settings.cache_to` is ignored")), "{warnings:?}");
}

#[test]
fn settings_only_the_plugin_can_honour_keep_the_plugin_container() {
    let yaml = "steps:\n  image:\n    image: woodpeckerci/plugin-docker-buildx\n    privileged: true\n    settings:\n      repo: acme/app\n      platforms: linux/amd64,linux/arm64\n      storage_driver: vfs\n";
    let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let image = step(&plan, "image");
    assert_eq!(image.kind, StepKind::Plugin, "{image:#?}");
    assert_eq!(image.image.as_deref(), Some("woodpeckerci/plugin-docker-buildx"));
    assert!(image.container.privileged);
    let warnings = messages(&plan.diagnostics, Severity::Warning);
    assert_eq!(warnings.len(), 1, "only the reason for the fallback is said: {warnings:?}");
    assert!(warnings[0].starts_with("7:7 `settings.platforms`: it asks for 2 platforms"), "{warnings:?}");
    // It is the old plugin step again, so it needs trust as before.
    assert!(plan.diagnostics.iter().any(|d| d.code == "needs-trust"), "{:#?}", plan.diagnostics);
}

#[test]
fn registry_variants_prefix_their_registry_and_log_in_their_way() {
    let gcr = "steps:\n  image:\n    image: plugins/gcr\n    settings:\n      repo: acme-project/app\n      json_key:\n        from_secret: gcr_key\n";
    let plan = plan_with(".woodpecker.yml", gcr, &push_to_main());
    let build = build(&plan, "image");
    assert_eq!(build.repositories, ["gcr.io/acme-project/app"]);
    let login = build.login.as_ref().unwrap();
    assert_eq!(login.password_variable, "PLUGIN_JSON_KEY");
    assert_eq!(step(&plan, "image").environment[&login.username_variable], "_json_key");
    // plugins/ecr logs in with AWS keys, which Gantry cannot exchange: it stays a plugin.
    let ecr = "steps:\n  image:\n    image: plugins/ecr\n    settings:\n      repo: app\n      access_key:\n        from_secret: aws_key\n";
    assert_eq!(step(&plan_with(".woodpecker.yml", ecr, &push_to_main()), "image").kind, StepKind::Plugin);
}

#[test]
fn the_native_form_builds_from_the_build_key() {
    let yaml = r#"steps:
  - name: image
    build:
      context: app
      dockerfile: app/Dockerfile
      image: [127.0.0.1:5000/acme/app, 127.0.0.1:5000/acme/app-mirror]
      tags: [latest, "${CI_COMMIT_SHA:0:7}"]
      args: {VERSION: "2"}
      labels: {team: payments}
      push: false
"#;
    let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
    assert!(plan.diagnostics.is_empty(), "{:#?}", plan.diagnostics);
    let build = build(&plan, "image");
    assert_eq!(build.plugin, None);
    assert!(build.context.ends_with("/app"), "{build:#?}");
    assert_eq!(build.dockerfile, "Dockerfile");
    assert_eq!(build.references().len(), 4);
    assert_eq!(build.tags[1], "4f1c2a9");
    assert!(!build.push && !build.purge);
    assert_eq!(build.labels["team"], "payments");
    assert_eq!(build.login, None, "native builds push with the repository's registry credentials");
}

#[test]
fn mistakes_in_a_build_step_are_errors_with_a_line() {
    let cases: &[(&str, &str)] = &[
        ("steps:\n  image:\n    build:\n      tags: [latest]\n", "3:5 image build step `image` names no image: `build.image` is missing"),
        (
            "steps:\n  image:\n    image: alpine\n    build:\n      image: acme/app\n",
            "4:5 step `image` builds an image, so it takes no `image`",
        ),
        ("steps:\n  image:\n    build:\n      image: Acme/App:1\n", "4:7 `build.image`: `Acme/App:1` is not an image repository name"),
        (
            "steps:\n  image:\n    build:\n      image: acme/app\n      tags: [\"-bad\"]\n",
            "5:7 `build.tags`: `-bad` is not a valid image tag",
        ),
        (
            "steps:\n  image:\n    build:\n      image: acme/app\n      context: app\n",
            "3:5 the Dockerfile `Dockerfile` is outside the build context `app`",
        ),
        ("steps:\n  image:\n    build:\n      image: acme/app\n      push: maybe\n", "5:7 `build.push` must be `true` or `false`"),
    ];
    for (yaml, expected) in cases {
        let plan = plan_with(".woodpecker.yml", yaml, &push_to_main());
        let errors = messages(&plan.diagnostics, Severity::Error);
        assert!(errors.iter().any(|error| error == expected), "{yaml}\nexpected {expected:?} in {errors:?}");
    }
}
