//! Agents: registered by name (an agent restarting keeps its row), each with a token of its own
//! (kept as its SHA-256), seen at each heartbeat, removed by an administrator.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{json, narrow, to_json};
use crate::{AgentRecord, NewAgent, Store, StoreError};

impl Store {
    /// Creates the agent, or updates the one with the same name (an agent restarting): labels,
    /// capacity, version, `last_seen` and the token change, the id and `created` stay. The
    /// previous token of the name stops working.
    pub async fn register_agent(&self, agent: &NewAgent, token_hash: &str, now: i64) -> Result<AgentRecord, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO agents (name, labels, capacity, version, last_seen, created, token_hash) VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, capacity = excluded.capacity, \
                 version = excluded.version, last_seen = excluded.last_seen, token_hash = excluded.token_hash \
             RETURNING ",
            agent_columns!()
        ))
        .bind(&agent.name)
        .bind(to_json(&agent.labels, "the labels of an agent")?)
        .bind(i64::from(agent.capacity))
        .bind(&agent.version)
        .bind(now)
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        let record = agent_from_row(&row)?;
        tracing::info!(agent = record.id, name = %record.name, "agent registered");
        Ok(record)
    }

    pub async fn agent_by_id(&self, id: i64) -> Result<Option<AgentRecord>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    pub async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// The agent holding the token whose SHA-256 is `token_hash`.
    pub async fn agent_by_token_hash(&self, token_hash: &str) -> Result<Option<AgentRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Whether `token_hash` is the current token of the agent named `name`.
    pub async fn agent_token_matches(&self, name: &str, token_hash: &str) -> Result<bool, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE name = $1 AND token_hash = $2")
            .bind(name)
            .bind(token_hash)
            .fetch_one(&self.pool)
            .await?;
        Ok(count == 1)
    }

    /// Removes an agent: its token stops working; workflows it held keep no agent. Returns
    /// whether there was one.
    pub async fn delete_agent(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM agents WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// A heartbeat. `StoreError::NotFound` when there is no such agent (it must register again).
    pub async fn touch_agent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let result = sqlx::query("UPDATE agents SET last_seen = $2 WHERE id = $1").bind(id).bind(now).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("agent {id}")));
        }
        Ok(())
    }

    /// By name.
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(agent_from_row).collect()
    }
}

fn agent_from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        labels: json(row, "labels")?,
        capacity: narrow(row, "capacity")?,
        version: row.try_get("version")?,
        last_seen: row.try_get("last_seen")?,
        created: row.try_get("created")?,
    })
}
