//! Nothing outlives a workflow: teardown removes its containers (running or not), network and
//! volumes; sweep removes what runs of dead processes left and leaves live runs alone.

use std::time::{Duration, Instant};

use backend_docker::{DockerBackendOptions, LABEL_PID, ProcessIdentity};
use runtime::{Backend, WorkspaceSource};

use crate::support::{TestRun, service_step, shell_step};

#[tokio::test]
async fn teardown_in_the_middle_of_a_run_leaves_nothing_behind() {
    let test = TestRun::new("teardown").await;
    let workflow = test.workflow_with_volumes("main", &["cache"]).await;
    test.backend.populate_workspace(&workflow, &WorkspaceSource::Empty).await.unwrap();

    let (_running, _output) = test.start(&workflow, shell_step("running", "exec sleep 300")).await;
    let (_service, _service_output) = test.start(&workflow, service_step("service", "exec sleep 300", &["svc"])).await;
    let mut with_volumes = shell_step("created only", "true");
    with_volumes.container.volumes = vec!["cache:/cache".to_string(), "undeclared:/other".to_string(), "/anonymous".to_string()];
    let _created = test.backend.prepare(&workflow, &with_volumes).await.unwrap();
    let before = test.leftovers().await;
    assert_eq!((before.containers.len(), before.networks.len(), before.volumes.len()), (3, 1, 3));

    let started = Instant::now();
    test.finish(workflow).await;
    assert!(started.elapsed() < Duration::from_secs(10), "teardown took {:?}", started.elapsed());
}

#[tokio::test]
async fn preparations_abandoned_mid_request_are_still_torn_down() {
    let test = TestRun::new("abandoned").await;
    let workflow = test.workflow("main").await;

    // A cancelled run drops its futures wherever they are, here after 0 to 19 milliseconds:
    // some before the request was sent, some while the engine is creating.
    let requests: Vec<_> = (0..20)
        .map(|index| {
            let mut step = shell_step(&format!("abandoned {index}"), "true");
            step.container.volumes = vec![format!("volume-{index}:/data")];
            step
        })
        .collect();
    let abandoned = requests
        .iter()
        .enumerate()
        .map(|(index, request)| tokio::time::timeout(Duration::from_millis(index as u64), test.backend.prepare(&workflow, request)));
    let finished = futures_util::future::join_all(abandoned).await;
    assert!(finished.iter().any(Result::is_err), "some preparations were abandoned");

    test.finish(workflow).await;
}

#[tokio::test]
async fn sweep_removes_what_dead_processes_left_and_not_what_live_ones_use() {
    // A run of a process that has ended (a crashed gantry), with a running container.
    let mut finished_process = std::process::Command::new("true").spawn().unwrap();
    let dead_owner = ProcessIdentity::of_process(finished_process.id());
    finished_process.wait().unwrap();
    let dead = TestRun::with_options("sweep-dead", DockerBackendOptions { owner: dead_owner.clone(), ..Default::default() }).await;
    let dead_workflow = dead.workflow_with_volumes("main", &["cache"]).await;
    let (_step, _output) = dead.start(&dead_workflow, shell_step("left running", "exec sleep 300")).await;
    let mut created = shell_step("left created", "true");
    created.container.volumes = vec!["cache:/cache".to_string()];
    let _created = dead.backend.prepare(&dead_workflow, &created).await.unwrap();

    // A run of a process that is still alive.
    let mut live_process = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    let live_owner = ProcessIdentity::of_process(live_process.id());
    let live = TestRun::with_options("sweep-live", DockerBackendOptions { owner: live_owner, ..Default::default() }).await;
    let live_workflow = live.workflow("main").await;
    let (_live_step, _live_output) = live.start(&live_workflow, shell_step("still running", "exec sleep 300")).await;

    // This process's own run.
    let own = TestRun::new("sweep-own").await;
    let own_workflow = own.workflow("main").await;

    let dead_before = dead.leftovers().await;
    assert_eq!((dead_before.containers.len(), dead_before.networks.len(), dead_before.volumes.len()), (2, 1, 2));
    assert!(dead_before.containers.iter().all(|container| container.labels[LABEL_PID] == dead_owner.pid.to_string()));

    own.backend.sweep().await.unwrap();

    dead.assert_nothing_left().await;
    let live_after = live.leftovers().await;
    assert_eq!((live_after.containers.len(), live_after.networks.len(), live_after.volumes.len()), (1, 1, 1));
    assert_eq!(own.leftovers().await.len(), 2, "the sweeping process's own network and workspace");

    live.finish(live_workflow).await;
    own.finish(own_workflow).await;
    live_process.kill().unwrap();
    live_process.wait().unwrap();
}
