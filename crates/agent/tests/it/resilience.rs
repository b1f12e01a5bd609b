//! The server may be down: at the agent's start (it keeps trying, and registers when the server comes),
//! or in the middle of a job (no line is lost or doubled). A wrong secret is not retried, a
//! refused token stops the agent, and a restarted agent shows the token it kept.

use std::time::Duration;

use agent::AgentError;
use proto::State;
use proto::agent::PREFIX;

use crate::server::{AGENT_TOKEN, FakeServer, ServerState, SilentServer};
use crate::support::{TestAgent, job, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_waits_for_a_server_that_is_not_up_yet() {
    let silent = SilentServer::start().await;
    let address = silent.address;
    let agent = TestAgent::start(&format!("http://{address}"));
    // A first attempt and a retry, both unanswered.
    assert!(
        silent.wait_for_requests("/register", 2, Duration::from_secs(30)).await,
        "the agent did not try again: {:?}",
        silent.requests()
    );
    let attempts = silent.stop().await;
    let register = format!("POST {PREFIX}/register HTTP/1.1");
    assert!(attempts.iter().all(|attempt| *attempt == register), "{attempts:?}");

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
    // Down long enough for the agent to send lines nobody stores: they must come again later.
    let down = SilentServer::start_at(server.address).await;
    let unanswered = "/jobs/41/updates";
    assert!(down.wait_for_requests(unanswered, 2, Duration::from_secs(30)).await, "no updates were tried: {:?}", down.requests());
    down.stop().await;
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
async fn an_agent_whose_token_the_server_refuses_stops_and_says_why() {
    let server = FakeServer::start().await;
    server.lock().forget_agent = true;
    let agent = TestAgent::start(&server.url);
    match agent.ended().await {
        Err(error @ AgentError::Refused { .. }) => assert!(error.to_string().contains("start it again to register"), "{error}"),
        other => panic!("expected the agent to stop, got {other:?}"),
    }
    assert_eq!(server.lock().registrations.len(), 1, "an agent whose token was revoked does not register again by itself");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_agent_proves_with_its_kept_token_that_it_is_the_same_agent() {
    let server = FakeServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().join("work");
    let kept = work_dir.join("agent-test-agent.token");
    let first = TestAgent::start_with(&server.url, |config| config.work_dir = work_dir.clone());
    assert!(server.wait_for(Duration::from_secs(30), |recorded| recorded.registrations.len() == 1).await, "no registration");
    // The agent keeps the token once it has read the server's answer, a moment after the server
    // recorded the request.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !kept.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await.unwrap();
    assert_eq!(server.lock().registrations[0].token, None, "a new agent has no token to show");

    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    let second = TestAgent::start_with(&server.url, |config| config.work_dir = work_dir.clone());
    assert!(server.wait_for(Duration::from_secs(30), |recorded| recorded.registrations.len() == 2).await, "no second registration");
    assert_eq!(server.lock().registrations[1].token.as_deref(), Some(AGENT_TOKEN));
    second.stop().await.unwrap();
}
