//! Which gantry process owns a workflow directory, and removing the directories of dead ones.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::LocalError;
use crate::files::remove_tree;

/// The file in each workflow directory that names the gantry process that made it:
///
/// ```text
/// pid=4242
/// started=987654
/// ```
///
/// `started` is the process's start time in clock ticks since boot (`/proc/<pid>/stat`,
/// field 22), so that a pid reused by another process is not taken for the owner. It is
/// optional: without it, only the pid is checked.
pub const RUN_OWNER_FILE: &str = "run-owner";

/// Workflow directories are named `gantry-<run id>-<workflow key>`.
pub(crate) const DIRECTORY_PREFIX: &str = "gantry-";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    pid: i32,
    started: Option<u64>,
}

impl Owner {
    fn current() -> Owner {
        let pid = i32::try_from(std::process::id()).expect("pids fit in pid_t");
        Owner { pid, started: process_start_time(pid) }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut pid = None;
        let mut started = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", value)) => pid = value.trim().parse().ok(),
                Some(("started", value)) => started = value.trim().parse().ok(),
                _ => {}
            }
        }
        pid.filter(|pid| *pid > 0).map(|pid| Owner { pid, started })
    }

    fn render(self) -> String {
        match self.started {
            Some(started) => format!("pid={}\nstarted={started}\n", self.pid),
            None => format!("pid={}\n", self.pid),
        }
    }

    fn is_alive(self) -> bool {
        // kill(2) with no signal only checks that the process exists; EPERM: it exists, it is
        // only someone else's.
        let exists = matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), None), Ok(()) | Err(nix::errno::Errno::EPERM));
        if !exists {
            return false;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // A zombie is dead even though kill(0) finds it: nobody reaped it yet.
            Ok(stat) => match parse_stat(&stat) {
                Some((state, started)) => !matches!(state, 'Z' | 'X') && self.started.is_none_or(|expected| expected == started),
                None => true,
            },
            // No procfs (not Linux): kill(0) is all we know.
            Err(_) => true,
        }
    }
}

/// The state letter and the start time from the text of `/proc/<pid>/stat`. The command name
/// in parentheses may hold spaces and parentheses itself, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 3 (state) to 22 (starttime), counted from 1 for the pid.
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, started))
}

fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, started)| started)
}

/// Marks `directory` as owned by this process.
pub(crate) fn write_owner(directory: &Path) -> Result<(), LocalError> {
    let path = directory.join(RUN_OWNER_FILE);
    fs::write(&path, Owner::current().render()).map_err(|error| LocalError::io("write", path, error))
}

/// Removes the workflow directories under `root` whose owner is dead; returns them. A directory
/// without a readable owner file is left alone: it may be being created right now, or not be
/// ours at all.
pub(crate) fn sweep(root: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(LocalError::io("read", root, error)),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIRECTORY_PREFIX) || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let directory = entry.path();
        let Some(owner) = fs::read_to_string(directory.join(RUN_OWNER_FILE)).ok().and_then(|text| Owner::parse(&text)) else {
            continue;
        };
        if owner.is_alive() {
            continue;
        }
        match remove_tree(&directory) {
            Ok(()) => {
                tracing::info!(directory = %directory.display(), pid = owner.pid, "removed the directory of a run that no longer exists");
                removed.push(directory);
            }
            // One directory we cannot remove (another user's) must not stop the run.
            Err(error) => tracing::warn!(%error, "could not remove the directory of a dead run"),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_file_round_trips_and_tolerates_a_missing_start_time() {
        let owner = Owner { pid: 42, started: Some(7) };
        assert_eq!(Owner::parse(&owner.render()), Some(owner));
        assert_eq!(Owner::parse("pid=42\n"), Some(Owner { pid: 42, started: None }));
        assert_eq!(Owner::parse("pid=0\n"), None);
        assert_eq!(Owner::parse("garbage"), None);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5555 1000 10";
        assert_eq!(parse_stat(stat), Some(('S', 5555)));
    }

    #[test]
    fn this_process_is_alive_and_its_start_time_identifies_it() {
        let current = Owner::current();
        assert!(current.is_alive());
        if let Some(started) = current.started {
            assert!(!Owner { pid: current.pid, started: Some(started + 1) }.is_alive(), "a reused pid is not the owner");
        }
    }
}
