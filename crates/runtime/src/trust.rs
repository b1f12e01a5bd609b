//! Trust: what a plan may do only on a trusted repository or with `gantry exec --trusted`.
//!
//! The one decision `gantry exec` and the agent both make before anything runs. The rules (what
//! a step needs, and which kind of trust) are `pipeline::trust`'s, which lint uses for its notes.

use pipeline::plan::Plan;
pub use pipeline::trust::{TrustFlags, TrustKind};

/// A step that needs trust: which kind, for which key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedsTrust {
    pub workflow: String,
    pub step: String,
    pub kind: TrustKind,
    /// The step key that asks for it (`privileged`, `volumes`, `network_mode`, `dns`, ...).
    pub key: &'static str,
    pub reason: String,
}

/// Everything in a plan that needs trust, in the steps that may run: privileged containers and
/// host devices, host paths and the Docker socket, and any network or name resolution other
/// than the workflow's own.
pub fn needs_trust(plan: &Plan) -> Vec<NeedsTrust> {
    let mut found = Vec::new();
    for workflow in plan.workflows.iter().filter(|workflow| !workflow.skipped) {
        for step in workflow.services.iter().chain(&workflow.steps).filter(|step| !step.skipped) {
            for need in pipeline::trust::step_needs(step) {
                found.push(NeedsTrust {
                    workflow: workflow.name.clone(),
                    step: step.name.clone(),
                    kind: need.kind,
                    key: need.key,
                    reason: need.reason,
                });
            }
        }
    }
    found
}

/// What a run with `granted` trust must refuse: every finding whose kind is not granted. Empty
/// when the plan may run.
pub fn refused(plan: &Plan, granted: TrustFlags) -> Vec<NeedsTrust> {
    needs_trust(plan).into_iter().filter(|need| !granted.grants(need.kind)).collect()
}
