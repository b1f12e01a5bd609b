//! Accounts: who am I, local users (server admins create them), sign-in sessions and signing
//! out, API tokens (create, list, revoke, optional expiry).

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::api::{Login, Token, TokenCreate, TokenCreated, User, UserCreate};
use store::{TokenKind, UserRecord};

use crate::auth::{Caller, ClientAddress, SESSION_COOKIE};
use crate::crypto::{hash_password, new_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::limits::{MAX_LOGIN, MAX_NAME, MAX_PASSWORD, check_length};
use crate::login::TryLater;
use crate::state::{AppState, now_ms, seconds};
use crate::views;

const SESSION_DAYS: i64 = 14;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Longest expiry a token may be given, in days.
const MAX_TOKEN_DAYS: u32 = 3650;

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
    responses((status = 201, body = User), (status = 400, body = proto::api::ErrorBody), (status = 403, body = proto::api::ErrorBody),
        (status = 409, body = proto::api::ErrorBody), (status = 429, body = proto::api::ErrorBody)))]
pub async fn create(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<UserCreate>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = create_user(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(views::user(&user))))
}

/// Creates a local user, as a server admin asks (the first-start page creates the first one
/// with `Caller::first_start`).
pub async fn create_user(state: &AppState, caller: &Caller, body: &UserCreate) -> ApiResult<UserRecord> {
    caller.require_server_admin()?;
    let login = body.login.trim();
    check_length("login", login, MAX_LOGIN)?;
    if login.is_empty() || !login.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::invalid("login", "a login is letters, digits, `-`, `_` and `.`"));
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError::invalid("password", "a password has at least 8 characters"));
    }
    check_length("password", &body.password, MAX_PASSWORD)?;
    let password = body.password.clone();
    // Argon2 takes tens of milliseconds of CPU on purpose: not on the async workers.
    let hash = state.login.hash(move || hash_password(&password)).await.map_err(too_many)?;
    Ok(state.store.create_user(login, &hash, body.admin, now_ms()).await?)
}

/// Lists users (server admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [User]), (status = 403, body = proto::api::ErrorBody)))]
pub async fn list(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(list_users(&state, &caller).await?.iter().map(views::user).collect()))
}

/// Every user of the server: server admins only.
pub async fn list_users(state: &AppState, caller: &Caller) -> ApiResult<Vec<UserRecord>> {
    caller.require_server_admin()?;
    Ok(state.store.list_users().await?)
}

/// Signs in with login and password: sets the session cookie, and answers the session's CSRF
/// token in `X-CSRF-Token` for requests that change something with it. After too many failed sign-ins
/// for a login or from an address, or when too many run at once, answers 429 with
/// `Retry-After`.
#[utoipa::path(post, path = "/api/v1/login", tag = "users", request_body = Login,
    responses((status = 200, body = User), (status = 401, body = proto::api::ErrorBody), (status = 429, body = proto::api::ErrorBody)))]
pub async fn login(
    AxumState(state): AxumState<AppState>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    let (user, cookie) = sign_in(&state, address, &body.login, &body.password).await?;
    // The session's CSRF token, for a client other than a browser page that then changes
    // things with the cookie (`gantry login` making an API token with it).
    let session = cookie.split(';').next().and_then(|pair| pair.split_once('=')).map_or("", |(_, token)| token);
    let csrf = crate::auth::csrf_token(session);
    Ok(([(header::SET_COOKIE, cookie), (header::HeaderName::from_static(crate::auth::CSRF_HEADER), csrf)], Json(views::user(&user)))
        .into_response())
}

/// Checks a login and password and opens a session: the user and the `Set-Cookie` value that
/// carries it. The sign-in form and `POST /api/v1/login` both come here.
pub async fn sign_in(state: &AppState, address: Option<std::net::IpAddr>, login: &str, password: &str) -> ApiResult<(UserRecord, String)> {
    let wrong = || ApiError::unauthorized("wrong login or password");
    state.login.check(login, address).map_err(too_many)?;
    if login.chars().count() > MAX_LOGIN || password.chars().count() > MAX_PASSWORD {
        // Nobody has such a login or password: not worth a hash, but still a failure.
        state.login.failed(login, address);
        return Err(wrong());
    }
    let user = state.store.user_by_login(login).await?;
    // Verify against a fixed hash when the user does not exist, so timing does not tell; on the
    // hashing threads, as argon2 is slow on purpose and each run holds ~19 MiB.
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let password = password.to_owned();
    let valid = state
        .login
        .hash(move || match stored {
            Some(hash) => verify_password(&password, &hash),
            None => {
                verify_password(&password, dummy_hash());
                false
            }
        })
        .await
        .map_err(too_many)?;
    let Some(user) = user.filter(|_| valid) else {
        state.login.failed(login, address);
        tracing::info!(%login, address = ?address, "failed sign-in");
        return Err(wrong());
    };
    state.login.succeeded(&user.login);
    let cookie = open_session(state, &user).await?;
    Ok((user, cookie))
}

/// A new session for `user`: the `Set-Cookie` value that carries it.
pub async fn open_session(state: &AppState, user: &UserRecord) -> ApiResult<String> {
    let token = new_token("gts_");
    let now = now_ms();
    let expires = now + SESSION_DAYS * DAY_MS;
    state.store.create_token(user.id, "session", &token_hash(&token), TokenKind::Session, Some(expires), now).await?;
    Ok(format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}", SESSION_DAYS * 24 * 3600, secure(state)))
}

/// Signs out: the session this request came with ends, and its cookie is cleared. API tokens
/// are revoked with `DELETE /api/v1/user/tokens/{id}` instead.
#[utoipa::path(post, path = "/api/v1/logout", tag = "users",
    responses((status = 204), (status = 400, body = proto::api::ErrorBody), (status = 401, body = proto::api::ErrorBody)))]
pub async fn logout(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Response> {
    let cookie = sign_out(&state, &caller).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Ends the session `caller` came with: the `Set-Cookie` value that clears it.
pub async fn sign_out(state: &AppState, caller: &Caller) -> ApiResult<String> {
    let Some(token) = &caller.token else {
        return Err(ApiError::bad_request("the admin token is not a session; there is nothing to sign out of"));
    };
    if token.kind != TokenKind::Session {
        return Err(ApiError::bad_request("this is an API token, not a session: revoke it with DELETE /api/v1/user/tokens/{id}"));
    }
    state.store.delete_token(token.id).await?;
    tracing::info!(user = caller.login(), "signed out");
    Ok(format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", secure(state)))
}

/// `; Secure` when browsers reach the server over https: the cookie then never travels in clear.
pub fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") { "; Secure" } else { "" }
}

fn too_many(later: TryLater) -> ApiError {
    let seconds = later.retry_after.as_secs().max(1);
    let mut error = ApiError::too_many_requests(format!("too many sign-in attempts; try again in {seconds} s"));
    error.retry_after = HeaderValue::from_str(&seconds.to_string()).ok();
    error
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone"))
}

/// Creates an API token for the caller, optionally expiring. The token is shown once, in this
/// answer.
#[utoipa::path(post, path = "/api/v1/user/tokens", tag = "users", request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = proto::api::ErrorBody)))]
pub async fn create_token(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Json(body): Json<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    Ok((StatusCode::CREATED, Json(issue_token(&state, &caller, &body).await?)))
}

/// Makes an API token for the caller, named and optionally expiring: the one answer that holds
/// its value (the store keeps only its hash).
pub async fn issue_token(state: &AppState, caller: &Caller, body: &TokenCreate) -> ApiResult<TokenCreated> {
    let Some(user) = &caller.user else {
        return Err(ApiError::bad_request("the admin token is not a user; create a user and sign in as it"));
    };
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "name the token after what uses it"));
    }
    check_length("name", name, MAX_NAME)?;
    let now = now_ms();
    let expires = match body.expires_in_days {
        Some(days) if days == 0 || days > MAX_TOKEN_DAYS => {
            return Err(ApiError::invalid("expires_in_days", format!("a token expires in 1 to {MAX_TOKEN_DAYS} days")));
        }
        Some(days) => Some(now + i64::from(days) * DAY_MS),
        None => None,
    };
    let token = new_token("gta_");
    let id = state.store.create_token(user.id, name, &token_hash(&token), TokenKind::Api, expires, now).await?;
    Ok(TokenCreated { id, name: name.to_owned(), token, expires: expires.map(seconds) })
}

/// The caller's tokens and sessions (never the tokens themselves).
#[utoipa::path(get, path = "/api/v1/user/tokens", tag = "users",
    responses((status = 200, body = [Token]), (status = 400, body = proto::api::ErrorBody)))]
pub async fn list_tokens(caller: Caller, AxumState(state): AxumState<AppState>) -> ApiResult<Json<Vec<Token>>> {
    Ok(Json(tokens_of(&state, &caller).await?))
}

/// The caller's API tokens and sessions, oldest first, without their values.
pub async fn tokens_of(state: &AppState, caller: &Caller) -> ApiResult<Vec<Token>> {
    let Some(user) = &caller.user else {
        return Err(ApiError::bad_request("the admin token is not a user and has no tokens"));
    };
    let tokens = state
        .store
        .list_tokens(user.id)
        .await?
        .into_iter()
        .map(|token| Token {
            id: token.id,
            name: token.name,
            kind: match token.kind {
                TokenKind::Api => "api".into(),
                TokenKind::Session => "session".into(),
            },
            created: seconds(token.created),
            expires: token.expires.map(seconds),
        })
        .collect();
    Ok(tokens)
}

/// Revokes one of the caller's tokens or sessions: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/user/tokens/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = proto::api::ErrorBody), (status = 404, body = proto::api::ErrorBody)))]
pub async fn delete_token(caller: Caller, AxumState(state): AxumState<AppState>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    revoke_token(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes token or session `id` of the caller's own; another user's looks like none at all.
pub async fn revoke_token(state: &AppState, caller: &Caller, id: i64) -> ApiResult<()> {
    let Some(user) = &caller.user else {
        return Err(ApiError::bad_request("the admin token is not a user and has no tokens"));
    };
    if state.store.delete_token_of(user.id, id).await? {
        tracing::info!(user = %user.login, token = id, "token revoked");
        Ok(())
    } else {
        Err(ApiError::not_found(format!("you have no token {id}")))
    }
}
