//! The build flow shared by every trigger (webhook, poll, cron, manual, restart), in three
//! phases: `request` decides without IO what a trigger asks to build ([`BuildRequest`]) or
//! why it builds nothing; `fetch` reads the commit and its pipeline files from git; `record`
//! compiles the pipeline for the build's number and stores the build with its workflows queued
//! (or blocked until approved). A pipeline with errors becomes a build in state `error` that
//! carries its diagnostics, so the mistake is visible where the build would have been.

mod fetch;
mod record;
mod request;

pub use request::{BuildRequest, Ignored, skips_ci};
use store::{BuildRecord, RepoRecord};

use crate::state::AppState;

#[derive(Debug)]
pub enum Outcome {
    Started(Box<BuildRecord>),
    /// Nothing to build, and why.
    Ignored(Ignored),
}

/// Why a build could not start. Every variant's text is free of credentials (git's errors name
/// the remote without them and mask them in git's words) and of the server's folders (a
/// mirror's operations name "the mirror"); [`TriggerError::public_message`] also drops network
/// detail for callers who are not server administrators.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("cannot read the repository: {0}")]
    Git(#[from] forge::git::GitError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A commit or reference the remote does not have.
    #[error("{0}")]
    NotFound(String),
    /// The remote is one the server does not reach for this repository.
    #[error("the repository's remote is refused: {0}")]
    Refused(#[from] crate::egress::EgressError),
}

/// What non-admins read when git fails: the same words whatever went wrong, so that a remote
/// pointed at a host and port tells nothing about them (`Failed to connect to 127.0.0.1 port 22`).
pub const GIT_FAILED: &str = "cannot read the repository's remote (wrong address or credentials, or the remote is down); a server administrator finds the details in the server log";

impl TriggerError {
    /// The text a client may read: everything for server administrators, no network detail
    /// for others.
    pub fn public_message(&self, server_admin: bool) -> String {
        match self {
            TriggerError::Git(error) if server_admin => format!("cannot read the repository: {error}"),
            TriggerError::Git(_) => GIT_FAILED.to_owned(),
            TriggerError::Store(_) => "internal error; the server log has the details".to_owned(),
            TriggerError::NotFound(message) => message.clone(),
            TriggerError::Refused(error) => format!("the repository's remote is refused: {error}"),
        }
    }

    /// As an answer to a caller: logged here with every detail (inside the request's span),
    /// answered with [`TriggerError::public_message`].
    pub fn into_api_error(self, server_admin: bool) -> crate::error::ApiError {
        match self {
            TriggerError::Store(error) => error.into(),
            error => {
                tracing::warn!(%error, "cannot start a build");
                crate::error::ApiError::bad_request(error.public_message(server_admin))
            }
        }
    }
}

/// How git reaches a repository's remote, on the server and on agents.
pub struct RemoteAccess {
    /// The clone URL without credentials: what git, steps and logs see.
    pub url: String,
    /// The stored clone credentials, or those the clone URL held.
    pub credentials: Option<forge::git::Credentials>,
    /// A server administrator set this clone URL: it is spared the egress rules.
    pub admin_chosen: bool,
    /// ... and it is read from the disk or through a remote helper: git may use any transport.
    pub local: bool,
    /// Where the egress check found the host: git connects there for http(s) remotes.
    pub pinned: Vec<std::net::SocketAddr>,
}

impl RemoteAccess {
    pub fn git(&self) -> forge::git::Access<'_> {
        forge::git::Access { credentials: self.credentials.as_ref(), local: self.local, pinned: &self.pinned }
    }
}

/// How to reach `repo`'s remote. A clone URL no server administrator set is checked first: it
/// must be a network address whose host resolves only where non-admins may go, and git is held
/// to the addresses checked (http(s)), so that the name cannot resolve elsewhere meanwhile.
pub async fn remote_access(state: &AppState, repo: &RepoRecord) -> Result<RemoteAccess, TriggerError> {
    let mut access = unchecked_remote_access(state, repo).await?;
    if !access.admin_chosen {
        access.pinned = crate::egress::check_url(&state.config.egress, &access.url).await?;
    }
    Ok(access)
}

/// As [`remote_access`], without the egress check (for a job's description).
async fn unchecked_remote_access(state: &AppState, repo: &RepoRecord) -> Result<RemoteAccess, store::StoreError> {
    let (url, url_credentials) = proto::remote::split_credentials(&repo.settings.clone_url);
    let admin_chosen = state.store.approved_remote(repo.id).await?.is_some_and(|approved| approved == repo.settings.clone_url);
    let network = matches!(proto::remote::classify(&url), Ok(proto::remote::RemoteKind::Network(_)));
    Ok(RemoteAccess {
        url,
        credentials: clone_credentials(repo).or(url_credentials),
        admin_chosen,
        local: admin_chosen && !network,
        pinned: Vec::new(),
    })
}

/// The repository as a job describes it to an agent: the URL without credentials, the
/// credentials apart, and whether git may read the agent's disk.
pub async fn job_repository(state: &AppState, repo: &RepoRecord) -> Result<proto::agent::JobRepository, store::StoreError> {
    let access = unchecked_remote_access(state, repo).await?;
    Ok(proto::agent::JobRepository {
        id: repo.id,
        full_name: repo.full_name.clone(),
        clone_url: access.url,
        clone_credentials: access.credentials,
        allow_local: access.local,
    })
}

/// Starts a build of `repo` for `request`: how git reaches the remote, then the git phase,
/// then the store phase.
pub async fn start_build(state: &AppState, repo: &RepoRecord, request: BuildRequest) -> Result<Outcome, TriggerError> {
    let access = remote_access(state, repo).await?;
    let checkout = match fetch::fetch(state, repo, &access, &request).await? {
        fetch::Fetched::Ready(checkout) => checkout,
        fetch::Fetched::Skipped(ignored) => return Ok(Outcome::Ignored(ignored)),
    };
    let build = record::record(state, repo, &access.url, &request, checkout).await?;
    Ok(Outcome::Started(Box::new(build)))
}

/// The reason a build and its workflows give while they wait.
pub const WAITING_FOR_APPROVAL: &str = "waiting for a maintainer's approval: `gantry build approve`";

/// The stored credentials agents and the server's mirror use to clone.
pub fn clone_credentials(repo: &RepoRecord) -> Option<forge::git::Credentials> {
    match (&repo.settings.clone_username, &repo.settings.clone_password) {
        (Some(username), Some(password)) => Some(forge::git::Credentials { username: username.clone(), password: password.clone() }),
        (None, Some(password)) => Some(forge::git::Credentials { username: "oauth2".into(), password: password.clone() }),
        _ => None,
    }
}
