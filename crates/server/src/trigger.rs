//! The build flow shared by every trigger (webhook, poll, cron, manual, restart): resolve the
//! commit, read the pipeline files at that commit from git, compile them for the trigger's
//! context, and store the build with its workflows queued. A pipeline with errors becomes a
//! build in state `error` that carries its diagnostics, so the mistake is visible where the
//! build would have been.

use std::collections::BTreeMap;

use pipeline::plan::{Plan, WorkflowPlan};
use pipeline::{CompileOptions, Context, SourceFile};
use proto::State;
use proto::api::BuildDiagnostic;
use store::{BuildRecord, NewBuild, NewStep, NewWorkflow, RepoRecord};

use crate::state::{AppState, now_ms};

/// Why and for what a build is asked for.
#[derive(Clone, Debug, Default)]
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

#[derive(Debug)]
pub enum Outcome {
    Started(Box<BuildRecord>),
    /// Nothing to build, and why.
    Ignored(String),
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

/// Starts a build of `repo` for `request`.
pub async fn start_build(state: &AppState, repo: &RepoRecord, request: BuildRequest) -> Result<Outcome, TriggerError> {
    let access = remote_access(state, repo).await?;
    let lock = state.git_lock(repo.id);
    let _guard = lock.lock().await;
    let mirror = forge::git::Mirror::open(&state.mirrors, &repo.id.to_string()).await?;
    let mut refspecs = vec!["+refs/heads/*:refs/heads/*".to_owned(), "+refs/tags/*:refs/tags/*".to_owned()];
    if !request.reference.starts_with("refs/heads/") && !request.reference.starts_with("refs/tags/") && !request.reference.is_empty() {
        refspecs.push(format!("+{0}:{0}", request.reference));
    }
    let refspec_refs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    mirror.fetch(&access.url, &access.git(), &refspec_refs).await?;
    let commit = match &request.commit {
        Some(commit) => mirror
            .resolve(commit)
            .await
            .map_err(|_| TriggerError::NotFound(format!("commit {commit} is not in the repository's remote")))?,
        None => mirror
            .resolve(&request.reference)
            .await
            .map_err(|_| TriggerError::NotFound(format!("{} does not exist in the repository's remote", request.reference)))?,
    };
    let info = mirror.commit_info(&commit).await?;
    let message = request.message.clone().unwrap_or_else(|| info.message.clone());
    if request.honour_skip_ci && skips_ci(&message) {
        return Ok(Outcome::Ignored(format!("commit {} asks to skip CI", short(&commit))));
    }
    let changed_files = match (&request.changed_files, &request.before) {
        (Some(files), _) => Some(files.clone()),
        (None, Some(before)) => mirror.changed_files(before, &commit).await.ok(),
        (None, None) => match info.parents.first() {
            Some(parent) if request.event == "push" => mirror.changed_files(parent, &commit).await.ok(),
            _ => None,
        },
    };
    let files = read_pipeline_files(&mirror, &commit, &repo.settings.config_path).await?;
    drop(_guard);

    let author = request.author.clone().unwrap_or_else(|| info.author.clone());
    let author_email = request.author_email.clone().unwrap_or_else(|| info.author_email.clone());
    let needs_approval = repo.settings.approval.requires_approval(&request.event, request.from_fork);
    let mut new_build = NewBuild {
        repo_id: repo.id,
        event: request.event.clone(),
        state: State::Pending,
        reference: request.reference.clone(),
        branch: request.branch.clone(),
        commit: commit.clone(),
        message: message.clone(),
        author: author.clone(),
        trigger: request.trigger.clone(),
        pull_request: request.pull_request.clone(),
        reason: None,
        diagnostics: Vec::new(),
        variables: request.variables.clone(),
        from_fork: request.from_fork,
        approved_by: request.approved_by.clone().filter(|_| needs_approval),
    };
    if files.is_empty() {
        new_build.state = State::Error;
        new_build.reason = Some(no_pipeline_reason(&repo.settings.config_path));
        let build = state.store.create_build(&new_build, &[], now_ms()).await?;
        crate::queue::build_changed(state, &build).await;
        return Ok(Outcome::Started(Box::new(build)));
    }

    // The build's number is part of the pipeline's variables, so the build is stored first and
    // its workflows added once compiled for that number.
    let build = state.store.create_build(&new_build, &[], now_ms()).await?;
    let context = Context {
        event: request.event.clone(),
        branch: request.branch.clone(),
        tag: request.tag.clone(),
        reference: request.reference.clone(),
        commit_sha: commit.clone(),
        commit_message: message,
        commit_author: author,
        commit_author_email: author_email,
        changed_files,
        repo: repo.full_name.clone(),
        // Without credentials: these reach every step's environment.
        repo_clone_url: access.url.clone(),
        repo_url: web_url(&access.url),
        default_branch: repo.settings.default_branch.clone(),
        pull_request: request.pull_request.clone(),
        source_branch: request.source_branch.clone(),
        target_branch: request.target_branch.clone(),
        action: request.action.clone(),
        deploy_target: None,
        cron: request.cron.clone(),
        platform: "linux/amd64".into(),
        instance: instance_host(&state.config.public_url),
        pipeline_number: build.number.max(0) as u64,
        extra_environment: request.variables.clone(),
    }
    .normalized();
    let plan = pipeline::plan_files(&files, &context, CompileOptions::default());
    let diagnostics = build_diagnostics(&plan);
    if plan.has_errors() {
        state.store.set_build_diagnostics(build.id, &diagnostics).await?;
        state.store.set_build_state(build.id, State::Error, Some("the pipeline has errors"), now_ms()).await?;
        let build = state.store.build_by_id(build.id).await?.unwrap_or(build);
        crate::queue::build_changed(state, &build).await;
        return Ok(Outcome::Started(Box::new(build)));
    }
    if repo.settings.cancel_previous && request.event != "tag" {
        cancel_older_builds(state, repo, &build).await?;
    }
    let mut workflows: Vec<NewWorkflow> = plan.workflows.iter().map(new_workflow).collect();
    // Code nobody with access has looked at waits for someone who has: nothing of it reaches an
    // agent until a maintainer approves.
    let blocked = needs_approval && build.approved_by.is_none();
    if blocked {
        for workflow in workflows.iter_mut().filter(|workflow| workflow.state == State::Pending) {
            workflow.state = State::Blocked;
            workflow.reason = Some(WAITING_FOR_APPROVAL.to_owned());
        }
    }
    state.store.set_build_diagnostics(build.id, &diagnostics).await?;
    state.store.add_workflows(build.id, &workflows, now_ms()).await?;
    if workflows.iter().any(|workflow| workflow.state == State::Blocked) {
        state.store.set_build_state(build.id, State::Blocked, Some(WAITING_FOR_APPROVAL), now_ms()).await?;
    }
    crate::queue::settle_build(state, build.id).await?;
    state.hub.notify(crate::hub::Topic::Queue);
    let build = state.store.build_by_id(build.id).await?.unwrap_or(build);
    tracing::info!(repo = %repo.full_name, build = build.number, event = %build.event, commit = %short(&build.commit), "build queued");
    if !build.state.is_finished() {
        // Finished builds (every workflow skipped) were reported by `settle_build`.
        crate::queue::build_changed(state, &build).await;
    }
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

/// Cancels builds of the same branch that are still pending or running.
async fn cancel_older_builds(state: &AppState, repo: &RepoRecord, newer: &BuildRecord) -> Result<(), store::StoreError> {
    for older in state.store.active_builds_of_branch(repo.id, &newer.branch).await? {
        if older.id != newer.id && older.number < newer.number && older.event == newer.event {
            crate::queue::cancel_build(state, &older, &format!("superseded by build {}", newer.number)).await?;
        }
    }
    Ok(())
}

/// A stored workflow: its plan alone (dependencies left to the server), its steps in order.
fn new_workflow(workflow: &WorkflowPlan) -> NewWorkflow {
    let mut alone = workflow.clone();
    alone.depends_on.clear();
    let job_plan = Plan { workflows: vec![alone], diagnostics: Vec::new() };
    let mut labels = workflow.labels.clone();
    if let Some(platform) = &workflow.platform {
        labels.entry("platform".into()).or_insert_with(|| platform.clone());
    }
    let steps = workflow
        .services
        .iter()
        .chain(workflow.steps.iter())
        .map(|step| NewStep {
            name: step.name.clone(),
            state: if step.skipped || workflow.skipped { State::Skipped } else { State::Pending },
            reason: step.skip_reason.clone(),
        })
        .collect();
    let (state, reason) = if workflow.skipped {
        (State::Skipped, workflow.skip_reason.clone())
    } else if !workflow.runnable {
        (State::Error, Some(format!("no agent can run a `{}` pipeline", workflow.runner_type.as_deref().unwrap_or("unknown"))))
    } else {
        (State::Pending, None)
    };
    NewWorkflow {
        name: workflow.name.clone(),
        state,
        reason,
        depends_on: workflow.depends_on.clone(),
        labels,
        plan: serde_json::to_value(&job_plan).unwrap_or(serde_json::Value::Null),
        steps,
    }
}

fn build_diagnostics(plan: &Plan) -> Vec<BuildDiagnostic> {
    plan.diagnostics
        .iter()
        .map(|diagnostic| BuildDiagnostic {
            severity: diagnostic.severity.as_str().into(),
            code: diagnostic.code.to_string(),
            file: diagnostic.file.clone(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message.clone(),
            hint: diagnostic.hint.clone(),
        })
        .collect()
}

/// The pipeline files at `commit`: the configured file or folder, or discovery as in `gantry plan`.
async fn read_pipeline_files(mirror: &forge::git::Mirror, commit: &str, config_path: &str) -> Result<Vec<SourceFile>, TriggerError> {
    let config_path = config_path.trim_matches('/');
    let paths: Vec<String> = if config_path.is_empty() {
        let root = mirror.list_dir(commit, "").await?;
        let folder = mirror.list_dir(commit, pipeline::discovery::WOODPECKER_FOLDER).await?;
        let root_refs: Vec<&str> = root.iter().map(String::as_str).collect();
        let folder_refs: Vec<&str> = folder.iter().map(String::as_str).collect();
        pipeline::discovery::discover(&root_refs, if folder.is_empty() { None } else { Some(&folder_refs) })
    } else if config_path.ends_with(".yml") || config_path.ends_with(".yaml") {
        vec![config_path.to_owned()]
    } else {
        let mut names: Vec<String> = mirror
            .list_dir(commit, config_path)
            .await?
            .into_iter()
            .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
            .map(|name| format!("{config_path}/{name}"))
            .collect();
        names.sort();
        names
    };
    let mut files = Vec::new();
    for path in paths {
        if let Some(bytes) = mirror.read_file(commit, &path).await? {
            files.push(SourceFile::new(path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(files)
}

fn no_pipeline_reason(config_path: &str) -> String {
    if config_path.is_empty() {
        "no pipeline found at this commit: expected .woodpecker/*.yml, .woodpecker.yml or .drone.yml".into()
    } else {
        format!("no pipeline found at {config_path} at this commit")
    }
}

/// `[skip ci]`, `[ci skip]` and the other spellings Woodpecker and Drone honour.
pub fn skips_ci(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["[skip ci]", "[ci skip]", "[no ci]", "[skip actions]", "***no_ci***"].iter().any(|marker| lower.contains(marker))
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}

/// `https://host/owner/name.git` → `https://host/owner/name`; other remotes as they are.
fn web_url(clone_url: &str) -> String {
    clone_url.strip_suffix(".git").unwrap_or(clone_url).to_owned()
}

fn instance_host(public_url: &str) -> String {
    let without_scheme = public_url.split_once("://").map(|(_, rest)| rest).unwrap_or(public_url);
    without_scheme.split('/').next().unwrap_or("localhost").to_owned()
}
