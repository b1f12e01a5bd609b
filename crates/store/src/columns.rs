//! The column lists each record is read from, and the helpers that decode the portable column
//! types (0/1 flags, JSON text, state names) back into Rust values.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::StoreError;

macro_rules! user_columns {
    () => {
        "id, login, password_hash, admin, created"
    };
}

macro_rules! repo_columns {
    () => {
        "id, full_name, clone_url, forge, default_branch, config_path, webhook_secret, trust_privileged, \
         trust_volumes, trust_network, timeout_minutes, cancel_previous, poll_interval_seconds, lost_policy, \
         forge_token, clone_username, clone_password, created, forge_api_url, approval"
    };
}

macro_rules! secret_columns {
    () => {
        "id, repo_id, name, ciphertext, events, images, created, updated"
    };
}

macro_rules! registry_columns {
    () => {
        "id, repo_id, host, username, created, updated"
    };
}

macro_rules! build_columns {
    () => {
        "id, repo_id, number, event, state, reference, branch, commit_sha, message, author, trigger_kind, \
         pull_request, reason, diagnostics, variables, from_fork, approved_by, approved_at, created, started, finished"
    };
}

macro_rules! workflow_columns {
    () => {
        "id, build_id, name, state, reason, depends_on, labels, plan, agent_id, cancel_requested, attempts, \
         created, started, finished"
    };
}

macro_rules! step_columns {
    () => {
        "id, workflow_id, name, position, state, exit_code, reason, started, finished, log_lines"
    };
}

macro_rules! agent_columns {
    () => {
        "id, name, labels, capacity, version, last_seen, created"
    };
}

macro_rules! cron_columns {
    () => {
        "id, repo_id, name, schedule, branch, next_run, created"
    };
}

macro_rules! notifier_columns {
    () => {
        "id, repo_id, kind, url, states, events, secret_ciphertext"
    };
}

/// The columns of an `EnvironmentRecord`, with its counts, from `environments e`.
macro_rules! environment_columns {
    () => {
        "e.id, e.name, e.created, e.last_event, \
         (SELECT COUNT(*) FROM deployments d WHERE d.environment_id = e.id) AS deployments, \
         (SELECT COUNT(*) FROM (SELECT d.app FROM deployments d WHERE d.environment_id = e.id \
             UNION SELECT f.app FROM drift_events f WHERE f.environment_id = e.id) AS reported) AS apps"
    };
}

/// The columns of a `DeploymentEntry`, from `deployments d` joined to `environments e`.
macro_rules! deployment_columns {
    () => {
        "e.name AS environment, d.deployment_id, d.app, d.kind, d.from_image, d.to_image, d.from_revision, d.revision, \
         d.author, d.started_at, d.finished_at, d.outcome, d.reason, d.owner_team, d.rolled_back, d.received_at"
    };
}

/// A 0/1 flag.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A flag as it is stored.
pub(crate) fn flag_value(value: bool) -> i64 {
    i64::from(value)
}

/// JSON text.
pub(crate) fn json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("column {column} does not hold the JSON expected: {error}")))
}

/// A value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(format!("cannot encode {what} as JSON: {error}")))
}

pub(crate) fn state(row: &AnyRow, column: &str) -> Result<proto::State, StoreError> {
    let text: String = row.try_get(column)?;
    proto::State::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("column {column} holds {text:?}, which is not a state")))
}

/// States stored as a JSON list of their names.
pub(crate) fn states(row: &AnyRow, column: &str) -> Result<Vec<proto::State>, StoreError> {
    let names: Vec<String> = json(row, column)?;
    names
        .iter()
        .map(|name| {
            proto::State::parse(name).ok_or_else(|| StoreError::Corrupt(format!("column {column} holds {name:?}, which is not a state")))
        })
        .collect()
}

pub(crate) fn states_to_json(states: &[proto::State]) -> Result<String, StoreError> {
    let names: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
    to_json(&names, "states")
}

/// An integer column that must fit the narrower type of the record.
pub(crate) fn narrow<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let value: i64 = row.try_get(column)?;
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("column {column} holds {value}, out of range")))
}

pub(crate) fn narrow_optional<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|value| T::try_from(value).map_err(|_| StoreError::Corrupt(format!("column {column} holds {value}, out of range"))))
        .transpose()
}

/// A unit enum of the wire (`DeploymentKind`, `DeploymentOutcome`) as the name it has there.
pub(crate) fn wire_name<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(StoreError::Corrupt(format!("{what} has no name on the wire"))),
    }
}

/// A unit enum of the wire read back from its name.
pub(crate) fn from_wire_name<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| StoreError::Corrupt(format!("column {column} holds {text:?}, which it cannot hold")))
}

/// `$first, $first+1, …` for `count` parameters, for lists bound one value each.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|index| format!("${index}")).collect::<Vec<_>>().join(", ")
}
