//! A workflow on the engine: its network, workspace volume and named volumes, what its steps
//! share (labels, pull state), and how it is torn down.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use docker::{DockerError, Engine};
use runtime::{BackendError, RunInfo, WorkflowSetup};

use crate::backend::{DockerBackendOptions, NetworkPolicy};
use crate::backend_error;
use crate::owner::{LABEL_RUN, LABEL_WORKFLOW};
use crate::translate::name_part;

/// What `setup` made for one workflow. Everything it and its steps create carries `labels`.
#[derive(Debug)]
pub struct DockerWorkflow {
    pub(crate) run_id: String,
    pub(crate) key: String,
    /// `gantry-<run>-<workflow>`: the start of every resource name of this workflow.
    pub(crate) resource_prefix: String,
    pub(crate) network: String,
    pub(crate) network_policy: NetworkPolicy,
    /// Whether a container of this workflow is addressed by name (a service, or a step with
    /// aliases): with `NetworkPolicy::WhenAddressed`, containers join the network from then on.
    pub(crate) addressed: Arc<AtomicBool>,
    /// Set once the workflow's network exists: at setup with `NetworkPolicy::Always`, else when
    /// the first container addressed by name is prepared.
    network_ready: tokio::sync::OnceCell<()>,
    pub(crate) workspace_volume: String,
    pub(crate) workspace_base: String,
    pub(crate) workspace_path: String,
    /// Named volumes by the name steps use, to the engine volume that is this workflow's own.
    pub(crate) volumes: Mutex<BTreeMap<String, String>>,
    pub(crate) labels: BTreeMap<String, String>,
    /// True once teardown began. Creations hold it for reading until the engine answered,
    /// teardown takes it for writing: so teardown sees everything created before it, and
    /// nothing is created after it.
    teardown_lock: Arc<tokio::sync::RwLock<bool>>,
    next_container: AtomicUsize,
    /// One lock per image, holding whether this workflow pulled it already, so that steps
    /// prepared at once pull an image once.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<bool>>>>,
}

impl DockerWorkflow {
    pub fn network_name(&self) -> &str {
        &self.network
    }

    pub fn workspace_volume(&self) -> &str {
        &self.workspace_volume
    }

    /// The labels every resource of this workflow carries.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The label filter (`key=value`) that finds this workflow's resources.
    pub fn label_filter(&self) -> Vec<String> {
        vec![format!("{LABEL_RUN}={}", self.run_id), format!("{LABEL_WORKFLOW}={}", self.key)]
    }

    /// A new container name: numbered, because step names need not stay unique once cut to
    /// the characters names allow.
    pub(crate) fn container_name(&self, step_name: &str) -> String {
        let number = self.next_container.fetch_add(1, Ordering::Relaxed);
        format!("{}-{number}-{}", self.resource_prefix, name_part(step_name, 48))
    }

    /// Runs `create` (a request that makes a labelled resource) to its end even when the
    /// caller stops waiting for it, so that the engine never makes something teardown has
    /// already missed. `None` when teardown has begun: nothing is created then.
    /// Creates the workflow's network unless it exists already; concurrent callers wait for one creation.
    pub(crate) async fn ensure_network(&self, engine: &Engine) -> Result<(), BackendError> {
        self.network_ready
            .get_or_try_init(|| async {
                let (engine, network, labels) = (engine.clone(), self.network.clone(), self.labels.clone());
                let created = self.create_guarded(async move { engine.create_network(&network, &labels).await }).await;
                let operation = || format!("create the network of workflow `{}`", self.key);
                created.ok_or_else(|| torn_down(operation()))?.map(|_| ()).map_err(|error| backend_error(operation(), error))
            })
            .await
            .map(|_| ())
    }

    pub(crate) async fn create_guarded<T, F>(&self, create: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let lock = self.teardown_lock.clone();
        let task = tokio::spawn(async move {
            let torn_down = lock.read_owned().await;
            if *torn_down {
                return None;
            }
            Some(create.await)
        });
        match task.await {
            Ok(created) => created,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    pub(crate) fn pull_lock(&self, image: &str) -> Arc<tokio::sync::Mutex<bool>> {
        let mut pulls = self.pulls.lock().expect("pull locks are never poisoned");
        pulls.entry(image.to_string()).or_default().clone()
    }

    /// The engine volume behind the step volume named `name`; one the workflow did not declare
    /// is created on first use, labelled like the rest, so it never outlives the workflow.
    pub(crate) async fn volume_for(&self, engine: &Engine, name: &str) -> Result<String, BackendError> {
        if let Some(volume) = self.volumes.lock().expect("volume map is never poisoned").get(name) {
            return Ok(volume.clone());
        }
        let volume = format!("{}-vol-{}", self.resource_prefix, name_part(name, 48));
        // Creating an existing volume is a no-op, so two steps racing here both succeed.
        let (engine, labels, name_to_create) = (engine.clone(), self.labels.clone(), volume.clone());
        let created = self.create_guarded(async move { engine.create_volume(&name_to_create, &labels).await }).await;
        let operation = || format!("create volume `{name}`");
        created.ok_or_else(|| torn_down(operation()))?.map_err(|error| backend_error(operation(), error))?;
        self.volumes.lock().expect("volume map is never poisoned").insert(name.to_string(), volume.clone());
        Ok(volume)
    }
}

/// Creates the network and the volumes of a workflow, all at once. On failure, removes what
/// was made.
pub(crate) async fn setup(
    engine: &Engine,
    options: &DockerBackendOptions,
    run: &RunInfo,
    setup: &WorkflowSetup,
) -> Result<DockerWorkflow, BackendError> {
    if !setup.workspace_base.starts_with('/') {
        return Err(BackendError::Operation {
            operation: format!("set up workflow `{}`", setup.name),
            message: format!("the workspace base `{}` is not an absolute path", setup.workspace_base),
        });
    }
    let resource_prefix = format!("gantry-{}-{}", name_part(&run.id, 48), name_part(&setup.key, 48));
    let mut labels = options.owner.labels();
    labels.insert(LABEL_RUN.to_string(), run.id.clone());
    labels.insert(LABEL_WORKFLOW.to_string(), setup.key.clone());
    let volumes: BTreeMap<String, String> =
        setup.volumes.iter().map(|name| (name.clone(), format!("{resource_prefix}-vol-{}", name_part(name, 48)))).collect();
    let workflow = DockerWorkflow {
        run_id: run.id.clone(),
        key: setup.key.clone(),
        network: resource_prefix.clone(),
        network_policy: options.network_policy,
        addressed: Arc::new(AtomicBool::new(false)),
        network_ready: tokio::sync::OnceCell::new(),
        workspace_volume: format!("{resource_prefix}-workspace"),
        resource_prefix,
        workspace_base: setup.workspace_base.trim_end_matches('/').to_string(),
        workspace_path: setup.workspace_path.trim_matches('/').to_string(),
        volumes: Mutex::new(volumes.clone()),
        labels,
        teardown_lock: Arc::new(tokio::sync::RwLock::new(false)),
        next_container: AtomicUsize::new(0),
        pulls: Mutex::default(),
    };
    // In a task of its own, so that a caller that stops waiting (a cancelled run) cannot leave
    // a half-made workflow behind: the task removes what it made when no one takes it.
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (engine_for_task, network, workspace_volume) = (engine.clone(), workflow.network.clone(), workflow.workspace_volume.clone());
    let (labels, filter) = (workflow.labels.clone(), workflow.label_filter());
    // Without services the workflow may never need its network (`NetworkPolicy::WhenAddressed`):
    // it is then made by the first container that others address by name.
    let network_now = options.network_policy == NetworkPolicy::Always;
    tokio::spawn(async move {
        let engine = engine_for_task;
        let created_network = async { if network_now { engine.create_network(&network, &labels).await.map(|_| ()) } else { Ok(()) } };
        let workspace = engine.create_volume(&workspace_volume, &labels);
        let named = futures_util::future::try_join_all(volumes.values().map(|volume| engine.create_volume(volume, &labels)));
        let (created_network, workspace, named) = tokio::join!(created_network, workspace, named);
        let created = created_network.and(workspace).and(named.map(|_| ()));
        let failed = created.is_err();
        let abandoned = sender.send(created).is_err();
        if !failed && !abandoned {
            return;
        }
        if let Err(cleanup) = engine.remove_labelled(&filter).await {
            tracing::warn!(error = %cleanup, "could not remove what an unfinished workflow setup made");
        }
    });
    let created = receiver.await.unwrap_or_else(|_| {
        Err(DockerError::Transport {
            operation: "set up workflow",
            target: setup.key.clone(),
            message: "the setup task ended early".to_string(),
        })
    });
    if let Err(error) = created {
        return Err(backend_error(format!("set up workflow `{}`", setup.name), error));
    }
    if network_now {
        let _ = workflow.network_ready.set(());
    }
    tracing::debug!(run = %workflow.run_id, workflow = %workflow.key, network = %workflow.network, "workflow set up");
    Ok(workflow)
}

/// Removes every container (running or not), the network and the volumes of the workflow. A
/// failed pass is repeated: what it could not remove (a network a container was still leaving,
/// a volume still in use) usually goes on the next. False when something is left (the engine
/// went away): the backend's next `sweep` removes it.
pub(crate) async fn teardown(engine: &Engine, workflow: &DockerWorkflow) -> bool {
    // Waits for creations in flight, and turns away later ones, before listing.
    *workflow.teardown_lock.write().await = true;
    let filter = workflow.label_filter();
    let mut last_error = None;
    for _attempt in 0..3 {
        match engine.remove_labelled(&filter).await {
            Ok(_) => {
                tracing::debug!(run = %workflow.run_id, workflow = %workflow.key, "workflow torn down");
                return true;
            }
            Err(error) => last_error = Some(error),
        }
    }
    if let Some(error) = last_error {
        tracing::warn!(run = %workflow.run_id, workflow = %workflow.key, %error, "workflow teardown left resources behind; the next sweep removes them");
    }
    false
}

/// The error of an operation turned away because its workflow is being torn down.
pub(crate) fn torn_down(operation: String) -> BackendError {
    BackendError::Operation { operation, message: "the workflow is being torn down".to_string() }
}
