//! `gantry agent`: lease workflows from a server and run them on the local Docker engine; and
//! `gantry agent ls|rm`, the agents of a server (server admins).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// `gantry agent` runs an agent; `gantry agent ls|rm` manage a server's agents.
#[derive(Args, Clone, Debug)]
pub(crate) struct AgentCommand {
    #[command(subcommand)]
    pub action: Option<crate::client::AgentAction>,
    #[command(flatten)]
    pub run: AgentArgs,
}

#[derive(Args, Clone, Debug)]
pub(crate) struct AgentArgs {
    /// The server's address, e.g. http://ci.example.com:8000.
    #[arg(long, env = "GANTRY_SERVER", global = true)]
    pub server: Option<String>,
    /// The secret the server was started with (to run an agent).
    #[arg(long, env = "GANTRY_AGENT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// An API token of a server administrator (for `ls` and `rm`).
    #[arg(long, env = "GANTRY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text (`ls`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Name shown on the server (default: the host name); one per agent. The agent keeps its token in the work folder, so a restart takes the name back at once.
    #[arg(long, env = "GANTRY_AGENT_NAME")]
    pub name: Option<String>,
    /// A label KEY=VALUE workflows may ask for (repeat the flag); platform and backend are set by default.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Most workflows at once.
    #[arg(long, env = "GANTRY_AGENT_CAPACITY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub capacity: u32,
    /// Folder for clones of the repositories being built.
    #[arg(long, env = "GANTRY_AGENT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

pub(crate) fn execute(command: AgentCommand) -> anyhow::Result<u8> {
    match command.action {
        Some(action) => crate::client::agents(command.run.server, command.run.token, action, command.run.json),
        None => run(command.run),
    }
}

fn run(args: AgentArgs) -> anyhow::Result<u8> {
    let Some(server) = args.server.clone().filter(|server| !server.is_empty()) else {
        bail!("an agent needs its server: --server URL or GANTRY_SERVER");
    };
    let Some(secret) = args.secret.clone().filter(|secret| !secret.is_empty()) else {
        bail!("an agent needs the server's agent secret: --secret or GANTRY_AGENT_SECRET");
    };
    let mut labels: BTreeMap<String, String> = agent::default_labels();
    for pair in &args.labels {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--label takes KEY=VALUE, got `{pair}`");
        };
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let mut config = agent::AgentConfig::new(server.trim_end_matches('/'), secret);
    if let Some(name) = args.name.clone().filter(|name| !name.is_empty()) {
        config.name = name;
    }
    config.labels = labels;
    config.capacity = args.capacity;
    if let Some(work_dir) = args.work_dir.clone() {
        config.work_dir = work_dir;
    }
    std::fs::create_dir_all(&config.work_dir).with_context(|| format!("cannot create the work folder {}", config.work_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        crate::serve::spawn_signal_handler(shutdown.clone());
        agent::run(config, shutdown).await.context("the agent stopped")?;
        Ok(0)
    })
}
