//! Log bodies: one append-only file of JSON lines per step (`logs/<step id>.jsonl`), each line a
//! `proto::api::LogEntry`; gzip-compressed (`.jsonl.gz`) when the step ends. Appends are
//! idempotent by sequence number, so an agent's retried batch is never doubled.

use std::path::{Path, PathBuf};

use proto::agent::LogLine;
use proto::api::LogEntry;

use crate::StoreError;

/// The log folder. Cheap to clone; safe to use from many tasks (appends to one step are serialized).
#[derive(Clone)]
pub struct LogFiles {
    // filled in by the implementation
}

impl LogFiles {
    pub fn new(dir: &Path) -> Result<LogFiles, StoreError> {
        todo!()
    }

    /// Appends the lines numbered from `first_seq`, skipping those already stored; returns the
    /// next expected number. A batch starting after the next expected number is a
    /// `StoreError::LogGap`. After a crash mid-write, a partial last line is dropped on open.
    pub async fn append(&self, step_id: i64, first_seq: u64, lines: &[LogLine]) -> Result<u64, StoreError> {
        todo!()
    }

    /// The number of lines stored (the next expected number).
    pub async fn next_seq(&self, step_id: i64) -> Result<u64, StoreError> {
        todo!()
    }

    /// Up to `limit` lines from number `from`, from the open file or the compressed one.
    pub async fn read(&self, step_id: i64, from: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        todo!()
    }

    /// Compresses a finished step's file. Appends after this fail.
    pub async fn finish(&self, step_id: i64) -> Result<(), StoreError> {
        todo!()
    }

    /// Removes a step's log (repository deletion, retention).
    pub async fn remove(&self, step_id: i64) -> Result<(), StoreError> {
        todo!()
    }

    pub fn path_of(&self, step_id: i64) -> PathBuf {
        todo!()
    }
}
