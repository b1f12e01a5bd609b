//! States and log lines: every line of every step reaches the server once, in order, even when
//! requests fail, and a step printing a lot does not lose any.

use std::time::Duration;

use proto::State;
use proto::agent::LogStream;

use crate::server::FakeServer;
use crate::support::{TestAgent, job, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_with_two_steps_succeeds_and_every_line_arrives_once_in_order() {
    let server = FakeServer::start().await;
    let mut job = job(
        1,
        plan(
            r#"
skip_clone: true
steps:
  first:
    image: IMAGE
    environment:
      TOKEN:
        from_secret: token
    commands:
      - echo "token is $TOKEN"
      - for i in $(seq 1 50); do echo "line $i"; done
      - echo "to stderr" >&2
  second:
    image: IMAGE
    commands:
      - echo second
"#,
        ),
    );
    job.secrets.insert("token".into(), "s3cr3t-value".into());
    server.push_job(job);
    let agent = TestAgent::start(&server.url);
    let done = server.done(1, Duration::from_secs(60)).await;

    assert_eq!(done.state, State::Success, "{done:?}");
    let steps: Vec<(String, State, Option<i64>)> = done.steps.iter().map(|step| (step.step.clone(), step.state, step.exit_code)).collect();
    assert_eq!(steps, [("first".to_owned(), State::Success, Some(0)), ("second".to_owned(), State::Success, Some(0))]);
    assert!(done.steps.iter().all(|step| step.started_ms.is_some() && step.finished_ms >= step.started_ms), "{done:?}");
    {
        let recorded = server.lock();
        // Docker keeps the order within a stream, not across stdout and stderr.
        let stream = |wanted: LogStream| -> Vec<String> {
            recorded.logs[&(1, "first".to_owned())].iter().filter(|line| line.stream == wanted).map(|line| line.text.clone()).collect()
        };
        let mut expected = vec!["+ echo \"token is $TOKEN\"".to_owned(), "token is ********".to_owned()];
        expected.push("+ for i in $(seq 1 50); do echo \"line $i\"; done".to_owned());
        expected.extend((1..=50).map(|number| format!("line {number}")));
        expected.push("+ echo \"to stderr\" >&2".to_owned());
        assert_eq!(stream(LogStream::Stdout), expected);
        assert_eq!(stream(LogStream::Stderr), ["to stderr"]);
        assert_eq!(recorded.lines(1, "second"), ["+ echo second", "second"]);
        assert_eq!((recorded.gaps, recorded.resent_lines), (0, 0));
        // The end came after the last line.
        assert_eq!(recorded.lines_at_done[&1], expected.len() + 1 + 2);
        assert_eq!(recorded.states(1, "first"), [State::Running, State::Success]);
        assert_eq!(recorded.states(1, "second"), [State::Running, State::Success]);
        let registration = &recorded.registrations[0];
        assert_eq!((registration.name.as_str(), registration.capacity), ("test-agent", 1));
        assert_eq!(registration.labels.get("backend").map(String::as_str), Some("docker"));
        assert!(registration.labels["platform"].starts_with("linux/"), "{:?}", registration.labels);
    }
    assert!(server.wait_for(Duration::from_secs(5), |recorded| !recorded.heartbeats.is_empty()).await, "no heartbeat");
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lines_arrive_exactly_once_when_update_requests_fail_or_their_answers_are_lost() {
    let server = FakeServer::start().await;
    {
        let mut recorded = server.lock();
        recorded.reject_updates = 2;
        recorded.lose_update_answers = 2;
    }
    server.push_job(job(2, plan("skip_clone: true\nsteps:\n  count:\n    image: IMAGE\n    commands:\n      - seq 1 3000\n")));
    let agent = TestAgent::start(&server.url);
    let done = server.done(2, Duration::from_secs(90)).await;

    assert_eq!(done.state, State::Success, "{done:?}");
    {
        let recorded = server.lock();
        let mut expected = vec!["+ seq 1 3000".to_owned()];
        expected.extend((1..=3000).map(|number| number.to_string()));
        assert_eq!(recorded.lines(2, "count"), expected);
        assert_eq!(recorded.gaps, 0, "the agent skipped lines");
        assert!(recorded.resent_lines > 0, "lost answers should have made the agent send stored lines again");
        assert_eq!((recorded.reject_updates, recorded.lose_update_answers), (0, 0));
        assert_eq!(recorded.states(2, "count").last(), Some(&State::Success));
    }
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_printing_200k_lines_arrives_complete() {
    let server = FakeServer::start().await;
    server.push_job(job(3, plan("skip_clone: true\nsteps:\n  flood:\n    image: IMAGE\n    commands:\n      - seq 1 200000\n")));
    let agent = TestAgent::start(&server.url);
    let done = server.done(3, Duration::from_secs(120)).await;

    assert_eq!(done.state, State::Success, "{done:?}");
    {
        let recorded = server.lock();
        let lines = recorded.lines(3, "flood");
        assert_eq!(lines.len(), 200_001);
        assert!(lines[1..].iter().enumerate().all(|(index, line)| *line == (index + 1).to_string()), "lines out of order or changed");
        assert_eq!((recorded.gaps, recorded.resent_lines), (0, 0));
    }
    agent.stop().await.unwrap();
}
