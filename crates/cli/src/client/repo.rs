//! `gantry repo add|ls|show|rm|members|grant|revoke`: registering repositories, looking at their
//! settings, and who holds which role on them.

use clap::{Args, Subcommand, ValueEnum};
use proto::api::{Member, MemberSet, Repo, RepoCreate, RepoSettingsChange, Role};
use proto::{ForgeKind, LostPolicy};

use super::RepoName;
use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum RepoAction {
    /// Register a repository (any git remote); you become its admin.
    Add(AddArgs),
    /// List the repositories you can see, with your role.
    #[command(alias = "list")]
    Ls,
    /// Show a repository's settings and webhook URL.
    Show {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// Remove a repository with its builds, logs and secrets.
    #[command(alias = "remove")]
    Rm {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// List who holds a role on a repository.
    Members {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
    },
    /// Give a user a role on a repository (its admins): read, write or admin.
    Grant {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        login: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Take a user's role on a repository away (its admins).
    Revoke {
        /// The repository, as OWNER/NAME.
        repo: RepoName,
        login: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum RoleArg {
    Read,
    Write,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Read => Role::Read,
            RoleArg::Write => Role::Write,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub(super) struct AddArgs {
    /// The repository's address on this server, as OWNER/NAME.
    repo: RepoName,
    /// Where to clone from: https://, ssh://, git://, file:// or user@host:path.
    #[arg(long, value_name = "URL")]
    clone_url: String,
    /// Which forge sends its webhooks (default: guessed from the clone URL).
    #[arg(long, value_enum)]
    forge: Option<ForgeArg>,
    /// The default branch, built by `gantry build run` without --branch (default: main).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// A pipeline file or folder (default: .woodpecker/, .woodpecker.yml or .drone.yml).
    #[arg(long, value_name = "PATH")]
    config_path: Option<String>,
    /// The secret the forge signs webhooks with (default: one the server makes and shows once).
    #[arg(long, value_name = "SECRET")]
    webhook_secret: Option<String>,
    /// Poll the remote for new commits and tags every SECONDS (at least 10).
    #[arg(long, value_name = "SECONDS")]
    poll: Option<u32>,
    /// Build timeout in minutes (default: 60).
    #[arg(long, value_name = "MINUTES")]
    timeout: Option<u32>,
    /// Cancel running builds of a branch when a newer one starts.
    #[arg(long)]
    cancel_previous: bool,
    /// What happens to a workflow whose agent stops answering (default: requeue).
    #[arg(long, value_enum, value_name = "POLICY")]
    lost_policy: Option<LostPolicyArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ForgeArg {
    Github,
    /// Gitea and Forgejo.
    Gitea,
    Gitlab,
    /// Any git remote: polling and manual builds.
    Generic,
}

impl From<ForgeArg> for ForgeKind {
    fn from(forge: ForgeArg) -> ForgeKind {
        match forge {
            ForgeArg::Github => ForgeKind::Github,
            ForgeArg::Gitea => ForgeKind::Gitea,
            ForgeArg::Gitlab => ForgeKind::Gitlab,
            ForgeArg::Generic => ForgeKind::Generic,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LostPolicyArg {
    /// Queue it again for another agent.
    Requeue,
    /// Fail it.
    Fail,
}

impl From<LostPolicyArg> for LostPolicy {
    fn from(policy: LostPolicyArg) -> LostPolicy {
        match policy {
            LostPolicyArg::Requeue => LostPolicy::Requeue,
            LostPolicyArg::Fail => LostPolicy::Fail,
        }
    }
}

pub(super) async fn execute(client: Client, action: RepoAction, json: bool) -> anyhow::Result<u8> {
    match action {
        RepoAction::Add(args) => add(&client, args, json).await,
        RepoAction::Ls => {
            let repos: Vec<Repo> = client.get(&["repos"]).await?;
            if json {
                render::emit_json(&repos)?;
            } else if repos.is_empty() {
                render::emit("no repositories; add one with `gantry repo add OWNER/NAME --clone-url URL`\n")?;
            } else {
                let mut table = Table::new(&["NAME", "FORGE", "BRANCH", "ROLE", "CLONE URL"]);
                for repo in &repos {
                    let role = repo.role.map(Role::as_str).unwrap_or("-");
                    table.row(vec![
                        repo.full_name.clone(),
                        repo.forge.as_str().into(),
                        repo.default_branch.clone(),
                        role.into(),
                        repo.clone_url.clone(),
                    ]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        RepoAction::Show { repo } => {
            let repo: Repo = client.get(&repo.path(&[])).await?;
            if json {
                render::emit_json(&repo)?;
            } else {
                render::emit(&format!("{}\n{}", repo.full_name, describe(&repo)))?;
            }
            Ok(0)
        }
        RepoAction::Rm { repo } => {
            client.delete(&repo.path(&[])).await?;
            if json {
                render::emit_json(&serde_json::json!({ "removed": repo.to_string() }))?;
            } else {
                render::emit(&format!("removed {repo} with its builds, logs and secrets\n"))?;
            }
            Ok(0)
        }
        RepoAction::Members { repo } => {
            let members: Vec<Member> = client.get(&repo.path(&["members"])).await?;
            if json {
                render::emit_json(&members)?;
            } else {
                let mut table = Table::new(&["LOGIN", "ROLE"]);
                for member in &members {
                    table.row(vec![member.login.clone(), member.role.as_str().to_owned()]);
                }
                render::emit(&table.render())?;
            }
            Ok(0)
        }
        RepoAction::Grant { repo, login, role } => {
            let member: Member = client.put(&repo.path(&["members", &login]), &MemberSet { role: role.into() }).await?;
            if json {
                render::emit_json(&member)?;
            } else {
                render::emit(&format!("{} has the {} role on {repo}\n", member.login, member.role.as_str()))?;
            }
            Ok(0)
        }
        RepoAction::Revoke { repo, login } => {
            client.delete(&repo.path(&["members", &login])).await?;
            if json {
                render::emit_json(&serde_json::json!({ "revoked": login }))?;
            } else {
                render::emit(&format!("{login} no longer has a role on {repo}\n"))?;
            }
            Ok(0)
        }
    }
}

async fn add(client: &Client, args: AddArgs, json: bool) -> anyhow::Result<u8> {
    let body = RepoCreate {
        full_name: args.repo.to_string(),
        clone_url: args.clone_url,
        settings: RepoSettingsChange {
            forge: args.forge.map(Into::into),
            default_branch: args.branch,
            config_path: args.config_path,
            webhook_secret: args.webhook_secret.clone(),
            timeout_minutes: args.timeout,
            cancel_previous: args.cancel_previous.then_some(true),
            poll_interval_seconds: args.poll,
            lost_policy: args.lost_policy.map(Into::into),
            ..RepoSettingsChange::default()
        },
    };
    let repo: Repo = client.post(&["repos"], &body).await?;
    if json {
        render::emit_json(&repo)?;
    } else {
        render::emit(&format!("added {}\n{}", repo.full_name, describe(&repo)))?;
    }
    // A secret the server generated is shown this once; the forge needs it to sign deliveries.
    if let Some(secret) = &repo.webhook_secret
        && !json
    {
        eprintln!("webhook secret (shown once; give it to the forge with the webhook URL): {secret}");
    }
    Ok(0)
}

/// The settings of a repository as aligned fields.
fn describe(repo: &Repo) -> String {
    let config = if repo.config_path.is_empty() {
        "discovered (.woodpecker/, .woodpecker.yml, .drone.yml)".to_owned()
    } else {
        repo.config_path.clone()
    };
    let polling = match repo.poll_interval_seconds {
        Some(seconds) => format!("every {}", render::duration(i64::from(seconds))),
        None => "off".to_owned(),
    };
    let trust: Vec<&str> = [(repo.trust.privileged, "privileged"), (repo.trust.volumes, "volumes"), (repo.trust.network, "network")]
        .into_iter()
        .filter_map(|(granted, name)| granted.then_some(name))
        .collect();
    let mut pairs = vec![
        ("clone URL", repo.clone_url.clone()),
        ("forge", repo.forge.as_str().to_owned()),
        ("branch", repo.default_branch.clone()),
        ("pipeline", config),
        ("timeout", format!("{} minutes", repo.timeout_minutes)),
        ("polling", polling),
        ("cancel previous", if repo.cancel_previous { "yes" } else { "no" }.to_owned()),
        ("lost workflows", repo.lost_policy.as_str().to_owned()),
        ("trusted for", if trust.is_empty() { "nothing beyond ordinary steps".to_owned() } else { trust.join(", ") }),
    ];
    if let Some(role) = repo.role {
        pairs.push(("your role", role.as_str().to_owned()));
    }
    pairs.push(("created", render::timestamp(repo.created)));
    pairs.push(("webhook URL", repo.webhook_url.clone()));
    render::fields(&pairs)
}
