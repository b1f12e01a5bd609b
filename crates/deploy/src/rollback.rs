//! `gantry env rollback APP [--to REVISION]`: a rollback by hand is a commit like any other.
//! The application's file is taken as it was at REVISION (default: the newest earlier version
//! of the file whose image differs from today's), its current holds kept, committed by the
//! person asking and pushed; the deployer deploys it like any commit.

use std::path::Path;

use crate::envgit::{Checkout, GitError};
use crate::reconcile::{ReconcileError, read_folder};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Read(#[from] ReconcileError),
    #[error("the environment repository has no application `{0}`")]
    UnknownApp(String),
    #[error("{0}")]
    Nothing(String),
}

/// What a rollback committed.
#[derive(Debug)]
pub struct RolledBack {
    pub commit: String,
    pub from: String,
    pub to: String,
    /// False when the commit is in the local clone only (the push failed).
    pub pushed: bool,
}

/// Clones `repo` into `work` (a fresh folder), commits the rollback of `app` as `person` and
/// pushes it.
pub async fn rollback(
    repo: &str,
    branch: &str,
    work: &Path,
    app: &str,
    to: Option<&str>,
    person: (&str, &str),
) -> Result<RolledBack, RollbackError> {
    let checkout = Checkout::new(repo, branch, work);
    checkout.sync().await?;
    let files = read_folder(&checkout.path)?;
    let (repository, diagnostics) = crate::read_repository(&files, &crate::ReadOptions::default());
    let Some(repository) = repository else { return Err(ReconcileError::Mistakes(diagnostics).into()) };
    let current = repository.apps.get(app).ok_or_else(|| RollbackError::UnknownApp(app.to_owned()))?;
    let current_image = current.image.to_string();
    let earlier = match to {
        Some(revision) => checkout
            .file_at(revision, &current.file)
            .await?
            .ok_or_else(|| RollbackError::Nothing(format!("{} did not exist at {revision}", current.file)))?,
        None => {
            let mut found = None;
            for commit in checkout.commits_touching(&current.file).await? {
                // Neither today's image nor one held (a version that failed) is gone back to.
                if let Some(text) = checkout.file_at(&commit, &current.file).await?
                    && image_line(&text).is_some_and(|image| image != current_image && !held(&image, &current.holds))
                {
                    found = Some(text);
                    break;
                }
            }
            found.ok_or_else(|| RollbackError::Nothing(format!("{} never ran another image than {current_image}", current.name)))?
        }
    };
    let earlier_image = image_line(&earlier).unwrap_or_default();
    let holds: Vec<(String, String)> = current.holds.iter().map(|hold| (hold.clone(), String::new())).collect();
    let text = crate::edit::set_holds(&earlier, &holds);
    let message = format!(
        "Roll back {app} to {earlier_image}\n\nRequested by hand (gantry env rollback); it ran {current_image}.\n\nGantry-Rolled-Back-From: {current_image}\n"
    );
    let commit = checkout.commit_and_push(&[(current.file.clone(), text)], &message, Some(person)).await?;
    let pushed = checkout.pending().is_empty();
    Ok(RolledBack { commit, from: current_image, to: earlier_image, pushed })
}

fn held(image: &str, holds: &[String]) -> bool {
    let Ok(parsed) = crate::read::parse_image(image) else { return false };
    holds.iter().any(|hold| Some(hold) == parsed.digest.as_ref() || Some(hold) == parsed.tag.as_ref())
}

/// The value of a file's top-level `image:` line.
fn image_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix("image:")).map(|value| {
        let value = value.split(" #").next().unwrap_or_default().trim();
        let value = value.trim_matches(['"', '\'']);
        crate::read::parse_image(value).map_or_else(|_| value.to_owned(), |image| image.to_string())
    })
}
