//! `gantry build logs`: one step's log or every step's in order, printed as it downloads, or
//! followed live over server-sent events, resuming after the last line received when the
//! connection drops so that no line is lost or printed twice.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::StreamExt as _;
use proto::State;
use proto::api::{Build, LogEntry};
use serde::Serialize;

use super::RepoName;
use super::build::fetch;
use super::http::{Client, ClientError};
use super::render;
use super::sse::SseParser;

/// How often a pending step or an unfinished build is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// The server sends a keep-alive every 15 seconds; silence this long means the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Reconnecting is given up after this long without receiving anything.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[derive(Args, Clone, Debug)]
pub(super) struct LogsArgs {
    /// The repository, as OWNER/NAME.
    repo: RepoName,
    /// The build's number.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    number: i64,
    /// One step, as STEP or WORKFLOW/STEP (default: every step in order, each under a header).
    step: Option<String>,
    /// Follow live until the build (or the one step) has finished; exit 1 if it did not succeed.
    #[arg(short, long)]
    follow: bool,
}

/// A step whose log is wanted.
#[derive(Clone, Debug)]
struct Target {
    workflow: String,
    step: String,
    id: i64,
}

impl Target {
    fn label(&self) -> String {
        format!("{}/{}", self.workflow, self.step)
    }
}

/// A log line with the step it belongs to, for `--json`.
#[derive(Serialize)]
struct JsonLine<'a> {
    workflow: &'a str,
    step: &'a str,
    #[serde(flatten)]
    entry: &'a LogEntry,
}

/// Whether to go on: false once stdout is closed (`| head`), which ends the command quietly.
type Continue = bool;

pub(super) async fn execute(client: &Client, args: LogsArgs, json: bool) -> anyhow::Result<u8> {
    let build = fetch(client, &args.repo, args.number).await?;
    let targets = match select(&build, args.step.as_deref()) {
        Ok(targets) => targets,
        Err(Selection::Unknown(message)) => {
            eprintln!("error: {message}");
            return Ok(1);
        }
        Err(Selection::Ambiguous(message)) => bail!(message),
    };
    if targets.is_empty() {
        let why = build.reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default();
        eprintln!("note: build {} of {} has no steps{why}", build.number, build.repo);
    }
    let headers = args.step.is_none() && !json;
    let printer = Printer { json, headers };
    if args.follow {
        follow(client, &args.repo, build, &targets, args.step.is_some(), printer).await
    } else {
        for target in &targets {
            let state = step_state(&build, target.id).unwrap_or(State::Pending);
            if !printer.header(target, state)? || !download(client, &args.repo, args.number, target, printer).await? {
                break;
            }
        }
        Ok(0)
    }
}

enum Selection {
    /// No step has that name: like a missing resource, exit 1.
    Unknown(String),
    /// More than one does: a usage error, exit 2.
    Ambiguous(String),
}

/// The steps named by `wanted` (`step` or `workflow/step`), or every step in order.
fn select(build: &Build, wanted: Option<&str>) -> Result<Vec<Target>, Selection> {
    let all: Vec<Target> = build
        .workflows
        .iter()
        .flatten()
        .flat_map(|workflow| {
            workflow.steps.iter().map(|step| Target { workflow: workflow.name.clone(), step: step.name.clone(), id: step.id })
        })
        .collect();
    let Some(wanted) = wanted else { return Ok(all) };
    let choices = || all.iter().map(Target::label).collect::<Vec<_>>().join(", ");
    let exact: Vec<&Target> = all.iter().filter(|target| target.label() == wanted).collect();
    let matches = if exact.is_empty() { all.iter().filter(|target| target.step == wanted).collect() } else { exact };
    match matches.as_slice() {
        [one] => Ok(vec![(*one).clone()]),
        [] if all.is_empty() => Err(Selection::Unknown(format!("build {} of {} has no steps", build.number, build.repo))),
        [] => Err(Selection::Unknown(format!("build {} of {} has no step `{wanted}`; its steps: {}", build.number, build.repo, choices()))),
        several => Err(Selection::Ambiguous(format!(
            "more than one step is called `{wanted}`; name one as WORKFLOW/STEP: {}",
            several.iter().map(|target| target.label()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn step_state(build: &Build, step_id: i64) -> Option<State> {
    build.workflows.iter().flatten().flat_map(|workflow| &workflow.steps).find(|step| step.id == step_id).map(|step| step.state)
}

/// How log lines reach stdout.
#[derive(Clone, Copy)]
struct Printer {
    json: bool,
    /// A `==> workflow/step (state)` line before each step's log.
    headers: bool,
}

impl Printer {
    fn header(self, target: &Target, state: State) -> anyhow::Result<Continue> {
        if !self.headers {
            return Ok(true);
        }
        render::emit_bytes(format!("==> {} ({state})\n", target.label()).as_bytes())
    }

    fn lines(self, target: &Target, entries: &[LogEntry]) -> anyhow::Result<Continue> {
        let mut out = String::new();
        for entry in entries {
            if self.json {
                out.push_str(&serde_json::to_string(&JsonLine { workflow: &target.workflow, step: &target.step, entry })?);
            } else {
                out.push_str(&entry.text);
            }
            out.push('\n');
        }
        render::emit_bytes(out.as_bytes())
    }
}

/// A step's log so far, written out chunk by chunk as it arrives.
async fn download(client: &Client, repo: &RepoName, number: i64, target: &Target, printer: Printer) -> anyhow::Result<Continue> {
    let number = number.to_string();
    let step = target.id.to_string();
    let segments = repo.path(&["builds", &number, "steps", &step, "log"]);
    let query = if printer.json { vec![("format", "json".to_owned())] } else { Vec::new() };
    let response = client.open_stream(&segments, &query, &[]).await?;
    let mut body = response.bytes_stream();
    // JSON lines are decoded to add the step; a line may span chunks.
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|error| client.unreachable(&error)).with_context(|| format!("the log of {} broke off", target.label()))?;
        if !printer.json {
            if !render::emit_bytes(&chunk)? {
                return Ok(false);
            }
            continue;
        }
        partial.extend_from_slice(&chunk);
        let Some(last_newline) = partial.iter().rposition(|byte| *byte == b'\n') else { continue };
        let complete: Vec<u8> = partial.drain(..=last_newline).collect();
        let entries = complete
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(serde_json::from_slice::<LogEntry>)
            .collect::<Result<Vec<_>, _>>()
            .context("the server sent a log line that is not a log entry")?;
        if !printer.lines(target, &entries)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Follows each target in order, waiting for pending steps to start, then for the build to
/// finish. Exit 0 when what was followed (the build, or the one step) succeeded.
async fn follow(
    client: &Client,
    repo: &RepoName,
    mut build: Build,
    targets: &[Target],
    one_step: bool,
    printer: Printer,
) -> anyhow::Result<u8> {
    for target in targets {
        let mut announced = false;
        let state = loop {
            let state = step_state(&build, target.id)
                .with_context(|| format!("step {} is no longer part of build {}", target.label(), build.number))?;
            if state != State::Pending || build.state.is_finished() {
                break state;
            }
            if !announced {
                eprintln!("waiting for {} to start", target.label());
                announced = true;
            }
            tokio::time::sleep(POLL).await;
            build = fetch(client, repo, build.number).await?;
        };
        if !printer.header(target, state)? || !follow_step(client, repo, build.number, target, printer).await? {
            return Ok(0);
        }
        build = fetch(client, repo, build.number).await?;
    }
    if one_step {
        // The stream ends once the step has finished, so its state is final here. A step skipped
        // by its conditions is fine; one skipped because the build was cancelled or failed is not.
        let succeeded = match targets.first().and_then(|target| step_state(&build, target.id)) {
            Some(State::Success) => true,
            Some(State::Skipped) => !build.state.is_failure(),
            _ => false,
        };
        return Ok(if succeeded { 0 } else { 1 });
    }
    while !build.state.is_finished() {
        tokio::time::sleep(POLL).await;
        build = fetch(client, repo, build.number).await?;
    }
    Ok(if build.state.is_failure() { 1 } else { 0 })
}

/// One step's live log until its `end` event. A connection that drops, ends early or falls
/// silent is opened again with `Last-Event-ID` set to the last line received; lines the
/// server might send again are skipped by their sequence number.
async fn follow_step(client: &Client, repo: &RepoName, number: i64, target: &Target, printer: Printer) -> anyhow::Result<Continue> {
    let number = number.to_string();
    let step = target.id.to_string();
    let segments = repo.path(&["builds", &number, "steps", &step, "log", "stream"]);
    let mut last_seq: Option<u64> = None;
    let mut last_heard = Instant::now();
    let mut delay = Duration::from_millis(500);
    // One note per outage, not one per attempt.
    let mut outage_told = false;
    loop {
        let headers: Vec<(&str, String)> = last_seq.map(|seq| ("Last-Event-ID", seq.to_string())).into_iter().collect();
        let problem = match client.open_stream(&segments, &[], &headers).await {
            // A proxy's 502 while the server restarts is worth waiting out; a 404 is not.
            Err(refused @ ClientError::Refused { status, .. }) if !status.is_server_error() => return Err(refused.into()),
            Err(other) => other.to_string(),
            Ok(response) => {
                let mut parser = SseParser::new();
                let mut body = response.bytes_stream();
                let problem = loop {
                    let chunk = match tokio::time::timeout(SILENCE_LIMIT, body.next()).await {
                        Err(_) => break format!("nothing heard for {}s", SILENCE_LIMIT.as_secs()),
                        Ok(None) => break "the server closed the stream before the log ended".to_owned(),
                        Ok(Some(Err(error))) => break client.unreachable(&error).to_string(),
                        Ok(Some(Ok(chunk))) => chunk,
                    };
                    last_heard = Instant::now();
                    delay = Duration::from_millis(500);
                    outage_told = false;
                    let mut entries = Vec::new();
                    let mut ended = false;
                    for event in parser.push(&chunk) {
                        match event.event.as_str() {
                            "line" => {
                                let entry: LogEntry =
                                    serde_json::from_str(&event.data).context("the server sent a log line that is not a log entry")?;
                                if last_seq.is_none_or(|last| entry.seq > last) {
                                    last_seq = Some(entry.seq);
                                    entries.push(entry);
                                }
                            }
                            "end" => ended = true,
                            _ => {}
                        }
                    }
                    if !entries.is_empty() && !printer.lines(target, &entries)? {
                        return Ok(false);
                    }
                    if ended {
                        return Ok(true);
                    }
                };
                if let Some(retry) = parser.retry_ms() {
                    delay = Duration::from_millis(retry);
                }
                problem
            }
        };
        if last_heard.elapsed() > GIVE_UP_AFTER {
            bail!("gave up following {} after {}s without an answer: {problem}", target.label(), GIVE_UP_AFTER.as_secs());
        }
        if !outage_told {
            let resume = last_seq.map(|seq| format!(" after line {}", seq + 1)).unwrap_or_default();
            eprintln!("note: the log of {} was cut off ({problem}); reconnecting to resume{resume}", target.label());
            outage_told = true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use proto::api::{Step, Workflow};

    use super::*;

    fn build(workflows: &[(&str, &[&str])]) -> Build {
        let mut id = 0;
        let workflows = workflows
            .iter()
            .map(|(name, steps)| Workflow {
                id: 0,
                name: (*name).into(),
                state: State::Pending,
                agent: None,
                reason: None,
                started: None,
                finished: None,
                steps: steps
                    .iter()
                    .map(|step| {
                        id += 1;
                        Step {
                            id,
                            name: (*step).into(),
                            state: State::Pending,
                            exit_code: None,
                            reason: None,
                            started: None,
                            finished: None,
                            log_lines: 0,
                        }
                    })
                    .collect(),
            })
            .collect();
        Build {
            id: 1,
            repo: "acme/shop".into(),
            number: 4,
            event: "push".into(),
            state: State::Pending,
            reference: "refs/heads/main".into(),
            branch: "main".into(),
            commit: "abc".into(),
            message: "m".into(),
            author: "a".into(),
            trigger: "webhook".into(),
            pull_request: None,
            reason: None,
            from_fork: false,
            approved_by: None,
            approved: None,
            created: 0,
            started: None,
            finished: None,
            diagnostics: Vec::new(),
            workflows: Some(workflows),
        }
    }

    fn labels(result: Result<Vec<Target>, Selection>) -> Result<Vec<String>, String> {
        match result {
            Ok(targets) => Ok(targets.iter().map(Target::label).collect()),
            Err(Selection::Unknown(message)) => Err(format!("unknown: {message}")),
            Err(Selection::Ambiguous(message)) => Err(format!("ambiguous: {message}")),
        }
    }

    #[test]
    fn steps_are_picked_by_name_or_workflow_and_name() {
        let build = build(&[("build", &["clone", "test"]), ("lint", &["clone", "check"])]);
        assert_eq!(labels(select(&build, None)).unwrap(), ["build/clone", "build/test", "lint/clone", "lint/check"]);
        assert_eq!(labels(select(&build, Some("check"))).unwrap(), ["lint/check"]);
        assert_eq!(labels(select(&build, Some("lint/clone"))).unwrap(), ["lint/clone"]);
        let ambiguous = labels(select(&build, Some("clone"))).unwrap_err();
        assert_eq!(ambiguous, "ambiguous: more than one step is called `clone`; name one as WORKFLOW/STEP: build/clone, lint/clone");
        let unknown = labels(select(&build, Some("deploy"))).unwrap_err();
        assert!(unknown.starts_with("unknown: build 4 of acme/shop has no step `deploy`; its steps: build/clone, build/test"), "{unknown}");
    }
}
