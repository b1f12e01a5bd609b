//! Label-based cleanup: find every container, network and volume carrying some labels, and
//! remove them in the order the engine allows (containers, then networks, then volumes).

use futures_util::future::join_all;

use crate::Engine;
use crate::container::ContainerSummary;
use crate::error::DockerError;
use crate::network::NetworkSummary;
use crate::volume::VolumeSummary;

/// Containers, networks and volumes found by label.
#[derive(Clone, Debug, Default)]
pub struct LabelledResources {
    pub containers: Vec<ContainerSummary>,
    pub networks: Vec<NetworkSummary>,
    pub volumes: Vec<VolumeSummary>,
}

impl LabelledResources {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.containers.len() + self.networks.len() + self.volumes.len()
    }

    /// Only the resources whose labels satisfy `keep`.
    pub fn filter(self, keep: impl Fn(&std::collections::HashMap<String, String>) -> bool) -> LabelledResources {
        LabelledResources {
            containers: self.containers.into_iter().filter(|container| keep(&container.labels)).collect(),
            networks: self.networks.into_iter().filter(|network| keep(&network.labels)).collect(),
            volumes: self.volumes.into_iter().filter(|volume| keep(&volume.labels)).collect(),
        }
    }
}

impl Engine {
    /// Every container (running or not), network and volume carrying all of `labels`
    /// (`key=value` or `key`).
    pub async fn list_labelled(&self, labels: &[String]) -> Result<LabelledResources, DockerError> {
        let (containers, networks, volumes) =
            tokio::join!(self.list_containers(labels), self.list_networks(labels), self.list_volumes(labels));
        Ok(LabelledResources { containers: containers?, networks: networks?, volumes: volumes? })
    }

    /// Removes `resources`: containers first (killed when running), since networks and volumes
    /// in use cannot go, then networks and volumes. Tries every one and returns the first error.
    pub async fn remove_resources(&self, resources: &LabelledResources) -> Result<(), DockerError> {
        let mut first_error = None;
        let mut keep_first = |result: Result<(), DockerError>| {
            if let Err(error) = result {
                tracing::warn!(%error, "cleanup could not remove a resource");
                first_error.get_or_insert(error);
            }
        };
        for result in join_all(resources.containers.iter().map(|container| self.remove_container(&container.id))).await {
            keep_first(result);
        }
        let networks = join_all(resources.networks.iter().map(|network| self.remove_network(&network.id)));
        let volumes = join_all(resources.volumes.iter().map(|volume| self.remove_volume(&volume.name)));
        let (networks, volumes) = tokio::join!(networks, volumes);
        for result in networks.into_iter().chain(volumes) {
            keep_first(result);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Finds and removes everything carrying all of `labels`; returns what it found.
    pub async fn remove_labelled(&self, labels: &[String]) -> Result<LabelledResources, DockerError> {
        let resources = self.list_labelled(labels).await?;
        self.remove_resources(&resources).await?;
        Ok(resources)
    }
}
