//! Repository secrets. Values arrive encrypted by the server's secret service: the store only
//! keeps the bytes.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{json, to_json};
use crate::error::classify;
use crate::{NewSecret, SecretRecord, Store, StoreError};

impl Store {
    /// Creates or replaces; a replaced secret keeps its `created` time.
    pub async fn put_secret(&self, repo_id: i64, secret: &NewSecret, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (repo_id, name, ciphertext, events, images, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (repo_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, events = excluded.events, \
                 images = excluded.images, updated = excluded.updated",
        )
        .bind(repo_id)
        .bind(&secret.name)
        .bind(&secret.ciphertext)
        .bind(to_json(&secret.events, "the events of a secret")?)
        .bind(to_json(&secret.images, "the images of a secret")?)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("secret {}", secret.name), || format!("repository {repo_id}")))?;
        Ok(())
    }

    /// By name.
    pub async fn list_secrets(&self, repo_id: i64) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", secret_columns!(), " FROM secrets WHERE repo_id = $1 ORDER BY name"))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(secret_from_row).collect()
    }

    /// False when there was none.
    pub async fn delete_secret(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        let result =
            sqlx::query("DELETE FROM secrets WHERE repo_id = $1 AND name = $2").bind(repo_id).bind(name).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }
}

fn secret_from_row(row: &AnyRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        name: row.try_get("name")?,
        ciphertext: row.try_get("ciphertext")?,
        events: json(row, "events")?,
        images: json(row, "images")?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
    })
}
