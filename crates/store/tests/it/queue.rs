//! The queue: oldest pending first, one winner per claim, re-queues, the cancel flag, an
//! agent's workflows.

use std::collections::BTreeMap;

use proto::State;
use store::{AgentRecord, NewAgent, Store, StoreError, WorkflowRecord};

use crate::fixtures::{NOW, new_build, repo, workflow};

store_tests!(
    pending_workflows_are_served_oldest_first,
    one_claim_wins_a_race,
    a_requeue_clears_the_agent_and_times,
    cancel_flags_unfinished_workflows,
    agents_hold_workflows_in_states,
);

async fn agent(store: &Store, name: &str) -> AgentRecord {
    let agent = NewAgent { name: name.into(), labels: BTreeMap::new(), capacity: 2, version: "0.0.0".into() };
    store.register_agent(&agent, &format!("hash of {name}"), NOW).await.unwrap()
}

/// A build of `names` workflows; returns them in order.
async fn workflows(store: &Store, repo_id: i64, names: &[&str]) -> Vec<WorkflowRecord> {
    let workflows: Vec<_> = names.iter().map(|name| workflow(name, &["step"])).collect();
    let build = store.create_build(&new_build(repo_id, "main"), &workflows, NOW).await.unwrap();
    store.workflows_of_build(build.id).await.unwrap()
}

fn names(workflows: &[WorkflowRecord]) -> Vec<&str> {
    workflows.iter().map(|workflow| workflow.name.as_str()).collect()
}

async fn pending_workflows_are_served_oldest_first(store: Store) {
    let web = repo(&store, "acme/web").await;
    let runner = agent(&store, "runner").await;
    let first = workflows(&store, web.id, &["a", "b"]).await;
    workflows(&store, web.id, &["c"]).await;
    let mut skipped = new_build(web.id, "main");
    skipped.state = State::Skipped;
    let mut never = workflow("never", &[]);
    never.state = State::Skipped;
    store.create_build(&skipped, &[never], NOW).await.unwrap();

    assert_eq!(names(&store.pending_workflows(10).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(names(&store.pending_workflows(2).await.unwrap()), ["a", "b"]);
    assert!(store.claim_workflow(first[0].id, runner.id, NOW).await.unwrap());
    assert_eq!(names(&store.pending_workflows(10).await.unwrap()), ["b", "c"]);
    assert_eq!(store.count_workflows(State::Pending).await.unwrap(), 2);
}

async fn one_claim_wins_a_race(store: Store) {
    let web = repo(&store, "acme/web").await;
    let mut agents = Vec::new();
    for index in 0..8 {
        agents.push(agent(&store, &format!("agent-{index}")).await);
    }
    for round in 0..5 {
        let workflow = workflows(&store, web.id, &["ci"]).await.remove(0);
        let claims: Vec<_> = agents
            .iter()
            .map(|agent| {
                let (store, agent_id) = (store.clone(), agent.id);
                tokio::spawn(async move { (agent_id, store.claim_workflow(workflow.id, agent_id, NOW + round).await.unwrap()) })
            })
            .collect();
        let mut winners = Vec::new();
        for claim in claims {
            let (agent_id, won) = claim.await.unwrap();
            if won {
                winners.push(agent_id);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one claim wins, got {winners:?}");
        let claimed = store.workflow_by_id(workflow.id).await.unwrap().unwrap();
        assert_eq!(
            (claimed.state, claimed.agent_id, claimed.attempts, claimed.started),
            (State::Running, Some(winners[0]), 1, Some(NOW + round))
        );
    }
}

async fn a_requeue_clears_the_agent_and_times(store: Store) {
    let web = repo(&store, "acme/web").await;
    let (first, second) = (agent(&store, "first").await, agent(&store, "second").await);
    let workflow = workflows(&store, web.id, &["ci"]).await.remove(0);

    assert!(store.claim_workflow(workflow.id, first.id, NOW + 1).await.unwrap());
    assert!(!store.claim_workflow(workflow.id, second.id, NOW + 2).await.unwrap(), "a running workflow cannot be claimed");
    store.request_cancel(workflow.build_id).await.unwrap();
    // (state, reason, at, then: agent, cancel requested, started, finished)
    let changes: [(State, Option<&str>, i64, Held); 3] = [
        (State::Running, None, NOW + 3, (Some(first.id), true, Some(NOW + 1), None)),
        (State::Lost, Some("no heartbeat"), NOW + 4, (Some(first.id), true, Some(NOW + 1), None)),
        (State::Pending, Some("requeued"), NOW + 5, (None, false, None, None)),
    ];
    for (state, reason, at, held) in changes {
        check(&store, workflow.id, state, reason, at, held).await;
    }

    assert!(store.claim_workflow(workflow.id, second.id, NOW + 6).await.unwrap());
    let claimed = store.workflow_by_id(workflow.id).await.unwrap().unwrap();
    assert_eq!(
        (claimed.agent_id, claimed.attempts, claimed.started, claimed.reason.as_deref()),
        (Some(second.id), 2, Some(NOW + 6), Some("requeued"))
    );
    check(&store, workflow.id, State::Success, None, NOW + 7, (Some(second.id), false, Some(NOW + 6), Some(NOW + 7))).await;
    assert!(matches!(store.set_workflow_state(workflow.id + 100, State::Pending, None, NOW).await, Err(StoreError::NotFound { .. })));
}

/// `(agent, cancel requested, started, finished)`.
type Held = (Option<i64>, bool, Option<i64>, Option<i64>);

/// Sets a workflow's state, then expects what `Held` lists.
async fn check(store: &Store, workflow_id: i64, state: State, reason: Option<&str>, at: i64, expected: Held) {
    store.set_workflow_state(workflow_id, state, reason, at).await.unwrap();
    let workflow = store.workflow_by_id(workflow_id).await.unwrap().unwrap();
    assert_eq!((workflow.state, workflow.reason.as_deref()), (state, reason));
    assert_eq!((workflow.agent_id, workflow.cancel_requested, workflow.started, workflow.finished), expected, "after {state}");
}

async fn cancel_flags_unfinished_workflows(store: Store) {
    let web = repo(&store, "acme/web").await;
    let runner = agent(&store, "runner").await;
    let build = workflows(&store, web.id, &["pending", "running", "lost", "done"]).await;
    let other = workflows(&store, web.id, &["other"]).await;
    for workflow in &build[1..] {
        assert!(store.claim_workflow(workflow.id, runner.id, NOW).await.unwrap());
    }
    store.set_workflow_state(build[2].id, State::Lost, None, NOW).await.unwrap();
    store.set_workflow_state(build[3].id, State::Success, None, NOW).await.unwrap();

    store.request_cancel(build[0].build_id).await.unwrap();
    for (workflow, expected) in build.iter().zip([true, true, true, false]).chain([(&other[0], false)]) {
        let flagged = store.workflow_by_id(workflow.id).await.unwrap().unwrap().cancel_requested;
        assert_eq!(flagged, expected, "workflow {}", workflow.name);
    }
}

async fn agents_hold_workflows_in_states(store: Store) {
    let web = repo(&store, "acme/web").await;
    let (runner, idle) = (agent(&store, "runner").await, agent(&store, "idle").await);
    let held = workflows(&store, web.id, &["running", "lost", "done", "waiting"]).await;
    for workflow in &held[..3] {
        assert!(store.claim_workflow(workflow.id, runner.id, NOW).await.unwrap());
    }
    store.set_workflow_state(held[1].id, State::Lost, None, NOW).await.unwrap();
    store.set_workflow_state(held[2].id, State::Failure, None, NOW).await.unwrap();

    for (states, expected) in [
        (vec![State::Running], vec!["running"]),
        (vec![State::Running, State::Lost], vec!["running", "lost"]),
        (vec![State::Failure, State::Success], vec!["done"]),
        (vec![State::Pending], vec![]),
        (vec![], vec![]),
    ] {
        assert_eq!(names(&store.workflows_of_agent(runner.id, &states).await.unwrap()), expected, "{states:?}");
    }
    assert!(store.workflows_of_agent(idle.id, &[State::Running]).await.unwrap().is_empty());
}
