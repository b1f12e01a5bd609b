//! The built-in clone step: the job's commit checked out with the git CLI into a fresh folder,
//! which the runtime then copies into the workspace (`WorkspaceSource::WorkingTree`).
//!
//! Credentials reach git only through a one-shot credential helper, which reads them from the
//! environment of the git process and answers only for the remote's own protocol and host (not
//! for a host a redirect or a submodule leads to): they are never in a command line, a file
//! (`.git/config` included: credentials written into the URL are taken out of it first), a log
//! line or an error. Credential helpers of the machine's git configuration are switched off, so
//! that nothing stores them either.
//!
//! Unless the job says a server administrator chose the remote (`allow_local`), git may use the
//! network protocols only (`GIT_ALLOW_PROTOCOL=http:https:ssh:git`): no path or `file://` on the
//! agent's machine, no remote helper, for the remote and its submodules alike.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use gitcmd::Protocols;
use pipeline::plan::CloneOptions;
use proto::agent::{CloneCredentials, LogStream};
use proto::remote::{credential_target, split_credentials};
use runtime::mask::{LineSplitter, Masker};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// What to check out.
pub(crate) struct CloneRequest<'a> {
    pub url: &'a str,
    /// The commit to check out; empty for the tip of `reference`.
    pub commit: &'a str,
    pub reference: &'a str,
    pub credentials: Option<&'a CloneCredentials>,
    /// Local paths, `file://` and remote helpers allowed (a remote a server administrator chose).
    pub allow_local: bool,
    pub options: CloneOptions,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CloneError {
    #[error("`{command}` failed with exit code {code}")]
    Failed { command: String, code: i32 },
    #[error("`{command}` was stopped by a signal")]
    Killed { command: String },
    #[error("cannot run git: {source}")]
    Spawn { source: std::io::Error },
    #[error("`{commit}` is not a commit id")]
    InvalidCommit { commit: String },
    #[error("`{reference}` is not a git reference")]
    InvalidReference { reference: String },
    #[error("cannot prepare the clone in {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
}

const USERNAME_VARIABLE: &str = "GANTRY_CLONE_USERNAME";
const PASSWORD_VARIABLE: &str = "GANTRY_CLONE_PASSWORD";
const PROTOCOL_VARIABLE: &str = "GANTRY_CLONE_PROTOCOL";
const HOST_VARIABLE: &str = "GANTRY_CLONE_HOST";

/// git's credential helper protocol (`get`, then `key=value` lines up to an empty one), answered
/// from the environment for the remote's protocol and host only; holds no secret itself.
const CREDENTIAL_SCRIPT: &str = "#!/bin/sh\ntest \"$1\" = get || exit 0\n\
while IFS= read -r line && test -n \"$line\"; do\n  case \"$line\" in\n    protocol=*) protocol=\"${line#protocol=}\" ;;\n    host=*) host=\"${line#host=}\" ;;\n  esac\ndone\n\
test \"$protocol\" = \"$GANTRY_CLONE_PROTOCOL\" && test \"$host\" = \"$GANTRY_CLONE_HOST\" || exit 0\n\
printf 'username=%s\\npassword=%s\\n' \"$GANTRY_CLONE_USERNAME\" \"$GANTRY_CLONE_PASSWORD\"\n";

/// Clones into `dir` (an empty folder), writing git's output as lines to `output` with
/// `masker`'s values (and the credentials) masked. `helper_dir` is a private folder outside
/// `dir` for the credential helper. Dropping the future kills git.
pub(crate) async fn clone(
    request: &CloneRequest<'_>,
    dir: &Path,
    helper_dir: &Path,
    masker_values: &[&str],
    output: &(dyn Fn(LogStream, String) + Sync),
) -> Result<(), CloneError> {
    if !request.commit.is_empty() && !is_commit_id(request.commit) {
        return Err(CloneError::InvalidCommit { commit: request.commit.to_owned() });
    }
    if !request.reference.is_empty() && !is_reference(request.reference) {
        return Err(CloneError::InvalidReference { reference: request.reference.to_owned() });
    }
    // Credentials an older server wrote into the URL become the clone's credentials, so that
    // the URL git stores in `.git/config` (which steps read) holds none.
    let (url, url_credentials) = split_credentials(request.url);
    let credentials = request.credentials.cloned().or(url_credentials);
    let mut secrets: Vec<&str> = masker_values.to_vec();
    if let Some(credentials) = &credentials {
        secrets.push(&credentials.password);
        // A token sent as the user name (GitHub accepts that) is as secret as a password.
        if credentials.password.is_empty() {
            secrets.push(&credentials.username);
        }
    }
    secrets.retain(|secret| !secret.is_empty());
    let helper = match credentials {
        Some(_) => Some(write_credential_helper(helper_dir)?),
        None => None,
    };
    let (protocol, host) = credential_target(&url);
    let git = Git {
        dir,
        helper: helper.as_deref(),
        credentials: credentials.as_ref(),
        protocol: &protocol,
        host: &host,
        allow_local: request.allow_local,
        masker: Masker::new(secrets),
        output,
    };

    git.run(&["init", "--quiet"], "init --quiet").await?;
    git.run(&["remote", "add", "origin", &url], &format!("remote add origin {url}")).await?;
    // No depth given: the commit alone, as CI clones do. Depth 0: the whole history.
    let depth = match request.options.depth {
        None => Some(1),
        Some(0) => None,
        Some(depth) => Some(depth),
    };
    let depth_argument = depth.map(|depth| format!("--depth={depth}"));
    let tags = if request.options.tags { "--tags" } else { "--no-tags" };
    let mut fetch: Vec<&str> = vec!["fetch", "--no-progress", tags];
    fetch.extend(depth_argument.as_deref());
    fetch.push("origin");
    if request.commit.is_empty() {
        let reference = if request.reference.is_empty() { "HEAD" } else { request.reference };
        fetch.push(reference);
        git.run(&fetch, &fetch.join(" ")).await?;
        git.run(&["checkout", "--detach", "FETCH_HEAD"], "checkout --detach FETCH_HEAD").await?;
    } else {
        fetch.push(request.commit);
        if let Err(error) = git.run(&fetch, &fetch.join(" ")).await {
            if matches!(error, CloneError::Spawn { .. }) {
                return Err(error);
            }
            // Servers that do not hand out commits by id (older git, some forges): fetch the
            // reference's whole history, which holds the commit even when the reference moved on.
            output(LogStream::Stdout, format!("fetching the commit by its id failed; fetching {} instead", shown_reference(request)));
            let refspec = if request.reference.is_empty() {
                "+refs/heads/*:refs/remotes/origin/*".to_owned()
            } else {
                format!("+{}:refs/gantry/fetched", request.reference)
            };
            let fetch_reference = ["fetch", "--no-progress", tags, "origin", refspec.as_str()];
            git.run(&fetch_reference, &fetch_reference.join(" ")).await?;
        }
        git.run(&["checkout", "--detach", request.commit], &format!("checkout --detach {}", request.commit)).await?;
    }
    if request.options.submodules {
        let mut update: Vec<&str> = vec!["submodule", "update", "--init", "--recursive"];
        update.extend(depth_argument.as_deref());
        git.run(&update, &update.join(" ")).await?;
    }
    if request.options.lfs {
        git.run(&["lfs", "pull"], "lfs pull").await?;
    }
    Ok(())
}

fn shown_reference(request: &CloneRequest<'_>) -> String {
    if request.reference.is_empty() { "every branch".to_owned() } else { request.reference.to_owned() }
}

/// Hex digits of a full or abbreviated commit id (SHA-1 or SHA-256).
fn is_commit_id(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// A reference git takes as a fetch argument, and never as an option.
fn is_reference(text: &str) -> bool {
    !text.starts_with('-') && !text.contains(':') && !text.bytes().any(|byte| byte.is_ascii_whitespace() || byte.is_ascii_control())
}

fn write_credential_helper(helper_dir: &Path) -> Result<PathBuf, CloneError> {
    let path = helper_dir.join("credential.sh");
    let folder_error = |source| CloneError::Folder { path: helper_dir.to_owned(), source };
    std::fs::write(&path, CREDENTIAL_SCRIPT).map_err(folder_error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(folder_error)?;
    Ok(path)
}

struct Git<'a> {
    dir: &'a Path,
    /// The credential helper script, when the clone has credentials.
    helper: Option<&'a Path>,
    credentials: Option<&'a CloneCredentials>,
    /// What the helper answers for.
    protocol: &'a str,
    host: &'a str,
    allow_local: bool,
    masker: Masker,
    output: &'a (dyn Fn(LogStream, String) + Sync),
}

impl Git<'_> {
    /// Runs `git <args>` in the clone folder, echoing `+ git <shown>` first and passing its
    /// output on as lines.
    async fn run(&self, args: &[&str], shown: &str) -> Result<(), CloneError> {
        let command_text = format!("git {shown}");
        (self.output)(LogStream::Stdout, format!("+ {command_text}"));
        // Any transport only for a remote an administrator chose; the network otherwise.
        let protocols = if self.allow_local { Protocols::Local } else { Protocols::NetworkOnly };
        let mut command = tokio::process::Command::from(gitcmd::git(protocols));
        command.args(["-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main"]);
        if let (Some(helper), Some(credentials)) = (self.helper, self.credentials) {
            // A quoted path: the helper's folder may hold spaces.
            let quoted = helper.display().to_string().replace('\'', "'\\''");
            command.arg("-c").arg(format!("credential.helper=!'{quoted}'"));
            command
                .env(USERNAME_VARIABLE, &credentials.username)
                .env(PASSWORD_VARIABLE, &credentials.password)
                .env(PROTOCOL_VARIABLE, self.protocol)
                .env(HOST_VARIABLE, self.host);
        }
        command
            .args(args)
            .current_dir(self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a cancelled clone kills git's helpers too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| CloneError::Spawn { source })?;
        let group = ProcessGroup(child.id());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        tokio::join!(self.forward(stdout, LogStream::Stdout), self.forward(stderr, LogStream::Stderr));
        let status = child.wait().await.map_err(|source| CloneError::Spawn { source })?;
        group.finished();
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => Err(CloneError::Failed { command: command_text, code }),
            None => Err(CloneError::Killed { command: command_text }),
        }
    }

    async fn forward(&self, pipe: Option<impl AsyncRead + Unpin>, stream: LogStream) {
        let Some(mut pipe) = pipe else { return };
        let mut splitter = LineSplitter::new(self.masker.clone());
        let mut emit = |line: &[u8]| (self.output)(stream, String::from_utf8_lossy(line).into_owned());
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => splitter.push(&buffer[..read], &mut emit),
            }
        }
        splitter.finish(&mut emit);
    }
}

/// Kills a git process's group when the clone is dropped before git ended.
struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_references_are_checked_before_they_reach_git() {
        assert!(is_commit_id("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_id("--upload-pack=evil"));
        assert!(!is_commit_id("main"));
        assert!(is_reference("refs/heads/main"));
        assert!(!is_reference("--upload-pack=touch /tmp/x"));
        assert!(!is_reference("refs/heads/a b"));
        assert!(!is_reference("+refs/heads/*:refs/x"));
    }
}
