//! Builds: numbers per repository (also under concurrent creation), workflows and steps kept in
//! the order given, state stamps, step reports, retention, counts.

use std::collections::BTreeMap;

use proto::State;
use store::{NewAgent, NewStep, StepChange, Store, StoreError};

use crate::fixtures::{NOW, diagnostic, lines, new_build, repo, workflow};

store_tests!(
    numbers_count_per_repository,
    concurrent_builds_get_distinct_numbers,
    workflows_and_steps_keep_their_order,
    a_numbered_build_gets_its_plan_later,
    build_states_stamp_times,
    steps_take_reports_by_name,
    retention_lists_finished_steps_once,
    builds_and_workflows_are_counted_by_state,
);

async fn numbers_count_per_repository(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    for (repo_id, expected) in [(web.id, 1), (web.id, 2), (api.id, 1), (web.id, 3), (api.id, 2)] {
        let build = store.create_build(&new_build(repo_id, "main"), &[], NOW).await.unwrap();
        assert_eq!((build.repo_id, build.number), (repo_id, expected));
        assert_eq!(store.build_by_number(repo_id, expected).await.unwrap(), Some(build.clone()));
        assert_eq!(store.build_by_id(build.id).await.unwrap(), Some(build));
    }
    assert_eq!(store.build_by_number(web.id, 4).await.unwrap(), None);

    // Newest first, paged by number.
    for (limit, before, expected) in [(10, None, vec![3, 2, 1]), (2, None, vec![3, 2]), (2, Some(2), vec![1]), (5, Some(1), vec![])] {
        let numbers: Vec<i64> = store.list_builds(web.id, limit, before).await.unwrap().iter().map(|build| build.number).collect();
        assert_eq!(numbers, expected, "limit {limit}, before {before:?}");
    }
    assert!(matches!(store.create_build(&new_build(api.id + 100, "main"), &[], NOW).await, Err(StoreError::NotFound { .. })));
}

async fn concurrent_builds_get_distinct_numbers(store: Store) {
    let web = repo(&store, "acme/web").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let build = new_build(web.id, "main");
                store.create_build(&build, &[workflow("ci", &["build", "test"])], NOW).await.unwrap().number
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<i64>>());
}

async fn workflows_and_steps_keep_their_order(store: Store) {
    let web = repo(&store, "acme/web").await;
    let mut new = new_build(web.id, "feature");
    new.event = "pull_request".into();
    new.pull_request = Some("42".into());
    new.from_fork = true;
    new.variables = BTreeMap::from([("DEPLOY".into(), "yes".into())]);
    new.diagnostics = vec![diagnostic("unused-matrix", 3)];
    let mut lint = workflow("lint", &["clippy", "fmt"]);
    lint.labels = BTreeMap::from([("platform".into(), "linux/amd64".into())]);
    let mut test = workflow("test", &["database", "clone", "unit", "integration"]);
    test.depends_on = vec!["lint".into()];
    test.plan = serde_json::json!({ "name": "test", "steps": [{ "name": "unit", "commands": ["cargo test"] }] });
    test.steps[0].reason = Some("a service".into());
    let mut docs = workflow("docs", &["build"]);
    docs.state = State::Skipped;
    docs.reason = Some("when: branch".into());
    docs.steps[0] = NewStep { name: "build".into(), state: State::Skipped, reason: None };
    let build = store.create_build(&new, &[lint.clone(), test.clone(), docs.clone()], NOW).await.unwrap();
    assert_eq!(store.build_by_id(build.id).await.unwrap(), Some(build.clone()));
    assert_eq!(
        (build.from_fork, build.pull_request.as_deref(), &build.variables, &build.diagnostics),
        (true, Some("42"), &new.variables, &new.diagnostics)
    );

    let workflows = store.workflows_of_build(build.id).await.unwrap();
    let names: Vec<&str> = workflows.iter().map(|workflow| workflow.name.as_str()).collect();
    assert_eq!(names, ["lint", "test", "docs"]);
    for (stored, given) in workflows.iter().zip([&lint, &test, &docs]) {
        assert_eq!((stored.build_id, stored.state, &stored.reason), (build.id, given.state, &given.reason));
        assert_eq!((&stored.depends_on, &stored.labels, &stored.plan), (&given.depends_on, &given.labels, &given.plan));
        assert_eq!(
            (stored.agent_id, stored.cancel_requested, stored.attempts, stored.created, stored.started),
            (None, false, 0, NOW, None)
        );
        assert_eq!(stored.finished, given.state.is_finished().then_some(NOW), "a workflow created skipped is finished");
        assert_eq!(store.workflow_by_id(stored.id).await.unwrap().as_ref(), Some(stored));

        let steps = store.steps_of_workflow(stored.id).await.unwrap();
        let found: Vec<(&str, i64, State, Option<&str>)> =
            steps.iter().map(|step| (step.name.as_str(), step.position, step.state, step.reason.as_deref())).collect();
        let expected: Vec<(&str, i64, State, Option<&str>)> = given
            .steps
            .iter()
            .zip(0..)
            .map(|(step, position)| (step.name.as_str(), position, step.state, step.reason.as_deref()))
            .collect();
        assert_eq!(found, expected);
        for step in &steps {
            assert_eq!((step.workflow_id, step.exit_code, step.started, step.finished, step.log_lines), (stored.id, None, None, None, 0));
            assert_eq!(store.step_by_id(step.id).await.unwrap().as_ref(), Some(step));
        }
    }

    // Many steps go in in more than one statement and keep their order.
    let names: Vec<String> = (0..450).map(|index| format!("step {index}")).collect();
    let many = workflow("many", &names.iter().map(String::as_str).collect::<Vec<_>>());
    let build = store.create_build(&new_build(web.id, "main"), &[many], NOW).await.unwrap();
    let steps = store.steps_of_workflow(store.workflows_of_build(build.id).await.unwrap()[0].id).await.unwrap();
    assert_eq!(steps.iter().map(|step| step.name.clone()).collect::<Vec<_>>(), names);
    assert_eq!(steps.last().map(|step| step.position), Some(449));
}

/// `(started, finished)`.
type Stamps = (Option<i64>, Option<i64>);

async fn a_numbered_build_gets_its_plan_later(store: Store) {
    let web = repo(&store, "acme/web").await;
    let build = store.create_build(&new_build(web.id, "main"), &[], NOW).await.unwrap();
    assert!(store.workflows_of_build(build.id).await.unwrap().is_empty());

    let diagnostics = vec![diagnostic("deprecated-key", 4)];
    store.set_build_diagnostics(build.id, &diagnostics).await.unwrap();
    store.add_workflows(build.id, &[workflow("lint", &["fmt"]), workflow("test", &["unit", "e2e"])], NOW + 1).await.unwrap();

    let stored = store.build_by_id(build.id).await.unwrap().unwrap();
    assert_eq!((stored.number, stored.diagnostics), (1, diagnostics.clone()));
    let workflows = store.workflows_of_build(build.id).await.unwrap();
    assert_eq!(
        workflows.iter().map(|workflow| (workflow.name.as_str(), workflow.created)).collect::<Vec<_>>(),
        [("lint", NOW + 1), ("test", NOW + 1)]
    );
    let steps: Vec<String> = store.steps_of_workflow(workflows[1].id).await.unwrap().into_iter().map(|step| step.name).collect();
    assert_eq!(steps, ["unit", "e2e"]);

    let missing = build.id + 100;
    assert!(matches!(store.set_build_diagnostics(missing, &diagnostics).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.add_workflows(missing, &[workflow("x", &["y"])], NOW).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.workflows_of_build(build.id).await.unwrap().len(), 2);
}

async fn build_states_stamp_times(store: Store) {
    let web = repo(&store, "acme/web").await;
    let first = store.create_build(&new_build(web.id, "main"), &[], NOW).await.unwrap();
    let second = store.create_build(&new_build(web.id, "main"), &[], NOW).await.unwrap();
    let other_branch = store.create_build(&new_build(web.id, "feature"), &[], NOW).await.unwrap();
    let mut broken = new_build(web.id, "main");
    broken.state = State::Error;
    broken.reason = Some("the pipeline has errors".into());
    let broken = store.create_build(&broken, &[], NOW).await.unwrap();
    assert_eq!((broken.state, broken.started, broken.finished), (State::Error, None, Some(NOW)));

    // (state, reason, at, then: (started, finished))
    let steps: [(State, Option<&str>, i64, Stamps); 6] = [
        (State::Running, None, NOW + 1, (Some(NOW + 1), None)),
        (State::Running, None, NOW + 2, (Some(NOW + 1), None)),
        (State::Lost, Some("agent gone"), NOW + 3, (Some(NOW + 1), None)),
        (State::Pending, None, NOW + 4, (None, None)),
        (State::Running, None, NOW + 5, (Some(NOW + 5), None)),
        (State::Killed, Some("cancelled by alice"), NOW + 6, (Some(NOW + 5), Some(NOW + 6))),
    ];
    for (state, reason, at, (started, finished)) in steps {
        assert!(store.set_build_state(first.id, state, reason, at).await.unwrap(), "{state} changes an unfinished build");
        let build = store.build_by_id(first.id).await.unwrap().unwrap();
        assert_eq!(
            (build.state, build.reason.as_deref(), build.started, build.finished),
            (state, reason, started, finished),
            "after {state}"
        );
    }

    // A finished build is final.
    for state in [State::Success, State::Pending, State::Running] {
        assert!(!store.set_build_state(first.id, state, None, NOW + 7).await.unwrap(), "a killed build does not become {state}");
    }
    let killed = store.build_by_id(first.id).await.unwrap().unwrap();
    assert_eq!((killed.state, killed.reason.as_deref(), killed.finished), (State::Killed, Some("cancelled by alice"), Some(NOW + 6)));

    store.set_build_state(second.id, State::Running, None, NOW).await.unwrap();
    let active: Vec<i64> = store.active_builds_of_branch(web.id, "main").await.unwrap().iter().map(|build| build.number).collect();
    assert_eq!(active, [second.number]);
    store.set_build_state(second.id, State::Success, None, NOW).await.unwrap();
    let active: Vec<i64> = store.active_builds_of_branch(web.id, "main").await.unwrap().iter().map(|build| build.number).collect();
    assert!(active.is_empty());
    assert_eq!(store.active_builds_of_branch(web.id, "feature").await.unwrap(), [other_branch]);
    assert!(matches!(store.set_build_state(broken.id + 100, State::Running, None, NOW).await, Err(StoreError::NotFound { .. })));
}

async fn steps_take_reports_by_name(store: Store) {
    let web = repo(&store, "acme/web").await;
    let build = store.create_build(&new_build(web.id, "main"), &[workflow("ci", &["build", "test"])], NOW).await.unwrap();
    let workflow_id = store.workflows_of_build(build.id).await.unwrap()[0].id;
    let change =
        |state, exit_code, started, finished| StepChange { name: "build".into(), state, exit_code, reason: None, started, finished };

    // (report, then: state, exit code, started, finished)
    let reports = [
        (change(State::Running, None, Some(NOW + 1), None), State::Running, None, Some(NOW + 1), None),
        (change(State::Running, None, None, None), State::Running, None, Some(NOW + 1), None),
        (change(State::Failure, Some(2), None, Some(NOW + 9)), State::Failure, Some(2), Some(NOW + 1), Some(NOW + 9)),
    ];
    for (report, state, exit_code, started, finished) in reports {
        store.update_step(workflow_id, &report).await.unwrap();
        let step = store.steps_of_workflow(workflow_id).await.unwrap().remove(0);
        assert_eq!((step.state, step.exit_code, step.started, step.finished), (state, exit_code, started, finished), "after {report:?}");
    }
    let untouched = store.steps_of_workflow(workflow_id).await.unwrap().remove(1);
    assert_eq!((untouched.name.as_str(), untouched.state, untouched.started), ("test", State::Pending, None));
    let unknown = StepChange { name: "deploy".into(), ..change(State::Running, None, None, None) };
    assert!(matches!(store.update_step(workflow_id, &unknown).await, Err(StoreError::NotFound { .. })));

    let step_id = store.steps_of_workflow(workflow_id).await.unwrap()[0].id;
    store.logs().append(step_id, 0, &lines(0, 5)).await.unwrap();
    store.set_step_log_lines(step_id, 5).await.unwrap();
    assert_eq!(store.step_by_id(step_id).await.unwrap().unwrap().log_lines, 5);
    assert!(matches!(store.set_step_log_lines(step_id + 100, 1).await, Err(StoreError::NotFound { .. })));

    // A re-queue starts the steps over, logs included: the next agent numbers its lines from 0.
    let agent = NewAgent { name: "lost".into(), labels: BTreeMap::new(), capacity: 1, version: "1".into() };
    let agent = store.register_agent(&agent, "token-hash", NOW).await.unwrap();
    assert!(store.claim_workflow(workflow_id, agent.id, NOW).await.unwrap());
    assert!(store.requeue_workflow_of_lost_agent(workflow_id, agent.id, "re-queued: agent lost").await.unwrap());
    for step in store.steps_of_workflow(workflow_id).await.unwrap() {
        assert_eq!(
            (step.state, step.exit_code, step.reason, step.started, step.finished, step.log_lines),
            (State::Pending, None, None, None, None, 0)
        );
    }
    assert_eq!(store.logs().next_seq(step_id).await.unwrap(), 0);
    assert_eq!(store.logs().append(step_id, 0, &lines(0, 2)).await.unwrap(), 2);
}

async fn retention_lists_finished_steps_once(store: Store) {
    let web = repo(&store, "acme/web").await;
    let build = store.create_build(&new_build(web.id, "main"), &[workflow("ci", &["a", "b", "c", "d"])], NOW).await.unwrap();
    let workflow_id = store.workflows_of_build(build.id).await.unwrap()[0].id;
    let steps = store.steps_of_workflow(workflow_id).await.unwrap();
    // a finished at NOW+30, b at NOW+10, c at NOW+20, d never ran.
    for (name, finished) in [("a", NOW + 30), ("b", NOW + 10), ("c", NOW + 20)] {
        let change = StepChange {
            name: name.into(),
            state: State::Success,
            exit_code: Some(0),
            reason: None,
            started: Some(NOW),
            finished: Some(finished),
        };
        store.update_step(workflow_id, &change).await.unwrap();
    }
    for step in &steps {
        store.logs().append(step.id, 0, &lines(0, 1)).await.unwrap();
        store.logs().finish(step.id).await.unwrap();
    }
    let id = |name: &str| steps.iter().find(|step| step.name == name).map(|step| step.id).unwrap();

    assert_eq!(store.steps_finished_before(NOW + 25, 10).await.unwrap(), [id("b"), id("c")]);
    assert_eq!(store.steps_finished_before(NOW + 100, 2).await.unwrap(), [id("b"), id("c")]);
    assert_eq!(store.steps_finished_before(NOW + 10, 10).await.unwrap(), Vec::<i64>::new());

    store.remove_step_logs(id("b")).await.unwrap();
    assert!(!store.logs().compressed_path_of(id("b")).exists());
    assert!(store.logs().read(id("b"), 0, 10).await.unwrap().is_empty());
    assert_eq!(store.step_by_id(id("b")).await.unwrap().unwrap().log_lines, 0);
    assert_eq!(store.steps_finished_before(NOW + 100, 10).await.unwrap(), [id("c"), id("a")]);
}

async fn builds_and_workflows_are_counted_by_state(store: Store) {
    let web = repo(&store, "acme/web").await;
    let mut counts = store.count_builds_by_state().await.unwrap();
    assert_eq!(counts.len(), State::ALL.len());
    assert!(counts.values().all(|count| *count == 0));

    for state in [State::Pending, State::Pending, State::Running, State::Success] {
        let build = store.create_build(&new_build(web.id, "main"), &[workflow("a", &[]), workflow("b", &[])], NOW).await.unwrap();
        store.set_build_state(build.id, state, None, NOW).await.unwrap();
        if state == State::Running {
            let workflow = &store.workflows_of_build(build.id).await.unwrap()[0];
            store.set_workflow_state(workflow.id, State::Running, None, NOW).await.unwrap();
        }
    }
    counts = store.count_builds_by_state().await.unwrap();
    assert_eq!((counts["pending"], counts["running"], counts["success"], counts["failure"]), (2, 1, 1, 0));
    assert_eq!(store.count_workflows(State::Pending).await.unwrap(), 7);
    assert_eq!(store.count_workflows(State::Running).await.unwrap(), 1);
    assert_eq!(store.count_workflows(State::Lost).await.unwrap(), 0);
}
