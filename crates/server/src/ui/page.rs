//! What every page shares: who is looking (`Viewer`, signed in by the session cookie), the
//! layout's data, posted forms checked for their CSRF token (`Posted`), and errors shown as
//! HTML. A page asks the same `Caller` questions the API does, so both authorize alike.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use crate::auth::{Caller, authenticate};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::assets;

/// The form field a posted form carries its session's CSRF token in.
pub const CSRF_FIELD: &str = "_csrf";

/// A signed-in person looking at a page. A request without a session is sent to sign in,
/// and back here afterwards.
pub struct Viewer(pub Caller);

impl std::ops::Deref for Viewer {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await {
            Ok(Some(caller)) => Ok(Viewer(caller)),
            // An expired or revoked session is the same as none: sign in again.
            Ok(None) | Err(ApiError { status: StatusCode::UNAUTHORIZED, .. }) => Err(PageError::SignIn { next: local_target(parts) }),
            Err(error) => Err(PageError::Api(error)),
        }
    }
}

/// Where to come back to after signing in: this request's path and query.
fn local_target(parts: &Parts) -> String {
    parts.uri.path_and_query().map(|target| target.as_str().to_owned()).unwrap_or_else(|| "/".to_owned())
}

/// `next` when it is a path on this server, `/` otherwise: a sign-in link must not be a way to
/// send people to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.contains(['\r', '\n']) => {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A form posted by a signed-in person, after its CSRF token was checked: `F` is the form's
/// other fields (urlencoded).
pub struct Posted<F> {
    pub viewer: Viewer,
    pub form: F,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for Posted<F> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes =
            axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| PageError::Api(ApiError::bad_request("the form is too large")))?;
        let mut fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|error| PageError::Api(ApiError::bad_request(format!("the form does not parse: {error}"))))?;
        let csrf = fields.iter().position(|(name, _)| name == CSRF_FIELD).map(|index| fields.swap_remove(index).1);
        // A bearer-token caller has no CSRF token and needs none; a cookie session must match.
        viewer.check_csrf(csrf.as_deref()).map_err(PageError::Api)?;
        let rest = serde_urlencoded::to_string(&fields).expect("pairs of strings encode");
        let form = serde_urlencoded::from_str(&rest)
            .map_err(|error| PageError::Api(ApiError::bad_request(format!("the form is missing a field or has a wrong one: {error}"))))?;
        Ok(Posted { viewer, form })
    }
}

/// Forms are a few fields; a secret's value is the largest (pipeline secrets are capped well
/// below this).
const FORM_LIMIT: usize = 256 * 1024;

/// The frame every page is drawn in.
pub struct Layout {
    pub title: String,
    /// Signed-in person's login, `None` on the sign-in pages.
    pub login: Option<String>,
    pub server_admin: bool,
    /// The session's CSRF token, for forms and for the scripts' requests.
    pub csrf: String,
    pub css: &'static str,
    pub js: &'static str,
    /// Breadcrumbs: (label, link).
    pub crumbs: Vec<(String, String)>,
}

impl Layout {
    pub fn new(viewer: Option<&Caller>, title: impl Into<String>) -> Self {
        Layout {
            title: title.into(),
            login: viewer.map(|caller| caller.login().to_owned()),
            server_admin: viewer.is_some_and(|caller| caller.server_admin),
            csrf: viewer.and_then(|caller| caller.csrf.clone()).unwrap_or_default(),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            crumbs: Vec::new(),
        }
    }

    pub fn crumb(mut self, label: impl Into<String>, link: impl Into<String>) -> Self {
        self.crumbs.push((label.into(), link.into()));
        self
    }
}

/// Renders a page as the answer.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => PageError::Api(ApiError::internal(format!("a page did not render: {error}"))).into_response(),
    }
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to the sign-in page, and come back to `next`.
    SignIn { next: String },
    /// What the API would have answered, drawn as a page.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError::Api(error)
    }
}

impl From<store::StoreError> for PageError {
    fn from(error: store::StoreError) -> Self {
        PageError::Api(error.into())
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                let target = format!("/login?next={}", form_urlencode(&next));
                Redirect::to(&target).into_response()
            }
            PageError::Api(error) => {
                let layout = Layout::new(None, error.status.canonical_reason().unwrap_or("Error"));
                let page = ErrorPage {
                    layout,
                    status: error.status.as_u16(),
                    reason: error.status.canonical_reason().unwrap_or("Error").to_owned(),
                    message: error.message.clone(),
                };
                let mut response = render(&page);
                *response.status_mut() = error.status;
                if let Some(retry_after) = error.retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, retry_after);
                }
                response
            }
        }
    }
}

/// Turns an error answer that is not a page yet (axum's rejection of a path that does not parse,
/// a wrong method) into one, keeping its status and text.
pub async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_page || status == StatusCode::NOT_MODIFIED {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let message = match serde_json::from_str::<proto::api::ErrorBody>(&text) {
        Ok(error) => error.error,
        Err(_) if text.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        Err(_) => text,
    };
    PageError::Api(ApiError { status, code: "", message, field: None, retry_after: None }).into_response()
}

/// Percent-encodes a value for a query string.
pub fn form_urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).map(|pair| pair[2..].to_owned()).unwrap_or_default()
}

/// A redirect after a form was handled (303: the browser follows with a GET).
pub fn see_other(target: &str) -> Response {
    Redirect::to(target).into_response()
}

/// A build as lists show it.
pub struct BuildRow {
    pub repo: String,
    pub number: i64,
    pub link: String,
    pub state: &'static str,
    pub event: String,
    pub branch: String,
    pub short_commit: String,
    pub title: String,
    pub author: String,
    pub created: String,
    pub created_iso: String,
    pub duration: String,
}

impl BuildRow {
    pub fn new(record: &store::BuildRecord, full_name: &str) -> Self {
        BuildRow {
            repo: full_name.to_owned(),
            number: record.number,
            link: format!("/repos/{full_name}/builds/{}", record.number),
            state: record.state.as_str(),
            event: record.event.clone(),
            branch: record.branch.clone(),
            short_commit: record.commit.chars().take(8).collect(),
            title: record.message.lines().next().unwrap_or_default().to_owned(),
            author: record.author.clone(),
            created: clock_time(record.created),
            created_iso: iso_time(record.created),
            duration: duration_between(record.started, record.finished),
        }
    }
}

/// `2026-12-05 10:31 UTC`: the script rewrites it in the reader's time zone.
pub fn clock_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|time| time.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

pub fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

/// `1m 05s` from start to finish (or to now while running); empty before the start.
pub fn duration_between(started: Option<i64>, finished: Option<i64>) -> String {
    let Some(started) = started else { return String::new() };
    let end = finished.unwrap_or_else(crate::state::now_ms);
    human_duration((end - started).max(0) / 1000)
}

pub fn human_duration(seconds: i64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}
