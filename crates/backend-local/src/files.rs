//! File-tree chores: copying a tree as it is (links as links), removing one whatever it holds.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::LocalError;

/// Runs blocking file work off the async threads.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LocalError> + Send + 'static,
) -> Result<T, LocalError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))
}

/// Copies every entry of `source` into the existing folder `destination`.
pub(crate) fn copy_directory_contents(source: &Path, destination: &Path) -> Result<(), LocalError> {
    let entries = fs::read_dir(source).map_err(|error| LocalError::io("read", source, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| LocalError::io("read", source, error))?;
        copy_entry(&entry.path(), &destination.join(entry.file_name()))?;
    }
    Ok(())
}

/// Copies a file (with its permissions), a symbolic link (as a link) or a folder (recursively).
/// Sockets and FIFOs are skipped: they cannot be copied and no build reads them.
pub(crate) fn copy_entry(source: &Path, destination: &Path) -> Result<(), LocalError> {
    let metadata = fs::symlink_metadata(source).map_err(|error| LocalError::io("read", source, error))?;
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        let link = fs::read_link(source).map_err(|error| LocalError::io("read", source, error))?;
        std::os::unix::fs::symlink(&link, destination).map_err(|error| LocalError::io("create", destination, error))?;
    } else if file_type.is_dir() {
        fs::create_dir_all(destination).map_err(|error| LocalError::io("create", destination, error))?;
        copy_directory_contents(source, destination)?;
    } else if file_type.is_file() {
        fs::copy(source, destination).map_err(|error| LocalError::io("copy", source, error))?;
    } else {
        tracing::debug!(path = %source.display(), "skipping a special file");
    }
    Ok(())
}

/// Removes a folder tree, even when a step left read-only folders in it (Go's module cache
/// does), which `remove_dir_all` alone cannot empty.
pub(crate) fn remove_tree(path: &Path) -> Result<(), LocalError> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    make_folders_writable(path.to_owned());
    fs::remove_dir_all(path).map_err(|error| LocalError::io("remove", path, error))
}

fn make_folders_writable(path: PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = fs::symlink_metadata(&path) else { return };
    if !metadata.is_dir() {
        return;
    }
    let mut permissions = metadata.permissions();
    permissions.set_mode(permissions.mode() | 0o700);
    let _ = fs::set_permissions(&path, permissions);
    if let Ok(entries) = fs::read_dir(&path) {
        for entry in entries.flatten() {
            make_folders_writable(entry.path());
        }
    }
}
