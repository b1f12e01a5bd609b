//! Repositories and their members.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{flag, flag_value, narrow, narrow_optional};
use crate::error::classify;
use crate::{NewRepo, RepoRecord, RepoSettings, Store, StoreError};

/// Binds the settings of a repository (a `NewRepo` or a `RepoRecord`: the fields are the same),
/// with its credentials as sealed in `$sealed`, as parameters `$1` to `$18`, in the column order
/// both the insert and the update name them.
macro_rules! bind_settings_of {
    ($query:expr, $repo:expr, $sealed:expr) => {
        $query
            .bind(&$repo.full_name)
            .bind(&$repo.settings.clone_url)
            .bind($repo.settings.forge.as_str())
            .bind(&$repo.settings.default_branch)
            .bind(&$repo.settings.config_path)
            .bind(&$sealed.webhook_secret)
            .bind(flag_value($repo.settings.trust.privileged))
            .bind(flag_value($repo.settings.trust.volumes))
            .bind(flag_value($repo.settings.trust.network))
            .bind(i64::from($repo.settings.timeout_minutes))
            .bind(flag_value($repo.settings.cancel_previous))
            .bind($repo.settings.poll_interval_seconds.map(i64::from))
            .bind($repo.settings.lost_policy.as_str())
            .bind($sealed.forge_token.as_deref())
            .bind($repo.settings.clone_username.as_deref())
            .bind($sealed.clone_password.as_deref())
            .bind($repo.settings.forge_api_url.as_deref())
            .bind($repo.settings.approval.as_str())
    };
}

/// The credential columns of a repository as they are stored: sealed, bound to the repository's
/// id and the column.
struct SealedCredentials {
    webhook_secret: String,
    forge_token: Option<String>,
    clone_password: Option<String>,
}

const CREDENTIAL_COLUMNS: [&str; 3] = ["webhook_secret", "forge_token", "clone_password"];

impl Store {
    fn seal_credentials(
        &self,
        id: i64,
        webhook_secret: &str,
        forge_token: Option<&str>,
        clone_password: Option<&str>,
    ) -> SealedCredentials {
        SealedCredentials {
            webhook_secret: self.sealer.seal_credential(id, "webhook_secret", webhook_secret),
            forge_token: forge_token.map(|token| self.sealer.seal_credential(id, "forge_token", token)),
            clone_password: clone_password.map(|password| self.sealer.seal_credential(id, "clone_password", password)),
        }
    }

    fn open_credential(&self, id: i64, column: &str, stored: &str) -> Result<String, StoreError> {
        self.sealer.open_credential(id, column, stored).map_err(|_| {
            StoreError::Corrupt(format!(
                "the {column} of repository {id} cannot be decrypted with this key (was GANTRY_SECRET_KEY changed?)"
            ))
        })
    }

    /// Seals the credentials written before they were sealed (by an older Gantry). Runs at
    /// every open; it finds nothing to do once they are sealed.
    pub(crate) async fn seal_plain_credentials(&self) -> Result<(), StoreError> {
        for column in CREDENTIAL_COLUMNS {
            // The column names come from the constant above; values are bound.
            let select = format!("SELECT id, {column} AS value FROM repos WHERE {column} IS NOT NULL AND {column} NOT LIKE 'sealed:v1:%'");
            let rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch_all(&self.pool).await?;
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let value: String = row.try_get("value")?;
                let update = format!("UPDATE repos SET {column} = $2 WHERE id = $1 AND {column} = $3");
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(id)
                    .bind(self.sealer.seal_credential(id, column, &value))
                    .bind(&value)
                    .execute(&self.pool)
                    .await?;
                tracing::info!(repo = id, column, "sealed a credential stored in plain text");
            }
        }
        Ok(())
    }

    /// `StoreError::Conflict` when `full_name` exists.
    pub async fn create_repo(&self, repo: &NewRepo, now: i64) -> Result<RepoRecord, StoreError> {
        // Credentials are sealed bound to the id, which only the insert gives: they go in empty
        // and are set, sealed, in the same transaction.
        let empty = SealedCredentials { webhook_secret: String::new(), forge_token: None, clone_password: None };
        let mut transaction = self.pool.begin().await?;
        let id: i64 = bind_settings_of!(
            sqlx::query_scalar(
                "INSERT INTO repos (full_name, clone_url, forge, default_branch, config_path, webhook_secret, \
                     trust_privileged, trust_volumes, trust_network, timeout_minutes, cancel_previous, \
                     poll_interval_seconds, lost_policy, forge_token, clone_username, clone_password, forge_api_url, approval, \
                     created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
            ),
            repo,
            empty
        )
        .bind(now)
        .fetch_one(&mut *transaction)
        .await
        .map_err(|error| classify(error, || format!("repository {}", repo.full_name), || format!("repository {}", repo.full_name)))?;
        let sealed = self.seal_credentials(
            id,
            &repo.settings.webhook_secret,
            repo.settings.forge_token.as_deref(),
            repo.settings.clone_password.as_deref(),
        );
        sqlx::query("UPDATE repos SET webhook_secret = $2, forge_token = $3, clone_password = $4 WHERE id = $1")
            .bind(id)
            .bind(&sealed.webhook_secret)
            .bind(sealed.forge_token.as_deref())
            .bind(sealed.clone_password.as_deref())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(RepoRecord { id, full_name: repo.full_name.clone(), settings: repo.settings.clone(), created: now })
    }

    pub async fn repo_by_name(&self, full_name: &str) -> Result<Option<RepoRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", repo_columns!(), " FROM repos WHERE full_name = $1"))
            .bind(full_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|row| self.repo_from_row(row)).transpose()
    }

    pub async fn repo_by_id(&self, id: i64) -> Result<Option<RepoRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", repo_columns!(), " FROM repos WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|row| self.repo_from_row(row)).transpose()
    }

    /// By full name.
    pub async fn list_repos(&self) -> Result<Vec<RepoRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", repo_columns!(), " FROM repos ORDER BY full_name")).fetch_all(&self.pool).await?;
        rows.iter().map(|row| self.repo_from_row(row)).collect()
    }

    /// Writes every field of `repo` except `id` and `created`. `StoreError::Conflict` when the new
    /// `full_name` belongs to another repository, `StoreError::NotFound` when there is no such id.
    pub async fn update_repo(&self, repo: &RepoRecord) -> Result<(), StoreError> {
        let sealed = self.seal_credentials(
            repo.id,
            &repo.settings.webhook_secret,
            repo.settings.forge_token.as_deref(),
            repo.settings.clone_password.as_deref(),
        );
        let result = bind_settings_of!(
            sqlx::query(
                "UPDATE repos SET full_name = $1, clone_url = $2, forge = $3, default_branch = $4, config_path = $5, \
                     webhook_secret = $6, trust_privileged = $7, trust_volumes = $8, trust_network = $9, \
                     timeout_minutes = $10, cancel_previous = $11, poll_interval_seconds = $12, lost_policy = $13, \
                     forge_token = $14, clone_username = $15, clone_password = $16, forge_api_url = $17, approval = $18 \
                 WHERE id = $19",
            ),
            repo,
            sealed
        )
        .bind(repo.id)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("repository {}", repo.full_name), || format!("repository {}", repo.id)))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("repository {}", repo.id)));
        }
        Ok(())
    }

    /// Removes the repository with its members, secrets, builds, crons, notifiers and log files.
    /// Removing one that does not exist does nothing.
    pub async fn delete_repo(&self, id: i64) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        // A write first: it takes SQLite's write lock (or PostgreSQL's lock on the row) at once,
        // so no build can be added between listing the steps below and deleting them, and the
        // transaction never has to upgrade a read to a write.
        let locked =
            sqlx::query("UPDATE repos SET last_build_number = last_build_number WHERE id = $1").bind(id).execute(&mut *transaction).await?;
        if locked.rows_affected() == 0 {
            return Ok(());
        }
        let step_ids: Vec<i64> = sqlx::query_scalar(
            "SELECT steps.id FROM steps \
             JOIN workflows ON workflows.id = steps.workflow_id \
             JOIN builds ON builds.id = workflows.build_id \
             WHERE builds.repo_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *transaction)
        .await?;
        // Everything else goes with the row: every table referring to a repository, directly or
        // through builds and workflows, does so with ON DELETE CASCADE.
        sqlx::query("DELETE FROM repos WHERE id = $1").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        tracing::info!(repo = id, steps = step_ids.len(), "repository deleted");

        // The rows are gone whatever happens to the files; try every file and report the first
        // failure.
        let mut first_error = None;
        for step_id in step_ids {
            if let Err(error) = self.logs.remove(step_id).await {
                tracing::warn!(repo = id, step = step_id, %error, "cannot remove the log of a deleted repository's step");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Gives a user a role on a repository, replacing the one they had.
    pub async fn set_member(&self, repo_id: i64, user_id: i64, role: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO members (repo_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (repo_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(repo_id)
        .bind(user_id)
        .bind(role)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            classify(error, || format!("member {user_id} of repository {repo_id}"), || format!("repository {repo_id} or user {user_id}"))
        })?;
        Ok(())
    }

    pub async fn remove_member(&self, repo_id: i64, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM members WHERE repo_id = $1 AND user_id = $2").bind(repo_id).bind(user_id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn member_role(&self, repo_id: i64, user_id: i64) -> Result<Option<String>, StoreError> {
        let role = sqlx::query_scalar("SELECT role FROM members WHERE repo_id = $1 AND user_id = $2")
            .bind(repo_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(role)
    }

    /// `(login, role)` by login.
    pub async fn list_members(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT users.login, members.role FROM members JOIN users ON users.id = members.user_id \
             WHERE members.repo_id = $1 ORDER BY users.login",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("login")?, row.try_get("role")?))).collect()
    }
}

impl Store {
    fn repo_from_row(&self, row: &AnyRow) -> Result<RepoRecord, StoreError> {
        let id: i64 = row.try_get("id")?;
        let open = |column: &str| -> Result<Option<String>, StoreError> {
            let stored: Option<String> = row.try_get(column)?;
            stored.map(|stored| self.open_credential(id, column, &stored)).transpose()
        };
        let forge: String = row.try_get("forge")?;
        let lost_policy: String = row.try_get("lost_policy")?;
        let approval: String = row.try_get("approval")?;
        Ok(RepoRecord {
            id,
            full_name: row.try_get("full_name")?,
            settings: RepoSettings {
                clone_url: row.try_get("clone_url")?,
                forge: proto::ForgeKind::parse(&forge)
                    .ok_or_else(|| StoreError::Corrupt(format!("column forge holds {forge:?}, which is not a forge")))?,
                default_branch: row.try_get("default_branch")?,
                config_path: row.try_get("config_path")?,
                webhook_secret: open("webhook_secret")?.unwrap_or_default(),
                trust: proto::Trust {
                    privileged: flag(row, "trust_privileged")?,
                    volumes: flag(row, "trust_volumes")?,
                    network: flag(row, "trust_network")?,
                },
                timeout_minutes: narrow(row, "timeout_minutes")?,
                cancel_previous: flag(row, "cancel_previous")?,
                poll_interval_seconds: narrow_optional(row, "poll_interval_seconds")?,
                lost_policy: proto::LostPolicy::parse(&lost_policy)
                    .ok_or_else(|| StoreError::Corrupt(format!("column lost_policy holds {lost_policy:?}, which is not a policy")))?,
                approval: proto::ApprovalPolicy::parse(&approval)
                    .ok_or_else(|| StoreError::Corrupt(format!("column approval holds {approval:?}, which is not a policy")))?,
                forge_token: open("forge_token")?,
                clone_username: row.try_get("clone_username")?,
                clone_password: open("clone_password")?,
                forge_api_url: row.try_get("forge_api_url")?,
            },
            created: row.try_get("created")?,
        })
    }
}
