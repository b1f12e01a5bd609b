//! Telling the outside world: commit statuses on the forge for every build state change, and
//! notifications (Gantry's JSON webhook, Slack-compatible) when a build finishes or publishes
//! an image (the delivery webhooks deployers listen to), and when a deployer reports a
//! deployment of, or drift from, an image the repository built. All are sent in the background with
//! retries and backoff, so a slow forge never slows a build down; a notifier with a secret
//! signs each body (`X-Gantry-Signature: sha256=<hex HMAC-SHA256>`).

use std::time::Duration;

use proto::State;
use proto::api::{BUILD_FINISHED, BuildNotification, EVENT_HEADER, IMAGE_PUBLISHED, ImagePublished, SIGNATURE_HEADER};
use proto::delivery::DeploymentEvent;
use store::{ArtifactRecord, BuildRecord, NotifierRecord};

use crate::state::AppState;

const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

pub async fn build_changed(state: &AppState, build: &BuildRecord) {
    let Ok(Some(repo)) = state.store.repo_by_id(build.repo_id).await else { return };
    let build_url = state.build_url(&repo.full_name, build.number);
    let api_base = repo
        .settings
        .forge_api_url
        .clone()
        .or_else(|| forge::status::api_base_from_clone_url(repo.settings.forge, &repo.settings.clone_url));
    if let (Some(token), Some(api_base)) = (repo.settings.forge_token.clone(), api_base) {
        let target = forge::status::StatusTarget { forge: repo.settings.forge, api_base, full_name: repo.full_name.clone(), token };
        let status = forge::status::CommitStatus {
            commit: build.commit.clone(),
            state: build.state,
            context: format!("gantry/{}", build.event),
            description: status_description(build),
            target_url: build_url.clone(),
        };
        let reporter = forge::status::StatusReporter::with_client(state.http.clone());
        tokio::spawn(async move {
            retry("commit status", || reporter.send(&target, &status)).await;
        });
    }
    if !build.state.is_finished() {
        return;
    }
    let notifiers = match state.store.list_notifiers(repo.id).await {
        Ok(notifiers) => notifiers,
        Err(error) => {
            tracing::error!(%error, "cannot list notifiers");
            return;
        }
    };
    let view = crate::views::build(build, &repo.full_name, None);
    for notifier in notifiers {
        if !notifier.events.iter().any(|event| event == BUILD_FINISHED) {
            continue;
        }
        if !notifier.states.is_empty() && !notifier.states.contains(&build.state) {
            continue;
        }
        let body = match notifier.kind.as_str() {
            "slack" => slack_body(&view, &build_url),
            _ => serde_json::to_value(BuildNotification { repo: repo.full_name.clone(), build: view.clone(), url: build_url.clone() })
                .unwrap_or_default(),
        };
        send(state, &notifier, BUILD_FINISHED, &body);
    }
}

/// Announces a recorded artifact to the notifiers of its repository that want
/// `image.published`.
pub async fn image_published(state: &AppState, artifact: &ArtifactRecord) {
    let (Ok(Some(repo)), Ok(Some(build))) =
        (state.store.repo_by_id(artifact.repo_id).await, state.store.build_by_id(artifact.build_id).await)
    else {
        return;
    };
    let notifiers = match state.store.list_notifiers(repo.id).await {
        Ok(notifiers) => notifiers,
        Err(error) => {
            tracing::error!(%error, "cannot list notifiers");
            return;
        }
    };
    let event = ImagePublished {
        event: IMAGE_PUBLISHED.to_owned(),
        repository: repo.full_name.clone(),
        build: build.number,
        build_url: state.build_url(&repo.full_name, build.number),
        commit: build.commit.clone(),
        branch: build.branch.clone(),
        reference: build.reference.clone(),
        trigger: build.event.clone(),
        workflow: artifact.workflow.clone(),
        step: artifact.step.clone(),
        image: artifact.repository.clone(),
        digest: artifact.digest.clone(),
        pinned: format!("{}@{}", artifact.repository, artifact.digest),
        tags: artifact.tags.clone(),
        provenance_digest: artifact.provenance_digest.clone(),
    };
    for notifier in notifiers.iter().filter(|notifier| notifier.events.iter().any(|event| event == IMAGE_PUBLISHED)) {
        let body = match notifier.kind.as_str() {
            "slack" => serde_json::json!({
                "text": format!("<{}|{} build #{}> published `{}` ({})", event.build_url, event.repository, event.build, event.pinned,
                    event.tags.join(", ")),
            }),
            _ => serde_json::to_value(&event).unwrap_or_default(),
        };
        send(state, notifier, IMAGE_PUBLISHED, &body);
    }
}

/// Passes a deployer's event on to the notifiers that want it, of every repository a build of
/// which published the image concerned: the deployment's new image, or for drift the image the
/// application last ran successfully. An image no build published concerns no repository.
pub async fn deployment_reported(state: &AppState, environment: &store::EnvironmentRecord, event: &DeploymentEvent) {
    let Some(name) = proto::api::NOTIFIER_EVENTS.iter().find(|name| **name == event.event) else { return };
    let image = match &event.deployment {
        Some(deployment) => deployment.to_image.clone().or_else(|| deployment.from_image.clone()),
        None => match state.store.environment_apps(environment.id).await {
            Ok(apps) => {
                apps.into_iter().find(|app| app.app == event.app).and_then(|app| app.current).and_then(|current| current.record.to_image)
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the environment's applications");
                return;
            }
        },
    };
    let Some(image) = image else { return };
    for (repo, build_number) in builders_of(state, &image).await {
        let Ok(notifiers) = state.store.list_notifiers(repo.id).await else { continue };
        let build_url = state.build_url(&repo.full_name, build_number);
        for notifier in notifiers.iter().filter(|notifier| notifier.events.iter().any(|wanted| wanted == name)) {
            let body = match notifier.kind.as_str() {
                "slack" => serde_json::json!({ "text": deployment_text(event, &repo.full_name, build_number, &build_url) }),
                _ => with_build(serde_json::to_value(event).unwrap_or_default(), &repo.full_name, build_number, &build_url),
            };
            send(state, notifier, name, &body);
        }
    }
}

/// Tells the notifiers that want `event` (one of `proto::delivery::PROMOTION_EVENTS`) of every
/// repository a build of which pushed the promotion's image: a request, its approval, its
/// rejection or expiry, and when the deployer carried it out.
pub async fn promotion_changed(state: &AppState, promotion: &store::PromotionRecord, event: &'static str) {
    for (repo, build_number) in builders_of(state, &promotion.image).await {
        let Ok(notifiers) = state.store.list_notifiers(repo.id).await else { continue };
        let build_url = state.build_url(&repo.full_name, build_number);
        for notifier in notifiers.iter().filter(|notifier| notifier.events.iter().any(|wanted| wanted == event)) {
            let body = match notifier.kind.as_str() {
                "slack" => serde_json::json!({ "text": promotion_text(promotion, event, &repo.full_name, build_number, &build_url) }),
                _ => {
                    let view = crate::api::promotions::to_view(promotion, None);
                    with_build(serde_json::json!({ "event": event, "promotion": view }), &repo.full_name, build_number, &build_url)
                }
            };
            send(state, notifier, event, &body);
        }
    }
}

/// The repositories whose builds pushed `image` (pinned by digest), each with its newest such
/// build's number. An image no build published concerns no repository.
async fn builders_of(state: &AppState, image: &str) -> Vec<(store::RepoRecord, i64)> {
    let Ok((repository, digest)) = crate::api::artifacts::parse_image(image) else { return Vec::new() };
    let artifacts = match state.store.artifacts_by_digest(digest).await {
        Ok(artifacts) => artifacts,
        Err(error) => {
            tracing::error!(%error, "cannot look up the deployed image");
            return Vec::new();
        }
    };
    let mut told = std::collections::BTreeSet::new();
    let mut builders = Vec::new();
    for artifact in artifacts.iter().filter(|artifact| repository.is_none_or(|repository| repository == artifact.repository)) {
        // The newest build of each repository that pushed the image stands for it.
        if !told.insert(artifact.repo_id) {
            continue;
        }
        if let Ok(Some(repo)) = state.store.repo_by_id(artifact.repo_id).await {
            builders.push((repo, artifact.build_number));
        }
    }
    builders
}

/// A webhook body with the repository and build behind it added.
fn with_build(mut body: serde_json::Value, repo: &str, build: i64, build_url: &str) -> serde_json::Value {
    if let Some(fields) = body.as_object_mut() {
        fields.insert("repository".into(), repo.into());
        fields.insert("build".into(), build.into());
        fields.insert("build_url".into(), build_url.into());
    }
    body
}

/// One line for a chat about a promotion.
fn promotion_text(promotion: &store::PromotionRecord, event: &str, repo: &str, build: i64, build_url: &str) -> String {
    let what = match event {
        proto::delivery::PROMOTION_REQUESTED => {
            format!("requested by {}, waiting for {} approval(s)", promotion.requested_by, promotion.approvals_required)
        }
        proto::delivery::PROMOTION_APPROVED => {
            let by: Vec<&str> =
                promotion.decisions.iter().filter(|decision| decision.approved).map(|decision| decision.login.as_str()).collect();
            if by.is_empty() { "approved (no approval required)".to_owned() } else { format!("approved by {}", by.join(", ")) }
        }
        proto::delivery::PROMOTION_APPLIED => match &promotion.branch {
            Some(branch) => format!("pushed to branch `{branch}` for review"),
            None => "committed; deploying".to_owned(),
        },
        _ => format!("{}: {}", event.trim_start_matches("promotion."), promotion.reason.as_deref().unwrap_or("-")),
    };
    format!(
        "{}: promotion #{} of {} from {} (`{}`) {what} (<{build_url}|{repo} build #{build}>)",
        promotion.environment, promotion.id, promotion.app, promotion.from_environment, promotion.image
    )
}

/// One line for a chat: where, what, how it went, and the build behind it.
fn deployment_text(event: &DeploymentEvent, repo: &str, build: i64, build_url: &str) -> String {
    let what = match &event.deployment {
        Some(deployment) => {
            let image = deployment.to_image.as_deref().unwrap_or("-");
            let reason = deployment.reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default();
            format!("{} `{image}`{reason}", event.event.trim_start_matches("deployment."))
        }
        None => format!("drifted: {}", event.drift.join("; ")),
    };
    format!("{}: {} {what} (<{build_url}|{repo} build #{build}>)", event.environment, event.app)
}

/// Posts `body` in the background, signed when the notifier has a secret.
fn send(state: &AppState, notifier: &NotifierRecord, event: &'static str, body: &serde_json::Value) {
    let body = body.to_string();
    let signature = match notifier.secret_ciphertext.as_deref().map(|sealed| state.secrets.open_signing_key(notifier.repo_id, sealed)) {
        None => None,
        Some(Ok(key)) => Some(signature(&key, body.as_bytes())),
        Some(Err(_)) => {
            // Sending unsigned would teach receivers to accept unsigned bodies.
            tracing::error!(notifier = notifier.id, "the notifier's signing secret cannot be opened; nothing is sent");
            return;
        }
    };
    let http = state.http.clone();
    let url = notifier.url.clone();
    tokio::spawn(async move {
        retry(event, || async {
            let mut request =
                http.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").header(EVENT_HEADER, event).body(body.clone());
            if let Some(signature) = &signature {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            let response = request.send().await.map_err(|error| error.without_url().to_string())?;
            if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
        })
        .await;
    });
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`, as GitHub signs its webhooks.
pub fn signature(key: &str, body: &[u8]) -> String {
    forge::webhook::signature(key, body)
}

async fn retry<F, Fut, E>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = FIRST_BACKOFF;
    for number in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return,
            Err(error) if number == ATTEMPTS => tracing::warn!(%error, attempts = ATTEMPTS, "{what} not delivered; giving up"),
            Err(error) => {
                tracing::info!(%error, attempt = number, "{what} not delivered; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
        }
    }
}

fn status_description(build: &BuildRecord) -> String {
    match build.state {
        State::Pending => "waiting for an agent".into(),
        State::Running => "running".into(),
        State::Success => "the build succeeded".into(),
        State::Failure => "the build failed".into(),
        State::Killed => "the build was cancelled".into(),
        State::Error => build.reason.clone().unwrap_or_else(|| "the build could not run".into()),
        State::Skipped => "nothing to run".into(),
        State::Lost => "the agent stopped answering".into(),
        State::Blocked => "waiting for a maintainer's approval".into(),
    }
}

/// A Slack incoming-webhook body (also understood by Mattermost and Rocket.Chat).
fn slack_body(build: &proto::api::Build, url: &str) -> serde_json::Value {
    let color = match build.state {
        State::Success => "good",
        State::Failure | State::Error | State::Lost => "danger",
        _ => "warning",
    };
    let short_commit = &build.commit[..build.commit.len().min(8)];
    let headline = format!("{} build #{} {} ({} on {})", build.repo, build.number, build.state, short_commit, build.branch);
    serde_json::json!({
        "text": format!("<{url}|{headline}>"),
        "attachments": [{
            "color": color,
            "title": headline,
            "title_link": url,
            "text": build.message.lines().next().unwrap_or(""),
            "fields": [
                { "title": "Event", "value": build.event, "short": true },
                { "title": "Author", "value": build.author, "short": true },
            ],
        }],
    })
}
