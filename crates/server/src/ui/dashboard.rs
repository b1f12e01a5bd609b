//! The dashboard: the repositories the viewer can see, each with the newest build of its
//! default branch, and every build not finished yet across them.

use askama::Template;
use axum::extract::{Query, State as AxumState};
use serde::Deserialize;

use crate::state::AppState;
use crate::ui::page::{BuildRow, Layout, PageResult, Viewer, render};

pub struct RepoCard {
    pub full_name: String,
    pub link: String,
    pub default_branch: String,
    pub last: Option<BuildRow>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    live: Live,
}

/// What the live part of the dashboard shows (also served alone to the script).
#[derive(Template)]
#[template(path = "dashboard_live.html")]
struct Live {
    repos: Vec<RepoCard>,
    unfinished: Vec<BuildRow>,
}

#[derive(Deserialize)]
pub struct DashboardQuery {
    /// `live`: only the part that changes, for the script to swap in.
    pub part: Option<String>,
}

/// `GET /`.
pub async fn show(viewer: Viewer, AxumState(state): AxumState<AppState>, Query(query): Query<DashboardQuery>) -> PageResult {
    let mut visible = Vec::new();
    for repo in state.store.list_repos().await? {
        if viewer.role_on(&state, &repo).await?.is_some() {
            visible.push(repo);
        }
    }
    let branches: Vec<(i64, String)> = visible.iter().map(|repo| (repo.id, repo.settings.default_branch.clone())).collect();
    let latest = state.store.latest_builds_of_branches(&branches).await?;
    let repos = visible
        .iter()
        .map(|repo| RepoCard {
            full_name: repo.full_name.clone(),
            link: format!("/repos/{}", repo.full_name),
            default_branch: repo.settings.default_branch.clone(),
            last: latest.iter().find(|build| build.repo_id == repo.id).map(|build| BuildRow::new(build, &repo.full_name)),
        })
        .collect();
    let unfinished = state
        .store
        .unfinished_builds(200)
        .await?
        .iter()
        .filter_map(|build| visible.iter().find(|repo| repo.id == build.repo_id).map(|repo| BuildRow::new(build, &repo.full_name)))
        .collect();
    let live = Live { repos, unfinished };
    if query.part.as_deref() == Some("live") {
        return Ok(render(&live));
    }
    Ok(render(&DashboardPage { layout: Layout::new(Some(&viewer), "Dashboard"), live }))
}
