//! The HTTP application: every route, its layers, and the OpenAPI document generated from the
//! handlers' annotations.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::api;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gantry", description = "The Gantry CI server's REST API. Authenticate with `Authorization: Bearer <token>`."),
    paths(
        api::users::current, api::users::create, api::users::list, api::users::login, api::users::logout,
        api::users::create_token, api::users::list_tokens, api::users::delete_token,
        api::repos::list, api::repos::create, api::repos::show, api::repos::update, api::repos::delete,
        api::repos::members, api::repos::set_member, api::repos::remove_member, api::repos::poll,
        api::builds::list, api::builds::show, api::builds::create, api::builds::cancel, api::builds::restart,
        api::builds::approve, api::builds::decline,
        api::artifacts::list, api::artifacts::provenance, api::artifacts::lookup,
        api::logs::download, api::logs::follow, api::logs::search,
        api::secrets::list, api::secrets::put, api::secrets::delete,
        api::registries::list, api::registries::put, api::registries::delete,
        api::schedules::list_crons, api::schedules::put_cron, api::schedules::delete_cron,
        api::schedules::list_notifiers, api::schedules::create_notifier, api::schedules::delete_notifier,
        api::agents::list, api::agents::remove,
        api::environments::list, api::environments::create, api::environments::delete, api::environments::regenerate_secret,
        api::environments::deployments, api::environments::apps, api::environments::metrics, api::changelog::changelog, crate::deployments::receive,
        api::promotions::create, api::promotions::list, api::promotions::get, api::promotions::approve, api::promotions::reject,
        api::promotions::sync,
        crate::hooks::receive, crate::metrics::scrape, healthz, readyz,
    ),
    tags(
        (name = "users"), (name = "repos"), (name = "builds"), (name = "artifacts"), (name = "logs"), (name = "secrets"), (name = "registries"), (name = "crons"),
        (name = "notifiers"), (name = "agents"), (name = "environments"), (name = "webhooks"), (name = "operations"),
    ),
    modifiers(&CommonAnswers)
)]
pub struct ApiDoc;

/// Answers that come from the router's extractors rather than from a handler, added to every
/// operation they apply to here instead of to each annotation (where they would be forgotten):
/// a JSON body that is not JSON (400), of the wrong shape (422), without its content type (415)
/// or over the limit (413); a path or query parameter that does not parse (400); a REST call
/// without a valid token (401); a repository that does not exist or that the caller cannot see
/// (404), or a role too low for the operation (403).
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                .build()
                .into()
        };
        for (path, item) in &mut openapi.paths.paths {
            let rest_api = path.starts_with("/api/v1/");
            let repository = path.starts_with("/api/v1/repos/{owner}/{name}");
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let mut add = |status: &str, description: &str| {
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
                };
                if rest_api && operation.request_body.is_some() {
                    add("400", "the body is not JSON");
                    add("413", "the body is too large");
                    add("415", "the body is not sent as `application/json`");
                    add("422", "the body is JSON of the wrong shape");
                }
                if operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty()) {
                    add("400", "a parameter does not parse");
                }
                if rest_api && path != "/api/v1/login" {
                    add("401", "no valid token or session");
                }
                if repository {
                    add("403", "the caller's role on the repository is too low");
                    add("404", "the repository does not exist, or the caller cannot see it");
                }
            }
        }
    }
}

/// The OpenAPI document, as committed in `crates/server/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}

pub fn router(state: AppState) -> Router {
    let repo = "/api/v1/repos/{owner}/{name}";
    let api = Router::new()
        .route("/api/v1/user", get(api::users::current))
        .route("/api/v1/user/tokens", post(api::users::create_token).get(api::users::list_tokens))
        .route("/api/v1/user/tokens/{id}", axum::routing::delete(api::users::delete_token))
        .route("/api/v1/logout", post(api::users::logout))
        .route("/api/v1/users", get(api::users::list).post(api::users::create))
        .route("/api/v1/login", post(api::users::login))
        .route("/api/v1/repos", get(api::repos::list).post(api::repos::create))
        .route(repo, get(api::repos::show).patch(api::repos::update).delete(api::repos::delete))
        .route(&format!("{repo}/members"), get(api::repos::members))
        .route(&format!("{repo}/members/{{login}}"), put(api::repos::set_member).delete(api::repos::remove_member))
        .route(&format!("{repo}/poll"), post(api::repos::poll))
        .route(&format!("{repo}/builds"), get(api::builds::list).post(api::builds::create))
        .route(&format!("{repo}/builds/{{number}}"), get(api::builds::show))
        .route(&format!("{repo}/builds/{{number}}/cancel"), post(api::builds::cancel))
        .route(&format!("{repo}/builds/{{number}}/restart"), post(api::builds::restart))
        .route(&format!("{repo}/builds/{{number}}/approve"), post(api::builds::approve))
        .route(&format!("{repo}/builds/{{number}}/decline"), post(api::builds::decline))
        .route(&format!("{repo}/builds/{{number}}/artifacts"), get(api::artifacts::list))
        .route(&format!("{repo}/builds/{{number}}/artifacts/{{id}}/provenance"), get(api::artifacts::provenance))
        .route("/api/v1/artifacts", get(api::artifacts::lookup))
        .route(&format!("{repo}/builds/{{number}}/steps/{{step}}/log"), get(api::logs::download))
        .route(&format!("{repo}/builds/{{number}}/steps/{{step}}/log/stream"), get(api::logs::follow))
        .route(&format!("{repo}/builds/{{number}}/steps/{{step}}/log/search"), get(api::logs::search))
        .route(&format!("{repo}/secrets"), get(api::secrets::list))
        .route(&format!("{repo}/secrets/{{secret}}"), put(api::secrets::put).delete(api::secrets::delete))
        .route(&format!("{repo}/registries"), get(api::registries::list))
        .route(&format!("{repo}/registries/{{host}}"), put(api::registries::put).delete(api::registries::delete))
        .route(&format!("{repo}/crons"), get(api::schedules::list_crons))
        .route(&format!("{repo}/crons/{{cron}}"), put(api::schedules::put_cron).delete(api::schedules::delete_cron))
        .route(&format!("{repo}/notifiers"), get(api::schedules::list_notifiers).post(api::schedules::create_notifier))
        .route(&format!("{repo}/notifiers/{{id}}"), axum::routing::delete(api::schedules::delete_notifier))
        .route("/api/v1/agents", get(api::agents::list))
        .route("/api/v1/agents/{name}", axum::routing::delete(api::agents::remove))
        .route("/api/v1/environments", get(api::environments::list).post(api::environments::create))
        .route("/api/v1/environments/{environment}", axum::routing::delete(api::environments::delete))
        .route("/api/v1/environments/{environment}/secret", post(api::environments::regenerate_secret))
        .route("/api/v1/environments/{environment}/deployments", get(api::environments::deployments))
        .route("/api/v1/environments/{environment}/apps", get(api::environments::apps))
        .route("/api/v1/environments/{environment}/metrics", get(api::environments::metrics))
        .route("/api/v1/environments/{environment}/promotions", get(api::promotions::list).post(api::promotions::create))
        .route("/api/v1/promotions/{id}", get(api::promotions::get))
        .route("/api/v1/promotions/{id}/approve", post(api::promotions::approve))
        .route("/api/v1/promotions/{id}/reject", post(api::promotions::reject))
        .route("/api/v1/apps/{app}/changelog", get(api::changelog::changelog))
        .layer(DefaultBodyLimit::max(1024 * 1024));
    let hooks = Router::new()
        .route("/api/hooks/{owner}/{name}", post(crate::hooks::receive))
        .layer(DefaultBodyLimit::max(state.config.max_webhook_bytes));
    // Deployers' events: signed by the environment's secret, not by a user.
    let deployment_events = Router::new()
        .route("/api/v1/environments/{environment}/events", post(crate::deployments::receive))
        .route("/api/v1/environments/{environment}/promotions/sync", post(api::promotions::sync))
        .layer(DefaultBodyLimit::max(crate::deployments::MAX_EVENT_BYTES));
    // Log batches are large; the agent keeps them well below this.
    let agents = Router::new().nest(proto::agent::PREFIX, crate::agent_api::routes()).layer(DefaultBodyLimit::max(32 * 1024 * 1024));
    Router::new()
        .merge(api)
        .merge(hooks)
        .merge(deployment_events)
        .merge(agents)
        .merge(crate::ui::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/api/openapi.json", get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_json()) }))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(errors_by_audience))
        .layer(axum::middleware::map_response(crate::ui::security_headers))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Whether a path belongs to programs (the REST API, webhooks, agents), which get JSON errors,
/// rather than to people, who get pages.
fn for_programs(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with(proto::agent::PREFIX) || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if for_programs(uri.path()) {
        crate::error::ApiError::not_found("no such endpoint").into_response()
    } else {
        crate::ui::page::PageError::Api(crate::error::ApiError::not_found("There is no page here.")).into_response()
    }
}

/// Errors answered in the audience's form: JSON under `/api`, HTML pages elsewhere (axum's own
/// rejections of a bad path or query, a wrong method, are plain text until here).
async fn errors_by_audience(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let programs = for_programs(request.uri().path());
    let response = next.run(request).await;
    if programs { crate::error::json_errors(response).await } else { crate::ui::page::html_errors(response).await }
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200), (status = 503, body = proto::api::ErrorBody)))]
pub async fn readyz(AxumState(state): AxumState<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "database": state.store.kind() }))).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            crate::error::ApiError::unavailable("the database does not answer").into_response()
        }
    }
}
