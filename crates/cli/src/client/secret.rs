//! `gantry secret add|ls|rm`: repository secrets. Values go to the server and are never printed,
//! read back or put in an error message.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use proto::api::{Secret, SecretWrite};

use super::RepoName;
use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum SecretAction {
    /// Create or replace a secret. The value comes from --value, --from-file, --from-env or stdin.
    #[command(alias = "set")]
    Add(AddArgs),
    /// List a repository's secrets: names and limits, never values.
    #[command(alias = "list")]
    Ls {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// Remove a secret.
    #[command(alias = "remove")]
    Rm {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        /// The secret's name.
        name: String,
    },
}

#[derive(Args, Clone)]
#[command(group(ArgGroup::new("source").args(["value", "from_file", "from_env"])))]
pub(super) struct AddArgs {
    /// The repository, as OWNER/NAME.
    repo: RepoName,
    /// The secret's name, as pipelines refer to it with `from_secret`.
    name: String,
    /// The value. It shows in process lists and shell history: prefer stdin, --from-file or --from-env.
    #[arg(long, value_name = "VALUE")]
    value: Option<String>,
    /// Read the value from a file, exactly as it is.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Read the value from an environment variable.
    #[arg(long, value_name = "VAR")]
    from_env: Option<String>,
    /// An event whose builds receive it (repeat the flag; default: every event but pull requests).
    #[arg(long = "event", value_name = "EVENT")]
    events: Vec<String>,
    /// Only steps with this image receive it (repeat the flag; default: any image).
    #[arg(long = "image", value_name = "IMAGE")]
    images: Vec<String>,
}

/// Never shows the value, even in debug output.
impl std::fmt::Debug for AddArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AddArgs")
            .field("repo", &self.repo)
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "<hidden>"))
            .field("from_file", &self.from_file)
            .field("from_env", &self.from_env)
            .field("events", &self.events)
            .field("images", &self.images)
            .finish()
    }
}

/// `.` and `..` cannot be a URL path segment (they would address another resource).
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name == "." || name == ".." {
        bail!("`{name}` is not a secret name (letters, digits, `_`, `-`, `.`)");
    }
    Ok(())
}

pub(super) async fn execute(client: Client, action: SecretAction, json: bool) -> anyhow::Result<u8> {
    match action {
        SecretAction::Add(args) => {
            check_name(&args.name)?;
            let value = read_value(&args.name, args.value.as_deref(), args.from_file.as_deref(), args.from_env.as_deref())?;
            let body = SecretWrite {
                value,
                events: (!args.events.is_empty()).then(|| args.events.clone()),
                images: (!args.images.is_empty()).then(|| args.images.clone()),
            };
            let secret: Secret = client.put(&args.repo.path(&["secrets", &args.name]), &body).await?;
            if json {
                render::emit_json(&secret)?;
            } else {
                let images = if secret.images.is_empty() { "any".to_owned() } else { secret.images.join(", ") };
                render::emit(&format!(
                    "saved secret {} of {} (events: {}; images: {images})\n",
                    secret.name,
                    args.repo,
                    secret.events.join(", ")
                ))?;
            }
            Ok(0)
        }
        SecretAction::Ls { repo } => {
            let secrets: Vec<Secret> = client.get(&repo.path(&["secrets"])).await?;
            if json {
                render::emit_json(&secrets)?;
            } else if secrets.is_empty() {
                render::emit(&format!("{repo} has no secrets; add one with `gantry secret add {repo} NAME`\n"))?;
            } else {
                let now = render::now();
                let mut table = Table::new(&["NAME", "EVENTS", "IMAGES", "UPDATED"]);
                for secret in &secrets {
                    let images = if secret.images.is_empty() { "any".to_owned() } else { secret.images.join(",") };
                    table.row(vec![secret.name.clone(), secret.events.join(","), images, render::ago(secret.updated, now)]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        SecretAction::Rm { repo, name } => {
            check_name(&name)?;
            client.delete(&repo.path(&["secrets", &name])).await?;
            if json {
                render::emit_json(&serde_json::json!({ "removed": name, "repo": repo.to_string() }))?;
            } else {
                render::emit(&format!("removed secret {name} of {repo}\n"))?;
            }
            Ok(0)
        }
    }
}

/// The value from wherever it was asked to come from. Read from a pipe, one trailing newline
/// is dropped (`echo value |` adds it); a file is taken exactly as it is.
/// A secret's value from `value`, the file `from_file`, the variable `from_env`, a prompt
/// (not echoed) or stdin (one trailing newline dropped); never empty. Also `gantry deployer
/// secret add`'s.
pub(crate) fn read_value(
    name: &str,
    value: Option<&str>,
    from_file: Option<&std::path::Path>,
    from_env: Option<&str>,
) -> anyhow::Result<String> {
    let value = if let Some(value) = value {
        value.to_owned()
    } else if let Some(path) = from_file {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text; secrets are text", path.display()))?
    } else if let Some(variable) = from_env {
        match std::env::var(variable) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => bail!("the variable {variable} is not set"),
            Err(std::env::VarError::NotUnicode(_)) => bail!("the variable {variable} is not UTF-8 text"),
        }
    } else if std::io::stdin().is_terminal() {
        // Typed by hand: not echoed, and one line.
        let terminal = console::Term::stderr();
        terminal.write_str(&format!("value of {name} (not shown): ")).context("cannot prompt for the value")?;
        terminal.read_secure_line().context("cannot read the value from the terminal")?
    } else {
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value).context("cannot read the value from stdin (it must be UTF-8 text)")?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        value
    };
    if value.is_empty() {
        bail!("the value of {name} is empty; give it with --value, --from-file, --from-env or on stdin");
    }
    Ok(value)
}
