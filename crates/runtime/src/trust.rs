//! Trust: what a pipeline may only do on a trusted repository or with `gantry exec --trusted`.

use pipeline::plan::{Plan, StepPlan};

/// A step that needs trust, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedsTrust {
    pub workflow: String,
    pub step: String,
    pub reason: String,
}

/// Everything in a plan that needs trust: privileged containers, host paths and the Docker
/// socket (which is root on the host), host devices, and the host's network.
pub fn needs_trust(plan: &Plan) -> Vec<NeedsTrust> {
    let mut found = Vec::new();
    for workflow in plan.workflows.iter().filter(|workflow| !workflow.skipped) {
        for step in workflow.services.iter().chain(&workflow.steps).filter(|step| !step.skipped) {
            for reason in reasons(step) {
                found.push(NeedsTrust { workflow: workflow.name.clone(), step: step.name.clone(), reason });
            }
        }
    }
    found
}

fn reasons(step: &StepPlan) -> Vec<String> {
    let mut reasons = Vec::new();
    if step.privileged {
        reasons.push("it is privileged: a privileged container can take over the host".to_owned());
    }
    for volume in &step.volumes {
        let source = volume.split(':').next().unwrap_or("");
        if source.ends_with("docker.sock") {
            reasons.push(format!("it mounts the Docker socket ({volume}): whoever has the socket is root on the host"));
        } else if source.starts_with('/') && volume.contains(':') {
            reasons.push(format!("it mounts the host path {source}: a step could read or change files outside its workspace"));
        }
    }
    if !step.devices.is_empty() {
        reasons.push(format!("it uses host devices ({})", step.devices.join(", ")));
    }
    if step.network_mode.as_deref().is_some_and(|mode| mode == "host") {
        reasons.push("it uses the host's network".to_owned());
    }
    reasons
}
