//! Credentials for private registries, per repository and host. The store seals each password
//! itself on write, bound to its repository and host, and opens them only for a job
//! (`registry_auths`); lists never carry them.

use proto::artifact::{RegistryAuth, RegistryHost};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::classify;
use crate::{NewRegistryCredential, RegistryCredentialRecord, Store, StoreError};

impl Store {
    /// Creates or replaces the credentials of a host; replaced ones keep their `created` time.
    pub async fn put_registry_credential(
        &self,
        repo_id: i64,
        credential: &NewRegistryCredential,
        now: i64,
    ) -> Result<RegistryCredentialRecord, StoreError> {
        let host = credential.host.as_str();
        let row = sqlx::query(concat!(
            "INSERT INTO registry_credentials (repo_id, host, username, password, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (repo_id, host) DO UPDATE SET username = excluded.username, password = excluded.password, \
                 updated = excluded.updated \
             RETURNING ",
            registry_columns!()
        ))
        .bind(repo_id)
        .bind(host)
        .bind(&credential.username)
        .bind(self.sealer.seal_registry_password(repo_id, host, &credential.password))
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("registry {host}"), || format!("repository {repo_id}")))?;
        registry_from_row(&row)
    }

    /// By host; without passwords.
    pub async fn list_registry_credentials(&self, repo_id: i64) -> Result<Vec<RegistryCredentialRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", registry_columns!(), " FROM registry_credentials WHERE repo_id = $1 ORDER BY host"))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(registry_from_row).collect()
    }

    /// False when there were none for that host.
    pub async fn delete_registry_credential(&self, repo_id: i64, host: &RegistryHost) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM registry_credentials WHERE repo_id = $1 AND host = $2")
            .bind(repo_id)
            .bind(host.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Every credential of the repository with its password opened, by host: what a job of the
    /// repository may carry. A password that does not open is `Corrupt`, naming the host.
    pub async fn registry_auths(&self, repo_id: i64) -> Result<Vec<RegistryAuth>, StoreError> {
        let rows = sqlx::query("SELECT host, username, password FROM registry_credentials WHERE repo_id = $1 ORDER BY host")
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        let mut auths = Vec::with_capacity(rows.len());
        for row in rows {
            let host: String = row.try_get("host")?;
            let sealed: Vec<u8> = row.try_get("password")?;
            let password = self.sealer.open_registry_password(repo_id, &host, &sealed).map_err(|_| {
                StoreError::Corrupt(format!(
                    "the password for registry {host} of repository {repo_id} cannot be decrypted with this key (was GANTRY_SECRET_KEY changed?)"
                ))
            })?;
            auths.push(RegistryAuth { host, username: row.try_get("username")?, password });
        }
        Ok(auths)
    }
}

fn registry_from_row(row: &AnyRow) -> Result<RegistryCredentialRecord, StoreError> {
    Ok(RegistryCredentialRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        host: row.try_get("host")?,
        username: row.try_get("username")?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
    })
}
