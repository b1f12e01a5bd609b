//! Trust, from the file to the decision: every key and spelling that reaches past a step's
//! container, in both dialects, is noted by lint at the key, found in the plan with its kind, and
//! refused unless exactly that kind of trust is granted. What needs no trust is neither noted nor
//! refused.

use pipeline::trust::{TrustFlags, TrustKind};
use pipeline::{CompileOptions, Context, Severity, SourceFile, lint_files, plan_files};
use runtime::trust::{needs_trust, refused};

use TrustKind::{Network, Privileged, Volumes};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Woodpecker,
    Drone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Step,
    Service,
}

struct Case {
    name: &'static str,
    dialect: Dialect,
    role: Role,
    /// Keys of the step, as written at the step's indentation.
    keys: &'static str,
    /// What the file has besides its steps (Drone pipeline volumes, Woodpecker anchors, a matrix).
    top: &'static str,
    /// What the step needs trust for: the kind and the key lint points at.
    needs: &'static [(TrustKind, &'static str)],
    /// Where lint points, when not at the key: a merged key is noted where it is merged in.
    noted_at: Option<&'static str>,
}

const fn case(name: &'static str, dialect: Dialect, keys: &'static str, needs: &'static [(TrustKind, &'static str)]) -> Case {
    Case { name, dialect, role: Role::Step, keys, top: "", needs, noted_at: None }
}

use Dialect::{Drone, Woodpecker};

const CASES: &[Case] = &[
    // Privileged mode and devices.
    case("privileged: true", Woodpecker, "privileged: true", &[(Privileged, "privileged")]),
    case("privileged: yes (YAML 1.1)", Woodpecker, "privileged: yes", &[(Privileged, "privileged")]),
    case("privileged: on", Woodpecker, "privileged: on", &[(Privileged, "privileged")]),
    case("privileged: \"true\" (a string)", Woodpecker, "privileged: \"true\"", &[(Privileged, "privileged")]),
    case("privileged: True", Woodpecker, "privileged: True", &[(Privileged, "privileged")]),
    case("privileged: true, Drone", Drone, "privileged: true", &[(Privileged, "privileged")]),
    case("privileged: false", Woodpecker, "privileged: false", &[]),
    case("devices as a list", Woodpecker, "devices:\n  - /dev/kvm\n  - /dev/net/tun", &[(Privileged, "devices")]),
    case("devices as a string", Woodpecker, "devices: /dev/fuse", &[(Privileged, "devices")]),
    case("devices with a container path, Drone", Drone, "devices:\n  - /dev/sda:/dev/xvda:rwm", &[(Privileged, "devices")]),
    // Host paths and the Docker socket.
    case("the Docker socket", Woodpecker, "volumes:\n  - /var/run/docker.sock:/var/run/docker.sock", &[(Volumes, "volumes")]),
    case("the Docker socket read-only", Woodpecker, "volumes: [\"/var/run/docker.sock:/var/run/docker.sock:ro\"]", &[(Volumes, "volumes")]),
    case("the Docker socket under /run", Woodpecker, "volumes:\n  - /run/docker.sock:/tmp/engine", &[(Volumes, "volumes")]),
    case("the Docker socket as a lone path", Woodpecker, "volumes:\n  - /var/run/docker.sock", &[(Volumes, "volumes")]),
    case("a host folder", Woodpecker, "volumes:\n  - /etc:/host-etc", &[(Volumes, "volumes")]),
    case("the host's root", Woodpecker, "volumes:\n  - /:/host:ro", &[(Volumes, "volumes")]),
    case("a host path with a leading space", Woodpecker, "volumes:\n  - \" /etc:/host-etc\"", &[(Volumes, "volumes")]),
    case("two host paths", Woodpecker, "volumes:\n  - /etc:/a\n  - /srv:/b", &[(Volumes, "volumes"), (Volumes, "volumes")]),
    case("a named volume", Woodpecker, "volumes:\n  - cache:/cache", &[]),
    case("an anonymous volume", Woodpecker, "volumes:\n  - /cache", &[]),
    case("a host path written inline, Drone", Drone, "volumes:\n  - /var/run/docker.sock:/var/run/docker.sock", &[(Volumes, "volumes")]),
    Case {
        name: "the Docker socket as a pipeline host volume, Drone",
        dialect: Drone,
        role: Role::Step,
        keys: "volumes:\n  - name: engine\n    path: /var/run/docker.sock",
        top: "volumes:\n- name: engine\n  host:\n    path: /var/run/docker.sock\n",
        needs: &[(Volumes, "volumes")],
        noted_at: None,
    },
    Case {
        name: "a host folder as a pipeline host volume, Drone",
        dialect: Drone,
        role: Role::Step,
        keys: "volumes:\n  - name: data\n    path: /data",
        top: "volumes:\n- name: data\n  host:\n    path: /srv/data\n",
        needs: &[(Volumes, "volumes")],
        noted_at: None,
    },
    Case {
        name: "a temporary pipeline volume, Drone",
        dialect: Drone,
        role: Role::Step,
        keys: "volumes:\n  - name: cache\n    path: /cache",
        top: "volumes:\n- name: cache\n  temp: {}\n",
        needs: &[],
        noted_at: None,
    },
    case("tmpfs", Woodpecker, "tmpfs:\n  - /run:size=64m", &[]),
    // Networks and name resolution.
    case("network_mode: host", Woodpecker, "network_mode: host", &[(Network, "network_mode")]),
    case("network_mode: HOST", Woodpecker, "network_mode: HOST", &[(Network, "network_mode")]),
    case("network_mode: host, Drone", Drone, "network_mode: host", &[(Network, "network_mode")]),
    case("network_mode: container:other", Woodpecker, "network_mode: container:other", &[(Network, "network_mode")]),
    case("network_mode: container:other, Drone", Drone, "network_mode: \"container:other\"", &[(Network, "network_mode")]),
    case("network_mode: bridge", Woodpecker, "network_mode: bridge", &[(Network, "network_mode")]),
    case("network_mode: bridge, Drone", Drone, "network_mode: bridge", &[(Network, "network_mode")]),
    case("network_mode: a named network", Woodpecker, "network_mode: office-lan", &[(Network, "network_mode")]),
    case("network_mode: none", Woodpecker, "network_mode: none", &[]),
    case("network_mode: none, Drone", Drone, "network_mode: none", &[]),
    case("network_mode: empty", Woodpecker, "network_mode: \"\"", &[]),
    case("dns as a list", Woodpecker, "dns:\n  - 10.0.0.53", &[(Network, "dns")]),
    case("dns as a string, Drone", Drone, "dns: 1.1.1.1", &[(Network, "dns")]),
    case("dns_search", Woodpecker, "dns_search: [corp.example]", &[(Network, "dns_search")]),
    case("dns_search, Drone", Drone, "dns_search:\n  - corp.example", &[(Network, "dns_search")]),
    case(
        "extra_hosts with the host gateway",
        Woodpecker,
        "extra_hosts:\n  - host.docker.internal:host-gateway",
        &[(Network, "extra_hosts")],
    ),
    case("extra_hosts, Drone", Drone, "extra_hosts:\n  - \"database:10.0.0.5\"", &[(Network, "extra_hosts")]),
    // Keys the model does not have never reach the plan, whatever their case.
    case("Privileged in the wrong case", Woodpecker, "Privileged: true", &[]),
    case("cap_add", Woodpecker, "cap_add: [SYS_ADMIN]", &[]),
    case("security_opt, Drone", Drone, "security_opt: [seccomp=unconfined]", &[]),
    case("sysctls and namespaces", Woodpecker, "sysctls: {net.ipv4.ip_forward: 1}\npid: host\nipc: host\nuserns_mode: host", &[]),
    // Several at once, services, anchors and substitution.
    case(
        "every kind at once",
        Woodpecker,
        "privileged: true\nvolumes: [/var/run/docker.sock:/var/run/docker.sock]\nnetwork_mode: host\nextra_hosts: [gw:host-gateway]",
        &[(Privileged, "privileged"), (Volumes, "volumes"), (Network, "network_mode"), (Network, "extra_hosts")],
    ),
    Case {
        name: "a privileged service",
        dialect: Woodpecker,
        role: Role::Service,
        keys: "privileged: true",
        top: "",
        needs: &[(Privileged, "privileged")],
        noted_at: None,
    },
    Case {
        name: "a service on the host network, Drone",
        dialect: Drone,
        role: Role::Service,
        keys: "network_mode: host",
        top: "",
        needs: &[(Network, "network_mode")],
        noted_at: None,
    },
    Case {
        name: "privileged through a merged anchor",
        dialect: Woodpecker,
        role: Role::Step,
        keys: "<<: *powers",
        top: "variables:\n  - &powers\n    privileged: true\n    dns: [10.0.0.53]\n",
        needs: &[(Privileged, "privileged"), (Network, "dns")],
        noted_at: Some("*powers"),
    },
    Case {
        name: "the host network through a matrix",
        dialect: Woodpecker,
        role: Role::Step,
        keys: "network_mode: ${NETWORK}",
        top: "matrix:\n  NETWORK: [host]\n",
        needs: &[(Network, "network_mode")],
        noted_at: None,
    },
];

/// The pipeline file of a case: one step (or a service beside a plain step) with the case's keys.
fn file_of(case: &Case) -> SourceFile {
    let indent = match case.dialect {
        Woodpecker => "    ",
        Drone => "  ",
    };
    let keys: String = case.keys.lines().map(|line| format!("{indent}{line}\n")).collect();
    let text = match (case.dialect, case.role) {
        (Woodpecker, Role::Step) => {
            format!("{}skip_clone: true\nsteps:\n  build:\n    image: alpine\n    commands: [make]\n{keys}", case.top)
        }
        (Woodpecker, Role::Service) => {
            format!(
                "{}skip_clone: true\nservices:\n  build:\n    image: postgres\n{keys}steps:\n  test:\n    image: alpine\n    commands: [make]\n",
                case.top
            )
        }
        (Drone, Role::Step) => format!(
            "kind: pipeline\ntype: docker\nname: default\nclone:\n  disable: true\nsteps:\n- name: build\n  image: alpine\n  commands: [make]\n{keys}{}",
            case.top
        ),
        (Drone, Role::Service) => format!(
            "kind: pipeline\ntype: docker\nname: default\nclone:\n  disable: true\nservices:\n- name: build\n  image: postgres\n{keys}steps:\n- name: test\n  image: alpine\n  commands: [make]\n{}",
            case.top
        ),
    };
    let path = match case.dialect {
        Woodpecker => ".woodpecker.yml",
        Drone => ".drone.yml",
    };
    SourceFile::new(path, text)
}

#[test]
fn every_key_that_needs_trust_is_noted_found_and_refused_by_kind() {
    let failures: Vec<String> =
        CASES.iter().filter_map(|case| check(case).err().map(|failure| format!("{}: {failure}", case.name))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n\n"));
}

fn check(case: &Case) -> Result<(), String> {
    let file = file_of(case);
    let show = || format!("\n--- {}\n{}---", file.path, file.text);
    let expected_kinds: Vec<TrustKind> = case.needs.iter().map(|(kind, _)| *kind).collect();

    // Lint: one note per finding, at the key that asks for it.
    let diagnostics = lint_files(std::slice::from_ref(&file));
    if let Some(error) = diagnostics.iter().find(|diagnostic| diagnostic.is_error()) {
        return Err(format!("lint reports an error: {error:?}{}", show()));
    }
    let notes: Vec<_> = diagnostics.iter().filter(|diagnostic| diagnostic.severity == Severity::Note).collect();
    let mut noted: Vec<(u32, u32)> = notes.iter().map(|note| (note.line, note.column)).collect();
    let mut expected_places: Vec<(u32, u32)> = case
        .needs
        .iter()
        .map(|(_, key)| place_of(&file.text, &case.noted_at.map_or_else(|| format!("{key}:"), str::to_owned)))
        .collect::<Result<_, _>>()?;
    noted.sort();
    expected_places.sort();
    if noted != expected_places {
        return Err(format!("lint notes {notes:#?}, expected notes at {expected_places:?}{}", show()));
    }
    for note in &notes {
        let hint = note.hint.as_deref().unwrap_or_default();
        if note.code != "needs-trust" || !note.message.contains("needs trust") || !hint.contains("gantry exec --trusted") {
            return Err(format!("the note does not say what to do: {note:?}"));
        }
    }

    // Plan and decision.
    let plan = plan_files(std::slice::from_ref(&file), &Context::default(), CompileOptions::default());
    if plan.has_errors() {
        return Err(format!("the plan has errors: {:?}{}", plan.diagnostics, show()));
    }
    let found = needs_trust(&plan);
    let found_kinds: Vec<TrustKind> = found.iter().map(|need| need.kind).collect();
    let found_keys: Vec<&str> = found.iter().map(|need| need.key).collect();
    let expected_keys: Vec<&str> = case.needs.iter().map(|(_, key)| *key).collect();
    if found_kinds != expected_kinds || found_keys != expected_keys {
        return Err(format!("the plan needs {found:#?}, expected {:?}{}", case.needs, show()));
    }
    if found.iter().any(|need| need.step != "build") {
        return Err(format!("a finding names the wrong step: {found:#?}"));
    }
    if !refused(&plan, TrustFlags::ALL).is_empty() || refused(&plan, TrustFlags::NONE) != found {
        return Err(format!("all trust must allow everything and none refuse everything: {found:#?}"));
    }
    for kind in TrustKind::ALL {
        let only = flags(|other| other == kind);
        let all_but = flags(|other| other != kind);
        let refused_with_only: Vec<TrustKind> = refused(&plan, only).iter().map(|need| need.kind).collect();
        let refused_with_all_but: Vec<TrustKind> = refused(&plan, all_but).iter().map(|need| need.kind).collect();
        let expected_with_only: Vec<TrustKind> = expected_kinds.iter().copied().filter(|other| *other != kind).collect();
        let expected_with_all_but: Vec<TrustKind> = expected_kinds.iter().copied().filter(|other| *other == kind).collect();
        if refused_with_only != expected_with_only || refused_with_all_but != expected_with_all_but {
            return Err(format!(
                "trusted for {kind:?} only, {refused_with_only:?} is refused (expected {expected_with_only:?}); \
                 trusted for all but {kind:?}, {refused_with_all_but:?} (expected {expected_with_all_but:?})"
            ));
        }
    }
    Ok(())
}

fn flags(grants: impl Fn(TrustKind) -> bool) -> TrustFlags {
    TrustFlags { privileged: grants(Privileged), volumes: grants(Volumes), network: grants(Network) }
}

/// Line and column (1-based) of the first `pattern` in an indented line: a step's key, not the
/// pipeline's key of the same name.
fn place_of(text: &str, pattern: &str) -> Result<(u32, u32), String> {
    let is_key = pattern.ends_with(':');
    for (number, line) in text.lines().enumerate() {
        let Some(column) = line.find(pattern) else { continue };
        if !is_key || (column > 0 && line[..column].trim().is_empty()) {
            return Ok((number as u32 + 1, column as u32 + 1));
        }
    }
    Err(format!("no `{pattern}` in\n{text}"))
}
