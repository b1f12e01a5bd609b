//! The queue: workflows waiting for an agent, claimed by one, re-queued, cancelled. The queue
//! lives in the store, so a server restart loses nothing, and every change that decides who
//! runs what is one conditional statement, so several servers can share it.

use proto::State;
use sqlx::AssertSqlSafe;

use crate::builds::{FINISHED_STATES, Stamp, stamp_of, workflow_from_row};
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
    /// no times. A finished workflow is final: of two callers finishing one (a retried `done`,
    /// two servers) one wins. True when this call changed it; `StoreError::NotFound` when there
    /// is no such workflow.
    pub async fn set_workflow_state(&self, workflow_id: i64, state: State, reason: Option<&str>, now: i64) -> Result<bool, StoreError> {
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
        let sql = format!("{sql} AND state NOT IN ({FINISHED_STATES})");
        // Only a constant is spliced into the text; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workflow_id).bind(state.as_str()).bind(reason);
        if stamp.needs_now() {
            query = query.bind(now);
        }
        if query.execute(&self.pool).await?.rows_affected() == 1 {
            return Ok(true);
        }
        match self.workflow_by_id(workflow_id).await? {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found(format!("workflow {workflow_id}"))),
        }
    }

    /// A workflow whose agent was lost back in the queue, in one transition: `running` on
    /// `agent_id` → `pending` with no agent and no times, `reason` kept, its steps back to
    /// `pending` and their logs removed (the next agent numbers its lines from 0), only if it is
    /// still that and not cancelled. Nobody (an API client, another server, the next agent)
    /// sees it half-way. True when this call re-queued it.
    pub async fn requeue_workflow_of_lost_agent(&self, workflow_id: i64, agent_id: i64, reason: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE workflows SET state = 'pending', reason = $3, agent_id = NULL, started = NULL, finished = NULL \
             WHERE id = $1 AND agent_id = $2 AND state = 'running' AND cancel_requested = 0",
        )
        .bind(workflow_id)
        .bind(agent_id)
        .bind(reason)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        let step_ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE steps SET state = 'pending', exit_code = NULL, reason = NULL, started = NULL, finished = NULL, log_lines = 0 \
             WHERE workflow_id = $1 RETURNING id",
        )
        .bind(workflow_id)
        .fetch_all(&mut *transaction)
        .await?;
        // Before the commit: once it is pending, the next agent may write new lines at once.
        for step_id in step_ids {
            self.logs.remove(step_id).await?;
        }
        transaction.commit().await?;
        Ok(true)
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
    /// `lost`, `blocked`). The agent running one learns it from its next report.
    pub async fn request_cancel(&self, build_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE workflows SET cancel_requested = 1 WHERE build_id = $1 AND state IN ('pending', 'running', 'lost', 'blocked')")
            .bind(build_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
