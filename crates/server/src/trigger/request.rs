//! What a trigger asks to build, decided without IO: a verified webhook event, a polled ref, a
//! cron schedule, a person's request or restart becomes a [`BuildRequest`], or an [`Ignored`]
//! reason to build nothing. Whether the commit's message asks to skip CI is decided here too,
//! once git has said what the message is.

use std::collections::BTreeMap;
use std::fmt;

use forge::webhook::{HookEvent, PullRequest, PullRequestAction};
use proto::ForgeKind;

/// Why and for what a build is asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildRequest {
    /// `push`, `tag`, `pull_request`, `pull_request_closed`, `cron`, `manual`.
    pub event: String,
    /// Full ref: `refs/heads/main`, `refs/tags/v1`, `refs/pull/7/head`.
    pub reference: String,
    pub branch: String,
    pub tag: Option<String>,
    /// The commit; the ref's head when absent.
    pub commit: Option<String>,
    /// The commit before a push, for the changed files when the forge did not list them.
    pub before: Option<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub changed_files: Option<Vec<String>>,
    pub pull_request: Option<String>,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    pub action: Option<String>,
    pub from_fork: bool,
    pub cron: Option<String>,
    /// `webhook`, `poll`, `cron:<name>`, `user:<login>`, `restart:<number>`.
    pub trigger: String,
    pub variables: BTreeMap<String, String>,
    /// Builds asked for by a person run even with `[skip ci]` in the message.
    pub honour_skip_ci: bool,
    /// Who vouches for this build (`user:<login>`): a person restarting one runs it without
    /// waiting for approval, and is recorded as its approver.
    pub approved_by: Option<String>,
}

/// Why a trigger starts no build. Its text is what callers answer and log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A branch or tag was deleted (the full reference).
    Deleted { reference: String },
    /// The forge checking that the hook works.
    Ping,
    /// An event, or a pull request action, that changes no code Gantry builds.
    Event { event: String },
    /// The commit's message carries `[skip ci]` or another spelling of it.
    SkipCi { commit: String },
}

impl fmt::Display for Ignored {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Deleted { reference } => write!(formatter, "{reference} was deleted"),
            Ignored::Ping => formatter.write_str("ping"),
            Ignored::Event { event } => write!(formatter, "event `{event}` starts no build"),
            Ignored::SkipCi { commit } => write!(formatter, "commit {} asks to skip CI", short(commit)),
        }
    }
}

impl BuildRequest {
    /// What a verified webhook event of a repository on `forge` asks to build.
    pub fn from_hook(forge: ForgeKind, event: HookEvent) -> Result<BuildRequest, Ignored> {
        match event {
            HookEvent::Push(push) => Ok(BuildRequest {
                event: "push".into(),
                reference: push.reference,
                branch: push.branch,
                commit: Some(push.commit),
                before: push.before,
                message: non_empty(push.message),
                author: non_empty(push.author),
                author_email: non_empty(push.author_email),
                changed_files: push.changed_files,
                ..webhook_defaults()
            }),
            HookEvent::Tag(tag) => Ok(BuildRequest {
                event: "tag".into(),
                reference: tag.reference,
                branch: String::new(),
                tag: Some(tag.tag),
                commit: Some(tag.commit),
                message: non_empty(tag.message),
                author: non_empty(tag.author),
                ..webhook_defaults()
            }),
            HookEvent::PullRequest(pull) => Ok(from_pull_request(forge, pull)),
            HookEvent::Deleted { reference } => Err(Ignored::Deleted { reference }),
            HookEvent::Ping => Err(Ignored::Ping),
            HookEvent::Ignored { event } => Err(Ignored::Event { event }),
        }
    }

    /// What a polled ref whose head moved (`before`, if it was there) asks to build: a push for
    /// a branch, a tag for a tag, nothing for other references.
    pub fn polled(reference: &str, commit: &str, before: Option<&str>) -> Option<BuildRequest> {
        let request = if let Some(branch) = reference.strip_prefix("refs/heads/") {
            BuildRequest { event: "push".into(), branch: branch.to_owned(), before: before.map(str::to_owned), ..BuildRequest::default() }
        } else if let Some(tag) = reference.strip_prefix("refs/tags/") {
            BuildRequest { event: "tag".into(), tag: Some(tag.to_owned()), ..BuildRequest::default() }
        } else {
            return None;
        };
        Some(BuildRequest {
            reference: reference.to_owned(),
            commit: Some(commit.to_owned()),
            trigger: "poll".into(),
            honour_skip_ci: true,
            ..request
        })
    }

    /// The build a cron schedule named `name` asks for: the head of `branch`.
    pub fn cron(name: &str, branch: &str) -> BuildRequest {
        BuildRequest {
            event: "cron".into(),
            reference: format!("refs/heads/{branch}"),
            branch: branch.to_owned(),
            cron: Some(name.to_owned()),
            trigger: format!("cron:{name}"),
            ..BuildRequest::default()
        }
    }

    /// The build `login` asks for by hand: `branch` at `commit` (its head when absent).
    pub fn manual(branch: String, commit: Option<String>, login: &str, variables: BTreeMap<String, String>) -> BuildRequest {
        BuildRequest {
            event: "manual".into(),
            reference: format!("refs/heads/{branch}"),
            branch,
            commit,
            trigger: format!("user:{login}"),
            variables,
            ..BuildRequest::default()
        }
    }

    /// A new build of `old`'s commit, event and variables, vouched for by `approver`: restarting
    /// needs the write role, as approving does, so a restart of a build that would wait runs
    /// at once, recorded as approved by whoever restarted it.
    pub fn restart(old: &store::BuildRecord, approver: String) -> BuildRequest {
        BuildRequest {
            event: old.event.clone(),
            reference: old.reference.clone(),
            branch: old.branch.clone(),
            tag: old.reference.strip_prefix("refs/tags/").map(str::to_owned),
            commit: Some(old.commit.clone()),
            message: Some(old.message.clone()),
            author: Some(old.author.clone()),
            pull_request: old.pull_request.clone(),
            from_fork: old.from_fork,
            trigger: format!("restart:{}", old.number),
            variables: old.variables.clone(),
            approved_by: Some(approver),
            ..BuildRequest::default()
        }
    }

    /// Whether this request, for `commit` whose message is `message`, builds nothing because
    /// the message asks to skip CI (only triggers no person asked for honour that).
    pub fn skip_ci(&self, commit: &str, message: &str) -> Option<Ignored> {
        (self.honour_skip_ci && skips_ci(message)).then(|| Ignored::SkipCi { commit: commit.to_owned() })
    }
}

fn from_pull_request(forge: ForgeKind, pull: PullRequest) -> BuildRequest {
    let PullRequest { action, number, title, head_commit, head_branch, base_branch, from_fork, author, .. } = pull;
    let (event, action_name) = match action {
        PullRequestAction::Opened => ("pull_request", "opened"),
        PullRequestAction::Reopened => ("pull_request", "reopened"),
        PullRequestAction::Synchronized => ("pull_request", "synchronized"),
        PullRequestAction::Closed => ("pull_request_closed", "closed"),
    };
    let reference = match forge {
        ForgeKind::Gitlab => format!("refs/merge-requests/{number}/head"),
        _ => format!("refs/pull/{number}/head"),
    };
    BuildRequest {
        event: event.into(),
        reference,
        branch: base_branch.clone(),
        commit: Some(head_commit),
        message: Some(title),
        author: Some(author),
        pull_request: Some(number.to_string()),
        source_branch: Some(head_branch),
        target_branch: Some(base_branch),
        action: Some(action_name.into()),
        from_fork,
        ..webhook_defaults()
    }
}

fn webhook_defaults() -> BuildRequest {
    BuildRequest { trigger: "webhook".into(), honour_skip_ci: true, ..BuildRequest::default() }
}

/// A payload's empty text means "not given": git's commit then says it.
fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// `[skip ci]`, `[ci skip]` and the other spellings Woodpecker and Drone honour.
pub fn skips_ci(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["[skip ci]", "[ci skip]", "[no ci]", "[skip actions]", "***no_ci***"].iter().any(|marker| lower.contains(marker))
}

/// A commit's abbreviation in messages.
pub(super) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}
