//! The trigger context a plan is compiled for: event, commit, repository, platform.

use std::collections::BTreeMap;

/// Events Gantry knows. Woodpecker's set plus Drone's `promote`, `rollback` and `custom`.
pub const EVENTS: &[&str] = &[
    "push",
    "pull_request",
    "pull_request_closed",
    "pull_request_metadata",
    "tag",
    "release",
    "deployment",
    "cron",
    "manual",
    "promote",
    "rollback",
    "custom",
];

/// Everything the compiler needs to know about why and where a pipeline runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub event: String,
    pub branch: String,
    pub tag: Option<String>,
    /// Full git ref, e.g. `refs/heads/main`; derived from branch or tag when empty.
    pub reference: String,
    pub commit_sha: String,
    pub commit_message: String,
    pub commit_author: String,
    pub commit_author_email: String,
    /// Files changed by the push or pull request; `None` when unknown (path filters then pass).
    pub changed_files: Option<Vec<String>>,
    /// `owner/name`.
    pub repo: String,
    pub repo_clone_url: String,
    /// Web address of the repository, used for links and the workspace path (its host).
    pub repo_url: String,
    pub default_branch: String,
    pub pull_request: Option<String>,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    pub action: Option<String>,
    pub deploy_target: Option<String>,
    pub cron: Option<String>,
    /// `os/arch` of the machine that will run it.
    pub platform: String,
    /// Host name of the CI instance (`when.instance`).
    pub instance: String,
    pub pipeline_number: u64,
    /// Extra variables: manual run variables, global environment. Never secrets.
    pub extra_environment: BTreeMap<String, String>,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            event: "push".into(),
            branch: "main".into(),
            tag: None,
            reference: String::new(),
            commit_sha: String::new(),
            commit_message: String::new(),
            commit_author: String::new(),
            commit_author_email: String::new(),
            changed_files: None,
            repo: "local/repository".into(),
            repo_clone_url: String::new(),
            repo_url: String::new(),
            default_branch: "main".into(),
            pull_request: None,
            source_branch: None,
            target_branch: None,
            action: None,
            deploy_target: None,
            cron: None,
            platform: "linux/amd64".into(),
            instance: "localhost".into(),
            pipeline_number: 1,
            extra_environment: BTreeMap::new(),
        }
    }
}

impl Context {
    /// Fills what can be derived: the ref from branch or tag.
    pub fn normalized(mut self) -> Self {
        if self.reference.is_empty() {
            self.reference = match (&self.tag, self.event.as_str()) {
                (Some(tag), _) => format!("refs/tags/{tag}"),
                (None, event) if event.starts_with("pull_request") => {
                    format!("refs/pull/{}/head", self.pull_request.as_deref().unwrap_or("0"))
                }
                _ => format!("refs/heads/{}", self.branch),
            };
        }
        if self.tag.is_none()
            && let Some(tag) = self.reference.strip_prefix("refs/tags/")
        {
            self.tag = Some(tag.to_owned());
        }
        self
    }

    pub fn repo_owner(&self) -> &str {
        self.repo.split_once('/').map(|(owner, _)| owner).unwrap_or("")
    }

    pub fn repo_name(&self) -> &str {
        self.repo.rsplit_once('/').map(|(_, name)| name).unwrap_or(&self.repo)
    }

    /// The forge's host name, for Woodpecker's default workspace path.
    pub fn forge_host(&self) -> &str {
        let url = if self.repo_url.is_empty() { &self.repo_clone_url } else { &self.repo_url };
        let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
        let rest = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if host.is_empty() { "localhost" } else { host }
    }
}
