//! Prometheus metrics. Counters and histograms are recorded where things happen (webhooks, log
//! bytes, step durations); gauges that describe the store (queue depth, builds by state,
//! connected agents) are read from it when `/metrics` is scraped, so every server of a shared
//! database reports the same truth.

use std::sync::OnceLock;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};

const STEP_BUCKETS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// The process-wide recorder (the `metrics` facade has one global recorder).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("gantry_step_duration_seconds".into()), STEP_BUCKETS)
                .expect("static buckets are valid");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program): report ours alone.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Prometheus metrics; with `--metrics-token` set, only for `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain"), (status = 401, body = proto::api::ErrorBody)))]
pub async fn scrape(AxumState(state): AxumState<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(expected) = &state.config.metrics_token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| crate::crypto::same_secret(given.trim(), expected)) {
            return Err(ApiError::unauthorized("metrics need `Authorization: Bearer <the metrics token>`"));
        }
    }
    let pending = state.store.count_workflows(proto::State::Pending).await?;
    metrics::gauge!("gantry_queue_depth").set(pending as f64);
    let running = state.store.count_workflows(proto::State::Running).await?;
    metrics::gauge!("gantry_workflows_running").set(running as f64);
    let by_state = state.store.count_builds_by_state().await?;
    for build_state in proto::State::ALL {
        let count = by_state.get(build_state.as_str()).copied().unwrap_or(0);
        metrics::gauge!("gantry_builds", "state" => build_state.as_str()).set(count as f64);
    }
    let limit = state.config.agent_lost_after.as_millis() as i64;
    let now = now_ms();
    let connected = state.store.list_agents().await?.iter().filter(|agent| now - agent.last_seen < limit).count();
    metrics::gauge!("gantry_agents_connected").set(connected as f64);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response())
}
