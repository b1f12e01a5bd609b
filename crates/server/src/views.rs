//! Store records → API bodies. What must never leave the server (hashes, webhook secrets,
//! tokens, ciphertexts, registry passwords, environments' signing secrets) is dropped here, in
//! one place.

use proto::api::{self, Role};
use store::{
    BuildRecord, DeploymentEntry, DriftEntry, EnvironmentRecord, RegistryCredentialRecord, RepoRecord, StepRecord, UserRecord,
    WorkflowRecord,
};

use crate::state::{AppState, seconds};

pub fn user(record: &UserRecord) -> api::User {
    api::User { id: record.id, login: record.login.clone(), admin: record.admin, created: seconds(record.created) }
}

pub fn repo(state: &AppState, record: &RepoRecord, role: Option<Role>) -> api::Repo {
    api::Repo {
        id: record.id,
        full_name: record.full_name.clone(),
        clone_url: proto::remote::redact_credentials(&record.settings.clone_url),
        forge: record.settings.forge,
        default_branch: record.settings.default_branch.clone(),
        config_path: record.settings.config_path.clone(),
        trust: record.settings.trust,
        timeout_minutes: record.settings.timeout_minutes,
        cancel_previous: record.settings.cancel_previous,
        poll_interval_seconds: record.settings.poll_interval_seconds,
        lost_policy: record.settings.lost_policy,
        approval: record.settings.approval,
        forge_api_url: record.settings.forge_api_url.clone(),
        webhook_url: state.webhook_url(&record.full_name),
        role,
        webhook_secret: None,
        created: seconds(record.created),
    }
}

pub fn build(record: &BuildRecord, full_name: &str, workflows: Option<Vec<api::Workflow>>) -> api::Build {
    api::Build {
        id: record.id,
        repo: full_name.to_owned(),
        number: record.number,
        event: record.event.clone(),
        state: record.state,
        reference: record.reference.clone(),
        branch: record.branch.clone(),
        commit: record.commit.clone(),
        message: record.message.clone(),
        author: record.author.clone(),
        trigger: record.trigger.clone(),
        pull_request: record.pull_request.clone(),
        reason: record.reason.clone(),
        from_fork: record.from_fork,
        approved_by: record.approved_by.clone(),
        approved: record.approved_at.map(seconds),
        created: seconds(record.created),
        started: record.started.map(seconds),
        finished: record.finished.map(seconds),
        diagnostics: record.diagnostics.clone(),
        workflows,
    }
}

pub fn workflow(record: &WorkflowRecord, agent: Option<String>, steps: &[StepRecord]) -> api::Workflow {
    api::Workflow {
        id: record.id,
        name: record.name.clone(),
        state: record.state,
        agent,
        reason: record.reason.clone(),
        started: record.started.map(seconds),
        finished: record.finished.map(seconds),
        steps: steps.iter().map(step).collect(),
    }
}

pub fn step(record: &StepRecord) -> api::Step {
    api::Step {
        id: record.id,
        name: record.name.clone(),
        state: record.state,
        exit_code: record.exit_code,
        reason: record.reason.clone(),
        started: record.started.map(seconds),
        finished: record.finished.map(seconds),
        log_lines: record.log_lines,
    }
}

/// A build with its workflows and steps, as `GET …/builds/{number}` answers.
pub async fn full_build(state: &AppState, record: &BuildRecord, full_name: &str) -> Result<api::Build, store::StoreError> {
    let mut workflows = Vec::new();
    for workflow_record in state.store.workflows_of_build(record.id).await? {
        let steps = state.store.steps_of_workflow(workflow_record.id).await?;
        let agent = match workflow_record.agent_id {
            Some(id) => state.store.agent_by_id(id).await?.map(|agent| agent.name),
            None => None,
        };
        workflows.push(workflow(&workflow_record, agent, &steps));
    }
    Ok(build(record, full_name, Some(workflows)))
}

/// A registry credential without its password (the record has none: only a job's
/// `Store::registry_auths` opens one).
pub fn registry(record: &RegistryCredentialRecord) -> api::Registry {
    api::Registry {
        host: record.host.clone(),
        username: record.username.clone(),
        created: seconds(record.created),
        updated: seconds(record.updated),
    }
}

/// An environment: what its deployer reported, never its signing secret (the record has none:
/// only the event receiver opens it).
pub fn environment(state: &AppState, record: &EnvironmentRecord) -> api::Environment {
    api::Environment {
        name: record.name.clone(),
        created: seconds(record.created),
        last_event: record.last_event.map(seconds),
        deployments: record.deployments,
        apps: record.apps,
        events_url: state.environment_events_url(&record.name),
    }
}

/// A deployment, with the build that produced its image when the caller may see it.
pub fn deployment(entry: &DeploymentEntry, build: Option<api::BuildLink>) -> api::Deployment {
    let record = &entry.record;
    let to_seconds = |ms: u64| i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    api::Deployment {
        id: record.id.clone(),
        environment: record.environment.clone(),
        app: record.app.clone(),
        kind: record.kind.clone(),
        from_image: record.from_image.clone(),
        to_image: record.to_image.clone(),
        from_revision: record.from_revision.clone(),
        revision: record.revision.clone(),
        author: record.author.clone(),
        started: to_seconds(record.started_at),
        finished: record.finished_at.map(to_seconds),
        duration_ms: record.duration_ms(),
        outcome: record.outcome,
        rolled_back: entry.rolled_back,
        reason: record.reason.clone(),
        owner_team: entry.owner_team.clone(),
        build,
    }
}

pub fn drift(entry: &DriftEntry) -> api::Drift {
    api::Drift { drift: entry.drift.clone(), detected: seconds(entry.received) }
}
