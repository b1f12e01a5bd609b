//! Faults of the machines a team's Gantry runs on, end to end (a real `gantry server` and
//! `gantry agent`): the Docker engine an agent uses going away in the middle of a build, and the
//! server's PostgreSQL restarting in the middle of one. Each test stops and starts an engine or a
//! cluster of its own (`support`), never the shared ones other tests run on at the same time.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::e2e::{Cluster, assert_nothing_left_on, push_commit, remote, step};
use crate::support::{PrivateDockerd, PrivatePostgres, host_interface_index};

const BUSYBOX: &str = "gantry-test/busybox:latest";

/// A service (so that the workflow has a network of its own as well as volumes and containers)
/// and a step that runs until the engine goes away under it.
const LONG_PIPELINE: &str = "services:\n  cache:\n    image: gantry-test/busybox:latest\n    commands: [sleep 300]\nsteps:\n  work:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo started\n      - sleep 120\n";
const QUICK_PIPELINE: &str = "services:\n  cache:\n    image: gantry-test/busybox:latest\n    commands: [sleep 300]\nsteps:\n  work:\n    image: gantry-test/busybox:latest\n    commands:\n      - echo second build\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_engine_that_crashes_mid_build_errors_the_workflow_pauses_leasing_and_leaks_nothing_once_back() {
    engine_going_away_mid_build(EngineFault::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_engine_shut_down_mid_build_errors_the_workflow_pauses_leasing_and_leaks_nothing_once_back() {
    engine_going_away_mid_build(EngineFault::Shutdown).await;
}

/// How the engine goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EngineFault {
    /// SIGKILL: connections break at once, the containers run on without it until it is back.
    Crash,
    /// SIGTERM: the engine closes its API, kills the containers (their shell ignores SIGTERM)
    /// and exits.
    Shutdown,
}

async fn engine_going_away_mid_build(fault: EngineFault) {
    let shared_bridge = host_interface_index("docker0");
    let mut engine = PrivateDockerd::start();
    assert_eq!(host_interface_index("docker0"), shared_bridge, "the private engine touched the shared engine's bridge");
    engine.load_image(BUSYBOX);
    let host = engine.host();
    let cluster = Cluster::start_with(&[], &[("DOCKER_HOST", &host)]).await;
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", LONG_PIPELINE)]);
    cluster.add_repo(&url, json!({})).await;
    let (status, build) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, 201, "{build}");
    cluster.wait_build(1, Duration::from_secs(30), "the step running", |build| step(build, "work")["log_lines"].as_u64() >= Some(2)).await;

    match fault {
        EngineFault::Crash => engine.kill(),
        EngineFault::Shutdown => engine.stop(),
    }
    let build = cluster.wait_finished(1).await;
    assert_eq!(build["state"], "error", "{build}");
    let reason = build["workflows"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("docker engine went away"), "the reason says what happened: {build}");
    // The step's own end is what the engine last said: its connection broke (a crash), or the
    // container was killed (a shutdown).
    let (state, exit_code) = match fault {
        EngineFault::Crash => ("error", None),
        EngineFault::Shutdown => ("failure", Some(137)),
    };
    assert_eq!((step(&build, "work")["state"].as_str(), step(&build, "work")["exit_code"].as_i64()), (Some(state), exit_code), "{build}");

    // While the engine is down the agent leases nothing: a build queued meanwhile waits for it
    // instead of failing at once on an agent that cannot run it.
    let agent_paused = Instant::now() + Duration::from_secs(15);
    while !cluster.log("agent.log").contains("leasing nothing until it does") {
        assert!(Instant::now() < agent_paused, "the agent did not stop leasing:\n{}", cluster.log("agent.log"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    push_commit(&work, &[(".woodpecker.yml", QUICK_PIPELINE)], "A quick pipeline");
    let (status, queued) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, 201, "{queued}");
    // An absence can only be watched for a while: an agent that leases with its engine down
    // takes the build within its long-poll, well inside this window.
    let watched = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watched {
        let queued = cluster.build(2).await;
        assert_eq!(queued["workflows"][0]["state"], "pending", "leased while the engine was down: {queued}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    engine.restart();
    let build = cluster.wait_finished(2).await;
    assert_eq!(build["state"], "success", "{build}\n{}", engine.log());
    assert!(cluster.log_text(2, step(&build, "work")).await.contains("second build"));
    // The agent swept what the first build's teardown could not remove while the engine was
    // down: nothing of either run is left.
    assert_nothing_left_on(Some(&host), &cluster.agent_pids).await;
    drop(engine);
    assert_eq!(host_interface_index("docker0"), shared_bridge, "the private engine touched the shared engine's bridge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_build_loses_no_build_and_no_acknowledged_log_line() {
    let Some(mut database) = PrivatePostgres::start() else { return };
    database.create_database("gantry");
    let url = database.url("gantry");
    let cluster = Cluster::start(&[("GANTRY_DATABASE_URL", &url)]).await;
    let lines = 300;
    let pipeline = format!(
        "steps:\n  count:\n    image: gantry-test/busybox:latest\n    commands:\n      - i=0; while [ $i -lt {lines} ]; do echo line $i; i=$((i+1)); sleep 0.02; done\n"
    );
    let (repository, _) = remote(cluster.dir.path(), &[(".woodpecker.yml", &pipeline)]);
    cluster.add_repo(&repository, json!({})).await;
    let (status, build) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, 201, "{build}");
    cluster.wait_build(1, Duration::from_secs(30), "lines arriving", |build| step(build, "count")["log_lines"].as_u64() >= Some(30)).await;

    database.stop("immediate");
    // The database stays down until the step has printed its last line: every line after the
    // first few is sent while the server cannot store what it is sent, and must still arrive,
    // once, in order, when the database is back.
    let printing = Instant::now() + Duration::from_secs(30);
    while step_container_runs(cluster.agent_pids[0], "count") {
        assert!(Instant::now() < printing, "the step did not end:\n{}", cluster.log("agent.log"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    database.start_again();

    let answers = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, build) = cluster.api(reqwest::Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < answers, "the server does not answer since the restart: {status} {build}\n{}", cluster.log("server.log"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let build = cluster.wait_finished(1).await;
    assert_eq!(build["state"], "success", "{build}");
    let log = cluster.log_text(1, step(&build, "count")).await;
    let printed: Vec<&str> = log.lines().filter(|line| line.starts_with("line ")).collect();
    let expected: Vec<String> = (0..lines).map(|i| format!("line {i}")).collect();
    assert_eq!(printed, expected.iter().map(String::as_str).collect::<Vec<_>>(), "every line once, in order");
    assert_eq!(step(&build, "count")["log_lines"].as_u64().unwrap() as usize, log.lines().count());

    // The server's connections to the database are new ones now: the queue still works.
    let (status, build) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, 201, "{build}");
    let build = cluster.wait_finished(2).await;
    assert_eq!(build["state"], "success", "{build}");
}

/// Whether the container of step `name`, made by the agent process `agent_pid`, runs on the
/// shared engine.
fn step_container_runs(agent_pid: u32, name: &str) -> bool {
    let output = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=io.gantry.pid={agent_pid}"), "--filter", &format!("label=io.gantry.step={name}")])
        .output()
        .expect("the docker CLI runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    !output.stdout.is_empty()
}
