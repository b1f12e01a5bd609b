//! Notifiers: where a repository's build results and published images are sent, for which
//! states and events, signed or not.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{json, states, states_to_json, to_json};
use crate::error::classify;
use crate::{NewNotifier, NotifierRecord, Store, StoreError};

impl Store {
    /// `StoreError::NotFound` when the repository does not exist.
    pub async fn create_notifier(&self, repo_id: i64, notifier: &NewNotifier) -> Result<NotifierRecord, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notifiers (repo_id, kind, url, states, events, secret_ciphertext) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(repo_id)
        .bind(&notifier.kind)
        .bind(&notifier.url)
        .bind(states_to_json(&notifier.states)?)
        .bind(to_json(&notifier.events, "the events of a notifier")?)
        .bind(notifier.secret_ciphertext.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("notifier {}", notifier.url), || format!("repository {repo_id}")))?;
        Ok(NotifierRecord {
            id,
            repo_id,
            kind: notifier.kind.clone(),
            url: notifier.url.clone(),
            states: notifier.states.clone(),
            events: notifier.events.clone(),
            secret_ciphertext: notifier.secret_ciphertext.clone(),
        })
    }

    /// Oldest first.
    pub async fn list_notifiers(&self, repo_id: i64) -> Result<Vec<NotifierRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", notifier_columns!(), " FROM notifiers WHERE repo_id = $1 ORDER BY id"))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(notifier_from_row).collect()
    }

    /// False when the repository has no such notifier.
    pub async fn delete_notifier(&self, repo_id: i64, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM notifiers WHERE repo_id = $1 AND id = $2").bind(repo_id).bind(id).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }
}

fn notifier_from_row(row: &AnyRow) -> Result<NotifierRecord, StoreError> {
    Ok(NotifierRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        kind: row.try_get("kind")?,
        url: row.try_get("url")?,
        states: states(row, "states")?,
        events: json(row, "events")?,
        secret_ciphertext: row.try_get("secret_ciphertext")?,
    })
}
