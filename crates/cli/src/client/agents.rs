//! `gantry agent ls|rm`: the agents of a server, and removing one (server admins). Removing an
//! agent revokes its token: the agent stops, and what it ran is re-queued.

use clap::Subcommand;
use proto::api::Agent;

use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(crate) enum AgentAction {
    /// List the server's agents: name, labels, whether connected, what they run.
    #[command(alias = "list")]
    Ls,
    /// Remove an agent: its token stops working and its running workflows are re-queued.
    #[command(alias = "remove")]
    Rm {
        /// The agent's name.
        name: String,
    },
}

pub(super) async fn execute(client: Client, action: AgentAction, json: bool) -> anyhow::Result<u8> {
    match action {
        AgentAction::Ls => {
            let agents: Vec<Agent> = client.get(&["agents"]).await?;
            if json {
                render::emit_json(&agents)?;
            } else if agents.is_empty() {
                render::emit("no agent has registered yet\n")?;
            } else {
                render::emit(&list(&agents, render::now()))?;
            }
        }
        AgentAction::Rm { name } => {
            client.delete(&["agents", &name]).await?;
            if !json {
                render::emit(&format!("agent {name} removed: its token no longer works\n"))?;
            }
        }
    }
    Ok(0)
}

fn list(agents: &[Agent], now: i64) -> String {
    let mut table = Table::new(&["NAME", "CONNECTED", "RUNNING", "CAPACITY", "LAST SEEN", "VERSION", "LABELS"]);
    for agent in agents {
        let labels: Vec<String> = agent.labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        table.row(vec![
            agent.name.clone(),
            if agent.connected { "yes".into() } else { "no".into() },
            agent.running.to_string(),
            agent.capacity.to_string(),
            render::ago(agent.last_seen, now),
            agent.version.clone(),
            labels.join(","),
        ]);
    }
    table.render()
}
