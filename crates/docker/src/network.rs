//! Networks: create a labelled bridge network, remove one, list them by label.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::Engine;
use crate::error::{DockerError, network_error};

/// A network in `Engine::list_networks`.
#[derive(Clone, Debug)]
pub struct NetworkSummary {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// Creates a bridge network on which containers reach each other by name and alias.
    /// Returns its id.
    pub async fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<String, DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let created = self.client.create_network(request).await.map_err(|error| network_error("create", name, error))?;
        Ok(created.id)
    }

    /// Removes the network; one that does not exist (any more) is not an error. Fails while
    /// containers are still connected.
    pub async fn remove_network(&self, network: &str) -> Result<(), DockerError> {
        match self.client.remove_network(network).await {
            Ok(()) => Ok(()),
            Err(error) => match network_error("remove", network, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Connects a container (created or running) to a network, reachable there at `aliases`.
    pub async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<(), DockerError> {
        let endpoint = EndpointSettings { aliases: (!aliases.is_empty()).then(|| aliases.to_vec()), ..Default::default() };
        let request = NetworkConnectRequest { container: container.to_string(), endpoint_config: Some(endpoint) };
        self.client.connect_network(network, request).await.map_err(|error| network_error("connect a container to", network, error))
    }

    /// Disconnects a container (created or running) from a network.
    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<(), DockerError> {
        let request = NetworkDisconnectRequest { container: container.to_string(), force: Some(true) };
        self.client.disconnect_network(network, request).await.map_err(|error| network_error("disconnect a container from", network, error))
    }

    /// Every network carrying all of `labels` (`key=value` or `key`).
    pub async fn list_networks(&self, labels: &[String]) -> Result<Vec<NetworkSummary>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        let networks = self.client.list_networks(Some(options)).await.map_err(|error| network_error("list", &labels.join(","), error))?;
        Ok(networks
            .into_iter()
            .map(|network| NetworkSummary {
                id: network.id.unwrap_or_default(),
                name: network.name.unwrap_or_default(),
                labels: network.labels.unwrap_or_default(),
            })
            .collect())
    }
}
