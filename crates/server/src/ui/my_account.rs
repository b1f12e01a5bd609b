//! The signed-in person's own page: who they are, their API tokens and sessions (revoking any of
//! them), and making a new API token.
//!
//! A new token's value is written into the answer to the form that made it and nowhere else: not
//! in a redirect's URL, not in a cookie, and the answer is not to be cached. The store keeps only
//! its hash, so no later page can show it again.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use proto::api::{TokenCreate, TokenCreated};
use serde::Deserialize;

use crate::api::users::{issue_token, revoke_token as revoke_token_of, tokens_of};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::page::{Layout, PageResult, Posted, Viewer, clock_time, iso_time, render, see_other};

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// The session this page was asked for with.
    pub current: bool,
    pub created: String,
    pub created_iso: String,
    /// Empty when it never expires.
    pub expires: String,
    pub expires_iso: String,
}

#[derive(Template)]
#[template(path = "my_account.html")]
struct AccountPage {
    layout: Layout,
    login: String,
    server_admin: bool,
    tokens: Vec<TokenRow>,
    /// The token just made, shown this once.
    created: Option<TokenCreated>,
    created_expires: String,
    /// What the form was posted with, when it is shown again with `error`.
    name: String,
    expires_in_days: String,
    error: Option<String>,
}

/// `GET /account`.
pub async fn show(viewer: Viewer, AxumState(state): AxumState<AppState>) -> PageResult {
    account_page(&state, &viewer, Form::default()).await
}

/// What the page shows besides the account itself.
#[derive(Default)]
struct Form {
    created: Option<TokenCreated>,
    name: String,
    expires_in_days: String,
    error: Option<String>,
}

async fn account_page(state: &AppState, viewer: &Caller, form: Form) -> PageResult {
    let current = viewer.token.as_ref().map(|token| token.id);
    let tokens = tokens_of(state, viewer)
        .await?
        .into_iter()
        .map(|token| TokenRow {
            current: Some(token.id) == current,
            created: clock_time(token.created * 1000),
            created_iso: iso_time(token.created * 1000),
            expires: token.expires.map(|expires| clock_time(expires * 1000)).unwrap_or_default(),
            expires_iso: token.expires.map(|expires| iso_time(expires * 1000)).unwrap_or_default(),
            id: token.id,
            name: token.name,
            kind: token.kind,
        })
        .collect();
    let created_expires = form.created.as_ref().and_then(|created| created.expires).map(|expires| clock_time(expires * 1000));
    let page = AccountPage {
        layout: Layout::new(Some(viewer), "My account").crumb("My account", "/account"),
        login: viewer.login().to_owned(),
        server_admin: viewer.server_admin,
        tokens,
        created: form.created,
        created_expires: created_expires.unwrap_or_default(),
        name: form.name,
        expires_in_days: form.expires_in_days,
        error: form.error,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    /// Whole days, or empty for a token that works until it is revoked.
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /account/tokens`: makes a token as `POST /api/v1/user/tokens` does and answers with the
/// page itself, holding the token's value this once. A name or expiry the API refuses shows the
/// form again with the reason.
pub async fn create_token(AxumState(state): AxumState<AppState>, posted: Posted<TokenForm>) -> PageResult {
    let Posted { viewer, form } = posted;
    let made = match expiry_days(&form.expires_in_days) {
        Ok(expires_in_days) => issue_token(&state, &viewer, &TokenCreate { name: form.name.clone(), expires_in_days }).await,
        Err(error) => Err(error),
    };
    match made {
        Ok(created) => {
            let mut response = account_page(&state, &viewer, Form { created: Some(created), ..Form::default() }).await?;
            // The value is in this answer only: no cache, shared or the browser's own, keeps it.
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(error) if error.status == StatusCode::BAD_REQUEST => {
            let form = Form { created: None, name: form.name, expires_in_days: form.expires_in_days, error: Some(error.message) };
            let mut response = account_page(&state, &viewer, form).await?;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

/// The form's expiry: empty for none, else a whole number of days (the API checks the range).
fn expiry_days(text: &str) -> Result<Option<u32>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::invalid("expires_in_days", "the expiry is a whole number of days, or empty for a token that does not expire")
    })
}

/// `POST /account/tokens/{id}/revoke`: what `DELETE /api/v1/user/tokens/{id}` does. Revoking the
/// session this page is open in signs the browser out, and the next page asks to sign in.
pub async fn revoke_token(
    AxumState(state): AxumState<AppState>,
    Path(id): Path<i64>,
    posted: Posted<HashMap<String, String>>,
) -> PageResult {
    revoke_token_of(&state, &posted.viewer, id).await?;
    Ok(see_other("/account"))
}
