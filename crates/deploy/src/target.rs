//! Targets: where applications run, seen through the labels the deployer puts on what it
//! starts. A target observes (this module) and, next, applies a plan's changes. The Docker
//! engine is the first; Swarm and Kubernetes implement the same trait: list what carries the
//! environment's label, grouped by application, in `ObservedApp` terms.

use std::collections::BTreeMap;
use std::future::Future;

use crate::plan::{ObservedApp, ObservedInstance};

/// Labels on everything the deployer starts; what it observes is found by them.
pub mod labels {
    pub const ENVIRONMENT: &str = "io.gantry.deploy.environment";
    pub const APP: &str = "io.gantry.deploy.app";
    /// The application's `spec_digest` when it was deployed.
    pub const SPEC: &str = "io.gantry.deploy.spec";
    /// The image as the repository wrote it.
    pub const IMAGE: &str = "io.gantry.deploy.image";
    /// The engine's id of that image, to tell a container started again with another one.
    pub const IMAGE_ID: &str = "io.gantry.deploy.image-id";
    pub const REPLICAS: &str = "io.gantry.deploy.replicas";
    /// The environment repository's commit it was deployed from.
    pub const REVISION: &str = "io.gantry.deploy.revision";
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Engine(#[from] docker::DockerError),
}

/// A place applications run.
pub trait Target {
    /// What runs there of `environment`, by application.
    fn observe(&self, environment: &str) -> impl Future<Output = Result<Vec<ObservedApp>, TargetError>> + Send;
}

/// Containers on one Docker engine.
pub struct DockerTarget {
    engine: docker::Engine,
}

impl DockerTarget {
    pub fn new(engine: docker::Engine) -> DockerTarget {
        DockerTarget { engine }
    }

    /// The engine at `host` (`unix:///var/run/docker.sock`, `tcp://…`); `None`: DOCKER_HOST or
    /// the local socket.
    pub async fn connect(host: Option<&str>) -> Result<DockerTarget, TargetError> {
        let host = host.map_or_else(docker::resolve_host, str::to_owned);
        Ok(DockerTarget::new(docker::Engine::connect_to(&host).await?))
    }
}

impl Target for DockerTarget {
    async fn observe(&self, environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
        let containers = self.engine.list_containers(&[format!("{}={environment}", labels::ENVIRONMENT)]).await?;
        let mut by_app: BTreeMap<String, Vec<docker::ContainerSummary>> = BTreeMap::new();
        for container in containers {
            if let Some(app) = container.labels.get(labels::APP) {
                by_app.entry(app.clone()).or_default().push(container);
            }
        }
        Ok(by_app.into_iter().map(|(name, containers)| observed_app(name, &containers)).collect())
    }
}

/// One application's containers as the plan sees them: one spec digest when they all agree
/// (a half-finished rollout has two, which is a change to finish), the instances that run, and
/// any that run another image than they were deployed with.
fn observed_app(name: String, containers: &[docker::ContainerSummary]) -> ObservedApp {
    let label = |container: &docker::ContainerSummary, key: &str| container.labels.get(key).cloned().unwrap_or_default();
    let first = &containers[0];
    let spec = label(first, labels::SPEC);
    let agreed = containers.iter().all(|container| label(container, labels::SPEC) == spec);
    ObservedApp {
        name,
        spec_digest: agreed.then_some(spec),
        image: label(first, labels::IMAGE),
        desired_replicas: label(first, labels::REPLICAS).parse().unwrap_or(u32::try_from(containers.len()).unwrap_or(u32::MAX)),
        instances: containers
            .iter()
            .map(|container| {
                let deployed_with = label(container, labels::IMAGE_ID);
                ObservedInstance {
                    id: container.id.clone(),
                    running: container.state == "running",
                    foreign_image: (!deployed_with.is_empty() && container.image_id != deployed_with).then(|| container.image_id.clone()),
                }
            })
            .collect(),
    }
}
