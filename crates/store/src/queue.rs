//! The queue: workflows waiting for an agent, claimed by one, re-queued, cancelled. The queue
//! lives in the store, so a server restart loses nothing, and every change that decides who
//! runs what is one conditional statement, so several servers can share it.

use proto::State;
use sqlx::AssertSqlSafe;

use crate::builds::{Stamp, stamp_of, workflow_from_row};
use crate::columns::placeholders;
use crate::{Store, StoreError, WorkflowRecord};

impl Store {
    /// Workflows in `pending`, oldest first: the queue. The caller matches labels and dependencies.
    pub async fn pending_workflows(&self, limit: i64) -> Result<Vec<WorkflowRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", workflow_columns!(), " FROM workflows WHERE state = 'pending' ORDER BY id LIMIT $1"))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workflow_from_row).collect()
    }

    /// Number of workflows in `state` (with `pending`: the queue's depth).
    pub async fn count_workflows(&self, state: State) -> Result<i64, StoreError> {
        let count =
            sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE state = $1").bind(state.as_str()).fetch_one(&self.pool).await?;
        Ok(count)
    }

    /// `pending` → `running` on `agent_id`, only if still pending: true when this call won it.
    /// The winner's claim counts one more attempt and stamps `started`.
    pub async fn claim_workflow(&self, workflow_id: i64, agent_id: i64, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE workflows SET state = 'running', agent_id = $2, started = $3, finished = NULL, attempts = attempts + 1 \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(workflow_id)
        .bind(agent_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let won = result.rows_affected() == 1;
        tracing::debug!(workflow = workflow_id, agent = agent_id, won, "workflow claimed");
        Ok(won)
    }

    /// Sets the state and reason; stamps `started`/`finished` as for builds. `running`, `lost` and
    /// the finished states keep the agent; `pending` is a re-queue: no agent, no cancel request,
    /// no times. `StoreError::NotFound` when there is no such workflow.
    pub async fn set_workflow_state(&self, workflow_id: i64, state: State, reason: Option<&str>, now: i64) -> Result<(), StoreError> {
        let stamp = stamp_of(state);
        let sql = match stamp {
            Stamp::Clear => {
                "UPDATE workflows SET state = $2, reason = $3, agent_id = NULL, cancel_requested = 0, started = NULL, finished = NULL \
                 WHERE id = $1"
            }
            Stamp::Started => {
                "UPDATE workflows SET state = $2, reason = $3, started = COALESCE(started, $4), finished = NULL WHERE id = $1"
            }
            Stamp::Finished => "UPDATE workflows SET state = $2, reason = $3, finished = $4 WHERE id = $1",
            Stamp::Keep => "UPDATE workflows SET state = $2, reason = $3 WHERE id = $1",
        };
        let mut query = sqlx::query(sql).bind(workflow_id).bind(state.as_str()).bind(reason);
        if stamp.needs_now() {
            query = query.bind(now);
        }
        let result = query.execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("workflow {workflow_id}")));
        }
        Ok(())
    }

    /// Workflows held by an agent in one of `states`, oldest first.
    pub async fn workflows_of_agent(&self, agent_id: i64, states: &[State]) -> Result<Vec<WorkflowRecord>, StoreError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            concat!("SELECT ", workflow_columns!(), " FROM workflows WHERE agent_id = $1 AND state IN ({}) ORDER BY id"),
            placeholders(2, states.len())
        );
        // Only placeholders are spliced into the text; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(agent_id);
        for state in states {
            query = query.bind(state.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(workflow_from_row).collect()
    }

    /// Sets the cancel flag of every unfinished workflow of the build (`pending`, `running`,
    /// `lost`). The agent running one learns it from its next report.
    pub async fn request_cancel(&self, build_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE workflows SET cancel_requested = 1 WHERE build_id = $1 AND state IN ('pending', 'running', 'lost')")
            .bind(build_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
