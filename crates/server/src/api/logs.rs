//! Step logs: download as text (or JSON lines), and live follow over server-sent events with
//! resume from `Last-Event-ID`. Lines are read from the store in pages, so the server's memory
//! does not grow with a log's size.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt as _};
use proto::api::Role;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::hub::Topic;
use crate::state::AppState;

const PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// `text` (default) or `json` (one `LogEntry` per line).
    pub format: Option<String>,
    /// Start at this line number.
    #[param(format = "uint64")]
    pub from: Option<u64>,
    /// At most this many lines (all to the end when absent).
    #[param(format = "uint64")]
    pub limit: Option<u64>,
}

async fn find_step(state: &AppState, caller: &Caller, owner: &str, name: &str, number: i64, step_id: i64) -> ApiResult<store::StepRecord> {
    let (repo, _) = caller.repo(state, owner, name, Role::Read).await?;
    let build = super::builds::find(state, repo.id, &repo.full_name, number).await?;
    let not_found = || ApiError::not_found(format!("build {number} of {} has no step {step_id}", repo.full_name));
    let step = state.store.step_by_id(step_id).await?.ok_or_else(not_found)?;
    let workflow = state.store.workflow_by_id(step.workflow_id).await?.ok_or_else(not_found)?;
    if workflow.build_id != build.id {
        return Err(not_found());
    }
    Ok(step)
}

/// A step's log so far, as text or JSON lines.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}/steps/{step}/log", tag = "logs",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path), ("step" = i64, Path), LogQuery),
    responses((status = 200, content((String = "text/plain"), (String = "application/x-ndjson"))), (status = 404, body = proto::api::ErrorBody)))]
pub async fn download(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number, step_id)): Path<(String, String, i64, i64)>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Response> {
    let step = find_step(&state, &caller, &owner, &name, number, step_id).await?;
    let json = query.format.as_deref() == Some("json");
    let logs = state.store.logs().clone();
    let start = query.from.unwrap_or(0);
    let end = query.limit.map_or(u64::MAX, |limit| start.saturating_add(limit));
    // Pages are read as the client consumes the body.
    let pages = futures_util::stream::unfold(Some(start), move |cursor| {
        let logs = logs.clone();
        async move {
            let from = cursor.filter(|from| *from < end)?;
            let page = usize::try_from(end - from).unwrap_or(PAGE).min(PAGE);
            match logs.read(step.id, from, page).await {
                Ok(entries) if entries.is_empty() => None,
                Ok(entries) => {
                    let next = entries.last().map(|entry| entry.seq + 1);
                    let mut chunk = String::new();
                    for entry in &entries {
                        if json {
                            chunk.push_str(&serde_json::to_string(entry).unwrap_or_default());
                        } else {
                            chunk.push_str(&entry.text);
                        }
                        chunk.push('\n');
                    }
                    Some((Ok::<_, Infallible>(chunk), next))
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read a log");
                    None
                }
            }
        }
    });
    let content_type = if json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from_stream(pages)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogSearchQuery {
    /// Text to find, case-insensitive (colour codes are ignored).
    pub q: Option<String>,
    /// `true`: find lines that look like errors instead (`error`, `fatal`, `panic`, `failed`…).
    pub errors: Option<bool>,
    /// Start at this line number.
    #[param(format = "uint64")]
    pub from: Option<u64>,
    /// At most this many matches (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// Finds lines of a step's log: by text, or the lines that look like errors. The log is read
/// in pages, so a search of a million lines holds a page in memory, not the log.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}/steps/{step}/log/search", tag = "logs",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path), ("step" = i64, Path), LogSearchQuery),
    responses((status = 200, body = proto::api::LogMatches), (status = 404, body = proto::api::ErrorBody)))]
pub async fn search(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number, step_id)): Path<(String, String, i64, i64)>,
    Query(query): Query<LogSearchQuery>,
) -> ApiResult<axum::Json<proto::api::LogMatches>> {
    let step = find_step(&state, &caller, &owner, &name, number, step_id).await?;
    let errors = query.errors.unwrap_or(false);
    let needle = query.q.as_deref().map(str::trim).unwrap_or_default().to_lowercase();
    if !errors && needle.is_empty() {
        return Err(ApiError::invalid("q", "give the text to find, or errors=true"));
    }
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut lines = Vec::new();
    let mut from = query.from.unwrap_or(0);
    loop {
        let entries = state.store.logs().read(step.id, from, SEARCH_PAGE).await?;
        let Some(last) = entries.last() else { break };
        from = last.seq + 1;
        for entry in &entries {
            let text = strip_ansi(&entry.text).to_lowercase();
            let found = if errors { looks_like_error(&text) } else { text.contains(&needle) };
            if found {
                if lines.len() == limit {
                    return Ok(axum::Json(proto::api::LogMatches { lines, more: true }));
                }
                lines.push(entry.seq);
            }
        }
        if entries.len() < SEARCH_PAGE {
            break;
        }
    }
    Ok(axum::Json(proto::api::LogMatches { lines, more: false }))
}

const SEARCH_PAGE: usize = 20_000;

/// Removes terminal escape sequences (colours, cursor moves) from a line for the build page's
/// text copy and for search; the page's script draws the colours itself.
pub fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        if character != '\u{1b}' {
            plain.push(character);
            continue;
        }
        match characters.peek() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                characters.next();
                for next in characters.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                characters.next();
                while let Some(next) = characters.next() {
                    if next == '\u{7}' || (next == '\u{1b}' && characters.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            Some(_) => {
                characters.next();
            }
            None => {}
        }
    }
    plain
}

/// Whether a lower-cased line reads like a failure: `error`, `fatal`, `panic`, `exception` or
/// `failed` as the start of a word, except a count of none (`0 failed`, `0 errors`).
pub fn looks_like_error(line: &str) -> bool {
    const WORDS: [&str; 6] = ["error", "fatal", "panic", "exception", "failed", "failure"];
    WORDS.iter().any(|word| {
        line.match_indices(word).any(|(at, _)| {
            let before = &line[..at];
            let word_start = before.chars().next_back().is_none_or(|previous| !previous.is_alphanumeric());
            word_start && !before.trim_end().ends_with(" 0") && before.trim_end() != "0"
        })
    })
}

/// Follows a step's log live: `line` events (id = line number, data = `LogEntry`), then one
/// `end` event when the step has finished and every line was sent. Reconnect with
/// `Last-Event-ID` to resume after the last line received.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/builds/{number}/steps/{step}/log/stream", tag = "logs",
    params(("owner" = String, Path), ("name" = String, Path), ("number" = i64, Path), ("step" = i64, Path), LogQuery),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = proto::api::ErrorBody)))]
pub async fn follow(
    caller: Caller,
    AxumState(state): AxumState<AppState>,
    Path((owner, name, number, step_id)): Path<(String, String, i64, i64)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let step = find_step(&state, &caller, &owner, &name, number, step_id).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|last| last + 1);
    let from = resume.or(query.from).unwrap_or(0);
    let stream = follow_stream(state, step.id, from);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn follow_stream(state: AppState, step_id: i64, from: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    enum Phase {
        Reading(u64),
        Done,
    }
    futures_util::stream::unfold(Phase::Reading(from), move |phase| {
        let state = state.clone();
        async move {
            let Phase::Reading(from) = phase else { return None };
            loop {
                let mut changed = state.hub.subscribe(Topic::Step(step_id));
                let entries = match state.store.logs().read(step_id, from, PAGE).await {
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::error!(%error, "cannot read a log");
                        return None;
                    }
                };
                if !entries.is_empty() {
                    let next = entries.last().map(|entry| entry.seq + 1).unwrap_or(from);
                    let events: Vec<Result<Event, Infallible>> = entries
                        .iter()
                        .map(|entry| Ok(Event::default().event("line").id(entry.seq.to_string()).json_data(entry).unwrap_or_default()))
                        .collect();
                    return Some((futures_util::stream::iter(events), Phase::Reading(next)));
                }
                let finished = match state.store.step_by_id(step_id).await {
                    Ok(Some(step)) => step.state.is_finished(),
                    Ok(None) => true,
                    Err(error) => {
                        tracing::error!(%error, "cannot read a step");
                        return None;
                    }
                };
                if finished {
                    // Lines may have landed between the read and the state check.
                    match state.store.logs().read(step_id, from, 1).await {
                        Ok(more) if !more.is_empty() => continue,
                        _ => {}
                    }
                    let end = vec![Ok(Event::default().event("end").data("{}"))];
                    return Some((futures_util::stream::iter(end), Phase::Done));
                }
                tokio::select! {
                    _ = changed.wait(Duration::from_secs(2)) => {}
                    // The client reconnects with Last-Event-ID to another (or the restarted) server.
                    _ = state.shutdown.cancelled() => return None,
                }
            }
        }
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::{looks_like_error, strip_ansi};

    #[test]
    fn colours_and_titles_are_taken_out_of_the_text() {
        assert_eq!(strip_ansi("\u{1b}[1;31merror\u{1b}[0m: bad"), "error: bad");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}after"), "after");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("cut \u{1b}["), "cut ");
    }

    #[test]
    fn error_lines_are_told_from_counts_of_none() {
        for line in
            ["error: linking failed", "fatal: not a git repository", "thread 'main' panicked at x", "2 failed", "test result: failed."]
        {
            assert!(looks_like_error(line), "{line}");
        }
        for line in ["0 errors", "test result: ok. 5 passed; 0 failed", "terror", "all good"] {
            assert!(!looks_like_error(line), "{line}");
        }
    }
}
