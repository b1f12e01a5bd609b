//! Trigger context defaults read from the local git repository, when there is one.

use std::path::Path;

use pipeline::Context;

/// What git answers in `root`, when it answers.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = gitcmd::output_in(root, args).ok()?;
    let text = String::from_utf8_lossy(&output).trim_end_matches(['\n', '\r']).to_owned();
    if text.is_empty() { None } else { Some(text) }
}

/// `owner/name` from a remote URL: `https://host/owner/name.git`, `git@host:owner/name.git`.
pub(crate) fn repo_from_remote(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
    let path = match trimmed.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, path)| path)?,
        None => trimmed.split_once(':').map(|(_, path)| path)?,
    };
    let mut parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    if parts.len() < 2 {
        return None;
    }
    let name = parts.pop()?;
    let owner = parts.pop()?;
    Some(format!("{owner}/{name}"))
}

/// Web address for an https remote or an scp-like ssh remote.
fn web_url(remote: &str) -> String {
    let trimmed = remote.trim_end_matches(".git");
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return trimmed.to_owned();
    }
    if let Some(rest) = trimmed.strip_prefix("git@").or_else(|| trimmed.strip_prefix("ssh://git@"))
        && let Some((host, path)) = rest.split_once([':', '/'])
    {
        return format!("https://{host}/{path}");
    }
    String::new()
}

/// The machine's platform as `os/arch` in Go's names, which pipelines use.
pub(crate) fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// Fills a context from the repository at `root`; fields git cannot tell keep their defaults.
pub(crate) fn context_from_git(root: &Path) -> Context {
    let mut context = Context { platform: host_platform(), ..Context::default() };
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            context.instance = host.to_owned();
        }
    }
    if git(root, &["rev-parse", "--git-dir"]).is_none() {
        return context;
    }
    if let Some(sha) = git(root, &["rev-parse", "HEAD"]) {
        context.commit_sha = sha;
    }
    if let Some(branch) = git(root, &["symbolic-ref", "--short", "-q", "HEAD"]) {
        context.branch = branch;
    }
    if let Some(message) = git(root, &["log", "-1", "--format=%B"]) {
        context.commit_message = message;
    }
    if let Some(author) = git(root, &["log", "-1", "--format=%an"]) {
        context.commit_author = author;
    }
    if let Some(email) = git(root, &["log", "-1", "--format=%ae"]) {
        context.commit_author_email = email;
    }
    if let Some(remote) = git(root, &["config", "--get", "remote.origin.url"]) {
        if let Some(repo) = repo_from_remote(&remote) {
            context.repo = repo;
        }
        context.repo_url = web_url(&remote);
        context.repo_clone_url = remote;
    } else if let Some(top) = git(root, &["rev-parse", "--show-toplevel"]) {
        let name = Path::new(&top).file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        context.repo = format!("local/{name}");
        context.repo_clone_url = top;
    }
    if let Some(head) = git(root, &["symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD"]) {
        context.default_branch = head.trim_start_matches("origin/").to_owned();
    }
    // Files changed by the last commit; a root commit lists all its files.
    let changed = git(root, &["diff-tree", "--no-commit-id", "--name-only", "-r", "--root", "HEAD"]);
    context.changed_files = Some(changed.map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default());
    context
}
