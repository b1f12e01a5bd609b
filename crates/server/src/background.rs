//! Loops that run beside the HTTP server: polling remotes for new commits and tags, firing cron
//! schedules, marking the workflows of silent agents lost, deleting logs past retention,
//! forgetting webhook deliveries past the de-duplication window, and expiring promotions not
//! approved in time.
//! Each survives its own errors: they are logged and the loop goes on at the next tick.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use store::RepoRecord;
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, now_ms};
use crate::trigger::{BuildRequest, Outcome, TriggerError};

pub fn spawn_all(state: &AppState, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(poll_loop(state.clone(), shutdown.clone())),
        tokio::spawn(cron_loop(state.clone(), shutdown.clone())),
        tokio::spawn(reaper_loop(state.clone(), shutdown.clone())),
        tokio::spawn(retention_loop(state.clone(), shutdown.clone())),
        tokio::spawn(expired_tokens_loop(state.clone(), shutdown.clone())),
        tokio::spawn(deliveries_loop(state.clone(), shutdown.clone())),
        tokio::spawn(promotions_loop(state.clone(), shutdown.clone())),
    ]
}

async fn ticks(state: &AppState, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(state.config.tick) => true,
    }
}

async fn poll_loop(state: AppState, shutdown: CancellationToken) {
    let mut last_poll: HashMap<i64, i64> = HashMap::new();
    while ticks(&state, &shutdown).await {
        let repos = match state.store.list_repos().await {
            Ok(repos) => repos,
            Err(error) => {
                tracing::error!(%error, "cannot list repositories to poll");
                continue;
            }
        };
        let now = now_ms();
        for repo in repos {
            let Some(interval) = repo.settings.poll_interval_seconds else { continue };
            if last_poll.get(&repo.id).is_some_and(|last| now - last < i64::from(interval) * 1000) {
                continue;
            }
            last_poll.insert(repo.id, now);
            if let Err(error) = poll_repo(&state, &repo).await {
                tracing::warn!(repo = %repo.full_name, %error, "poll failed");
            }
        }
    }
}

/// Lists the remote's branches and tags and starts a build for every branch whose head moved
/// and every new tag. The first poll of a repository only remembers what is there. Errors are
/// those of triggers (the same rules for what a caller may read).
pub async fn poll_repo(state: &AppState, repo: &RepoRecord) -> Result<Vec<i64>, TriggerError> {
    let access = crate::trigger::remote_access(state, repo).await?;
    let refs = forge::git::ls_remote(&access.url, &access.git()).await?;
    let previous = state.store.polled_refs(repo.id).await?;
    // Unchanged refs are not written again: with thousands of branches that is most of a poll.
    if previous.as_ref() != Some(&refs) {
        state.store.set_polled_refs(repo.id, &refs, now_ms()).await?;
    }
    let Some(previous) = previous else {
        tracing::info!(repo = %repo.full_name, refs = refs.len(), "first poll: remembering the remote's refs");
        return Ok(Vec::new());
    };
    let mut builds = Vec::new();
    for (reference, commit) in changed_refs(&previous, &refs) {
        let Some(request) = BuildRequest::polled(&reference, &commit, previous.get(&reference).map(String::as_str)) else {
            continue;
        };
        match crate::trigger::start_build(state, repo, request).await {
            Ok(Outcome::Started(build)) => builds.push(build.number),
            Ok(Outcome::Ignored(reason)) => tracing::info!(repo = %repo.full_name, %reference, %reason, "poll: nothing to build"),
            Err(error) => tracing::warn!(repo = %repo.full_name, %reference, %error, "poll: cannot start a build"),
        }
    }
    Ok(builds)
}

/// Branches whose head moved or appeared, and tags that appeared, in ref order.
pub fn changed_refs(previous: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Vec<(String, String)> {
    current
        .iter()
        .filter(|(reference, commit)| {
            let is_branch = reference.starts_with("refs/heads/");
            let is_tag = reference.starts_with("refs/tags/");
            match previous.get(*reference) {
                None => is_branch || is_tag,
                Some(old) => is_branch && old != *commit,
            }
        })
        .map(|(reference, commit)| (reference.clone(), commit.clone()))
        .collect()
}

async fn cron_loop(state: AppState, shutdown: CancellationToken) {
    while ticks(&state, &shutdown).await {
        if let Err(error) = fire_due_crons(&state).await {
            tracing::error!(%error, "cron schedules");
        }
    }
}

/// Starts a build for every schedule that is due and moves it to its next time. A schedule that
/// was due several times while the server was down fires once.
pub async fn fire_due_crons(state: &AppState) -> Result<(), store::StoreError> {
    let now = now_ms();
    for cron in state.store.due_crons(now).await? {
        let next = match crate::api::schedules::next_fire(&cron.schedule, now) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(cron = %cron.name, %error, "schedule cannot fire again");
                i64::MAX / 2
            }
        };
        if !state.store.advance_cron(cron.id, cron.next, next).await? {
            continue; // another server fired it
        }
        let Some(repo) = state.store.repo_by_id(cron.repo_id).await? else { continue };
        let request = BuildRequest::cron(&cron.name, &cron.branch);
        match crate::trigger::start_build(state, &repo, request).await {
            Ok(Outcome::Started(build)) => tracing::info!(repo = %repo.full_name, cron = %cron.name, build = build.number, "cron build"),
            Ok(Outcome::Ignored(reason)) => tracing::info!(repo = %repo.full_name, cron = %cron.name, %reason, "cron: nothing to build"),
            Err(error) => tracing::warn!(repo = %repo.full_name, cron = %cron.name, %error, "cron: cannot start a build"),
        }
    }
    Ok(())
}

async fn reaper_loop(state: AppState, shutdown: CancellationToken) {
    while ticks(&state, &shutdown).await {
        if let Err(error) = crate::queue::reap_lost_agents(&state).await {
            tracing::error!(%error, "checking for lost agents");
        }
        if let Err(error) = crate::queue::fail_interrupted_builds(&state).await {
            tracing::error!(%error, "checking for interrupted builds");
        }
    }
}

async fn retention_loop(state: AppState, shutdown: CancellationToken) {
    let Some(retention) = state.config.log_retention else { return };
    loop {
        if let Err(error) = remove_old_logs(&state, retention).await {
            tracing::error!(%error, "log retention");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// How long a webhook delivery's id and body digest are remembered: a redelivery or a replay
/// within this window starts nothing.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(24 * 3600);

async fn deliveries_loop(state: AppState, shutdown: CancellationToken) {
    loop {
        if let Err(error) = forget_old_deliveries(&state, now_ms()).await {
            tracing::error!(%error, "forgetting old webhook deliveries");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// Forgets the webhook deliveries older than [`DELIVERY_WINDOW`] at `now`; returns how many.
pub async fn forget_old_deliveries(state: &AppState, now: i64) -> Result<u64, store::StoreError> {
    state.store.forget_deliveries_before(now - DELIVERY_WINDOW.as_millis() as i64).await
}

/// Deletes the logs of steps that finished longer than `retention` ago; returns how many.
pub async fn remove_old_logs(state: &AppState, retention: Duration) -> Result<usize, store::StoreError> {
    let before = now_ms() - retention.as_millis() as i64;
    let mut removed = 0;
    loop {
        let steps = state.store.steps_finished_before(before, 1000).await?;
        if steps.is_empty() {
            return Ok(removed);
        }
        for step in steps {
            // Marks the step too, so the next query does not return it again.
            state.store.remove_step_logs(step).await?;
            removed += 1;
        }
    }
}

/// Removes sessions and API tokens past their expiry every few minutes: they stopped working
/// when they expired; this only keeps the table small.
/// Expires promotions not approved in time, within a tick of their timeout.
async fn promotions_loop(state: AppState, shutdown: CancellationToken) {
    while ticks(&state, &shutdown).await {
        crate::api::promotions::expire_due(&state).await;
    }
}

async fn expired_tokens_loop(state: AppState, shutdown: CancellationToken) {
    loop {
        match state.store.delete_expired_tokens(now_ms()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired tokens removed"),
            Err(error) => tracing::error!(%error, "removing expired tokens"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
