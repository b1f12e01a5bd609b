//! The server may be down: at the agent's start (it waits and registers when the server comes),
//! or in the middle of a job (no line is lost or doubled). A wrong secret is not retried.

use std::time::Duration;

use agent::AgentError;
use proto::State;

use crate::server::{FakeServer, ServerState};
use crate::support::{TestAgent, job, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_waits_for_a_server_that_is_not_up_yet() {
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let agent = TestAgent::start(&format!("http://{address}"));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let server = FakeServer::start_at(address, ServerState::new()).await;
    server.push_job(job(40, plan("skip_clone: true\nsteps:\n  hello:\n    image: IMAGE\n    commands:\n      - echo hello\n")));
    let done = server.done(40, Duration::from_secs(60)).await;
    assert_eq!(done.state, State::Success, "{done:?}");
    assert_eq!(server.lock().lines(40, "hello"), ["+ echo hello", "hello"]);
    assert_eq!(server.lock().registrations.len(), 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restart_in_the_middle_of_a_job_loses_and_doubles_no_line() {
    let mut server = FakeServer::start().await;
    let pipeline = "skip_clone: true\nsteps:\n  ticks:\n    image: IMAGE\n    commands:\n      - for i in $(seq 1 300); do echo \"tick $i\"; sleep 0.01; done\n";
    server.push_job(job(41, plan(pipeline)));
    let agent = TestAgent::start(&server.url);
    assert!(server.wait_for(Duration::from_secs(30), |recorded| recorded.lines(41, "ticks").len() > 20).await, "no ticks came");

    server.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = FakeServer::start_at(server.address, server.state.clone()).await;
    let done = server.done(41, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Success, "{done:?}");
    {
        let recorded = server.lock();
        let mut expected = vec!["+ for i in $(seq 1 300); do echo \"tick $i\"; sleep 0.01; done".to_owned()];
        expected.extend((1..=300).map(|number| format!("tick {number}")));
        assert_eq!(recorded.lines(41, "ticks"), expected);
        assert_eq!(recorded.gaps, 0);
    }
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_the_server_forgot_registers_again_and_goes_on() {
    let server = FakeServer::start().await;
    server.lock().forget_agent = true;
    server.push_job(job(42, plan("skip_clone: true\nsteps:\n  hello:\n    image: IMAGE\n    commands:\n      - echo hello\n")));
    let agent = TestAgent::start(&server.url);
    let done = server.done(42, Duration::from_secs(60)).await;
    assert_eq!(done.state, State::Success, "{done:?}");
    assert_eq!(server.lock().registrations.len(), 2);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_secret_ends_the_agent_with_the_servers_reason() {
    let server = FakeServer::start().await;
    let agent = TestAgent::start_with(&server.url, |config| config.secret = "wrong".into());
    match agent.ended().await {
        Err(AgentError::Rejected { status: 401, message, .. }) => assert_eq!(message, "the agent secret is wrong"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_the_agent_cannot_read_is_reported_as_an_error() {
    let server = FakeServer::start().await;
    server.lock().raw_jobs.push_back(serde_json::json!({ "id": 43, "plan": "a plan of a newer server" }));
    let agent = TestAgent::start(&server.url);
    let done = server.done(43, Duration::from_secs(30)).await;
    assert_eq!(done.state, State::Error);
    let reason = done.reason.unwrap_or_default();
    assert!(reason.starts_with("the agent cannot read this job"), "{reason}");
    agent.stop().await.unwrap();
}
