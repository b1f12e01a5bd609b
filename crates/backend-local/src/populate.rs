//! Filling a workflow's workspace: a copy of the working tree, a checkout of `HEAD`, or nothing.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use runtime::WorkspaceSource;
use tokio::process::Command;

use crate::error::LocalError;
use crate::files::{copy_directory_contents, copy_entry, run_blocking};

/// Puts the repository from `source` into `destination` (an existing, empty folder).
pub(crate) async fn populate(source: &WorkspaceSource, destination: &Path) -> Result<(), LocalError> {
    fs::create_dir_all(destination).map_err(|error| LocalError::io("create", destination, error))?;
    match source {
        WorkspaceSource::Empty => Ok(()),
        WorkspaceSource::WorkingTree(directory) => copy_working_tree(directory, destination).await,
        WorkspaceSource::GitHead(directory) => check_out_head(directory, destination).await,
    }
}

/// Copies what a commit of the working tree would hold right now (tracked and untracked files,
/// ignored ones left out) plus `.git`, so that steps see local changes and can still run git.
async fn copy_working_tree(directory: &Path, destination: &Path) -> Result<(), LocalError> {
    if !directory.is_dir() {
        return Err(LocalError::NotADirectory { path: directory.to_owned() });
    }
    let listed = match is_git_work_tree(directory).await {
        Ok(true) => Some(git(directory, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"]).await?),
        Ok(false) => None,
        Err(LocalError::GitMissing) => {
            // Without git the ignore rules cannot be read; a copy of everything is still right,
            // only slower (build outputs included).
            tracing::warn!(directory = %directory.display(), "git is not installed: copying every file of the working tree");
            None
        }
        Err(error) => return Err(error),
    };
    let directory = directory.to_owned();
    let destination = destination.to_owned();
    run_blocking(move || match listed {
        None => copy_directory_contents(&directory, &destination),
        Some(listed) => {
            let relative_paths =
                listed.split(|byte| *byte == 0).filter(|path| !path.is_empty()).map(|path| Path::new(OsStr::from_bytes(path)));
            for relative_path in relative_paths.chain([Path::new(".git")]) {
                let source = directory.join(relative_path);
                // A tracked file deleted in the working tree is still listed by `--cached`; it is
                // not part of what is being tested, so it is not an error.
                if fs::symlink_metadata(&source).is_err() {
                    continue;
                }
                let target = destination.join(relative_path);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|error| LocalError::io("create", parent, error))?;
                }
                copy_entry(&source, &target)?;
            }
            Ok(())
        }
    })
    .await
}

/// A clean checkout of `HEAD` with its history (`git clone --local`, detached at `HEAD`'s
/// commit), so that steps can run `git describe` or `git log` as after a CI clone.
async fn check_out_head(directory: &Path, destination: &Path) -> Result<(), LocalError> {
    if !is_git_work_tree(directory).await? {
        return Err(LocalError::NotARepository { path: directory.to_owned() });
    }
    let head = git(directory, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).await?;
    let head = String::from_utf8_lossy(&head).trim().to_owned();
    // The folder may be inside the repository; a clone needs its top level.
    let source = git(directory, &["rev-parse", "--show-toplevel"]).await?;
    let source = String::from_utf8_lossy(&source).trim().to_owned();
    let target = destination.to_string_lossy().into_owned();
    // `-C destination` keeps our own working directory out of it: `git clone` needs none.
    git(destination, &["clone", "--quiet", "--no-checkout", "--local", "--", &source, &target]).await?;
    git(destination, &["checkout", "--quiet", "--detach", &head]).await?;
    // Steps that fetch should reach the same remote a CI clone would, not the host folder.
    if let Ok(remote) = git(directory, &["remote", "get-url", "origin"]).await {
        let remote = String::from_utf8_lossy(&remote).trim().to_owned();
        git(destination, &["remote", "set-url", "origin", &remote]).await?;
    }
    Ok(())
}

async fn is_git_work_tree(directory: &Path) -> Result<bool, LocalError> {
    match git(directory, &["rev-parse", "--is-inside-work-tree"]).await {
        Ok(output) => Ok(output.trim_ascii() == b"true"),
        Err(LocalError::Git { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Runs git in `directory` and returns its standard output.
async fn git(directory: &Path, arguments: &[&str]) -> Result<Vec<u8>, LocalError> {
    let output = match Command::from(gitcmd::git_in(directory, arguments)).output().await {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(LocalError::GitMissing),
        Err(error) => return Err(LocalError::io("run git in", directory, error)),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let message = if stderr.is_empty() { format!("exit code {}", crate::process::exit_code(output.status)) } else { stderr };
        return Err(LocalError::Git { directory: directory.to_owned(), arguments: arguments.join(" "), message });
    }
    Ok(output.stdout)
}
