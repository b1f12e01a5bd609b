//! Who owns a resource: the labels every container, network and volume carries, and whether
//! the process that made it is still alive (which decides what `sweep` removes).

use std::collections::{BTreeMap, HashMap};

/// The run a resource belongs to (`RunInfo::id`).
pub const LABEL_RUN: &str = "io.gantry.run";
/// The workflow a resource belongs to (`WorkflowSetup::key`).
pub const LABEL_WORKFLOW: &str = "io.gantry.workflow";
/// The step a container runs (`StepRequest::name`), or `workspace` for the helper that fills it.
pub const LABEL_STEP: &str = "io.gantry.step";
/// The process id of the gantry process that made the resource.
pub const LABEL_PID: &str = "io.gantry.pid";
/// When that process started (clock ticks since boot, from `/proc/<pid>/stat`), so that a
/// reused process id is not mistaken for the owner.
pub const LABEL_PROCESS_START: &str = "io.gantry.process-start";
/// The host name of the machine that process runs on: only resources of this host are swept.
pub const LABEL_HOST: &str = "io.gantry.host";

/// A process that owns resources, as written in their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub host: String,
    /// `None` where the start time cannot be read (no `/proc`).
    pub start_time: Option<String>,
}

impl ProcessIdentity {
    /// This process.
    pub fn current() -> ProcessIdentity {
        ProcessIdentity::of_process(std::process::id())
    }

    /// Another process on this host, while it runs (tests use this to play a run of another
    /// process).
    pub fn of_process(pid: u32) -> ProcessIdentity {
        ProcessIdentity { pid, host: host_name(), start_time: process_stat(pid).map(|stat| stat.start_time) }
    }

    /// The owner labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(LABEL_PID.to_string(), self.pid.to_string()), (LABEL_HOST.to_string(), self.host.clone())]);
        if let Some(start_time) = &self.start_time {
            labels.insert(LABEL_PROCESS_START.to_string(), start_time.clone());
        }
        labels
    }
}

/// True when the process named by a resource's owner labels may still be alive: it is on
/// another host, it has no owner labels, or `/proc` cannot tell (not Linux). Only a process
/// known to be gone (no such pid, a zombie, or a pid now used by a process that started at
/// another time) is dead.
pub fn owner_may_be_alive(labels: &HashMap<String, String>) -> bool {
    let Some(pid) = labels.get(LABEL_PID).and_then(|pid| pid.parse::<u32>().ok()) else { return true };
    if labels.get(LABEL_HOST).map(String::as_str) != Some(host_name().as_str()) {
        return true;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    match process_stat(pid) {
        None => false,
        Some(stat) if stat.state == 'Z' || stat.state == 'X' => false,
        Some(stat) => labels.get(LABEL_PROCESS_START).is_none_or(|start_time| *start_time == stat.start_time),
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_file = || std::fs::read_to_string("/etc/hostname").ok();
    let from_environment = || std::env::var("HOSTNAME").ok();
    from_kernel
        .or_else(from_file)
        .or_else(from_environment)
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

struct ProcessStat {
    state: char,
    start_time: String,
}

/// Reads the state and start time of a process from `/proc/<pid>/stat`. The command name (field
/// 2) may contain spaces and parentheses, so the fields are counted after its last `)`.
fn process_stat(pid: u32) -> Option<ProcessStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields after the name start at field 3 (state); start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(22 - 3)?.to_string();
    Some(ProcessStat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        let me = ProcessIdentity::current();
        assert!(owner_may_be_alive(&me.labels().into_iter().collect()));

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_identity = ProcessIdentity::of_process(child.id());
        child.wait().unwrap();
        assert!(!owner_may_be_alive(&child_identity.labels().into_iter().collect()));
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_dead() {
        let mut labels: HashMap<String, String> = ProcessIdentity::current().labels().into_iter().collect();
        labels.insert(LABEL_PROCESS_START.to_string(), "1".to_string());
        assert!(!owner_may_be_alive(&labels));
    }

    #[test]
    fn resources_of_other_hosts_or_without_owner_are_left_alone() {
        let mut labels: HashMap<String, String> =
            ProcessIdentity { pid: u32::MAX, host: "elsewhere".into(), start_time: None }.labels().into_iter().collect();
        assert!(owner_may_be_alive(&labels));
        labels.clear();
        assert!(owner_may_be_alive(&labels));
    }
}
