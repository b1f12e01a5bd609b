//! `runtime::Backend` on a Docker engine: per workflow a bridge network and a workspace volume,
//! every step a container, everything labelled with the run and the owning process so that it
//! can be removed at the end or swept after a crash.

mod backend;
mod build;
mod dockerignore;
mod owner;
mod step;
mod translate;
mod workflow;
mod workspace;

pub use backend::{DockerBackend, DockerBackendOptions, HELPER_IMAGE, NetworkPolicy};
pub use owner::{
    LABEL_HOST, LABEL_PID, LABEL_PROCESS_START, LABEL_RUN, LABEL_STEP, LABEL_WORKFLOW, ProcessIdentity, host_name, owner_may_be_alive,
};
pub use step::DockerStep;
pub use translate::parse_byte_size;
pub use workflow::DockerWorkflow;
pub use workspace::WorkspaceError;

use docker::DockerError;
use runtime::BackendError;

/// How to get an engine when there is none.
const UNAVAILABLE_HINT: &str =
    "start the Docker engine (`dockerd`, or `scripts/docker-up.sh`), or point DOCKER_HOST at one (unix://, tcp:// or ssh://)";

/// The runtime's view of an engine error: no engine at all, an image that cannot be had, or an
/// operation that failed.
fn backend_error(operation: impl Into<String>, error: DockerError) -> BackendError {
    match error {
        DockerError::Unreachable { .. } | DockerError::UnsupportedHost { .. } => {
            BackendError::Unavailable { message: error.to_string(), hint: UNAVAILABLE_HINT.to_string() }
        }
        DockerError::ImageNotFound { image } => BackendError::ImageUnavailable { image, reason: "no pull was attempted".to_string() },
        DockerError::PullFailed { image, reason } => BackendError::ImageUnavailable { image, reason },
        error => BackendError::Operation { operation: operation.into(), message: error.to_string() },
    }
}
