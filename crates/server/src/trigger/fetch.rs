//! The git phase of a build: fetch the request's refs into the repository's bare mirror,
//! resolve its commit, and read what the build needs from that commit (message and author,
//! changed files, the pipeline files), holding the repository's git lock throughout.

use pipeline::SourceFile;
use store::RepoRecord;

use super::request::{BuildRequest, Ignored};
use super::{RemoteAccess, TriggerError};
use crate::state::AppState;

/// What git said about the commit a request builds.
pub(super) struct Checkout {
    /// The full commit id.
    pub(super) commit: String,
    /// The request's message, else the commit's.
    pub(super) message: String,
    /// The request's author, else the commit's.
    pub(super) author: String,
    pub(super) author_email: String,
    /// The files the commit changed, when the forge listed them or git could tell.
    pub(super) changed_files: Option<Vec<String>>,
    /// The pipeline files at the commit; empty when there are none.
    pub(super) files: Vec<SourceFile>,
}

/// What the git phase found.
pub(super) enum Fetched {
    Ready(Checkout),
    /// The commit's message asks to skip CI: nothing more was read.
    Skipped(Ignored),
}

/// Fetches `request`'s commit of `repo` through `access` and reads what its build needs.
pub(super) async fn fetch(
    state: &AppState,
    repo: &RepoRecord,
    access: &RemoteAccess,
    request: &BuildRequest,
) -> Result<Fetched, TriggerError> {
    let lock = state.git_lock(repo.id);
    let _guard = lock.lock().await;
    let mirror = forge::git::Mirror::open(&state.mirrors, &repo.id.to_string()).await?;
    // A branch or a tag: only that reference (with its history), since a remote with thousands
    // of branches costs a fetch of every one otherwise, on every build (10,000 branches: 0.9 s
    // against 0.3 s). The mirror still holds every commit a build was made of, which is what
    // changelogs read. A pull request: every branch too, so that its base is there to tell
    // which files it changes.
    let reference = request.reference.as_str();
    let single = reference.starts_with("refs/heads/") || reference.starts_with("refs/tags/");
    let every: Vec<String> = forge::git::DEFAULT_REFSPECS.iter().map(|refspec| (*refspec).to_owned()).collect();
    let mut refspecs = if single { Vec::new() } else { every.clone() };
    if !reference.is_empty() {
        refspecs.push(format!("+{reference}:{reference}"));
    }
    let refspec_refs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    if let Err(error) = mirror.fetch(&access.url, &access.git(), &refspec_refs).await {
        if !single {
            return Err(error.into());
        }
        // The branch or tag may be gone (or never was): fetched with every other one, the
        // commit is then looked for as before, and a missing reference said as such.
        tracing::debug!(repo = %repo.full_name, %reference, %error, "fetching one reference failed; fetching every branch and tag");
        let every_refs: Vec<&str> = every.iter().map(String::as_str).collect();
        mirror.fetch(&access.url, &access.git(), &every_refs).await?;
    }
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
    if let Some(skipped) = request.skip_ci(&commit, &message) {
        return Ok(Fetched::Skipped(skipped));
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
    Ok(Fetched::Ready(Checkout {
        author: request.author.clone().unwrap_or(info.author),
        author_email: request.author_email.clone().unwrap_or(info.author_email),
        commit,
        message,
        changed_files,
        files,
    }))
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
