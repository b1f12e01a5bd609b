//! Telling the outside world: commit statuses on the forge for every build state change, and
//! notifications (Gantry's JSON webhook, Slack-compatible) when a build finishes. Both are sent
//! in the background with retries and backoff, so a slow forge never slows a build down.

use std::time::Duration;

use proto::State;
use proto::api::BuildNotification;
use store::BuildRecord;

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
        if !notifier.states.is_empty() && !notifier.states.contains(&build.state) {
            continue;
        }
        let body = match notifier.kind.as_str() {
            "slack" => slack_body(&view, &build_url),
            _ => serde_json::to_value(BuildNotification { repo: repo.full_name.clone(), build: view.clone(), url: build_url.clone() })
                .unwrap_or_default(),
        };
        let http = state.http.clone();
        let url = notifier.url.clone();
        tokio::spawn(async move {
            retry("notification", || async {
                let response = http.post(&url).json(&body).send().await.map_err(|error| error.without_url().to_string())?;
                if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
            })
            .await;
        });
    }
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
