//! The one way Gantry starts `git`, wherever it runs it: the server's mirrors (`forge`), the
//! agent's clone, the local and Docker backends' workspaces, and `gantry exec`'s context.
//!
//! Each caller used to build its own command, and they drifted: one cleared `GIT_DIR`, another
//! did not. Here every command gets the same environment: the variables that point git at
//! another repository or run programs for it are removed, nothing prompts, no pager, no `ext::`
//! transport, no credential helper from the machine's configuration, and messages in English.
//! A command that reaches a remote someone else chose also gets `GIT_ALLOW_PROTOCOL` limited to
//! the network protocols ([`Protocols::NetworkOnly`]).
//!
//! The builder returns a `std::process::Command`; async callers convert it with
//! `tokio::process::Command::from`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The protocols git may use for remotes, submodules and redirects included.
pub const NETWORK_PROTOCOLS: &str = "http:https:ssh:git";

/// Variables of the caller's environment that must not reach git: they point it at another
/// repository, index or object store, or make it run a program (a prompt, a pager, an editor).
pub const REMOVED_VARIABLES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_EXTERNAL_DIFF",
    "GIT_PROXY_COMMAND",
    "GIT_ALLOW_PROTOCOL",
];

/// Which transports git may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    /// `http`, `https`, `ssh` and `git` only: for remotes a user or a webhook chose, so that no
    /// path, `file://` or helper transport reaches the machine's own folders.
    NetworkOnly,
    /// git's defaults (`ext::` still refused): for repositories on this machine that its own
    /// user named (`gantry exec`, a local clone into a workspace, an admin's local remote).
    Local,
}

/// `git` with the environment every caller wants (see the crate's doc), reading nothing from
/// standard input. Arguments and a working folder are the caller's to add.
pub fn git(protocols: Protocols) -> Command {
    let mut command = Command::new("git");
    for variable in REMOVED_VARIABLES {
        command.env_remove(variable);
    }
    command
        .args(["-c", "protocol.ext.allow=never", "-c", "core.askPass=", "-c", "credential.helper="])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if protocols == Protocols::NetworkOnly {
        command.env("GIT_ALLOW_PROTOCOL", NETWORK_PROTOCOLS);
    }
    command
}

/// `git -C <directory> <arguments>` on a repository of this machine.
pub fn git_in(directory: &Path, arguments: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
    let mut command = git(Protocols::Local);
    command.arg("-C").arg(directory).args(arguments);
    command
}

/// The standard output of `git -C <directory> <arguments>`, or what went wrong: git's own
/// message (its standard error, trimmed), or why it could not start.
pub fn output_in(directory: &Path, arguments: &[&str]) -> Result<Vec<u8>, GitFailure> {
    let output = git_in(directory, arguments).output().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound { GitFailure::Missing } else { GitFailure::Start(error.to_string()) }
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(GitFailure::Failed(if stderr.is_empty() { format!("git exited with {}", output.status) } else { stderr }))
}

/// Why a git command gave no output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitFailure {
    /// There is no `git` on the `PATH`.
    Missing,
    /// It could not be started.
    Start(String),
    /// It ran and failed; its message.
    Failed(String),
}

impl std::fmt::Display for GitFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitFailure::Missing => formatter.write_str("git is not installed (it is not on the PATH)"),
            GitFailure::Start(error) => write!(formatter, "git could not start: {error}"),
            GitFailure::Failed(message) => formatter.write_str(message),
        }
    }
}
