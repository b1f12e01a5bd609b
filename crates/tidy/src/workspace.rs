//! What `cargo metadata` says of the workspace's own packages: their names and direct
//! dependencies, each with its kind.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum TidyError {
    #[error("cannot run `cargo metadata`: {0}")]
    Run(#[from] std::io::Error),
    #[error("`cargo metadata` failed: {0}")]
    Failed(String),
    #[error("cannot read `cargo metadata`'s answer: {0}")]
    Parse(#[from] serde_json::Error),
}

/// A package of the workspace.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    pub dependencies: Vec<Dependency>,
}

/// One direct dependency, as the manifest declares it.
#[derive(Debug, Clone, Deserialize)]
pub struct Dependency {
    pub name: String,
    #[serde(default, deserialize_with = "normal_when_null")]
    pub kind: DependencyKind,
}

/// The manifest table a dependency is declared in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    /// `[dependencies]`: linked into the crate itself (metadata writes `null`).
    #[default]
    Normal,
    /// `[dev-dependencies]`: tests, examples and benches only.
    Dev,
    /// `[build-dependencies]`.
    Build,
}

fn normal_when_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DependencyKind, D::Error> {
    Ok(Option::<DependencyKind>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

/// The packages of the workspace whose root manifest is `manifest`, read with the `cargo`
/// that runs the tests (`$CARGO`), offline and without resolving dependencies.
pub fn workspace_packages(manifest: &Path) -> Result<Vec<Package>, TidyError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(manifest)
        .output()?;
    if !output.status.success() {
        return Err(TidyError::Failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout)?;
    Ok(metadata.packages)
}
