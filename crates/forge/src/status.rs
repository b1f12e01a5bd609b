//! Commit statuses: telling GitHub, Gitea/Forgejo or GitLab how a build of a commit went, over
//! their REST APIs, and finding a forge's API from a repository's clone URL.

use std::time::Duration;

use proto::{ForgeKind, State};
use serde_json::{Value, json};

/// Where to report: the forge's API and the repository in it.
#[derive(Clone)]
pub struct StatusTarget {
    pub forge: ForgeKind,
    /// The API root without a trailing slash: `https://api.github.com`,
    /// `https://github.example.com/api/v3`, `http://host/api/v1` (Gitea),
    /// `http://host/api/v4` (GitLab). See [`api_base_from_clone_url`].
    pub api_base: String,
    /// `owner/name`; on GitLab the project's full path, groups included (`group/sub/name`).
    pub full_name: String,
    /// A token allowed to write commit statuses.
    pub token: String,
}

impl std::fmt::Debug for StatusTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StatusTarget")
            .field("forge", &self.forge)
            .field("api_base", &self.api_base)
            .field("full_name", &self.full_name)
            .field("token", &"***")
            .finish()
    }
}

/// One status of one commit. A forge keeps the latest status per `context`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStatus {
    pub commit: String,
    pub state: State,
    /// Names the check, e.g. `gantry/push` or `gantry/pr/build`.
    pub context: String,
    pub description: String,
    /// The build's page.
    pub target_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status target '{full_name}' is not a repository path like owner/name")]
    BadRepository { full_name: String },
    #[error("{forge} cannot take commit statuses: it is a plain git remote")]
    Unsupported { forge: &'static str },
    #[error("could not build the HTTP client: {source}")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    #[error("could not send the commit status of {full_name} to {url}: {source}")]
    Transport {
        full_name: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{forge} refused the commit status of {full_name} with HTTP {status}: {message}")]
    Rejected { forge: &'static str, full_name: String, status: u16, message: String },
}

/// Sends commit statuses. Cheap to clone; one is enough for the whole server.
#[derive(Clone, Debug)]
pub struct StatusReporter {
    http: reqwest::Client,
}

/// Forges truncate or refuse longer descriptions (GitHub's limit is 140 characters).
const DESCRIPTION_LIMIT: usize = 140;

impl StatusReporter {
    pub fn new() -> Result<StatusReporter, StatusError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| StatusError::Client { source })?;
        Ok(StatusReporter { http })
    }

    /// With a client of the caller's (proxies, extra roots). It should set a User-Agent: GitHub
    /// refuses requests without one.
    pub fn with_client(http: reqwest::Client) -> StatusReporter {
        StatusReporter { http }
    }

    pub async fn send(&self, target: &StatusTarget, status: &CommitStatus) -> Result<(), StatusError> {
        let bad_repository = || StatusError::BadRepository { full_name: target.full_name.clone() };
        let (owner, name) = target.full_name.split_once('/').ok_or_else(bad_repository)?;
        if owner.is_empty() || name.is_empty() {
            return Err(bad_repository());
        }
        let api_base = target.api_base.trim_end_matches('/');
        let sha = encode_segment(&status.commit);
        let description = truncate(&status.description, DESCRIPTION_LIMIT);
        let state = forge_state(target.forge, status.state);
        let request = match target.forge {
            ForgeKind::Generic => return Err(StatusError::Unsupported { forge: target.forge.as_str() }),
            // https://docs.github.com/en/rest/commits/statuses#create-a-commit-status
            ForgeKind::Github => self
                .http
                .post(format!("{api_base}/repos/{}/{}/statuses/{sha}", encode_segment(owner), encode_segment(name)))
                .bearer_auth(&target.token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json(&json!({
                    "state": state,
                    "target_url": status.target_url,
                    "description": description,
                    "context": status.context,
                })),
            // https://docs.gitea.com/api/1.20/#tag/repository/operation/repoCreateStatus
            ForgeKind::Gitea => self
                .http
                .post(format!("{api_base}/repos/{}/{}/statuses/{sha}", encode_segment(owner), encode_segment(name)))
                .header("Authorization", format!("token {}", target.token))
                .header("Accept", "application/json")
                .json(&json!({
                    "state": state,
                    "target_url": status.target_url,
                    "description": description,
                    "context": status.context,
                })),
            // https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
            ForgeKind::Gitlab => self
                .http
                .post(format!("{api_base}/projects/{}/statuses/{sha}", encode_segment(&target.full_name)))
                .header("PRIVATE-TOKEN", &target.token)
                .header("Accept", "application/json")
                .json(&json!({
                    "state": state,
                    "name": status.context,
                    "target_url": status.target_url,
                    "description": description,
                })),
        };
        let response = request.send().await.map_err(|source| StatusError::Transport {
            full_name: target.full_name.clone(),
            url: api_base.to_owned(),
            source: source.without_url(),
        })?;
        let code = response.status();
        if code.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(StatusError::Rejected {
            forge: target.forge.as_str(),
            full_name: target.full_name.clone(),
            status: code.as_u16(),
            message: redact(&forge_message(&body), &target.token),
        })
    }
}

/// The word each forge uses for a Gantry state. None of them has Gantry's `skipped`: a skipped
/// build reports success so that it does not block merging; `lost` reports an error (a new
/// status follows if the build is queued again); `blocked` (waiting for approval) is pending.
pub fn forge_state(forge: ForgeKind, state: State) -> &'static str {
    match forge {
        ForgeKind::Gitlab => match state {
            State::Pending | State::Blocked => "pending",
            State::Running => "running",
            State::Success | State::Skipped => "success",
            State::Failure | State::Error | State::Lost => "failed",
            State::Killed => "canceled",
        },
        ForgeKind::Github | ForgeKind::Gitea | ForgeKind::Generic => match state {
            State::Pending | State::Running | State::Blocked => "pending",
            State::Success | State::Skipped => "success",
            State::Failure => "failure",
            State::Killed | State::Error | State::Lost => "error",
        },
    }
}

/// The API root of the forge hosting `clone_url`: `https://api.github.com` for github.com,
/// `{scheme}://{host}/api/v3` for GitHub Enterprise, `/api/v1` for Gitea, `/api/v4` for GitLab.
/// SSH remotes (`ssh://…`, `git@host:owner/name.git`) map to `https://{host}`. `None` for a
/// generic forge or a URL without a host. A forge served under a sub-path
/// (`https://host/gitea/…`) cannot be told apart from a repository path: set the API by hand.
pub fn api_base_from_clone_url(forge: ForgeKind, clone_url: &str) -> Option<String> {
    let (scheme, authority) = match clone_url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            match scheme {
                "http" | "https" => (scheme, authority.to_owned()),
                // The port of an ssh or git remote is not the web server's.
                _ => ("https", strip_port(authority).to_owned()),
            }
        }
        None => {
            // scp-like: [user@]host:path
            let (host, _path) = clone_url.split_once(':')?;
            ("https", host.rsplit_once('@').map_or(host, |(_, host)| host).to_owned())
        }
    };
    if authority.is_empty() {
        return None;
    }
    match forge {
        ForgeKind::Github if matches!(strip_port(&authority), "github.com" | "www.github.com") => Some("https://api.github.com".to_owned()),
        ForgeKind::Github => Some(format!("{scheme}://{authority}/api/v3")),
        ForgeKind::Gitea => Some(format!("{scheme}://{authority}/api/v1")),
        ForgeKind::Gitlab => Some(format!("{scheme}://{authority}/api/v4")),
        ForgeKind::Generic => None,
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // [v6]:port
        return authority.split_once("]:").map_or(authority, |(host, _)| &authority[..host.len() + 1]);
    }
    authority.split_once(':').map_or(authority, |(host, _)| host)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that a GitLab path's
/// slashes become `%2F` and nothing in a name can change the URL's shape.
fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The message in a forge's error body: `message` (GitHub, Gitea, GitLab), `error` (GitLab's
/// validation errors), else the start of the body.
fn forge_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        ["message", "error"].into_iter().find_map(|key| match value.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    });
    let message = from_json.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() { "no message".to_owned() } else { truncate(&message, 500) }
}

fn redact(text: &str, token: &str) -> String {
    if token.is_empty() { text.to_owned() } else { text.replace(token, "***") }
}
