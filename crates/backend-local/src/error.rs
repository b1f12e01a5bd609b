//! What can go wrong on the host, before it is turned into the runtime's `BackendError`.

use std::io;
use std::path::PathBuf;

use runtime::BackendError;

/// A failure of this backend's own work (files, git, processes). The runtime only knows
/// `BackendError`, so each lifecycle method converts with [`LocalError::during`], which keeps
/// this message and names the operation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`git {arguments}` in `{directory}` failed: {message}")]
    Git { directory: PathBuf, arguments: String, message: String },
    #[error("git is not installed on this machine; install it, or use `--workspace empty`")]
    GitMissing,
    #[error("program `{program}` of step `{step}` could not be started: {source}")]
    Spawn {
        step: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("workflow directory `{path}` already exists (run ids must be unique)")]
    DirectoryExists { path: PathBuf },
    #[error("`{path}` is not in a git repository, so it has no HEAD to check out; copy the working tree instead")]
    NotARepository { path: PathBuf },
    #[error("`{path}` is not a directory")]
    NotADirectory { path: PathBuf },
}

impl LocalError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LocalError::Io { action, path: path.into(), source }
    }

    /// Converts into the runtime's error, naming what was being done (`set up workflow `build``).
    pub(crate) fn during(self, operation: impl Into<String>) -> BackendError {
        BackendError::Operation { operation: operation.into(), message: self.to_string() }
    }
}
