//! A step as a container: the container spec built from a `StepRequest`, pulling by policy, and
//! creating the container so that it can be started later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use docker::{ContainerSpec, DockerError, Engine, NetworkAttachment, RegistryCredentials, VolumeMount};
use pipeline::model::PullPolicy;
use pipeline::plan::StepKind;
use runtime::{BackendError, StepRequest};

use crate::backend::NetworkPolicy;
use crate::backend_error;
use crate::build::BuildStep;
use crate::owner::LABEL_STEP;
use crate::translate::{VolumeSpec, parse_byte_size, parse_device, parse_tmpfs, parse_volume};
use crate::workflow::{DockerWorkflow, torn_down};

/// The engine's default network, which `docker run` uses.
pub(crate) const DEFAULT_BRIDGE: &str = "bridge";

/// A step's container, created and not yet removed.
#[derive(Clone, Debug)]
pub struct DockerStep {
    pub(crate) container_id: String,
    pub(crate) container_name: String,
    pub(crate) step_name: String,
    pub(crate) kind: StepKind,
    /// Set when the container was created on the default bridge (`NetworkPolicy::WhenAddressed`):
    /// it moves to the workflow's network at start if the workflow is addressed by then.
    pub(crate) network_move: Option<NetworkMove>,
    /// An image build step: no container of its own (`container_id` is empty), a build instead.
    pub(crate) build: Option<Arc<BuildStep>>,
}

#[derive(Clone, Debug)]
pub(crate) struct NetworkMove {
    pub(crate) workflow_addressed: Arc<AtomicBool>,
    pub(crate) network: String,
}

impl DockerStep {
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    pub fn step_name(&self) -> &str {
        &self.step_name
    }
}

/// Pulls as the step's policy says, then creates its container (not started).
pub(crate) async fn prepare(engine: &Engine, workflow: &DockerWorkflow, step: &StepRequest) -> Result<DockerStep, BackendError> {
    let operation = || format!("prepare step `{}`", step.name);
    let image = step
        .image
        .clone()
        .filter(|image| !image.is_empty())
        .ok_or_else(|| BackendError::Unsupported { what: format!("step `{}` without an image", step.name) })?;
    let container_name = workflow.container_name(&step.name);
    let addressed_step = step.kind == StepKind::Service || !step.network_aliases.is_empty();
    if addressed_step && step.container.network_mode.as_deref().is_none_or(str::is_empty) {
        // The network exists before anyone can see the workflow as addressed: a step that sees
        // the flag at start joins the network at once.
        workflow.ensure_network(engine).await?;
        workflow.addressed.store(true, Ordering::SeqCst);
    }
    let spec = container_spec(engine, workflow, step, &image, &container_name).await?;
    let network_move = (spec.network_mode.as_deref() == Some(DEFAULT_BRIDGE)
        && step.container.network_mode.as_deref().is_none_or(str::is_empty))
    .then(|| NetworkMove { workflow_addressed: workflow.addressed.clone(), network: workflow.network.clone() });

    let credentials = step
        .pull_credentials
        .as_ref()
        .map(|credential| RegistryCredentials { username: credential.username.clone(), password: credential.password.clone() });
    if step.pull == PullPolicy::Always {
        pull_always(engine, workflow, &image, credentials.as_ref()).await?;
    }
    // The common case (image present) costs one request: create first, pull only when the
    // engine says the image is missing.
    let created = match create(engine, workflow, spec.clone(), &operation).await? {
        Err(DockerError::ImageNotFound { .. }) if step.pull == PullPolicy::IfNotPresent => {
            pull_if_missing(engine, workflow, &image, credentials.as_ref()).await?;
            create(engine, workflow, spec, &operation).await?
        }
        Err(DockerError::ImageNotFound { .. }) => {
            return Err(BackendError::ImageUnavailable {
                image,
                reason: "it is not on this machine and the pull policy is `never`".to_string(),
            });
        }
        created => created,
    };
    let container_id = created.map_err(|error| backend_error(operation(), error))?;
    tracing::debug!(step = %step.name, container = %container_name, "container created");
    Ok(DockerStep { container_id, container_name, step_name: step.name.clone(), kind: step.kind, network_move, build: None })
}

/// Creates the container in a way teardown cannot miss (see `DockerWorkflow::create_guarded`).
async fn create(
    engine: &Engine,
    workflow: &DockerWorkflow,
    spec: ContainerSpec,
    operation: &impl Fn() -> String,
) -> Result<Result<String, DockerError>, BackendError> {
    let engine = engine.clone();
    workflow.create_guarded(async move { engine.create_container(spec).await }).await.ok_or_else(|| torn_down(operation()))
}

/// `always`: pull once per workflow; when the pull fails, a local copy will do.
async fn pull_always(
    engine: &Engine,
    workflow: &DockerWorkflow,
    image: &str,
    credentials: Option<&RegistryCredentials>,
) -> Result<(), BackendError> {
    let lock = workflow.pull_lock(image);
    let mut pulled = lock.lock().await;
    if *pulled {
        return Ok(());
    }
    match engine.pull_image_with_credentials(image, credentials).await {
        Ok(()) => {}
        Err(DockerError::PullFailed { reason, .. }) => {
            if !engine.image_exists(image).await.map_err(|error| backend_error(format!("inspect image `{image}`"), error))? {
                return Err(BackendError::ImageUnavailable { image: image.to_string(), reason });
            }
            tracing::warn!(image, %reason, "pull failed; using the image on this machine");
        }
        Err(error) => return Err(backend_error(format!("pull image `{image}`"), error)),
    }
    *pulled = true;
    Ok(())
}

/// `if-not-present`, after the engine said the image is missing: pull unless another step of
/// the workflow pulled it meanwhile.
async fn pull_if_missing(
    engine: &Engine,
    workflow: &DockerWorkflow,
    image: &str,
    credentials: Option<&RegistryCredentials>,
) -> Result<(), BackendError> {
    let lock = workflow.pull_lock(image);
    let mut pulled = lock.lock().await;
    if *pulled || engine.image_exists(image).await.map_err(|error| backend_error(format!("inspect image `{image}`"), error))? {
        return Ok(());
    }
    tracing::info!(image, "pulling image");
    engine.pull_image_with_credentials(image, credentials).await.map_err(|error| backend_error(format!("pull image `{image}`"), error))?;
    *pulled = true;
    Ok(())
}

async fn container_spec(
    engine: &Engine,
    workflow: &DockerWorkflow,
    step: &StepRequest,
    image: &str,
    container_name: &str,
) -> Result<ContainerSpec, BackendError> {
    let invalid = |message: String| BackendError::Operation { operation: format!("prepare step `{}`", step.name), message };
    let mut labels = workflow.labels.clone();
    labels.insert(LABEL_STEP.to_string(), step.name.clone());

    let mut binds = Vec::new();
    let mut volume_mounts = vec![workflow.volume_mount(&workflow.workspace_volume, workflow.workspace_base_or_root(), None)];
    let mut anonymous_volumes = Vec::new();
    for volume in &step.container.volumes {
        match parse_volume(volume).ok_or_else(|| invalid(format!("volume `{volume}` is not `source:target[:mode]`")))? {
            VolumeSpec::Host { source, target, mode } => binds.push(bind(&source, &target, mode.as_deref())),
            VolumeSpec::Named { name, target, mode } => {
                let volume = workflow.volume_for(engine, &name).await?;
                volume_mounts.push(workflow.volume_mount(&volume, &target, mode.as_deref()));
            }
            VolumeSpec::Anonymous { target } => anonymous_volumes.push(target),
        }
    }
    let size = |text: &Option<String>, what: &str| -> Result<Option<i64>, BackendError> {
        text.as_deref()
            .filter(|text| !text.trim().is_empty())
            .map(|text| parse_byte_size(text).ok_or_else(|| invalid(format!("{what} `{text}` is not a size such as `512m` or `2g`"))))
            .transpose()
    };
    let devices = step
        .container
        .devices
        .iter()
        .map(|device| parse_device(device).ok_or_else(|| invalid(format!("device `{device}` is not `host[:container[:permissions]]`"))))
        .collect::<Result<Vec<_>, _>>()?;
    let tmpfs = step
        .container
        .tmpfs
        .iter()
        .map(|mount| parse_tmpfs(mount).ok_or_else(|| invalid(format!("tmpfs `{mount}` is not `path[:options]`"))))
        .collect::<Result<_, _>>()?;
    let workflow_network = || Some(NetworkAttachment { network: workflow.network.clone(), aliases: step.network_aliases.clone() });
    let (network, network_mode) = match step.container.network_mode.clone().filter(|mode| !mode.is_empty()) {
        Some(mode) => (None, Some(mode)),
        None if workflow.network_policy == NetworkPolicy::Always || workflow.addressed.load(Ordering::SeqCst) => (workflow_network(), None),
        None => (None, Some(DEFAULT_BRIDGE.to_string())),
    };

    Ok(ContainerSpec {
        name: Some(container_name.to_string()),
        image: image.to_string(),
        entrypoint: step.entrypoint.clone(),
        command: (!step.command.is_empty()).then(|| step.command.clone()),
        environment: step.environment.clone(),
        working_dir: Some(step.working_dir.clone()).filter(|dir| !dir.is_empty()),
        user: step.container.user.clone(),
        labels,
        binds,
        volume_mounts,
        anonymous_volumes,
        tmpfs,
        devices,
        network,
        network_mode,
        privileged: step.container.privileged,
        dns: step.container.dns.clone(),
        dns_search: step.container.dns_search.clone(),
        extra_hosts: step.container.extra_hosts.clone(),
        memory_bytes: size(&step.container.memory_limit, "memory limit")?,
        shm_size_bytes: size(&step.container.shm_size, "shm size")?,
        keep_engine_log: false,
        ..ContainerSpec::default()
    })
}

fn bind(source: &str, target: &str, mode: Option<&str>) -> String {
    match mode {
        Some(mode) => format!("{source}:{target}:{mode}"),
        None => format!("{source}:{target}"),
    }
}

impl DockerWorkflow {
    /// A mount of one of this workflow's volumes; `mode` as in `name:/path:ro,nocopy`.
    pub(crate) fn volume_mount(&self, volume: &str, target: &str, mode: Option<&str>) -> VolumeMount {
        let options: Vec<&str> = mode.unwrap_or("").split(',').collect();
        VolumeMount {
            volume: volume.to_string(),
            target: target.to_string(),
            read_only: options.contains(&"ro"),
            no_copy: options.contains(&"nocopy"),
            labels: self.labels.clone(),
        }
    }

    /// Where the workspace volume is mounted; `/` when the base is the root itself.
    pub(crate) fn workspace_base_or_root(&self) -> &str {
        if self.workspace_base.is_empty() { "/" } else { &self.workspace_base }
    }
}
