//! Containers: created from a spec, started with their output attached, waited for, signalled,
//! exec'd into, given an archive, listed by label and removed.

use std::collections::BTreeMap;

use bytes::Bytes;
use docker::{ContainerSpec, DockerError};

use crate::support::{TestResources, collect, read_until, within};

#[tokio::test]
async fn a_container_runs_with_its_spec_and_its_output_and_exit_code_come_back() {
    let test = TestResources::new("run").await;
    let spec = ContainerSpec {
        environment: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        working_dir: Some("/tmp/work".to_owned()),
        user: Some("1000:1000".to_owned()),
        extra_hosts: vec!["registry.internal:10.0.0.3".to_owned()],
        ..test.shell("run", "echo \"$GREETING from $(pwd) as $(id -u)\"; grep registry.internal /etc/hosts; echo oops >&2; exit 3")
    };
    let (container, output, exit_code) = test.run(spec).await;
    assert_eq!(exit_code, 3, "a non-zero exit is a result, not an error");
    assert_eq!(output.stdout, "hello from /tmp/work as 1000\n10.0.0.3\tregistry.internal\n");
    assert_eq!(output.stderr, "oops\n");

    let listed = within("listing", test.engine.list_containers(&test.filter())).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].id.as_str(), listed[0].name.as_str(), listed[0].state.as_str()),
        (container.as_str(), test.name("run").as_str(), "exited")
    );
    assert_eq!(listed[0].labels.get("io.gantry.docker-it").map(String::as_str), test.labels().values().next().map(String::as_str));

    within("remove", test.engine.remove_container(&container)).await.unwrap();
    assert!(within("listing", test.engine.list_containers(&test.filter())).await.unwrap().is_empty());
    // Removing what is gone already is not an error.
    within("remove again", test.engine.remove_container(&container)).await.unwrap();
    test.finish().await;
}

#[tokio::test]
async fn the_engines_log_of_the_output_is_kept_only_when_asked_for() {
    let test = TestResources::new("engine-log").await;
    let script = "echo first; echo second >&2";
    let (kept, _, exit_code) = test.run(ContainerSpec { keep_engine_log: true, ..test.shell("kept", script) }).await;
    assert_eq!(exit_code, 0);
    let logged = collect(test.engine.follow_output(&kept)).await;
    assert_eq!((logged.stdout.as_str(), logged.stderr.as_str()), ("first\n", "second\n"));

    // By default the output is read only through the attach stream: the engine keeps no log.
    let (not_kept, output, _) = test.run(test.shell("not-kept", script)).await;
    assert_eq!((output.stdout.as_str(), output.stderr.as_str()), ("first\n", "second\n"));
    let mut frames = test.engine.follow_output(&not_kept);
    let first = within("reading the engine's log", futures_util::StreamExt::next(&mut frames)).await;
    assert!(matches!(first, Some(Err(DockerError::Container { .. }))), "{first:?}");
    test.finish().await;
}

#[tokio::test]
async fn a_killed_container_ends_at_once_and_a_stopped_one_gets_its_signal_first() {
    let test = TestResources::new("signals").await;
    let (endless, _output) = test.start(test.shell("killed", "exec sleep 300")).await;
    within("kill", test.engine.kill_container(&endless, "SIGKILL")).await.unwrap();
    assert_eq!(within("wait", test.engine.wait_container(&endless)).await.unwrap(), 137, "ended by SIGKILL");
    // A container that is not running any more is left as it is.
    within("kill again", test.engine.kill_container(&endless, "SIGKILL")).await.unwrap();

    // The shell is the container's first process, which gets no default signal handlers: it
    // traps TERM itself, and says when it has.
    let (graceful, mut output) = test.start(test.shell("stopped", "trap 'exit 0' TERM; echo trapped; sleep 300 & wait")).await;
    read_until(&mut output, "trapped").await;
    // The grace is longer than the ceiling: were the signal lost, this would fail at the ceiling.
    within("stop", test.engine.stop_container(&graceful, 300)).await.unwrap();
    assert_eq!(within("wait", test.engine.wait_container(&graceful)).await.unwrap(), 0, "ended by its TERM trap");
    within("stop again", test.engine.stop_container(&graceful, 300)).await.unwrap();
    test.finish().await;
}

#[tokio::test]
async fn exec_runs_a_command_in_a_running_container() {
    let test = TestResources::new("exec").await;
    let (container, _output) = test.start(test.shell("idle", "exec sleep 300")).await;
    let command = ["sh", "-c", "echo out; echo err >&2; exit 5"].map(String::from);
    let outcome = within("exec", test.engine.exec(&container, &command)).await.unwrap();
    assert_eq!((outcome.exit_code, &outcome.stdout[..], &outcome.stderr[..]), (5, &b"out\n"[..], &b"err\n"[..]));
    test.finish().await;
}

#[tokio::test]
async fn an_archive_uploaded_before_the_start_is_there_when_the_container_runs() {
    let test = TestResources::new("upload").await;
    let container = within("create", test.engine.create_container(test.shell("reader", "cat /data/greeting.txt"))).await.unwrap();

    let mut archive = tar::Builder::new(Vec::new());
    let text = b"uploaded before the start\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    archive.append_data(&mut header, "data/greeting.txt", &text[..]).unwrap();
    let archive = Bytes::from(archive.into_inner().unwrap());
    let chunks = futures_util::stream::iter(archive.chunks(100).map(|chunk| Ok(Bytes::copy_from_slice(chunk))).collect::<Vec<_>>());
    within("upload", test.engine.upload_archive(&container, "/", chunks)).await.unwrap();

    let output = within("attach", test.engine.attach_output(&container)).await.unwrap();
    within("start", test.engine.start_container(&container)).await.unwrap();
    assert_eq!(collect(output).await.stdout, "uploaded before the start\n");
    assert_eq!(within("wait", test.engine.wait_container(&container)).await.unwrap(), 0);
    test.finish().await;
}

#[tokio::test]
async fn requests_about_a_container_that_is_not_there_say_so() {
    let test = TestResources::new("missing").await;
    let missing = test.name("never-created");
    let not_found = |error: DockerError| match error {
        DockerError::ContainerNotFound { container } => assert_eq!(container, missing),
        other => panic!("expected ContainerNotFound, got {other:?}"),
    };
    not_found(within("start", test.engine.start_container(&missing)).await.unwrap_err());
    not_found(within("wait", test.engine.wait_container(&missing)).await.unwrap_err());
    not_found(within("kill", test.engine.kill_container(&missing, "SIGKILL")).await.unwrap_err());
    not_found(within("exec", test.engine.exec(&missing, &["true".to_owned()])).await.unwrap_err());
    let error = within("attach", test.engine.attach_output(&missing)).await.err().expect("attaching to nothing fails");
    assert!(error.is_not_found(), "{error:?}");
    within("remove", test.engine.remove_container(&missing)).await.unwrap();
    test.finish().await;
}
