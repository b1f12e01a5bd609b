//! Image builds, pushes and pulls with credentials: builds from a streamed context (build
//! args, a multi-stage target, labels, several names), a failing `RUN` and a Dockerfile that
//! does not parse, the layer cache shared by two builds, a build cancelled by dropping its
//! stream, a context read out of a container's volume, and images pushed to the test
//! registries of `scripts/registry-up.sh` (127.0.0.1:5000 open, 127.0.0.1:5001 htpasswd) and
//! pulled back by digest. Every Dockerfile starts `FROM` the local busybox with the test's
//! label, so that the intermediate containers and images of its builds carry it too.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use docker::{BuildEvent, BuildEvents, BuildOptions, ContainerSpec, DockerError, RegistryCredentials, VolumeMount};
use futures_util::{Stream, StreamExt};

use crate::support::{BUSYBOX, CEILING, TestResources, within};

/// The registry without authentication.
const OPEN_REGISTRY: &str = "127.0.0.1:5000";
/// The registry with htpasswd authentication; its user is in `AUTH_CREDENTIALS_FILE`.
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// Written by `scripts/registry-up.sh` as `user:password`.
const AUTH_CREDENTIALS_FILE: &str = "/var/lib/gantry-test/registry-auth/credentials";

/// The credentials of the registry with authentication.
fn registry_credentials() -> RegistryCredentials {
    let text = std::fs::read_to_string(AUTH_CREDENTIALS_FILE)
        .unwrap_or_else(|error| panic!("{AUTH_CREDENTIALS_FILE}: {error}; run scripts/registry-up.sh"));
    let (username, password) = text.trim().split_once(':').expect("user:password");
    RegistryCredentials { username: username.to_owned(), password: password.to_owned() }
}

/// The first lines of every test Dockerfile: the local busybox, and the test's label, which
/// each step's container and image inherit (cleanup finds them by it).
fn dockerfile_start(test: &TestResources) -> String {
    let (key, value) = test.labels().into_iter().next().expect("the test's label");
    format!("FROM {BUSYBOX} AS base\nLABEL {key}={value}\n")
}

/// A tar archive of `files`, streamed in small chunks as a workspace would be.
fn context(files: &[(&str, &str)]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, path, text.as_bytes()).unwrap();
    }
    let archive = Bytes::from(archive.into_inner().unwrap());
    let chunks: Vec<_> = archive.chunks(1000).map(|chunk| Ok(Bytes::copy_from_slice(chunk))).collect();
    futures_util::stream::iter(chunks)
}

/// What a build said and how it ended.
#[derive(Debug)]
struct Built {
    output: String,
    result: Result<String, DockerError>,
}

/// Reads a build to its end, within the ceiling.
async fn finish_build(mut events: BuildEvents) -> Built {
    let mut output = String::new();
    let mut result = Err(DockerError::BuildFailed { message: "the build's stream ended without an outcome".to_owned() });
    within("the build", async {
        while let Some(event) = events.next().await {
            match event {
                Ok(BuildEvent::Output(text)) => output.push_str(&text),
                Ok(BuildEvent::Status(_)) => {}
                Ok(BuildEvent::Built { image_id }) => result = Ok(image_id),
                Err(error) => result = Err(error),
            }
        }
    })
    .await;
    Built { output, result }
}

async fn build(test: &TestResources, files: &[(&str, &str)], options: BuildOptions) -> Built {
    finish_build(test.engine.build_image(context(files), options)).await
}

/// An image name of this test's own: `<registry>/gantry-docker-it/<test>:<tag>`, or without a
/// registry when `registry` is empty.
fn image_name(test: &TestResources, registry: &str, tag: &str) -> String {
    let name = test.name("image");
    if registry.is_empty() { format!("gantry-docker-it/{name}:{tag}") } else { format!("{registry}/gantry-docker-it/{name}:{tag}") }
}

#[tokio::test]
async fn a_multi_stage_build_stops_at_its_target_with_its_build_args_labels_and_names() {
    let test = TestResources::new("build-target").await;
    let dockerfile = format!(
        "{}ARG GREETING=unset\nRUN echo \"greeting=$GREETING\" > /greeting\nLABEL greeting=$GREETING\n\nFROM base AS broken\nRUN exit 9\n",
        dockerfile_start(&test)
    );
    let names = [image_name(&test, "", "first"), image_name(&test, "", "second")];
    let options = BuildOptions {
        dockerfile: "build/app.Dockerfile".to_owned(),
        tags: names.to_vec(),
        build_args: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        target: Some("base".to_owned()),
        labels: BTreeMap::from([("org.opencontainers.image.revision".to_owned(), "0123abc".to_owned())]),
        ..BuildOptions::default()
    };
    let built = build(&test, &[("build/app.Dockerfile", &dockerfile)], options).await;
    let image_id = built.result.unwrap_or_else(|error| panic!("{error}\n{}", built.output));
    assert!(built.output.contains("Step 1/"), "{}", built.output);
    assert!(!built.output.contains("exit 9"), "the stage after the target was built:\n{}", built.output);

    for name in &names {
        let details = within("inspect", test.engine.inspect_image(name)).await.unwrap();
        assert_eq!(details.id, image_id);
        assert_eq!(details.labels.get("greeting").map(String::as_str), Some("hello"), "{details:?}");
        assert_eq!(details.labels.get("org.opencontainers.image.revision").map(String::as_str), Some("0123abc"), "{details:?}");
        assert!(details.repo_tags.contains(name), "{details:?}");
        assert!(details.size > 0, "{details:?}");
    }
    // The arg reached the RUN step too.
    let (_, output, exit_code) = test.run(ContainerSpec { image: names[0].clone(), ..test.shell("reader", "cat /greeting") }).await;
    assert_eq!((output.stdout.as_str(), exit_code), ("greeting=hello\n", 0));
    test.finish().await;
}

#[tokio::test]
async fn a_failing_run_ends_the_build_with_its_output_and_exit_code_and_leaves_no_container() {
    let test = TestResources::new("build-run-fails").await;
    let dockerfile = format!("{}RUN echo about to fail && exit 3\n", dockerfile_start(&test));
    let built = build(&test, &[("Dockerfile", &dockerfile)], BuildOptions::default()).await;
    assert!(built.output.contains("about to fail"), "{}", built.output);
    match built.result {
        Err(DockerError::BuildFailed { message }) => {
            assert!(message.contains("returned a non-zero code: 3"), "{message}");
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    // The failed step's container is gone (the builder removes it whatever happened).
    assert!(within("listing", test.engine.list_containers(&test.filter())).await.unwrap().is_empty());
    test.finish().await;
}

#[tokio::test]
async fn a_dockerfile_that_does_not_parse_fails_with_its_line() {
    let test = TestResources::new("build-parse").await;
    let dockerfile = format!("{}FOO bar\n", dockerfile_start(&test));
    let built = build(&test, &[("Dockerfile", &dockerfile)], BuildOptions::default()).await;
    match built.result {
        Err(error @ DockerError::BuildFailed { .. }) => {
            let message = error.to_string();
            assert!(message.contains("line 3") && message.contains("FOO"), "{message}");
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    test.finish().await;
}

#[tokio::test]
async fn a_context_that_fails_midway_fails_the_build() {
    let test = TestResources::new("build-context-fails").await;
    let dockerfile = format!("{}COPY . /context/\n", dockerfile_start(&test));
    let whole: Vec<Bytes> = context(&[("Dockerfile", &dockerfile), ("big.txt", &"x".repeat(100_000))]).map(Result::unwrap).collect().await;
    // Half the archive, then the error a workspace read would give.
    let half = whole.len() / 2;
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = whole.into_iter().take(half).map(Ok).collect();
    chunks.push(Err(std::io::Error::other("the workspace could not be read")));
    let name = image_name(&test, "", "truncated");
    let built = finish_build(
        test.engine.build_image(futures_util::stream::iter(chunks), BuildOptions { tags: vec![name.clone()], ..BuildOptions::default() }),
    )
    .await;
    match &built.result {
        Err(error @ DockerError::Transport { .. }) => assert!(error.to_string().contains("the workspace could not be read"), "{error}"),
        other => panic!("expected the context's error, got {other:?}"),
    }
    assert!(!within("inspect", test.engine.image_exists(&name)).await.unwrap(), "an image was built from half a context");
    test.finish().await;
}

#[tokio::test]
async fn a_second_build_of_the_same_context_reuses_the_layers_of_the_first() {
    let test = TestResources::new("build-cache").await;
    let dockerfile = format!("{}RUN echo built once > /layer\nCOPY file.txt /file.txt\n", dockerfile_start(&test));
    let files = [("Dockerfile", dockerfile.as_str()), ("file.txt", "context file\n")];
    let first = build(&test, &files, BuildOptions { tags: vec![image_name(&test, "", "first")], ..BuildOptions::default() }).await;
    let second = build(&test, &files, BuildOptions { tags: vec![image_name(&test, "", "second")], ..BuildOptions::default() }).await;
    let first_id = first.result.unwrap_or_else(|error| panic!("{error}\n{}", first.output));
    let second_id = second.result.unwrap_or_else(|error| panic!("{error}\n{}", second.output));
    assert!(!first.output.contains("Using cache"), "the first build had nothing to reuse:\n{}", first.output);
    // LABEL, RUN and COPY: each step of the second build reused the first's layer.
    assert_eq!(second.output.matches("Using cache").count(), 3, "{}", second.output);
    assert_eq!(first_id, second_id);
    // Naming the first image as cache source (the API takes it as JSON) keeps the cache.
    let options = BuildOptions { cache_from: vec![image_name(&test, "", "first")], ..BuildOptions::default() };
    let from_named = build(&test, &files, options).await;
    assert_eq!(from_named.result.ok().as_deref(), Some(first_id.as_str()));
    assert_eq!(from_named.output.matches("Using cache").count(), 3, "{}", from_named.output);

    // Without the cache, the RUN step runs again.
    let uncached = build(&test, &files, BuildOptions { no_cache: true, ..BuildOptions::default() }).await;
    assert!(uncached.result.is_ok(), "{uncached:?}");
    assert!(!uncached.output.contains("Using cache"), "{}", uncached.output);
    test.finish().await;
}

#[tokio::test]
async fn dropping_a_builds_stream_stops_the_build_on_the_engine() {
    let test = TestResources::new("build-cancel").await;
    // The quotes keep the step's header (`Step 3/3 : RUN echo "ste""p running" …`) from
    // reading as its output.
    let dockerfile = format!("{}RUN echo \"ste\"\"p running\" && sleep 300\n", dockerfile_start(&test));
    let mut events = test.engine.build_image(context(&[("Dockerfile", &dockerfile)]), BuildOptions::default());
    let mut output = String::new();
    within("the step's start", async {
        while !output.contains("step running") {
            match events.next().await {
                Some(Ok(BuildEvent::Output(text))) => output.push_str(&text),
                Some(Ok(_)) => {}
                other => panic!("the build ended before its step started: {other:?}\n{output}"),
            }
        }
    })
    .await;
    // The step runs in a container with the test's label. The engine's list may show it
    // `created` for a moment after its output began.
    within("the step's container running", async {
        loop {
            let listed = test.engine.list_containers(&test.filter()).await.unwrap();
            if listed.iter().any(|container| container.state == "running") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    drop(events);
    // The engine notices the closed connection, kills the step and removes its container.
    let left = within("the build's end", async {
        loop {
            let left = test.engine.list_containers(&test.filter()).await.unwrap();
            if left.is_empty() {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(left.is_empty());
    assert!(CEILING < Duration::from_secs(300), "the ceiling must be shorter than the step's sleep");
    test.finish().await;
}

#[tokio::test]
async fn a_context_read_out_of_a_volume_builds_with_its_files_at_the_root() {
    let test = TestResources::new("build-archive").await;
    let volume = test.name("workspace");
    let mount = VolumeMount { volume: volume.clone(), target: "/workspace".to_owned(), labels: test.labels(), ..VolumeMount::default() };
    let holder = ContainerSpec { volume_mounts: vec![mount], ..test.shell("holder", "true") };
    let holder = within("create", test.engine.create_container(holder)).await.unwrap();
    let long_name = format!("app/{}/deep.txt", "long-folder-name".repeat(8));
    let dockerfile = format!("{}COPY . /context/\n", dockerfile_start(&test));
    let files = [("app/Dockerfile", dockerfile.as_str()), ("app/greeting.txt", "hello\n"), (long_name.as_str(), "deep\n")];
    within("upload", test.engine.upload_archive(&holder, "/workspace", context(&files))).await.unwrap();

    let entries = |path: &'static str| {
        let engine = test.engine.clone();
        let holder = holder.clone();
        async move {
            let mut archive = Vec::new();
            let mut chunks = engine.container_archive(&holder, path);
            while let Some(chunk) = within("reading the archive", chunks.next()).await {
                archive.extend_from_slice(&chunk.unwrap());
            }
            let mut names: Vec<String> = tar::Archive::new(&archive[..])
                .entries()
                .unwrap()
                .map(|entry| entry.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    };
    let long_tail = long_name.trim_start_matches("app/");
    assert_eq!(
        entries("/workspace/app").await,
        ["app/", "app/Dockerfile", "app/greeting.txt", &format!("app/{}/", long_tail.trim_end_matches("/deep.txt")), &long_name]
    );
    assert_eq!(
        entries("/workspace/app/.").await,
        ["./", "./Dockerfile", "./greeting.txt", &format!("./{}/", long_tail.trim_end_matches("/deep.txt")), &format!("./{long_tail}")]
    );

    // Straight from the container into a build: the Dockerfile is at the context's root.
    let archive = test.engine.container_archive(&holder, "/workspace/app/.").map(|chunk| chunk.map_err(std::io::Error::other));
    let name = image_name(&test, "", "from-volume");
    let built = finish_build(test.engine.build_image(archive, BuildOptions { tags: vec![name.clone()], ..BuildOptions::default() })).await;
    assert!(built.result.is_ok(), "{built:?}");
    let reader = ContainerSpec { image: name, ..test.shell("reader", &format!("cat /context/greeting.txt /context/{long_tail}")) };
    let (_, output, _) = test.run(reader).await;
    assert_eq!(output.stdout, "hello\ndeep\n");

    let mut missing = test.engine.container_archive(&holder, "/workspace/not-there");
    match within("reading a missing path", missing.next()).await {
        Some(Err(DockerError::Container { status: 404, .. })) => {}
        other => panic!("expected a 404, got {other:?}"),
    }
    within("remove", test.engine.remove_container(&holder)).await.unwrap();
    within("remove volume", test.engine.remove_volume(&volume)).await.unwrap();
    test.finish().await;
}

#[tokio::test]
async fn an_image_pushed_to_a_registry_comes_back_by_its_digest() {
    let test = TestResources::new("push-open").await;
    let name = image_name(&test, OPEN_REGISTRY, "v1");
    let dockerfile = format!("{}RUN echo pushed > /marker\n", dockerfile_start(&test));
    let built = build(&test, &[("Dockerfile", &dockerfile)], BuildOptions { tags: vec![name.clone()], ..BuildOptions::default() }).await;
    let image_id = built.result.unwrap();

    let (repository, tag) = docker::split_reference(&name);
    let pushed = within("push", test.engine.push_image(repository, tag.unwrap(), None)).await.unwrap();
    assert!(pushed.digest.starts_with("sha256:") && pushed.digest.len() == 71, "{pushed:?}");
    assert!(pushed.size > 0, "{pushed:?}");
    let by_digest = format!("{repository}@{}", pushed.digest);
    let details = within("inspect", test.engine.inspect_image(&name)).await.unwrap();
    assert!(details.repo_digests.contains(&by_digest), "{details:?}");

    within("remove", test.engine.remove_image(&name)).await.unwrap();
    assert!(!within("inspect", test.engine.image_exists(&image_id)).await.unwrap(), "the image is still on this machine");
    within("pull", test.engine.pull_image(&by_digest)).await.unwrap();
    let pulled = within("inspect", test.engine.inspect_image(&by_digest)).await.unwrap();
    assert_eq!(pulled.id, image_id);
    let (_, output, _) = test.run(ContainerSpec { image: by_digest, ..test.shell("reader", "cat /marker") }).await;
    assert_eq!(output.stdout, "pushed\n");
    test.finish().await;
}

#[tokio::test]
async fn a_registry_with_authentication_takes_pushes_and_pulls_only_with_the_right_password() {
    let test = TestResources::new("push-auth").await;
    let credentials = registry_credentials();
    let wrong = RegistryCredentials { username: credentials.username.clone(), password: "wrong-password-f00d".to_owned() };
    let name = image_name(&test, AUTH_REGISTRY, "v1");
    let built =
        build(&test, &[("Dockerfile", &dockerfile_start(&test))], BuildOptions { tags: vec![name.clone()], ..BuildOptions::default() })
            .await;
    assert!(built.result.is_ok(), "{built:?}");
    let (repository, tag) = docker::split_reference(&name);
    let tag = tag.unwrap();

    for attempt in [Some(&wrong), None] {
        let error = within("push", test.engine.push_image(repository, tag, attempt)).await.unwrap_err();
        let message = error.to_string();
        match &error {
            DockerError::RegistryAuth { registry, .. } => assert_eq!(registry, AUTH_REGISTRY),
            other => panic!("expected RegistryAuth, got {other:?}"),
        }
        assert!(message.contains(AUTH_REGISTRY), "{message}");
        assert!(!message.contains(&wrong.password) && !format!("{error:?}").contains(&wrong.password), "{message}");
    }
    let pushed = within("push", test.engine.push_image(repository, tag, Some(&credentials))).await.unwrap();
    within("remove", test.engine.remove_image(&name)).await.unwrap();

    // A build whose FROM names the private image pulls it with the build's credentials.
    assert!(!within("inspect", test.engine.image_exists(&format!("{repository}@{}", pushed.digest))).await.unwrap());
    let dockerfile = format!("FROM {name}\nRUN echo from the private image\n");
    let files = [("Dockerfile", dockerfile.as_str())];
    for attempt in [Some(&wrong), None] {
        let registry_credentials = attempt.map(|credentials| BTreeMap::from([(AUTH_REGISTRY.to_owned(), credentials.clone())]));
        let options =
            BuildOptions { pull: true, registry_credentials: registry_credentials.unwrap_or_default(), ..BuildOptions::default() };
        let built = build(&test, &files, options).await;
        match &built.result {
            Err(DockerError::BuildFailed { message }) => assert!(!message.contains(&wrong.password), "{message}"),
            other => panic!("expected BuildFailed, got {other:?}"),
        }
    }
    let options = BuildOptions {
        pull: true,
        registry_credentials: BTreeMap::from([(AUTH_REGISTRY.to_owned(), credentials.clone())]),
        ..BuildOptions::default()
    };
    let built = build(&test, &files, options).await;
    assert!(built.result.is_ok(), "{built:?}");
    assert!(built.output.contains("from the private image"), "{}", built.output);

    // Pulls take credentials too. By tag: the engine serves a pull by digest of an image it
    // pulled before from what it has, without asking the registry.
    let refused = within("pull", test.engine.pull_image_with_credentials(&name, Some(&wrong))).await.unwrap_err();
    assert!(matches!(&refused, DockerError::PullFailed { .. }) && !refused.to_string().contains(&wrong.password), "{refused:?}");
    within("pull", test.engine.pull_image_with_credentials(&name, Some(&credentials))).await.unwrap();
    test.finish().await;
}
