//! The web UI: pages rendered on the server (askama templates in `crates/server/templates`),
//! readable without JavaScript and kept live by a small script of ours over server-sent events.
//! Pages ask the same `Caller` questions and call the same functions as the JSON API; what
//! differs is the answer's form (HTML, redirects after forms, HTML errors).
//!
//! Security: every page answer carries a strict Content-Security-Policy (scripts and styles
//! only from `/assets`, nothing inline), `X-Frame-Options: DENY` and `nosniff`; every form
//! carries the session's CSRF token (`page::Posted` checks it); templates escape all output.

pub mod account;
pub mod assets;
pub mod build;
pub mod dashboard;
pub mod graph;
pub mod live;
pub mod page;
pub mod repo;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};

use crate::state::AppState;

/// The pages' routes (the API's are in `app`).
pub fn routes() -> Router<AppState> {
    let repo = "/repos/{owner}/{name}";
    let build = "/repos/{owner}/{name}/builds/{number}";
    Router::new()
        .route("/", get(dashboard::show))
        .route("/events", get(live::dashboard))
        .route("/login", get(account::sign_in_form).post(account::sign_in))
        .route("/logout", post(account::sign_out))
        .route("/setup", get(account::setup_form).post(account::setup))
        .route("/assets/{digest}/{name}", get(assets::serve))
        .route(repo, get(repo::show))
        .route(&format!("{repo}/events"), get(live::repository))
        .route(&format!("{repo}/run"), post(repo::run))
        .route(&format!("{repo}/badge.svg"), get(repo::badge))
        .route(build, get(build::show))
        .route(&format!("{build}/events"), get(live::build))
        .route(&format!("{build}/cancel"), post(build::cancel))
        .route(&format!("{build}/restart"), post(build::restart))
        .route(&format!("{build}/approve"), post(build::approve))
        .route(&format!("{build}/decline"), post(build::decline))
}

/// The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to an answer that lacks them.
pub async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let mut add = |name: HeaderName, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    add(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    add(header::X_FRAME_OPTIONS, "DENY");
    add(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    add(header::REFERRER_POLICY, "same-origin");
    response
}
