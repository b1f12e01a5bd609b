//! Image build steps end to end on the real engine and the test registries: a pipeline file is
//! planned and run by the runtime, the image is built from the workspace, pushed, pulled back
//! by digest and inspected. No step container runs and nothing is privileged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::{CompileOptions, Context, SourceFile, plan_files};
use runtime::{Event, PublishOptions, PublishedImage, RunOptions, RunSummary, Status, WorkspaceSource};
use tokio_util::sync::CancellationToken;

use backend_docker::LABEL_RUN;

use crate::support::{BUSYBOX, TestRun};

const OPEN_REGISTRY: &str = "127.0.0.1:5000";
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// Written by `scripts/registry-up.sh` as `user:password`.
const AUTH_CREDENTIALS_FILE: &str = "/var/lib/gantry-test/registry-auth/credentials";
/// Longest a test build may take before the test fails.
const CEILING: Duration = Duration::from_secs(120);

fn auth_registry_login() -> (String, String) {
    let text = std::fs::read_to_string(AUTH_CREDENTIALS_FILE)
        .unwrap_or_else(|error| panic!("{AUTH_CREDENTIALS_FILE}: {error}; run scripts/registry-up.sh"));
    let (username, password) = text.trim().split_once(':').expect("user:password");
    (username.to_owned(), password.to_owned())
}

/// A repository name in a test registry no other test (or run) uses.
fn repository(registry: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{registry}/gantry-it/{}-{}-{nanos}", test.replace('_', "-"), std::process::id())
}

fn context() -> Context {
    Context {
        event: "push".into(),
        branch: "main".into(),
        reference: "refs/heads/main".into(),
        default_branch: "main".into(),
        commit_sha: "4f1c2a9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a39".into(),
        repo: "acme/app".into(),
        repo_url: "https://git.example.com/acme/app".into(),
        pipeline_number: 42,
        ..Context::default()
    }
}

/// What a run reported.
#[derive(Default)]
struct Recorded {
    run_id: String,
    lines: Vec<(String, String)>,
    published: Vec<PublishedImage>,
}

impl Recorded {
    fn log_of(&self, step: &str) -> String {
        self.lines.iter().filter(|(name, _)| name == step).map(|(_, line)| format!("{line}\n")).collect()
    }
}

/// Plans `pipeline` (a `.woodpecker.yml`) with `files` as the repository, runs it on the real
/// engine and returns what it reported. `on_line` may cancel the run.
async fn run_pipeline(
    test: &TestRun,
    files: &[(&str, &str)],
    pipeline: &str,
    secrets: &[(&str, &str)],
    publish: PublishOptions,
    on_line: impl Fn(&str, &CancellationToken) + Send + Sync + 'static,
) -> (RunSummary, Recorded) {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    let plan = plan_files(&[SourceFile::new(".woodpecker.yml", pipeline)], &context(), CompileOptions::default());
    assert!(!plan.has_errors(), "{:#?}", plan.diagnostics);
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let cancel = CancellationToken::new();
    let sink = {
        let recorded = recorded.clone();
        let cancel = cancel.clone();
        move |event: Event| match event {
            Event::Log { step, line, .. } => {
                on_line(&line, &cancel);
                recorded.lock().unwrap().lines.push((step, line));
            }
            Event::ImagePublished { image, .. } => recorded.lock().unwrap().published.push(image),
            Event::RunStarted { run, .. } => recorded.lock().unwrap().run_id = run,
            _ => {}
        }
    };
    let options = RunOptions {
        parallel: 2,
        timeout: None,
        workspace: WorkspaceSource::WorkingTree(dir.path().to_path_buf()),
        secrets: secrets.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect::<BTreeMap<_, _>>(),
        publish,
    };
    let run = runtime::run_plan(&plan, test.backend.clone(), options, Arc::new(sink), cancel);
    let summary = tokio::time::timeout(CEILING, run).await.expect("the run ended within the ceiling").expect("the run");
    let recorded = std::mem::take(&mut *recorded.lock().unwrap());
    // Everything the run made (the build's helper container included) is gone.
    let run_label = vec![format!("{LABEL_RUN}={}", recorded.run_id)];
    let left = test.engine().list_labelled(&run_label).await.unwrap();
    if !left.is_empty() {
        let _ = test.engine().remove_labelled(&run_label).await;
        panic!("the run leaked: {left:#?}");
    }
    (summary, recorded)
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
}

fn step_status(summary: &RunSummary, step: &str) -> Status {
    summary.workflows[0].steps.iter().find(|summary| summary.name == step).unwrap_or_else(|| panic!("no step {step}")).status
}

/// Removes images a test pulled or kept, by name.
async fn remove_images(test: &TestRun, names: &[String]) {
    for name in names {
        let _ = test.engine().remove_image(name).await;
    }
}

#[tokio::test]
async fn a_build_step_pushes_labelled_images_and_reports_them_with_provenance() {
    let test = TestRun::new("build_push").await;
    let repository = repository(OPEN_REGISTRY, "build-push");
    let dockerfile = format!(
        "FROM {BUSYBOX} AS base\nARG VERSION=0\nRUN echo \"version $VERSION\" > /version\nFROM base AS runtime\nCOPY hello.txt /hello.txt\nFROM base AS unused\nRUN false\n"
    );
    let pipeline = format!(
        "steps:\n  - name: image\n    build:\n      context: app\n      dockerfile: app/Dockerfile\n      image: {repository}\n      tags: [latest, \"${{CI_COMMIT_SHA:0:8}}\"]\n      args: {{VERSION: \"7\"}}\n      target: runtime\n      labels: {{team: payments}}\n"
    );
    let files = [("app/Dockerfile", dockerfile.as_str()), ("app/hello.txt", "hello\n")];
    let (summary, recorded) = run_pipeline(&test, &files, &pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "image"), Status::Success, "{}", recorded.log_of("image"));

    assert_eq!(recorded.published.len(), 1, "{:#?}", recorded.published);
    let image = &recorded.published[0];
    assert_eq!(image.repository, repository);
    assert_eq!(image.tags, ["latest", "4f1c2a9e"]);
    assert!(image.digest.starts_with("sha256:") && image.digest.len() == 71, "{}", image.digest);
    let statement = image.provenance.as_ref().expect("a provenance statement");
    assert_eq!(statement["subject"][0]["name"], repository.as_str());
    assert_eq!(statement["subject"][0]["digest"]["sha256"], &image.digest["sha256:".len()..]);
    assert_eq!(statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"], context().commit_sha.as_str());
    assert_eq!(statement["predicate"]["buildDefinition"]["externalParameters"]["trigger"], "push");

    // The statement is in the registry too, an artifact referring to the image.
    let attestation = image.provenance_digest.clone().expect("the provenance was attached");
    let registry = registry::Registry::new();
    let referrers = registry.referrers(&repository, &image.digest, None).await.unwrap();
    let listed = referrers.iter().find(|referrer| referrer.digest == attestation).expect("the attestation is a referrer of the image");
    assert_eq!(listed.artifact_type.as_deref(), Some("application/vnd.in-toto+json"));
    let artifact = registry.fetch_manifest(&repository, &attestation, None).await.unwrap();
    let pushed: serde_json::Value =
        serde_json::from_slice(&registry.fetch_blob(&repository, &artifact.layers[0], None).await.unwrap()).unwrap();
    assert_eq!(&pushed, statement);

    // The image in the registry is what was asked: pulled back by digest, with its labels,
    // built to the `runtime` stage with the build argument.
    let pinned = format!("{repository}@{}", image.digest);
    remove_images(&test, &[format!("{repository}:latest"), format!("{repository}:4f1c2a9e")]).await;
    test.engine().pull_image(&pinned).await.expect("pull by digest");
    let details = test.engine().inspect_image(&pinned).await.unwrap();
    assert_eq!(details.labels["org.opencontainers.image.revision"], context().commit_sha);
    assert_eq!(details.labels["org.opencontainers.image.source"], "https://git.example.com/acme/app");
    assert_eq!(details.labels["io.gantry.repo"], "acme/app");
    assert_eq!(details.labels["io.gantry.build"], "42");
    assert_eq!(details.labels["io.gantry.pipeline"], ".woodpecker.yml");
    assert_eq!(details.labels["team"], "payments");
    assert!(details.labels.contains_key("org.opencontainers.image.created"));
    let log = recorded.log_of("image");
    assert!(!log.contains("RUN false"), "the `unused` stage past the target is not built:\n{log}");
    remove_images(&test, &[pinned]).await;
}

#[tokio::test]
async fn a_wrong_password_fails_the_push_clearly_and_never_shows_the_password() {
    let test = TestRun::new("build_auth").await;
    let repository = repository(AUTH_REGISTRY, "build-auth");
    let (username, password) = auth_registry_login();
    let pipeline = format!(
        "steps:\n  - name: publish\n    image: plugins/docker\n    settings:\n      repo: {repository}\n      tags: v1\n      username: {username}\n      password:\n        from_secret: registry_password\n"
    );
    let dockerfile = format!("FROM {BUSYBOX}\nRUN echo built\n");
    let files = [("Dockerfile", dockerfile.as_str())];
    let wrong = "not-the-Passw0rd-of-the-registry";
    let (summary, recorded) =
        run_pipeline(&test, &files, &pipeline, &[("registry_password", wrong)], PublishOptions::default(), |_, _| {}).await;
    let log = recorded.log_of("publish");
    assert_eq!(step_status(&summary, "publish"), Status::Failure, "{log}");
    assert!(log.contains(AUTH_REGISTRY) && log.to_lowercase().contains("auth"), "the error names the registry and the refusal:\n{log}");
    assert!(!log.contains(wrong), "the password leaked:\n{log}");
    assert!(recorded.published.is_empty());

    let (summary, recorded) =
        run_pipeline(&test, &files, &pipeline, &[("registry_password", &password)], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "publish"), Status::Success, "{}", recorded.log_of("publish"));
    assert_eq!(recorded.published[0].tags, ["v1"]);
    assert!(!recorded.log_of("publish").contains(&password));
}

#[tokio::test]
async fn the_run_registries_log_in_when_the_step_names_no_credentials() {
    let test = TestRun::new("build_registries").await;
    let repository = repository(AUTH_REGISTRY, "build-registries");
    let (username, password) = auth_registry_login();
    let pipeline = format!("steps:\n  - name: image\n    build:\n      image: {repository}\n      purge: true\n");
    let dockerfile = format!("FROM {BUSYBOX}\n");
    let publish = PublishOptions {
        registries: vec![runtime::RegistryCredential { host: AUTH_REGISTRY.into(), username, password: password.clone() }],
        ..PublishOptions::default()
    };
    let (summary, recorded) = run_pipeline(&test, &[("Dockerfile", dockerfile.as_str())], &pipeline, &[], publish, |_, _| {}).await;
    assert_eq!(step_status(&summary, "image"), Status::Success, "{}", recorded.log_of("image"));
    assert_eq!(recorded.published.len(), 1);
    // `purge` removed the tags from the engine once pushed.
    assert!(!test.engine().image_exists(&format!("{repository}:latest")).await.unwrap());
}

#[tokio::test]
async fn a_failing_run_line_fails_the_step_with_its_output() {
    let test = TestRun::new("build_run_fails").await;
    let dockerfile = format!("FROM {BUSYBOX}\nRUN echo the-marker-line && exit 3\n");
    let pipeline = "steps:\n  - name: image\n    build:\n      image: gantry-it/never-pushed\n      push: false\n";
    let (summary, recorded) =
        run_pipeline(&test, &[("Dockerfile", &dockerfile)], pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    let log = recorded.log_of("image");
    assert_eq!(step_status(&summary, "image"), Status::Failure, "{log}");
    assert!(log.contains("the-marker-line"), "{log}");
    assert!(log.contains("returned a non-zero code: 3"), "{log}");
}

#[tokio::test]
async fn a_dockerfile_syntax_error_names_its_line() {
    let test = TestRun::new("build_syntax").await;
    let dockerfile = format!("FROM {BUSYBOX}\nRUN true\nFROBNICATE everything\n");
    let pipeline = "steps:\n  - name: image\n    build:\n      image: gantry-it/never-pushed\n      push: false\n";
    let (summary, recorded) =
        run_pipeline(&test, &[("Dockerfile", &dockerfile)], pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    let log = recorded.log_of("image");
    assert_eq!(step_status(&summary, "image"), Status::Failure, "{log}");
    assert!(log.contains("line 3"), "{log}");
    assert!(log.to_lowercase().contains("frobnicate"), "{log}");
}

#[tokio::test]
async fn cancelling_stops_the_build_and_leaves_nothing_running() {
    let test = TestRun::new("build_cancel").await;
    let marker = format!("gantry-cancel-{}", std::process::id());
    let dockerfile = format!("FROM {BUSYBOX}\nRUN echo {marker} started && sleep 300\n");
    let pipeline = "steps:\n  - name: image\n    build:\n      image: gantry-it/never-pushed\n      push: false\n      no_cache: true\n";
    let started = std::time::Instant::now();
    let seen = marker.clone();
    let (summary, recorded) =
        run_pipeline(&test, &[("Dockerfile", &dockerfile)], pipeline, &[], PublishOptions::default(), move |line, cancel| {
            if line.contains(&format!("{seen} started")) {
                cancel.cancel();
            }
        })
        .await;
    assert_eq!(step_status(&summary, "image"), Status::Killed, "{}", recorded.log_of("image"));
    assert!(started.elapsed() < Duration::from_secs(100), "the build was not stopped");
    // The engine removes the build's container once the connection closes: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = std::process::Command::new("docker").args(["ps", "--no-trunc", "--format", "{{.Command}}"]).output().unwrap();
        if !String::from_utf8_lossy(&listed.stdout).contains(&marker) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cancelled build's container still runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_second_build_of_the_same_context_uses_the_layer_cache() {
    let test = TestRun::new("build_cache").await;
    let unique =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let dockerfile = format!("FROM {BUSYBOX}\nRUN echo {unique} > /unique\nCOPY data.txt /data.txt\n");
    let pipeline = "steps:\n  - name: image\n    build:\n      image: gantry-it/cache\n      push: false\n";
    let files = [("Dockerfile", dockerfile.as_str()), ("data.txt", "data\n")];
    let (first, recorded) = run_pipeline(&test, &files, pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&first, "image"), Status::Success);
    assert!(!recorded.log_of("image").contains("Using cache"), "{}", recorded.log_of("image"));
    let (second, recorded) = run_pipeline(&test, &files, pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&second, "image"), Status::Success);
    let log = recorded.log_of("image");
    assert_eq!(log.matches("Using cache").count(), 2, "both the RUN and the COPY come from the cache:\n{log}");
    remove_images(&test, &["gantry-it/cache:latest".to_owned()]).await;
}

#[tokio::test]
async fn secret_build_arguments_are_masked_in_the_build_output() {
    let test = TestRun::new("build_secret").await;
    let dockerfile = format!("FROM {BUSYBOX}\nARG NPM_TOKEN\nRUN echo \"token=$NPM_TOKEN\"\n");
    let pipeline = "steps:\n  - name: image\n    image: woodpeckerci/plugin-docker-buildx\n    settings:\n      repo: gantry-it/secret\n      dry_run: true\n      no_cache: true\n      build_args:\n        NPM_TOKEN:\n          from_secret: npm_token\n";
    let secret = "npm-s3cr3t-value-for-the-test";
    let (summary, recorded) =
        run_pipeline(&test, &[("Dockerfile", &dockerfile)], pipeline, &[("npm_token", secret)], PublishOptions::default(), |_, _| {}).await;
    let log = recorded.log_of("image");
    assert_eq!(step_status(&summary, "image"), Status::Success, "{log}");
    assert!(log.contains("token=********"), "{log}");
    assert!(!log.contains(secret), "{log}");
    remove_images(&test, &["gantry-it/secret:latest".to_owned()]).await;
}

#[tokio::test]
async fn an_earlier_step_writes_the_tags_file_the_build_pushes() {
    let test = TestRun::new("build_tags_file").await;
    let repository = repository(OPEN_REGISTRY, "tags-file");
    let pipeline = format!(
        "steps:\n  - name: tags\n    image: {BUSYBOX}\n    commands:\n      - echo -n 'a1,b2' > .tags\n  - name: publish\n    image: plugins/docker\n    settings:\n      repo: {repository}\n"
    );
    let dockerfile = format!("FROM {BUSYBOX}\n");
    let (summary, recorded) =
        run_pipeline(&test, &[("Dockerfile", dockerfile.as_str())], &pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "publish"), Status::Success, "{}{}", recorded.log_of("tags"), recorded.log_of("publish"));
    assert_eq!(recorded.published[0].tags, ["a1", "b2"]);
}

#[tokio::test]
async fn the_dockerignore_of_the_context_keeps_files_out_of_the_build() {
    let test = TestRun::new("build_dockerignore").await;
    let dockerfile = format!("FROM {BUSYBOX}\nCOPY . /context\nRUN find /context -type f | sort\n");
    let files = [
        ("Dockerfile", dockerfile.as_str()),
        (".dockerignore", "# what the image must not hold\n.env\nnode_modules\n*.log\n!keep.log\n"),
        (".env", "SECRET=do-not-ship\n"),
        ("node_modules/left/index.js", "x\n"),
        ("debug.log", "noise\n"),
        ("keep.log", "wanted\n"),
        ("src/main.js", "code\n"),
    ];
    let pipeline = "steps:\n  - name: image\n    build:\n      image: gantry-it/dockerignore\n      push: false\n      no_cache: true\n";
    let (summary, recorded) = run_pipeline(&test, &files, pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    let log = recorded.log_of("image");
    assert_eq!(step_status(&summary, "image"), Status::Success, "{log}");
    for sent in ["/context/src/main.js", "/context/keep.log", "/context/Dockerfile", "/context/.dockerignore"] {
        assert!(log.contains(sent), "{sent} is in the context:\n{log}");
    }
    for kept_out in ["/context/.env", "node_modules", "/context/debug.log"] {
        assert!(!log.contains(kept_out), "{kept_out} is left out:\n{log}");
    }
    remove_images(&test, &["gantry-it/dockerignore:latest".to_owned()]).await;
}

#[tokio::test]
async fn private_images_are_pulled_with_the_run_registries_for_steps_and_from_lines() {
    let test = TestRun::new("private_images").await;
    let (username, password) = auth_registry_login();
    let private = repository(AUTH_REGISTRY, "private-base");
    let reference = format!("{private}:base");
    let credentials = docker::RegistryCredentials { username: username.clone(), password: password.clone() };
    test.engine().tag_image(BUSYBOX, &reference).await.unwrap();
    test.engine().push_image(&private, "base", Some(&credentials)).await.unwrap();
    let pipeline = format!(
        "steps:\n  - name: private-step\n    image: {reference}\n    pull: always\n    commands: [echo ran in the private image]\n  - name: image\n    build:\n      image: gantry-it/from-private\n      push: false\n      pull: true\n"
    );
    let dockerfile = format!("FROM {reference}\nRUN echo built from the private image\n");
    let files = [("Dockerfile", dockerfile.as_str())];

    // Without credentials neither the step's image nor the `FROM` image can be had.
    test.engine().remove_image(&reference).await.unwrap();
    let (summary, recorded) = run_pipeline(&test, &files, &pipeline, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "private-step"), Status::Error, "{}", recorded.log_of("private-step"));

    let publish = PublishOptions {
        registries: vec![runtime::RegistryCredential { host: AUTH_REGISTRY.into(), username, password: password.clone() }],
        ..PublishOptions::default()
    };
    test.engine().remove_image(&reference).await.unwrap();
    let (summary, recorded) = run_pipeline(&test, &files, &pipeline, &[], publish.clone(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "private-step"), Status::Success, "{}", recorded.log_of("private-step"));
    assert!(recorded.log_of("private-step").contains("ran in the private image"));
    assert_eq!(step_status(&summary, "image"), Status::Success, "{}", recorded.log_of("image"));

    // The build's `FROM` pull needs them too (`pull: true` asks the registry every time).
    test.engine().remove_image(&reference).await.unwrap();
    let build_only = "steps:\n  - name: image\n    build:\n      image: gantry-it/from-private\n      push: false\n      pull: true\n";
    let (summary, recorded) = run_pipeline(&test, &files, build_only, &[], PublishOptions::default(), |_, _| {}).await;
    assert_eq!(step_status(&summary, "image"), Status::Failure, "{}", recorded.log_of("image"));
    let (summary, recorded) = run_pipeline(&test, &files, build_only, &[], publish, |_, _| {}).await;
    assert_eq!(step_status(&summary, "image"), Status::Success, "{}", recorded.log_of("image"));
    assert!(!recorded.log_of("image").contains(&password));
    remove_images(&test, &[reference, "gantry-it/from-private:latest".to_owned()]).await;
}
