//! Prometheus metrics. Counters and histograms are recorded where things happen (webhooks, log
//! bytes, step durations); gauges that describe the store (queue depth, builds by state,
//! connected agents) are read from it when `/metrics` is scraped, so every server of a shared
//! database reports the same truth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::delivery_metrics::DeploymentFact;
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
    let mut text = state.metrics.render();
    text.push_str(&delivery_gauges(&state, now).await?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Days the delivery gauges look back.
const DELIVERY_DAYS: u32 = 30;

/// Per environment and application, over the last 30 days: successful changes, failures, the
/// change failure rate and the median time to restore (`crate::delivery_metrics`). Written
/// straight from the store on each scrape, so a removed environment's series go with it. Lead
/// time is in the API only: it reads each deployment's commits from git.
async fn delivery_gauges(state: &AppState, now: i64) -> ApiResult<String> {
    let since = now - i64::from(DELIVERY_DAYS) * 86_400_000;
    let mut deployments = String::new();
    let mut failures = String::new();
    let mut rates = String::new();
    let mut restores = String::new();
    for environment in state.store.list_environments().await? {
        let mut by_app: BTreeMap<String, Vec<DeploymentFact>> = BTreeMap::new();
        for entry in state.store.deployments_since(environment.id, None, since).await? {
            by_app.entry(entry.record.app.clone()).or_default().push(DeploymentFact::of(&entry));
        }
        for (app, facts) in by_app {
            let labels = format!("{{environment=\"{}\",app=\"{}\"}}", label_value(&environment.name), label_value(&app));
            let (frequency, _, rate, restore) = crate::delivery_metrics::compute(&facts, DELIVERY_DAYS);
            let _ = writeln!(deployments, "gantry_delivery_deployments{labels} {}", frequency.deployments);
            let _ = writeln!(failures, "gantry_delivery_failures{labels} {}", rate.failures);
            if let Some(rate) = rate.rate {
                let _ = writeln!(rates, "gantry_delivery_change_failure_rate{labels} {rate}");
            }
            if let Some(median) = restore.median_seconds {
                let _ = writeln!(restores, "gantry_delivery_time_to_restore_seconds{labels} {median}");
            }
        }
    }
    let mut text = String::new();
    for (name, help, samples) in [
        ("gantry_delivery_deployments", "Changes (applications created or updated) that succeeded in the last 30 days.", deployments),
        ("gantry_delivery_failures", "Changes that failed, or went live and were rolled back, in the last 30 days.", failures),
        ("gantry_delivery_change_failure_rate", "Failures over the changes that ended in the last 30 days, 0 to 1.", rates),
        (
            "gantry_delivery_time_to_restore_seconds",
            "Median time from a failure to the next successful deployment, last 30 days.",
            restores,
        ),
    ] {
        if !samples.is_empty() {
            let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{samples}");
        }
    }
    Ok(text)
}

/// A label value as Prometheus' text format writes it.
fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
