//! `Registry`: which registries are reached over plain HTTP, how often one registry may be
//! asked, and one `oci-client` client per operation, made with that operation's credentials.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use crate::error::{Context, RegistryError};

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The least time between two requests to one registry unless `with_request_interval` says
/// otherwise: a deployer polling two hundred applications spreads its requests instead of
/// sending them all at once.
pub const DEFAULT_REQUEST_INTERVAL: Duration = Duration::from_millis(100);
/// Tags asked for per page unless `with_tag_page_size` says otherwise: as many as the
/// registries that cap `n` take.
const DEFAULT_TAG_PAGE_SIZE: usize = 1000;

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
///
/// Requests to one registry are spaced by at least the request interval (default
/// [`DEFAULT_REQUEST_INTERVAL`]); clones share the spacing, so every task of a process that
/// uses clones of one `Registry` is paced together. One call counts once for each request it
/// makes itself (each page of tags, each manifest and blob); the authentication exchange
/// `oci-client` makes at the start of a call is not counted apart.
#[derive(Clone, Debug)]
pub struct Registry {
    insecure_hosts: Vec<String>,
    pacing: Pacing,
    /// Tags asked for per page (`n`).
    pub(crate) tag_page_size: usize,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry { insecure_hosts: Vec::new(), pacing: Pacing::default(), tag_page_size: DEFAULT_TAG_PAGE_SIZE }
    }
}

/// When each registry may be asked next. Shared by clones.
#[derive(Clone, Debug)]
pub(crate) struct Pacing {
    interval: Duration,
    next_request: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing { interval: DEFAULT_REQUEST_INTERVAL, next_request: Arc::default() }
    }
}

impl Pacing {
    /// Waits until `registry` may be asked again, and books the time after that for the next
    /// caller. Callers waiting at once get successive times, in the order they asked.
    pub(crate) async fn wait(&self, registry: &str) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next_request = self.next_request.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next_request.get(registry).copied().filter(|next| *next > now).unwrap_or(now);
            next_request.insert(registry.to_owned(), slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// What an operation sends to authenticate a request it makes itself (not through
/// `oci-client`): the token of the registry's token service, the username and password of a
/// registry with basic authentication, or nothing.
pub(crate) enum Authorization {
    Bearer(String),
    Basic(String, String),
    Anonymous,
}

impl Authorization {
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Authorization::Bearer(token) => request.bearer_auth(token),
            Authorization::Basic(username, password) => request.basic_auth(username, Some(password)),
            Authorization::Anonymous => request,
        }
    }
}

/// One operation's view of a repository: its reference, the client and credentials to use,
/// and where errors happened.
pub(crate) struct Session<'a> {
    pub(crate) client: oci_client::Client,
    pub(crate) auth: RegistryAuth,
    /// The repository without tag or digest, as the registry names it.
    pub(crate) repository: Reference,
    pub(crate) password: Option<&'a str>,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    pacing: Pacing,
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

    /// Asks for `size` tags per page (at least one) when listing tags, for registries that
    /// refuse the default of 1000.
    pub fn with_tag_page_size(mut self, size: usize) -> Registry {
        self.tag_page_size = size.max(1);
        self
    }

    /// Spaces requests to one registry by at least `interval` (zero: not at all).
    pub fn with_request_interval(mut self, interval: Duration) -> Registry {
        self.pacing = Pacing { interval, next_request: Arc::default() };
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
        let plain_http = self.uses_plain_http(&registry);
        let protocol = if plain_http { ClientProtocol::Http } else { ClientProtocol::Https };
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
        let session =
            Session { client, auth, repository, password, scheme: if plain_http { "http" } else { "https" }, pacing: self.pacing.clone() };
        session.pace().await;
        Ok(session)
    }
}

impl Session<'_> {
    /// The registry as written (`127.0.0.1:5000`).
    pub(crate) fn registry(&self) -> &str {
        self.repository.registry()
    }

    /// Waits for this registry's next free time (see `Registry`'s pacing).
    pub(crate) async fn pace(&self) {
        self.pacing.wait(self.repository.resolve_registry()).await;
    }

    /// `https://registry` (or `http://`): where the API of this registry is, Docker Hub's
    /// name resolved to the host that serves it.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.repository.resolve_registry())
    }

    /// How to authenticate a pull of this repository in a request of our own: the registry's
    /// token service is asked (through `oci-client`, which follows the registry's challenge)
    /// when it has one; a registry with basic authentication gets the credentials.
    pub(crate) async fn authorization(&self) -> Result<Authorization, OciDistributionError> {
        match self.client.auth(&self.repository, &self.auth, RegistryOperation::Pull).await? {
            Some(token) => Ok(Authorization::Bearer(token)),
            None => Ok(match &self.auth {
                RegistryAuth::Basic(username, password) => Authorization::Basic(username.clone(), password.clone()),
                _ => Authorization::Anonymous,
            }),
        }
    }

    /// An HTTP client for requests `oci-client` has no call for, with its timeouts.
    pub(crate) fn http(&self, context: &Context<'_>) -> Result<reqwest::Client, RegistryError> {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|error| context.request(&error))
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
    use std::time::{Duration, Instant};

    use super::Registry;

    #[tokio::test]
    async fn requests_to_one_registry_are_spaced_and_other_registries_do_not_wait() {
        let registry = Registry::new().with_request_interval(Duration::from_millis(80));
        let clone = registry.clone();
        let started = Instant::now();
        registry.pacing.wait("127.0.0.1:5000").await;
        assert!(started.elapsed() < Duration::from_millis(60), "the first request waits for nothing");
        registry.pacing.wait("ghcr.io").await;
        assert!(started.elapsed() < Duration::from_millis(60), "another registry has its own spacing");
        clone.pacing.wait("127.0.0.1:5000").await;
        clone.pacing.wait("127.0.0.1:5000").await;
        assert!(started.elapsed() >= Duration::from_millis(160), "clones share the spacing: {:?}", started.elapsed());

        let unpaced = Registry::new().with_request_interval(Duration::ZERO);
        let started = Instant::now();
        for _ in 0..5 {
            unpaced.pacing.wait("127.0.0.1:5000").await;
        }
        assert!(started.elapsed() < Duration::from_millis(60));
    }

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
