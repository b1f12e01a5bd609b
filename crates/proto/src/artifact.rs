//! What a build publishes: the images its build steps pushed, as the agent reports them, and the
//! registry credentials a job carries to pull and push them.

use serde::{Deserialize, Serialize};

/// One image a build step pushed: every tag of one repository, all pointing at one manifest.
/// The agent sends it in [`crate::agent::JobUpdates`] as soon as the push finished; reporting it
/// again is harmless (the server keeps one per workflow, step and repository).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedImage {
    /// The step that built it.
    pub step: String,
    /// The repository without tag or digest, registry included: `127.0.0.1:5000/team/app`.
    pub repository: String,
    pub tags: Vec<String>,
    /// The manifest digest the registry answered, `sha256:<hex>`; `repository@digest` pulls it.
    pub digest: String,
    /// Bytes of the manifest's config and layers as stored in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The in-toto statement (SLSA provenance v1) describing how the image was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
    /// The digest of the provenance artifact pushed to the same repository, referring to the
    /// image (OCI `subject`); `None` when the registry refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_digest: Option<String>,
}

impl PublishedImage {
    /// `repository@digest`: the name a deployer pins.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// Credentials for one registry host (`registry.example.com`, `127.0.0.1:5000`; `docker.io` for
/// Docker Hub). The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    pub host: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistryAuth").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}
