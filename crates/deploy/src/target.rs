//! Targets: where applications run, seen through the labels the deployer puts on what it
//! starts. A target observes what runs (grouped by application, in `ObservedApp` terms), runs
//! one application as a `Deployment` says (waiting until it is healthy), and removes one. The
//! Docker engine is here, Swarm in `swarm`; a Kubernetes target would implement the same three
//! calls (a Deployment object per application, labelled alike; observe by label selector).

use std::collections::BTreeMap;
use std::future::Future;

use std::time::{Duration, Instant};

use crate::model::{App, Probe, UpdateOrder};
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
    /// On a network the deployer created: its name in the repository.
    pub const NETWORK: &str = "io.gantry.deploy.network";
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Engine(#[from] docker::DockerError),
    /// The new version did not become healthy; what ran before still runs when the update was
    /// start-first.
    #[error("{app}: the new version did not become healthy: {why}")]
    Unhealthy { app: String, why: String },
    #[error("{app}: {what} is not supported by this deployer yet")]
    Unsupported { app: String, what: String },
    #[error("{app}: the secret `{secret}` is not in the deployer's store (gantry deployer secret add {secret})")]
    MissingSecret { app: String, secret: String },
    #[error("{app}: cannot pack config file {file}: {reason}")]
    Config { app: String, file: String, reason: String },
    #[error(
        "the engine at {host} is not a Swarm manager ({state}); run `docker swarm init` there, or give the target a manager's `docker_host`"
    )]
    NotSwarmManager { host: String, state: String },
}

/// A secret's value from the deployer's store, with the version that names it (a new value is
/// a new version, so the applications that use it roll).
#[derive(Clone)]
pub struct SecretMaterial {
    pub version: String,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for SecretMaterial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SecretMaterial({})", self.version)
    }
}

/// One application to run as the repository says, with what the target needs to label it.
pub struct Deployment<'a> {
    pub environment: &'a str,
    /// The environment repository's commit.
    pub revision: &'a str,
    pub app: &'a App,
    pub spec_digest: &'a str,
    /// The content of the repository's files the application mounts, by path.
    pub config_files: &'a BTreeMap<String, Vec<u8>>,
    /// The values of the secrets it names, by name (every one it names is here).
    pub secrets: &'a BTreeMap<String, SecretMaterial>,
    pub order: UpdateOrder,
    /// The login for the image's registry, when the deployer has one.
    pub pull_credentials: Option<&'a docker::RegistryCredentials>,
    /// How long the new version must stay healthy before the old one is gone for good (zero:
    /// healthy once is enough).
    pub monitor: Duration,
}

/// A place applications run.
pub trait Target {
    /// What runs there of `environment`, by application.
    fn observe(&self, environment: &str) -> impl Future<Output = Result<Vec<ObservedApp>, TargetError>> + Send;
    /// Runs the application as `deployment` says and returns once it is healthy; when it does
    /// not become healthy, what ran before runs again (or still) and the error says why.
    fn deploy(&self, deployment: &Deployment<'_>) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Stops and removes everything of one application.
    fn remove(&self, environment: &str, app: &str) -> impl Future<Output = Result<(), TargetError>> + Send;
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
        self.observe_containers(environment).await
    }

    async fn deploy(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        self.deploy_containers(deployment).await
    }

    /// The application's named volumes stay: they hold data, and a file removed by mistake
    /// must not take it along. Networks no container uses any more go.
    async fn remove(&self, environment: &str, app: &str) -> Result<(), TargetError> {
        let containers = self.engine.list_containers(&app_labels(environment, app)).await?;
        self.remove_containers(&containers).await?;
        self.prune_networks(environment).await
    }
}

impl DockerTarget {
    /// Runs `deployment`: new containers started and waited for until healthy, then the old
    /// ones removed (start-first), or the old ones removed first (stop-first). New containers
    /// that do not become healthy are removed again; with start-first, what ran keeps running.
    async fn deploy_containers(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        let app = deployment.app;
        for network in &app.networks {
            self.ensure_network(deployment.environment, network).await?;
        }
        let image = app.image.pull_reference();
        if !self.engine.image_exists(&image).await? {
            self.engine.pull_image_with_credentials(&image, deployment.pull_credentials).await?;
        }
        let image_id = self.engine.inspect_image(&image).await?.id;
        let old = self.engine.list_containers(&app_labels(deployment.environment, &app.name)).await?;
        if deployment.order == UpdateOrder::StopFirst {
            self.remove_containers(&old).await?;
        }
        let mut started = Vec::new();
        let result = self.start_instances(deployment, &image, &image_id, &mut started).await;
        let result = match result {
            Ok(()) => self.wait_healthy(app, &started).await,
            Err(error) => Err(error),
        };
        let result = match result {
            Ok(()) => self.monitor(app, &started, deployment.monitor).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            for id in &started {
                let _ = self.engine.remove_container(id).await;
            }
            return Err(error);
        }
        if deployment.order == UpdateOrder::StartFirst {
            self.remove_containers(&old).await?;
        }
        Ok(())
    }

    /// The environment's network `name`, created (labelled) when missing.
    async fn ensure_network(&self, environment: &str, name: &str) -> Result<(), TargetError> {
        ensure_network(&self.engine, environment, name, &network_name(environment, name), NetworkKind::Bridge).await
    }

    /// Removes the environment's networks no container uses any more.
    pub async fn prune_networks(&self, environment: &str) -> Result<(), TargetError> {
        prune_networks(&self.engine, environment).await
    }

    async fn remove_containers(&self, containers: &[docker::ContainerSummary]) -> Result<(), TargetError> {
        for container in containers {
            self.engine.remove_container(&container.id).await?;
        }
        Ok(())
    }

    async fn start_instances(
        &self,
        deployment: &Deployment<'_>,
        image: &str,
        image_id: &str,
        started: &mut Vec<String>,
    ) -> Result<(), TargetError> {
        let app = deployment.app;
        let short_spec: String = deployment.spec_digest.trim_start_matches("sha256:").chars().take(12).collect();
        let labels = BTreeMap::from([
            (labels::ENVIRONMENT.to_owned(), deployment.environment.to_owned()),
            (labels::APP.to_owned(), app.name.clone()),
            (labels::SPEC.to_owned(), deployment.spec_digest.to_owned()),
            (labels::IMAGE.to_owned(), app.image.to_string()),
            (labels::IMAGE_ID.to_owned(), image_id.to_owned()),
            (labels::REPLICAS.to_owned(), app.replicas.to_string()),
            (labels::REVISION.to_owned(), deployment.revision.to_owned()),
        ]);
        let archive = files_archive(app, deployment.config_files, deployment.secrets)?;
        let networks: Vec<String> = app.networks.iter().map(|network| network_name(deployment.environment, network)).collect();
        for index in 0..app.replicas {
            let name = format!("{}-{}-{short_spec}-{index}", deployment.environment, app.name);
            // A container of that name is left from an attempt that stopped midway.
            let _ = self.engine.remove_container(&name).await;
            let mut all_labels = labels.clone();
            all_labels.extend(app.labels.clone());
            let spec = docker::ContainerSpec {
                name: Some(name),
                image: image.to_owned(),
                command: (!app.command.is_empty()).then(|| app.command.clone()),
                environment: app.environment.clone(),
                labels: all_labels,
                volume_mounts: app
                    .volumes
                    .iter()
                    .map(|volume| docker::VolumeMount {
                        volume: format!("{}-{}-{}", deployment.environment, app.name, volume.volume),
                        target: volume.target.clone(),
                        read_only: volume.read_only,
                        no_copy: false,
                        labels: BTreeMap::from([
                            (labels::ENVIRONMENT.to_owned(), deployment.environment.to_owned()),
                            (labels::APP.to_owned(), app.name.clone()),
                        ]),
                    })
                    .collect(),
                published_ports: app
                    .ports
                    .iter()
                    .map(|port| docker::PublishedPort {
                        host_port: port.published,
                        container_port: port.target,
                        protocol: match port.protocol {
                            crate::model::Protocol::Tcp => "tcp".into(),
                            crate::model::Protocol::Udp => "udp".into(),
                        },
                    })
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
                memory_bytes: app.resources.memory.and_then(|bytes| i64::try_from(bytes).ok()),
                nano_cpus: app.resources.cpus.map(|cpus| (cpus * 1e9) as i64),
                restart_unless_stopped: true,
                keep_engine_log: true,
                // Applications on one network reach each other by application name.
                network: networks
                    .first()
                    .map(|network| docker::NetworkAttachment { network: network.clone(), aliases: vec![app.name.clone()] }),
                ..docker::ContainerSpec::default()
            };
            let id = self.engine.create_container(spec).await?;
            started.push(id.clone());
            for network in networks.iter().skip(1) {
                self.engine.connect_network(network, &id, std::slice::from_ref(&app.name)).await?;
            }
            if let Some(archive) = &archive {
                let bytes = bytes::Bytes::from(archive.clone());
                self.engine.upload_archive(&id, "/", futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) })).await?;
            }
            self.engine.start_container(&id).await?;
        }
        Ok(())
    }

    /// Watches healthy containers for `window`: one that exits or turns unhealthy fails the
    /// rollout.
    async fn monitor(&self, app: &App, containers: &[String], window: Duration) -> Result<(), TargetError> {
        let until = Instant::now() + window;
        while Instant::now() < until {
            for id in containers {
                let state = self.engine.container_state(id).await?;
                let why = if !state.running {
                    format!("a container exited with code {} within the monitor window", state.exit_code.unwrap_or(-1))
                } else if state.health.as_deref() == Some("unhealthy") {
                    "its health check failed within the monitor window".to_owned()
                } else {
                    continue;
                };
                return Err(TargetError::Unhealthy { app: app.name.clone(), why });
            }
            tokio::time::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now()))).await;
        }
        Ok(())
    }

    /// Until every new container is healthy: its engine health check passes, or the
    /// deployer's own HTTP probe answers 2xx or 3xx, or (no check) it runs. An exit, an
    /// `unhealthy` verdict or the time the check may take is a failure.
    async fn wait_healthy(&self, app: &App, containers: &[String]) -> Result<(), TargetError> {
        let limit = health_limit(app);
        let probe = app.healthcheck.as_ref().map(|check| (&check.probe, check.timeout));
        let deadline = Instant::now() + limit;
        let unhealthy = |why: String| TargetError::Unhealthy { app: app.name.clone(), why };
        let mut last_probe = String::new();
        loop {
            let mut ready = 0;
            for id in containers {
                let state = self.engine.container_state(id).await?;
                if !state.running {
                    return Err(unhealthy(format!("a container exited with code {}", state.exit_code.unwrap_or(-1))));
                }
                match (probe, state.health.as_deref()) {
                    (_, Some("unhealthy")) => return Err(unhealthy("its health check failed".into())),
                    (_, Some("healthy")) | (None, _) => ready += 1,
                    (Some((Probe::Http { path, port }, timeout)), _) => match http_probe(&state.ip_addresses, *port, path, timeout).await {
                        Ok(()) => ready += 1,
                        Err(why) => last_probe = why,
                    },
                    _ => {}
                }
            }
            if ready == containers.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let detail = if last_probe.is_empty() { String::new() } else { format!(" (last probe: {last_probe})") };
                return Err(unhealthy(format!("not healthy within {}s{detail}", limit.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `GET path` on the container's first address: 2xx or 3xx is healthy. The deployer runs it
/// itself, so the image needs no HTTP client.
async fn http_probe(addresses: &[String], port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let address = addresses.first().ok_or_else(|| "the container has no address".to_owned())?;
    let url = format!("http://{address}:{port}{path}");
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| error.to_string())?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() || response.status().is_redirection() => Ok(()),
        Ok(response) => Err(format!("GET {path} answered {}", response.status())),
        Err(error) => Err(format!("GET {path}: {}", error.without_url())),
    }
}

/// How long a new instance may take to run and pass its health check: its start period and
/// every try the check has, with some slack; 30 s without a check.
pub(crate) fn health_limit(app: &App) -> Duration {
    app.healthcheck.as_ref().map_or(Duration::from_secs(30), |check| {
        check.start_period + (check.interval + check.timeout) * (check.retries + 1) + Duration::from_secs(5)
    })
}

pub(crate) fn app_labels(environment: &str, app: &str) -> Vec<String> {
    vec![format!("{}={environment}", labels::ENVIRONMENT), format!("{}={app}", labels::APP)]
}

/// What a network the deployer makes is: a bridge on one engine, an overlay on a Swarm.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkKind {
    Bridge,
    Overlay,
}

/// The environment's network `name` on `engine`, called `full` there, created (labelled) when
/// missing.
pub(crate) async fn ensure_network(
    engine: &docker::Engine,
    environment: &str,
    name: &str,
    full: &str,
    kind: NetworkKind,
) -> Result<(), TargetError> {
    let existing = engine.list_networks(&[format!("{}={environment}", labels::ENVIRONMENT)]).await?;
    if existing.iter().any(|network| network.name == full) {
        return Ok(());
    }
    let labels = BTreeMap::from([(labels::ENVIRONMENT.to_owned(), environment.to_owned()), (labels::NETWORK.to_owned(), name.to_owned())]);
    let created = match kind {
        NetworkKind::Bridge => engine.create_network(full, &labels).await,
        NetworkKind::Overlay => engine.create_overlay_network(full, &labels).await,
    };
    match created {
        Ok(_) => Ok(()),
        // Created meanwhile by another rollout.
        Err(error) if error.status() == Some(409) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Removes the environment's networks on `engine` that nothing uses any more.
pub(crate) async fn prune_networks(engine: &docker::Engine, environment: &str) -> Result<(), TargetError> {
    for network in engine.list_networks(&[format!("{}={environment}", labels::ENVIRONMENT)]).await? {
        // Refused while a container or service is attached: then it is still in use.
        let _ = engine.remove_network(&network.name).await;
    }
    Ok(())
}

fn network_name(environment: &str, network: &str) -> String {
    format!("{environment}-{network}")
}

/// A tar of the application's config files at their targets, read-only for everyone, and of
/// its secrets, readable by root only; `None` when it has neither. On an engine they live in
/// the container's own layer (never an image's); Swarm keeps secrets in memory instead.
fn files_archive(
    app: &App,
    files: &BTreeMap<String, Vec<u8>>,
    secrets: &BTreeMap<String, SecretMaterial>,
) -> Result<Option<Vec<u8>>, TargetError> {
    if app.configs.is_empty() && app.secrets.is_empty() {
        return Ok(None);
    }
    let fail = |file: &str, reason: String| TargetError::Config { app: app.name.clone(), file: file.to_owned(), reason };
    let mut archive = tar::Builder::new(Vec::new());
    for config in &app.configs {
        let content = files.get(&config.file).ok_or_else(|| fail(&config.file, "not in the repository".into()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o444);
        header.set_cksum();
        archive
            .append_data(&mut header, config.target.trim_start_matches('/'), content.as_slice())
            .map_err(|error| fail(&config.file, error.to_string()))?;
    }
    for secret in &app.secrets {
        let material =
            secrets.get(&secret.name).ok_or_else(|| TargetError::MissingSecret { app: app.name.clone(), secret: secret.name.clone() })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(material.value.len() as u64);
        header.set_mode(0o400);
        header.set_cksum();
        archive
            .append_data(&mut header, secret.target.trim_start_matches('/'), material.value.as_slice())
            .map_err(|error| fail(&secret.name, error.to_string()))?;
    }
    archive.into_inner().map(Some).map_err(|error| fail("the archive", error.to_string()))
}

impl DockerTarget {
    async fn observe_containers(&self, environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
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
    // A container started by hand with the application's labels (no revision the deployer
    // deployed) is drift; the version is what the deployer's own containers say.
    let managed = |container: &docker::ContainerSummary| !label(container, labels::REVISION).is_empty();
    let first = containers.iter().find(|container| managed(container)).unwrap_or(&containers[0]);
    let spec = label(first, labels::SPEC);
    let agreed = containers.iter().filter(|container| managed(container)).all(|container| label(container, labels::SPEC) == spec);
    ObservedApp {
        name,
        spec_digest: agreed.then_some(spec),
        image: label(first, labels::IMAGE),
        desired_replicas: label(first, labels::REPLICAS).parse().unwrap_or(u32::try_from(containers.len()).unwrap_or(u32::MAX)),
        revision: label(first, labels::REVISION),
        since: containers.iter().map(|container| container.created).min().unwrap_or_default(),
        instances: containers
            .iter()
            .map(|container| {
                let deployed_with = label(container, labels::IMAGE_ID);
                ObservedInstance {
                    id: container.id.clone(),
                    running: container.state == "running",
                    health: container.health.clone(),
                    foreign_image: (!deployed_with.is_empty() && container.image_id != deployed_with).then(|| container.image_id.clone()),
                    managed: managed(container),
                }
            })
            .collect(),
    }
}

/// A target of either kind the environment file can name.
pub enum AnyTarget {
    Docker(DockerTarget),
    Swarm(crate::swarm::SwarmTarget),
}

impl AnyTarget {
    /// Connects to the engine at `host` (`None`: DOCKER_HOST or the local socket).
    pub async fn connect(kind: crate::model::TargetKind, host: Option<&str>) -> Result<AnyTarget, TargetError> {
        Ok(match kind {
            crate::model::TargetKind::Docker => AnyTarget::Docker(DockerTarget::connect(host).await?),
            crate::model::TargetKind::Swarm => AnyTarget::Swarm(crate::swarm::SwarmTarget::connect(host).await?),
        })
    }
}

impl Target for AnyTarget {
    async fn observe(&self, environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
        match self {
            AnyTarget::Docker(target) => target.observe(environment).await,
            AnyTarget::Swarm(target) => target.observe(environment).await,
        }
    }

    async fn deploy(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        match self {
            AnyTarget::Docker(target) => target.deploy(deployment).await,
            AnyTarget::Swarm(target) => target.deploy(deployment).await,
        }
    }

    async fn remove(&self, environment: &str, app: &str) -> Result<(), TargetError> {
        match self {
            AnyTarget::Docker(target) => target.remove(environment, app).await,
            AnyTarget::Swarm(target) => target.remove(environment, app).await,
        }
    }
}

/// What the deployer's labels say of one container it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployedContainer {
    pub id: String,
    pub name: String,
    /// `running`, `exited`, …
    pub state: String,
    pub environment: String,
    pub app: String,
    /// The image as the environment repository pins it (`repo:tag@sha256:…`).
    pub image: String,
    /// The environment repository's commit it was deployed from.
    pub revision: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

/// The container `id_or_name` (a full id, a prefix of at least 4 characters, or its name) on
/// the engine at `docker_host` (else the deployer's own), if the deployer started it; `None`
/// for any other container or none.
pub async fn find_deployed_container(docker_host: Option<&str>, id_or_name: &str) -> Result<Option<DeployedContainer>, TargetError> {
    let engine = match docker_host {
        Some(host) => docker::Engine::connect_to(host).await?,
        None => docker::Engine::connect().await?,
    };
    let wanted = id_or_name.trim().trim_start_matches('/');
    let containers = engine.list_containers(&[labels::APP.to_owned()]).await?;
    let found = containers
        .into_iter()
        .find(|container| container.name == wanted || container.id == wanted || (wanted.len() >= 4 && container.id.starts_with(wanted)));
    Ok(found.and_then(|container| {
        let label = |key: &str| container.labels.get(key).cloned();
        Some(DeployedContainer {
            environment: label(labels::ENVIRONMENT)?,
            app: label(labels::APP)?,
            image: label(labels::IMAGE)?,
            revision: label(labels::REVISION),
            id: container.id,
            name: container.name,
            state: container.state,
            created: container.created,
        })
    }))
}
