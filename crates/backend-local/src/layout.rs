//! Where a workflow's container paths live on the host: everything under one temporary directory.
//!
//! ```text
//! <temp>/gantry-<run>-<workflow>/
//!   run-owner      the pid of the gantry process (see `sweep`)
//!   workspace/     the workspace base (`/woodpecker`, `/drone/src`, ...)
//!   root/          any other absolute container path a step names (`/cache` → root/cache)
//!   home/          `HOME` for steps whose environment has none
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Variables whose values are container paths of the workspace; a step on the host needs the
/// host path instead, or `cd $CI_WORKSPACE` would leave the workspace.
const WORKSPACE_VARIABLES: [&str; 4] = ["CI_WORKSPACE", "CI_WORKSPACE_BASE", "DRONE_WORKSPACE", "DRONE_WORKSPACE_BASE"];

#[derive(Clone, Debug)]
pub(crate) struct WorkflowLayout {
    directory: PathBuf,
    /// The workspace base as normalized container path components (`["woodpecker"]`).
    workspace_base: Vec<String>,
    /// Where the repository goes, as components relative to the base.
    workspace_path: Vec<String>,
}

impl WorkflowLayout {
    pub(crate) fn new(directory: PathBuf, workspace_base: &str, workspace_path: &str) -> Self {
        WorkflowLayout {
            directory,
            workspace_base: normalized_components(&[], workspace_base),
            workspace_path: normalized_components(&[], workspace_path),
        }
    }

    pub(crate) fn directory(&self) -> &Path {
        &self.directory
    }

    pub(crate) fn workspace_base(&self) -> PathBuf {
        self.directory.join("workspace")
    }

    pub(crate) fn container_root(&self) -> PathBuf {
        self.directory.join("root")
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.directory.join("home")
    }

    /// The host folder the repository is put in (the base joined with the workspace path).
    pub(crate) fn repository(&self) -> PathBuf {
        join_components(self.workspace_base(), &self.workspace_path)
    }

    /// Maps a container path to the host. Paths under the workspace base go under `workspace/`,
    /// other absolute paths under `root/`; a relative path (or an empty one) is taken from the
    /// repository folder, where a step starts by default. `..` never climbs out of the
    /// workflow's directory: it is resolved lexically, and stops at the container's `/`.
    pub(crate) fn host_path(&self, container_path: &str) -> PathBuf {
        let repository: Vec<String> = self.workspace_base.iter().chain(&self.workspace_path).cloned().collect();
        let start: &[String] = if container_path.starts_with('/') { &[] } else { &repository };
        let components = normalized_components(start, container_path);
        match components.strip_prefix(self.workspace_base.as_slice()) {
            Some(inside_base) => join_components(self.workspace_base(), inside_base),
            None => join_components(self.container_root(), &components),
        }
    }

    /// The environment a step's process gets: exactly `given`, except that the workspace
    /// variables name host paths, and `HOME` (with `RUSTUP_HOME`) and `PATH` are filled in
    /// when absent.
    pub(crate) fn process_environment(&self, given: &BTreeMap<String, String>) -> BTreeMap<String, OsString> {
        let mut environment: BTreeMap<String, OsString> = given.iter().map(|(name, value)| (name.clone(), OsString::from(value))).collect();
        for name in WORKSPACE_VARIABLES {
            if let Some(value) = given.get(name) {
                environment.insert(name.to_owned(), self.host_path(value).into_os_string());
            }
        }
        // An image brings its own HOME; on the host, the user's real home must not be written
        // to by a pipeline, so steps get a fresh one per workflow.
        if !environment.contains_key("HOME") {
            environment.insert("HOME".to_owned(), self.home().into_os_string());
            // rustup's `cargo` and `rustc` on PATH find their toolchains in `$HOME/.rustup`
            // unless RUSTUP_HOME says otherwise: with the fresh HOME alone, a step could not
            // run the host's `cargo` at all.
            if !environment.contains_key("RUSTUP_HOME")
                && let Some(rustup_home) = host_rustup_home()
            {
                environment.insert("RUSTUP_HOME".to_owned(), rustup_home);
            }
        }
        // An image brings its own PATH too. On the host a step runs the host's programs, so one
        // without a PATH of its own gets the one gantry runs with, not none at all (with none,
        // `sh` would fall back to a built-in default that misses ~/.cargo/bin and the like).
        if !environment.contains_key("PATH")
            && let Some(host_path) = std::env::var_os("PATH")
        {
            environment.insert("PATH".to_owned(), host_path);
        }
        environment
    }
}

/// Where rustup keeps toolchains on this host, when it is installed.
fn host_rustup_home() -> Option<OsString> {
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map(PathBuf::from).or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".rustup")))?;
    rustup_home.is_dir().then(|| rustup_home.into_os_string())
}

/// Splits `path` into components, resolving `.` and `..` lexically on top of `start`.
fn normalized_components(start: &[String], path: &str) -> Vec<String> {
    let mut components = start.to_vec();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            name => components.push(name.to_owned()),
        }
    }
    components
}

fn join_components(mut path: PathBuf, components: &[String]) -> PathBuf {
    for component in components {
        path.push(component);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> WorkflowLayout {
        WorkflowLayout::new(PathBuf::from("/tmp/gantry-run-build"), "/woodpecker", "src/example.com/repo")
    }

    #[test]
    fn container_paths_map_into_the_workflow_directory() {
        let layout = layout();
        let cases = [
            ("/woodpecker", "/tmp/gantry-run-build/workspace"),
            ("/woodpecker/", "/tmp/gantry-run-build/workspace"),
            ("/woodpecker/src/example.com/repo/web", "/tmp/gantry-run-build/workspace/src/example.com/repo/web"),
            ("/woodpeckerish", "/tmp/gantry-run-build/root/woodpeckerish"),
            ("/cache/go", "/tmp/gantry-run-build/root/cache/go"),
            ("/", "/tmp/gantry-run-build/root"),
            ("", "/tmp/gantry-run-build/workspace/src/example.com/repo"),
            ("web", "/tmp/gantry-run-build/workspace/src/example.com/repo/web"),
            ("/woodpecker/../../../etc", "/tmp/gantry-run-build/root/etc"),
            ("../../../../../..", "/tmp/gantry-run-build/root"),
        ];
        for (container_path, expected) in cases {
            assert_eq!(layout.host_path(container_path), PathBuf::from(expected), "{container_path:?}");
        }
    }

    #[test]
    fn the_repository_is_the_base_joined_with_the_workspace_path() {
        assert_eq!(layout().repository(), PathBuf::from("/tmp/gantry-run-build/workspace/src/example.com/repo"));
        let flat = WorkflowLayout::new(PathBuf::from("/tmp/w"), "/drone/src", "");
        assert_eq!(flat.repository(), PathBuf::from("/tmp/w/workspace"));
    }
}
