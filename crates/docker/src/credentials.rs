//! Registry credentials as the engine wants them: which registry an image reference names, and
//! a username and password that never show in `Debug` output or in errors.

use std::collections::{BTreeMap, HashMap};

/// The key Docker keeps Docker Hub's credentials under. The engine looks Hub's credentials up
/// by this exact key, and other registries' by their host.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What an image reference without a registry part is pulled from.
pub const DOCKER_HUB: &str = "docker.io";

/// A username and password for one registry. `Debug` shows the username only, so that the
/// credentials can sit in options that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistryCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl RegistryCredentials {
    pub(crate) fn for_engine(&self, registry: &str) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(registry.to_string()),
            ..Default::default()
        }
    }
}

/// The registry host an image reference names, the way Docker reads references: the part
/// before the first `/` when it has a `.` or a `:` or is `localhost`, else Docker Hub
/// (`docker.io`). `127.0.0.1:5000/team/app:1` → `127.0.0.1:5000`, `team/app` → `docker.io`.
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            if matches!(first, "index.docker.io" | "registry-1.docker.io") { DOCKER_HUB } else { first }
        }
        _ => DOCKER_HUB,
    }
}

/// The `X-Registry-Config` map of a build: every registry under the key the engine looks it up
/// by (Docker Hub's names all become Hub's one key).
pub(crate) fn engine_credentials_map(
    credentials: &BTreeMap<String, RegistryCredentials>,
) -> HashMap<String, bollard::auth::DockerCredentials> {
    credentials
        .iter()
        .map(|(host, credentials)| {
            let host = host.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            let key = if matches!(host, DOCKER_HUB | "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1") {
                DOCKER_HUB_KEY.to_string()
            } else {
                host.to_string()
            };
            (key, credentials.for_engine(host))
        })
        .collect()
}

/// `text` with every given password replaced: the engine's messages are not known to quote
/// one, and an error must never do so.
pub(crate) fn redact<'a>(text: String, passwords: impl IntoIterator<Item = &'a str>) -> String {
    passwords.into_iter().filter(|password| !password.is_empty()).fold(text, |text, password| text.replace(password, "********"))
}

/// True when a registry's answer, as the engine reports it, means the credentials were
/// missing, wrong or not allowed to do this.
pub(crate) fn is_auth_failure(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    ["unauthorized", "authentication required", "no basic auth credentials", "denied", "incorrect username or password"]
        .iter()
        .any(|marker| reason.contains(marker))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{RegistryCredentials, engine_credentials_map, redact, registry_host};

    #[test]
    fn the_registry_of_a_reference_is_read_as_docker_reads_it() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("team/app:1"), "docker.io");
        assert_eq!(registry_host("localhost/app"), "localhost");
        assert_eq!(registry_host("127.0.0.1:5000/team/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_host("ghcr.io/owner/app@sha256:abcd"), "ghcr.io");
        assert_eq!(registry_host("index.docker.io/library/busybox"), "docker.io");
    }

    #[test]
    fn docker_hub_credentials_go_under_the_key_the_engine_looks_for() {
        let credentials = RegistryCredentials { username: "user".to_owned(), password: "secret".to_owned() };
        let map =
            BTreeMap::from([("docker.io".to_owned(), credentials.clone()), ("https://127.0.0.1:5001/".to_owned(), credentials.clone())]);
        let mut keys: Vec<String> = engine_credentials_map(&map).into_keys().collect();
        keys.sort();
        assert_eq!(keys, ["127.0.0.1:5001", "https://index.docker.io/v1/"]);
    }

    #[test]
    fn passwords_never_show() {
        let credentials = RegistryCredentials { username: "user".to_owned(), password: "hunter2".to_owned() };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert_eq!(redact("login hunter2 failed".to_owned(), ["hunter2", ""]), "login ******** failed");
    }
}
