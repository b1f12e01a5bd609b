//! The long-running deployer: the environment repository cloned into its data folder and
//! fetched every poll (with jitter, so that many deployers do not fetch in step), then one
//! reconcile. When the repository cannot be reached, the last fetched commit is reconciled
//! again: what runs stays the last known good state, and drift is still healed. A commit with
//! mistakes is not applied; the deployer says so and waits for the next one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::reconcile::{ReconcileError, ReconcileOptions, Revision, prepare};

pub struct RunOptions {
    /// Where the repository is cloned from: any URL git takes, chosen by whoever runs the
    /// deployer (a path or `file://` included).
    pub repo: String,
    pub branch: String,
    /// The deployer's own folder: the checkout lives in `checkout/`.
    pub data: PathBuf,
    pub poll: Duration,
    pub docker_host: Option<String>,
}

/// Reconciles until `stop` is cancelled.
pub async fn run(options: &RunOptions, stop: CancellationToken) {
    let checkout = options.data.join("checkout");
    loop {
        let revision = match sync(&options.repo, &options.branch, &checkout).await {
            Ok(revision) => Some(revision),
            Err(error) => {
                tracing::warn!(repo = %options.repo, %error, "cannot fetch the environment repository; keeping the last known good state");
                current_revision(&checkout).await
            }
        };
        if let Some(revision) = revision {
            reconcile(&checkout, &revision, options.docker_host.as_deref()).await;
        }
        let jitter = options.poll.mul_f64(0.1 * pseudo_random());
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(options.poll + jitter) => {}
        }
    }
}

async fn reconcile(checkout: &Path, revision: &str, docker_host: Option<&str>) {
    let options = ReconcileOptions { docker_host, ..ReconcileOptions::default() };
    match prepare(checkout, &options).await {
        Ok(prepared) if prepared.changes.is_empty() => tracing::debug!(%revision, "nothing to do"),
        Ok(prepared) => {
            tracing::info!(%revision, changes = prepared.changes.len(), "reconciling");
            prepared.apply(&Revision { id: revision.to_owned(), author: String::new() }, None).await;
        }
        Err(ReconcileError::Mistakes(diagnostics)) => {
            let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
            let first = diagnostics
                .iter()
                .find(|diagnostic| diagnostic.is_error())
                .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message));
            tracing::error!(%revision, errors, first = first.unwrap_or_default(), "the environment repository has mistakes; nothing is applied");
        }
        Err(error) => tracing::error!(%revision, %error, "reconcile failed"),
    }
}

/// Clones once, then fetches `branch` and checks it out exactly (local changes and stray files
/// removed); the commit.
async fn sync(repo: &str, branch: &str, checkout: &Path) -> Result<String, String> {
    if !checkout.join(".git").exists() {
        let _ = tokio::fs::remove_dir_all(checkout).await;
        let mut clone = gitcmd::git(gitcmd::Protocols::Local);
        clone.args(["clone", "--quiet", "--single-branch", "--branch", branch, repo]).arg(checkout);
        run_git(clone).await?;
    } else {
        run_git(gitcmd::git_in(checkout, ["fetch", "--quiet", "origin", branch])).await?;
        run_git(gitcmd::git_in(checkout, ["checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"])).await?;
        run_git(gitcmd::git_in(checkout, ["clean", "--quiet", "-fdx"])).await?;
    }
    current_revision(checkout).await.ok_or_else(|| "the checkout has no commit".to_owned())
}

async fn current_revision(checkout: &Path) -> Option<String> {
    let output = tokio::process::Command::from(gitcmd::git_in(checkout, ["rev-parse", "HEAD"])).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn run_git(command: std::process::Command) -> Result<(), String> {
    let output = tokio::process::Command::from(command).output().await.map_err(|error| format!("git could not start: {error}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()) }
}

/// A number in [0, 1) that differs between processes and calls; jitter needs no better.
fn pseudo_random() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    f64::from((nanos ^ std::process::id()) % 1000) / 1000.0
}
