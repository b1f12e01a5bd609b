//! `.dockerignore`: which files of a build context are not sent to the builder. The docker CLI
//! applies it on the client side, so the engine's build API does not: a build step must, or
//! `COPY . .` would copy what the repository meant to keep out (and send it all, slowly).
//!
//! The rules are Docker's: one pattern per line, `#` comments, paths relative to the context
//! root (a leading `/` or `./` changes nothing), `*` and `?` within one path component, `**` for
//! any number of components, `!` to send again what an earlier line excluded; the last line
//! that matches a path, or one of the folders it is in, decides. The Dockerfile and
//! `.dockerignore` are always sent.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use globset::{Glob, GlobMatcher};
use tokio::sync::mpsc;

/// The patterns of a `.dockerignore`, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    matcher: GlobMatcher,
    /// `!pattern`: matching paths are sent.
    include: bool,
}

impl DockerIgnore {
    /// Reads a `.dockerignore`; a line that is not a valid pattern is an error naming it.
    pub(crate) fn parse(text: &str) -> Result<DockerIgnore, String> {
        let mut rules = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (include, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let matcher = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map(|glob: Glob| glob.compile_matcher())
                .map_err(|error| format!(".dockerignore line {}: `{line}` is not a pattern: {error}", number + 1))?;
            rules.push(Rule { matcher, include });
        }
        Ok(DockerIgnore { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        if path.is_empty() {
            return false;
        }
        let mut excluded = false;
        for rule in &self.rules {
            if matches_itself_or_a_parent(&rule.matcher, &path) {
                excluded = !rule.include;
            }
        }
        excluded
    }
}

/// `./a//b/` → `a/b`; a leading `/` is the context root.
fn clean(path: &str) -> String {
    path.split('/').filter(|part| !part.is_empty() && *part != ".").collect::<Vec<_>>().join("/")
}

fn matches_itself_or_a_parent(matcher: &GlobMatcher, path: &str) -> bool {
    if matcher.is_match(path) {
        return true;
    }
    let mut end = path.len();
    while let Some(slash) = path[..end].rfind('/') {
        if matcher.is_match(&path[..slash]) {
            return true;
        }
        end = slash;
    }
    false
}

/// The context archive without what `ignore` excludes, re-written as it streams through a
/// blocking thread (tar is read and written synchronously); `always` (the Dockerfile) is kept.
pub(crate) fn filter_context<S>(
    archive: S,
    ignore: DockerIgnore,
    always: String,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + Unpin + 'static,
{
    let (sender, receiver) = mpsc::channel::<Result<Bytes, io::Error>>(16);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(archive));
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter { sender: sender.clone() };
        if let Err(error) = copy_kept(reader, writer, &ignore, &always) {
            let _ = sender.blocking_send(Err(error));
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) }).boxed()
}

fn copy_kept(reader: impl Read, writer: ChannelWriter, ignore: &DockerIgnore, always: &str) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(writer);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let relative = clean(&path);
        let keep = relative.is_empty() || relative == always || relative == ".dockerignore" || !ignore.excludes(&relative);
        if !keep {
            continue;
        }
        let mut header = entry.header().clone();
        // Long names travel in extension entries the reader already folded into `path`.
        let link = entry.link_name()?.map(std::borrow::Cow::into_owned);
        match link {
            Some(link) => builder.append_link(&mut header, &path, link)?,
            None => builder.append_data(&mut header, &path, &mut entry)?,
        }
    }
    builder.into_inner()?.flush()
}

struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buffer)))
            .map_err(|_| io::Error::other("the build stopped reading the context"))?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::DockerIgnore;

    #[test]
    fn patterns_exclude_like_docker_and_the_last_match_decides() {
        let ignore = DockerIgnore::parse("# comment\n.git\nnode_modules\n*.log\n**/tmp\ndocs/*\n!docs/keep.md\n/build/\n").unwrap();
        for excluded in [".git", ".git/config", "node_modules/x/y.js", "app.log", "a/b/tmp/x", "docs/a.md", "build/out"] {
            assert!(ignore.excludes(excluded), "{excluded} is excluded");
        }
        for kept in ["src/app.log.txt", "src/main.rs", "docs/keep.md", "a/app.log", "builder/x"] {
            assert!(!ignore.excludes(kept), "{kept} is kept");
        }
        assert!(DockerIgnore::parse("[").is_err());
    }
}
