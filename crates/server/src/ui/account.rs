//! Signing in and out, the first start (creating the first administrator), and the signed-in
//! person's own account.
//!
//! The sign-in and first-start forms are posted before there is a session, so they carry a
//! token of their own, also set as a short-lived cookie (double submit): a page on another site
//! cannot sign someone in to an account of its choosing.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::users::{create_user, open_session, secure, sign_in as check_sign_in, sign_out as end_session};
use crate::auth::{Caller, ClientAddress, authenticate};
use crate::crypto::{new_token, same_secret};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::page::{Layout, PageError, PageResult, Posted, render, safe_next, see_other};

const FORM_COOKIE: &str = "gantry_form";

/// On a server without users, makes the one-time code the first-start page asks for and writes
/// it to `<data>/setup-code` (readable by the server's user only); the log says where.
pub async fn prepare_first_start(state: &AppState) {
    match state.store.list_users().await {
        Ok(users) if users.is_empty() => {}
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether this is a first start");
            return;
        }
    }
    let code = state.setup_code.get_or_init(|| new_token("gsc_"));
    let path = state.config.data_dir.join("setup-code");
    if let Err(error) = write_private(&path, code) {
        tracing::warn!(%error, path = %path.display(), "cannot write the first-start code");
    }
    tracing::warn!(
        url = %format!("{}/setup", state.config.public_url.trim_end_matches('/')),
        code_file = %path.display(),
        "no users yet: create the first administrator on the setup page with the code in the file (or the admin token)"
    );
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

#[derive(Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct SignInPage {
    layout: Layout,
    next: String,
    form_token: String,
    login: String,
    error: Option<String>,
}

/// A fresh form token and the cookie that carries it.
fn form_token(state: &AppState) -> (String, String) {
    let token = new_token("");
    let cookie = format!("{FORM_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{}", secure(state));
    (token, cookie)
}

fn form_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookies| cookies.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(FORM_COOKIE)?.strip_prefix('=')))
}

fn check_form_token(headers: &HeaderMap, given: &str) -> Result<(), PageError> {
    match form_cookie(headers) {
        Some(expected) if !given.is_empty() && same_secret(given, expected) => Ok(()),
        _ => {
            Err(PageError::Api(ApiError::forbidden("the form has expired or did not come from this server: reload the page and try again")))
        }
    }
}

async fn has_users(state: &AppState) -> Result<bool, PageError> {
    Ok(!state.store.list_users().await?.is_empty())
}

/// `GET /login`. Someone already signed in goes straight on; a server without users sends
/// people to the first-start page.
pub async fn sign_in_form(
    AxumState(state): AxumState<AppState>,
    Query(query): Query<NextQuery>,
    request: axum::http::request::Parts,
) -> PageResult {
    let next = safe_next(query.next.as_deref());
    if let Ok(Some(_)) = authenticate(&request, &state).await {
        return Ok(see_other(&next));
    }
    if !has_users(&state).await? {
        return Ok(see_other("/setup"));
    }
    Ok(sign_in_page(&state, next, String::new(), None))
}

fn sign_in_page(state: &AppState, next: String, login: String, error: Option<String>) -> Response {
    let (form_token, cookie) = form_token(state);
    let page = SignInPage { layout: Layout::new(None, "Sign in"), next, form_token, login, error };
    let mut response = render(&page);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    form_token: String,
}

/// `POST /login`: a wrong password shows the form again with the reason; too many attempts
/// answer 429 with `Retry-After`, as the API does.
pub async fn sign_in(
    AxumState(state): AxumState<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> PageResult {
    check_form_token(&headers, &form.form_token)?;
    let next = safe_next(form.next.as_deref());
    match check_sign_in(&state, address, &form.login, &form.password).await {
        Ok((_, cookie)) => {
            let mut response = see_other(&next);
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(response)
        }
        Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
            let mut response = sign_in_page(&state, next, form.login, Some(error.message));
            *response.status_mut() = error.status;
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /logout`.
pub async fn sign_out(AxumState(state): AxumState<AppState>, posted: Posted<std::collections::HashMap<String, String>>) -> PageResult {
    let cookie = end_session(&state, &posted.viewer).await?;
    let mut response = see_other("/login");
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    form_token: String,
    code_file: String,
    login: String,
    error: Option<String>,
}

/// `GET /setup`: only while the server has no users.
pub async fn setup_form(AxumState(state): AxumState<AppState>) -> PageResult {
    if has_users(&state).await? {
        return Ok(see_other("/login"));
    }
    Ok(setup_page(&state, String::new(), None))
}

fn setup_page(state: &AppState, login: String, error: Option<String>) -> Response {
    let (form_token, cookie) = form_token(state);
    let code_file = state.config.data_dir.join("setup-code").display().to_string();
    let page = SetupPage { layout: Layout::new(None, "First start"), form_token, code_file, login, error };
    let mut response = render(&page);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct SetupForm {
    code: String,
    login: String,
    password: String,
    #[serde(default)]
    form_token: String,
}

/// `POST /setup`: with the first-start code (or the admin token), creates the first
/// administrator and signs them in. Refused once any user exists.
pub async fn setup(AxumState(state): AxumState<AppState>, headers: HeaderMap, Form(form): Form<SetupForm>) -> PageResult {
    check_form_token(&headers, &form.form_token)?;
    if has_users(&state).await? {
        return Err(ApiError::conflict("this server already has users: sign in, or ask an administrator for an account").into());
    }
    let code = form.code.trim();
    let by_code = !code.is_empty() && state.setup_code.get().is_some_and(|expected| same_secret(code, expected));
    let by_admin_token = !code.is_empty() && state.config.admin_token.as_deref().is_some_and(|expected| same_secret(code, expected));
    if !by_code && !by_admin_token {
        let mut response = setup_page(&state, form.login, Some("that is not the first-start code".to_owned()));
        *response.status_mut() = axum::http::StatusCode::FORBIDDEN;
        return Ok(response);
    }
    let first_start = Caller { user: None, server_admin: true, token: None, csrf: None };
    let body = proto::api::UserCreate { login: form.login.clone(), password: form.password, admin: true };
    let user = match create_user(&state, &first_start, &body).await {
        Ok(user) => user,
        Err(error) if error.status == axum::http::StatusCode::BAD_REQUEST => {
            let mut response = setup_page(&state, form.login, Some(error.message));
            *response.status_mut() = error.status;
            return Ok(response);
        }
        Err(error) => return Err(error.into()),
    };
    let _ = std::fs::remove_file(state.config.data_dir.join("setup-code"));
    tracing::info!(login = %user.login, "first administrator created");
    let cookie = open_session(&state, &user).await?;
    let mut response = see_other("/");
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response.into_response())
}
