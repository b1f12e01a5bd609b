//! Gantry's one door to the Docker Engine API (over bollard): connecting, images (builds,
//! pushes, pulls with registry credentials), containers, networks, volumes, label-based
//! cleanup, and Swarm (services, their tasks, configs, secrets, overlay networks). No other
//! crate knows bollard; callers see the plain types defined here and one error enum,
//! `DockerError`.

mod build;
mod cleanup;
mod container;
mod credentials;
mod engine;
mod error;
mod image;
mod network;
mod swarm;
mod volume;

pub use build::{BuildEvent, BuildEvents, BuildOptions, IntermediateContainers};
pub use cleanup::LabelledResources;
pub use container::{
    ArchiveStream, ContainerSpec, ContainerState, ContainerSummary, Device, ExecOutcome, HealthcheckSpec, NetworkAttachment, OutputFrame,
    OutputFrames, OutputKind, PublishedPort, VolumeMount,
};
pub use credentials::{DOCKER_HUB, RegistryCredentials, registry_host};
pub use engine::{DEFAULT_HOST, Engine, EngineVersion, resolve_host};
pub use error::DockerError;
pub use image::{ImageDetails, PushedImage, split_reference};
pub use network::NetworkSummary;
pub use swarm::{
    FailureAction, FileReference, RestartCondition, RestartPolicy, RolloutConfig, RolloutOrder, ServiceDetails, ServiceSpec, SwarmObject,
    SwarmState, TaskState, TaskSummary, UpdateState, UpdateStatus,
};
pub use volume::VolumeSummary;
