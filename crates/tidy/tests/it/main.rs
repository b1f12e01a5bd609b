//! The workspace against its own rules: the layering table, the third-party crates one crate
//! owns, module docs and inherited lints. Each rule is also shown catching a breach, on
//! fabricated input, so that a green run means the rule holds rather than that it never looks.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tidy::{Dependency, DependencyKind, LAYERS, Package, check_layering, lacks_module_doc, rust_files, workspace_packages};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// The workspace's packages, read once for every test of this binary.
fn packages() -> &'static [Package] {
    static PACKAGES: std::sync::OnceLock<Vec<Package>> = std::sync::OnceLock::new();
    PACKAGES.get_or_init(|| workspace_packages(&workspace_root().join("Cargo.toml")).unwrap())
}

/// Each package's name and the text of its `Cargo.toml`.
fn manifests() -> Vec<(&'static str, String)> {
    packages().iter().map(|package| (package.name.as_str(), std::fs::read_to_string(&package.manifest_path).unwrap())).collect()
}

fn package(name: &str, dependencies: &[(&str, DependencyKind)]) -> Package {
    Package {
        name: name.to_owned(),
        manifest_path: PathBuf::from(format!("crates/{name}/Cargo.toml")),
        dependencies: dependencies.iter().map(|(name, kind)| Dependency { name: (*name).to_owned(), kind: *kind }).collect(),
    }
}

#[test]
fn the_workspace_keeps_its_layering() {
    let packages = packages();
    assert!(packages.len() >= 12, "cargo metadata lists the workspace's crates: {packages:?}");
    let violations: Vec<String> = check_layering(packages, LAYERS).iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "dependencies against ARCHITECTURE.md's table:\n{}", violations.join("\n"));
}

#[test]
fn dependencies_against_the_table_are_reported_and_dev_dependencies_are_free() {
    use DependencyKind::{Build, Dev, Normal};
    let packages = [
        package("pipeline", &[]),
        package("runtime", &[("pipeline", Normal)]),
        package("proto", &[("pipeline", Normal)]),
        package("store", &[("proto", Normal), ("sqlx", Normal)]),
        package("forge", &[("proto", Normal), ("sqlx", Build)]),
        package("server", &[("runtime", Normal), ("store", Normal), ("axum", Normal)]),
        package("agent", &[("store", Normal), ("runtime", Normal), ("axum", Dev), ("server", Dev)]),
        package("docker", &[("bollard", Normal)]),
        package("cli", &[("server", Normal), ("bollard", Normal)]),
        package("kubernetes", &[("docker", Normal)]),
    ];
    let violations: Vec<String> = check_layering(&packages, LAYERS).iter().map(ToString::to_string).collect();
    assert_eq!(
        violations,
        [
            "`forge` depends on `sqlx`: only `store` links `sqlx`",
            "`server` depends on `runtime`: `server` may depend on `pipeline`, `proto`, `store`, `forge`",
            "`agent` depends on `store`: `agent` may depend on `proto`, `pipeline`, `runtime`, `backend-docker`, `backend-local`, `gitcmd`",
            "`cli` depends on `bollard`: only `docker` links `bollard`",
            "`kubernetes` depends on ``: the crate has no row in the layering table (crates/tidy/src/layering.rs, ARCHITECTURE.md)",
        ]
    );
}

#[test]
fn nothing_depends_on_the_binaries_crates() {
    for layer in LAYERS {
        for top in ["cli", "server", "agent"] {
            assert!(
                !layer.may_depend_on.contains(&top) || layer.crate_name == "cli",
                "`{}` may depend on `{top}` in the table",
                layer.crate_name
            );
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for folder in ["crates", "bench", "fuzz"] {
        for file in rust_files(&root.join(folder)).unwrap() {
            if lacks_module_doc(&std::fs::read_to_string(&file).unwrap()) {
                missing.push(file.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "files without a `//!` module doc on their first lines:\n{}", missing.join("\n"));
}

#[test]
fn a_module_doc_must_come_before_the_first_item() {
    assert!(!lacks_module_doc("//! Reads pipelines.\n\nuse std::fs;\n"));
    assert!(!lacks_module_doc("// SPDX-License-Identifier: Apache-2.0\n\n//! Reads pipelines.\n"));
    assert!(lacks_module_doc("use std::fs;\n//! Too late.\n"));
    assert!(lacks_module_doc("/// An item's doc is not the module's.\nfn read() {}\n"));
    assert!(lacks_module_doc(""));
}

#[test]
fn every_crate_inherits_the_workspace_lints() {
    let mut without = Vec::new();
    for (name, manifest) in manifests() {
        if !manifest.lines().map(str::trim).collect::<Vec<_>>().windows(2).any(|pair| pair == ["[lints]", "workspace = true"]) {
            without.push(name);
        }
    }
    assert!(without.is_empty(), "crates without `[lints] workspace = true`: {without:?}");
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    assert!(root.contains("unsafe_code = \"forbid\"") && root.contains("unreachable_pub = \"warn\""), "the workspace lints lost a rule");
}

#[test]
fn every_dependency_version_is_pinned_once_in_the_workspace() {
    let mut local = Vec::new();
    for (name, manifest) in manifests() {
        let mut in_dependencies = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_dependencies = line.ends_with("dependencies]");
                continue;
            }
            if !in_dependencies || line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `workspace = true` (dotted or in a table), or the crate itself with a feature.
            if !(line.contains("workspace = true") || line.contains("path = \".\"")) {
                local.push(format!("{name}: {line}"));
            }
        }
    }
    assert!(local.is_empty(), "dependencies pinned in a crate rather than in [workspace.dependencies]:\n{}", local.join("\n"));
}
