//! What a run reports as it goes: workflow and step state changes and log lines.
//! `Serialize` because `gantry exec --output json` prints them one per line.

use std::time::Duration;

use serde::Serialize;

use crate::backend::OutputStream;
use crate::publish::PublishedImage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failure,
    /// Not run: its conditions are false, or the workflow state did not ask for it.
    Skipped,
    /// Stopped by cancellation (Ctrl-C, `failure: cancel`, a run timeout).
    Killed,
    /// Could not be run at all (image unavailable, engine error).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Skipped => "skipped",
            Status::Killed => "killed",
            Status::Error => "error",
        }
    }

    pub fn is_failure(self) -> bool {
        pipeline::graph::Outcome::from(self).is_failure()
    }
}

impl From<Status> for pipeline::graph::Outcome {
    fn from(status: Status) -> Self {
        use pipeline::graph::Outcome;
        match status {
            Status::Success => Outcome::Success,
            Status::Failure => Outcome::Failure,
            Status::Skipped => Outcome::Skipped,
            Status::Killed => Outcome::Killed,
            Status::Error => Outcome::Error,
        }
    }
}

impl From<pipeline::graph::Outcome> for Status {
    fn from(outcome: pipeline::graph::Outcome) -> Self {
        use pipeline::graph::Outcome;
        match outcome {
            Outcome::Success => Status::Success,
            Outcome::Failure => Status::Failure,
            Outcome::Skipped => Status::Skipped,
            Outcome::Killed => Status::Killed,
            Outcome::Error => Status::Error,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run: String,
        workflows: Vec<String>,
    },
    WorkflowStarted {
        workflow: String,
        /// Steps in declared order (services first), for displays that list them up front.
        steps: Vec<String>,
    },
    StepStarted {
        workflow: String,
        step: String,
    },
    /// One line of output, secrets masked, without its line break.
    Log {
        workflow: String,
        step: String,
        stream: OutputStream,
        line: String,
    },
    StepFinished {
        workflow: String,
        step: String,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        #[serde(rename = "duration_ms", with = "millis")]
        duration: Duration,
        /// Why it was skipped, or what went wrong.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A build step pushed an image (sent before the step's end).
    ImagePublished {
        workflow: String,
        step: String,
        image: PublishedImage,
    },
    WorkflowFinished {
        workflow: String,
        status: Status,
        #[serde(rename = "duration_ms", with = "millis")]
        duration: Duration,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RunFinished {
        status: Status,
        #[serde(rename = "duration_ms", with = "millis")]
        duration: Duration,
    },
}

/// Durations on the wire are whole milliseconds, under the key `duration_ms`.
mod millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis().min(u64::MAX as u128) as u64)
    }
}

/// Where events go. Called from many tasks at once; it must not block for long, since log lines
/// of running steps pass through it.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync + 'static> EventSink for F {
    fn emit(&self, event: Event) {
        self(event);
    }
}
