//! The workspace archive: the repository as a tar stream, produced on a blocking thread while it
//! is uploaded, so a large repository is never held in memory.
//!
//! Paths are rewritten under a prefix (the workspace folders), owners become root, directories
//! get mode 0777 and files get their owner's permissions for everyone: steps running as another
//! user can still write to the workspace, as in Woodpecker.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use runtime::WorkspaceSource;
use tokio::sync::mpsc;

/// What went wrong producing the workspace archive.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("reading `{path}` failed: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("`git {command}` in `{dir}` failed: {message}")]
    Git { command: String, dir: PathBuf, message: String },
    #[error("writing the workspace archive failed: {0}")]
    Write(io::Error),
}

/// Bytes of archive per message to the uploader; with `CHANNEL_CHUNKS` in flight, at most about
/// 1 MiB of archive is buffered.
const CHUNK_SIZE: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 16;

pub(crate) type ArchiveChunks = mpsc::Receiver<Result<Bytes, io::Error>>;

/// Starts producing the archive of `source` on a blocking thread. Its entries sit under
/// `prefix` (relative, `/`-separated; every folder of it is an entry of its own). Returns the
/// chunks to upload and the producer, whose result says why an upload ended early.
pub(crate) fn spawn_archive(
    source: WorkspaceSource,
    prefix: Vec<String>,
) -> (ArchiveChunks, tokio::task::JoinHandle<Result<(), WorkspaceError>>) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let producer = tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter { sender: sender.clone(), buffer: Vec::with_capacity(CHUNK_SIZE) };
        let result = write_archive(&source, &prefix, writer);
        if let Err(error) = &result {
            // Make the upload fail rather than end as if the archive were complete.
            let _ = sender.blocking_send(Err(io::Error::other(error.to_string())));
        }
        result
    });
    (receiver, producer)
}

fn write_archive(source: &WorkspaceSource, prefix: &[String], writer: ChannelWriter) -> Result<(), WorkspaceError> {
    let mut archive = Archive { builder: tar::Builder::new(writer), prefix: PathBuf::from_iter(prefix) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |age| age.as_secs());
    let mut prefix_dir = PathBuf::new();
    for part in prefix {
        prefix_dir.push(part);
        archive.directory(&prefix_dir, now)?;
    }
    match source {
        WorkspaceSource::Empty => {}
        WorkspaceSource::WorkingTree(dir) => archive.working_tree(dir)?,
        WorkspaceSource::GitHead(dir) => archive.git_head(dir)?,
    }
    let mut writer = archive.builder.into_inner().map_err(WorkspaceError::Write)?;
    writer.flush().map_err(WorkspaceError::Write)?;
    Ok(())
}

struct Archive {
    builder: tar::Builder<ChannelWriter>,
    prefix: PathBuf,
}

impl Archive {
    /// The files git does not ignore plus `.git`, or every file when `dir` is not in a git
    /// work tree (or git is missing).
    fn working_tree(&mut self, dir: &Path) -> Result<(), WorkspaceError> {
        let files = match git_listed_files(dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::debug!(%error, dir = %dir.display(), "not a git work tree: copying every file");
                return self.tree(dir, Path::new(""));
            }
        };
        let mut directories = BTreeSet::new();
        for file in &files {
            let mut parent = file.parent();
            while let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
                if !directories.insert(dir.to_path_buf()) {
                    break;
                }
                parent = dir.parent();
            }
        }
        // Sorted, so every folder comes before what it holds.
        for directory in &directories {
            let metadata = std::fs::symlink_metadata(dir.join(directory))
                .map_err(|source| WorkspaceError::Read { path: dir.join(directory), source })?;
            self.repository_directory(directory, mtime(&metadata))?;
        }
        for file in &files {
            let path = dir.join(file);
            let metadata = match std::fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                // Tracked but deleted in the working tree: the working tree is what is copied.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(WorkspaceError::Read { path, source }),
            };
            if metadata.is_dir() {
                // A submodule (a gitlink): copied whole.
                self.tree(dir, file)?;
            } else {
                self.file(&path, file, &metadata)?;
            }
        }
        if std::fs::symlink_metadata(dir.join(".git")).is_ok() {
            self.tree(dir, Path::new(".git"))?;
        }
        Ok(())
    }

    /// Everything below `root/relative`, recursively (`relative` empty: all of `root`).
    fn tree(&mut self, root: &Path, relative: &Path) -> Result<(), WorkspaceError> {
        let dir = root.join(relative);
        let metadata = std::fs::symlink_metadata(&dir).map_err(|source| WorkspaceError::Read { path: dir.clone(), source })?;
        if !metadata.is_dir() {
            return self.file(&dir, relative, &metadata);
        }
        if !relative.as_os_str().is_empty() {
            self.repository_directory(relative, mtime(&metadata))?;
        }
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|source| WorkspaceError::Read { path: dir.clone(), source })?
            .collect::<Result<_, _>>()
            .map_err(|source| WorkspaceError::Read { path: dir.clone(), source })?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            self.tree(root, &relative.join(entry.file_name()))?;
        }
        Ok(())
    }

    /// A regular file or a symbolic link; other kinds (sockets, fifos, devices) are skipped.
    fn file(&mut self, path: &Path, relative: &Path, metadata: &std::fs::Metadata) -> Result<(), WorkspaceError> {
        let read_error = |source| WorkspaceError::Read { path: path.to_path_buf(), source };
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime(metadata));
        header.set_uid(0);
        header.set_gid(0);
        let target = self.prefix.join(relative);
        if metadata.file_type().is_symlink() {
            let link = std::fs::read_link(path).map_err(read_error)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            return self.builder.append_link(&mut header, target, link).map_err(WorkspaceError::Write);
        }
        if !metadata.is_file() {
            return Ok(());
        }
        let file = File::open(path).map_err(read_error)?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(shared_mode(permissions(metadata)));
        header.set_size(metadata.len());
        let contents = ExactLength { inner: file, remaining: metadata.len() };
        self.builder.append_data(&mut header, target, contents).map_err(WorkspaceError::Write)
    }

    /// A folder entry at `target` (a path in the archive), writable by everyone.
    fn directory(&mut self, target: &Path, mtime: u64) -> Result<(), WorkspaceError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_mtime(mtime);
        self.builder.append_data(&mut header, target, io::empty()).map_err(WorkspaceError::Write)
    }

    /// A folder entry for `relative`, a folder of the repository.
    fn repository_directory(&mut self, relative: &Path, mtime: u64) -> Result<(), WorkspaceError> {
        let target = self.prefix.join(relative);
        self.directory(&target, mtime)
    }

    /// A clean checkout of `HEAD`, as CI makes one: a local clone at the commit, so steps see
    /// the commit's files and a `.git` to run git in (`git describe`, version stamps), and
    /// `origin` points where the repository's own `origin` does.
    fn git_head(&mut self, dir: &Path) -> Result<(), WorkspaceError> {
        let run = |directory: &Path, arguments: &[&str]| -> Result<String, WorkspaceError> {
            let output = git_output(directory, arguments)?;
            Ok(String::from_utf8_lossy(&output).trim().to_string())
        };
        let top = run(dir, &["rev-parse", "--show-toplevel"])?;
        let commit = run(dir, &["rev-parse", "HEAD"])?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
        let clone = std::env::temp_dir().join(format!("gantry-clone-{}-{nanos}", std::process::id()));
        let clone_text = clone.to_string_lossy().into_owned();
        let result = (|| {
            run(Path::new("/"), &["clone", "--quiet", "--no-checkout", "--local", &top, &clone_text])?;
            run(&clone, &["checkout", "--quiet", "--detach", &commit])?;
            match run(dir, &["config", "--get", "remote.origin.url"]) {
                Ok(remote) if !remote.is_empty() => {
                    run(&clone, &["remote", "set-url", "origin", &remote])?;
                }
                _ => {}
            }
            self.working_tree(&clone)
        })();
        let _ = std::fs::remove_dir_all(&clone);
        result
    }
}

/// The standard output of `git -C <dir> <arguments>` (see `gitcmd`).
fn git_output(dir: &Path, arguments: &[&str]) -> Result<Vec<u8>, WorkspaceError> {
    gitcmd::output_in(dir, arguments).map_err(|failure| WorkspaceError::Git {
        command: arguments.join(" "),
        dir: dir.to_path_buf(),
        message: failure.to_string(),
    })
}

/// Paths git lists in `dir`: tracked and untracked files that no ignore rule matches.
fn git_listed_files(dir: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
    let output = git_output(dir, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"])?;
    let mut files: Vec<PathBuf> = output
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        .collect();
    // A file both tracked and in conflict is listed once per stage.
    files.dedup();
    Ok(files)
}

/// The owner's permission bits for everyone: `0644` becomes `0666`, `0755` becomes `0777`.
fn shared_mode(mode: u32) -> u32 {
    let owner = (mode >> 6) & 0o7;
    owner * 0o111
}

#[cfg(unix)]
fn permissions(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode()
}

#[cfg(not(unix))]
fn permissions(metadata: &std::fs::Metadata) -> u32 {
    if metadata.permissions().readonly() { 0o444 } else { 0o644 }
}

fn mtime(metadata: &std::fs::Metadata) -> u64 {
    metadata.modified().ok().and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |age| age.as_secs())
}

/// Reads exactly `remaining` bytes: a file that shrinks while it is read is padded with zeros
/// and one that grows is cut, so the archive stays well-formed.
struct ExactLength<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let limit = buffer.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = match self.inner.read(&mut buffer[..limit])? {
            0 => {
                buffer[..limit].fill(0);
                limit
            }
            read => read,
        };
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Sends what is written as chunks of `CHUNK_SIZE` bytes to the uploader; blocks while the
/// channel is full, which is what keeps memory bounded.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_SIZE)));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload ended"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK_SIZE {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_of(source: WorkspaceSource, prefix: &[&str]) -> Vec<(String, u32)> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (mut chunks, producer) = spawn_archive(source, prefix.iter().map(ToString::to_string).collect());
            let mut archive = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                archive.extend_from_slice(&chunk.unwrap());
            }
            producer.await.unwrap().unwrap();
            let mut reader = tar::Archive::new(archive.as_slice());
            reader
                .entries()
                .unwrap()
                .map(|entry| {
                    let entry = entry.unwrap();
                    (entry.path().unwrap().display().to_string(), entry.header().mode().unwrap())
                })
                .collect()
        })
    }

    #[test]
    fn an_empty_workspace_is_its_folders_writable_by_everyone() {
        let entries = entries_of(WorkspaceSource::Empty, &["woodpecker", "src", "repo"]);
        assert_eq!(
            entries,
            vec![("woodpecker".to_string(), 0o777), ("woodpecker/src".to_string(), 0o777), ("woodpecker/src/repo".to_string(), 0o777)]
        );
    }

    #[test]
    fn a_plain_folder_is_copied_whole_with_shared_modes() {
        let dir = std::env::temp_dir().join(format!("gantry-workspace-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/data.txt"), "data").unwrap();
        std::fs::write(dir.join("run.sh"), "#!/bin/sh").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(dir.join("sub/data.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let entries = entries_of(WorkspaceSource::WorkingTree(dir.clone()), &["ws"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            entries,
            vec![
                ("ws".to_string(), 0o777),
                ("ws/run.sh".to_string(), 0o777),
                ("ws/sub".to_string(), 0o777),
                ("ws/sub/data.txt".to_string(), 0o666),
            ]
        );
    }
}
