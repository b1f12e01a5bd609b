//! The deployer's checkout of the environment repository: cloned once into its data folder,
//! fetched every poll and set exactly to the branch. The deployer also writes to it: a
//! rollback or an image update is a commit, pushed to the branch. A commit that cannot be
//! pushed yet (the repository unreachable) stays in the checkout, is reconciled from there, and
//! is replayed onto the branch and pushed once it can be; one that no longer applies (someone
//! changed the same lines meanwhile) is dropped, and the repository's version wins. A
//! commit for people to review instead goes to a branch of its own, made without touching the
//! checkout.

use std::path::{Path, PathBuf};

/// Who the deployer's own commits are by.
pub const DEPLOYER_NAME: &str = "Gantry deployer";
pub const DEPLOYER_EMAIL: &str = "deployer@gantry.invalid";

const PENDING_FILE: &str = "pending-commits";
/// The index a commit made beside the checkout is built in, inside `.git`.
const SIDE_INDEX: &str = "gantry-side-index";
/// Where a file's new text waits to become a blob, inside `.git`.
const SIDE_BLOB: &str = "gantry-side-blob";

#[derive(Debug, thiserror::Error)]
#[error("git {operation}: {message}")]
pub struct GitError {
    pub operation: &'static str,
    pub message: String,
}

/// One environment repository's branch, checked out in `path`.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub repo: String,
    pub branch: String,
    pub path: PathBuf,
    /// Lists the deployer's commits not pushed yet.
    pending: PathBuf,
}

impl Checkout {
    /// The checkout in `data/checkout`.
    pub fn new(repo: &str, branch: &str, data: &Path) -> Checkout {
        Checkout { repo: repo.to_owned(), branch: branch.to_owned(), path: data.join("checkout"), pending: data.join(PENDING_FILE) }
    }

    /// Clones once, then fetches the branch and checks it out exactly (stray files removed),
    /// replaying the deployer's unpushed commits on top; the commit checked out.
    pub async fn sync(&self) -> Result<String, GitError> {
        if !self.path.join(".git").exists() {
            let _ = tokio::fs::remove_dir_all(&self.path).await;
            let mut clone = gitcmd::git(gitcmd::Protocols::Local);
            clone.args(["clone", "--quiet", "--single-branch", "--branch", &self.branch, &self.repo]).arg(&self.path);
            run(clone, "clone").await?;
        } else {
            self.git(&["fetch", "--quiet", "origin", &self.branch], "fetch").await?;
            let pending = self.pending();
            // Nothing new and nothing of ours to replay: the checkout stays as it is.
            let heads = self.git(&["rev-parse", "HEAD", "FETCH_HEAD"], "rev-parse").await?;
            let mut lines = heads.lines();
            if pending.is_empty()
                && let (Some(head), Some(fetched)) = (lines.next(), lines.next())
                && head == fetched
            {
                return Ok(head.to_owned());
            }
            self.git(&["checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], "checkout").await?;
            self.git(&["clean", "--quiet", "-fdx"], "clean").await?;
            if !pending.is_empty() {
                let mut kept = Vec::new();
                for commit in &pending {
                    let name = format!("user.name={DEPLOYER_NAME}");
                    let email = format!("user.email={DEPLOYER_EMAIL}");
                    match self.git(&["-c", &name, "-c", &email, "cherry-pick", "--allow-empty", commit], "cherry-pick").await {
                        Ok(_) => kept.push(commit.clone()),
                        Err(error) => {
                            let _ = self.git(&["cherry-pick", "--abort"], "cherry-pick --abort").await;
                            tracing::warn!(%commit, %error, "the deployer's commit no longer applies to the branch; dropped");
                        }
                    }
                }
                if kept.is_empty() {
                    self.set_pending(&[]);
                } else {
                    self.push().await?;
                }
            }
        }
        self.head().await.ok_or_else(|| GitError { operation: "rev-parse", message: "the checkout has no commit".into() })
    }

    /// The commit checked out, if any.
    pub async fn head(&self) -> Option<String> {
        self.git(&["rev-parse", "HEAD"], "rev-parse").await.ok().map(|out| out.trim().to_owned())
    }

    /// `Name <email>` of `revision`'s author.
    pub async fn author_of(&self, revision: &str) -> String {
        self.git(&["log", "-1", "--format=%an <%ae>", revision], "log").await.map(|out| out.trim().to_owned()).unwrap_or_default()
    }

    /// The text of `path` at `revision`; `None` when it did not exist there.
    pub async fn file_at(&self, revision: &str, path: &str) -> Result<Option<String>, GitError> {
        let exists = self.git(&["cat-file", "-e", &format!("{revision}:{path}")], "cat-file").await.is_ok();
        if !exists {
            return Ok(None);
        }
        self.git(&["show", &format!("{revision}:{path}")], "show").await.map(Some)
    }

    /// Writes `files` (path → text) and commits them on the checked-out commit, by the deployer
    /// or by `person` (`Name <email>`), then pushes; a push that fails leaves the commit pending
    /// (returned either way).
    pub async fn commit_and_push(
        &self,
        files: &[(String, String)],
        message: &str,
        person: Option<(&str, &str)>,
    ) -> Result<String, GitError> {
        for (path, text) in files {
            let full = self.path.join(path);
            tokio::fs::write(&full, text).await.map_err(|error| GitError { operation: "write", message: format!("{path}: {error}") })?;
            self.git(&["add", "--", path], "add").await?;
        }
        let (name, email) = person.unwrap_or((DEPLOYER_NAME, DEPLOYER_EMAIL));
        let author = format!("{name} <{email}>");
        let identity = ["-c", &format!("user.name={name}"), "-c", &format!("user.email={email}")];
        let mut arguments: Vec<&str> = identity.to_vec();
        arguments.extend(["commit", "--quiet", "--no-verify", "--author", &author, "-m", message]);
        self.git(&arguments, "commit").await?;
        let commit = self.head().await.unwrap_or_default();
        let mut pending = self.pending();
        pending.push(commit.clone());
        self.set_pending(&pending);
        if let Err(error) = self.push().await {
            tracing::warn!(%error, %commit, "cannot push the deployer's commit yet; it is kept and pushed later");
        }
        Ok(commit)
    }

    /// The commits that changed `path`, newest first.
    pub async fn commits_touching(&self, path: &str) -> Result<Vec<String>, GitError> {
        let out = self.git(&["log", "--format=%H", "--", path], "log").await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The newest commit of the checked-out history whose message has the line `trailer`
    /// (`Gantry-Promotion: 12`), exactly.
    pub async fn commit_with_trailer(&self, trailer: &str) -> Result<Option<String>, GitError> {
        let pattern = format!("^{}$", escape_basic_regex(trailer));
        let out = self.git(&["log", "-1", "--format=%H", "--grep", &pattern, "HEAD"], "log").await?;
        Ok(out.lines().next().map(str::to_owned))
    }

    /// The commit `branch` points at in the remote repository, if it has that branch.
    pub async fn remote_branch(&self, branch: &str) -> Result<Option<String>, GitError> {
        let out = self.git(&["ls-remote", "origin", &format!("refs/heads/{branch}")], "ls-remote").await?;
        Ok(out.lines().find_map(|line| line.split_whitespace().next()).map(str::to_owned))
    }

    /// Commits `files` (path → text) on top of `base` by the deployer, without touching the
    /// checkout, its index or the branch it follows, and pushes that commit to the remote as
    /// the new branch `branch`. Nothing is kept when the push fails: the caller tries again.
    pub async fn commit_to_new_branch(
        &self,
        base: &str,
        files: &[(String, String)],
        message: &str,
        branch: &str,
    ) -> Result<String, GitError> {
        let git_dir = self.path.join(".git");
        let index = git_dir.join(SIDE_INDEX);
        let blob = git_dir.join(SIDE_BLOB);
        let _ = tokio::fs::remove_file(&index).await;
        let result = async {
            self.git_with_index(&index, &["read-tree", base], "read-tree").await?;
            for (path, text) in files {
                tokio::fs::write(&blob, text)
                    .await
                    .map_err(|error| GitError { operation: "write", message: format!("{path}: {error}") })?;
                // Filtered as `git add` would filter the file at its path.
                let blob_path = blob.to_string_lossy();
                let object = self.git(&["hash-object", "-w", &format!("--path={path}"), "--", &blob_path], "hash-object").await?;
                // The file keeps its mode (an executable stays one).
                let listed = self.git(&["ls-tree", base, "--", path], "ls-tree").await?;
                let mode = listed.split_whitespace().next().unwrap_or("100644").to_owned();
                let entry = format!("{mode},{},{path}", object.trim());
                self.git_with_index(&index, &["update-index", "--add", "--cacheinfo", &entry], "update-index").await?;
            }
            let tree = self.git_with_index(&index, &["write-tree"], "write-tree").await?;
            let name = format!("user.name={DEPLOYER_NAME}");
            let email = format!("user.email={DEPLOYER_EMAIL}");
            let commit =
                self.git(&["-c", &name, "-c", &email, "commit-tree", tree.trim(), "-p", base, "-m", message], "commit-tree").await?;
            let commit = commit.trim().to_owned();
            self.git(&["push", "--quiet", "origin", &format!("{commit}:refs/heads/{branch}")], "push").await?;
            Ok(commit)
        }
        .await;
        let _ = tokio::fs::remove_file(&index).await;
        let _ = tokio::fs::remove_file(&blob).await;
        result
    }

    /// Pushes the checked-out commit to the branch; what was pending is no longer.
    async fn push(&self) -> Result<(), GitError> {
        self.git(&["push", "--quiet", "origin", &format!("HEAD:refs/heads/{}", self.branch)], "push").await?;
        self.set_pending(&[]);
        Ok(())
    }

    /// The deployer's commits not pushed yet, oldest first.
    pub fn pending(&self) -> Vec<String> {
        std::fs::read_to_string(&self.pending).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    fn set_pending(&self, commits: &[String]) {
        let result = if commits.is_empty() {
            std::fs::remove_file(&self.pending).or(Ok(()))
        } else {
            std::fs::write(&self.pending, commits.join("\n"))
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot record the deployer's unpushed commits");
        }
    }

    async fn git(&self, arguments: &[&str], operation: &'static str) -> Result<String, GitError> {
        run(gitcmd::git_in(&self.path, arguments), operation).await
    }

    /// git with an index of its own instead of the checkout's.
    async fn git_with_index(&self, index: &Path, arguments: &[&str], operation: &'static str) -> Result<String, GitError> {
        let mut command = gitcmd::git_in(&self.path, arguments);
        command.env("GIT_INDEX_FILE", index);
        run(command, operation).await
    }
}

/// `text` matched literally by a basic regular expression (what `git log --grep` takes).
fn escape_basic_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '.' | '[' | ']' | '\\' | '*' | '^' | '$') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

async fn run(command: std::process::Command, operation: &'static str) -> Result<String, GitError> {
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .map_err(|error| GitError { operation, message: format!("git could not start: {error}") })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(GitError { operation, message: String::from_utf8_lossy(&output.stderr).trim().to_owned() })
    }
}
