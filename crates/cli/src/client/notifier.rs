//! `gantry notifier add|ls|rm`: where a repository's build results and published images are
//! sent. A notifier for `image.published` with a secret is a delivery webhook: a deployer
//! learns of new images from it, signed, without the CI server holding its credentials.

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use proto::State;
use proto::api::{Notifier, NotifierCreate};

use super::RepoName;
use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum NotifierAction {
    /// Add a notifier: a URL, its body format (webhook or slack), and the events it is sent.
    Add(AddArgs),
    /// List a repository's notifiers (secrets are never shown).
    #[command(alias = "list")]
    Ls {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// Remove a notifier by its id (`gantry notifier ls` shows it).
    #[command(alias = "remove")]
    Rm {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        id: i64,
    },
}

#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("secret").args(["secret_from_env", "secret_from_file"])))]
pub(super) struct AddArgs {
    /// The repository, as OWNER/NAME.
    repo: RepoName,
    /// Where to POST: http:// or https://.
    url: String,
    /// The body: `webhook` (Gantry's JSON) or `slack` (a Slack-compatible message).
    #[arg(long, default_value = "webhook")]
    kind: String,
    /// `build.finished`, `image.published`, `deployment.started`, `deployment.succeeded`,
    /// `deployment.failed`, `deployment.rolled-back` or `drift.detected` (repeat the flag;
    /// default: build.finished). Deployment and drift events are those of images the
    /// repository's builds pushed, as the environments' deployers report them.
    #[arg(long = "event", value_name = "EVENT")]
    events: Vec<String>,
    /// For build.finished: a final state to notify about (repeat; default: all).
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    states: Vec<State>,
    /// Sign bodies with the secret in this environment variable (X-Gantry-Signature).
    #[arg(long, value_name = "VAR")]
    secret_from_env: Option<String>,
    /// Sign bodies with the secret in this file (one trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    secret_from_file: Option<std::path::PathBuf>,
}

pub(super) async fn execute(client: Client, action: NotifierAction, json: bool) -> anyhow::Result<u8> {
    match action {
        NotifierAction::Add(args) => {
            let secret = read_secret(&args)?;
            let body = NotifierCreate {
                kind: args.kind.clone(),
                url: args.url.clone(),
                states: args.states.clone(),
                events: args.events.clone(),
                secret,
            };
            let notifier: Notifier = client.post(&args.repo.path(&["notifiers"]), &body).await?;
            if json {
                render::emit_json(&notifier)?;
            } else {
                let signed = if notifier.signed { ", signed" } else { "" };
                render::emit(&format!(
                    "added notifier {} of {}: {} {} for {}{signed}\n",
                    notifier.id,
                    args.repo,
                    notifier.kind,
                    notifier.url,
                    notifier.events.join(", ")
                ))?;
            }
            Ok(0)
        }
        NotifierAction::Ls { repo } => {
            let notifiers: Vec<Notifier> = client.get(&repo.path(&["notifiers"])).await?;
            if json {
                render::emit_json(&notifiers)?;
            } else if notifiers.is_empty() {
                render::emit(&format!("{repo} has no notifiers; add one with `gantry notifier add {repo} URL`\n"))?;
            } else {
                let mut table = Table::new(&["ID", "KIND", "EVENTS", "STATES", "SIGNED", "URL"]);
                for notifier in &notifiers {
                    let states = if notifier.states.is_empty() {
                        "all".to_owned()
                    } else {
                        notifier.states.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                    };
                    let signed = if notifier.signed { "yes" } else { "no" };
                    table.row(vec![
                        notifier.id.to_string(),
                        notifier.kind.clone(),
                        notifier.events.join(","),
                        states,
                        signed.into(),
                        notifier.url.clone(),
                    ]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        NotifierAction::Rm { repo, id } => {
            client.delete(&repo.path(&["notifiers", &id.to_string()])).await?;
            if json {
                render::emit_json(&serde_json::json!({ "removed": id, "repo": repo.to_string() }))?;
            } else {
                render::emit(&format!("removed notifier {id} of {repo}\n"))?;
            }
            Ok(0)
        }
    }
}

fn parse_state(text: &str) -> Result<State, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not a state (success, failure, killed, error, skipped, lost)"))
}

fn read_secret(args: &AddArgs) -> anyhow::Result<Option<String>> {
    let secret = if let Some(variable) = &args.secret_from_env {
        match std::env::var(variable) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => bail!("the variable {variable} is not set"),
            Err(std::env::VarError::NotUnicode(_)) => bail!("the variable {variable} is not UTF-8 text"),
        }
    } else if let Some(path) = &args.secret_from_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        text.strip_suffix('\n').map(|text| text.strip_suffix('\r').unwrap_or(text)).unwrap_or(&text).to_owned()
    } else {
        return Ok(None);
    };
    if secret.is_empty() {
        bail!("the signing secret is empty");
    }
    Ok(Some(secret))
}
