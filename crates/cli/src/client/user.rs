//! `gantry user add|ls` (server admins) and `gantry login`: local users, and an API token made
//! by signing in as one, so that a person (or a script acting as one) needs no browser to start
//! using the client. Passwords come from a variable, a prompt that does not echo, or stdin, and
//! are never printed; the token is printed once.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use proto::api::{Login, TokenCreate, TokenCreated, User, UserCreate};

use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum UserAction {
    /// Create a local user (server admins). The password comes from --password-from-env, a
    /// prompt or stdin.
    Add {
        login: String,
        /// A server administrator: every role on every repository.
        #[arg(long)]
        admin: bool,
        /// The variable holding the password.
        #[arg(long, value_name = "VARIABLE")]
        password_from_env: Option<String>,
    },
    /// List users (server admins).
    #[command(alias = "list")]
    Ls,
}

pub(super) async fn execute(client: Client, action: UserAction, json: bool) -> anyhow::Result<u8> {
    match action {
        UserAction::Add { login, admin, password_from_env } => {
            let password = super::secret::read_value("the password", None, None, password_from_env.as_deref())?;
            let user: User = client.post(&["users"], &UserCreate { login, password, admin }).await?;
            if json {
                render::emit_json(&user)?;
            } else {
                let role = if user.admin { " (server admin)" } else { "" };
                render::emit(&format!("user {} created{role}; they sign in with `gantry login {}`\n", user.login, user.login))?;
            }
        }
        UserAction::Ls => {
            let users: Vec<User> = client.get(&["users"]).await?;
            if json {
                render::emit_json(&users)?;
            } else {
                let mut table = Table::new(&["LOGIN", "ADMIN", "CREATED"]);
                for user in &users {
                    table.row(vec![user.login.clone(), if user.admin { "yes" } else { "no" }.to_owned(), render::timestamp(user.created)]);
                }
                render::emit(&table.render())?;
            }
        }
    }
    Ok(0)
}

/// Signs in as `login` and makes an API token named `name` with that session, then signs the
/// session out again; prints the token once.
pub(super) async fn login(
    client: Client,
    login: String,
    password_from_env: Option<String>,
    name: String,
    expires_in_days: Option<u32>,
    json: bool,
) -> anyhow::Result<u8> {
    let password = super::secret::read_value("the password", None, None, password_from_env.as_deref())?;
    let session = client.sign_in(&Login { login: login.clone(), password }).await?;
    let created: Result<TokenCreated, _> =
        client.post_in_session(&session, &["user", "tokens"], &TokenCreate { name, expires_in_days }).await;
    // The session was only a means to the token: closed whatever happened.
    let _ = client.sign_out(&session).await;
    let created = created?;
    if json {
        render::emit_json(&created)?;
        return Ok(0);
    }
    if created.token.is_empty() {
        bail!("the server made no token");
    }
    let expiry = created.expires.map(|expires| format!(" until {}", render::timestamp(expires))).unwrap_or_default();
    render::emit(&format!(
        "signed in as {login}; API token `{}`{expiry} (shown only now):\n{}\n\nexport GANTRY_TOKEN={}\n",
        created.name, created.token, created.token
    ))
    .context("cannot print the token")?;
    Ok(0)
}
