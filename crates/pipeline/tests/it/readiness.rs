//! `pipeline::graph`, the one decision of "is it due, does it run, how did the whole end" that
//! the runtime (steps and workflows) and the server's queue (workflows of a build) share.

use pipeline::graph::{Held, Outcome, ReadySet, overall, runs_after};
use pipeline::plan::RunOn;

#[test]
fn a_node_runs_after_what_came_before_by_its_runs_on() {
    use RunOn::{Failure, Success};
    let cases: &[(&[RunOn], bool, Result<(), Held>)] = &[
        // Nothing said: on success only, Woodpecker's default.
        (&[], false, Ok(())),
        (&[], true, Err(Held::AfterFailure)),
        (&[Success], false, Ok(())),
        (&[Success], true, Err(Held::AfterFailure)),
        (&[Failure], false, Err(Held::OnlyOnFailure)),
        (&[Failure], true, Ok(())),
        (&[Success, Failure], false, Ok(())),
        (&[Success, Failure], true, Ok(())),
    ];
    for (runs_on, upstream_failed, expected) in cases {
        assert_eq!(runs_after(runs_on, *upstream_failed), *expected, "runs_on {runs_on:?}, upstream failed: {upstream_failed}");
    }
}

#[test]
fn the_whole_ends_as_its_worst_node_and_nothing_run_is_skipped() {
    use Outcome::{Error, Failure, Killed, Skipped, Success};
    let cases: &[(&[Outcome], Outcome)] = &[
        (&[], Skipped),
        (&[Skipped, Skipped], Skipped),
        (&[Skipped, Success], Success),
        (&[Success, Error], Error),
        (&[Error, Failure, Success], Failure),
        (&[Failure, Killed], Killed),
        (&[Killed, Skipped, Error], Killed),
    ];
    for (outcomes, expected) in cases {
        assert_eq!(overall(outcomes.iter().copied()), *expected, "{outcomes:?}");
    }
    assert!(Failure.is_failure() && Error.is_failure() && Killed.is_failure());
    assert!(!Success.is_failure() && !Skipped.is_failure());
}

fn graph(nodes: &[(&str, &[&str])]) -> ReadySet {
    let owned: Vec<(String, Vec<String>)> = nodes
        .iter()
        .map(|(name, depends_on)| ((*name).to_owned(), depends_on.iter().map(|dependency| (*dependency).to_owned()).collect()))
        .collect();
    ReadySet::new(owned.iter().map(|(name, depends_on)| (name.as_str(), depends_on)))
}

/// Takes every due node, in order, by name.
fn take_due(graph: &mut ReadySet) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(node) = graph.next_due() {
        names.push(graph.name(node).to_owned());
    }
    names
}

#[test]
fn a_fan_out_starts_together_and_its_fan_in_waits_for_every_branch() {
    let mut graph = graph(&[("build", &[]), ("test", &["build"]), ("lint", &["build"]), ("deploy", &["test", "lint"])]);
    assert_eq!(take_due(&mut graph), ["build"]);
    assert_eq!(take_due(&mut graph), Vec::<String>::new(), "a started node is not due again");
    graph.finish(0, Outcome::Success);
    assert_eq!(take_due(&mut graph), ["test", "lint"]);
    graph.finish(1, Outcome::Failure);
    assert_eq!(take_due(&mut graph), Vec::<String>::new(), "deploy waits for lint");
    assert!(!graph.all_finished());
    graph.finish(2, Outcome::Success);
    assert_eq!(take_due(&mut graph), ["deploy"]);
    assert!(graph.upstream_failed(3), "test failed");
    assert!(!graph.upstream_failed(2));
    graph.finish(3, Outcome::Skipped);
    assert!(graph.all_finished());
    assert_eq!(graph.overall(), Outcome::Failure);
}

#[test]
fn unknown_dependencies_are_ignored_and_shared_names_wait_for_all() {
    let mut graph = graph(&[("a", &["not-a-node"]), ("row", &[]), ("row", &[]), ("after", &["row"])]);
    assert_eq!(take_due(&mut graph), ["a", "row", "row"]);
    graph.finish(1, Outcome::Success);
    assert!(!graph.is_due(3), "the second `row` has not finished");
    graph.finish(2, Outcome::Killed);
    assert!(graph.is_due(3) && graph.upstream_failed(3));
}

#[test]
fn a_skipped_dependency_is_finished_but_not_a_failure() {
    let mut graph = graph(&[("optional", &[]), ("next", &["optional"])]);
    assert_eq!(take_due(&mut graph), ["optional"]);
    graph.finish(0, Outcome::Skipped);
    assert!(graph.is_due(1) && !graph.upstream_failed(1));
}

#[test]
fn a_cycle_leaves_its_nodes_waiting_and_never_due() {
    let mut graph = graph(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
    assert_eq!(take_due(&mut graph), ["c"]);
    graph.finish(2, Outcome::Success);
    assert_eq!(take_due(&mut graph), Vec::<String>::new());
    assert_eq!(graph.waiting().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn nodes_held_elsewhere_are_neither_due_nor_finished() {
    // The server marks workflows an agent holds (or that wait for approval) as started.
    let mut graph = graph(&[("a", &[]), ("b", &["a"])]);
    graph.start(0);
    assert!(!graph.is_due(0) && !graph.is_due(1));
    assert_eq!(graph.outcome(0), None);
    graph.finish(0, Outcome::Error);
    assert_eq!(graph.outcome(0), Some(Outcome::Error));
    assert!(graph.is_due(1) && graph.upstream_failed(1));
}
