//! `Engine`: a connection to one Docker engine, chosen like the docker CLI chooses it
//! (`DOCKER_HOST`, then the current Docker context, then the local socket).

use std::path::PathBuf;

use crate::error::{DockerError, error_chain};

/// The socket the engine listens on when nothing else is configured.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long one request may take until the engine's answer starts. Streams (logs, waits,
/// pulls) get their headers at once, so this does not limit how long a step may run.
const REQUEST_TIMEOUT_SECONDS: u64 = 300;

/// A connection to a Docker engine. Cheap to clone: clones share one HTTP connection pool, so a
/// process should make one and reuse it.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) client: bollard::Docker,
    host: String,
}

/// What the engine says about itself.
#[derive(Clone, Debug)]
pub struct EngineVersion {
    /// The engine's own version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The newest API version the engine speaks, e.g. `1.41`.
    pub api_version: String,
}

impl Engine {
    /// Connects to the engine the docker CLI would use: `DOCKER_HOST`, else the context named by
    /// `DOCKER_CONTEXT` or the config's `currentContext`, else the local socket. Then agrees on an
    /// API version with it, which is the first request: an engine that does not answer is
    /// `DockerError::Unreachable`.
    pub async fn connect() -> Result<Engine, DockerError> {
        Engine::connect_to(&resolve_host()).await
    }

    /// Connects to the engine at `host` (`unix://…`, `tcp://…`, `http://…` or `ssh://user@host`).
    pub async fn connect_to(host: &str) -> Result<Engine, DockerError> {
        let client = client_for_host(host)?;
        let client = client.negotiate_version().await.map_err(|error| unreachable(host, &error))?;
        tracing::debug!(host, api_version = %client.client_version(), "connected to docker engine");
        Ok(Engine { client, host: host.to_string() })
    }

    /// The address this engine was reached at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.client.ping().await.map(|_| ()).map_err(|error| unreachable(&self.host, &error))
    }

    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let version = self.client.version().await.map_err(|error| unreachable(&self.host, &error))?;
        Ok(EngineVersion { version: version.version.unwrap_or_default(), api_version: version.api_version.unwrap_or_default() })
    }
}

fn unreachable(host: &str, error: &bollard::errors::Error) -> DockerError {
    DockerError::Unreachable { host: host.to_string(), reason: error_chain(error) }
}

fn client_for_host(host: &str) -> Result<bollard::Docker, DockerError> {
    let version = bollard::API_DEFAULT_VERSION;
    let unsupported = |reason: &str| DockerError::UnsupportedHost { host: host.to_string(), reason: reason.to_string() };
    let client = if host.starts_with("unix://") {
        bollard::Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECONDS, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|value| !value.is_empty()) {
            return Err(unsupported("TLS (DOCKER_TLS_VERIFY) is not built in; use an ssh:// host or a unix socket"));
        }
        bollard::Docker::connect_with_http(host, REQUEST_TIMEOUT_SECONDS, version)
    } else if host.starts_with("ssh://") {
        bollard::Docker::connect_with_ssh(host, REQUEST_TIMEOUT_SECONDS, version, None)
    } else if host.starts_with("https://") {
        return Err(unsupported("TLS is not built in; use an ssh:// host or a unix socket"));
    } else {
        return Err(unsupported("expected unix://, tcp://, http:// or ssh://"));
    };
    client.map_err(|error| match error {
        // The socket file is missing: no engine runs there, which is not a configuration error.
        bollard::errors::Error::SocketNotFoundError(_) => unreachable(host, &error),
        error => unsupported(&error_chain(&error)),
    })
}

/// The engine address the docker CLI would use, without connecting.
pub fn resolve_host() -> String {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty()) {
        return host;
    }
    let context = std::env::var("DOCKER_CONTEXT").ok().filter(|name| !name.is_empty()).or_else(current_context);
    match context {
        Some(name) if name != "default" => context_host(&name).unwrap_or_else(|| {
            tracing::warn!(context = %name, "docker context not found; using the local socket");
            DEFAULT_HOST.to_string()
        }),
        _ => DEFAULT_HOST.to_string(),
    }
}

fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker"))
}

fn current_context() -> Option<String> {
    let text = std::fs::read_to_string(docker_config_dir()?.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config.get("currentContext")?.as_str().map(str::to_string)
}

/// Finds the context's endpoint by scanning the metadata folder: its folder names are digests of
/// the context names, and reading the `Name` field avoids computing one.
fn context_host(name: &str) -> Option<String> {
    let meta_dir = docker_config_dir()?.join("contexts").join("meta");
    for entry in std::fs::read_dir(meta_dir).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("meta.json")) else { continue };
        let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if meta.get("Name").and_then(|value| value.as_str()) == Some(name) {
            return meta.pointer("/Endpoints/docker/Host").and_then(|value| value.as_str()).map(str::to_string);
        }
    }
    None
}
