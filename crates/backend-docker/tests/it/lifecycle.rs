//! A step's life: prepare, start with its output from the first byte, wait for its exit code,
//! stop, remove; and how a step's request becomes its container.

use std::time::{Duration, Instant};

use runtime::{Backend, BackendError, WorkspaceSource};

use crate::support::{BUSYBOX, TestRun, WORKSPACE_DIR, collect, shell_step};

#[tokio::test]
async fn a_step_reports_stdout_and_stderr_apart_in_order_and_its_exit_code() {
    let test = TestRun::new("lifecycle").await;
    let workflow = test.workflow("main").await;

    // Pauses between the writes make the order across the two streams observable.
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; sleep 0.2; printf 'no newline' >&2; exit 3";
    let (output, exit_code) = test.run_step(&workflow, shell_step("failing", script)).await;
    assert_eq!(exit_code, 3);
    assert_eq!(output.stdout_text(), "one\nthree\n");
    assert_eq!(output.stderr_text(), "two\nno newline");
    assert_eq!(output.tagged_lines(), ["out: one", "err: two", "out: three"]);

    let (output, exit_code) = test.run_step(&workflow, shell_step("passing", "echo fine")).await;
    assert_eq!((output.stdout_text().as_str(), exit_code), ("fine\n", 0));

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_step_that_prints_ten_thousand_lines_at_once_loses_none() {
    let test = TestRun::new("many-lines").await;
    let workflow = test.workflow("main").await;

    // Several at once, each exiting the moment its last line is written.
    let runs = (0..3).map(|index| test.run_step(&workflow, shell_step(&format!("loud-{index}"), "seq 1 10000; seq 1 10000 >&2")));
    for (output, exit_code) in futures_util::future::join_all(runs).await {
        assert_eq!(exit_code, 0);
        let expected: String = (1..=10000).map(|number| format!("{number}\n")).collect();
        assert!(output.stdout_text() == expected, "stdout lost lines: {} bytes of {}", output.stdout.len(), expected.len());
        assert!(output.stderr_text() == expected, "stderr lost lines: {} bytes of {}", output.stderr.len(), expected.len());
    }

    test.finish(workflow).await;
}

#[tokio::test]
async fn the_output_of_a_step_that_ended_before_it_was_read_is_complete() {
    let test = TestRun::new("late-reader").await;
    let workflow = test.workflow("main").await;

    let (step, output) = test.start(&workflow, shell_step("quick", "echo first; printf second >&2")).await;
    // The step is gone when its output is first read.
    assert_eq!(test.backend.wait(&step).await.unwrap(), 0);
    let output = collect(output).await;
    assert_eq!((output.stdout_text().as_str(), output.stderr_text().as_str()), ("first\n", "second"));
    test.backend.remove(step).await;

    test.finish(workflow).await;
}

#[tokio::test]
async fn steps_prepared_ahead_at_once_run_one_after_another() {
    let test = TestRun::new("prepared-ahead").await;
    let workflow = test.workflow("main").await;

    let requests: Vec<_> = (0..8).map(|index| shell_step(&format!("step {index}"), &format!("echo step-{index}"))).collect();
    let prepared =
        futures_util::future::try_join_all(requests.iter().map(|request| test.backend.prepare(&workflow, request))).await.unwrap();
    for (index, step) in prepared.into_iter().enumerate() {
        let output = collect(test.backend.start(&step).await.unwrap()).await;
        assert_eq!(output.stdout_text(), format!("step-{index}\n"));
        assert_eq!(test.backend.wait(&step).await.unwrap(), 0);
        test.backend.remove(step).await;
    }

    test.finish(workflow).await;
}

#[tokio::test]
async fn the_container_gets_the_steps_environment_directory_user_and_limits() {
    let test = TestRun::new("container-spec").await;
    let workflow = test.workflow("main").await;
    test.backend.populate_workspace(&workflow, &WorkspaceSource::Empty).await.unwrap();

    let mut step = shell_step(
        "inspect",
        "echo \"greeting=$GREETING\"; pwd; id -u; grep -q 'cache.internal' /etc/hosts && echo host-ok; \
         grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs-ok; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         df -k /dev/shm | tail -n 1 | awk '{print \"shm=\" $2}'; touch written-by-another-user && echo write-ok",
    );
    step.environment.insert("GREETING".to_string(), "hello world".to_string());
    step.container.user = Some("1234".to_string());
    step.container.extra_hosts = vec!["cache.internal:10.1.2.3".to_string()];
    step.container.tmpfs = vec!["/scratch:size=16m".to_string()];
    step.container.memory_limit = Some("64m".to_string());
    step.container.shm_size = Some("32m".to_string());
    let (output, exit_code) = test.run_step(&workflow, step).await;
    assert_eq!(output.stderr_text(), "");
    assert_eq!(exit_code, 0);
    let memory_limit = (64 * 1024 * 1024).to_string();
    let expected = ["greeting=hello world", WORKSPACE_DIR, "1234", "host-ok", "tmpfs-ok", &memory_limit, "shm=32768", "write-ok"];
    assert_eq!(output.stdout_text().lines().collect::<Vec<_>>(), expected);

    test.finish(workflow).await;
}

#[tokio::test]
async fn an_image_entrypoint_can_be_kept_and_a_command_given() {
    let test = TestRun::new("entrypoint").await;
    let workflow = test.workflow("main").await;

    let mut step = shell_step("plain command", "");
    step.entrypoint = None;
    step.command = vec!["echo".to_string(), "from".to_string(), "command".to_string()];
    let (output, exit_code) = test.run_step(&workflow, step).await;
    assert_eq!((output.stdout_text().as_str(), exit_code), ("from command\n", 0));

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_stopped_step_ends_at_once() {
    let test = TestRun::new("stop").await;
    let workflow = test.workflow("main").await;

    let (step, output) = test.start(&workflow, shell_step("endless", "echo started; exec sleep 300")).await;
    let started = Instant::now();
    test.backend.stop(&step).await;
    let exit_code = tokio::time::timeout(Duration::from_secs(10), test.backend.wait(&step)).await.expect("wait ends").unwrap();
    assert_eq!(exit_code, 137, "killed by SIGKILL");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(collect(output).await.stdout_text(), "started\n");
    test.backend.remove(step).await;

    test.finish(workflow).await;
}

#[tokio::test]
async fn named_volumes_are_shared_by_the_workflows_steps_and_no_one_else() {
    let test = TestRun::new("volumes").await;
    let first = test.workflow_with_volumes("first", &["cache"]).await;
    let second = test.workflow_with_volumes("second", &["cache"]).await;

    let mut write = shell_step("write", "echo kept > /cache/file");
    write.container.volumes = vec!["cache:/cache".to_string()];
    let mut read = shell_step("read", "cat /cache/file 2>/dev/null || echo missing");
    read.container.volumes = vec!["cache:/cache:ro".to_string()];

    assert_eq!(test.run_step(&first, write.clone()).await.1, 0);
    assert_eq!(test.run_step(&first, read.clone()).await.0.stdout_text(), "kept\n");
    assert_eq!(test.run_step(&second, read.clone()).await.0.stdout_text(), "missing\n");

    // A volume the workflow did not declare is the workflow's own too, and goes with it.
    let mut undeclared = shell_step("undeclared", "echo x > /other/file");
    undeclared.container.volumes = vec!["other:/other".to_string(), "/anonymous".to_string()];
    assert_eq!(test.run_step(&second, undeclared).await.1, 0);

    test.backend.teardown(first).await;
    test.finish(second).await;
}

#[tokio::test]
async fn a_missing_image_is_image_unavailable_naming_it() {
    let test = TestRun::new("missing-image").await;
    let workflow = test.workflow("main").await;
    let missing = "gantry-test/does-not-exist:never";

    for pull in [pipeline::model::PullPolicy::Never, pipeline::model::PullPolicy::IfNotPresent, pipeline::model::PullPolicy::Always] {
        let mut step = shell_step("missing", "true");
        step.image = Some(missing.to_string());
        step.pull = pull;
        match test.backend.prepare(&workflow, &step).await {
            Err(BackendError::ImageUnavailable { image, reason }) => {
                assert_eq!(image, missing, "{pull:?}");
                assert!(!reason.is_empty());
            }
            other => panic!("{pull:?}: expected ImageUnavailable, got {other:?}"),
        }
    }

    // `always` with no registry in reach falls back to the image on this machine.
    let mut step = shell_step("local", "echo local");
    step.pull = pipeline::model::PullPolicy::Always;
    assert_eq!(test.run_step(&workflow, step).await.0.stdout_text(), "local\n");

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_step_without_image_or_with_a_bad_size_is_refused_before_anything_runs() {
    let test = TestRun::new("refused").await;
    let workflow = test.workflow("main").await;

    let mut no_image = shell_step("no image", "true");
    no_image.image = None;
    assert!(matches!(test.backend.prepare(&workflow, &no_image).await, Err(BackendError::Unsupported { .. })));

    let mut bad_size = shell_step("bad size", "true");
    bad_size.container.memory_limit = Some("lots".to_string());
    match test.backend.prepare(&workflow, &bad_size).await {
        Err(BackendError::Operation { message, .. }) => assert!(message.contains("`lots`"), "{message}"),
        other => panic!("expected an operation error, got {other:?}"),
    }
    assert!(test.leftovers().await.containers.is_empty());

    test.finish(workflow).await;
}

#[tokio::test]
async fn the_test_image_is_there() {
    // Every other test relies on it; this one says so plainly when it is missing.
    let engine = crate::support::connect().await;
    assert!(engine.image_exists(BUSYBOX).await.unwrap(), "{BUSYBOX} is missing: run scripts/docker-up.sh");
}
