//! What starts builds besides a person: webhook deliveries (remembered to ignore redeliveries),
//! the refs a poll saw last, and cron schedules.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::to_json;
use crate::error::classify;
use crate::{CronRecord, NewCron, Store, StoreError};

impl Store {
    /// Remembers a webhook delivery id; false when it was seen before (a redelivery).
    pub async fn record_delivery(&self, repo_id: i64, delivery_id: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("INSERT INTO deliveries (repo_id, delivery_id, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(repo_id)
            .bind(delivery_id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|error| classify(error, || format!("delivery {delivery_id}"), || format!("repository {repo_id}")))?;
        Ok(result.rows_affected() == 1)
    }

    /// Forgets the deliveries recorded before `before` (redeliveries come within hours); returns
    /// how many.
    pub async fn forget_deliveries_before(&self, before: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM deliveries WHERE created < $1").bind(before).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }

    /// The refs (`refs/heads/main` → sha) seen by the last poll of a repository.
    pub async fn polled_refs(&self, repo_id: i64) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT refs FROM polled_refs WHERE repo_id = $1").bind(repo_id).fetch_optional(&self.pool).await?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("polled refs of repository {repo_id}: {error}")))
        })
        .transpose()
    }

    pub async fn set_polled_refs(&self, repo_id: i64, refs: &BTreeMap<String, String>, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO polled_refs (repo_id, refs, updated) VALUES ($1, $2, $3) \
             ON CONFLICT (repo_id) DO UPDATE SET refs = excluded.refs, updated = excluded.updated",
        )
        .bind(repo_id)
        .bind(to_json(refs, "polled refs")?)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("polled refs of repository {repo_id}"), || format!("repository {repo_id}")))?;
        Ok(())
    }

    /// Creates or replaces a schedule by name; a replaced one keeps its id and `created`.
    pub async fn put_cron(&self, cron: &NewCron, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO crons (repo_id, name, schedule, branch, next_run, created) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (repo_id, name) DO UPDATE SET schedule = excluded.schedule, branch = excluded.branch, \
                 next_run = excluded.next_run",
        )
        .bind(cron.repo_id)
        .bind(&cron.name)
        .bind(&cron.schedule)
        .bind(&cron.branch)
        .bind(cron.next)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("cron {}", cron.name), || format!("repository {}", cron.repo_id)))?;
        Ok(())
    }

    /// By name.
    pub async fn list_crons(&self, repo_id: i64) -> Result<Vec<CronRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", cron_columns!(), " FROM crons WHERE repo_id = $1 ORDER BY name"))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(cron_from_row).collect()
    }

    pub async fn delete_cron(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM crons WHERE repo_id = $1 AND name = $2").bind(repo_id).bind(name).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }

    /// Schedules whose `next` is at or before `now`, the most overdue first.
    pub async fn due_crons(&self, now: i64) -> Result<Vec<CronRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", cron_columns!(), " FROM crons WHERE next_run <= $1 ORDER BY next_run, id"))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(cron_from_row).collect()
    }

    /// Moves a schedule on, only if its `next` is still `previous` (so two servers fire it once):
    /// true when this call moved it.
    pub async fn advance_cron(&self, id: i64, previous: i64, next: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE crons SET next_run = $3 WHERE id = $1 AND next_run = $2")
            .bind(id)
            .bind(previous)
            .bind(next)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn cron_from_row(row: &AnyRow) -> Result<CronRecord, StoreError> {
    Ok(CronRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        name: row.try_get("name")?,
        schedule: row.try_get("schedule")?,
        branch: row.try_get("branch")?,
        next: row.try_get("next_run")?,
        created: row.try_get("created")?,
    })
}
