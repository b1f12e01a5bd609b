//! Stopping jobs: a cancel from the server (through cancel-wait, or a heartbeat's `stop`) and
//! the agent's own shutdown each kill a running step at once, and the job reports `killed`.

use std::time::{Duration, Instant};

use proto::State;

use crate::server::{FakeServer, Recorded};
use crate::support::{TestAgent, assert_nothing_left, containers_of, job, plan};

const SLEEPER: &str = "skip_clone: true\nsteps:\n  sleeper:\n    image: IMAGE\n    commands:\n      - echo sleeping\n      - sleep 60\n  after:\n    image: IMAGE\n    commands:\n      - echo never\n";

/// Waits until the sleeper step has printed, so that it is really inside `sleep`.
async fn wait_until_sleeping(server: &FakeServer, job: i64) {
    let sleeping = |recorded: &Recorded| recorded.lines(job, "sleeper").iter().any(|line| line == "sleeping");
    assert!(server.wait_for(Duration::from_secs(30), sleeping).await, "the step never started");
}

/// How long a step may take to die once the agent was told to stop it. Killing it takes well
/// under a second; what this proves is not waited for is the step's own `sleep 60`, and the
/// engine's default stop timeout of 10 s (what stopping, rather than killing, a shell that
/// ignores SIGTERM would wait). Half of that leaves room for a busy machine.
const KILLED_WITHIN: Duration = Duration::from_secs(5);

/// How a stopped sleeper job must end: both steps and the job killed. Returns when the server
/// heard that the sleeping step was killed.
async fn assert_killed(server: &FakeServer, job: i64) -> Instant {
    let done = server.done(job, Duration::from_secs(30)).await;
    assert_eq!(done.state, State::Killed, "{done:?}");
    let states: Vec<(String, State)> = done.steps.iter().map(|step| (step.step.clone(), step.state)).collect();
    assert_eq!(states, [("sleeper".to_owned(), State::Killed), ("after".to_owned(), State::Killed)], "{done:?}");
    server.lock().first_update(job, "sleeper", State::Killed).expect("a killed update for the step")
}

/// When the fake server first answered the agent that `job` must stop.
fn stop_told(server: &FakeServer, job: i64) -> Instant {
    *server.lock().stops_told.get(&job).expect("the server told the agent to stop the job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_through_cancel_wait_stops_a_sleeping_step_at_once() {
    let server = FakeServer::start().await;
    server.push_job(job(10, plan(SLEEPER)));
    let agent = TestAgent::start(&server.url);
    wait_until_sleeping(&server, 10).await;
    // What the leak check at the end looks for is there now.
    assert!(!containers_of(agent.owner_pid()).is_empty(), "the sleeping step's container carries the owner's pid");

    server.lock().cancel_by_wait.insert(10);
    let killed = assert_killed(&server, 10).await;
    let took = killed.duration_since(stop_told(&server, 10));
    assert!(took < KILLED_WITHIN, "the step was killed {took:?} after the agent heard of the cancel");
    assert_eq!(server.lock().done[&10].reason.as_deref(), Some("cancelled on the server"));
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_named_in_a_heartbeat_answer_is_stopped() {
    let server = FakeServer::start().await;
    server.push_job(job(11, plan(SLEEPER)));
    let agent = TestAgent::start(&server.url);
    wait_until_sleeping(&server, 11).await;

    server.lock().stop_by_heartbeat.insert(11);
    let killed = assert_killed(&server, 11).await;
    let took = killed.duration_since(stop_told(&server, 11));
    assert!(took < KILLED_WITHIN, "the step was killed {took:?} after the heartbeat answer named it");
    assert!(server.lock().heartbeats.iter().any(|beat| beat.jobs == [11]), "heartbeats name the running job");
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_stops_the_running_job_which_reports_killed() {
    let server = FakeServer::start().await;
    server.push_job(job(12, plan(SLEEPER)));
    let agent = TestAgent::start(&server.url);
    wait_until_sleeping(&server, 12).await;

    let shutdown = Instant::now();
    agent.shutdown.cancel();
    let took = assert_killed(&server, 12).await.duration_since(shutdown);
    assert!(took < KILLED_WITHIN, "the step was killed {took:?} after shutdown");
    assert_eq!(server.lock().done[&12].reason.as_deref(), Some("the agent is shutting down"));
    // Nor does the agent wait for the step's `sleep 60` to end: `stop` fails at its 30 s ceiling.
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_agent_that_comes_back_removes_what_it_left() {
    let server = FakeServer::start().await;
    server.push_job(job(13, plan(SLEEPER)));
    let killed = TestAgent::start(&server.url);
    wait_until_sleeping(&server, 13).await;
    let dead_owner = killed.kill().await;
    assert!(!containers_of(dead_owner).is_empty(), "a killed agent tears nothing down");

    let back = TestAgent::start(&server.url);
    // It sweeps once connected to Docker, before it registers.
    assert!(server.wait_for(Duration::from_secs(30), |recorded| recorded.registrations.len() == 2).await, "no second registration");
    // The killed agent ran in this test's process, so its own teardown may still be removing
    // the step's container when the sweep asks: the engine then answers "removal already in
    // progress", which the sweep takes as done, and lists the container until it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !containers_of(dead_owner).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_nothing_left(dead_owner);
    back.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_over_its_time_limit_is_killed() {
    let server = FakeServer::start().await;
    let mut job = job(14, plan(SLEEPER));
    job.timeout_seconds = 2;
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(14, Duration::from_secs(30)).await;
    assert_eq!(done.state, State::Killed, "{done:?}");
    assert_eq!(done.reason.as_deref(), Some("the workflow timed out after 2 s"));
    assert_eq!(done.steps.iter().map(|step| step.state).collect::<Vec<_>>(), [State::Killed, State::Killed]);
    agent.stop().await.unwrap();
}
