//! `gantry registry add|ls|rm`: a repository's credentials for private registries, which its
//! builds pull, build `FROM` and push with. Passwords go to the server and are never printed,
//! read back or put in an error message.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use proto::api::{Registry, RegistryWrite};
use proto::artifact::RegistryHost;

use super::RepoName;
use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum RegistryAction {
    /// Save (or replace) the login for a registry host. The password comes from --password,
    /// --password-stdin, --password-from-env or a prompt.
    #[command(alias = "set")]
    Add(AddArgs),
    /// List the registry hosts a repository has a login for: host and username, never the password.
    #[command(alias = "list")]
    Ls {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// Remove the login for a registry host.
    #[command(alias = "remove")]
    Rm {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        /// The registry host, e.g. registry.example.com or 127.0.0.1:5000.
        host: String,
    },
}

#[derive(Args, Clone)]
#[command(group(ArgGroup::new("source").args(["password", "password_stdin", "password_from_env"])))]
pub(super) struct AddArgs {
    /// The repository, as OWNER/NAME.
    repo: RepoName,
    /// The registry host: registry.example.com, 127.0.0.1:5000, docker.io (Docker Hub).
    host: String,
    /// The username to log in with.
    #[arg(long, short = 'u')]
    username: String,
    /// The password or token. It shows in process lists and shell history: prefer --password-stdin.
    #[arg(long, short = 'p', value_name = "PASSWORD")]
    password: Option<String>,
    /// Read the password from stdin (one trailing line break is dropped).
    #[arg(long)]
    password_stdin: bool,
    /// Read the password from an environment variable.
    #[arg(long, value_name = "VAR")]
    password_from_env: Option<String>,
}

/// Never shows the password, even in debug output.
impl std::fmt::Debug for AddArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AddArgs")
            .field("repo", &self.repo)
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_stdin", &self.password_stdin)
            .field("password_from_env", &self.password_from_env)
            .finish()
    }
}

/// The host as the server keeps it (`https://` and a trailing `/` dropped): one URL segment.
fn host_of(text: &str) -> anyhow::Result<RegistryHost> {
    RegistryHost::parse(text).map_err(|error| anyhow::anyhow!("{error}"))
}

pub(super) async fn execute(client: Client, action: RegistryAction, json: bool) -> anyhow::Result<u8> {
    match action {
        RegistryAction::Add(args) => {
            let host = host_of(&args.host)?;
            let password = read_password(&args, &host)?;
            let body = RegistryWrite { username: args.username.clone(), password };
            let registry: Registry = client.put(&args.repo.path(&["registries", host.as_str()]), &body).await?;
            if json {
                render::emit_json(&registry)?;
            } else {
                render::emit(&format!("saved the login for {} of {} (username {})\n", registry.host, args.repo, registry.username))?;
            }
            Ok(0)
        }
        RegistryAction::Ls { repo } => {
            let registries: Vec<Registry> = client.get(&repo.path(&["registries"])).await?;
            if json {
                render::emit_json(&registries)?;
            } else if registries.is_empty() {
                render::emit(&format!(
                    "{repo} has no registry logins; add one with `gantry registry add {repo} HOST --username USER --password-stdin`\n"
                ))?;
            } else {
                let now = render::now();
                let mut table = Table::new(&["HOST", "USERNAME", "UPDATED"]);
                for registry in &registries {
                    table.row(vec![registry.host.clone(), registry.username.clone(), render::ago(registry.updated, now)]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        RegistryAction::Rm { repo, host } => {
            let host = host_of(&host)?;
            client.delete(&repo.path(&["registries", host.as_str()])).await?;
            if json {
                render::emit_json(&serde_json::json!({ "removed": host.as_str(), "repo": repo.to_string() }))?;
            } else {
                render::emit(&format!("removed the login for {host} of {repo}\n"))?;
            }
            Ok(0)
        }
    }
}

/// The password from wherever it was asked to come from: a flag, a variable, stdin (one
/// trailing line break dropped), or a prompt that does not echo it.
fn read_password(args: &AddArgs, host: &RegistryHost) -> anyhow::Result<String> {
    let password = if let Some(password) = &args.password {
        password.clone()
    } else if let Some(variable) = &args.password_from_env {
        match std::env::var(variable) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => bail!("the variable {variable} is not set"),
            Err(std::env::VarError::NotUnicode(_)) => bail!("the variable {variable} is not UTF-8 text"),
        }
    } else if !args.password_stdin && std::io::stdin().is_terminal() {
        let terminal = console::Term::stderr();
        terminal.write_str(&format!("password for {} at {host} (not shown): ", args.username)).context("cannot prompt for the password")?;
        terminal.read_secure_line().context("cannot read the password from the terminal")?
    } else {
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value).context("cannot read the password from stdin (it must be UTF-8 text)")?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        value
    };
    if password.is_empty() {
        bail!("the password for {host} is empty; give it with --password-stdin, --password-from-env or --password");
    }
    Ok(password)
}
