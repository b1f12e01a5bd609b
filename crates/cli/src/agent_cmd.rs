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
    let name = args.name.clone().filter(|name| !name.is_empty()).unwrap_or_else(host_name);
    let work_dir = args.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("gantry-agent"));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create the work folder {}", work_dir.display()))?;
    let config = agent::AgentConfig {
        server: args.server.trim_end_matches('/').to_owned(),
        secret: args.secret.clone(),
        name,
        labels,
        capacity: args.capacity,
        work_dir,
        ..agent::AgentConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        crate::serve::spawn_signal_handler(shutdown.clone());
        agent::run(config, shutdown).await.context("the agent stopped")?;
        Ok(0)
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "agent".into())
}
