//! The web UI: pages rendered on the server (askama templates in `crates/server/templates`),
//! readable without JavaScript and kept live by a small script of ours over server-sent events.
//! Pages ask the same `Caller` questions and call the same functions as the JSON API; what
//! differs is the answer's form (HTML, redirects after forms, HTML errors).
//!
//! Security: every page answer carries a strict Content-Security-Policy (scripts and styles
//! only from `/assets`, nothing inline), `X-Frame-Options: DENY` and `nosniff`; every form
//! carries the session's CSRF token (`page::Posted` checks it); templates escape all output.

pub mod account;
pub mod admin;
pub mod assets;
pub mod build;
pub mod dashboard;
pub mod graph;
pub mod live;
pub mod my_account;
pub mod page;
pub mod repo;
pub mod settings;

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
        .route(&format!("{repo}/settings"), get(settings::show).post(settings::update))
        .route(&format!("{repo}/settings/webhook-secret"), post(settings::regenerate_webhook_secret))
        .route(&format!("{repo}/secrets"), post(settings::put_secret))
        .route(&format!("{repo}/secrets/{{secret}}/delete"), post(settings::delete_secret))
        .route(&format!("{repo}/registries"), post(settings::put_registry))
        .route(&format!("{repo}/registries/{{host}}/delete"), post(settings::delete_registry))
        .route(&format!("{repo}/crons"), post(settings::put_cron))
        .route(&format!("{repo}/crons/{{cron}}/delete"), post(settings::delete_cron))
        .route(&format!("{repo}/notifiers"), post(settings::create_notifier))
        .route(&format!("{repo}/notifiers/{{id}}/delete"), post(settings::delete_notifier))
        .route(&format!("{repo}/members"), post(settings::set_member))
        .route(&format!("{repo}/members/{{login}}/delete"), post(settings::remove_member))
        .route(build, get(build::show))
        .route(&format!("{build}/events"), get(live::build))
        .route(&format!("{build}/cancel"), post(build::cancel))
        .route(&format!("{build}/restart"), post(build::restart))
        .route(&format!("{build}/approve"), post(build::approve))
        .route(&format!("{build}/decline"), post(build::decline))
        .route("/admin/agents", get(admin::agents))
        .route("/admin/agents/{agent}/revoke", post(admin::revoke_agent))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/queue", get(admin::queue))
        .route("/account", get(my_account::show))
        .route("/account/tokens", post(my_account::create_token))
        .route("/account/tokens/{id}/revoke", post(my_account::revoke_token))
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
