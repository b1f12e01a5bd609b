//! `gantry build ls|show|run|cancel|restart|approve|decline|logs`: a repository's builds, their
//! workflows and steps, the pipeline's diagnostics when it could not run, and the decision on a
//! build that waits for a maintainer's approval.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use proto::State;
use proto::api::{Artifact, Build, BuildCreate, BuildDiagnostic, Workflow};

use super::RepoName;
use super::http::Client;
use super::logs::{self, LogsArgs};
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum BuildAction {
    /// List a repository's builds, newest first.
    #[command(alias = "list")]
    Ls {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        /// At most this many builds (1 to 100).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(i64).range(1..=100))]
        limit: i64,
    },
    /// Show a build: its workflows and steps, or the problems in its pipeline.
    Show(BuildRef),
    /// Start a build by hand.
    Run(RunArgs),
    /// Cancel a pending or running build.
    Cancel(BuildRef),
    /// Start a new build of the same commit, event and variables.
    Restart(BuildRef),
    /// Let a build that waits for approval (a fork's pull request) run.
    Approve(BuildRef),
    /// Refuse a build that waits for approval: it ends as killed.
    Decline(BuildRef),
    /// Print step logs, or follow them live with -f.
    Logs(LogsArgs),
}

#[derive(Args, Clone, Debug)]
pub(super) struct BuildRef {
    /// The repository, as OWNER/NAME.
    pub repo: RepoName,
    /// The build's number.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub number: i64,
}

#[derive(Args, Clone, Debug)]
pub(super) struct RunArgs {
    /// The repository, as OWNER/NAME.
    repo: RepoName,
    /// The branch to build (default: the repository's default branch).
    #[arg(long)]
    branch: Option<String>,
    /// The commit to build (default: the branch's head).
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// A pipeline variable (repeat the flag); never put secrets here.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

pub(super) async fn execute(client: Client, action: BuildAction, json: bool) -> anyhow::Result<u8> {
    match action {
        BuildAction::Ls { repo, limit } => {
            let builds: Vec<Build> = client.get_query(&repo.path(&["builds"]), &[("limit", limit.to_string())]).await?;
            if json {
                render::emit_json(&builds)?;
            } else if builds.is_empty() {
                render::emit(&format!("{repo} has no builds yet; start one with `gantry build run {repo}`\n"))?;
            } else {
                render::emit(&list(&builds, render::now()))?;
            }
            Ok(0)
        }
        BuildAction::Show(target) => {
            let build = fetch(&client, &target.repo, target.number).await?;
            let number = target.number.to_string();
            let artifacts: Vec<Artifact> = client.get(&target.repo.path(&["builds", &number, "artifacts"])).await?;
            if json {
                let mut value = serde_json::to_value(&build)?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("artifacts".into(), serde_json::to_value(&artifacts)?);
                }
                render::emit_json(&value)?;
            } else {
                let mut text = describe(&build, render::now());
                if !artifacts.is_empty() {
                    text.push('\n');
                    text.push_str(&super::artifact::table(&artifacts));
                }
                render::emit(&text)?;
            }
            Ok(0)
        }
        BuildAction::Run(args) => {
            let body =
                BuildCreate { branch: args.branch, commit: args.commit, variables: args.variables.into_iter().collect::<BTreeMap<_, _>>() };
            let build: Build = client.post(&args.repo.path(&["builds"]), &body).await?;
            started(&build, json)
        }
        BuildAction::Cancel(target) => decide(&client, &target, "cancel", json).await,
        BuildAction::Approve(target) => decide(&client, &target, "approve", json).await,
        BuildAction::Decline(target) => decide(&client, &target, "decline", json).await,
        BuildAction::Restart(target) => {
            let number = target.number.to_string();
            let build: Build = client.post(&target.repo.path(&["builds", &number, "restart"]), &serde_json::json!({})).await?;
            started(&build, json)
        }
        BuildAction::Logs(args) => logs::execute(&client, args, json).await,
    }
}

/// Cancels, approves or declines a build, and says what it is now.
async fn decide(client: &Client, target: &BuildRef, action: &str, json: bool) -> anyhow::Result<u8> {
    let number = target.number.to_string();
    let build: Build = client.post(&target.repo.path(&["builds", &number, action]), &serde_json::json!({})).await?;
    if json {
        render::emit_json(&build)?;
    } else {
        render::emit(&format!("{}\n", headline(&build)))?;
    }
    Ok(0)
}

pub(super) async fn fetch(client: &Client, repo: &RepoName, number: i64) -> anyhow::Result<Build> {
    Ok(client.get(&repo.path(&["builds", &number.to_string()])).await?)
}

/// A build just started (run, restart). One that could not even start (errors in its
/// pipeline, no pipeline at the commit) exits 1 with the reason and the diagnostics.
fn started(build: &Build, json: bool) -> anyhow::Result<u8> {
    let failed = build.state.is_failure();
    if json {
        render::emit_json(build)?;
    } else {
        let mut text = format!("{}\n", headline(build));
        if failed {
            if let Some(reason) = &build.reason {
                text.push_str(&format!("  reason: {reason}\n"));
            }
            text.push_str(&diagnostics(&build.diagnostics));
        } else if build.state == State::Blocked {
            text.push_str(&format!(
                "  it waits for a maintainer: `gantry build approve {0} {1}` (or `decline`)\n",
                build.repo, build.number
            ));
        } else {
            text.push_str(&format!("  follow it with `gantry build logs {} {} -f`\n", build.repo, build.number));
        }
        render::emit(&text)?;
    }
    Ok(if failed { 1 } else { 0 })
}

/// `build 4 of acme/shop: pending (manual on main, 1a2b3c4d)`.
fn headline(build: &Build) -> String {
    let mut line = format!("build {} of {}: {} ({} on {}", build.number, build.repo, build.state, build.event, place(build));
    if !build.commit.is_empty() {
        line.push_str(&format!(", {}", render::short_commit(&build.commit)));
    }
    if let Some(number) = build.trigger.strip_prefix("restart:") {
        line.push_str(&format!(", restart of {number}"));
    }
    line.push(')');
    line
}

/// The branch, or the tag or pull request a build is for.
fn place(build: &Build) -> String {
    if let Some(tag) = build.reference.strip_prefix("refs/tags/") {
        format!("tag {tag}")
    } else if let Some(pull_request) = &build.pull_request {
        format!("pull request {pull_request} into {}", build.branch)
    } else {
        build.branch.clone()
    }
}

fn list(builds: &[Build], now: i64) -> String {
    let mut table = Table::new(&["BUILD", "STATE", "EVENT", "BRANCH", "COMMIT", "CREATED", "DURATION", "MESSAGE"]);
    for build in builds {
        table.row(vec![
            build.number.to_string(),
            build.state.to_string(),
            build.event.clone(),
            place(build),
            render::short_commit(&build.commit).to_owned(),
            render::ago(build.created, now),
            elapsed(build.started, build.finished, now).unwrap_or_else(|| "-".into()),
            render::first_line(&build.message, 50),
        ]);
    }
    table.render()
}

/// How long something ran: until it finished, or so far.
fn elapsed(started: Option<i64>, finished: Option<i64>, now: i64) -> Option<String> {
    let started = started?;
    Some(render::duration(finished.unwrap_or(now) - started))
}

fn describe(build: &Build, now: i64) -> String {
    let mut pairs = vec![
        ("event", format!("{} on {} ({})", build.event, place(build), build.reference)),
        ("commit", format!("{}  {}", render::short_commit(&build.commit), render::first_line(&build.message, 72))),
        ("author", build.author.clone()),
        ("trigger", build.trigger.clone()),
        ("created", format!("{} ({})", render::timestamp(build.created), render::ago(build.created, now))),
    ];
    if build.from_fork {
        pairs.push(("fork", "yes: no secrets, no trust".into()));
    }
    if let Some(approved_by) = &build.approved_by {
        let when = build.approved.map(|approved| format!(" at {}", render::timestamp(approved))).unwrap_or_default();
        pairs.push(("approved", format!("by {approved_by}{when}")));
    }
    if let Some(started) = build.started {
        pairs.push(("started", render::timestamp(started)));
    }
    if let Some(finished) = build.finished {
        pairs.push(("finished", render::timestamp(finished)));
    }
    if let Some(duration) = elapsed(build.started, build.finished, now) {
        pairs.push(("duration", duration));
    }
    if let Some(reason) = &build.reason {
        pairs.push(("reason", reason.clone()));
    }
    let mut text = format!("build {} of {}: {}\n{}", build.number, build.repo, build.state, render::fields(&pairs));
    if !build.diagnostics.is_empty() {
        text.push('\n');
        text.push_str(&diagnostics(&build.diagnostics));
    }
    for workflow in build.workflows.iter().flatten() {
        text.push('\n');
        text.push_str(&describe_workflow(workflow, now));
    }
    text
}

/// `file:line:column: severity[code]: message`, then the hint, as `gantry lint` words it.
fn diagnostics(diagnostics: &[BuildDiagnostic]) -> String {
    let mut text = String::new();
    for diagnostic in diagnostics {
        text.push_str(&format!(
            "{}:{}:{}: {}[{}]: {}\n",
            diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.severity, diagnostic.code, diagnostic.message
        ));
        if let Some(hint) = &diagnostic.hint {
            text.push_str(&format!("  hint: {hint}\n"));
        }
    }
    text
}

fn describe_workflow(workflow: &Workflow, now: i64) -> String {
    let mut notes = Vec::new();
    if let Some(agent) = &workflow.agent {
        notes.push(format!("on {agent}"));
    }
    if let Some(duration) = elapsed(workflow.started, workflow.finished, now) {
        notes.push(duration);
    }
    if let Some(reason) = &workflow.reason {
        notes.push(reason.clone());
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
    let mut table = Table::new(&["STEP", "STATE", "EXIT", "DURATION", "REASON"]).indented(2);
    for step in &workflow.steps {
        table.row(vec![
            step.name.clone(),
            step.state.to_string(),
            step.exit_code.map(|code| code.to_string()).unwrap_or_else(|| "-".into()),
            elapsed(step.started, step.finished, now).unwrap_or_else(|| "-".into()),
            step.reason.clone().unwrap_or_default(),
        ]);
    }
    format!("workflow {}: {}{notes}\n{}", workflow.name, workflow.state, table.render())
}

#[cfg(test)]
mod tests {
    use proto::State;
    use proto::api::Step;

    use super::*;

    fn build() -> Build {
        Build {
            id: 1,
            repo: "acme/shop".into(),
            number: 3,
            event: "push".into(),
            state: State::Failure,
            reference: "refs/heads/main".into(),
            branch: "main".into(),
            commit: "1a2b3c4d5e6f".into(),
            message: "Fix the login form\n\nLonger text".into(),
            author: "Ada".into(),
            trigger: "webhook".into(),
            pull_request: None,
            reason: None,
            from_fork: false,
            approved_by: None,
            approved: None,
            created: 1_000,
            started: Some(1_010),
            finished: Some(1_090),
            diagnostics: vec![BuildDiagnostic {
                severity: "warning".into(),
                code: "unknown-key".into(),
                file: ".woodpecker.yml".into(),
                line: 4,
                column: 5,
                message: "unknown key `comands`".into(),
                hint: Some("did you mean `commands`?".into()),
            }],
            workflows: Some(vec![Workflow {
                id: 1,
                name: "build".into(),
                state: State::Failure,
                agent: Some("agent-1".into()),
                reason: None,
                started: Some(1_010),
                finished: Some(1_090),
                steps: vec![
                    Step {
                        id: 1,
                        name: "clone".into(),
                        state: State::Success,
                        exit_code: Some(0),
                        reason: None,
                        started: Some(1_010),
                        finished: Some(1_013),
                        log_lines: 2,
                    },
                    Step {
                        id: 2,
                        name: "test".into(),
                        state: State::Failure,
                        exit_code: Some(1),
                        reason: None,
                        started: Some(1_013),
                        finished: Some(1_090),
                        log_lines: 40,
                    },
                    Step {
                        id: 3,
                        name: "deploy".into(),
                        state: State::Skipped,
                        exit_code: None,
                        reason: Some("event is push".into()),
                        started: None,
                        finished: None,
                        log_lines: 0,
                    },
                ],
            }]),
        }
    }

    #[test]
    fn show_lists_workflows_steps_and_diagnostics() {
        let text = describe(&build(), 2_000);
        assert!(text.starts_with("build 3 of acme/shop: failure\n"), "{text}");
        assert!(text.contains("  commit    1a2b3c4d  Fix the login form\n"), "{text}");
        assert!(text.contains("  duration  1m 20s\n"), "{text}");
        assert!(
            text.contains(".woodpecker.yml:4:5: warning[unknown-key]: unknown key `comands`\n  hint: did you mean `commands`?\n"),
            "{text}"
        );
        assert!(text.contains("workflow build: failure (on agent-1, 1m 20s)\n"), "{text}");
        assert!(text.contains("  STEP    STATE    EXIT  DURATION  REASON\n"), "{text}");
        assert!(text.contains("  test    failure  1     1m 17s\n"), "{text}");
        assert!(text.contains("  deploy  skipped  -     -         event is push\n"), "{text}");
    }

    #[test]
    fn headlines_name_the_tag_or_the_restarted_build() {
        let mut tagged = build();
        tagged.reference = "refs/tags/v1.2".into();
        tagged.trigger = "restart:2".into();
        assert_eq!(headline(&tagged), "build 3 of acme/shop: failure (push on tag v1.2, 1a2b3c4d, restart of 2)");
    }
}
