//! `DockerError`: what went wrong talking to the engine, with the image, container, network,
//! volume, service, config or secret and the engine's status code as fields.

/// An error from the Docker engine or from reaching it.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `DOCKER_HOST` (or the current Docker context) names a transport this build cannot use.
    #[error("docker host `{host}` is not supported: {reason}")]
    UnsupportedHost { host: String, reason: String },
    /// Nothing answers at the engine's address, or it answers with something that is not an
    /// engine.
    #[error("docker engine at `{host}` is not reachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("image `{image}` is not on this machine")]
    ImageNotFound { image: String },
    #[error("image `{image}` could not be pulled: {reason}")]
    PullFailed { image: String, reason: String },
    /// The build stopped with the engine's error: a Dockerfile that does not parse (the message
    /// names its line), a `RUN` that failed (with its exit code), a base image that could not be
    /// pulled, a context that is not a tar archive.
    #[error("image build failed: {message}")]
    BuildFailed { message: String },
    #[error("image `{image}` could not be pushed: {reason}")]
    PushFailed { image: String, reason: String },
    /// The registry refused the credentials (or their absence). The reason is the registry's
    /// answer as the engine reports it; it never holds the password.
    #[error("registry `{registry}` refused access to `{image}` ({reason}); check the registry's username and password")]
    RegistryAuth { registry: String, image: String, reason: String },
    #[error("container `{container}` does not exist")]
    ContainerNotFound { container: String },
    #[error("{operation} container `{container}` failed (status {status}): {message}")]
    Container { operation: &'static str, container: String, status: u16, message: String },
    #[error("{operation} image `{image}` failed (status {status}): {message}")]
    Image { operation: &'static str, image: String, status: u16, message: String },
    #[error("{operation} network `{network}` failed (status {status}): {message}")]
    Network { operation: &'static str, network: String, status: u16, message: String },
    #[error("{operation} volume `{volume}` failed (status {status}): {message}")]
    Volume { operation: &'static str, volume: String, status: u16, message: String },
    /// A Swarm request that is about no one object (the Swarm's state, tasks): `503` when the
    /// engine is not a Swarm manager.
    #[error("{operation} failed (status {status}): {message}")]
    Swarm { operation: &'static str, status: u16, message: String },
    #[error("{operation} service `{service}` failed (status {status}): {message}")]
    Service { operation: &'static str, service: String, status: u16, message: String },
    /// A Swarm config or secret (`kind`).
    #[error("{operation} {kind} `{name}` failed (status {status}): {message}")]
    SwarmObject { operation: &'static str, kind: &'static str, name: String, status: u16, message: String },
    /// The request did not get an answer from the engine (connection lost, timeout, a body
    /// that could not be read or produced).
    #[error("{operation} `{target}` failed: {message}")]
    Transport { operation: &'static str, target: String, message: String },
}

impl DockerError {
    /// The engine's HTTP status code, when the engine answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DockerError::Container { status, .. }
            | DockerError::Image { status, .. }
            | DockerError::Network { status, .. }
            | DockerError::Volume { status, .. }
            | DockerError::Swarm { status, .. }
            | DockerError::Service { status, .. }
            | DockerError::SwarmObject { status, .. } => Some(*status),
            DockerError::ImageNotFound { .. } | DockerError::ContainerNotFound { .. } => Some(404),
            _ => None,
        }
    }

    /// True when the thing the request was about does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The parts of a bollard error callers care about: the engine's status, when it answered.
pub(crate) enum Failure {
    Engine { status: u16, message: String },
    Transport { message: String },
}

pub(crate) fn failure(error: bollard::errors::Error) -> Failure {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => Failure::Engine { status: status_code, message },
        other => Failure::Transport { message: error_chain(&other) },
    }
}

/// An error and its sources on one line: hyper's top-level messages alone ("client error
/// (Connect)") do not say what happened.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn container_error(operation: &'static str, container: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status: 404, .. } => DockerError::ContainerNotFound { container: container.to_string() },
        Failure::Engine { status, message } => DockerError::Container { operation, container: container.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: container.to_string(), message },
    }
}

pub(crate) fn image_error(operation: &'static str, image: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::Image { operation, image: image.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: image.to_string(), message },
    }
}

pub(crate) fn network_error(operation: &'static str, network: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::Network { operation, network: network.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: network.to_string(), message },
    }
}

pub(crate) fn volume_error(operation: &'static str, volume: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::Volume { operation, volume: volume.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: volume.to_string(), message },
    }
}

pub(crate) fn swarm_error(operation: &'static str, target: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::Swarm { operation, status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: target.to_string(), message },
    }
}

pub(crate) fn service_error(operation: &'static str, service: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::Service { operation, service: service.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: service.to_string(), message },
    }
}

pub(crate) fn swarm_object_error(operation: &'static str, kind: &'static str, name: &str, error: bollard::errors::Error) -> DockerError {
    match failure(error) {
        Failure::Engine { status, message } => DockerError::SwarmObject { operation, kind, name: name.to_string(), status, message },
        Failure::Transport { message } => DockerError::Transport { operation, target: name.to_string(), message },
    }
}
