//! The API client commands: `gantry repo`, `gantry build`, `gantry secret`, `gantry registry`,
//! `gantry notifier`, `gantry artifact`, `gantry environment`, talking to a server at
//! GANTRY_SERVER with GANTRY_TOKEN.
//!
//! Exit codes: 0 done; 1 the server said no (its message is printed) or, for a followed log,
//! the build did not succeed; 2 usage and configuration errors, a server that cannot be reached.

mod agents;
mod artifact;
mod build;
mod changelog;
mod environment;
mod http;
mod logs;
mod notifier;
mod promotion;
mod registry;
mod render;
mod repo;
pub(crate) mod secret;
mod sse;
mod trace;
mod user;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use anyhow::Context as _;
use clap::Args;

pub(crate) use http::Connection;
use http::{Client, ClientError};

const EXIT_REFUSED: u8 = 1;

/// `gantry repo …`
#[derive(Args, Clone, Debug)]
pub(crate) struct RepoCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: repo::RepoAction,
}

/// `gantry build …`
#[derive(Args, Clone, Debug)]
pub(crate) struct BuildCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text (logs: one JSON object per line).
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: build::BuildAction,
}

/// `gantry secret …`
#[derive(Args, Clone, Debug)]
pub(crate) struct SecretCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: secret::SecretAction,
}

/// `gantry notifier …`
#[derive(Args, Clone, Debug)]
pub(crate) struct NotifierCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: notifier::NotifierAction,
}

/// `gantry artifact …`
#[derive(Args, Clone, Debug)]
pub(crate) struct ArtifactCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: artifact::ArtifactAction,
}

/// `gantry registry …`
#[derive(Args, Clone, Debug)]
pub(crate) struct RegistryCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: registry::RegistryAction,
}

/// `gantry environment …`
#[derive(Args, Clone, Debug)]
pub(crate) struct EnvironmentCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: environment::EnvironmentAction,
}

/// `gantry user …`
#[derive(Args, Clone, Debug)]
pub(crate) struct UserCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, global = true, display_order = 99)]
    json: bool,
    #[command(subcommand)]
    action: user::UserAction,
}

pub(crate) fn user(command: UserCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| user::execute(client, command.action, command.json))
}

/// `gantry login LOGIN`: an API token made by signing in.
#[derive(Args, Clone, Debug)]
pub(crate) struct LoginCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, display_order = 99)]
    json: bool,
    /// The user to sign in as.
    login: String,
    /// The variable holding the password (else a prompt, or stdin).
    #[arg(long, value_name = "VARIABLE")]
    password_from_env: Option<String>,
    /// The token's name, shown in lists.
    #[arg(long, default_value = "gantry cli")]
    name: String,
    /// The token stops working this many days from now.
    #[arg(long)]
    expires_in_days: Option<u32>,
}

pub(crate) fn login(command: LoginCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| {
        user::login(client, command.login, command.password_from_env, command.name, command.expires_in_days, command.json)
    })
}

/// `gantry agent ls|rm`, with the server from `gantry agent`'s own `--server`.
pub(crate) fn agents(server: Option<String>, token: Option<String>, action: AgentAction, json: bool) -> anyhow::Result<u8> {
    let connection = Connection { server, token };
    run(&connection, |client| agents::execute(client, action, json))
}

pub(crate) use agents::AgentAction;

pub(crate) fn repo(command: RepoCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| repo::execute(client, command.action, command.json))
}

pub(crate) fn build(command: BuildCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| build::execute(client, command.action, command.json))
}

pub(crate) fn secret(command: SecretCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| secret::execute(client, command.action, command.json))
}

pub(crate) fn notifier(command: NotifierCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| notifier::execute(client, command.action, command.json))
}

pub(crate) fn artifact(command: ArtifactCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| artifact::execute(client, command.action, command.json))
}

pub(crate) fn registry(command: RegistryCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| registry::execute(client, command.action, command.json))
}

/// `gantry env diff …`: the changelog between two versions, asked of the server.
#[derive(Args, Clone, Debug)]
pub(crate) struct ChangelogCommand {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long, display_order = 99)]
    json: bool,
    /// The application (its name in the environment repositories).
    app: String,
    /// The version to compare from: an environment (what runs there), ENVIRONMENT:DEPLOYMENT,
    /// or an image by digest (REGISTRY/REPOSITORY@sha256:HEX).
    #[arg(long)]
    from: String,
    /// The version to compare to, written the same ways.
    #[arg(long)]
    to: String,
}

pub(crate) fn changelog(command: ChangelogCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| changelog::execute(client, command.app, command.from, command.to, command.json))
}

/// `gantry env promote|approve|reject|promotions`: promotions, asked of the server (the
/// arguments are `gantry env`'s, in `main`).
pub(crate) struct PromotionCommand {
    connection: Connection,
    json: bool,
    action: PromotionAction,
}

pub(crate) enum PromotionAction {
    /// Ask to run in `to` the exact image `app` runs in `from`.
    Request { app: String, from: String, to: String, comment: Option<String> },
    /// Approve or reject a promotion.
    Decide { id: i64, approve: bool, comment: Option<String> },
    /// Promotions into an environment, newest first.
    List { environment: String, state: Option<String> },
    /// One promotion with its decisions.
    Show { id: i64 },
}

impl PromotionCommand {
    pub(crate) fn new(connection: Connection, json: bool, action: PromotionAction) -> Self {
        Self { connection, json, action }
    }
}

/// `gantry env trace CONTAINER`: from a running container to its build, commit and owner.
pub(crate) fn trace(connection: Connection, container: String, docker_host: Option<String>, json: bool) -> anyhow::Result<u8> {
    run(&connection, |client| trace::execute(client, container, docker_host, json))
}

pub(crate) fn promotion(command: PromotionCommand) -> anyhow::Result<u8> {
    let json = command.json;
    run(&command.connection, |client| async move {
        match command.action {
            PromotionAction::Request { app, from, to, comment } => promotion::request(client, app, from, to, comment, json).await,
            PromotionAction::Decide { id, approve, comment } => promotion::decide(client, id, approve, comment, json).await,
            PromotionAction::List { environment, state } => promotion::list(client, environment, state, json).await,
            PromotionAction::Show { id } => promotion::get(client, id, json).await,
        }
    })
}

pub(crate) fn environment(command: EnvironmentCommand) -> anyhow::Result<u8> {
    run(&command.connection, |client| environment::execute(client, command.action, command.json))
}

/// Runs one command on a small runtime. A refusal by the server is printed here and exits 1;
/// every other error goes back to `main`, which prints it and exits 2.
fn run<F, Fut>(connection: &Connection, command: F) -> anyhow::Result<u8>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<u8>>,
{
    let client = Client::new(connection)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    match runtime.block_on(command(client)) {
        Err(error) => match error.downcast_ref::<ClientError>() {
            Some(ClientError::Refused { status, body }) => {
                eprintln!("error: {}", body.error);
                if let Some(field) = &body.field {
                    eprintln!("  field: {field}");
                }
                if *status == reqwest::StatusCode::UNAUTHORIZED {
                    eprintln!("  hint: set GANTRY_TOKEN (or --token) to a valid API token");
                }
                Ok(EXIT_REFUSED)
            }
            _ => Err(error),
        },
        result => result,
    }
}

/// `owner/name`, the address of a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RepoName {
    pub owner: String,
    pub name: String,
}

impl FromStr for RepoName {
    type Err = String;

    fn from_str(text: &str) -> Result<RepoName, String> {
        match text.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(RepoName { owner: owner.to_owned(), name: name.to_owned() })
            }
            _ => Err(format!("`{text}` is not OWNER/NAME, e.g. acme/shop")),
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.owner, self.name)
    }
}

impl RepoName {
    /// `repos/{owner}/{name}/<rest>` as URL segments.
    pub(crate) fn path<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut segments = vec!["repos", self.owner.as_str(), self.name.as_str()];
        segments.extend_from_slice(rest);
        segments
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Repo(RepoCommand),
        Build(BuildCommand),
        Secret(SecretCommand),
        Notifier(NotifierCommand),
        Artifact(ArtifactCommand),
        Registry(RegistryCommand),
        Environment(EnvironmentCommand),
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn repository_names_are_owner_slash_name() {
        assert_eq!("acme/shop".parse::<RepoName>().unwrap().path(&["builds"]), ["repos", "acme", "shop", "builds"]);
        for bad in ["acme", "acme/", "/shop", "a/b/c", ""] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
    }
}
