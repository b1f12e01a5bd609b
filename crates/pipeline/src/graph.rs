//! The one answer to "is this node due, does it run, and how did the whole end", for steps in a
//! workflow (the runtime) and for workflows in a build (the runtime for `gantry exec`, the
//! server's queue for builds). Pure: callers keep their own states and report outcomes here.

use crate::plan::RunOn;

/// How a finished node ended, as far as the nodes after it and the whole are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    /// Could not run at all (no image, no engine, a plan that cannot be read).
    Error,
    /// Stopped by cancellation or a timeout.
    Killed,
    /// Did not run: its conditions, or what came before it, said so.
    Skipped,
}

impl Outcome {
    /// Whether nodes after this one see a failure (`when.status: failure` runs, the rest not).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Error | Outcome::Killed)
    }
}

/// Why a due node does not run although its own conditions hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Something before it failed and it runs only on success.
    AfterFailure,
    /// Nothing before it failed and it runs only on failure.
    OnlyOnFailure,
}

/// Whether a node that runs on `runs_on` (empty: on success, the default) runs when what came
/// before it did (`upstream_failed`) or did not fail.
pub fn runs_after(runs_on: &[RunOn], upstream_failed: bool) -> Result<(), Held> {
    let on_success = runs_on.is_empty() || runs_on.contains(&RunOn::Success);
    match (upstream_failed, on_success, runs_on.contains(&RunOn::Failure)) {
        (true, _, false) => Err(Held::AfterFailure),
        (false, false, _) => Err(Held::OnlyOnFailure),
        _ => Ok(()),
    }
}

/// How a set of finished nodes ended together: killed over failure over error over success
/// over skipped. Nothing at all, or nothing but skipped nodes, is `Skipped`: nothing ran.
pub fn overall(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    let rank = |outcome: Outcome| match outcome {
        Outcome::Killed => 4,
        Outcome::Failure => 3,
        Outcome::Error => 2,
        Outcome::Success => 1,
        Outcome::Skipped => 0,
    };
    outcomes.into_iter().max_by_key(|outcome| rank(*outcome)).unwrap_or(Outcome::Skipped)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Waiting,
    Started,
    Finished(Outcome),
}

/// A dependency graph being walked: which nodes are due (every dependency finished), which
/// are started, how the finished ones ended. A dependency on a name that is not a node is
/// ignored, as Woodpecker does (lint warns about it); one on a name several nodes share waits
/// for all of them.
#[derive(Clone, Debug)]
pub struct ReadySet {
    names: Vec<String>,
    dependencies: Vec<Vec<usize>>,
    states: Vec<NodeState>,
}

impl ReadySet {
    /// The graph of `nodes`, given as `(name, depends_on)` in their order; every node waiting.
    pub fn new<'a, D>(nodes: impl IntoIterator<Item = (&'a str, D)>) -> ReadySet
    where
        D: IntoIterator<Item = &'a String>,
    {
        let nodes: Vec<(&str, Vec<&String>)> =
            nodes.into_iter().map(|(name, depends_on)| (name, depends_on.into_iter().collect())).collect();
        // Every node of a name: names are unique in a plan, but a graph read back from storage
        // is not trusted to be.
        let mut by_name: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
        for (node, (name, _)) in nodes.iter().enumerate() {
            by_name.entry(name).or_default().push(node);
        }
        let dependencies = nodes
            .iter()
            .map(|(_, depends_on)| {
                depends_on.iter().flat_map(|dependency| by_name.get(dependency.as_str()).into_iter().flatten().copied()).collect()
            })
            .collect();
        let names: Vec<String> = nodes.iter().map(|(name, _)| (*name).to_owned()).collect();
        ReadySet { states: vec![NodeState::Waiting; names.len()], names, dependencies }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, node: usize) -> &str {
        &self.names[node]
    }

    /// Whether `node` waits and every dependency of it has finished.
    pub fn is_due(&self, node: usize) -> bool {
        self.states[node] == NodeState::Waiting
            && self.dependencies[node].iter().all(|dependency| matches!(self.states[*dependency], NodeState::Finished(_)))
    }

    /// The first waiting node that is due, now marked started; `None` when none is.
    pub fn next_due(&mut self) -> Option<usize> {
        let node = (0..self.len()).find(|node| self.is_due(*node))?;
        self.states[node] = NodeState::Started;
        Some(node)
    }

    /// Marks `node` started (a workflow an agent holds).
    pub fn start(&mut self, node: usize) {
        self.states[node] = NodeState::Started;
    }

    /// Records how `node` ended.
    pub fn finish(&mut self, node: usize, outcome: Outcome) {
        self.states[node] = NodeState::Finished(outcome);
    }

    /// How `node` ended, if it has.
    pub fn outcome(&self, node: usize) -> Option<Outcome> {
        match self.states[node] {
            NodeState::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Whether a dependency of `node` ended in failure.
    pub fn upstream_failed(&self, node: usize) -> bool {
        self.dependencies[node].iter().any(|dependency| self.outcome(*dependency).is_some_and(Outcome::is_failure))
    }

    /// Whether every node has finished.
    pub fn all_finished(&self) -> bool {
        self.states.iter().all(|state| matches!(state, NodeState::Finished(_)))
    }

    /// The nodes still waiting (none is due when nothing is started: a cycle).
    pub fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|node| self.states[*node] == NodeState::Waiting)
    }

    /// How the finished nodes ended together (see [`overall`]).
    pub fn overall(&self) -> Outcome {
        overall((0..self.len()).filter_map(|node| self.outcome(node)))
    }
}
