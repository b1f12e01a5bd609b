//! Docker Swarm as a target: one service per application (`<environment>-<app>`), labelled
//! like `DockerTarget`'s containers, the service's own labels saying what was deployed and its
//! containers' labels saying which version each task runs. The update policy becomes the
//! service's `update_config` (and its `rollback_config`: the same parallelism and order, pausing
//! when going back fails too), so Swarm itself replaces the tasks, watches them for `monitor`,
//! and goes back when they fail. The deployer follows the rollout to its end and reports it:
//! after an error with the rollback policy the previous version runs again; with the pause
//! policy the rollout stays where Swarm stopped it, for a person to look at.
//!
//! Configs and secrets are Swarm objects named by content: a config
//! `<environment>-<app>-<sha256 of its content, short>-<file name>`, a secret
//! `<environment>-<name>-<version>` (names cut to Swarm's 64 characters end in a digest of
//! the whole). A name is never reused for other content, so a new content is a new object, the
//! service's spec changes with it and the tasks roll. What no service mounts any more is
//! removed once a rollout has settled, so a `docker service rollback` by hand to an older
//! version may find its objects gone: going back is a commit to the environment repository.
//! Secrets reach the tasks only through Swarm (in memory on the nodes), as root-only files.
//!
//! Nothing is pulled by the deployer: the service names the image as the repository wrote it
//! (by digest when pinned) and each node finds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::model::{App, FailureAction, Probe, Protocol, UpdateOrder};
use crate::plan::{ObservedApp, ObservedInstance, content_digest};
use crate::target::{Deployment, Target, TargetError, app_labels, health_limit, labels};

/// Swarm's longest config or secret name.
const OBJECT_NAME_LIMIT: usize = 64;
/// Swarm's longest service or network name (a DNS label).
const SERVICE_NAME_LIMIT: usize = 63;
/// Beyond the health check's own time: scheduling, and each node looking for the image (a
/// node that cannot reach a registry still tries before it uses its own copy).
const SWARM_SLACK: Duration = Duration::from_secs(30);
/// How long a removed service's tasks may take to stop (Swarm's stop grace period is 10 s).
const REMOVAL_LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// Config files are world-readable, secrets root-only, as on the Docker target.
const CONFIG_MODE: u32 = 0o444;
const SECRET_MODE: u32 = 0o400;

/// Services on the Swarm an engine is a manager of.
pub struct SwarmTarget {
    engine: docker::Engine,
}

impl SwarmTarget {
    /// The engine at `host` (`None`: DOCKER_HOST or the local socket), which must be a manager
    /// of an active Swarm.
    pub async fn connect(host: Option<&str>) -> Result<SwarmTarget, TargetError> {
        let host = host.map_or_else(docker::resolve_host, str::to_owned);
        SwarmTarget::new(docker::Engine::connect_to(&host).await?).await
    }

    /// `engine`, once it says it manages an active Swarm.
    pub async fn new(engine: docker::Engine) -> Result<SwarmTarget, TargetError> {
        let state = match engine.swarm_state().await? {
            docker::SwarmState::Active { manager: true } => return Ok(SwarmTarget { engine }),
            docker::SwarmState::Active { manager: false } => "a worker".to_owned(),
            docker::SwarmState::Inactive => "not in a Swarm".to_owned(),
            docker::SwarmState::Unavailable { state, error } if error.is_empty() => state,
            docker::SwarmState::Unavailable { state, error } => format!("{state}: {error}"),
        };
        Err(TargetError::NotSwarmManager { host: engine.host().to_owned(), state })
    }
}

impl Target for SwarmTarget {
    async fn observe(&self, environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
        self.observe_services(environment).await
    }

    async fn deploy(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        self.deploy_service(deployment).await
    }

    /// Removes the service, waits (bounded) until its tasks are gone, then the configs and
    /// secrets no service mounts any more.
    async fn remove(&self, environment: &str, app: &str) -> Result<(), TargetError> {
        let services = self.engine.list_services(&app_labels(environment, app)).await?;
        for service in &services {
            self.engine.remove_service(&service.id).await?;
        }
        for service in &services {
            self.wait_tasks_gone(&service.id).await?;
        }
        self.prune_objects(environment, app).await;
        Ok(())
    }
}

impl SwarmTarget {
    /// Creates or updates the application's service and waits until the rollout has ended.
    async fn deploy_service(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        let app = deployment.app;
        let environment = deployment.environment;
        for network in &app.networks {
            self.ensure_network(environment, network).await?;
        }
        let configs = self.ensure_configs(deployment).await?;
        let secrets = self.ensure_secrets(deployment).await?;
        let spec = service_spec(deployment, configs, secrets);
        let name = spec.name.clone();
        let result = match self.engine.inspect_service(&name).await {
            Ok(existing) => self.update(&existing, spec, deployment).await,
            Err(error) if error.is_not_found() => self.create(spec, deployment).await,
            Err(error) => Err(error.into()),
        };
        // After a success the previous version's configs and secrets are unused; after a
        // failure, the ones made for the version that did not come up, once it is not in force
        // (gone back, or never created). A paused rollout keeps everything: its old tasks
        // still run, and a person may still roll it back by hand.
        let settled = match &result {
            Ok(()) => true,
            Err(_) => match self.engine.inspect_service(&name).await {
                Ok(service) => service.labels.get(labels::SPEC).map(String::as_str) != Some(deployment.spec_digest),
                Err(error) => error.is_not_found(),
            },
        };
        if settled {
            self.prune_objects(environment, &app.name).await;
        }
        result
    }

    /// Creates the service and waits until its tasks run (healthy, when it has a health
    /// check). A task that stops fails the whole: the service is removed again.
    async fn create(&self, spec: docker::ServiceSpec, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        let name = spec.name.clone();
        let id = self.engine.create_service(spec, deployment.pull_credentials).await?;
        let outcome = self.wait_created(&name, deployment).await;
        if outcome.is_err() {
            self.engine.remove_service(&id).await?;
            self.wait_tasks_gone(&id).await?;
        }
        outcome
    }

    async fn wait_created(&self, service: &str, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        let app = deployment.app;
        let limit = health_limit(app) + app.update.monitor + SWARM_SLACK;
        let deadline = Instant::now() + limit;
        let unhealthy = |why: String| TargetError::Unhealthy { app: app.name.clone(), why };
        loop {
            let tasks = self.engine.list_tasks(service).await?;
            let progress = Progress::of(&tasks, &Version::of(deployment));
            if let Some(task) = progress.stopped {
                return Err(unhealthy(format!("a task stopped: {}", self.why_stopped(task).await)));
            }
            if progress.ready >= app.replicas as usize && progress.stale == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(unhealthy(format!("{} of {} tasks running within {}s", progress.ready, app.replicas, limit.as_secs())));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Updates the service to `spec` and follows Swarm's rollout: done once Swarm says it
    /// completed and the tasks of the new version run; a pause or a rollback is the error.
    /// After an error with the rollback policy, the previous version runs again (Swarm went
    /// back, or the deployer asked it to when the rollout took too long); with the pause
    /// policy the rollout stays where it stopped, as that policy asks.
    async fn update(
        &self,
        existing: &docker::ServiceDetails,
        spec: docker::ServiceSpec,
        deployment: &Deployment<'_>,
    ) -> Result<(), TargetError> {
        let app = deployment.app;
        let name = existing.name.clone();
        match self.engine.update_service(&name, existing.version, spec.clone(), deployment.pull_credentials).await {
            // Changed between reading and writing (by hand, or Swarm recording a task): read
            // the version again, once.
            Err(docker::DockerError::Service { message, .. }) if message.contains("out of sequence") => {
                let again = self.engine.inspect_service(&name).await?;
                self.engine.update_service(&name, again.version, spec, deployment.pull_credentials).await?;
            }
            result => result?,
        }
        let batches = match app.update.parallelism {
            0 => 1,
            parallelism => app.replicas.div_ceil(parallelism).max(1),
        };
        let limit = health_limit(app) * batches + app.update.monitor + SWARM_SLACK;
        let deadline = Instant::now() + limit;
        let unhealthy = |why: String| TargetError::Unhealthy { app: app.name.clone(), why };
        loop {
            let service = self.engine.inspect_service(&name).await?;
            // Swarm clears the status when the spec is written, and sets it once it starts
            // replacing tasks: no status yet, or none at all when no task needs replacing (only
            // the replicas changed).
            let state = service.update_status.as_ref().map(|status| status.state);
            match state {
                None | Some(docker::UpdateState::Completed) => {
                    let tasks = self.engine.list_tasks(&name).await?;
                    let progress = Progress::of(&tasks, &Version::of(deployment));
                    if progress.ready >= app.replicas as usize && progress.stale == 0 {
                        return Ok(());
                    }
                }
                Some(docker::UpdateState::Updating) => {}
                Some(docker::UpdateState::Paused | docker::UpdateState::RollbackPaused | docker::UpdateState::RollbackCompleted) => {
                    return Err(unhealthy(self.failure_reason(&service, &Version::of(deployment)).await));
                }
                Some(docker::UpdateState::RollbackStarted) => {
                    let why = self.failure_reason(&service, &Version::of(deployment)).await;
                    self.wait_rollback(app, &name).await?;
                    return Err(unhealthy(why));
                }
            }
            if Instant::now() > deadline {
                let mut why = format!("the rollout did not finish within {}s", limit.as_secs());
                if app.update.failure_action == FailureAction::Rollback {
                    let service = self.engine.inspect_service(&name).await?;
                    self.engine.rollback_service(&name, service.version).await?;
                    self.wait_rollback(app, &name).await?;
                    why.push_str("; rolled back");
                }
                return Err(unhealthy(why));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Swarm's message on a failed rollout, with why a task of the new version stopped when
    /// one did.
    async fn failure_reason(&self, service: &docker::ServiceDetails, version: &Version) -> String {
        let message = service.update_status.as_ref().map(|status| status.message.clone()).unwrap_or_default();
        let tasks = self.engine.list_tasks(&service.id).await.unwrap_or_default();
        match Progress::of(&tasks, version).stopped {
            Some(task) => format!("{message}: {}", self.why_stopped(task).await),
            None => message,
        }
    }

    /// Why a task stopped: Swarm's error (`task: non-zero exit (137): dockerexec: unhealthy
    /// container`), else its container's failed health check when the container is on this
    /// engine (a task that exits 0 when Swarm stops it for being unhealthy has no error), else
    /// its state.
    async fn why_stopped(&self, task: &docker::TaskSummary) -> String {
        if let Some(error) = &task.error {
            return error.clone();
        }
        if let Some(container) = &task.container_id
            && let Ok(state) = self.engine.container_state(container).await
            && state.health.as_deref() == Some("unhealthy")
        {
            return "its health check failed".to_owned();
        }
        format!("it ended ({})", task.state.as_str())
    }

    /// Until Swarm has gone back to the previous version, within the time a rollout may take.
    async fn wait_rollback(&self, app: &App, service: &str) -> Result<(), TargetError> {
        let deadline = Instant::now() + health_limit(app) * app.replicas.max(1) + app.update.monitor + SWARM_SLACK;
        loop {
            let details = self.engine.inspect_service(service).await?;
            match details.update_status.map(|status| status.state) {
                Some(docker::UpdateState::RollbackCompleted | docker::UpdateState::RollbackPaused) => return Ok(()),
                _ if Instant::now() > deadline => {
                    tracing::warn!(%service, "Swarm did not finish going back to the previous version in time");
                    return Ok(());
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Until no task of the removed service (by id) is left: Swarm forgets them once they
    /// have stopped.
    async fn wait_tasks_gone(&self, service: &str) -> Result<(), TargetError> {
        let deadline = Instant::now() + REMOVAL_LIMIT;
        loop {
            if self.engine.list_tasks(service).await?.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                tracing::warn!(%service, "the removed service's tasks are still there");
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The environment's overlay network `name`, created (labelled) when missing.
    async fn ensure_network(&self, environment: &str, name: &str) -> Result<(), TargetError> {
        let full = network_name(environment, name);
        crate::target::ensure_network(&self.engine, environment, name, &full, crate::target::NetworkKind::Overlay).await
    }

    /// Removes the environment's networks no service or container uses any more.
    pub async fn prune_networks(&self, environment: &str) -> Result<(), TargetError> {
        crate::target::prune_networks(&self.engine, environment).await
    }

    /// The application's config files as Swarm configs, each made when missing.
    async fn ensure_configs(&self, deployment: &Deployment<'_>) -> Result<Vec<docker::FileReference>, TargetError> {
        let app = deployment.app;
        let object_labels = BTreeMap::from([
            (labels::ENVIRONMENT.to_owned(), deployment.environment.to_owned()),
            (labels::APP.to_owned(), app.name.clone()),
        ]);
        let mut references = Vec::new();
        for config in &app.configs {
            let content = deployment.config_files.get(&config.file).ok_or_else(|| TargetError::Config {
                app: app.name.clone(),
                file: config.file.clone(),
                reason: "not in the repository".into(),
            })?;
            let name = config_name(deployment.environment, &app.name, &config.file, content);
            let id = match self.engine.inspect_config(&name).await {
                Ok(existing) => existing.id,
                Err(error) if error.is_not_found() => match self.engine.create_config(&name, content, &object_labels).await {
                    Ok(id) => id,
                    // Made meanwhile: the same name is the same content.
                    Err(error) if error.status() == Some(409) => self.engine.inspect_config(&name).await?.id,
                    Err(error) => return Err(error.into()),
                },
                Err(error) => return Err(error.into()),
            };
            references.push(docker::FileReference { name, id, target: config.target.clone(), mode: CONFIG_MODE });
        }
        Ok(references)
    }

    /// The application's secrets as Swarm secrets, each version made when missing.
    async fn ensure_secrets(&self, deployment: &Deployment<'_>) -> Result<Vec<docker::FileReference>, TargetError> {
        let app = deployment.app;
        let object_labels = BTreeMap::from([(labels::ENVIRONMENT.to_owned(), deployment.environment.to_owned())]);
        let mut references = Vec::new();
        for secret in &app.secrets {
            let material = deployment
                .secrets
                .get(&secret.name)
                .ok_or_else(|| TargetError::MissingSecret { app: app.name.clone(), secret: secret.name.clone() })?;
            let name = secret_name(deployment.environment, &secret.name, &material.version);
            let id = match self.engine.inspect_secret(&name).await {
                Ok(existing) => existing.id,
                Err(error) if error.is_not_found() => match self.engine.create_secret(&name, &material.value, &object_labels).await {
                    Ok(id) => id,
                    Err(error) if error.status() == Some(409) => self.engine.inspect_secret(&name).await?.id,
                    Err(error) => return Err(error.into()),
                },
                Err(error) => return Err(error.into()),
            };
            references.push(docker::FileReference { name, id, target: secret.target.clone(), mode: SECRET_MODE });
        }
        Ok(references)
    }

    /// Removes the application's configs and the environment's secrets that no service of the
    /// environment mounts. Best effort: what cannot go now goes after a later rollout.
    async fn prune_objects(&self, environment: &str, app: &str) {
        let environment_label = vec![format!("{}={environment}", labels::ENVIRONMENT)];
        let services = match self.engine.list_services(&environment_label).await {
            Ok(services) => services,
            Err(error) => {
                tracing::warn!(%error, "cannot list services to remove unused configs and secrets");
                return;
            }
        };
        let used_configs: BTreeSet<&str> = services.iter().flat_map(|service| service.configs.iter().map(String::as_str)).collect();
        let used_secrets: BTreeSet<&str> = services.iter().flat_map(|service| service.secrets.iter().map(String::as_str)).collect();
        let unused = |objects: Vec<docker::SwarmObject>, used: &BTreeSet<&str>| -> Vec<docker::SwarmObject> {
            objects.into_iter().filter(|object| !used.contains(object.name.as_str())).collect()
        };
        match self.engine.list_configs(&app_labels(environment, app)).await {
            Ok(configs) => {
                for config in unused(configs, &used_configs) {
                    forget(self.engine.remove_config(&config.id).await, &config.name);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list configs to remove unused ones"),
        }
        match self.engine.list_secrets(&environment_label).await {
            Ok(secrets) => {
                for secret in unused(secrets, &used_secrets) {
                    forget(self.engine.remove_secret(&secret.id).await, &secret.name);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list secrets to remove unused ones"),
        }
    }

    async fn observe_services(&self, environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
        let environment_label = vec![format!("{}={environment}", labels::ENVIRONMENT)];
        let services = self.engine.list_services(&environment_label).await?;
        // The health of the tasks whose containers run on this engine; Swarm's tasks do not
        // carry it, and other nodes' containers are out of reach.
        let health: HashMap<String, String> = match self.engine.list_containers(&environment_label).await {
            Ok(containers) => {
                containers.into_iter().filter_map(|container| container.health.map(|health| (container.id, health))).collect()
            }
            Err(_) => HashMap::new(),
        };
        let mut observed = Vec::new();
        for service in services {
            let Some(app) = service.labels.get(labels::APP).cloned() else { continue };
            let tasks = self.engine.list_tasks(&service.id).await?;
            observed.push(observed_app(app, &service, &tasks, &health));
        }
        observed.sort_by(|left, right| left.name.cmp(&right.name));
        Ok(observed)
    }
}

/// Logs why an unused config or secret stayed.
fn forget(result: Result<(), docker::DockerError>, name: &str) {
    match result {
        Ok(()) => tracing::debug!(object = %name, "removed, no service mounts it any more"),
        // Swarm refuses while a service mounts it: in use after all.
        Err(error) if error.status() == Some(400) => tracing::debug!(object = %name, %error, "still in use"),
        Err(error) => tracing::warn!(object = %name, %error, "cannot remove an unused config or secret"),
    }
}

/// What tells the tasks of the version being deployed: its spec digest (their containers'
/// label) and its image (a task started with another image by hand has the same labels).
struct Version {
    spec_digest: String,
    image: String,
}

impl Version {
    fn of(deployment: &Deployment<'_>) -> Version {
        Version { spec_digest: deployment.spec_digest.to_owned(), image: deployment.app.image.pull_reference() }
    }

    fn runs_in(&self, task: &docker::TaskSummary) -> bool {
        task.image == self.image && task.container_labels.get(labels::SPEC) == Some(&self.spec_digest)
    }
}

/// The tasks of one version of a service, by what they are doing.
struct Progress<'a> {
    /// Running tasks of the version (healthy, when it has a health check: Swarm counts a
    /// task as running only then).
    ready: usize,
    /// Tasks of another version Swarm still wants running.
    stale: usize,
    /// A task of the version that ended: it failed, was refused, or exited (a service's task
    /// is meant to run until it is replaced).
    stopped: Option<&'a docker::TaskSummary>,
}

impl<'a> Progress<'a> {
    fn of(tasks: &'a [docker::TaskSummary], version: &Version) -> Progress<'a> {
        let of_version = |task: &docker::TaskSummary| version.runs_in(task);
        let wanted = |task: &&docker::TaskSummary| task.desired_state == docker::TaskState::Running;
        Progress {
            ready: tasks.iter().filter(wanted).filter(|task| of_version(task) && task.state == docker::TaskState::Running).count(),
            stale: tasks.iter().filter(wanted).filter(|task| !of_version(task)).count(),
            // The most telling one: with Swarm's error, then one that ended by itself, then
            // one Swarm shut down (going back, after another failed).
            stopped: tasks
                .iter()
                .filter(|task| of_version(task))
                .filter_map(|task| {
                    let rank = match task.state {
                        _ if task.error.is_some() => 0,
                        docker::TaskState::Failed | docker::TaskState::Rejected => 1,
                        docker::TaskState::Complete | docker::TaskState::Orphaned => 2,
                        docker::TaskState::Shutdown => 3,
                        _ => return None,
                    };
                    Some((rank, task))
                })
                .min_by_key(|(rank, _)| *rank)
                .map(|(_, task)| task),
        }
    }
}

/// One service as the plan sees it: what its labels say was deployed, the replicas asked of
/// it now (a `docker service scale` by hand shows), and the tasks Swarm wants running.
fn observed_app(
    name: String,
    service: &docker::ServiceDetails,
    tasks: &[docker::TaskSummary],
    health: &HashMap<String, String>,
) -> ObservedApp {
    let label = |key: &str| service.labels.get(key).cloned().unwrap_or_default();
    let spec = service.labels.get(labels::SPEC).cloned();
    let image = label(labels::IMAGE);
    let deployed_reference = crate::read::parse_image(&image).map_or_else(|_| image.clone(), |image| image.pull_reference());
    let wanted: Vec<&docker::TaskSummary> = tasks.iter().filter(|task| task.desired_state == docker::TaskState::Running).collect();
    // Tasks of two versions: a rollout that has not finished, which is a change to finish.
    let agreed = wanted.iter().all(|task| task.container_labels.get(labels::SPEC) == spec.as_ref());
    // `docker service update --image` by hand changes the spec's image; its tasks follow.
    let service_foreign = !same_image(&deployed_reference, &service.image);
    ObservedApp {
        name,
        spec_digest: spec.filter(|_| agreed),
        image,
        desired_replicas: service.replicas.unwrap_or_default(),
        revision: label(labels::REVISION),
        since: if service.updated_at > 0 { service.updated_at } else { service.created_at },
        instances: wanted
            .iter()
            .map(|task| ObservedInstance {
                id: task.id.clone(),
                running: task.state == docker::TaskState::Running,
                health: task.container_id.as_ref().and_then(|id| health.get(id).cloned()),
                foreign_image: if !same_image(&deployed_reference, &task.image) {
                    Some(task.image.clone())
                } else {
                    service_foreign.then(|| service.image.clone())
                },
                // Tasks are the deployer's service's own.
                managed: true,
            })
            .collect(),
    }
}

/// Whether a service runs the image it was deployed with: the same reference, or that
/// reference pinned by the digest a client resolved for it (`repository:tag@sha256:…`).
fn same_image(deployed: &str, actual: &str) -> bool {
    actual == deployed || (!deployed.contains('@') && actual.split_once('@').is_some_and(|(reference, _)| reference == deployed))
}

/// The service the deployment describes. Its labels and its containers' labels are the ones
/// `DockerTarget` gives containers, the application's own labels among them (the deployer's
/// win a clash).
fn service_spec(
    deployment: &Deployment<'_>,
    configs: Vec<docker::FileReference>,
    secrets: Vec<docker::FileReference>,
) -> docker::ServiceSpec {
    let app = deployment.app;
    let environment = deployment.environment;
    let mut all_labels = app.labels.clone();
    all_labels.extend([
        (labels::ENVIRONMENT.to_owned(), environment.to_owned()),
        (labels::APP.to_owned(), app.name.clone()),
        (labels::SPEC.to_owned(), deployment.spec_digest.to_owned()),
        (labels::IMAGE.to_owned(), app.image.to_string()),
        (labels::REPLICAS.to_owned(), app.replicas.to_string()),
        (labels::REVISION.to_owned(), deployment.revision.to_owned()),
    ]);
    let order = match deployment.order {
        UpdateOrder::StartFirst => docker::RolloutOrder::StartFirst,
        UpdateOrder::StopFirst => docker::RolloutOrder::StopFirst,
    };
    let update = docker::RolloutConfig {
        parallelism: app.update.parallelism,
        order,
        monitor: app.update.monitor,
        failure_action: match app.update.failure_action {
            FailureAction::Rollback => docker::FailureAction::Rollback,
            FailureAction::Pause => docker::FailureAction::Pause,
        },
    };
    // Going back the way it came; should that fail too, Swarm stops and a person decides.
    let rollback = docker::RolloutConfig { failure_action: docker::FailureAction::Pause, ..update.clone() };
    docker::ServiceSpec {
        name: service_name(environment, &app.name),
        image: app.image.pull_reference(),
        command: (!app.command.is_empty()).then(|| app.command.clone()),
        environment: app.environment.clone(),
        labels: all_labels.clone(),
        container_labels: all_labels,
        replicas: app.replicas,
        published_ports: app
            .ports
            .iter()
            .map(|port| docker::PublishedPort {
                host_port: port.published,
                container_port: port.target,
                protocol: match port.protocol {
                    Protocol::Tcp => "tcp".into(),
                    Protocol::Udp => "udp".into(),
                },
            })
            .collect(),
        configs,
        secrets,
        volume_mounts: app
            .volumes
            .iter()
            .map(|volume| docker::VolumeMount {
                volume: format!("{environment}-{}-{}", app.name, volume.volume),
                target: volume.target.clone(),
                read_only: volume.read_only,
                no_copy: false,
                labels: BTreeMap::from([
                    (labels::ENVIRONMENT.to_owned(), environment.to_owned()),
                    (labels::APP.to_owned(), app.name.clone()),
                ]),
            })
            .collect(),
        // Applications on one network reach each other by application name.
        networks: app
            .networks
            .iter()
            .map(|network| docker::NetworkAttachment { network: network_name(environment, network), aliases: vec![app.name.clone()] })
            .collect(),
        healthcheck: app.healthcheck.as_ref().and_then(|check| match &check.probe {
            Probe::Command(command) => Some(docker::HealthcheckSpec {
                command: command.clone(),
                interval: check.interval,
                timeout: check.timeout,
                retries: check.retries,
                start_period: check.start_period,
            }),
            Probe::Http { .. } => None,
        }),
        nano_cpus: app.resources.cpus.map(|cpus| (cpus * 1e9) as i64),
        memory_bytes: app.resources.memory.and_then(|bytes| i64::try_from(bytes).ok()),
        update,
        rollback,
        restart: docker::RestartPolicy::default(),
    }
}

/// `<environment>-<app>`, as Swarm takes it.
pub fn service_name(environment: &str, app: &str) -> String {
    swarm_name(&format!("{environment}-{app}"), SERVICE_NAME_LIMIT, false)
}

fn network_name(environment: &str, network: &str) -> String {
    swarm_name(&format!("{environment}-{network}"), SERVICE_NAME_LIMIT, false)
}

/// `<environment>-<app>-<12 hex of the content's sha256>-<file name>`: another content is
/// another name.
pub fn config_name(environment: &str, app: &str, file: &str, content: &[u8]) -> String {
    let digest = content_digest(content);
    let short = digest.trim_start_matches("sha256:").get(..12).unwrap_or_default();
    let file_name = file.rsplit('/').next().unwrap_or(file);
    swarm_name(&format!("{environment}-{app}-{short}-{file_name}"), OBJECT_NAME_LIMIT, true)
}

/// `<environment>-<secret>-<version>`: a new value is a new version, so a new name.
pub fn secret_name(environment: &str, secret: &str, version: &str) -> String {
    swarm_name(&format!("{environment}-{secret}-{version}"), OBJECT_NAME_LIMIT, true)
}

/// `name` as Swarm accepts it: letters, digits, `-`, `_` (and `.` where `dots`), starting and
/// ending with a letter or digit, at most `limit` long. A name that must change is cut and
/// ends in 12 hex digits of the whole name's sha256, so two names never become one and the
/// content digest in a config's name still counts.
fn swarm_name(name: &str, limit: usize, dots: bool) -> String {
    let allowed = |character: char| character.is_ascii_alphanumeric() || matches!(character, '-' | '_') || (dots && character == '.');
    let valid = name.len() <= limit
        && name.chars().all(allowed)
        && name.starts_with(|character: char| character.is_ascii_alphanumeric())
        && name.ends_with(|character: char| character.is_ascii_alphanumeric());
    if valid {
        return name.to_owned();
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let digest = &digest[..12];
    let cleaned: String = name.chars().map(|character| if allowed(character) { character } else { '-' }).collect();
    let kept: String = cleaned.chars().take(limit - digest.len() - 1).collect();
    let kept = kept.trim_end_matches(|character: char| !character.is_ascii_alphanumeric());
    if kept.is_empty() || !kept.starts_with(|character: char| character.is_ascii_alphanumeric()) {
        return digest.to_owned();
    }
    format!("{kept}-{digest}")
}

#[cfg(test)]
mod tests {
    use super::{config_name, same_image, secret_name, service_name};

    #[test]
    fn names_fit_swarm_and_keep_the_content_digest() {
        assert_eq!(service_name("prod", "web"), "prod-web");
        assert_eq!(service_name("prod", "web.v2"), format!("prod-web-v2-{}", &hex_of("prod-web.v2")[..12]));
        let config = config_name("prod", "web", "apps/web/nginx.conf", b"server {}");
        assert_eq!(config, format!("prod-web-{}-nginx.conf", &hex_of_bytes(b"server {}")[..12]));
        let long = config_name(&"e".repeat(40), &"a".repeat(40), "apps/x/settings.yml", b"one");
        assert_eq!(long.len(), 64, "{long}");
        assert_ne!(long, config_name(&"e".repeat(40), &"a".repeat(40), "apps/x/settings.yml", b"two"), "the content still counts");
        assert_eq!(secret_name("prod", "session_key", "0123456789abcdef"), "prod-session_key-0123456789abcdef");
        assert!(secret_name(&"e".repeat(63), "token", "0123456789abcdef").len() <= 64);
    }

    #[test]
    fn an_image_pinned_by_a_client_is_the_same_image() {
        assert!(same_image("registry.example.com/web:1.0", "registry.example.com/web:1.0"));
        assert!(same_image("registry.example.com/web:1.0", "registry.example.com/web:1.0@sha256:0123"));
        assert!(!same_image("registry.example.com/web:1.0", "registry.example.com/web:1.1"));
        assert!(!same_image("registry.example.com/web@sha256:0123", "registry.example.com/web@sha256:4567"));
    }

    fn hex_of(text: &str) -> String {
        hex_of_bytes(text.as_bytes())
    }

    fn hex_of_bytes(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(bytes))
    }
}
