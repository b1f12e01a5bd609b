//! Volumes: create a labelled local volume, remove one, list them by label.

use std::collections::{BTreeMap, HashMap};

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};

use crate::Engine;
use crate::error::{DockerError, volume_error};

/// A volume in `Engine::list_volumes`.
#[derive(Clone, Debug)]
pub struct VolumeSummary {
    pub name: String,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// Creates a local volume. Creating one that exists already returns it unchanged (the
    /// engine's behaviour), so this is idempotent.
    pub async fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), DockerError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.client.create_volume(request).await.map(|_| ()).map_err(|error| volume_error("create", name, error))
    }

    /// Removes the volume; one that does not exist (any more) is not an error. Fails while a
    /// container uses it.
    pub async fn remove_volume(&self, volume: &str) -> Result<(), DockerError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.client.remove_volume(volume, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) => match volume_error("remove", volume, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Every volume carrying all of `labels` (`key=value` or `key`).
    pub async fn list_volumes(&self, labels: &[String]) -> Result<Vec<VolumeSummary>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
        let listed = self.client.list_volumes(Some(options)).await.map_err(|error| volume_error("list", &labels.join(","), error))?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|volume| VolumeSummary { name: volume.name, labels: volume.labels })
            .collect())
    }
}
