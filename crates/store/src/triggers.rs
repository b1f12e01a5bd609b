//! What starts builds besides a person: webhook deliveries (claimed before their build starts,
//! to ignore redeliveries and replays), the refs a poll saw last, cron schedules, and the remote
//! a server administrator chose for a repository.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::to_json;
use crate::error::classify;
use crate::{CronRecord, NewCron, Store, StoreError};

impl Store {
    /// Claims a webhook delivery, known by several keys (its id, a digest of its body), before
    /// its build starts. False when any key was seen before, completed or still being worked on:
    /// a redelivery or a replay. A claim made before `stale_before` and never completed (its
    /// server stopped) is taken over. Of concurrent claims of one key, one wins.
    pub async fn claim_delivery(&self, repo_id: i64, keys: &[String], now: i64, stale_before: i64) -> Result<bool, StoreError> {
        let mut claimed: Vec<String> = Vec::new();
        for key in keys {
            if self.claim_delivery_key(repo_id, key, now, stale_before).await? {
                claimed.push(key.clone());
            } else {
                self.release_delivery(repo_id, &claimed).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn claim_delivery_key(&self, repo_id: i64, key: &str, now: i64, stale_before: i64) -> Result<bool, StoreError> {
        let inserted = sqlx::query("INSERT INTO deliveries (repo_id, delivery_id, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(repo_id)
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|error| classify(error, || format!("delivery {key}"), || format!("repository {repo_id}")))?;
        if inserted.rows_affected() == 1 {
            return Ok(true);
        }
        let taken_over = sqlx::query(
            "UPDATE deliveries SET created = $3 WHERE repo_id = $1 AND delivery_id = $2 AND completed IS NULL AND created < $4",
        )
        .bind(repo_id)
        .bind(key)
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool)
        .await?;
        Ok(taken_over.rows_affected() == 1)
    }

    /// Remembers a delivery known by its id alone, claimed and completed at once; false when it
    /// was seen before.
    pub async fn record_delivery(&self, repo_id: i64, delivery_id: &str, now: i64) -> Result<bool, StoreError> {
        let keys = [delivery_id.to_owned()];
        let claimed = self.claim_delivery(repo_id, &keys, now, i64::MIN).await?;
        if claimed {
            self.complete_delivery(repo_id, &keys, now).await?;
        }
        Ok(claimed)
    }

    /// Marks a claimed delivery done: later deliveries with any of its keys are duplicates.
    pub async fn complete_delivery(&self, repo_id: i64, keys: &[String], now: i64) -> Result<(), StoreError> {
        for key in keys {
            sqlx::query("UPDATE deliveries SET completed = $3 WHERE repo_id = $1 AND delivery_id = $2")
                .bind(repo_id)
                .bind(key)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Gives up the claim of a delivery whose build could not start: its redelivery is taken.
    pub async fn release_delivery(&self, repo_id: i64, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            sqlx::query("DELETE FROM deliveries WHERE repo_id = $1 AND delivery_id = $2 AND completed IS NULL")
                .bind(repo_id)
                .bind(key)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Forgets the deliveries claimed before `before` (redeliveries come within hours); returns
    /// how many. A delivery forgotten is taken again: this is the window of de-duplication.
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

impl Store {
    /// Remembers that a server administrator (`by`) set `clone_url` on a repository.
    pub async fn approve_remote(&self, repo_id: i64, clone_url: &str, by: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO remote_approvals (repo_id, clone_url, approved_by, created) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo_id) DO UPDATE SET clone_url = excluded.clone_url, approved_by = excluded.approved_by, \
                 created = excluded.created",
        )
        .bind(repo_id)
        .bind(clone_url)
        .bind(by)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("approval of repository {repo_id}"), || format!("repository {repo_id}")))?;
        Ok(())
    }

    /// The clone URL a server administrator last set on a repository, if one did.
    pub async fn approved_remote(&self, repo_id: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT clone_url FROM remote_approvals WHERE repo_id = $1").bind(repo_id).fetch_optional(&self.pool).await?)
    }

    /// Forgets the approval (someone else changed the clone URL).
    pub async fn forget_remote_approval(&self, repo_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM remote_approvals WHERE repo_id = $1").bind(repo_id).execute(&self.pool).await?;
        Ok(())
    }
}
