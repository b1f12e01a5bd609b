//! `gantry environment add|ls|rm|deployments|apps|metrics|secret`: environments whose deployers report
//! to the server. `add` and `secret` print the signing secret once, with the deployer's flags;
//! the server keeps it sealed and never shows it again.

use clap::Subcommand;
use proto::api::{DeliveryMetrics, Deployment, Environment, EnvironmentApp, EnvironmentCreate, EnvironmentSecret, PerformanceLevel};
use proto::delivery::{DeploymentKind, DeploymentOutcome};

use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum EnvironmentAction {
    /// Register an environment (server admins): prints the secret its deployer signs events with,
    /// once, and the flags to start the deployer with.
    Add {
        /// The environment's `name` in its environment.yml.
        name: String,
    },
    /// List environments: applications, deployments, when each last reported.
    #[command(alias = "list")]
    Ls,
    /// Remove an environment and everything its deployer reported (server admins).
    #[command(alias = "remove")]
    Rm { name: String },
    /// An environment's deployments, newest first: when, what, outcome, revision, author, build.
    Deployments {
        name: String,
        /// Only this application's deployments.
        #[arg(long)]
        app: Option<String>,
        /// How many (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// An environment's applications: the version that runs, the build that made it, what
    /// happened last, drift.
    Apps { name: String },
    /// Delivery performance over the last DAYS days: deployment frequency, lead time for
    /// changes, change failure rate and time to restore, each with its DORA level.
    Metrics {
        name: String,
        /// Only this application.
        #[arg(long)]
        app: Option<String>,
        /// The window, in days back from now (at most 365).
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Make a new signing secret (server admins), printed once; the deployer's old one stops working.
    Secret { name: String },
}

pub(super) async fn execute(client: Client, action: EnvironmentAction, json: bool) -> anyhow::Result<u8> {
    match action {
        EnvironmentAction::Add { name } => {
            let created: EnvironmentSecret = client.post(&["environments"], &EnvironmentCreate { name }).await?;
            if json {
                render::emit_json(&created)?;
            } else {
                render::emit(&format!("added environment {}\n{}", created.name, secret_text(&created)))?;
            }
            Ok(0)
        }
        EnvironmentAction::Secret { name } => {
            let regenerated: EnvironmentSecret = client.post(&["environments", &name, "secret"], &serde_json::json!({})).await?;
            if json {
                render::emit_json(&regenerated)?;
            } else {
                render::emit(&format!(
                    "made a new signing secret for {}; the old one no longer works\n{}",
                    regenerated.name,
                    secret_text(&regenerated)
                ))?;
            }
            Ok(0)
        }
        EnvironmentAction::Ls => {
            let environments: Vec<Environment> = client.get(&["environments"]).await?;
            if json {
                render::emit_json(&environments)?;
            } else if environments.is_empty() {
                render::emit("no environments; register one with `gantry environment add NAME`\n")?;
            } else {
                let now = render::now();
                let mut table = Table::new(&["NAME", "APPS", "DEPLOYMENTS", "LAST EVENT", "CREATED"]);
                for environment in &environments {
                    table.row(vec![
                        environment.name.clone(),
                        environment.apps.to_string(),
                        environment.deployments.to_string(),
                        environment.last_event.map_or_else(|| "never".to_owned(), |at| render::ago(at, now)),
                        render::ago(environment.created, now),
                    ]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        EnvironmentAction::Rm { name } => {
            client.delete(&["environments", &name]).await?;
            if json {
                render::emit_json(&serde_json::json!({ "removed": name }))?;
            } else {
                render::emit(&format!("removed environment {name} and what its deployer reported; its events are refused from now on\n"))?;
            }
            Ok(0)
        }
        EnvironmentAction::Deployments { name, app, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(app) = app {
                query.push(("app", app));
            }
            let deployments: Vec<Deployment> = client.get_query(&["environments", &name, "deployments"], &query).await?;
            if json {
                render::emit_json(&deployments)?;
            } else if deployments.is_empty() {
                render::emit(&format!(
                    "no deployments recorded for {name}; its deployer reports them when started with `--notify` (see `gantry environment ls`)\n"
                ))?;
            } else {
                render::emit(&deployments_table(&deployments))?;
            }
            Ok(0)
        }
        EnvironmentAction::Metrics { name, app, days } => {
            let mut query = vec![("days", days.to_string())];
            if let Some(app) = app {
                query.push(("app", app));
            }
            let metrics: DeliveryMetrics = client.get_query(&["environments", &name, "metrics"], &query).await?;
            if json {
                render::emit_json(&metrics)?;
            } else {
                render::emit(&metrics_text(&metrics))?;
            }
            Ok(0)
        }
        EnvironmentAction::Apps { name } => {
            let apps: Vec<EnvironmentApp> = client.get(&["environments", &name, "apps"]).await?;
            if json {
                render::emit_json(&apps)?;
            } else if apps.is_empty() {
                render::emit(&format!("{name}'s deployer has reported nothing yet\n"))?;
            } else {
                render::emit(&apps_table(&apps))?;
            }
            Ok(0)
        }
    }
}

/// The four keys, a line each: the figure, what it is made of, the level.
fn metrics_text(metrics: &DeliveryMetrics) -> String {
    let scope = metrics.app.as_ref().map_or_else(String::new, |app| format!(", {app}"));
    let mut table = Table::new(&["KEY", "VALUE", "FROM", "LEVEL"]).indented(2);
    let frequency = &metrics.deployment_frequency;
    table.row(vec![
        "deployment frequency".into(),
        format!("{:.2} a day", frequency.per_day),
        format!("{} successful changes", frequency.deployments),
        level(frequency.level),
    ]);
    let lead = &metrics.lead_time;
    let mut from = format!("{} commits", lead.commits);
    if let Some(p90) = lead.p90_seconds {
        from.push_str(&format!(", p90 {}", render::duration(p90)));
    }
    if lead.unlinked_deployments > 0 {
        let noun = if lead.unlinked_deployments == 1 { "deployment" } else { "deployments" };
        from.push_str(&format!("; {} {noun} without a known build", lead.unlinked_deployments));
    }
    table.row(vec!["lead time for changes".into(), median(lead.median_seconds), from, level(lead.level)]);
    let rate = &metrics.change_failure_rate;
    table.row(vec![
        "change failure rate".into(),
        rate.rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.1}%", rate * 100.0)),
        format!("{} of {} changes", rate.failures, rate.deployments),
        level(rate.level),
    ]);
    let restore = &metrics.time_to_restore;
    table.row(vec![
        "time to restore".into(),
        median(restore.median_seconds),
        format!("{} of {} failures restored", restore.restored, restore.failures),
        level(restore.level),
    ]);
    format!("{}{scope}, the last {} days\n{}", metrics.environment, metrics.days, table.render())
}

fn median(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |seconds| format!("median {}", render::duration(seconds)))
}

fn level(level: Option<PerformanceLevel>) -> String {
    level.map_or_else(
        || "-".to_owned(),
        |level| serde_json::to_value(level).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default(),
    )
}

/// The secret, and how to give it to the deployer.
fn secret_text(answer: &EnvironmentSecret) -> String {
    format!(
        "\nIts deployer signs events with this secret, shown only now:\n\n  {secret}\n\n\
         Start the deployer with:\n\n  gantry deployer --notify {url} --notify-secret {secret} …\n\n\
         (or GANTRY_DEPLOYER_NOTIFY={url} and GANTRY_DEPLOYER_NOTIFY_SECRET, which process lists do not show)\n",
        secret = answer.secret,
        url = answer.events_url,
    )
}

fn deployments_table(deployments: &[Deployment]) -> String {
    let mut table = Table::new(&["STARTED", "APP", "KIND", "OUTCOME", "IMAGE", "REVISION", "AUTHOR", "DURATION", "BUILD"]);
    for deployment in deployments {
        table.row(vec![
            render::timestamp(deployment.started),
            deployment.app.clone(),
            kind(deployment),
            outcome(deployment),
            image(deployment),
            render::short_commit(&deployment.revision).to_owned(),
            deployment.author.clone(),
            deployment.duration_ms.map_or_else(|| "-".to_owned(), |ms| render::duration(i64::try_from(ms / 1000).unwrap_or(i64::MAX))),
            build(deployment),
        ]);
    }
    table.render()
}

fn apps_table(apps: &[EnvironmentApp]) -> String {
    let now = render::now();
    let mut table = Table::new(&["APP", "OWNER", "RUNS", "REVISION", "DEPLOYED", "BY", "BUILD", "LAST", "DRIFT"]);
    for app in apps {
        let current = app.current.as_ref();
        let last = match (&app.latest, current) {
            (Some(latest), Some(current)) if latest.id == current.id => "-".to_owned(),
            (Some(latest), _) => format!("{} {}", kind(latest), outcome(latest)),
            (None, _) => "-".to_owned(),
        };
        table.row(vec![
            app.app.clone(),
            app.owner_team.clone().unwrap_or_else(|| "-".into()),
            current.map_or_else(
                || "-".to_owned(),
                |current| if current.kind == DeploymentKind::Remove { "removed".to_owned() } else { image(current) },
            ),
            current.map_or_else(|| "-".to_owned(), |current| render::short_commit(&current.revision).to_owned()),
            current.map_or_else(|| "-".to_owned(), |current| render::ago(current.finished.unwrap_or(current.started), now)),
            current.map_or_else(|| "-".to_owned(), |current| current.author.clone()),
            current.map_or_else(|| "-".to_owned(), build),
            last,
            app.drift.as_ref().map_or_else(|| "-".to_owned(), |drift| drift.drift.join("; ")),
        ]);
    }
    table.render()
}

fn kind(deployment: &Deployment) -> String {
    serde_json::to_value(&deployment.kind).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

fn outcome(deployment: &Deployment) -> String {
    let name = match deployment.outcome {
        DeploymentOutcome::Running => "running",
        DeploymentOutcome::Succeeded => "succeeded",
        DeploymentOutcome::Failed => "failed",
        DeploymentOutcome::Interrupted => "interrupted",
    };
    if deployment.rolled_back { format!("{name}, rolled back") } else { name.to_owned() }
}

/// The image deployed (the one removed, for a removal).
fn image(deployment: &Deployment) -> String {
    deployment.to_image.clone().or_else(|| deployment.from_image.clone()).unwrap_or_else(|| "-".into())
}

fn build(deployment: &Deployment) -> String {
    deployment.build.as_ref().map_or_else(|| "-".to_owned(), |build| format!("{} #{}", build.repo, build.build))
}

#[cfg(test)]
mod tests {
    use proto::api::BuildLink;

    use super::*;

    fn deployment(outcome: DeploymentOutcome, rolled_back: bool) -> Deployment {
        Deployment {
            id: "d1".into(),
            environment: "production".into(),
            app: "web".into(),
            kind: DeploymentKind::Update,
            from_image: Some("web:1".into()),
            to_image: Some("web:2".into()),
            from_revision: None,
            revision: "0123456789abcdef".into(),
            author: "Ada <ada@example.com>".into(),
            started: 1_767_225_600,
            finished: Some(1_767_225_675),
            duration_ms: Some(75_000),
            outcome,
            rolled_back,
            reason: None,
            owner_team: None,
            build: Some(BuildLink { repo: "acme/web".into(), build: 12, commit: "abc".into(), url: "http://x".into() }),
        }
    }

    #[test]
    fn a_deployment_reads_as_one_line() {
        let text = deployments_table(&[deployment(DeploymentOutcome::Failed, true)]);
        let line = text.lines().nth(1).unwrap();
        for part in [
            "2026-01-01 00:00:00 UTC",
            "update",
            "failed, rolled back",
            "web:2",
            "01234567 ",
            "Ada <ada@example.com>",
            "1m 15s",
            "acme/web #12",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }

    #[test]
    fn the_four_keys_read_as_a_line_each_with_their_level() {
        use proto::api::{ChangeFailureRate, DeploymentFrequency, LeadTime, TimeToRestore};
        let metrics = DeliveryMetrics {
            environment: "production".into(),
            app: Some("web".into()),
            since: 1_767_225_600,
            until: 1_769_817_600,
            days: 30,
            deployment_frequency: DeploymentFrequency { deployments: 3, per_day: 0.1, level: Some(PerformanceLevel::Medium) },
            lead_time: LeadTime {
                commits: 5,
                median_seconds: Some(2 * 86_400 + 60),
                p90_seconds: Some(3 * 86_400),
                unlinked_deployments: 1,
                level: Some(PerformanceLevel::High),
            },
            change_failure_rate: ChangeFailureRate { deployments: 4, failures: 2, rate: Some(0.5), level: Some(PerformanceLevel::Low) },
            time_to_restore: TimeToRestore { failures: 2, restored: 1, median_seconds: None, level: None },
        };
        let text = metrics_text(&metrics);
        assert!(text.starts_with("production, web, the last 30 days\n"), "{text}");
        let line = |key: &str| text.lines().find(|line| line.contains(key)).unwrap_or_else(|| panic!("no {key} in {text}")).to_owned();
        let frequency = line("deployment frequency");
        assert!(
            frequency.contains("0.10 a day") && frequency.contains("3 successful changes") && frequency.ends_with("medium"),
            "{frequency}"
        );
        let lead = line("lead time for changes");
        assert!(lead.contains("median 2d") && lead.contains("5 commits") && lead.contains("1 deployment without a known build"), "{lead}");
        assert!(lead.trim_end().ends_with("high"), "{lead}");
        let rate = line("change failure rate");
        assert!(rate.contains("50.0%") && rate.contains("2 of 4 changes") && rate.trim_end().ends_with("low"), "{rate}");
        let restore = line("time to restore");
        assert!(restore.contains("1 of 2 failures restored") && restore.trim_end().ends_with('-'), "{restore}");
    }
}
