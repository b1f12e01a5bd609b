//! `Registry`: which registries are reached over plain HTTP, and one `oci-client` client per
//! operation, made with that operation's credentials.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use crate::error::{Context, RegistryError};

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A username and password for one registry. `Debug` shows the username only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// How Gantry reaches registries. Holds no credentials and no connection: each call makes an
/// `oci-client` client of its own, because `oci-client` keeps the first credentials it was
/// given for a registry for the client's whole life, and one process (an agent) pushes for
/// many repositories with different credentials.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    insecure_hosts: Vec<String>,
}

/// One operation's view of a repository: its reference, the client and credentials to use,
/// and where errors happened.
pub(crate) struct Session<'a> {
    pub(crate) client: oci_client::Client,
    pub(crate) auth: RegistryAuth,
    /// The repository without tag or digest, as the registry names it.
    pub(crate) repository: Reference,
    pub(crate) password: Option<&'a str>,
}

impl Registry {
    /// Docker's default: plain HTTP for 127.0.0.0/8 and `localhost`, HTTPS elsewhere.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Also reaches these registries over plain HTTP (Docker's `insecure-registries`): a
    /// `host:port` is that port only, a bare `host` every port of it.
    pub fn with_insecure_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Registry {
        self.insecure_hosts.extend(hosts);
        self
    }

    /// True when `registry` (`host[:port]`) is reached over plain HTTP.
    pub fn uses_plain_http(&self, registry: &str) -> bool {
        let host = host_of(registry);
        let loopback = host == "localhost" || Ipv4Addr::from_str(host).is_ok_and(|address| address.is_loopback());
        loopback || self.insecure_hosts.iter().any(|insecure| insecure == registry || insecure == host)
    }

    /// A client for `repository` (`registry/name`, no tag or digest) with `credentials`.
    pub(crate) async fn session<'a>(
        &self,
        repository: &str,
        credentials: Option<&'a Credentials>,
        operation: &'static str,
    ) -> Result<Session<'a>, RegistryError> {
        let parsed = Reference::from_str(repository)
            .map_err(|error| RegistryError::InvalidReference { reference: repository.to_string(), reason: error.to_string() })?;
        // `Reference` adds `latest` to a bare repository, so a tag written by the caller is
        // found in the text.
        if repository.contains('@') || tag_written(repository) {
            return Err(RegistryError::InvalidReference {
                reference: repository.to_string(),
                reason: "expected a repository without tag or digest".to_string(),
            });
        }
        let registry = parsed.registry().to_string();
        let protocol = if self.uses_plain_http(&registry) { ClientProtocol::Http } else { ClientProtocol::Https };
        let config =
            ClientConfig { protocol, connect_timeout: Some(CONNECT_TIMEOUT), read_timeout: Some(READ_TIMEOUT), ..ClientConfig::default() };
        let password = credentials.map(|credentials| credentials.password.as_str());
        let context = Context { registry: &registry, repository: parsed.repository(), reference: repository, operation, password };
        let client = oci_client::Client::try_from(config).map_err(|error| context.request(&error))?;
        let auth = match credentials {
            Some(credentials) => RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        client.store_auth_if_needed(parsed.resolve_registry(), &auth).await;
        let repository = Reference::with_tag(registry, parsed.repository().to_string(), "latest".to_string());
        Ok(Session { client, auth, repository, password })
    }
}

impl Session<'_> {
    /// The registry as written (`127.0.0.1:5000`).
    pub(crate) fn registry(&self) -> &str {
        self.repository.registry()
    }

    /// `reference` of this repository, by digest.
    pub(crate) fn by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(self.registry().to_string(), self.repository.repository().to_string(), digest.to_string())
    }

    /// `reference` of this repository, by tag.
    pub(crate) fn by_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(self.registry().to_string(), self.repository.repository().to_string(), tag.to_string())
    }

    /// Where errors about `reference` (`registry/name@digest` or `:tag`) happen.
    pub(crate) fn context<'a>(&'a self, reference: &'a str, operation: &'static str) -> Context<'a> {
        Context { registry: self.registry(), repository: self.repository.repository(), reference, operation, password: self.password }
    }
}

/// `host` of `host[:port]` (`[v6]:port` keeps its brackets' content).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    registry.rsplit_once(':').map_or(registry, |(host, _)| host)
}

/// True when the last path component of `repository` carries a `:tag` (a colon before the
/// first `/` is the registry's port).
fn tag_written(repository: &str) -> bool {
    repository.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::Registry;

    #[test]
    fn loopback_and_listed_registries_are_reached_over_plain_http_like_docker_does() {
        let registry = Registry::new().with_insecure_hosts(["registry.lan:5000".to_owned(), "mirror.lan".to_owned()]);
        for plain in ["127.0.0.1:5000", "127.8.9.10", "localhost:5001", "localhost", "registry.lan:5000", "mirror.lan:443", "mirror.lan"] {
            assert!(registry.uses_plain_http(plain), "{plain}");
        }
        for secure in ["ghcr.io", "registry.lan:5001", "128.0.0.1:5000", "10.0.0.1:5000", "[::1]:5000", "localhost.example.com"] {
            assert!(!registry.uses_plain_http(secure), "{secure}");
        }
    }
}
