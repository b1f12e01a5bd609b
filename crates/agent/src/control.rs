//! Stopping a running job from anywhere (the server's cancel, a heartbeat, shutdown), with the
//! first reason given kept for the job's final report.

use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// A job's cancellation. Cheap to clone; every clone stops the same job.
#[derive(Clone, Default)]
pub(crate) struct JobControl {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl JobControl {
    pub(crate) fn new() -> JobControl {
        JobControl::default()
    }

    /// Stops the job. The first reason wins: it is what made the job stop.
    pub(crate) fn cancel(&self, reason: impl Into<String>) {
        {
            let mut current = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if current.is_none() {
                *current = Some(reason.into());
            }
        }
        self.token.cancel();
    }

    /// Why the job was stopped, once it was.
    pub(crate) fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The token the runtime watches.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}
