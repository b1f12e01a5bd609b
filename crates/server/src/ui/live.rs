//! Pages kept live: each page with a live part has an event stream that says `changed` when what
//! it shows changed (from the in-process hub), and the script fetches the part again. The
//! stream carries no data, so it needs no authorization beyond being allowed to see the page.
//!
//! With several servers on one database the hub only hears its own server's changes, so every
//! stream also says `changed` after a quiet while.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State as AxumState};
use axum::response::IntoResponse as _;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use proto::api::Role;

use crate::api::builds::find;
use crate::hub::Topic;
use crate::state::AppState;
use crate::ui::page::{PageResult, Viewer};

/// The longest a page goes without a redraw while it is open.
const QUIET: Duration = Duration::from_secs(15);
/// Changes that come together (a step ends, the next starts) are drawn once.
const COALESCE: Duration = Duration::from_millis(150);

/// `GET /events`: the dashboard's changes.
pub async fn dashboard(_viewer: Viewer, AxumState(state): AxumState<AppState>) -> PageResult {
    Ok(changes(state, Topic::Builds).into_response())
}

/// `GET /repos/{owner}/{name}/events`.
pub async fn repository(viewer: Viewer, AxumState(state): AxumState<AppState>, Path((owner, name)): Path<(String, String)>) -> PageResult {
    let (repo, _) = viewer.repo(&state, &owner, &name, Role::Read).await?;
    Ok(changes(state, Topic::Repo(repo.id)).into_response())
}

/// `GET /repos/{owner}/{name}/builds/{number}/events`.
pub async fn build(
    viewer: Viewer,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> PageResult {
    let (repo, _) = viewer.repo(&state, &owner, &name, Role::Read).await?;
    let build = find(&state, repo.id, &repo.full_name, number).await?;
    Ok(changes(state, Topic::Build(build.id)).into_response())
}

fn changes(state: AppState, topic: Topic) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let subscription = state.hub.subscribe(topic);
    let stream = futures_util::stream::unfold((state, subscription), |(state, mut subscription)| async move {
        tokio::select! {
            changed = subscription.wait(QUIET) => {
                if changed {
                    tokio::select! {
                        _ = tokio::time::sleep(COALESCE) => {}
                        _ = state.shutdown.cancelled() => return None,
                    }
                }
                Some((Ok(Event::default().event("changed").data(if changed { "change" } else { "quiet" })), (state, subscription)))
            }
            _ = state.shutdown.cancelled() => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
