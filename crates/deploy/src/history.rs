//! Every deployment the deployer carried out, kept in its data folder as JSON lines: a record
//! is written when a rollout starts and again when it ends, so a deployer killed midway leaves
//! a started record that the next start marks interrupted. `gantry env history` and the
//! inventory read it; the deployment events sent to receivers carry the same records.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;

const HISTORY_FILE: &str = "history.jsonl";

pub use proto::delivery::{DeploymentKind, DeploymentOutcome, DeploymentRecord};

#[derive(Debug, thiserror::Error)]
#[error("deployment history {path}: {source}")]
pub struct HistoryError {
    path: String,
    source: std::io::Error,
}

/// The history file in a data folder.
#[derive(Clone, Debug)]
pub struct History {
    path: PathBuf,
}

impl History {
    pub fn new(folder: &Path) -> History {
        History { path: folder.join(HISTORY_FILE) }
    }

    /// Appends the record as it is now (started, or ended).
    pub fn write(&self, record: &DeploymentRecord) -> Result<(), HistoryError> {
        let error = |source| HistoryError { path: self.path.display().to_string(), source };
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new().create(true).read(true).append(true).mode(0o600).open(&self.path).map_err(error)?;
        // A line a crash cut short is ended first, so that this record is a line of its own.
        let length = file.metadata().map_err(error)?.len();
        let mut last = [b'\n'];
        if length > 0 {
            use std::os::unix::fs::FileExt as _;
            file.read_at(&mut last, length - 1).map_err(error)?;
        }
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
        // One write of a whole line: an appended record is never interleaved with another.
        file.write_all(&line).map_err(error)
    }

    /// Every deployment, oldest first, each as last written. A line cut short by a crash is
    /// skipped.
    pub fn read(&self) -> Result<Vec<DeploymentRecord>, HistoryError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HistoryError { path: self.path.display().to_string(), source }),
        };
        let mut order = Vec::new();
        let mut latest: BTreeMap<String, DeploymentRecord> = BTreeMap::new();
        for record in text.lines().filter_map(|line| serde_json::from_str::<DeploymentRecord>(line).ok()) {
            if !latest.contains_key(&record.id) {
                order.push(record.id.clone());
            }
            latest.insert(record.id.clone(), record);
        }
        Ok(order.into_iter().filter_map(|id| latest.remove(&id)).collect())
    }

    /// Marks the deployments a previous run left under way as interrupted; they are returned.
    pub fn close_interrupted(&self) -> Result<Vec<DeploymentRecord>, HistoryError> {
        let mut closed = Vec::new();
        for mut record in self.read()?.into_iter().filter(|record| record.outcome == DeploymentOutcome::Running) {
            record.outcome = DeploymentOutcome::Interrupted;
            record.finished_at = Some(now_ms());
            record.reason = Some("the deployer stopped during the rollout".to_owned());
            self.write(&record)?;
            closed.push(record);
        }
        Ok(closed)
    }
}

pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}
