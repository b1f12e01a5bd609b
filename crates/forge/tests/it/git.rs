//! Git: real repositories in temporary folders, pushed to a bare "remote" over file://; one
//! HTTP double on 127.0.0.1 for credentials.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use forge::git::{self, Access, CommitInfo, Credentials, Mirror};

/// A working repository and the bare remote it pushes to.
struct Upstream {
    temp: tempfile::TempDir,
    work: PathBuf,
    remote: PathBuf,
}

impl Upstream {
    fn new() -> Upstream {
        let temp = tempfile::tempdir().unwrap();
        let work = temp.path().join("work");
        let remote = temp.path().join("remote.git");
        run_git(temp.path(), &["init", "--quiet", "--bare", "-b", "main", remote.to_str().unwrap()]);
        run_git(temp.path(), &["init", "--quiet", "-b", "main", work.to_str().unwrap()]);
        Upstream { temp, work, remote }
    }

    fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    fn git(&self, args: &[&str]) -> String {
        run_git(&self.work, args)
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.work.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn push(&self, refspecs: &[&str]) {
        let mut args = vec!["push", "--quiet", "--force", self.remote.to_str().unwrap()];
        args.extend(refspecs);
        self.git(&args);
    }

    fn cache(&self) -> PathBuf {
        self.temp.path().join("cache")
    }
}

fn run_git(directory: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(directory)
        .args(["-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", "-c", "tag.gpgSign=false", "-c", "commit.gpgSign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A repository with a pipeline folder, a root file, a sub-folder and history:
/// `first` (README, .woodpecker.yml), `second` (pipeline folder, src/, a rename).
struct History {
    upstream: Upstream,
    first: String,
    second: String,
}

fn history() -> History {
    let upstream = Upstream::new();
    upstream.write("README.md", "# app\n");
    upstream.write("old-name.txt", "moved\n");
    upstream.write(".woodpecker.yml", "steps:\n  - name: test\n    image: alpine\n");
    let first = upstream.commit("first");
    upstream.write(".woodpecker/build.yml", "steps:\n  build:\n    image: alpine\n");
    upstream.write(".woodpecker/test.yaml", "steps:\n  test:\n    image: alpine\n");
    upstream.write(".woodpecker/notes.txt", "not a pipeline\n");
    upstream.write("src/main.rs", "fn main() {}\n");
    upstream.git(&["mv", "old-name.txt", "new-name.txt"]);
    let second = upstream.commit("second\n\nwith a body line");
    upstream.push(&["main"]);
    History { upstream, first, second }
}

#[tokio::test]
async fn ls_remote_lists_branches_and_tags_peeling_annotated_ones() {
    let History { upstream, first, second } = history();
    upstream.git(&["branch", "feature", &first]);
    upstream.git(&["tag", "v1", &first]);
    upstream.git(&["tag", "-a", "-m", "release 2", "v2", &second]);
    upstream.push(&["main", "feature", "--tags"]);
    let tag_object = upstream.git(&["rev-parse", "v2"]);
    assert_ne!(tag_object, second, "v2 is an annotated tag object");

    let refs = git::ls_remote(&upstream.url(), &Access::local(None)).await.unwrap();
    let expected: Vec<(&str, &str)> =
        vec![("refs/heads/feature", &first), ("refs/heads/main", &second), ("refs/tags/v1", &first), ("refs/tags/v2", &second)];
    assert_eq!(refs.iter().map(|(name, sha)| (name.as_str(), sha.as_str())).collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn a_mirror_fetches_resolves_and_reads_files_at_a_commit() {
    let History { upstream, first, second } = history();
    let mirror = Mirror::open(&upstream.cache(), "repo-1").await.unwrap();
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();

    assert_eq!(mirror.resolve("main").await.unwrap(), second);
    assert_eq!(mirror.resolve("refs/heads/main").await.unwrap(), second);
    assert_eq!(mirror.resolve(&second[..10]).await.unwrap(), second);
    assert_eq!(mirror.resolve("main~1").await.unwrap(), first);

    assert_eq!(mirror.list_dir(&second, "").await.unwrap(), [".woodpecker.yml", "README.md", "new-name.txt"]);
    assert_eq!(mirror.list_dir(&second, ".woodpecker").await.unwrap(), ["build.yml", "notes.txt", "test.yaml"]);
    assert_eq!(mirror.list_dir(&second, "./.woodpecker/").await.unwrap(), ["build.yml", "notes.txt", "test.yaml"]);
    assert!(mirror.list_dir(&first, ".woodpecker").await.unwrap().is_empty(), "no folder yet at the first commit");
    assert!(mirror.list_dir(&second, "README.md").await.unwrap().is_empty(), "a file is no folder");

    let pipeline = mirror.read_file(&second, ".woodpecker/build.yml").await.unwrap();
    assert_eq!(pipeline.as_deref(), Some(&b"steps:\n  build:\n    image: alpine\n"[..]));
    assert_eq!(mirror.read_file(&first, "README.md").await.unwrap().as_deref(), Some(&b"# app\n"[..]));
    assert_eq!(mirror.read_file(&first, ".woodpecker/build.yml").await.unwrap(), None, "not there yet");
    assert_eq!(mirror.read_file(&second, ".woodpecker").await.unwrap(), None, "a folder is no file");
    assert_eq!(mirror.read_file(&second, "missing.yml").await.unwrap(), None);

    // Reopening finds the same cache.
    let again = Mirror::open(&upstream.cache(), "repo-1").await.unwrap();
    assert_eq!(again.dir(), mirror.dir());
    assert_eq!(again.resolve("main").await.unwrap(), second);
}

#[tokio::test]
async fn binary_files_and_empty_files_read_back_exactly() {
    let upstream = Upstream::new();
    let bytes: Vec<u8> = (0..=255u8).chain([b'\n', 0, b'\n']).collect();
    std::fs::write(upstream.work.join("blob.bin"), &bytes).unwrap();
    std::fs::write(upstream.work.join("empty"), b"").unwrap();
    let commit = upstream.commit("binary");
    upstream.push(&["main"]);
    let mirror = Mirror::open(&upstream.cache(), "binary").await.unwrap();
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();
    assert_eq!(mirror.read_file(&commit, "blob.bin").await.unwrap(), Some(bytes));
    assert_eq!(mirror.read_file(&commit, "empty").await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
async fn commits_and_changed_files_between_two_commits() {
    let History { upstream, first, second } = history();
    upstream.write("README.md", "# app\n\nmore\n");
    let third = upstream.commit("third");
    upstream.push(&["main"]);
    let mirror = Mirror::open(&upstream.cache(), "history").await.unwrap();
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();

    assert_eq!(
        mirror.changed_files(&first, &second).await.unwrap(),
        [".woodpecker/build.yml", ".woodpecker/notes.txt", ".woodpecker/test.yaml", "new-name.txt", "old-name.txt", "src/main.rs"],
        "a rename shows both paths"
    );
    assert_eq!(mirror.changed_files(&second, &third).await.unwrap(), ["README.md"]);
    assert!(mirror.changed_files(&third, &third).await.unwrap().is_empty());

    let info = mirror.commit_info(&second).await.unwrap();
    assert_eq!(
        info,
        CommitInfo {
            sha: second.clone(),
            message: "second\n\nwith a body line".into(),
            author: "Ada Lovelace".into(),
            author_email: "ada@example.com".into(),
            parents: vec![first.clone()],
            committed: info.committed,
        }
    );
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    assert!((now - 600..=now).contains(&info.committed), "committed just now: {}", info.committed);
    assert!(mirror.commit_info(&first).await.unwrap().parents.is_empty());

    let between = mirror.commits_between(Some(&first), &third, 10).await.unwrap();
    assert_eq!(between.iter().map(|commit| commit.sha.as_str()).collect::<Vec<_>>(), [third.as_str(), second.as_str()]);
    assert_eq!(between[1].message, "second\n\nwith a body line");
    let all = mirror.commits_between(None, &third, 10).await.unwrap();
    assert_eq!(all.iter().map(|commit| commit.message.as_str()).collect::<Vec<_>>(), ["third", "second\n\nwith a body line", "first"]);
    assert_eq!(mirror.commits_between(None, &third, 2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn fetching_prunes_deleted_branches_and_takes_pull_request_heads() {
    let History { upstream, first, .. } = history();
    upstream.git(&["branch", "feature", &first]);
    upstream.push(&["main", "feature"]);
    let mirror = Mirror::open(&upstream.cache(), "prune").await.unwrap();
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();
    assert_eq!(mirror.resolve("feature").await.unwrap(), first);

    upstream.push(&[":feature"]);
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();
    let gone = mirror.resolve("feature").await.unwrap_err();
    assert_eq!(gone.operation, "resolve feature");
    assert_eq!(gone.stderr, "no commit named 'feature' in the mirror; fetch it first");

    // What a forge keeps for a pull request's head (GitHub and Gitea: refs/pull/N/head).
    upstream.write("fix.txt", "fix\n");
    let head = upstream.commit("fix from a contributor");
    upstream.push(&["HEAD:refs/pull/7/head"]);
    mirror.fetch(&upstream.url(), &Access::local(None), &["+refs/pull/7/head:refs/pull/7/head"]).await.unwrap();
    assert_eq!(mirror.resolve("refs/pull/7/head").await.unwrap(), head);
    assert_eq!(mirror.resolve("main").await.unwrap(), upstream.git(&["rev-parse", "main~1"]), "other refs stay");
}

#[tokio::test]
async fn unknown_commits_are_errors_not_missing_files() {
    let History { upstream, .. } = history();
    let mirror = Mirror::open(&upstream.cache(), "unknown").await.unwrap();
    mirror.fetch(&upstream.url(), &Access::local(None), &[]).await.unwrap();
    let unknown = "0123456789012345678901234567890123456789";
    let error = mirror.read_file(unknown, ".woodpecker.yml").await.unwrap_err();
    assert_eq!(error.stderr, format!("no commit named '{unknown}' in the mirror; fetch it first"));
    assert_eq!(error.url, git::MIRROR, "the mirror's folder is never in an error");
    assert!(!error.to_string().contains(&upstream.cache().display().to_string()), "{error}");
    assert!(mirror.list_dir(unknown, "").await.is_err());
    assert!(mirror.commit_info(unknown).await.is_err());
    assert!(mirror.resolve("--output=/tmp/x").await.is_err(), "options are never taken from a name");
}

#[tokio::test]
async fn an_unknown_remote_is_named_in_the_error() {
    let temp = tempfile::tempdir().unwrap();
    let url = format!("file://{}/nowhere.git", temp.path().display());
    let error = git::ls_remote(&url, &Access::local(None)).await.unwrap_err();
    assert_eq!(error.operation, "ls-remote");
    assert_eq!(error.url, url);
    let text = error.to_string();
    assert!(text.starts_with(&format!("git ls-remote failed for {url}: ")), "{text}");
    assert!(text.contains("does not appear to be a git repository"), "{text}");

    let mirror = Mirror::open(&temp.path().join("cache"), "nowhere").await.unwrap();
    let error = mirror.fetch(&url, &Access::local(None), &[]).await.unwrap_err();
    assert_eq!((error.operation.as_str(), error.url.as_str()), ("fetch", url.as_str()));
}

#[tokio::test]
async fn mirror_keys_cannot_leave_the_cache_folder() {
    let temp = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(temp.path(), "../../etc/passwd").await.unwrap();
    assert_eq!(mirror.dir().parent().unwrap(), temp.path());
    assert!(mirror.dir().join("HEAD").exists(), "a bare repository was made");
    let by_url = Mirror::open(temp.path(), "https://example.com/owner/repo.git").await.unwrap();
    assert_eq!(by_url.dir().parent().unwrap(), temp.path());
    // Keys that differ only in characters a folder name cannot hold get their own mirrors.
    let slash = Mirror::open(temp.path(), "owner/repo").await.unwrap();
    let underscore = Mirror::open(temp.path(), "owner_repo").await.unwrap();
    assert_ne!(slash.dir(), underscore.dir());
}

#[tokio::test]
async fn urls_that_look_like_options_are_refused() {
    let error = git::ls_remote("--upload-pack=touch /tmp/pwned", &Access::local(None)).await.unwrap_err();
    assert_eq!(error.stderr, "a remote URL cannot start with '-'");
}

/// The password of a URL never reaches an error: git's message names the URL.
#[tokio::test]
async fn credentials_in_a_url_never_reach_the_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://builder:hunter2-secret@{address}/owner/repo.git");
    let error = git::ls_remote(&url, &Access::network(None)).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert_eq!(error.url, format!("http://{address}/owner/repo.git"));
}

/// Credentials go to the server through git's credential protocol (checked: the double sees
/// them in `Authorization`) but never into the error, even when git's message would show them.
#[tokio::test]
async fn credentials_reach_the_remote_but_never_the_error() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let recorded = recorded.clone();
        async move {
            match headers.get(header::AUTHORIZATION) {
                Some(value) => {
                    recorded.lock().unwrap().push(value.to_str().unwrap().to_owned());
                    (StatusCode::FORBIDDEN, "no access for s3cr3t-t0ken-value").into_response()
                }
                None => (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"gantry-test\"")], "").into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let credentials = Credentials { username: "x-access-token".into(), password: "s3cr3t-t0ken-value".into() };
    let url = format!("http://{address}/owner/repo.git");
    let error = git::ls_remote(&url, &Access::network(Some(&credentials))).await.unwrap_err();
    let text = format!("{error} {error:?} {credentials:?}");
    assert!(!text.contains("s3cr3t-t0ken-value"), "{text}");
    assert!(text.contains("403"), "{text}");
    assert_eq!(
        seen.lock().unwrap().first().map(String::as_str),
        Some(format!("Basic {}", base64("x-access-token:s3cr3t-t0ken-value")).as_str())
    );

    // The same through a mirror's fetch.
    let temp = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(temp.path(), "private").await.unwrap();
    let error = mirror.fetch(&url, &Access::network(Some(&credentials)), &[]).await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains("s3cr3t-t0ken-value"));
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let group = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                encoded.push(ALPHABET[((group >> (18 - 6 * index)) & 63) as usize] as char);
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

#[test]
fn url_credentials_are_stripped_from_any_text() {
    assert_eq!(
        proto::remote::redact_credentials("fatal: unable to access 'https://user:pa55@host.example/r.git/': 403; see http://a@b/c"),
        "fatal: unable to access 'https://host.example/r.git/': 403; see http://b/c"
    );
    assert_eq!(proto::remote::redact_credentials("no url here"), "no url here");
}

/// Anything git would read from the disk or hand to a helper program is refused unless the
/// access allows it (a server administrator chose the remote), before git runs.
#[tokio::test]
async fn local_paths_and_helpers_need_local_access() {
    let History { upstream, .. } = history();
    upstream.push(&["main"]);
    let marker = upstream.temp.path().join("helper-ran");
    let remote = upstream.remote.display().to_string();
    let addresses = [
        upstream.url(),
        remote.clone(),
        // A slash before the first colon: git reads a path, not `user@host:path`.
        format!("{remote}/en@quot/..:x"),
        format!("ext::sh -c touch% {}", marker.display()),
        "fd::7".to_owned(),
    ];
    for address in &addresses {
        let error = git::ls_remote(address, &Access::network(None)).await.unwrap_err();
        assert!(error.stderr.contains("server administrator"), "{address}: {error}");
        let mirror = Mirror::open(&upstream.cache(), "refused").await.unwrap();
        assert!(mirror.fetch(address, &Access::network(None), &[]).await.is_err(), "{address}");
    }
    assert!(!marker.exists(), "no helper ran");
    assert!(git::ls_remote(&upstream.url(), &Access::local(None)).await.is_ok(), "local access reads the disk");
}

/// Mirror folders are named by an HMAC of the key under the cache's own secret: knowing a
/// repository's id is not enough to name (and so to read) its mirror.
#[tokio::test]
async fn mirror_folders_cannot_be_named_from_the_key_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let temp = tempfile::tempdir().unwrap();
    let first_cache = temp.path().join("first");
    let second_cache = temp.path().join("second");
    let first = Mirror::open(&first_cache, "1").await.unwrap();
    let second = Mirror::open(&second_cache, "1").await.unwrap();
    let name = |mirror: &Mirror| mirror.dir().file_name().unwrap().to_string_lossy().into_owned();
    assert_ne!(name(&first), name(&second), "each cache has its own secret");
    assert!(!name(&first).starts_with("1-") && name(&first).len() >= 40, "{}", name(&first));
    assert_eq!(Mirror::open(&first_cache, "1").await.unwrap().dir(), first.dir(), "the same key finds the same mirror");
    assert_eq!(Mirror::folder(&first_cache, "1").await.unwrap(), first.dir());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&first_cache), 0o700);
    assert_eq!(mode(&first_cache.join("mirror-names.key")), 0o600);
}

/// A remote that redirects to another host gets no credentials there: the helper answers only
/// for the remote's own protocol and host.
#[tokio::test]
async fn credentials_are_not_given_to_the_host_a_redirect_leads_to() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let elsewhere = Router::new().fallback(move |headers: HeaderMap| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(headers.get(header::AUTHORIZATION).map(|value| value.to_str().unwrap().to_owned()));
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"elsewhere\"")], "").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, elsewhere).await.unwrap() });
    let redirecting = Router::new().fallback(move |uri: axum::http::Uri| async move {
        let target = format!(
            "http://localhost:{}{}",
            elsewhere_address.port(),
            uri.path_and_query().map(axum::http::uri::PathAndQuery::as_str).unwrap_or("/")
        );
        (StatusCode::FOUND, [(header::LOCATION, target)], "").into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirecting).await.unwrap() });

    let credentials = Credentials { username: "bot".into(), password: "redirected-password".into() };
    let url = format!("http://{address}/owner/repo.git");
    let error = git::ls_remote(&url, &Access::network(Some(&credentials))).await.unwrap_err();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "git followed the redirect: {error}");
    assert!(seen.iter().all(Option::is_none), "credentials reached the other host: {seen:?}");
}

/// Pinned addresses are where git connects for the remote's name: a name that resolves nowhere
/// reaches the listener they name (so a name cannot resolve elsewhere after it was checked).
#[tokio::test]
async fn pinned_addresses_are_where_git_connects() {
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            *counter.lock().unwrap() += 1;
            StatusCode::NOT_FOUND
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = format!("http://gantry-pinned.invalid:{}/owner/repo.git", address.port());
    let unpinned = git::ls_remote(&url, &Access::network(None)).await.unwrap_err();
    assert_eq!(*seen.lock().unwrap(), 0, "{unpinned}");
    let pinned = [address];
    let error = git::ls_remote(&url, &Access { pinned: &pinned, ..Access::network(None) }).await.unwrap_err();
    assert!(*seen.lock().unwrap() > 0, "git did not reach the pinned address: {error}");
}
