//! Deployment events sent to receivers (`--notify URL`): a rollout started, succeeded, failed
//! or was rolled back, and drift detected. Each body is JSON, signed like Gantry's own
//! notifications (`X-Gantry-Signature: sha256=<hex HMAC-SHA256>` under the receiver's secret),
//! so a Gantry server can record them for its inventory and delivery metrics without ever
//! holding a credential of the environment: the deployer calls out; nothing calls in.

use std::time::Duration;

pub use proto::delivery::{
    DEPLOYMENT_FAILED, DEPLOYMENT_ROLLED_BACK, DEPLOYMENT_STARTED, DEPLOYMENT_SUCCEEDED, DRIFT_DETECTED, DeploymentEvent,
};

/// Where events go.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub url: String,
    /// Signs every body; without one, bodies go unsigned.
    pub secret: Option<String>,
}

const ATTEMPTS: u32 = 3;

/// Sends `event` to every receiver in the background, retrying a few times; a receiver that is
/// down never slows a rollout.
pub fn send(client: &reqwest::Client, receivers: &[Receiver], event: &DeploymentEvent) {
    let Ok(body) = serde_json::to_vec(event) else { return };
    for receiver in receivers {
        let client = client.clone();
        let receiver = receiver.clone();
        let body = body.clone();
        let name = event.event.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            for attempt in 1..=ATTEMPTS {
                let mut request = client
                    .post(&receiver.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(proto::api::EVENT_HEADER, &name)
                    .timeout(Duration::from_secs(10))
                    .body(body.clone());
                if let Some(secret) = &receiver.secret {
                    request = request.header(proto::api::SIGNATURE_HEADER, forge::webhook::signature(secret, &body));
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => return,
                    Ok(response) => {
                        tracing::info!(status = %response.status(), attempt, event = %name, "a receiver refused a deployment event");
                    }
                    Err(error) => {
                        tracing::info!(error = %error.without_url(), attempt, event = %name, "a deployment event was not delivered");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            tracing::warn!(event = %name, "a deployment event was not delivered; giving up");
        });
    }
}
