//! Where the server may be sent on a non-admin's behalf: the addresses a remote, a forge API or
//! a notifier may resolve to. Loopback, link-local and unspecified addresses are denied by
//! default (the server's own ports, a cloud's metadata service); settings add networks to deny
//! and exceptions to allow. Server administrators are not limited.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proto::remote::{RemoteKind, classify};

/// An address block: `10.0.0.0/8`, `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn new(address: IpAddr, prefix: u8) -> Option<Network> {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(Network { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix)
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Network {
    Network { address: IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix }
}

fn v6(address: Ipv6Addr, prefix: u8) -> Network {
    Network { address: IpAddr::V6(address), prefix }
}

/// The networks a name in a list stands for.
fn named(name: &str) -> Option<Vec<Network>> {
    Some(match name {
        "loopback" => vec![v4(127, 0, 0, 0, 8), v6(Ipv6Addr::LOCALHOST, 128)],
        "link-local" => vec![v4(169, 254, 0, 0, 16), v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10)],
        // 0.0.0.0 reaches the machine itself on Linux, as does the rest of "this network".
        "unspecified" => vec![v4(0, 0, 0, 0, 8), v6(Ipv6Addr::UNSPECIFIED, 128)],
        "private" => vec![
            v4(10, 0, 0, 0, 8),
            v4(172, 16, 0, 0, 12),
            v4(192, 168, 0, 0, 16),
            v4(100, 64, 0, 0, 10),
            v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        ],
        "none" => Vec::new(),
        _ => return None,
    })
}

/// What `GANTRY_EGRESS_DENY` is when not set.
pub const DEFAULT_DENY: &str = "loopback,link-local,unspecified";

/// A comma- or space-separated list of networks (`10.0.0.0/8`, `192.0.2.7`, `::1/128`) and
/// names (`loopback`, `link-local`, `unspecified`, `private`, `none`).
pub fn parse_networks(text: &str) -> Result<Vec<Network>, String> {
    let mut networks = Vec::new();
    for item in text.split([',', ' ', '\n', '\t']).map(str::trim).filter(|item| !item.is_empty()) {
        if let Some(named) = named(item) {
            networks.extend(named);
            continue;
        }
        let (address, prefix) = match item.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (item, None),
        };
        let address: IpAddr = address.trim_matches(['[', ']']).parse().map_err(|_| format!("`{item}` is not a network or address"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| format!("`{item}` has no valid prefix length"))?,
            None => bits,
        };
        networks.push(Network::new(address, prefix).ok_or_else(|| format!("`{item}`: a prefix is at most {bits}"))?);
    }
    Ok(networks)
}

/// The networks non-admins may not reach, and exceptions to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressPolicy {
    pub deny: Vec<Network>,
    /// Allowed even when `deny` covers them (a forge on the server's own network).
    pub allow: Vec<Network>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy { deny: parse_networks(DEFAULT_DENY).expect("the default list parses"), allow: Vec::new() }
    }
}

impl EgressPolicy {
    /// Whether a non-admin may have the server connect to `address`. An IPv4 address written
    /// as IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 address it is.
    pub fn permits(&self, address: IpAddr) -> bool {
        let forms: Vec<IpAddr> = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| compatible_ipv4(v6)) {
                Some(v4) => vec![address, IpAddr::V4(v4)],
                None => vec![address],
            },
            IpAddr::V4(_) => vec![address],
        };
        let listed = |list: &[Network], form: &IpAddr| list.iter().any(|network| network.contains(*form));
        forms.iter().all(|form| !listed(&self.deny, form) || listed(&self.allow, form))
    }
}

/// `::a.b.c.d`, the deprecated IPv4-compatible form (not `::` and `::1`).
fn compatible_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = address.segments();
    (segments[..6].iter().all(|segment| *segment == 0) && u128::from(address) > 1)
        .then(|| Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7])))
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The host resolves (or is) an address the policy denies.
    #[error("{host} is an address this server does not reach for non-admins")]
    Denied { host: String, address: IpAddr },
    /// A local path, `file://` or a remote helper.
    #[error("a local path, file:// or a remote helper is for server administrators")]
    Local,
    #[error("{0}")]
    Invalid(String),
}

/// Checks that `host` (a name or an address literal) resolves only to permitted addresses, and
/// returns them. A name that does not resolve is let through: it reaches nothing, and each
/// use checks again.
pub async fn check_host(policy: &EgressPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(address) => vec![SocketAddr::new(address, port)],
        // The system resolver reads `127.1`, `2130706433` and `localhost` as git and curl do.
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(addresses) => addresses.collect(),
            Err(error) => {
                tracing::info!(%host, %error, "a host that does not resolve");
                Vec::new()
            }
        },
    };
    if let Some(denied) = addresses.iter().find(|address| !policy.permits(address.ip())) {
        return Err(EgressError::Denied { host: host.to_owned(), address: denied.ip() });
    }
    Ok(addresses)
}

/// Checks the host of a git remote, a forge API or a notifier address.
pub async fn check_url(policy: &EgressPolicy, url: &str) -> Result<Vec<SocketAddr>, EgressError> {
    match classify(url) {
        Ok(RemoteKind::Network(remote)) => check_host(policy, &remote.host, remote.port_or_default()).await,
        Ok(RemoteKind::Local | RemoteKind::Helper { .. }) => Err(EgressError::Local),
        Err(error) => Err(EgressError::Invalid(error.reason)),
    }
}

/// As [`check_url`], for an address a non-admin sets in `field`: the refusal as an answer.
pub async fn check_field(policy: &EgressPolicy, field: &str, url: &str) -> Result<(), crate::error::ApiError> {
    use crate::error::ApiError;
    match check_url(policy, url).await {
        Ok(_) => Ok(()),
        Err(EgressError::Invalid(reason)) => Err(ApiError::invalid(field, reason)),
        Err(error) => {
            tracing::info!(%field, %error, "an address refused to a non-admin");
            Err(ApiError { field: Some(field.into()), ..ApiError::forbidden(format!("{error}; ask a server administrator")) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_denies_the_machine_itself_and_link_local_addresses() {
        let policy = EgressPolicy::default();
        for denied in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
        ] {
            assert!(!policy.permits(denied.parse().unwrap()), "{denied}");
        }
        for permitted in ["192.0.2.10", "10.1.2.3", "2001:db8::1", "::ffff:192.0.2.10"] {
            assert!(policy.permits(permitted.parse().unwrap()), "{permitted}");
        }
    }

    #[test]
    fn lists_parse_and_allow_makes_exceptions() {
        let policy = EgressPolicy { deny: parse_networks("loopback, private").unwrap(), allow: parse_networks("10.1.0.0/16").unwrap() };
        assert!(policy.permits("10.1.2.3".parse().unwrap()));
        assert!(!policy.permits("10.2.0.1".parse().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("example.com").is_err());
        assert_eq!(parse_networks("none").unwrap(), Vec::new());
        assert_eq!(parse_networks("[::1]").unwrap(), vec![v6(Ipv6Addr::LOCALHOST, 128)]);
    }
}
