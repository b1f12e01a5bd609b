//! `DockerBackend`: the `runtime::Backend` implementation, one engine connection shared by all
//! workflows and steps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use docker::{ContainerSpec, DockerError, Engine, OutputKind};
use futures_util::StreamExt;
use pipeline::plan::StepKind;
use runtime::backend::OutputStreamOf;
use runtime::{Backend, BackendError, OutputChunk, OutputStream, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource};

use crate::build::{BuildStep, WorkspaceAccess};
use crate::owner::{LABEL_HOST, LABEL_RUN, LABEL_STEP, LABEL_WORKFLOW, ProcessIdentity, host_name, owner_may_be_alive};
use crate::step::{DEFAULT_BRIDGE, DockerStep};
use crate::workflow::{DockerWorkflow, torn_down};
use crate::{backend_error, step, workflow, workspace};

/// The image the workspace helper container is created from when no other is configured: an
/// empty root filesystem, imported (never pulled) the first time it is needed. The helper is
/// never started, so it needs no programs.
pub const HELPER_IMAGE: &str = "gantry-local/workspace-helper:1";

/// Which network a step's container joins (a step's own `network_mode` always wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// Every container joins its workflow's own network: workflows are isolated from each
    /// other, and every container reaches every other by name.
    #[default]
    Always,
    /// Containers join the engine's default bridge, as with `docker run`, until the workflow
    /// has a container others address by name (a service, or a step with network aliases);
    /// from then on they join the workflow's network, and those created before are moved there
    /// before they start. This saves the engine's setup of a user-defined network for every
    /// container of workflows without services (the slowest part of starting a container), at
    /// the price of those containers sharing the default bridge with other containers.
    WhenAddressed,
}

#[derive(Clone, Debug)]
pub struct DockerBackendOptions {
    /// How long a service gets between SIGTERM and SIGKILL when it is stopped. Other steps are
    /// killed at once: they are stopped only when cancelled, timed out or detached.
    pub service_stop_grace: Duration,
    /// A local image to create the workspace helper container from, instead of `HELPER_IMAGE`.
    pub helper_image: Option<String>,
    /// The process written into the owner labels; this process unless a test plays another.
    pub owner: ProcessIdentity,
    pub network_policy: NetworkPolicy,
}

impl Default for DockerBackendOptions {
    fn default() -> Self {
        DockerBackendOptions {
            service_stop_grace: Duration::from_secs(2),
            helper_image: None,
            owner: ProcessIdentity::current(),
            network_policy: NetworkPolicy::default(),
        }
    }
}

/// Runs steps as containers on one Docker engine. Create one per process and share it: all its
/// calls go through one connection pool.
pub struct DockerBackend {
    engine: Engine,
    options: DockerBackendOptions,
    helper_image: tokio::sync::OnceCell<String>,
    /// Workflows of this process (run id, workflow key) whose teardown left resources behind
    /// (the engine went away during it): `sweep` removes them, though their owner is alive.
    unfinished_teardowns: Mutex<BTreeSet<(String, String)>>,
}

impl DockerBackend {
    /// Connects to the engine the docker CLI would use (see `docker::Engine::connect`). No
    /// engine is `BackendError::Unavailable` with a hint on how to get one.
    pub async fn connect() -> Result<DockerBackend, BackendError> {
        DockerBackend::connect_with(DockerBackendOptions::default()).await
    }

    /// `connect`, with options.
    pub async fn connect_with(options: DockerBackendOptions) -> Result<DockerBackend, BackendError> {
        let engine = Engine::connect().await.map_err(|error| backend_error("connect to the docker engine", error))?;
        Ok(DockerBackend::new(engine, options))
    }

    /// Connects to the engine at `host` (`unix://…`, `tcp://…`, `ssh://…`).
    pub async fn connect_to(host: &str, options: DockerBackendOptions) -> Result<DockerBackend, BackendError> {
        let engine = Engine::connect_to(host).await.map_err(|error| backend_error("connect to the docker engine", error))?;
        Ok(DockerBackend::new(engine, options))
    }

    pub fn new(engine: Engine, options: DockerBackendOptions) -> DockerBackend {
        DockerBackend { engine, options, helper_image: tokio::sync::OnceCell::new(), unfinished_teardowns: Mutex::default() }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The image to create the workspace helper from, importing `HELPER_IMAGE` once if needed.
    async fn helper_image(&self) -> Result<&str, BackendError> {
        let image = self
            .helper_image
            .get_or_try_init(|| async {
                if let Some(image) = &self.options.helper_image {
                    return Ok(image.clone());
                }
                let present = self.engine.image_exists(HELPER_IMAGE).await?;
                if !present {
                    tracing::debug!(image = HELPER_IMAGE, "importing the workspace helper image");
                    self.engine.import_image(HELPER_IMAGE, empty_root_filesystem()).await?;
                }
                Ok(HELPER_IMAGE.to_string())
            })
            .await
            .map_err(|error| backend_error("make the workspace helper image", error))?;
        Ok(image)
    }
}

/// A tar archive holding one empty folder: the smallest root filesystem the engine imports.
fn empty_root_filesystem() -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    builder.append_data(&mut header, "tmp", std::io::empty()).expect("writing to memory cannot fail");
    Bytes::from(builder.into_inner().expect("writing to memory cannot fail"))
}

impl Backend for DockerBackend {
    type Workflow = DockerWorkflow;
    type Step = DockerStep;

    fn name(&self) -> &'static str {
        "docker"
    }

    /// Removes every container, network and volume made on this host by a gantry process that
    /// is no longer alive, and what this backend's own teardowns could not remove. Resources of
    /// live processes, of other hosts, or without owner labels are left alone.
    async fn sweep(&self) -> Result<(), BackendError> {
        let unfinished = self.unfinished_teardowns.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let found =
            self.engine.list_labelled(&[format!("{LABEL_HOST}={}", host_name())]).await.map_err(|error| backend_error("sweep", error))?;
        let is_unfinished = |labels: &std::collections::HashMap<String, String>| match (labels.get(LABEL_RUN), labels.get(LABEL_WORKFLOW)) {
            (Some(run), Some(workflow)) => unfinished.contains(&(run.clone(), workflow.clone())),
            _ => false,
        };
        let dead = found.filter(|labels| !owner_may_be_alive(labels) || is_unfinished(labels));
        if !dead.is_empty() {
            tracing::info!(
                containers = dead.containers.len(),
                networks = dead.networks.len(),
                volumes = dead.volumes.len(),
                "removing what runs that died or could not finish their teardown left behind"
            );
            self.engine.remove_resources(&dead).await.map_err(|error| backend_error("sweep", error))?;
        }
        self.unfinished_teardowns.lock().unwrap_or_else(PoisonError::into_inner).retain(|workflow| !unfinished.contains(workflow));
        Ok(())
    }

    async fn setup(&self, run: &RunInfo, setup: &WorkflowSetup) -> Result<DockerWorkflow, BackendError> {
        workflow::setup(&self.engine, &self.options, run, setup).await
    }

    /// Uploads the repository into the workspace volume through a helper container that is
    /// created, never started, and removed again.
    async fn populate_workspace(&self, workflow: &DockerWorkflow, source: &WorkspaceSource) -> Result<(), BackendError> {
        let operation = "fill the workspace";
        let helper_image = self.helper_image().await?.to_string();
        let base = workflow.workspace_base_or_root().to_string();
        // Upload into the folder above the mount point, so that the archive's first entry is
        // the volume's root itself and gets mode 0777 (an archive cannot change the mode of the
        // folder it is extracted into).
        let (upload_dir, mut prefix) = match base.rsplit_once('/') {
            Some(("", "")) | None => ("/".to_string(), Vec::new()),
            Some(("", name)) => ("/".to_string(), vec![name.to_string()]),
            Some((parent, name)) => (parent.to_string(), vec![name.to_string()]),
        };
        prefix.extend(workflow.workspace_path.split('/').filter(|part| !part.is_empty()).map(str::to_string));

        let mut labels: BTreeMap<String, String> = workflow.labels.clone();
        labels.insert(LABEL_STEP.to_string(), "workspace".to_string());
        let spec = ContainerSpec {
            name: Some(format!("{}-workspace", workflow.resource_prefix)),
            image: helper_image,
            command: Some(vec!["/never-started".to_string()]),
            labels,
            volume_mounts: vec![workflow.volume_mount(&workflow.workspace_volume, &base, None)],
            network_mode: Some("none".to_string()),
            ..ContainerSpec::default()
        };
        let engine = self.engine.clone();
        let retry_spec = spec.clone();
        let mut created = workflow
            .create_guarded(async move { engine.create_container(spec).await })
            .await
            .ok_or_else(|| torn_down(operation.to_string()))?;
        if matches!(created, Err(DockerError::ImageNotFound { .. })) && self.options.helper_image.is_none() {
            // Someone removed the helper image since it was checked: make it again, once.
            self.engine.import_image(HELPER_IMAGE, empty_root_filesystem()).await.map_err(|error| backend_error(operation, error))?;
            let engine = self.engine.clone();
            created = workflow
                .create_guarded(async move { engine.create_container(retry_spec).await })
                .await
                .ok_or_else(|| torn_down(operation.to_string()))?;
        }
        let helper = created.map_err(|error| backend_error(operation, error))?;

        let (chunks, producer) = workspace::spawn_archive(source.clone(), prefix);
        let stream = futures_util::stream::unfold(chunks, |mut chunks| async move { chunks.recv().await.map(|chunk| (chunk, chunks)) });
        let uploaded = self.engine.upload_archive(&helper, &upload_dir, stream).await;
        let produced = producer.await;
        if let Err(error) = self.engine.remove_container(&helper).await {
            tracing::warn!(%error, "could not remove the workspace helper container; teardown will");
        }
        match produced {
            Ok(Err(error)) => return Err(BackendError::Operation { operation: operation.to_string(), message: error.to_string() }),
            Err(join_error) => return Err(BackendError::Operation { operation: operation.to_string(), message: join_error.to_string() }),
            Ok(Ok(())) => {}
        }
        uploaded.map_err(|error| backend_error(operation, error))
    }

    async fn prepare(&self, workflow: &DockerWorkflow, step: &StepRequest) -> Result<DockerStep, BackendError> {
        if let Some(request) = &step.build {
            // An image build runs no container of its own: the engine builds from the workspace.
            let helper_image = self.helper_image().await?.to_string();
            let access = WorkspaceAccess::new(workflow, &helper_image, &step.name);
            return Ok(DockerStep {
                container_id: String::new(),
                container_name: access.container_name.clone(),
                step_name: step.name.clone(),
                kind: step.kind,
                network_move: None,
                build: Some(Arc::new(BuildStep::new(request.clone(), access))),
            });
        }
        step::prepare(&self.engine, workflow, step).await
    }

    /// Attaches to the container's output, then starts it: the engine connects the output
    /// before it answers the attach request, so the stream holds every byte from the first,
    /// however soon the step exits. The stream must be read (or dropped): the step writes no
    /// faster than it is read, as with `docker run`.
    async fn start(&self, step: &DockerStep) -> Result<OutputStreamOf, BackendError> {
        if let Some(build) = &step.build {
            return Ok(build.start(&self.engine, &step.step_name));
        }
        let operation = || format!("start step `{}`", step.step_name);
        if let Some(pending) = &step.network_move
            && pending.workflow_addressed.load(Ordering::SeqCst)
        {
            // Created on the default bridge before the workflow had a service: join the
            // workflow's network instead, as if created there (nothing is connected until start).
            self.engine.disconnect_network(DEFAULT_BRIDGE, &step.container_id).await.map_err(|error| backend_error(operation(), error))?;
            self.engine
                .connect_network(&pending.network, &step.container_id, &[])
                .await
                .map_err(|error| backend_error(operation(), error))?;
        }
        let output = self.engine.attach_output(&step.container_id).await.map_err(|error| backend_error(operation(), error))?;
        self.engine.start_container(&step.container_id).await.map_err(|error| backend_error(operation(), error))?;
        let step_name = step.step_name.clone();
        let output = output.map(move |frame| match frame {
            Ok(frame) => Ok(OutputChunk {
                stream: match frame.kind {
                    OutputKind::Stdout => OutputStream::Stdout,
                    OutputKind::Stderr => OutputStream::Stderr,
                },
                bytes: frame.bytes,
            }),
            Err(error) => Err(backend_error(format!("read the output of step `{step_name}`"), error)),
        });
        Ok(Box::pin(output))
    }

    async fn probe(&self, step: &DockerStep, command: &[String]) -> Result<bool, BackendError> {
        if step.build.is_some() {
            return Err(BackendError::Unsupported { what: format!("a readiness check of image build step `{}`", step.step_name) });
        }
        let outcome = self
            .engine
            .exec(&step.container_id, command)
            .await
            .map_err(|error| backend_error(format!("probe step `{}`", step.step_name), error))?;
        Ok(outcome.exit_code == 0)
    }

    async fn wait(&self, step: &DockerStep) -> Result<i64, BackendError> {
        if let Some(build) = &step.build {
            return Ok(build.wait().await);
        }
        self.engine
            .wait_container(&step.container_id)
            .await
            .map_err(|error| backend_error(format!("wait for step `{}`", step.step_name), error))
    }

    async fn stop(&self, step: &DockerStep) {
        if let Some(build) = &step.build {
            build.stop();
            return;
        }
        let stopped = if step.kind == StepKind::Service {
            let grace = i32::try_from(self.options.service_stop_grace.as_secs()).unwrap_or(i32::MAX);
            self.engine.stop_container(&step.container_id, grace).await
        } else {
            self.engine.kill_container(&step.container_id, "SIGKILL").await
        };
        if let Err(error) = stopped {
            tracing::debug!(step = %step.step_name, %error, "stopping the step's container failed");
        }
    }

    async fn remove(&self, step: DockerStep) {
        if step.build.is_some() {
            // Its helper container is removed by the build itself, or by teardown.
            return;
        }
        if let Err(error) = self.engine.remove_container(&step.container_id).await {
            tracing::warn!(step = %step.step_name, %error, "could not remove the step's container; teardown will");
        }
    }

    fn published(&self, step: &DockerStep) -> Vec<runtime::PublishedImage> {
        step.build.as_ref().map(|build| build.published()).unwrap_or_default()
    }

    async fn teardown(&self, workflow: DockerWorkflow) {
        if !workflow::teardown(&self.engine, &workflow).await {
            let key = (workflow.run_id.clone(), workflow.key.clone());
            self.unfinished_teardowns.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
        }
    }
}
