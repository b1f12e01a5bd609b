//! What a build publishes: the images its build steps pushed, as the agent reports them, and the
//! registry credentials a job carries to pull and push them: the host they are kept by
//! ([`RegistryHost`]) and how a Docker config JSON holds them ([`docker_config_auths`], the
//! format of Drone's `image_pull_secrets` and of `~/.docker/config.json`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One image a build step pushed: every tag of one repository, all pointing at one manifest.
/// The agent sends it in [`crate::agent::JobUpdates`] as soon as the push finished; reporting it
/// again is harmless (the server keeps one per workflow, step and repository).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedImage {
    /// The step that built it.
    pub step: String,
    /// The repository without tag or digest, registry included: `127.0.0.1:5000/team/app`.
    pub repository: String,
    pub tags: Vec<String>,
    /// The manifest digest the registry answered, `sha256:<hex>`; `repository@digest` pulls it.
    pub digest: String,
    /// Bytes of the manifest's config and layers as stored in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The in-toto statement (SLSA provenance v1) describing how the image was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
    /// The digest of the provenance artifact pushed to the same repository, referring to the
    /// image (OCI `subject`); `None` when the registry refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_digest: Option<String>,
}

impl PublishedImage {
    /// `repository@digest`: the name a deployer pins.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// Credentials for one registry host (`registry.example.com`, `127.0.0.1:5000`; `docker.io` for
/// Docker Hub). The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    pub host: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistryAuth").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}

/// Docker Hub's one name as a credential's host; `index.docker.io`, `registry-1.docker.io` and
/// `https://index.docker.io/v1/` (where `docker login` saves it) mean the same registry.
pub const DOCKER_HUB: &str = "docker.io";

/// The longest host kept: a DNS name (253) with a port.
pub const MAX_REGISTRY_HOST: usize = 260;

/// A registry host as credentials are kept by it: lowercase, without a scheme or a trailing `/`,
/// Docker Hub's names all [`DOCKER_HUB`]. `registry.example.com`, `127.0.0.1:5000`, `[::1]:5000`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryHost(String);

/// Why a text is not a registry host. The messages name the text: a host is not a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryHostError {
    #[error("a registry host cannot be empty")]
    Empty,
    #[error("a registry host is at most {MAX_REGISTRY_HOST} characters")]
    TooLong,
    #[error("`{host}` has a path; give the registry's host alone (`registry.example.com`, `127.0.0.1:5000`)")]
    Path { host: String },
    #[error("`{host}` is not a registry host: `{character}` is not allowed (letters, digits, `.`, `-`, `:` and a port)")]
    Character { host: String, character: char },
    #[error("`{host}` is not a registry host: the port must be a number from 1 to 65535")]
    Port { host: String },
}

impl RegistryHost {
    /// Reads a host as a user writes it: `https://` or `http://` and a trailing `/` are dropped,
    /// and Docker Hub's aliases become [`DOCKER_HUB`]; a path, whitespace or another character a
    /// host cannot have is refused.
    pub fn parse(text: &str) -> Result<RegistryHost, RegistryHostError> {
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let without_scheme = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
        let host = without_scheme.trim_end_matches('/');
        if host.is_empty() {
            return Err(RegistryHostError::Empty);
        }
        if host.chars().count() > MAX_REGISTRY_HOST {
            return Err(RegistryHostError::TooLong);
        }
        if matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1") {
            return Ok(RegistryHost(DOCKER_HUB.to_owned()));
        }
        if host.contains('/') {
            return Err(RegistryHostError::Path { host: trimmed.to_owned() });
        }
        if let Some(character) = host.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))) {
            return Err(RegistryHostError::Character { host: trimmed.to_owned(), character });
        }
        // `name:port`, `[v6]:port` or a bare IPv6 address in brackets.
        let port = match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && (!name.contains(':') || name.ends_with(']')) => Some(port),
            Some(_) if host.starts_with('[') && host.ends_with(']') => None,
            Some(_) => return Err(RegistryHostError::Port { host: trimmed.to_owned() }),
            None => None,
        };
        if let Some(port) = port
            && !port.parse::<u16>().is_ok_and(|port| port > 0)
        {
            return Err(RegistryHostError::Port { host: trimmed.to_owned() });
        }
        Ok(RegistryHost(host.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RegistryHost {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Why a Docker config JSON gave no credentials. The messages never quote the text: it holds
/// passwords.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    #[error("it is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the login of `{host}` is not base64 of `user:password`")]
    BadAuth { host: String },
    #[error("`{key}` in `auths` is not a registry host: {reason}")]
    BadHost { key: String, reason: RegistryHostError },
}

/// The credentials of a Docker config JSON (`~/.docker/config.json`, the value of a Drone
/// `image_pull_secrets` secret): each entry of `auths` with `auth` (base64 of `user:password`)
/// or `username` and `password`, under its host as [`RegistryHost`] reads it (a key's path, as
/// in `https://index.docker.io/v1/`, is ignored, as Docker does). Entries with neither are
/// skipped (a credential helper holds those); no `auths` at all is no credentials.
pub fn docker_config_auths(text: &str) -> Result<Vec<RegistryAuth>, DockerConfigError> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|error| DockerConfigError::NotJson { line: error.line(), column: error.column() })?;
    let Some(auths) = config.get("auths").and_then(serde_json::Value::as_object) else { return Ok(Vec::new()) };
    let mut credentials = Vec::new();
    for (key, entry) in auths {
        let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        let (username, password) = match entry.get("auth").and_then(serde_json::Value::as_str) {
            Some(encoded) if !encoded.is_empty() => {
                let bad_auth = || DockerConfigError::BadAuth { host: key.clone() };
                let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad_auth())?;
                let decoded = String::from_utf8(decoded).map_err(|_| bad_auth())?;
                let (username, password) = decoded.split_once(':').ok_or_else(bad_auth)?;
                (username.to_owned(), password.to_owned())
            }
            _ => (field("username"), field("password")),
        };
        if username.is_empty() && password.is_empty() {
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let without_scheme = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
        let host_part = without_scheme.split('/').next().unwrap_or_default();
        let host = RegistryHost::parse(host_part).map_err(|reason| DockerConfigError::BadHost { key: key.clone(), reason })?;
        credentials.push(RegistryAuth { host: host.0, username, password });
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_as_users_write_them() {
        for (text, host) in [
            ("registry.example.com", "registry.example.com"),
            ("https://Registry.Example.com/", "registry.example.com"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("docker.io", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("[::1]:5000", "[::1]:5000"),
            ("localhost:5000", "localhost:5000"),
        ] {
            assert_eq!(RegistryHost::parse(text).map(|host| host.to_string()), Ok(host.to_owned()), "{text}");
        }
        for (text, error) in [
            ("", RegistryHostError::Empty),
            ("https://", RegistryHostError::Empty),
            ("registry.example.com/team/app", RegistryHostError::Path { host: "registry.example.com/team/app".into() }),
            ("registry example.com", RegistryHostError::Character { host: "registry example.com".into(), character: ' ' }),
            ("user@registry.example.com", RegistryHostError::Character { host: "user@registry.example.com".into(), character: '@' }),
            ("registry.example.com:http", RegistryHostError::Port { host: "registry.example.com:http".into() }),
            ("registry.example.com:0", RegistryHostError::Port { host: "registry.example.com:0".into() }),
            ("::1:5000", RegistryHostError::Port { host: "::1:5000".into() }),
        ] {
            assert_eq!(RegistryHost::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(RegistryHost::parse(&"a".repeat(MAX_REGISTRY_HOST + 1)), Err(RegistryHostError::TooLong));
    }

    #[test]
    fn docker_config_logins_are_read_from_auth_or_fields() {
        let text = r#"{"auths":{"127.0.0.1:5001":{"auth":"Z2FudHJ5OnMzY3JldA=="},"https://index.docker.io/v1/":{"username":"u","password":"p:q"},"ghcr.io":{}}}"#;
        let found: Vec<(String, String, String)> =
            docker_config_auths(text).unwrap().into_iter().map(|auth| (auth.host, auth.username, auth.password)).collect();
        assert_eq!(found, [("127.0.0.1:5001".into(), "gantry".into(), "s3cret".into()), ("docker.io".into(), "u".into(), "p:q".into())]);
        assert_eq!(docker_config_auths(r#"{"credsStore":"desktop"}"#), Ok(Vec::new()));
    }

    #[test]
    fn a_broken_docker_config_says_where_without_quoting_it() {
        assert_eq!(docker_config_auths("{\"auths\": hunter2}"), Err(DockerConfigError::NotJson { line: 1, column: 11 }));
        let not_base64 = docker_config_auths(r#"{"auths":{"ghcr.io":{"auth":"hunter2!"}}}"#).unwrap_err();
        assert_eq!(not_base64, DockerConfigError::BadAuth { host: "ghcr.io".into() });
        // base64 of `hunter2`, which has no `:`.
        let no_colon = docker_config_auths(r#"{"auths":{"ghcr.io":{"auth":"aHVudGVyMg=="}}}"#).unwrap_err();
        for error in [not_base64, no_colon] {
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        assert!(matches!(
            docker_config_auths(r#"{"auths":{"bad host":{"username":"u","password":"p"}}}"#),
            Err(DockerConfigError::BadHost { .. })
        ));
    }
}
