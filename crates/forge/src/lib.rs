//! Forges and git remotes: webhooks, commit statuses, and git (polling, reading files at a commit).
//!
//! - [`webhook`] verifies that a delivery came from the forge (HMAC or token, in constant time)
//!   and reads its payload into a [`webhook::Delivery`]: pure, no IO.
//! - [`status`] reports a commit's state to GitHub, Gitea/Forgejo or GitLab over their REST APIs.
//! - [`git`] talks to any git remote with the `git` command: listing refs (polling), a bare
//!   mirror per remote to read files, commits and changed paths at any commit.
//! - [`remote`] reads a remote's address as git does: network, local disk or remote helper,
//!   its host, and the credentials written into it.
//!
//! This crate knows nothing of pipelines: the server lists the files, calls the pipeline
//! crate's discovery, and reads the files it picked through [`git::Mirror`].

pub mod git;
pub mod status;
pub mod webhook;

pub use git::{Access, CommitInfo, Credentials, GitError, Mirror};
pub use status::{CommitStatus, StatusError, StatusReporter, StatusTarget};
pub use webhook::{Delivery, HookEvent, WebhookError};
