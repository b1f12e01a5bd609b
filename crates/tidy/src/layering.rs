//! Which crate may depend on which: the table of `ARCHITECTURE.md`, and the third-party
//! crates that belong to one crate alone.

use crate::workspace::{DependencyKind, Package};

/// A workspace crate and the workspace crates it may link.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub crate_name: &'static str,
    pub may_depend_on: &'static [&'static str],
}

/// The allowed dependencies between workspace crates, lowest first. Dependencies point down:
/// nothing links `cli`, `server` or `agent`; `server` never links `runtime` or a backend;
/// `agent` never links `store` or `forge`. A crate missing from this table is a violation, so
/// that a new crate states its place.
pub const LAYERS: &[Layer] = &[
    Layer { crate_name: "pipeline", may_depend_on: &[] },
    Layer { crate_name: "runtime", may_depend_on: &["pipeline"] },
    Layer { crate_name: "docker", may_depend_on: &[] },
    // Registries' HTTP API; `docker` only as a dev-dependency (its tests push images).
    Layer { crate_name: "registry", may_depend_on: &[] },
    Layer { crate_name: "gitcmd", may_depend_on: &[] },
    Layer { crate_name: "backend-docker", may_depend_on: &["runtime", "pipeline", "docker", "registry", "gitcmd"] },
    Layer { crate_name: "backend-local", may_depend_on: &["runtime", "pipeline", "gitcmd"] },
    Layer { crate_name: "proto", may_depend_on: &["pipeline"] },
    // Values sealed at rest, for the server's store and the deployer's secret store.
    Layer { crate_name: "seal", may_depend_on: &[] },
    Layer { crate_name: "store", may_depend_on: &["proto", "seal"] },
    Layer { crate_name: "forge", may_depend_on: &["proto", "gitcmd"] },
    Layer { crate_name: "server", may_depend_on: &["pipeline", "proto", "store", "forge"] },
    Layer { crate_name: "agent", may_depend_on: &["proto", "pipeline", "runtime", "backend-docker", "backend-local", "gitcmd"] },
    Layer {
        crate_name: "cli",
        may_depend_on: &[
            "pipeline",
            "runtime",
            "docker",
            "gitcmd",
            "backend-docker",
            "backend-local",
            "proto",
            "store",
            "forge",
            "server",
            "agent",
            "deploy",
            "seal",
        ],
    },
    // Delivery: the environment repository, reconciled on targets through `docker`.
    Layer { crate_name: "deploy", may_depend_on: &["pipeline", "proto", "docker", "registry", "gitcmd", "seal", "forge"] },
    Layer { crate_name: "bench", may_depend_on: &["pipeline"] },
    Layer { crate_name: "tidy", may_depend_on: &[] },
];

/// Third-party crates that only some workspace crates may link: the edges that know them. The
/// deployer serves its own small HTTP listener (webhooks, inventory, metrics), so it links
/// axum too.
const OWNED: &[(&str, &[&str])] = &[
    ("bollard", &["docker"]),
    ("oci-client", &["registry"]),
    ("sqlx", &["store"]),
    ("axum", &["server", "deploy"]),
    ("tower-http", &["server"]),
    ("aes-gcm", &["seal"]),
];

/// A dependency the rules do not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub crate_name: String,
    pub dependency: String,
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "`{}` depends on `{}`: {}", self.crate_name, self.dependency, self.rule)
    }
}

/// Every dependency of `packages` (outside `[dev-dependencies]`) that breaks `layers` or the
/// third-party ownership rules; a package `layers` does not name is a violation of its own.
pub fn check_layering(packages: &[Package], layers: &[Layer]) -> Vec<Violation> {
    let workspace: Vec<&str> = packages.iter().map(|package| package.name.as_str()).collect();
    let mut violations = Vec::new();
    for package in packages {
        let Some(layer) = layers.iter().find(|layer| layer.crate_name == package.name) else {
            violations.push(Violation {
                crate_name: package.name.clone(),
                dependency: String::new(),
                rule: "the crate has no row in the layering table (crates/tidy/src/layering.rs, ARCHITECTURE.md)".into(),
            });
            continue;
        };
        for dependency in package.dependencies.iter().filter(|dependency| dependency.kind != DependencyKind::Dev) {
            let name = dependency.name.as_str();
            if workspace.contains(&name) && !layer.may_depend_on.contains(&name) {
                violations.push(Violation {
                    crate_name: package.name.clone(),
                    dependency: name.to_owned(),
                    rule: format!("`{}` may depend on {}", package.name, listed(layer.may_depend_on)),
                });
            }
            if let Some((_, owners)) = OWNED.iter().find(|(owned, _)| *owned == name)
                && !owners.contains(&package.name.as_str())
            {
                violations.push(Violation {
                    crate_name: package.name.clone(),
                    dependency: name.to_owned(),
                    rule: format!("only {} {} `{name}`", listed(owners), if owners.len() == 1 { "links" } else { "link" }),
                });
            }
        }
    }
    violations
}

fn listed(names: &[&str]) -> String {
    if names.is_empty() {
        "no workspace crate".to_owned()
    } else {
        names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
    }
}
