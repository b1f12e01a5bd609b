//! Accounts: who am I, local users (server admins create them), sign-in sessions, API tokens.

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::api::{Login, TokenCreate, TokenCreated, User, UserCreate};
use store::TokenKind;

use crate::auth::{Caller, SESSION_COOKIE};
use crate::crypto::{hash_password, new_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};
use crate::views;

const SESSION_DAYS: i64 = 14;

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/user", tag = "users", responses((status = 200, body = User), (status = 401, body = proto::api::ErrorBody)))]
pub async fn current(caller: Caller) -> ApiResult<Json<User>> {
    match &caller.user {
        Some(user) => Ok(Json(views::user(user))),
        None => Ok(Json(User { id: 0, login: "admin-token".into(), admin: true, created: 0 })),
    }
}

/// Creates a local user (server admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    responses((status = 201, body = User), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody), (status = 409, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<UserCreate>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_server_admin()?;
    let login = body.login.trim();
    if login.is_empty() || !login.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::invalid("login", "a login is letters, digits, `-`, `_` and `.`"));
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError::invalid("password", "a password has at least 8 characters"));
    }
    let password = body.password.clone();
    // Argon2 takes tens of milliseconds of CPU on purpose: keep it off the async workers.
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ApiError::internal)?;
    let user = state.store.create_user(login, &hash, body.admin, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(views::user(&user))))
}

/// Lists users (server admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [User]), (status = 403, body = proto::api::ErrorBody)))]
pub async fn list(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<User>>> {
    caller.require_server_admin()?;
    Ok(Json(state.store.list_users().await?.iter().map(views::user).collect()))
}

/// Signs in with login and password: sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "users", request_body = Login,
    responses((status = 200, body = User), (status = 401, body = proto::api::ErrorBody)))]
pub async fn login(AxumState(state): AxumState<AppState>, Json(body): Json<Login>) -> ApiResult<Response> {
    let user = state.store.user_by_login(&body.login).await?;
    // Verify against a fixed hash when the user does not exist, so timing does not tell; off the
    // async workers, as argon2 is slow on purpose.
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let password = body.password.clone();
    let valid = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => verify_password(&password, &hash),
        None => {
            verify_password(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(ApiError::unauthorized("wrong login or password"));
    };
    let token = new_token("gts_");
    let now = now_ms();
    let expires = now + SESSION_DAYS * 24 * 3600 * 1000;
    state.store.create_token(user.id, "session", &token_hash(&token), TokenKind::Session, Some(expires), now).await?;
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", SESSION_DAYS * 24 * 3600);
    Ok(([(header::SET_COOKIE, cookie)], Json(views::user(&user))).into_response())
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone"))
}

/// Creates an API token for the caller. The token is shown once, in this answer.
#[utoipa::path(post, path = "/api/v1/user/tokens", tag = "users", request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = proto::api::ErrorBody)))]
pub async fn create_token(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let Some(user) = &caller.user else {
        return Err(ApiError::bad_request("the admin token is not a user; create a user and sign in as it"));
    };
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "name the token after what uses it"));
    }
    let token = new_token("gta_");
    let id = state.store.create_token(user.id, body.name.trim(), &token_hash(&token), TokenKind::Api, None, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { id, name: body.name.trim().to_owned(), token })))
}
