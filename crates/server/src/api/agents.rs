//! The agents of the server: who they are, what they run, and removing one (server admins).

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use proto::api::Agent;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms, seconds};

/// Agents known to the server, with their labels (what they may lease) and whether they are
/// connected (server admins only).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = [Agent]), (status = 403, body = proto::api::ErrorBody)))]
pub async fn list(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<Agent>>> {
    Ok(Json(list_agents(&state, &caller).await?))
}

/// The agents as the API lists them, each with how many workflows it runs: server admins only.
pub async fn list_agents(state: &AppState, caller: &Caller) -> ApiResult<Vec<Agent>> {
    caller.require_server_admin()?;
    let now = now_ms();
    let limit = state.config.agent_lost_after.as_millis() as i64;
    let mut agents = Vec::new();
    for record in state.store.list_agents().await? {
        let running = state.store.workflows_of_agent(record.id, &[proto::State::Running]).await?.len() as u32;
        agents.push(Agent {
            id: record.id,
            name: record.name,
            labels: record.labels,
            capacity: record.capacity,
            version: record.version,
            last_seen: seconds(record.last_seen),
            connected: now - record.last_seen < limit,
            running,
            created: seconds(record.created),
        });
    }
    Ok(agents)
}

/// Removes an agent (server admins only): its token stops working at once, so the agent stops,
/// and what it ran is re-queued or failed as if it were lost. Whoever holds the shared agent
/// secret can still register a new agent: rotate `GANTRY_AGENT_SECRET` to stop that.
#[utoipa::path(delete, path = "/api/v1/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn remove(caller: Caller, AxumState(state): AxumState<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    remove_agent(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes agent `name`: its token stops working and what it ran is handled as lost. Server
/// admins only.
pub async fn remove_agent(state: &AppState, caller: &Caller, name: &str) -> ApiResult<()> {
    caller.require_server_admin()?;
    let agent = state.store.agent_by_name(name).await?.ok_or_else(|| ApiError::not_found(format!("there is no agent {name}")))?;
    crate::queue::lose_workflows_of(state, &agent, &format!("agent {name} was removed by {}", caller.login())).await?;
    state.store.delete_agent(agent.id).await?;
    tracing::warn!(agent = %name, by = caller.login(), at = now_ms(), "agent removed");
    Ok(())
}
