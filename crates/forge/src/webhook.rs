//! Webhook deliveries: proving a forge sent them (HMAC signature or token, compared in constant
//! time) and reading GitHub, Gitea/Forgejo and GitLab payloads into one [`Delivery`] shape.
//!
//! Nothing here does IO. The server passes the raw body exactly as received (the signature
//! covers those bytes, not a re-serialized form), the headers with lowercase names, and the
//! repository's webhook secret.

use hmac::{Hmac, KeyInit, Mac};
use proto::ForgeKind;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A verified delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The forge's id for this delivery, for logs and to spot redeliveries.
    pub id: Option<String>,
    pub event: HookEvent,
}

/// What a delivery asks of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookEvent {
    /// Commits pushed to a branch.
    Push(Push),
    /// A tag created (or moved).
    Tag(Tag),
    PullRequest(PullRequest),
    /// A branch or tag deleted: nothing to build.
    Deleted {
        /// The full reference, `refs/heads/…` or `refs/tags/…`.
        reference: String,
    },
    /// The forge checking that the hook works.
    Ping,
    /// A delivery Gantry does not act on: another event (issues, releases…), a pull request
    /// action that changes no code (labels, edits, reviews), a push to another kind of reference.
    /// `event` names it, e.g. `issues` or `pull_request.labeled`.
    Ignored {
        event: String,
    },
}

/// Commits pushed to a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/<branch>`.
    pub reference: String,
    pub branch: String,
    /// The branch's commit after the push.
    pub commit: String,
    /// The branch's commit before the push; `None` when the push created the branch.
    pub before: Option<String>,
    /// The message of the head commit (empty when the payload lists no commit).
    pub message: String,
    /// The forge login of who pushed.
    pub author: String,
    /// The email of the head commit's author, or of who pushed when the payload has no commit.
    pub author_email: String,
    /// Paths added, modified or removed by the pushed commits, when the payload lists every one
    /// of them. `None` when it cannot tell (no commit lists, or the forge truncated the list):
    /// ask git (`Mirror::changed_files`) then.
    pub changed_files: Option<Vec<String>>,
    /// The head commit's page on the forge.
    pub commit_url: Option<String>,
    /// The forge's page comparing before and after.
    pub compare_url: Option<String>,
}

/// A tag pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// `refs/tags/<tag>`.
    pub reference: String,
    pub tag: String,
    /// The commit the tag points at (peeled for annotated tags where the payload says which).
    pub commit: String,
    /// The tag's message where the forge sends it, else the commit's; may be empty.
    pub message: String,
    /// The forge login of who pushed.
    pub author: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    /// New commits on the head branch.
    Synchronized,
    /// Closed, merged or not.
    Closed,
    Reopened,
}

/// A pull request (merge request on GitLab) whose code changed or that opened or closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub action: PullRequestAction,
    pub number: u64,
    pub title: String,
    pub head_commit: String,
    pub head_branch: String,
    pub base_branch: String,
    /// Where the head commit can be fetched from: the fork's URL for a fork's pull request.
    pub source_clone_url: String,
    /// The head lives in another repository than the base: its pipeline must not see secrets
    /// unless the repository allows it.
    pub from_fork: bool,
    /// The forge login of the pull request's author (on GitLab, of who triggered the event).
    pub author: String,
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The delivery cannot be shown to come from the forge: answer 401 and act on nothing.
    #[error("webhook not authenticated: {0}")]
    Unauthenticated(AuthFailure),
    /// Authentic, but not a payload this forge sends: answer 400.
    #[error("malformed webhook: {detail}")]
    Malformed { detail: String },
}

/// How authentication failed. No variant carries the secret, the token or a computed MAC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("the repository has no webhook secret, so no delivery can be verified; set one")]
    NoSecret,
    #[error("header '{header}' is missing, so the delivery cannot be verified")]
    MissingSignature { header: &'static str },
    #[error("the signature in header '{header}' does not match the body")]
    BadSignature { header: &'static str },
    #[error("the token in header '{header}' does not match the repository's webhook secret")]
    BadToken { header: &'static str },
}

impl WebhookError {
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, WebhookError::Unauthenticated(_))
    }

    fn malformed(detail: impl Into<String>) -> WebhookError {
        WebhookError::Malformed { detail: detail.into() }
    }
}

/// What git reports for "no commit": before a branch existed, after it was deleted.
const NULL_COMMIT: &str = "0000000000000000000000000000000000000000";

/// Verifies a delivery with `secret` and reads it. `headers` are the request's headers; names
/// are matched without regard to case.
///
/// GitHub (and generic forges): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
/// Gitea/Forgejo: `X-Forgejo-Signature` or `X-Gitea-Signature` (hex, no prefix), or GitHub's
/// header, which they also send. GitLab: `X-Gitlab-Token` equal to the secret.
pub fn parse(forge: ForgeKind, headers: &[(String, String)], body: &[u8], secret: &str) -> Result<Delivery, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::Unauthenticated(AuthFailure::NoSecret));
    }
    let headers = Headers(headers);
    match forge {
        ForgeKind::Github | ForgeKind::Generic => {
            verify_hmac(&headers, &[GITHUB_SIGNATURE], body, secret)?;
            let event = headers.required("x-github-event")?;
            let id = headers.get("x-github-delivery");
            github::read(event, &json(body)?).map(|event| Delivery { id: id.map(str::to_owned), event })
        }
        ForgeKind::Gitea => {
            verify_hmac(&headers, &["x-gitea-signature", "x-forgejo-signature", GITHUB_SIGNATURE], body, secret)?;
            let event = headers
                .first(&["x-gitea-event", "x-forgejo-event", "x-gitea-event-type"])
                .ok_or_else(|| WebhookError::malformed("header 'x-gitea-event' is missing"))?;
            let id = headers.first(&["x-gitea-delivery", "x-forgejo-delivery"]);
            gitea::read(event, &json(body)?).map(|event| Delivery { id: id.map(str::to_owned), event })
        }
        ForgeKind::Gitlab => {
            verify_token(&headers, "x-gitlab-token", secret)?;
            let event = headers.required("x-gitlab-event")?;
            let id = headers.first(&["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"]);
            gitlab::read(event, &json(body)?).map(|event| Delivery { id: id.map(str::to_owned), event })
        }
    }
}

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";

/// Checks the first signature header present among `names` (a forge that sends several signs
/// the same bytes with the same key in each).
fn verify_hmac(headers: &Headers, names: &[&'static str], body: &[u8], secret: &str) -> Result<(), WebhookError> {
    let Some((header, value)) = names.iter().find_map(|name| headers.get(name).map(|value| (*name, value))) else {
        return Err(WebhookError::Unauthenticated(AuthFailure::MissingSignature { header: names[0] }));
    };
    let bad = || WebhookError::Unauthenticated(AuthFailure::BadSignature { header });
    let hex_digest = if header == GITHUB_SIGNATURE { value.trim().strip_prefix("sha256=").ok_or_else(bad)? } else { value.trim() };
    if verify_hex_signature(hex_digest, body, secret) { Ok(()) } else { Err(bad()) }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`, as GitHub signs its webhooks and
/// Gantry its notifications and deployment events.
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `hex_digest` is the hex HMAC-SHA256 of `body` under `secret`, compared in constant
/// time. Also what checks Gantry's own signed notifications (`X-Gantry-Signature: sha256=…`).
pub fn verify_hex_signature(hex_digest: &str, body: &[u8], secret: &str) -> bool {
    let Ok(signature) = hex::decode(hex_digest.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Compares digests rather than the strings so that the time taken tells nothing, not even
/// the secret's length.
fn verify_token(headers: &Headers, header: &'static str, secret: &str) -> Result<(), WebhookError> {
    let token = headers.get(header).ok_or(WebhookError::Unauthenticated(AuthFailure::MissingSignature { header }))?;
    let given = Sha256::digest(token.as_bytes());
    let expected = Sha256::digest(secret.as_bytes());
    if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::Unauthenticated(AuthFailure::BadToken { header }))
    }
}

fn json(body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|error| WebhookError::malformed(format!("the body is not JSON: {error}")))
}

struct Headers<'a>(&'a [(String, String)]);

impl Headers<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| self.get(name))
    }

    fn required(&self, name: &str) -> Result<&str, WebhookError> {
        self.get(name).ok_or_else(|| WebhookError::malformed(format!("header '{name}' is missing")))
    }
}

/// Typed access to a payload by dotted path (`pull_request.head.sha`), with errors that name
/// the field. JSON `null` counts as missing.
struct Fields<'a>(&'a Value);

impl<'a> Fields<'a> {
    fn value(&self, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(self.0, |value, key| value.get(key)).filter(|value| !value.is_null())
    }

    fn string(&self, path: &str) -> Result<&'a str, WebhookError> {
        match self.value(path) {
            None => Err(WebhookError::malformed(format!("field '{path}' is missing"))),
            Some(value) => value.as_str().ok_or_else(|| WebhookError::malformed(format!("field '{path}' is not a string"))),
        }
    }

    fn optional_string(&self, path: &str) -> Option<&'a str> {
        self.value(path).and_then(Value::as_str)
    }

    fn number(&self, path: &str) -> Result<u64, WebhookError> {
        match self.value(path) {
            None => Err(WebhookError::malformed(format!("field '{path}' is missing"))),
            Some(value) => value.as_u64().ok_or_else(|| WebhookError::malformed(format!("field '{path}' is not a whole number"))),
        }
    }

    /// The first of `paths` that holds a non-empty string.
    fn first_string(&self, paths: &[&str]) -> Option<&'a str> {
        paths.iter().find_map(|path| self.optional_string(path)).filter(|text| !text.is_empty())
    }

    fn commits(&self) -> &'a [Value] {
        self.value("commits").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The commit listed with id `sha`, if the payload lists it.
fn listed_commit<'a>(commits: &'a [Value], sha: &str) -> Option<Fields<'a>> {
    commits.iter().find(|commit| commit.get("id").and_then(Value::as_str) == Some(sha)).map(Fields)
}

/// The union of the paths the listed commits touched, or `None` when the list cannot be
/// complete: no commits, a commit without its path lists, or fewer commits than `total`.
fn changed_files(commits: &[Value], total: Option<u64>) -> Option<Vec<String>> {
    if commits.is_empty() || total.is_some_and(|total| total > commits.len() as u64) {
        return None;
    }
    let mut paths = std::collections::BTreeSet::new();
    for commit in commits {
        for key in ["added", "modified", "removed"] {
            for path in commit.get(key)?.as_array()? {
                paths.insert(path.as_str()?.to_owned());
            }
        }
    }
    Some(paths.into_iter().collect())
}

/// What a push to `reference` is, once the forge's fields are read.
struct RefUpdate<'a> {
    reference: &'a str,
    before: &'a str,
    after: &'a str,
}

impl<'a> RefUpdate<'a> {
    /// `ref`, `after` and `before`, which every forge's push payload carries under these names.
    fn read(fields: &Fields<'a>) -> Result<RefUpdate<'a>, WebhookError> {
        Ok(RefUpdate {
            reference: fields.string("ref")?,
            after: fields.string("after")?,
            before: fields.optional_string("before").unwrap_or_default(),
        })
    }

    /// The event of a push in GitHub's shape (Gitea and Forgejo send the same): `head` is the
    /// pushed head commit, `compare_field` where the payload keeps its compare link.
    fn event(
        &self,
        fields: &Fields<'a>,
        head: Option<Fields<'a>>,
        author: String,
        changed: impl FnOnce() -> Option<Vec<String>>,
        compare_field: &str,
    ) -> HookEvent {
        let head_string = |path: &str| head.as_ref().and_then(|head| head.optional_string(path));
        match self.kind() {
            RefKind::Deleted => HookEvent::Deleted { reference: self.reference.to_owned() },
            RefKind::Other => HookEvent::Ignored { event: "push".to_owned() },
            RefKind::Tag(tag) => HookEvent::Tag(Tag {
                reference: self.reference.to_owned(),
                tag: tag.to_owned(),
                // A head commit of all zeros names no commit (a forged or broken payload): the
                // tag's own `after` is what it points at.
                commit: head_string("id").filter(|id| *id != NULL_COMMIT && !id.is_empty()).unwrap_or(self.after).to_owned(),
                message: head_string("message").unwrap_or_default().to_owned(),
                author,
            }),
            RefKind::Branch(branch) => HookEvent::Push(Push {
                reference: self.reference.to_owned(),
                branch: branch.to_owned(),
                commit: self.after.to_owned(),
                before: self.before(),
                message: head_string("message").unwrap_or_default().to_owned(),
                author,
                author_email: head_string("author.email").or(fields.optional_string("pusher.email")).unwrap_or_default().to_owned(),
                changed_files: changed(),
                commit_url: head_string("url").map(str::to_owned),
                compare_url: fields.optional_string(compare_field).map(str::to_owned),
            }),
        }
    }
}

enum RefKind<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Deleted,
    Other,
}

impl<'a> RefUpdate<'a> {
    fn kind(&self) -> RefKind<'a> {
        if self.after == NULL_COMMIT {
            RefKind::Deleted
        } else if let Some(branch) = self.reference.strip_prefix("refs/heads/") {
            RefKind::Branch(branch)
        } else if let Some(tag) = self.reference.strip_prefix("refs/tags/") {
            RefKind::Tag(tag)
        } else {
            RefKind::Other
        }
    }

    fn before(&self) -> Option<String> {
        (!self.before.is_empty() && self.before != NULL_COMMIT).then(|| self.before.to_owned())
    }
}

/// GitHub's payloads; generic forges send the same shape.
/// <https://docs.github.com/en/webhooks/webhook-events-and-payloads>
mod github {
    use super::*;

    pub(super) fn read(event: &str, payload: &Value) -> Result<HookEvent, WebhookError> {
        let fields = Fields(payload);
        match event {
            "ping" => Ok(HookEvent::Ping),
            "push" => push(&fields),
            "pull_request" => pull_request(&fields),
            other => Ok(HookEvent::Ignored { event: other.to_owned() }),
        }
    }

    fn push(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let update = RefUpdate::read(fields)?;
        let author = fields.first_string(&["sender.login", "pusher.name"]).unwrap_or_default().to_owned();
        // `head_commit` is the commit `after` points at, peeled when `after` is an annotated tag.
        let head = fields.value("head_commit").map(Fields);
        Ok(update.event(fields, head, author, || changed_files(fields.commits(), None), "compare"))
    }

    fn pull_request(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let action = match fields.string("action")? {
            "opened" => PullRequestAction::Opened,
            "synchronize" => PullRequestAction::Synchronized,
            "reopened" => PullRequestAction::Reopened,
            "closed" => PullRequestAction::Closed,
            other => return Ok(HookEvent::Ignored { event: format!("pull_request.{other}") }),
        };
        let base_repo = fields.string("pull_request.base.repo.full_name")?;
        // `head.repo` is null once the fork is deleted; its commits are still fetchable from the
        // base repository as `refs/pull/<number>/head`.
        let (source_clone_url, from_fork) = match fields.optional_string("pull_request.head.repo.full_name") {
            Some(head_repo) => (fields.string("pull_request.head.repo.clone_url")?, head_repo != base_repo),
            None => (fields.string("pull_request.base.repo.clone_url")?, true),
        };
        Ok(HookEvent::PullRequest(PullRequest {
            action,
            number: fields.number("number")?,
            title: fields.string("pull_request.title")?.to_owned(),
            head_commit: fields.string("pull_request.head.sha")?.to_owned(),
            head_branch: fields.string("pull_request.head.ref")?.to_owned(),
            base_branch: fields.string("pull_request.base.ref")?.to_owned(),
            source_clone_url: source_clone_url.to_owned(),
            from_fork,
            author: fields.string("pull_request.user.login")?.to_owned(),
        }))
    }
}

/// Gitea's and Forgejo's payloads (GitHub-like, with their own names in places).
/// <https://docs.gitea.com/usage/webhooks>, <https://forgejo.org/docs/latest/user/webhooks/>
mod gitea {
    use super::*;

    pub(super) fn read(event: &str, payload: &Value) -> Result<HookEvent, WebhookError> {
        let fields = Fields(payload);
        match event {
            "ping" => Ok(HookEvent::Ping),
            "push" => push(&fields),
            // `X-Gitea-Event-Type` is finer than `X-Gitea-Event`: `pull_request_sync`,
            // `pull_request_label`…; the payload's `action` decides either way.
            "pull_request" | "pull_request_sync" => pull_request(&fields),
            // Gitea reports deleted branches and tags with this event rather than a push.
            "delete" => {
                let name = fields.string("ref")?;
                let reference = match fields.string("ref_type")? {
                    "tag" => format!("refs/tags/{name}"),
                    _ if name.starts_with("refs/") => name.to_owned(),
                    _ => format!("refs/heads/{name}"),
                };
                Ok(HookEvent::Deleted { reference })
            }
            other => Ok(HookEvent::Ignored { event: other.to_owned() }),
        }
    }

    fn push(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let update = RefUpdate::read(fields)?;
        let author =
            fields.first_string(&["pusher.login", "pusher.username", "sender.login", "sender.username"]).unwrap_or_default().to_owned();
        let commits = fields.commits();
        // Recent versions send `head_commit`; older ones only list the commits.
        let head = fields.value("head_commit").map(Fields).or_else(|| listed_commit(commits, update.after));
        let total = fields.value("total_commits").and_then(Value::as_u64);
        Ok(update.event(fields, head, author, || changed_files(commits, total), "compare_url"))
    }

    fn pull_request(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let action = match fields.string("action")? {
            "opened" => PullRequestAction::Opened,
            "synchronized" => PullRequestAction::Synchronized,
            "reopened" => PullRequestAction::Reopened,
            "closed" => PullRequestAction::Closed,
            other => return Ok(HookEvent::Ignored { event: format!("pull_request.{other}") }),
        };
        let from_fork = match (fields.value("pull_request.head.repo_id"), fields.value("pull_request.base.repo_id")) {
            (Some(head), Some(base)) => head != base,
            _ => fields.string("pull_request.head.repo.full_name")? != fields.string("pull_request.base.repo.full_name")?,
        };
        Ok(HookEvent::PullRequest(PullRequest {
            action,
            number: fields.number("number")?,
            title: fields.string("pull_request.title")?.to_owned(),
            head_commit: fields.string("pull_request.head.sha")?.to_owned(),
            head_branch: fields.string("pull_request.head.ref")?.to_owned(),
            base_branch: fields.string("pull_request.base.ref")?.to_owned(),
            source_clone_url: fields.string("pull_request.head.repo.clone_url")?.to_owned(),
            from_fork,
            author: fields
                .first_string(&["pull_request.user.login", "pull_request.user.username"])
                .ok_or_else(|| WebhookError::malformed("field 'pull_request.user.login' is missing"))?
                .to_owned(),
        }))
    }
}

/// GitLab's payloads. <https://docs.gitlab.com/user/project/integrations/webhook_events/>
mod gitlab {
    use super::*;

    pub(super) fn read(event: &str, payload: &Value) -> Result<HookEvent, WebhookError> {
        let fields = Fields(payload);
        match event {
            "Push Hook" | "Tag Push Hook" => push(&fields),
            "Merge Request Hook" => merge_request(&fields),
            other => Ok(HookEvent::Ignored { event: other.to_owned() }),
        }
    }

    fn push(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let update = RefUpdate::read(fields)?;
        let author = fields.first_string(&["user_username", "user_name"]).unwrap_or_default().to_owned();
        let commits = fields.commits();
        let head = listed_commit(commits, update.after);
        let head_string = |path: &str| head.as_ref().and_then(|head| head.optional_string(path));
        // GitLab lists at most 20 commits and counts all of them here.
        let total = fields.value("total_commits_count").and_then(Value::as_u64);
        Ok(match update.kind() {
            RefKind::Deleted => HookEvent::Deleted { reference: update.reference.to_owned() },
            RefKind::Other => HookEvent::Ignored { event: "push".to_owned() },
            RefKind::Tag(tag) => HookEvent::Tag(Tag {
                reference: update.reference.to_owned(),
                tag: tag.to_owned(),
                // `after` is the tag object for annotated tags; `checkout_sha` is its commit.
                commit: fields.optional_string("checkout_sha").unwrap_or(update.after).to_owned(),
                message: fields.first_string(&["message"]).or(head_string("message")).unwrap_or_default().to_owned(),
                author,
            }),
            RefKind::Branch(branch) => HookEvent::Push(Push {
                reference: update.reference.to_owned(),
                branch: branch.to_owned(),
                commit: update.after.to_owned(),
                before: update.before(),
                message: head_string("message").unwrap_or_default().to_owned(),
                author,
                author_email: head_string("author.email").or(fields.optional_string("user_email")).unwrap_or_default().to_owned(),
                changed_files: changed_files(commits, total),
                commit_url: head_string("url").map(str::to_owned),
                compare_url: None,
            }),
        })
    }

    fn merge_request(fields: &Fields) -> Result<HookEvent, WebhookError> {
        let action = match fields.string("object_attributes.action")? {
            "open" => PullRequestAction::Opened,
            "reopen" => PullRequestAction::Reopened,
            "close" | "merge" => PullRequestAction::Closed,
            // `oldrev` is there only when the update pushed code; other updates edit the title,
            // labels, assignees…
            "update" if fields.first_string(&["object_attributes.oldrev"]).is_some() => PullRequestAction::Synchronized,
            other => return Ok(HookEvent::Ignored { event: format!("merge_request.{other}") }),
        };
        Ok(HookEvent::PullRequest(PullRequest {
            action,
            number: fields.number("object_attributes.iid")?,
            title: fields.string("object_attributes.title")?.to_owned(),
            head_commit: fields.string("object_attributes.last_commit.id")?.to_owned(),
            head_branch: fields.string("object_attributes.source_branch")?.to_owned(),
            base_branch: fields.string("object_attributes.target_branch")?.to_owned(),
            source_clone_url: fields.string("object_attributes.source.git_http_url")?.to_owned(),
            from_fork: fields.number("object_attributes.source_project_id")? != fields.number("object_attributes.target_project_id")?,
            author: fields.first_string(&["user.username", "user.name"]).unwrap_or_default().to_owned(),
        }))
    }
}
