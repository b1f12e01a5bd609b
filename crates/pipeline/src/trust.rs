//! Trust: what a step may do only on a repository an admin trusts (or under `gantry exec
//! --trusted`). The one copy of these rules: lint notes what a step needs, `gantry plan` marks
//! it, and `runtime::trust` refuses it when the trust is not granted.
//!
//! Three kinds, as in Woodpecker's trusted flags: *privileged* (privileged mode, host devices),
//! *volumes* (host paths, the Docker socket) and *network* (any network but the workflow's own,
//! DNS servers and search domains, extra host entries). Anything a step could use to reach past
//! its container and its workflow's network is in one of them.

use crate::container::ContainerOptions;
use crate::plan::StepPlan;

/// A kind of trust an admin grants a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrustKind {
    /// Privileged containers and host devices: either can take over the host.
    Privileged,
    /// Host paths and the Docker socket as volumes.
    Volumes,
    /// Networks other than the workflow's own, and the step's own name resolution.
    Network,
}

impl TrustKind {
    pub const ALL: [TrustKind; 3] = [TrustKind::Privileged, TrustKind::Volumes, TrustKind::Network];

    /// The flag's name, as an admin sets it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustKind::Privileged => "privileged",
            TrustKind::Volumes => "volumes",
            TrustKind::Network => "network",
        }
    }

    /// What the flag allows, for messages: "an admin must allow {this}".
    pub fn allows(self) -> &'static str {
        match self {
            TrustKind::Privileged => "privileged steps",
            TrustKind::Volumes => "host volumes",
            TrustKind::Network => "networks",
        }
    }
}

/// The trust granted to a run: a repository's flags on an agent, all or nothing under `gantry exec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrustFlags {
    pub privileged: bool,
    pub volumes: bool,
    pub network: bool,
}

impl TrustFlags {
    pub const NONE: TrustFlags = TrustFlags { privileged: false, volumes: false, network: false };
    pub const ALL: TrustFlags = TrustFlags { privileged: true, volumes: true, network: true };

    pub fn grants(self, kind: TrustKind) -> bool {
        match kind {
            TrustKind::Privileged => self.privileged,
            TrustKind::Volumes => self.volumes,
            TrustKind::Network => self.network,
        }
    }
}

/// One thing a step does that needs trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustNeed {
    pub kind: TrustKind,
    /// The step key that asks for it (`privileged`, `volumes`, `network_mode`, ...).
    pub key: &'static str,
    /// What the step does, and why that needs trust: "it uses the host's network".
    pub reason: String,
}

/// What a planned step needs trust for, in the order of its keys above.
pub fn step_needs(step: &StepPlan) -> Vec<TrustNeed> {
    needs(&step.container)
}

/// What a step with these container options needs trust for. Volumes must be resolved: a
/// Drone step's pipeline volume is its host path when it has one.
pub(crate) fn needs(step: &ContainerOptions) -> Vec<TrustNeed> {
    let mut found = Vec::new();
    let mut need = |kind: TrustKind, key: &'static str, reason: String| found.push(TrustNeed { kind, key, reason });
    if step.privileged {
        need(TrustKind::Privileged, "privileged", "it is privileged: a privileged container can take over the host".into());
    }
    if !step.devices.is_empty() {
        need(
            TrustKind::Privileged,
            "devices",
            format!("it uses host devices ({}): a device is the host's hardware", step.devices.join(", ")),
        );
    }
    for volume in &step.volumes {
        match host_volume(volume) {
            Some(HostVolume::DockerSocket) => need(
                TrustKind::Volumes,
                "volumes",
                format!("it mounts the Docker socket ({volume}): whoever has the socket is root on the host"),
            ),
            Some(HostVolume::Path(source)) => need(
                TrustKind::Volumes,
                "volumes",
                format!("it mounts the host path {source}: a step could read or change files outside its workspace"),
            ),
            None => {}
        }
    }
    match network_mode(step.network_mode.as_deref()) {
        NetworkMode::Own => {}
        NetworkMode::Host => need(TrustKind::Network, "network_mode", "it uses the host's network".into()),
        NetworkMode::Container(container) => need(
            TrustKind::Network,
            "network_mode",
            format!("it joins the network of container `{container}`, which may be the host's, instead of its workflow's"),
        ),
        NetworkMode::Other(network) => {
            need(TrustKind::Network, "network_mode", format!("it joins the network `{network}` instead of its workflow's"));
        }
    }
    if !step.dns.is_empty() {
        need(TrustKind::Network, "dns", format!("it sets its own DNS servers ({})", step.dns.join(", ")));
    }
    if !step.dns_search.is_empty() {
        need(TrustKind::Network, "dns_search", format!("it sets its own DNS search domains ({})", step.dns_search.join(", ")));
    }
    if !step.extra_hosts.is_empty() {
        let gateway =
            if step.extra_hosts.iter().any(|entry| entry.contains("host-gateway")) { ": `host-gateway` is the host itself" } else { "" };
        need(TrustKind::Network, "extra_hosts", format!("it adds host names of its own ({}){gateway}", step.extra_hosts.join(", ")));
    }
    found
}

enum HostVolume<'a> {
    DockerSocket,
    Path(&'a str),
}

/// Whether a volume (`source:target[:mode]`, or a lone path, an anonymous volume) reaches the
/// host. A source that is not a path names one of the workflow's own volumes. Fails closed: the
/// socket is refused however it is written, and any absolute source is a host path.
fn host_volume(volume: &str) -> Option<HostVolume<'_>> {
    let source = volume.split(':').next().unwrap_or("");
    if volume.contains("docker.sock") {
        return Some(HostVolume::DockerSocket);
    }
    let absolute = source.trim_start().starts_with('/') || source.trim_start().starts_with('\\');
    (absolute && volume.contains(':')).then_some(HostVolume::Path(source))
}

enum NetworkMode<'a> {
    /// The workflow's own network (no mode), or none at all.
    Own,
    Host,
    Container(&'a str),
    /// A named network, `bridge` (the engine's default, shared with every container on it), or
    /// anything the engine may read as one.
    Other(&'a str),
}

/// Only the workflow's own network and `none` are free; every other spelling is something the
/// engine may join, so it needs trust (fail closed, including case variants of `host`).
fn network_mode(mode: Option<&str>) -> NetworkMode<'_> {
    match mode {
        None | Some("" | "none") => NetworkMode::Own,
        Some(mode) if mode.trim().eq_ignore_ascii_case("host") => NetworkMode::Host,
        Some(mode) => match mode.trim().split_once(':') {
            Some((prefix, container)) if prefix.eq_ignore_ascii_case("container") => NetworkMode::Container(container),
            _ => NetworkMode::Other(mode),
        },
    }
}
