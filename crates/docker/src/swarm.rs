//! Swarm: whether the engine is in a Swarm (and a manager of it), services (create, update at
//! the version they were read at, roll back, inspect, list by label, remove), a service's tasks
//! and the state of its last rollout, configs and secrets, and overlay networks.
//!
//! Nothing here pulls an image or sends registry credentials: a service names its image and
//! each node finds it (locally, or by pulling it itself).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum,
    HealthConfig, Limit, LocalNodeState, Mount, MountType, MountVolumeOptions, NetworkAttachmentConfig, NetworkCreateRequest, SecretSpec,
    Service, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListConfigsOptionsBuilder, ListSecretsOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
    UpdateServiceOptionsBuilder,
};

use crate::Engine;
use crate::container::{HealthcheckSpec, NetworkAttachment, PublishedPort, VolumeMount};
use crate::credentials::{RegistryCredentials, registry_host};
use crate::error::{DockerError, network_error, service_error, swarm_error, swarm_object_error};

/// Whether the engine is part of a Swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwarmState {
    /// Not in a Swarm: `docker swarm init` (or `join`) makes it one.
    Inactive,
    /// In a Swarm. Services are managed through managers only.
    Active { manager: bool },
    /// Joining, locked, or in error: the engine's words for its state and error.
    Unavailable { state: String, error: String },
}

/// A replicated service as Gantry creates it, each task one container. Empty fields leave
/// Swarm's or the image's default.
#[derive(Clone, Debug, Default)]
pub struct ServiceSpec {
    pub name: String,
    /// As written; Swarm's nodes look it up themselves (a digest-pinned image already on a
    /// node is not pulled again).
    pub image: String,
    /// Replaces the image's command (Swarm's `Args`); the image's entrypoint stays.
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    /// On the service itself.
    pub labels: BTreeMap<String, String>,
    /// On every task's container.
    pub container_labels: BTreeMap<String, String>,
    pub replicas: u32,
    /// Published on every node through the Swarm's routing mesh (ingress mode).
    pub published_ports: Vec<PublishedPort>,
    pub configs: Vec<FileReference>,
    pub secrets: Vec<FileReference>,
    /// Named volumes, made on a node (with their labels) when missing there.
    pub volume_mounts: Vec<VolumeMount>,
    /// Overlay networks the tasks join, reachable there at the aliases.
    pub networks: Vec<NetworkAttachment>,
    /// Swarm counts a task as running only once this check has passed, and replaces a task
    /// whose check fails.
    pub healthcheck: Option<HealthcheckSpec>,
    /// CPUs, in billionths.
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    /// How a new version replaces the tasks (`update_config`).
    pub update: RolloutConfig,
    /// How Swarm goes back to the previous version (`rollback_config`); its failure action is
    /// never `Rollback`.
    pub rollback: RolloutConfig,
    pub restart: RestartPolicy,
}

/// A config or secret mounted into the tasks as a file owned by root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReference {
    pub name: String,
    pub id: String,
    /// Absolute path in the container.
    pub target: String,
    /// Permission bits (`0o444`, `0o400`).
    pub mode: u32,
}

/// How Swarm replaces a service's tasks with another version of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutConfig {
    /// Tasks replaced at once; 0: all at once.
    pub parallelism: u32,
    pub order: RolloutOrder,
    /// How long each new task is watched for a failure once it runs.
    pub monitor: Duration,
    pub failure_action: FailureAction,
}

impl Default for RolloutConfig {
    /// Swarm's own defaults.
    fn default() -> Self {
        RolloutConfig {
            parallelism: 1,
            order: RolloutOrder::StopFirst,
            monitor: Duration::from_secs(5),
            failure_action: FailureAction::Pause,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutOrder {
    /// The new task runs before the old one stops.
    StartFirst,
    /// The old task stops first.
    StopFirst,
}

/// What Swarm does when a new task fails during a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Go back to the previous version (`rollback_status` follows).
    Rollback,
    /// Stop the rollout where it is.
    Pause,
    /// Carry on.
    Continue,
}

/// When Swarm starts a task again (as a new task in the same slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    pub delay: Duration,
    /// `None`: without limit.
    pub max_attempts: Option<u32>,
}

impl Default for RestartPolicy {
    /// Swarm's own defaults.
    fn default() -> Self {
        RestartPolicy { condition: RestartCondition::Any, delay: Duration::from_secs(5), max_attempts: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartCondition {
    Any,
    OnFailure,
    Never,
}

/// A service as the engine reports it.
#[derive(Clone, Debug)]
pub struct ServiceDetails {
    pub id: String,
    pub name: String,
    /// The version index an update must name (`Engine::update_service`).
    pub version: u64,
    pub labels: HashMap<String, String>,
    pub container_labels: HashMap<String, String>,
    /// The image its spec names now (`docker service update --image` changes it).
    pub image: String,
    /// `None` for a global service.
    pub replicas: Option<u32>,
    /// The names of the configs and of the secrets its spec mounts.
    pub configs: Vec<String>,
    pub secrets: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: the last change to its spec (an update, a scale).
    pub updated_at: i64,
    /// The last rollout. `None` before the first update, and right after an update until
    /// Swarm starts replacing tasks (never, when no task needs replacing: a scale).
    pub update_status: Option<UpdateStatus>,
}

/// A service's last rollout, forwards or back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// Swarm's words: why it paused or rolled back, naming the task that failed.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateState {
    Updating,
    Completed,
    /// Stopped after a failure (failure action `pause`).
    Paused,
    /// Going back after a failure (failure action `rollback`) or on request.
    RollbackStarted,
    RollbackCompleted,
    /// The way back failed too.
    RollbackPaused,
}

/// One task: the container in one slot of a service, as Swarm schedules it.
#[derive(Clone, Debug)]
pub struct TaskSummary {
    pub id: String,
    pub state: TaskState,
    /// `Running` while Swarm wants it; `Shutdown` once replaced or removed.
    pub desired_state: TaskState,
    /// Once its container exists.
    pub container_id: Option<String>,
    pub image: String,
    /// The labels its container gets, as the task's spec says: which version of the service
    /// the task runs.
    pub container_labels: HashMap<String, String>,
    /// Why it failed or was rejected (`task: non-zero exit (137): dockerexec: unhealthy container`).
    pub error: Option<String>,
}

/// Where a task is in its life, in Swarm's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    New,
    Allocated,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

/// A config or a secret (whose value the engine never gives back).
#[derive(Clone, Debug)]
pub struct SwarmObject {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// Whether this engine is in a Swarm, and a manager of it.
    pub async fn swarm_state(&self) -> Result<SwarmState, DockerError> {
        let info = self.client.info().await.map_err(|error| swarm_error("read the Swarm state", self.host(), error))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(match swarm.local_node_state {
            None | Some(LocalNodeState::INACTIVE | LocalNodeState::EMPTY) => SwarmState::Inactive,
            Some(LocalNodeState::ACTIVE) => SwarmState::Active { manager: swarm.control_available.unwrap_or(false) },
            Some(other) => SwarmState::Unavailable { state: other.to_string(), error: swarm.error.unwrap_or_default() },
        })
    }

    /// Creates the service (its tasks start at once) and returns its id.
    /// With `credentials`, the Swarm's nodes pull the image with that login for its registry.
    pub async fn create_service(&self, spec: ServiceSpec, credentials: Option<&RegistryCredentials>) -> Result<String, DockerError> {
        let name = spec.name.clone();
        let auth = credentials.map(|credentials| credentials.for_engine(registry_host(&spec.image)));
        let created = self.client.create_service(spec.into_bollard(), auth).await.map_err(|error| service_error("create", &name, error))?;
        for warning in created.warnings.unwrap_or_default() {
            tracing::debug!(service = %name, %warning, "the engine warned");
        }
        Ok(created.id.unwrap_or_default())
    }

    /// Replaces the service's spec. `version` is the index it was read at
    /// (`ServiceDetails::version`): a service changed meanwhile is refused rather than
    /// overwritten. Tasks whose spec changed are replaced as `spec.update` says.
    pub async fn update_service(
        &self,
        service: &str,
        version: u64,
        spec: ServiceSpec,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<(), DockerError> {
        let options = UpdateServiceOptionsBuilder::default().version(version_index(service, version)?).build();
        let auth = credentials.map(|credentials| credentials.for_engine(registry_host(&spec.image)));
        let updated = self
            .client
            .update_service(service, spec.into_bollard(), options, auth)
            .await
            .map_err(|error| service_error("update", service, error))?;
        for warning in updated.warnings.unwrap_or_default() {
            tracing::debug!(%service, %warning, "the engine warned");
        }
        Ok(())
    }

    /// Asks Swarm to go back to the service's previous spec (`docker service rollback`), as
    /// its `rollback_config` says. `version` as for `update_service`.
    pub async fn rollback_service(&self, service: &str, version: u64) -> Result<(), DockerError> {
        let options = UpdateServiceOptionsBuilder::default().version(version_index(service, version)?).rollback("previous").build();
        let current = self
            .client
            .inspect_service(service, None::<InspectServiceOptions>)
            .await
            .map_err(|error| service_error("roll back", service, error))?;
        // The spec sent along is ignored for a rollback; the engine still wants one.
        let spec = current.spec.unwrap_or_default();
        self.client
            .update_service(service, spec, options, None)
            .await
            .map(|_| ())
            .map_err(|error| service_error("roll back", service, error))
    }

    /// The service by name or id; `DockerError::Service` with status 404 when there is none.
    pub async fn inspect_service(&self, service: &str) -> Result<ServiceDetails, DockerError> {
        let inspected = self
            .client
            .inspect_service(service, None::<InspectServiceOptions>)
            .await
            .map_err(|error| service_error("inspect", service, error))?;
        Ok(service_details(inspected))
    }

    /// Every service carrying all of `labels` (`key=value` or `key`).
    pub async fn list_services(&self, labels: &[String]) -> Result<Vec<ServiceDetails>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListServicesOptionsBuilder::default().filters(&filters).build();
        let services =
            self.client.list_services(Some(options)).await.map_err(|error| swarm_error("list services", &labels.join(","), error))?;
        Ok(services.into_iter().map(service_details).collect())
    }

    /// Removes the service; its tasks are shut down afterwards, in the background. One that
    /// does not exist (any more) is not an error.
    pub async fn remove_service(&self, service: &str) -> Result<(), DockerError> {
        match self.client.delete_service(service).await {
            Ok(()) => Ok(()),
            Err(error) => match service_error("remove", service, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// The tasks of a service (by name or id), past ones included as far as Swarm keeps them.
    /// A removed service's tasks, until Swarm has stopped and forgotten them, by its id.
    pub async fn list_tasks(&self, service: &str) -> Result<Vec<TaskSummary>, DockerError> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        match self.client.list_tasks(Some(options)).await.map_err(|error| swarm_error("list tasks", service, error)) {
            Ok(tasks) => Ok(tasks.into_iter().map(task_summary).collect()),
            // The engine looks the service up before it filters: a removed one is "not
            // found", while its tasks are still shutting down.
            Err(error) if error.is_not_found() => {
                let tasks = self.client.list_tasks(None).await.map_err(|error| swarm_error("list tasks", service, error))?;
                Ok(tasks.into_iter().filter(|task| task.service_id.as_deref() == Some(service)).map(task_summary).collect())
            }
            Err(error) => Err(error),
        }
    }

    /// Creates a config holding `data`; returns its id. A config's content never changes:
    /// another content is another config.
    pub async fn create_config(&self, name: &str, data: &[u8], labels: &BTreeMap<String, String>) -> Result<String, DockerError> {
        let spec = ConfigSpec {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            templating: None,
        };
        let created = self.client.create_config(spec).await.map_err(|error| swarm_object_error("create", "config", name, error))?;
        Ok(created.id)
    }

    /// The config by name or id; `DockerError::SwarmObject` with status 404 when there is none.
    pub async fn inspect_config(&self, config: &str) -> Result<SwarmObject, DockerError> {
        let inspected = self.client.inspect_config(config).await.map_err(|error| swarm_object_error("inspect", "config", config, error))?;
        let spec = inspected.spec.unwrap_or_default();
        Ok(SwarmObject {
            id: inspected.id.unwrap_or_default(),
            name: spec.name.unwrap_or_default(),
            labels: spec.labels.unwrap_or_default(),
        })
    }

    /// Every config carrying all of `labels`.
    pub async fn list_configs(&self, labels: &[String]) -> Result<Vec<SwarmObject>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListConfigsOptionsBuilder::default().filters(&filters).build();
        let configs = self
            .client
            .list_configs(Some(options))
            .await
            .map_err(|error| swarm_object_error("list", "config", &labels.join(","), error))?;
        Ok(configs
            .into_iter()
            .map(|config| {
                let spec = config.spec.unwrap_or_default();
                SwarmObject {
                    id: config.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Removes the config; one that does not exist (any more) is not an error. Refused (status
    /// 400) while a service's spec mounts it.
    pub async fn remove_config(&self, config: &str) -> Result<(), DockerError> {
        match self.client.delete_config(config).await {
            Ok(()) => Ok(()),
            Err(error) => match swarm_object_error("remove", "config", config, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Creates a secret holding `data`; returns its id. Swarm keeps it encrypted and gives it
    /// only to the tasks that mount it, never back through the API.
    pub async fn create_secret(&self, name: &str, data: &[u8], labels: &BTreeMap<String, String>) -> Result<String, DockerError> {
        let spec = SecretSpec {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            driver: None,
            templating: None,
        };
        let created = self.client.create_secret(spec).await.map_err(|error| swarm_object_error("create", "secret", name, error))?;
        Ok(created.id)
    }

    /// The secret by name or id (without its value); `DockerError::SwarmObject` with status 404
    /// when there is none.
    pub async fn inspect_secret(&self, secret: &str) -> Result<SwarmObject, DockerError> {
        let inspected = self.client.inspect_secret(secret).await.map_err(|error| swarm_object_error("inspect", "secret", secret, error))?;
        let spec = inspected.spec.unwrap_or_default();
        Ok(SwarmObject {
            id: inspected.id.unwrap_or_default(),
            name: spec.name.unwrap_or_default(),
            labels: spec.labels.unwrap_or_default(),
        })
    }

    /// Every secret carrying all of `labels`.
    pub async fn list_secrets(&self, labels: &[String]) -> Result<Vec<SwarmObject>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListSecretsOptionsBuilder::default().filters(&filters).build();
        let secrets = self
            .client
            .list_secrets(Some(options))
            .await
            .map_err(|error| swarm_object_error("list", "secret", &labels.join(","), error))?;
        Ok(secrets
            .into_iter()
            .map(|secret| {
                let spec = secret.spec.unwrap_or_default();
                SwarmObject {
                    id: secret.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Removes the secret; one that does not exist (any more) is not an error. Refused (status
    /// 400) while a service's spec mounts it.
    pub async fn remove_secret(&self, secret: &str) -> Result<(), DockerError> {
        match self.client.delete_secret(secret).await {
            Ok(()) => Ok(()),
            Err(error) => match swarm_object_error("remove", "secret", secret, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Creates an overlay network spanning the Swarm, on which services reach each other by
    /// name and alias; containers may join it too (attachable). Returns its id. Listed and
    /// removed like any network (`list_networks`, `remove_network`).
    pub async fn create_overlay_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<String, DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("overlay".to_string()),
            attachable: Some(true),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let created = self.client.create_network(request).await.map_err(|error| network_error("create", name, error))?;
        Ok(created.id)
    }
}

/// The update API takes the index as a 32-bit number.
fn version_index(service: &str, version: u64) -> Result<i32, DockerError> {
    i32::try_from(version).map_err(|_| DockerError::Service {
        operation: "update",
        service: service.to_string(),
        status: 0,
        message: format!("version index {version} is out of the API's range"),
    })
}

fn nanoseconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl ServiceSpec {
    fn into_bollard(self) -> bollard::models::ServiceSpec {
        let non_empty = |values: Vec<String>| if values.is_empty() { None } else { Some(values) };
        let mounts: Vec<Mount> = self
            .volume_mounts
            .into_iter()
            .map(|mount| Mount {
                target: Some(mount.target),
                source: Some(mount.volume),
                typ: Some(MountType::VOLUME),
                read_only: Some(mount.read_only),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(mount.no_copy),
                    labels: Some(mount.labels.into_iter().collect()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let configs: Vec<TaskSpecContainerSpecConfigs> = self
            .configs
            .into_iter()
            .map(|config| TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(config.target),
                    uid: Some("0".to_string()),
                    gid: Some("0".to_string()),
                    mode: Some(config.mode),
                }),
                runtime: None,
                config_id: Some(config.id),
                config_name: Some(config.name),
            })
            .collect();
        let secrets: Vec<TaskSpecContainerSpecSecrets> = self
            .secrets
            .into_iter()
            .map(|secret| TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(secret.target),
                    uid: Some("0".to_string()),
                    gid: Some("0".to_string()),
                    mode: Some(secret.mode),
                }),
                secret_id: Some(secret.id),
                secret_name: Some(secret.name),
            })
            .collect();
        let health_check = self.healthcheck.map(|check| HealthConfig {
            test: Some(std::iter::once("CMD".to_string()).chain(check.command).collect()),
            interval: Some(nanoseconds(check.interval)),
            timeout: Some(nanoseconds(check.timeout)),
            retries: Some(i64::from(check.retries)),
            start_period: Some(nanoseconds(check.start_period)),
            start_interval: None,
        });
        let container_spec = TaskSpecContainerSpec {
            image: Some(self.image),
            labels: Some(self.container_labels.into_iter().collect()),
            args: self.command,
            env: non_empty(self.environment.into_iter().map(|(name, value)| format!("{name}={value}")).collect()),
            mounts: if mounts.is_empty() { None } else { Some(mounts) },
            health_check,
            configs: if configs.is_empty() { None } else { Some(configs) },
            secrets: if secrets.is_empty() { None } else { Some(secrets) },
            ..Default::default()
        };
        let networks: Vec<NetworkAttachmentConfig> = self
            .networks
            .into_iter()
            .map(|network| NetworkAttachmentConfig {
                target: Some(network.network),
                aliases: if network.aliases.is_empty() { None } else { Some(network.aliases) },
                driver_opts: None,
            })
            .collect();
        let restart = self.restart;
        let task_template = TaskSpec {
            container_spec: Some(container_spec),
            resources: (self.nano_cpus.is_some() || self.memory_bytes.is_some()).then(|| TaskSpecResources {
                limits: Some(Limit { nano_cpus: self.nano_cpus, memory_bytes: self.memory_bytes, pids: None }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(match restart.condition {
                    RestartCondition::Any => TaskSpecRestartPolicyConditionEnum::ANY,
                    RestartCondition::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
                    RestartCondition::Never => TaskSpecRestartPolicyConditionEnum::NONE,
                }),
                delay: Some(nanoseconds(restart.delay)),
                max_attempts: Some(restart.max_attempts.map_or(0, i64::from)),
                window: None,
            }),
            networks: if networks.is_empty() { None } else { Some(networks) },
            ..Default::default()
        };
        let ports: Vec<EndpointPortConfig> = self
            .published_ports
            .iter()
            .map(|port| EndpointPortConfig {
                name: None,
                protocol: Some(match port.protocol.as_str() {
                    "udp" => EndpointPortConfigProtocolEnum::UDP,
                    "sctp" => EndpointPortConfigProtocolEnum::SCTP,
                    _ => EndpointPortConfigProtocolEnum::TCP,
                }),
                target_port: Some(i64::from(port.container_port)),
                published_port: Some(i64::from(port.host_port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
            })
            .collect();
        let update = self.update;
        let rollback = self.rollback;
        bollard::models::ServiceSpec {
            name: Some(self.name),
            labels: Some(self.labels.into_iter().collect()),
            task_template: Some(task_template),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(self.replicas)) }),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(i64::from(update.parallelism)),
                delay: Some(0),
                failure_action: Some(match update.failure_action {
                    FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
                    FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
                    FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
                }),
                monitor: Some(nanoseconds(update.monitor)),
                max_failure_ratio: Some(0.0),
                order: Some(match update.order {
                    RolloutOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
                    RolloutOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
                }),
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(i64::from(rollback.parallelism)),
                delay: Some(0),
                failure_action: Some(match rollback.failure_action {
                    // Going back has nowhere further back to go.
                    FailureAction::Rollback | FailureAction::Pause => ServiceSpecRollbackConfigFailureActionEnum::PAUSE,
                    FailureAction::Continue => ServiceSpecRollbackConfigFailureActionEnum::CONTINUE,
                }),
                monitor: Some(nanoseconds(rollback.monitor)),
                max_failure_ratio: Some(0.0),
                order: Some(match rollback.order {
                    RolloutOrder::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
                    RolloutOrder::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
                }),
            }),
            networks: None,
            endpoint_spec: if ports.is_empty() {
                None
            } else {
                Some(EndpointSpec { mode: Some(EndpointSpecModeEnum::VIP), ports: Some(ports) })
            },
        }
    }
}

fn service_details(service: Service) -> ServiceDetails {
    let spec = service.spec.unwrap_or_default();
    let container = spec.task_template.and_then(|template| template.container_spec).unwrap_or_default();
    let update_status = service.update_status.and_then(|status| {
        let state = match status.state? {
            ServiceUpdateStatusStateEnum::EMPTY => return None,
            ServiceUpdateStatusStateEnum::UPDATING => UpdateState::Updating,
            ServiceUpdateStatusStateEnum::COMPLETED => UpdateState::Completed,
            ServiceUpdateStatusStateEnum::PAUSED => UpdateState::Paused,
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED => UpdateState::RollbackStarted,
            ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED => UpdateState::RollbackCompleted,
            ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED => UpdateState::RollbackPaused,
        };
        Some(UpdateStatus { state, message: status.message.unwrap_or_default() })
    });
    ServiceDetails {
        id: service.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        version: service.version.and_then(|version| version.index).unwrap_or_default(),
        labels: spec.labels.unwrap_or_default(),
        container_labels: container.labels.unwrap_or_default(),
        image: container.image.unwrap_or_default(),
        replicas: spec
            .mode
            .and_then(|mode| mode.replicated)
            .and_then(|replicated| replicated.replicas)
            .map(|replicas| u32::try_from(replicas).unwrap_or(u32::MAX)),
        configs: container.configs.unwrap_or_default().into_iter().filter_map(|config| config.config_name).collect(),
        secrets: container.secrets.unwrap_or_default().into_iter().filter_map(|secret| secret.secret_name).collect(),
        created_at: service.created_at.as_deref().and_then(unix_seconds).unwrap_or_default(),
        updated_at: service.updated_at.as_deref().and_then(unix_seconds).unwrap_or_default(),
        update_status,
    }
}

fn task_summary(task: Task) -> TaskSummary {
    let status = task.status.unwrap_or_default();
    let container = task.spec.and_then(|spec| spec.container_spec).unwrap_or_default();
    TaskSummary {
        id: task.id.unwrap_or_default(),
        state: status.state.map_or(TaskState::New, task_state),
        desired_state: task.desired_state.map_or(TaskState::New, task_state),
        container_id: status.container_status.and_then(|container| container.container_id).filter(|id| !id.is_empty()),
        image: container.image.unwrap_or_default(),
        container_labels: container.labels.unwrap_or_default(),
        error: status.err.filter(|error| !error.is_empty()),
    }
}

fn task_state(state: bollard::models::TaskState) -> TaskState {
    use bollard::models::TaskState as Engine;
    match state {
        Engine::NEW => TaskState::New,
        Engine::ALLOCATED => TaskState::Allocated,
        Engine::PENDING => TaskState::Pending,
        Engine::ASSIGNED => TaskState::Assigned,
        Engine::ACCEPTED => TaskState::Accepted,
        Engine::PREPARING => TaskState::Preparing,
        Engine::READY => TaskState::Ready,
        Engine::STARTING => TaskState::Starting,
        Engine::RUNNING => TaskState::Running,
        Engine::COMPLETE => TaskState::Complete,
        Engine::SHUTDOWN => TaskState::Shutdown,
        Engine::FAILED => TaskState::Failed,
        Engine::REJECTED => TaskState::Rejected,
        Engine::REMOVE => TaskState::Remove,
        Engine::ORPHANED => TaskState::Orphaned,
    }
}

/// Unix seconds of an RFC 3339 time as the engine writes them (`2024-03-01T12:34:56.789Z`,
/// or with an offset); `None` for anything else. The engine's zero time (year 1) is negative.
fn unix_seconds(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Past the seconds: an optional fraction, then `Z` or `±hh:mm`.
    let rest = text[19..].trim_start_matches(|character: char| character == '.' || character.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && rest.as_bytes()[3] == b':' => {
            let minutes = rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?;
            if rest.starts_with('-') { -minutes * 60 } else { minutes * 60 }
        }
        _ => return None,
    };
    Some(days_since_epoch(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar. Counting years from
/// March makes February, with its leap day, the last month, so every year before it has
/// `365 + leap days` and months have a fixed number of days before them.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days lie between 0000-03-01 and 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

impl TaskState {
    /// Swarm's word for it (`running`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn the_engines_times_read_as_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-12-05T06:39:45.775928362Z"), Some(1_796_452_785));
        assert_eq!(unix_seconds("2000-02-29T12:00:00+01:00"), Some(951_822_000));
        assert_eq!(unix_seconds("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(unix_seconds("0001-01-01T00:00:00Z"), Some(-62_135_596_800));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(unix_seconds("2026-13-01T00:00:00Z"), None);
    }
}
