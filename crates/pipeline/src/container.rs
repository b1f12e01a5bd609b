//! The options a step's container is created with beyond its image and process: one type from
//! the YAML through the plan to the backend, so that a new option is one field here, one key
//! in `read::step`, and its translation at the engine's edge (`backend-docker`).

use serde::{Deserialize, Serialize};

/// Container options as the pipeline wrote them (Woodpecker's and Drone's keys of the same
/// names). Sizes and limits stay text (`"1g"`): the backend that applies them parses them.
///
/// In the plan this is flattened into the step, so the wire format keeps the keys at the
/// step's top level.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerOptions {
    #[serde(default)]
    pub privileged: bool,
    /// `source:target[:mode]`: a host path (absolute source) or a named volume. In the plan,
    /// Drone's pipeline volumes are resolved to one of those.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
}
