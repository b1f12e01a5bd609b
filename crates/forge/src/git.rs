//! Git remotes through the `git` command: listing a remote's branches and tags (polling), and a
//! bare mirror per remote to read files, commits and changed paths at any commit.
//!
//! Credentials reach git through a one-shot credential helper that reads them from the child's
//! environment and answers only for the remote's own protocol and host (not for a host a
//! redirect leads to): they are never on a command line, in a file or in an error. Git never
//! prompts.
//!
//! Unless the caller says the remote was chosen by a server administrator ([`Access::local`]),
//! git may use the network protocols only (`GIT_ALLOW_PROTOCOL=http:https:ssh:git`): no local
//! path, `file://` or remote helper, whatever the address looks like.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gitcmd::Protocols;
use proto::remote::redact_credentials;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A user name and password (or token) for an http(s) remote, as the agent protocol carries
/// them too. Ignored by ssh remotes, which use the server's ssh setup.
pub use proto::agent::CloneCredentials as Credentials;

/// A git command that failed: what it did, on which remote (credentials removed) and what git
/// said (credentials masked).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("git {operation} failed for {url}: {stderr}")]
pub struct GitError {
    /// What was attempted: `ls-remote`, `fetch`, `resolve main`, `read file .woodpecker.yml`…
    pub operation: String,
    /// The remote, or [`MIRROR`] for operations on the mirror alone (its folder is the server's
    /// business: it never appears in an error).
    pub url: String,
    /// Git's own explanation, trimmed.
    pub stderr: String,
}

/// A commit as git records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    /// The full message, without the trailing newline.
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub parents: Vec<String>,
    /// When it was committed (the committer's time, Unix seconds): when the change existed as
    /// this commit, where lead times for changes start.
    pub committed: i64,
}

/// What [`GitError::url`] says for operations on a mirror alone.
pub const MIRROR: &str = "the mirror";

/// How git may reach a remote: with which credentials, and whether beyond the network.
#[derive(Clone, Copy, Debug, Default)]
pub struct Access<'a> {
    pub credentials: Option<&'a Credentials>,
    /// Local paths, `file://` and remote helpers allowed: for remotes a server administrator
    /// chose. Otherwise git runs with `GIT_ALLOW_PROTOCOL=http:https:ssh:git`.
    pub local: bool,
    /// The addresses an http(s) remote's host name was checked to resolve to: git connects to
    /// these (curl's resolve list), so the name cannot resolve elsewhere between the check and
    /// the fetch. Empty: git resolves the name itself.
    pub pinned: &'a [std::net::SocketAddr],
}

impl<'a> Access<'a> {
    /// The network protocols only, with `credentials` if any.
    pub fn network(credentials: Option<&'a Credentials>) -> Access<'a> {
        Access { credentials, local: false, pinned: &[] }
    }

    /// Any transport git knows (a remote a server administrator chose).
    pub fn local(credentials: Option<&'a Credentials>) -> Access<'a> {
        Access { credentials, local: true, pinned: &[] }
    }
}

/// The protocols git may use for remotes nobody trusted with the server's disk.
pub use gitcmd::NETWORK_PROTOCOLS;

/// Network operations that take longer are stopped: a remote that stalls must not hold a
/// poller forever. Git's own low-speed limit catches most stalls earlier.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(600);
const LOCAL_TIMEOUT: Duration = Duration::from_secs(120);

/// The branches and tags of a remote: `refs/heads/*` and `refs/tags/*` to commit ids. Annotated
/// tags map to the commit they point at (git's peeled `^{}` entry), not the tag object.
pub async fn ls_remote(url: &str, access: &Access<'_>) -> Result<BTreeMap<String, String>, GitError> {
    let remote = Remote::new(url, access, "ls-remote")?;
    let mut command = remote.command(None);
    command.args(["ls-remote", "--", url]);
    let output = remote.run(command, None, NETWORK_TIMEOUT).await?;
    let text = String::from_utf8_lossy(&output);
    let mut refs = BTreeMap::new();
    let mut peeled = BTreeMap::new();
    for line in text.lines() {
        let Some((sha, name)) = line.split_once('\t') else { continue };
        if !(name.starts_with("refs/heads/") || name.starts_with("refs/tags/")) {
            continue;
        }
        match name.strip_suffix("^{}") {
            Some(tag) => peeled.insert(tag.to_owned(), sha.to_owned()),
            None => refs.insert(name.to_owned(), sha.to_owned()),
        };
    }
    refs.extend(peeled);
    Ok(refs)
}

/// A bare repository caching one remote's objects, under a folder the caller owns. Fetches into
/// the same mirror must not run at once (git locks refs and one of them fails): the caller
/// serializes them per mirror. Reads may run alongside anything.
#[derive(Clone, Debug)]
pub struct Mirror {
    dir: PathBuf,
}

/// What a mirror fetches when the caller names nothing: every branch and tag, pruning those
/// the remote no longer has.
pub const DEFAULT_REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

impl Mirror {
    /// Opens the mirror named `key` under `cache_root`, creating it (and the root) if needed.
    /// `key` is any text (a repository id, a URL); each key gets its own directory, named by an
    /// HMAC of the key with a random secret kept in the cache root (see [`Mirror::folder`]).
    pub async fn open(cache_root: &Path, key: &str) -> Result<Mirror, GitError> {
        let init_error = |error: std::io::Error| GitError { operation: "init".into(), url: MIRROR.into(), stderr: error.to_string() };
        let dir = Mirror::folder(cache_root, key).await.map_err(init_error)?;
        let mirror = Mirror { dir };
        if mirror.dir.join("HEAD").exists() {
            return Ok(mirror);
        }
        let mut command = base_command(Protocols::Local);
        command.arg("init").arg("--bare").arg("--quiet").arg(&mirror.dir);
        mirror.run_local("init", command, None).await?;
        Ok(mirror)
    }

    /// The folder of the mirror named `key` (whether or not it exists): the cache root's secret
    /// (made on first use, 0600; the root 0700) and an HMAC of the key. Whoever knows a key, a
    /// repository's id, cannot name its mirror's folder without the secret.
    pub async fn folder(cache_root: &Path, key: &str) -> Result<PathBuf, std::io::Error> {
        let root = cache_root.to_owned();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let secret = cache_secret(&root)?;
            Ok(root.join(format!("{}.git", directory_name(&secret, &key))))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches `refspecs` (or [`DEFAULT_REFSPECS`] when empty) from `url`, forcing and pruning
    /// the references they name. A pull request's head: `+refs/pull/7/head:refs/pull/7/head`
    /// (GitHub, Gitea) or `+refs/merge-requests/7/head:refs/merge-requests/7/head` (GitLab).
    pub async fn fetch(&self, url: &str, access: &Access<'_>, refspecs: &[&str]) -> Result<(), GitError> {
        let remote = Remote::new(url, access, "fetch")?;
        let mut command = remote.command(Some(&self.dir));
        command.args(["fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--", url]);
        command.args(if refspecs.is_empty() { &DEFAULT_REFSPECS[..] } else { refspecs });
        remote.run(command, None, NETWORK_TIMEOUT).await.map(drop)
    }

    /// The commit `rev` names: a full or short id, `refs/heads/main`, `main`, a tag (peeled).
    pub async fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let operation = format!("resolve {rev}");
        let mut command = self.git();
        command.args(["rev-parse", "--verify", "--quiet", "--end-of-options"]).arg(format!("{rev}^{{commit}}"));
        match self.run_local(&operation, command, None).await {
            Ok(output) => Ok(String::from_utf8_lossy(&output).trim().to_owned()),
            Err(mut error) => {
                // `--quiet` leaves an unknown name without a word of explanation.
                if error.stderr.starts_with("git exited with") {
                    error.stderr = format!("no commit named '{rev}' in the mirror; fetch it first");
                }
                Err(error)
            }
        }
    }

    /// The names of the files (not folders, links or submodules) directly in folder `path` at
    /// `commit`, sorted; `""` is the root. Empty when the folder does not exist.
    pub async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<String>, GitError> {
        let path = clean_path(path);
        let mut command = self.git();
        command.env("GIT_LITERAL_PATHSPECS", "1");
        command.args(["ls-tree", "-z", "--end-of-options"]).arg(format!("{commit}^{{tree}}"));
        if !path.is_empty() {
            command.arg("--").arg(format!("{path}/"));
        }
        let output = self.run_local(&format!("list {path:?} at {commit}"), command, None).await?;
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        let mut names: Vec<String> = output
            .split(|byte| *byte == 0)
            .filter_map(|entry| {
                // "<mode> <type> <object>\t<path>"
                let entry = std::str::from_utf8(entry).ok()?;
                let (meta, entry_path) = entry.split_once('\t')?;
                let mode = meta.split(' ').next()?;
                (mode == "100644" || mode == "100755").then(|| entry_path.strip_prefix(&prefix).unwrap_or(entry_path).to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// The bytes of file `path` at `commit`; `None` when there is no such file (or it is a
    /// folder). An unknown commit is an error.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let path = clean_path(path);
        let operation = format!("read {path} at {commit}");
        if commit.contains(['\n', '\r']) || path.contains(['\n', '\r']) {
            return Err(self.error(&operation, "a commit or path holds a line break".to_owned()));
        }
        // One process answers both questions: does the commit exist, and what is at the path.
        let mut command = self.git();
        command.args(["cat-file", "--batch"]);
        let input = format!("{commit}^{{commit}}\n{commit}:{path}\n");
        let output = self.run_local(&operation, command, Some(input.into_bytes())).await?;
        let (commit_header, rest) = split_line(&output);
        if commit_header.ends_with(b" missing") || commit_header.ends_with(b" ambiguous") {
            return Err(self.error(&operation, format!("no commit named '{commit}' in the mirror; fetch it first")));
        }
        let rest = skip_object(commit_header, rest).ok_or_else(|| self.error(&operation, "unexpected cat-file output".to_owned()))?;
        let (file_header, contents) = split_line(rest);
        let header = String::from_utf8_lossy(file_header);
        let mut words = header.split(' ');
        let (_object, kind, size) = (words.next(), words.next(), words.next().and_then(|size| size.parse::<usize>().ok()));
        match (kind, size) {
            (Some("blob"), Some(size)) if contents.len() > size => Ok(Some(contents[..size].to_vec())),
            (Some("blob"), _) => Err(self.error(&operation, "cat-file output ended early".to_owned())),
            _ => Ok(None),
        }
    }

    pub async fn commit_info(&self, commit: &str) -> Result<CommitInfo, GitError> {
        let operation = format!("read commit {commit}");
        let mut command = self.git();
        command.args(["log", "--no-walk", LOG_FORMAT, "--end-of-options", commit, "--"]);
        let output = self.run_local(&operation, command, None).await?;
        parse_log(&output).into_iter().next().ok_or_else(|| self.error(&operation, "git printed no commit".to_owned()))
    }

    /// Paths that differ between commits `from` and `to`, sorted. Renames count as a deletion
    /// and an addition so that both paths show, as path conditions expect.
    pub async fn changed_files(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let mut command = self.git();
        command.args(["diff", "--name-only", "--no-renames", "-z", "--end-of-options", from, to, "--"]);
        let output = self.run_local(&format!("diff {from} {to}"), command, None).await?;
        let mut paths: Vec<String> = output
            .split(|byte| *byte == 0)
            .filter(|path| !path.is_empty())
            .map(|path| String::from_utf8_lossy(path).into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// The commits reachable from `to` but not from `from` (all of `to`'s history when `from`
    /// is `None`), newest first, at most `limit`.
    pub async fn commits_between(&self, from: Option<&str>, to: &str, limit: usize) -> Result<Vec<CommitInfo>, GitError> {
        let range = match from {
            Some(from) => format!("{from}..{to}"),
            None => to.to_owned(),
        };
        let mut command = self.git();
        command.args(["log", LOG_FORMAT]).arg(format!("--max-count={limit}")).args(["--end-of-options", &range, "--"]);
        let output = self.run_local(&format!("log {range}"), command, None).await?;
        Ok(parse_log(&output))
    }

    fn git(&self) -> Command {
        // The mirror is on the server's disk and is only read or written here: no remote.
        let mut command = base_command(Protocols::Local);
        command.arg("--git-dir").arg(&self.dir);
        command
    }

    async fn run_local(&self, operation: &str, command: Command, input: Option<Vec<u8>>) -> Result<Vec<u8>, GitError> {
        run(command, input, LOCAL_TIMEOUT).await.map_err(|stderr| self.error(operation, stderr))
    }

    fn error(&self, operation: &str, stderr: String) -> GitError {
        let stderr = stderr.replace(&self.dir.display().to_string(), MIRROR);
        GitError { operation: operation.to_owned(), url: MIRROR.to_owned(), stderr }
    }
}

/// `%H` id, `%P` parents, `%an` `%ae` author, `%ct` committer time, `%B` raw message, each
/// ended by NUL: no message holds a NUL, so the fields split cleanly however odd the message.
const LOG_FORMAT: &str = "--format=%H%x00%P%x00%an%x00%ae%x00%ct%x00%B%x00";

fn parse_log(output: &[u8]) -> Vec<CommitInfo> {
    let text = String::from_utf8_lossy(output);
    let fields: Vec<&str> = text.split('\0').collect();
    fields
        .chunks_exact(6)
        .map(|commit| CommitInfo {
            // Every record after the first starts with the newline that ended the one before.
            sha: commit[0].trim_start_matches('\n').to_owned(),
            parents: commit[1].split_whitespace().map(str::to_owned).collect(),
            author: commit[2].to_owned(),
            author_email: commit[3].to_owned(),
            committed: commit[4].parse().unwrap_or_default(),
            message: commit[5].trim_end_matches('\n').to_owned(),
        })
        .collect()
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|byte| *byte == b'\n') {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

/// Skips the contents (and the newline after them) of the object `header` announced.
fn skip_object<'a>(header: &[u8], rest: &'a [u8]) -> Option<&'a [u8]> {
    let size: usize = std::str::from_utf8(header).ok()?.rsplit(' ').next()?.parse().ok()?;
    rest.get(size + 1..)
}

/// Folder paths as git names them: no leading `./` or `/`, no trailing `/`.
fn clean_path(path: &str) -> &str {
    let mut path = path.trim_matches('/');
    while let Some(rest) = path.strip_prefix("./") {
        path = rest.trim_start_matches('/');
    }
    if path == "." { "" } else { path }
}

/// A directory name that cannot leave the cache root and that nobody can compute from the key
/// alone: the HMAC of the key under the cache's secret.
fn directory_name(secret: &[u8], key: &str) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"gantry-mirror:");
    mac.update(key.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..20])
}

const CACHE_SECRET_FILE: &str = "mirror-names.key";

/// The cache root's secret, made (with the root) on first use. Two processes starting at once
/// agree: the secret is written aside and linked into place, and the loser reads the winner's.
fn cache_secret(root: &Path) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let path = root.join(CACHE_SECRET_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return hex::decode(text.trim()).map_err(|_| std::io::Error::other(format!("{CACHE_SECRET_FILE} is not hex")));
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root)?;
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    let aside = root.join(format!(".{CACHE_SECRET_FILE}.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&aside)?;
    file.write_all(hex::encode(secret).as_bytes())?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&aside, &path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(secret.to_vec()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)?;
            hex::decode(text.trim()).map_err(|_| std::io::Error::other(format!("{CACHE_SECRET_FILE} is not hex")))
        }
        Err(error) => Err(error),
    }
}

/// A remote and how to talk to it without leaking its credentials.
struct Remote<'a> {
    operation: &'static str,
    /// The URL without credentials, for errors.
    display_url: String,
    credentials: Option<&'a Credentials>,
    local: bool,
    /// `protocol` and `host` as git's credential protocol names the remote: the helper answers
    /// for these alone.
    credential_protocol: String,
    credential_host: String,
    /// `HOST:PORT:ADDRESS[,ADDRESS]` for curl, when the access pins the host's addresses.
    resolve: Option<String>,
    /// Passwords and tokens to mask in what git prints.
    secrets: Vec<String>,
}

impl<'a> Remote<'a> {
    fn new(url: &str, access: &Access<'a>, operation: &'static str) -> Result<Remote<'a>, GitError> {
        let credentials = access.credentials;
        let mut secrets: Vec<String> = url_password(url).into_iter().collect();
        if let Some(credentials) = credentials {
            secrets.push(credentials.password.clone());
            // A token sent as the user name (GitHub accepts that) is as secret as a password.
            if credentials.password.is_empty() {
                secrets.push(credentials.username.clone());
            }
        }
        secrets.retain(|secret| !secret.is_empty());
        let (credential_protocol, credential_host) = proto::remote::credential_target(url);
        let remote = Remote {
            operation,
            display_url: redact_credentials(url),
            credentials,
            local: access.local,
            credential_protocol,
            credential_host,
            resolve: curl_resolve(url, access.pinned),
            secrets,
        };
        if url.starts_with('-') {
            return Err(remote.error("a remote URL cannot start with '-'".to_owned()));
        }
        match proto::remote::classify(url) {
            Err(error) => return Err(remote.error(error.reason)),
            Ok(proto::remote::RemoteKind::Network(_)) => {}
            Ok(_) if access.local => {}
            Ok(_) => {
                return Err(remote.error("a local path, file:// or a remote helper is for remotes a server administrator chose".into()));
            }
        }
        if credentials
            .is_some_and(|credentials| [&credentials.username, &credentials.password].iter().any(|text| text.contains(['\n', '\r', '\0'])))
        {
            return Err(remote.error("the credentials hold a line break".to_owned()));
        }
        Ok(remote)
    }

    fn command(&self, git_dir: Option<&Path>) -> Command {
        // Submodules, redirects and odd addresses included: nothing but the network, unless an
        // administrator chose the remote.
        let mut command = base_command(if self.local { Protocols::Local } else { Protocols::NetworkOnly });
        if let Some(git_dir) = git_dir {
            command.arg("--git-dir").arg(git_dir);
        }
        // Give up on a remote sending less than 1 KiB/s for a minute.
        command.env("GIT_HTTP_LOW_SPEED_LIMIT", "1024").env("GIT_HTTP_LOW_SPEED_TIME", "60");
        if std::env::var_os("GIT_SSH_COMMAND").is_none() {
            command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        if let Some(resolve) = &self.resolve {
            command.arg("-c").arg(format!("http.curloptResolve={resolve}"));
        }
        // Helpers of the server's own git configuration are dropped (`gitcmd` does): they
        // would store these credentials, or answer with someone else's.
        if let Some(credentials) = self.credentials {
            // The helper is shell text naming variables; their values live only in the
            // environment of git and its children. It answers only when git asks for the
            // remote's own protocol and host: a redirect to another host gets nothing.
            command.args(["-c", CREDENTIAL_HELPER]);
            command
                .env("GANTRY_GIT_USERNAME", &credentials.username)
                .env("GANTRY_GIT_PASSWORD", &credentials.password)
                .env("GANTRY_GIT_PROTOCOL", &self.credential_protocol)
                .env("GANTRY_GIT_HOST", &self.credential_host);
        }
        command
    }

    async fn run(&self, command: Command, input: Option<Vec<u8>>, timeout: Duration) -> Result<Vec<u8>, GitError> {
        run(command, input, timeout).await.map_err(|stderr| self.error(stderr))
    }

    fn error(&self, stderr: String) -> GitError {
        let mut stderr = redact_credentials(&stderr);
        for secret in &self.secrets {
            stderr = stderr.replace(secret.as_str(), "***");
        }
        GitError { operation: self.operation.to_owned(), url: self.display_url.clone(), stderr }
    }
}

/// git's credential helper protocol: `get`, then `key=value` lines ending with an empty line.
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; \
    while IFS= read -r line && test -n \"$line\"; do case \"$line\" in \
    protocol=*) protocol=\"${line#protocol=}\" ;; host=*) host=\"${line#host=}\" ;; esac; done; \
    test \"$protocol\" = \"$GANTRY_GIT_PROTOCOL\" && test \"$host\" = \"$GANTRY_GIT_HOST\" || exit 0; \
    printf 'username=%s\\npassword=%s\\n' \"$GANTRY_GIT_USERNAME\" \"$GANTRY_GIT_PASSWORD\"; }; f";

/// curl's `HOST:PORT:ADDRESS[,ADDRESS]` for an http(s) URL whose host is a name, from the
/// addresses it was checked to resolve to.
fn curl_resolve(url: &str, pinned: &[std::net::SocketAddr]) -> Option<String> {
    use proto::remote::{RemoteKind, Scheme, classify};
    let Ok(RemoteKind::Network(remote)) = classify(url) else { return None };
    let is_name = remote.host.parse::<std::net::IpAddr>().is_err();
    if pinned.is_empty() || !is_name || !matches!(remote.scheme, Scheme::Http | Scheme::Https) {
        return None;
    }
    let addresses: Vec<String> = pinned
        .iter()
        .map(|address| match address.ip() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    Some(format!("{}:{}:{}", remote.host, remote.port_or_default(), addresses.join(",")))
}

/// `git` as `gitcmd` builds it (a cleaned environment, no prompts, no `ext::`), its output
/// read by this module, killed when dropped.
fn base_command(protocols: Protocols) -> Command {
    let mut command = Command::from(gitcmd::git(protocols));
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command
}

/// Runs git; stdout on success, stderr (or what went wrong) otherwise.
async fn run(mut command: Command, input: Option<Vec<u8>>, timeout: Duration) -> Result<Vec<u8>, String> {
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().map_err(|error| format!("could not start git: {error}"))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Written while the output is read below, so a large answer cannot deadlock the pipe.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(result) => result.map_err(|error| format!("could not run git: {error}"))?,
        Err(_) => return Err(format!("stopped after {} seconds", timeout.as_secs())),
    };
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(if stderr.is_empty() { format!("git exited with {}", output.status) } else { stderr })
    }
}

/// The password in a URL's user information, if any.
fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password.to_owned())
}
