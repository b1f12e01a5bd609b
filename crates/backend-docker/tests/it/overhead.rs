//! Per-step overhead against `docker run --rm`, side by side (ignored by default; it measures,
//! it does not check): `cargo test -p backend-docker --test it overhead -- --ignored --nocapture`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::Backend;

use crate::support::{BUSYBOX, TestRun, collect, shell_step};

const STEPS: usize = 10;

/// `docker run --rm [arguments] busybox true`.
fn docker_run_rm(arguments: &[String]) {
    let status =
        Command::new("docker").args(["run", "--rm"]).args(arguments).args([BUSYBOX, "true"]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
}

async fn baseline_sequential(arguments: &[String]) -> Duration {
    let started = Instant::now();
    for _ in 0..STEPS {
        let arguments = arguments.to_vec();
        tokio::task::spawn_blocking(move || docker_run_rm(&arguments)).await.unwrap();
    }
    started.elapsed()
}

async fn baseline_parallel(arguments: &[String]) -> Duration {
    let started = Instant::now();
    let runs: Vec<_> = (0..STEPS)
        .map(|_| {
            let arguments = arguments.to_vec();
            tokio::task::spawn_blocking(move || docker_run_rm(&arguments))
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    started.elapsed()
}

/// create, attach + start, read output, wait, remove: what one step costs the runtime.
async fn one_step(test: &TestRun, workflow: &backend_docker::DockerWorkflow, index: usize) {
    let step = test.backend.prepare(workflow, &shell_step(&format!("bench {index}"), "true")).await.unwrap();
    let output = test.backend.start(&step).await.unwrap();
    collect(output).await;
    assert_eq!(test.backend.wait(&step).await.unwrap(), 0);
    test.backend.remove(step).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it on purpose"]
async fn overhead_per_step_against_docker_run() {
    let test = TestRun::new("overhead").await;
    let workflow = test.workflow("main").await;
    // Warm up both paths (image cache, connection pool).
    one_step(&test, &workflow, 0).await;
    docker_run_rm(&[]);
    // The same container setup as a step gets: the workflow's network and workspace volume.
    let same_setup =
        ["--network", workflow.network_name(), "-v", &format!("{}:/woodpecker", workflow.workspace_volume())].map(String::from);

    let started = Instant::now();
    for index in 0..STEPS {
        one_step(&test, &workflow, index).await;
    }
    let ours_sequential = started.elapsed();

    // What the runtime does: create the next step while the current one runs.
    let started = Instant::now();
    let mut next = Some(test.backend.prepare(&workflow, &shell_step("ahead 0", "true")).await.unwrap());
    for index in 0..STEPS {
        let step = next.take().unwrap();
        let output = test.backend.start(&step).await.unwrap();
        let prepare_next = async {
            if index + 1 < STEPS {
                Some(test.backend.prepare(&workflow, &shell_step(&format!("ahead {}", index + 1), "true")).await.unwrap())
            } else {
                None
            }
        };
        let run = async {
            collect(output).await;
            test.backend.wait(&step).await.unwrap()
        };
        let (prepared, exit_code) = tokio::join!(prepare_next, run);
        assert_eq!(exit_code, 0);
        next = prepared;
        test.backend.remove(step).await;
    }
    let ours_prepared_ahead = started.elapsed();

    let started = Instant::now();
    futures_util::future::join_all((0..STEPS).map(|index| one_step(&test, &workflow, 100 + index))).await;
    let ours_parallel = started.elapsed();

    // The same on the default bridge, as `docker run` does.
    let options =
        backend_docker::DockerBackendOptions { network_policy: backend_docker::NetworkPolicy::WhenAddressed, ..Default::default() };
    let bridged = TestRun::with_options("overhead-bridge", options).await;
    let bridged_workflow = bridged.workflow("main").await;
    one_step(&bridged, &bridged_workflow, 0).await;
    let started = Instant::now();
    for index in 0..STEPS {
        one_step(&bridged, &bridged_workflow, index).await;
    }
    let bridged_sequential = started.elapsed();
    let started = Instant::now();
    futures_util::future::join_all((0..STEPS).map(|index| one_step(&bridged, &bridged_workflow, 100 + index))).await;
    let bridged_parallel = started.elapsed();
    bridged.finish(bridged_workflow).await;

    let docker_sequential = baseline_sequential(&[]).await;
    let docker_parallel = baseline_parallel(&[]).await;
    let docker_same_sequential = baseline_sequential(&same_setup).await;
    let docker_same_parallel = baseline_parallel(&same_setup).await;

    let per_step = |total: Duration| total.as_secs_f64() * 1000.0 / STEPS as f64;
    let ratio = |ours: Duration, theirs: Duration| ours.as_secs_f64() / theirs.as_secs_f64();
    let total = |elapsed: Duration| elapsed.as_secs_f64() * 1000.0;
    println!("{STEPS} trivial steps ({BUSYBOX} `true`); ratios are gantry / docker run --rm");
    println!(
        "  docker run --rm:                          sequential {:6.1} ms/step, parallel {:6.0} ms",
        per_step(docker_sequential),
        total(docker_parallel)
    );
    println!(
        "  docker run --rm --network <wf> -v <ws>:   sequential {:6.1} ms/step, parallel {:6.0} ms",
        per_step(docker_same_sequential),
        total(docker_same_parallel)
    );
    println!(
        "  gantry:                                   sequential {:6.1} ms/step, parallel {:6.0} ms",
        per_step(ours_sequential),
        total(ours_parallel)
    );
    println!("  gantry, next step prepared while one runs: sequential {:6.1} ms/step", per_step(ours_prepared_ahead));
    println!(
        "  gantry, NetworkPolicy::WhenAddressed:     sequential {:6.1} ms/step, parallel {:6.0} ms",
        per_step(bridged_sequential),
        total(bridged_parallel)
    );
    println!(
        "  ratio against plain docker run:  sequential {:.2}, prepared ahead {:.2}, parallel {:.2}",
        ratio(ours_sequential, docker_sequential),
        ratio(ours_prepared_ahead, docker_sequential),
        ratio(ours_parallel, docker_parallel)
    );
    println!(
        "  WhenAddressed against plain docker run: sequential {:.2}, parallel {:.2}",
        ratio(bridged_sequential, docker_sequential),
        ratio(bridged_parallel, docker_parallel)
    );
    println!(
        "  ratio against the same setup:    sequential {:.2}, prepared ahead {:.2}, parallel {:.2}",
        ratio(ours_sequential, docker_same_sequential),
        ratio(ours_prepared_ahead, docker_same_sequential),
        ratio(ours_parallel, docker_same_parallel)
    );

    test.finish(workflow).await;
}
