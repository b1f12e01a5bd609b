//! Git remote addresses read the way git reads them: which transport an address means (a network
//! protocol, the local disk, or a remote-helper program), its host and port, and the credentials
//! written into it. Pure text handling, here because the server (what it stores and fetches) and
//! the agent (what it clones) must read a clone URL the same way.
//!
//! Git's own rules (`transport.c`, `connect.c`), in the order git applies them:
//! 1. `<name>::<address>` runs the remote helper `git-remote-<name>` (`ext::` runs commands).
//! 2. An address without a `:`, or with a `/` before its first `:`, is a local path
//!    (`url_is_local_not_ssh`): `/srv/x`, `./x`, `/a/en@quot/../..:x`.
//! 3. `file://` is the local disk; `http(s)://` is curl; `ssh://`, `git+ssh://`, `ssh+git://` and
//!    `git://` are git's own; any other `scheme://` runs the helper `git-remote-<scheme>`.
//! 4. What is left (`[user@]host:path`, the `:` before any `/`) is ssh.

use crate::agent::CloneCredentials as Credentials;

/// What git does to reach an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    /// Over the network with http, https, ssh or git.
    Network(NetworkRemote),
    /// From the disk of the machine running git: a path or `file://`.
    Local,
    /// Through a remote-helper program: `ext::…`, `fd::…`, `<name>::…`, or a `scheme://` git
    /// does not know itself (`ftp://`, `FILE://`).
    Helper { name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Ssh,
    Git,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ssh => "ssh",
            Scheme::Git => "git",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Ssh => 22,
            Scheme::Git => 9418,
        }
    }
}

/// A network remote's parts.
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkRemote {
    pub scheme: Scheme,
    /// Without brackets for IPv6 literals, as written otherwise.
    pub host: String,
    /// The port written in the address, if any.
    pub port: Option<u16>,
    /// The user of the address's user information, percent-decoded.
    pub username: Option<String>,
    /// The password of the address's user information, percent-decoded.
    pub password: Option<String>,
}

impl std::fmt::Debug for NetworkRemote {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NetworkRemote")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl NetworkRemote {
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// `scheme://host:port`, the port always written: two addresses with the same origin reach
    /// the same server.
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.to_ascii_lowercase() };
        format!("{}://{host}:{}", self.scheme.as_str(), self.port_or_default())
    }
}

/// An address git cannot use, or that could pass options to the programs git runs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RemoteError {
    pub reason: String,
}

fn invalid(reason: impl Into<String>) -> RemoteError {
    RemoteError { reason: reason.into() }
}

/// What git does with `url` (see the module's rules).
pub fn classify(url: &str) -> Result<RemoteKind, RemoteError> {
    if url.trim().is_empty() {
        return Err(invalid("the address is empty"));
    }
    if url.starts_with('-') {
        return Err(invalid("an address cannot start with '-'"));
    }
    if url.chars().any(char::is_control) {
        return Err(invalid("an address cannot hold control characters"));
    }
    if let Some(name) = helper_name(url) {
        return Ok(RemoteKind::Helper { name: name.to_owned() });
    }
    let colon = url.find(':');
    let slash = url.find('/');
    match (colon, slash) {
        (None, _) => return Ok(RemoteKind::Local),
        (Some(colon), Some(slash)) if slash < colon => return Ok(RemoteKind::Local),
        _ => {}
    }
    if url.starts_with("file://") {
        return Ok(RemoteKind::Local);
    }
    if let Some((scheme, rest)) = url_scheme(url) {
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
            "git" => Scheme::Git,
            other => return Ok(RemoteKind::Helper { name: other.to_owned() }),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        return network(scheme, authority).map(RemoteKind::Network);
    }
    // scp-like: [user@]host:path, or [user@][host:port]:path.
    let (before_path, _path) = scp_split(url).ok_or_else(|| invalid("the address has no host"))?;
    let (userinfo, host_part) = match before_path.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, before_path),
    };
    let (host, port) = match host_part.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
        Some(inner) if inner.parse::<std::net::Ipv6Addr>().is_ok() => (inner.to_owned(), None),
        Some(inner) => match inner.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse::<u16>().map_err(|_| invalid(format!("`{port}` is not a port")))?)),
            None => (inner.to_owned(), None),
        },
        None => (host_part.to_owned(), None),
    };
    check_host(&host)?;
    let username = userinfo.map(|userinfo| percent_decode(userinfo.split(':').next().unwrap_or_default()));
    Ok(RemoteKind::Network(NetworkRemote { scheme: Scheme::Ssh, host, port, username, password: None }))
}

/// `name` of `name::address`, as git's `transport_get` finds it.
fn helper_name(url: &str) -> Option<&str> {
    let end = url.find("::")?;
    let name = &url[..end];
    is_scheme(name).then_some(name)
}

/// `scheme` and what follows `scheme://`, for a scheme git's `is_url` accepts.
fn url_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    is_scheme(scheme).then_some((scheme, rest))
}

fn is_scheme(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic())
        && characters.all(|character| character.is_ascii_alphanumeric() || matches!(character, '+' | '-' | '.'))
}

/// `host` and `path` of an scp-like address: the first `:` outside brackets splits them.
fn scp_split(url: &str) -> Option<(&str, &str)> {
    let bracket_end = match (url.find('['), url.find(':')) {
        (Some(open), Some(colon)) if open < colon => url[open..].find(']').map(|close| open + close)?,
        _ => 0,
    };
    let colon = bracket_end + url[bracket_end..].find(':')?;
    Some((&url[..colon], &url[colon + 1..]))
}

fn network(scheme: Scheme, authority: &str) -> Result<NetworkRemote, RemoteError> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| invalid("an IPv6 address lacks its closing ']'"))?;
        let port = match after {
            "" => None,
            port => Some(port.strip_prefix(':').unwrap_or(port)),
        };
        (host, port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(port.parse::<u16>().map_err(|_| invalid(format!("`{port}` is not a port")))?),
    };
    check_host(host)?;
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (Some(percent_decode(user)), Some(percent_decode(password))),
            None => (Some(percent_decode(userinfo)), None),
        },
    };
    Ok(NetworkRemote { scheme, host: host.to_owned(), port, username, password })
}

fn check_host(host: &str) -> Result<(), RemoteError> {
    if host.is_empty() {
        return Err(invalid("the address has no host"));
    }
    if host.starts_with('-') {
        return Err(invalid("a host cannot start with '-'"));
    }
    if host.chars().any(|character| character.is_whitespace() || matches!(character, '/' | '\\' | '@' | '[' | ']')) {
        return Err(invalid(format!("`{host}` is not a host name")));
    }
    Ok(())
}

/// `%41` → `A`, as git decodes a URL's user information.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(value) = text.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(value);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An address without what must not be stored in git's configuration or shown: an http(s)
/// address loses its whole user information (a token can be the user name), the others their
/// password. With the credentials it held, when it was an http(s) address that had some.
pub fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let Ok(RemoteKind::Network(remote)) = classify(url) else { return (url.to_owned(), None) };
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some((userinfo, host)) = rest[..authority_end].rsplit_once('@') else { return (url.to_owned(), None) };
    let path = &rest[authority_end..];
    match remote.scheme {
        Scheme::Http | Scheme::Https => {
            let credentials = Credentials {
                username: remote.username.clone().unwrap_or_default(),
                password: remote.password.clone().unwrap_or_default(),
            };
            (format!("{scheme}://{host}{path}"), Some(credentials))
        }
        Scheme::Ssh | Scheme::Git => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let user = if user.is_empty() { String::new() } else { format!("{user}@") };
            (format!("{scheme}://{user}{host}{path}"), None)
        }
    }
}

/// `protocol` and `host` of `url` as git's credential protocol writes them: the scheme, and the
/// authority without its user information (the port kept when the address has one). A
/// credential helper answers only when git asks for these.
pub fn credential_target(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else { return (String::new(), String::new()) };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (scheme.to_owned(), host.to_owned())
}

/// What a change of credentials is tied to: the origin of a network address, the whole address
/// otherwise. Credentials set for one scope must not follow an address to another.
pub fn credential_scope(url: &str) -> String {
    match classify(url) {
        Ok(RemoteKind::Network(remote)) => remote.origin(),
        _ => url.to_owned(),
    }
}

/// Removes the user information (`user:password@`) from every URL in `text`: a single URL, or
/// git's message naming one. Credentials never appear in answers, logs or errors.
pub fn redact_credentials(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        result.push_str(head);
        let authority_end = tail
            .find(|character: char| matches!(character, '/' | '?' | '#' | '\'' | '"') || character.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => result.push_str(&authority[at + 1..]),
            None => result.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(url: &str) -> String {
        match classify(url) {
            Ok(RemoteKind::Network(remote)) => format!("{} {} {:?}", remote.scheme.as_str(), remote.host, remote.port),
            Ok(RemoteKind::Local) => "local".into(),
            Ok(RemoteKind::Helper { name }) => format!("helper {name}"),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn addresses_are_read_as_git_reads_them() {
        let cases = [
            ("https://github.com/acme/app.git", "https github.com None"),
            ("http://bot:pw@127.0.0.1:8080/x.git", "http 127.0.0.1 Some(8080)"),
            ("https://[::1]:8443/x.git", "https ::1 Some(8443)"),
            ("ssh://git@host.example:2222/x.git", "ssh host.example Some(2222)"),
            ("git+ssh://host.example/x.git", "ssh host.example None"),
            ("git://host.example/x.git", "git host.example None"),
            ("git@github.com:acme/app.git", "ssh github.com None"),
            ("host.example:acme/app.git", "ssh host.example None"),
            ("git@[::1]:x.git", "ssh ::1 None"),
            ("[host.example:2222]:x.git", "ssh host.example Some(2222)"),
            ("/usr/share/locale/en@quot/../../..:x/y", "local"),
            ("./x", "local"),
            ("x", "local"),
            ("/srv/x", "local"),
            ("file:///x", "local"),
            ("../a:b", "local"),
            ("ext::sh -c x", "helper ext"),
            ("fd::7", "helper fd"),
            ("foo::bar", "helper foo"),
            ("https::https://host/x", "helper https"),
            ("ftp://host/x", "helper ftp"),
            ("FILE:///x", "helper FILE"),
            ("-oProxyCommand=x", "error: an address cannot start with '-'"),
            ("ssh://-oProxyCommand=x/y", "error: a host cannot start with '-'"),
            ("git@-oProxyCommand=x:y", "error: a host cannot start with '-'"),
            ("https:///x", "error: the address has no host"),
        ];
        for (url, expected) in cases {
            assert_eq!(kind(url), expected, "{url}");
        }
    }

    #[test]
    fn credentials_leave_the_address() {
        let (url, credentials) = split_credentials("https://bot:p%40ss@host.example/x.git");
        assert_eq!(url, "https://host.example/x.git");
        let credentials = credentials.unwrap();
        assert_eq!((credentials.username.as_str(), credentials.password.as_str()), ("bot", "p@ss"));
        let (url, credentials) = split_credentials("https://ghp_token@github.com/x.git");
        assert_eq!(url, "https://github.com/x.git");
        assert_eq!(credentials.unwrap().username, "ghp_token");
        assert_eq!(split_credentials("ssh://git:pw@host/x.git"), ("ssh://git@host/x.git".into(), None));
        assert_eq!(split_credentials("git@host:x.git"), ("git@host:x.git".into(), None));
        assert_eq!(split_credentials("file:///srv/x.git"), ("file:///srv/x.git".into(), None));
        assert_eq!(split_credentials("https://host/a@b.git"), ("https://host/a@b.git".into(), None));
        assert_eq!(credential_target("http://127.0.0.1:8080/x.git"), ("http".into(), "127.0.0.1:8080".into()));
    }

    #[test]
    fn scopes_are_origins() {
        assert_eq!(credential_scope("https://bot:pw@Host.example/x.git"), "https://host.example:443");
        assert_eq!(credential_scope("https://host.example:443/y.git"), "https://host.example:443");
        assert_ne!(credential_scope("https://host.example/x"), credential_scope("https://host.example:8443/x"));
        assert_ne!(credential_scope("https://host.example/x"), credential_scope("http://host.example/x"));
        assert_eq!(credential_scope("git@host.example:x"), "ssh://host.example:22");
    }
}
