//! Gantry's one door to the Docker Engine API (over bollard): connecting, images, containers,
//! networks, volumes, and label-based cleanup. No other crate knows bollard; callers see the
//! plain types defined here and one error enum, `DockerError`.

mod cleanup;
mod container;
mod engine;
mod error;
mod image;
mod network;
mod volume;

pub use cleanup::LabelledResources;
pub use container::{
    ContainerSpec, ContainerSummary, Device, ExecOutcome, NetworkAttachment, OutputFrame, OutputFrames, OutputKind, VolumeMount,
};
pub use engine::{DEFAULT_HOST, Engine, EngineVersion, resolve_host};
pub use error::DockerError;
pub use image::split_reference;
pub use network::NetworkSummary;
pub use volume::VolumeSummary;
