//! `gantry agent`: lease workflows from a server and run them on the local Docker engine.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// The server's address, e.g. http://ci.example.com:8000.
    #[arg(long, env = "GANTRY_SERVER")]
    pub server: String,
    /// The secret the server was started with.
    #[arg(long, env = "GANTRY_AGENT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Name shown on the server (default: the host name). An agent restarting with the same name is the same agent.
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

pub fn execute(args: AgentArgs) -> anyhow::Result<u8> {
    let mut labels: BTreeMap<String, String> = agent::default_labels();
    for pair in &args.labels {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--label takes KEY=VALUE, got `{pair}`");
        };
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let mut config = agent::AgentConfig::new(args.server.trim_end_matches('/'), args.secret.clone());
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
