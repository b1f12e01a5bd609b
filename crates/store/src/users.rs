//! Users and their tokens (API bearer tokens and browser sessions), stored by hash.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{flag, flag_value};
use crate::error::classify;
use crate::{Store, StoreError, TokenKind, TokenRecord, UserRecord};

impl Store {
    /// `StoreError::Conflict` when the login exists.
    pub async fn create_user(&self, login: &str, password_hash: &str, admin: bool, now: i64) -> Result<UserRecord, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO users (login, password_hash, admin, created) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(login)
            .bind(password_hash)
            .bind(flag_value(admin))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| classify(error, || format!("user {login}"), || format!("user {login}")))?;
        Ok(UserRecord { id, login: login.to_owned(), password_hash: password_hash.to_owned(), admin, created: now })
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE login = $1")).bind(login).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// By login.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users ORDER BY login")).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Stores a token by the SHA-256 hex of its text; returns its id.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        kind: TokenKind,
        expires: Option<i64>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (user_id, name, token_hash, kind, expires, created) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(token_kind_name(kind))
        .bind(expires)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(error, || "a token with this hash".to_owned(), || format!("user {user_id}")))?;
        Ok(id)
    }

    /// The user owning a token that has not expired at `now`.
    pub async fn user_by_token_hash(&self, token_hash: &str, now: i64) -> Result<Option<(UserRecord, TokenRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT users.id, users.login, users.password_hash, users.admin, users.created, \
                    tokens.id AS token_id, tokens.name AS token_name, tokens.kind AS token_kind, \
                    tokens.expires AS token_expires, tokens.created AS token_created \
             FROM tokens JOIN users ON users.id = tokens.user_id \
             WHERE tokens.token_hash = $1 AND (tokens.expires IS NULL OR tokens.expires > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = user_from_row(&row)?;
        let token = TokenRecord {
            id: row.try_get("token_id")?,
            user_id: user.id,
            name: row.try_get("token_name")?,
            kind: token_kind(&row, "token_kind")?,
            expires: row.try_get("token_expires")?,
            created: row.try_get("token_created")?,
        };
        Ok(Some((user, token)))
    }

    /// A user's tokens of every kind, expired ones included, oldest first.
    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, user_id, name, kind, expires, created FROM tokens WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenRecord {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    name: row.try_get("name")?,
                    kind: token_kind(row, "kind")?,
                    expires: row.try_get("expires")?,
                    created: row.try_get("created")?,
                })
            })
            .collect()
    }

    pub async fn delete_token(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tokens WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes token `id` if it is `user_id`'s; returns whether it was.
    pub async fn delete_token_of(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2").bind(id).bind(user_id).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the token whose SHA-256 is `token_hash` (signing out); returns whether there was one.
    pub async fn delete_token_by_hash(&self, token_hash: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM tokens WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Removes the tokens that expired at or before `now` (old sessions); returns how many.
    pub async fn delete_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= $1").bind(now).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        login: row.try_get("login")?,
        password_hash: row.try_get("password_hash")?,
        admin: flag(row, "admin")?,
        created: row.try_get("created")?,
    })
}

fn token_kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Api => "api",
        TokenKind::Session => "session",
    }
}

fn token_kind(row: &AnyRow, column: &str) -> Result<TokenKind, StoreError> {
    let name: String = row.try_get(column)?;
    match name.as_str() {
        "api" => Ok(TokenKind::Api),
        "session" => Ok(TokenKind::Session),
        _ => Err(StoreError::Corrupt(format!("column {column} holds {name:?}, which is not a token kind"))),
    }
}
