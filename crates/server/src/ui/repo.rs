//! A repository's page: its builds (filtered, paged, live), the form that runs a build by hand,
//! and its status badge.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use proto::api::{BuildCreate, Role};
use serde::Deserialize;
use store::BuildFilter;

use crate::crypto::same_secret;
use crate::state::AppState;
use crate::ui::page::{BuildRow, Layout, PageResult, Posted, Viewer, form_urlencode, render, see_other};

const PAGE_SIZE: i64 = 25;

#[derive(Deserialize, Default)]
pub struct RepoQuery {
    pub branch: Option<String>,
    pub event: Option<String>,
    pub state: Option<String>,
    pub author: Option<String>,
    /// Builds numbered below this (the next page).
    pub before: Option<i64>,
    pub part: Option<String>,
}

impl RepoQuery {
    fn filter(&self) -> BuildFilter {
        let given = |value: &Option<String>| value.as_ref().map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        BuildFilter { branch: given(&self.branch), event: given(&self.event), state: given(&self.state), author: given(&self.author) }
    }
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    layout: Layout,
    full_name: String,
    default_branch: String,
    can_write: bool,
    can_admin: bool,
    filter: BuildFilter,
    live_part: String,
    live: Live,
    badge_markdown: String,
    badge_url: String,
    states: &'static [&'static str],
    events: &'static [&'static str],
}

#[derive(Template)]
#[template(path = "repo_live.html")]
struct Live {
    rows: Vec<BuildRow>,
    show_repo: bool,
    /// The next page's link, when there is one.
    older: Option<String>,
    newer: Option<String>,
    filtered: bool,
}

const STATES: &[&str] = &["pending", "blocked", "running", "success", "failure", "killed", "error", "skipped", "lost"];
const EVENTS: &[&str] = &["push", "pull_request", "tag", "manual", "cron", "deployment", "release"];

/// `GET /repos/{owner}/{name}`.
pub async fn show(
    viewer: Viewer,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<RepoQuery>,
) -> PageResult {
    let (repo, role) = viewer.repo(&state, &owner, &name, Role::Read).await?;
    let filter = query.filter();
    let builds = state.store.list_builds_matching(repo.id, &filter, PAGE_SIZE + 1, query.before).await?;
    let more = builds.len() as i64 > PAGE_SIZE;
    let rows: Vec<BuildRow> = builds.iter().take(PAGE_SIZE as usize).map(|build| BuildRow::new(build, &repo.full_name)).collect();
    let base = format!("/repos/{}", repo.full_name);
    let filter_query = filter_query(&filter);
    let older = more.then(|| rows.last().map(|row| format!("{base}?{filter_query}before={}", row.number))).flatten();
    let newer = query.before.map(|_| format!("{base}?{filter_query}"));
    let live = Live { rows, show_repo: false, older, newer, filtered: filter != BuildFilter::default() };
    if query.part.as_deref() == Some("live") {
        return Ok(render(&live));
    }
    let mut live_part = format!("{base}?{filter_query}part=live");
    if let Some(before) = query.before {
        live_part.push_str(&format!("&before={before}"));
    }
    let badge_path = format!(
        "/repos/{}/badge.svg?branch={}&key={}",
        repo.full_name,
        form_urlencode(&repo.settings.default_branch),
        state.secrets.badge_key(repo.id)
    );
    let public_url = state.config.public_url.trim_end_matches('/');
    let page = RepoPage {
        layout: Layout::new(Some(&viewer), repo.full_name.clone()).crumb(repo.full_name.clone(), base.clone()),
        full_name: repo.full_name.clone(),
        default_branch: repo.settings.default_branch.clone(),
        can_write: role >= Role::Write,
        can_admin: role >= Role::Admin,
        badge_markdown: format!("[![build status]({public_url}{badge_path})]({public_url}{base})"),
        badge_url: badge_path,
        filter,
        live_part,
        live,
        states: STATES,
        events: EVENTS,
    };
    Ok(render(&page))
}

/// `branch=main&` for the filters given, to keep them across pages.
fn filter_query(filter: &BuildFilter) -> String {
    let mut query = String::new();
    for (key, value) in [("branch", &filter.branch), ("event", &filter.event), ("state", &filter.state), ("author", &filter.author)] {
        if let Some(value) = value {
            query.push_str(&format!("{key}={}&", form_urlencode(value)));
        }
    }
    query
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    branch: String,
    /// `NAME=value` per line.
    #[serde(default)]
    variables: String,
}

/// `POST /repos/{owner}/{name}/run`: starts a build by hand, then shows it.
pub async fn run(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<RunForm>,
) -> PageResult {
    let mut variables = BTreeMap::new();
    for line in posted.form.variables.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(crate::error::ApiError::invalid("variables", format!("`{line}` is not NAME=value")).into());
        };
        variables.insert(key.trim().to_owned(), value.to_owned());
    }
    let branch = Some(posted.form.branch.trim().to_owned()).filter(|branch| !branch.is_empty());
    let body = BuildCreate { branch, commit: None, variables };
    let (repo, build) = crate::api::builds::start_manual(&state, &posted.viewer, &owner, &name, &body).await?;
    Ok(see_other(&format!("/repos/{}/builds/{}", repo.full_name, build.number)))
}

#[derive(Deserialize)]
pub struct BadgeQuery {
    pub branch: Option<String>,
    pub key: Option<String>,
}

/// `GET /repos/{owner}/{name}/badge.svg?branch=&key=`: the state of the branch's newest build.
/// Forges show it to anyone, so it takes no session; the key (on the repository's page) is
/// what lets it through, and a wrong key or repository looks the same as a missing one.
pub async fn badge(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<BadgeQuery>,
) -> Response {
    let full_name = format!("{owner}/{name}");
    let status = match state.store.repo_by_name(&full_name).await {
        Ok(Some(repo)) if query.key.as_deref().is_some_and(|key| same_secret(key, &state.secrets.badge_key(repo.id))) => {
            let branch = query.branch.clone().unwrap_or_else(|| repo.settings.default_branch.clone());
            match state.store.latest_builds_of_branches(&[(repo.id, branch)]).await {
                Ok(builds) => builds.first().map(|build| build.state.as_str()).unwrap_or("none"),
                Err(error) => {
                    tracing::warn!(%error, "cannot read a badge's build");
                    "unknown"
                }
            }
        }
        Ok(_) => "unknown",
        Err(error) => {
            tracing::warn!(%error, "cannot read a badge's repository");
            "unknown"
        }
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache, max-age=0")),
        ],
        badge_svg(status),
    )
        .into_response()
}

/// A flat badge, "build | <state>", coloured by the state.
pub fn badge_svg(status: &str) -> String {
    let colour = match status {
        "success" => "#2e7d32",
        "failure" | "error" | "killed" | "lost" => "#c62828",
        "running" | "pending" | "blocked" => "#b26a00",
        _ => "#616161",
    };
    // About 7 px per character of an 11 px sans-serif font, plus padding.
    let right = status.len() as u32 * 7 + 12;
    let total = 40 + right;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="build: {status}"><title>build: {status}</title><rect width="40" height="20" fill="#555"/><rect x="40" width="{right}" height="20" fill="{colour}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="20" y="14">build</text><text x="{mid}" y="14">{status}</text></g></svg>"##,
        mid = 40 + right / 2
    )
}
