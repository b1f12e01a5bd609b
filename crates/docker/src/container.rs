//! Containers: create from a `ContainerSpec`, start, follow output, wait, signal, remove, exec,
//! and copy tar archives into and out of one.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountType,
    MountVolumeOptions, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::Engine;
use crate::error::{DockerError, Failure, container_error, error_chain, failure};

/// Everything a container is created with. Empty fields leave the engine's or image's default.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The container's name; the engine picks one when `None`.
    pub name: Option<String>,
    pub image: String,
    /// Replaces the image's entrypoint (and then its command too).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `source:target[:mode]`, where the source is a host path or a volume name.
    pub binds: Vec<String>,
    /// Named volumes, created with their labels when they do not exist (any more).
    pub volume_mounts: Vec<VolumeMount>,
    /// Paths that get an anonymous volume, removed with the container.
    pub anonymous_volumes: Vec<String>,
    /// Path to mount options (`size=64m`), or an empty string for none.
    pub tmpfs: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    /// The network to join with its aliases; ignored when `network_mode` is set.
    pub network: Option<NetworkAttachment>,
    /// `host`, `none`, `bridge`, `container:<id>` or a network name.
    pub network_mode: Option<String>,
    pub privileged: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    /// `name:address` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    pub memory_bytes: Option<i64>,
    pub shm_size_bytes: Option<i64>,
    /// Keep the engine's log of the container's output (`docker logs`, `follow_output`). Off by
    /// default: output is read from the attach stream, and the log costs throughput and disk.
    pub keep_engine_log: bool,
    /// Container ports published on every address of the host.
    pub published_ports: Vec<PublishedPort>,
    /// The engine's health check (`HEALTHCHECK CMD`), replacing the image's.
    pub healthcheck: Option<HealthcheckSpec>,
    /// CPUs, in billionths (`0.5` CPU is 500,000,000).
    pub nano_cpus: Option<i64>,
    /// Started again by the engine when it exits or the engine restarts, unless stopped.
    pub restart_unless_stopped: bool,
}

/// `host_port` on the host reaches `container_port` in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A command the engine runs in the container to tell whether it is healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthcheckSpec {
    /// Run directly (the engine's `CMD` form).
    pub command: Vec<String>,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub retries: u32,
    pub start_period: std::time::Duration,
}

/// What `Engine::container_state` tells of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    /// `starting`, `healthy` or `unhealthy` when it has a health check.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// The id of the image it runs.
    pub image_id: String,
    /// Its addresses on the networks it is attached to (empty when it does not run).
    pub ip_addresses: Vec<String>,
}

/// A host device made available in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    /// cgroup permissions such as `rwm`.
    pub permissions: String,
}

/// A named volume mounted into a container. Should the volume not exist when the container is
/// created (removed by someone meanwhile), the engine makes it with `labels`, so that cleanup
/// by label still finds it.
#[derive(Clone, Debug, Default)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
    /// Do not copy what the image has at `target` into a new, empty volume.
    pub no_copy: bool,
    pub labels: BTreeMap<String, String>,
}

/// A user-defined network a container joins, and the names it is reachable at there.
#[derive(Clone, Debug, Default)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

/// Which of a container's output streams some bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Stdout,
    Stderr,
}

/// Bytes a container wrote, in the order it wrote them.
#[derive(Clone, Debug)]
pub struct OutputFrame {
    pub kind: OutputKind,
    pub bytes: Bytes,
}

/// A container's output from its first byte until it stops.
pub type OutputFrames = Pin<Box<dyn Stream<Item = Result<OutputFrame, DockerError>> + Send>>;

/// A tar archive read out of a container, chunk by chunk.
pub type ArchiveStream = Pin<Box<dyn Stream<Item = Result<Bytes, DockerError>> + Send>>;

/// What a command run with `Engine::exec` did.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    pub exit_code: i64,
    pub stdout: Bytes,
    pub stderr: Bytes,
}

/// A container in `Engine::list_containers`.
#[derive(Clone, Debug)]
pub struct ContainerSummary {
    pub id: String,
    /// The name without the engine's leading `/`.
    pub name: String,
    /// `created`, `running`, `exited`, …
    pub state: String,
    pub labels: HashMap<String, String>,
    /// The id (`sha256:…` of its config) of the image the container was created from.
    pub image_id: String,
    /// When it was created, in Unix seconds.
    pub created: i64,
    /// `healthy`, `unhealthy` or `starting` when the container has a health check.
    pub health: Option<String>,
}

impl ContainerSpec {
    fn into_body(self) -> ContainerCreateBody {
        let non_empty = |values: Vec<String>| if values.is_empty() { None } else { Some(values) };
        let (network_mode, networking_config) = match (self.network_mode, self.network) {
            (Some(mode), _) => (Some(mode), None),
            (None, Some(attachment)) => {
                let endpoint = EndpointSettings { aliases: non_empty(attachment.aliases), ..Default::default() };
                let config = NetworkingConfig { endpoints_config: Some(HashMap::from([(attachment.network.clone(), endpoint)])) };
                (Some(attachment.network), Some(config))
            }
            (None, None) => (None, None),
        };
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
        let host_config = HostConfig {
            binds: non_empty(self.binds),
            mounts: if mounts.is_empty() { None } else { Some(mounts) },
            tmpfs: if self.tmpfs.is_empty() { None } else { Some(self.tmpfs.into_iter().collect()) },
            devices: if self.devices.is_empty() {
                None
            } else {
                Some(
                    self.devices
                        .into_iter()
                        .map(|device| DeviceMapping {
                            path_on_host: Some(device.host_path),
                            path_in_container: Some(device.container_path),
                            cgroup_permissions: Some(device.permissions),
                        })
                        .collect(),
                )
            },
            network_mode,
            privileged: Some(self.privileged),
            dns: non_empty(self.dns),
            dns_search: non_empty(self.dns_search),
            extra_hosts: non_empty(self.extra_hosts),
            memory: self.memory_bytes,
            shm_size: self.shm_size_bytes,
            nano_cpus: self.nano_cpus,
            port_bindings: if self.published_ports.is_empty() {
                None
            } else {
                Some(
                    self.published_ports
                        .iter()
                        .map(|port| {
                            let binding = PortBinding { host_ip: None, host_port: Some(port.host_port.to_string()) };
                            (format!("{}/{}", port.container_port, port.protocol), Some(vec![binding]))
                        })
                        .collect(),
                )
            },
            restart_policy: self
                .restart_unless_stopped
                .then_some(RestartPolicy { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None }),
            // Output is read through the attach stream. The engine's own log file is opt-in:
            // writing every byte to it as JSON made output three to four times slower (1 GiB: 42 s
            // with json-file, 12 s without, on this kind of machine) and fills the disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some(if self.keep_engine_log { "json-file" } else { "none" }.to_string()),
                config: None,
            }),
            ..Default::default()
        };
        let exposed_ports: Vec<String> =
            self.published_ports.iter().map(|port| format!("{}/{}", port.container_port, port.protocol)).collect();
        let nanoseconds = |duration: std::time::Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        let healthcheck = self.healthcheck.map(|check| HealthConfig {
            test: Some(std::iter::once("CMD".to_string()).chain(check.command).collect()),
            interval: Some(nanoseconds(check.interval)),
            timeout: Some(nanoseconds(check.timeout)),
            retries: Some(i64::from(check.retries)),
            start_period: Some(nanoseconds(check.start_period)),
            start_interval: None,
        });
        ContainerCreateBody {
            image: Some(self.image),
            exposed_ports: if exposed_ports.is_empty() { None } else { Some(exposed_ports) },
            healthcheck,
            entrypoint: self.entrypoint,
            cmd: self.command,
            env: non_empty(self.environment.into_iter().map(|(name, value)| format!("{name}={value}")).collect()),
            working_dir: self.working_dir.filter(|dir| !dir.is_empty()),
            user: self.user.filter(|user| !user.is_empty()),
            labels: Some(self.labels.into_iter().collect()),
            volumes: non_empty(self.anonymous_volumes),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            tty: Some(false),
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        }
    }
}

fn output_frame(
    frame: Result<bollard::container::LogOutput, bollard::errors::Error>,
    container: &str,
) -> Option<Result<OutputFrame, DockerError>> {
    match frame {
        Ok(bollard::container::LogOutput::StdOut { message }) => Some(Ok(OutputFrame { kind: OutputKind::Stdout, bytes: message })),
        Ok(bollard::container::LogOutput::StdErr { message }) => Some(Ok(OutputFrame { kind: OutputKind::Stderr, bytes: message })),
        // Only a container with a terminal writes unframed output; it has one stream, stdout.
        Ok(bollard::container::LogOutput::Console { message }) => Some(Ok(OutputFrame { kind: OutputKind::Stdout, bytes: message })),
        Ok(bollard::container::LogOutput::StdIn { .. }) => None,
        Err(error) => Some(Err(container_error("read output of", container, error))),
    }
}

impl Engine {
    /// Creates a container (not started) and returns its id. When the image is not on this
    /// machine the error is `DockerError::ImageNotFound`; nothing is pulled here.
    ///
    /// The engine makes a container's working folder at creation. When that folder lies in a
    /// volume another of the engine's requests is filling at the same moment (a workspace being
    /// unpacked while the steps' containers are created ahead), both make the same folders and
    /// the engine's `mkdir` can lose the race with "file exists": the folder is there then, so
    /// the creation is tried once more.
    pub async fn create_container(&self, spec: ContainerSpec) -> Result<String, DockerError> {
        match self.create_container_once(spec.clone()).await {
            Err(DockerError::Container { status: 500, message, .. })
                if message.contains("failed to mkdir") && message.contains("file exists") =>
            {
                tracing::debug!(%message, "the engine lost a race making a working folder; creating the container again");
                self.create_container_once(spec).await
            }
            result => result,
        }
    }

    async fn create_container_once(&self, spec: ContainerSpec) -> Result<String, DockerError> {
        let image = spec.image.clone();
        let target = spec.name.clone().unwrap_or_else(|| image.clone());
        let mut options = CreateContainerOptionsBuilder::default();
        if let Some(name) = &spec.name {
            options = options.name(name);
        }
        match self.client.create_container(Some(options.build()), spec.into_body()).await {
            Ok(created) => Ok(created.id),
            Err(error) => match failure(error) {
                // A 404 here is a missing image or a missing network: ask which, rather than
                // reading the engine's message.
                Failure::Engine { status: 404, message } => {
                    if self.image_exists(&image).await? {
                        Err(DockerError::Container { operation: "create", container: target, status: 404, message })
                    } else {
                        Err(DockerError::ImageNotFound { image })
                    }
                }
                Failure::Engine { status, message } => {
                    Err(DockerError::Container { operation: "create", container: target, status, message })
                }
                Failure::Transport { message } => Err(DockerError::Transport { operation: "create container", target, message }),
            },
        }
    }

    pub async fn start_container(&self, container: &str) -> Result<(), DockerError> {
        self.client.start_container(container, None).await.map_err(|error| container_error("start", container, error))
    }

    /// Attaches to the output of a container that is created and not yet started: once this
    /// returns, the engine has connected the container's stdout and stderr to the stream (it
    /// does so before it answers the request), so starting the container afterwards loses no
    /// byte. The stream carries the bytes as the container wrote them (not split into lines)
    /// and ends when the container has closed both, after its last byte.
    ///
    /// The container writes no faster than the stream is read: poll it, or drop it.
    pub async fn attach_output(&self, container: &str) -> Result<OutputFrames, DockerError> {
        let options =
            bollard::query_parameters::AttachContainerOptionsBuilder::default().stream(true).stdout(true).stderr(true).logs(false).build();
        let attached =
            self.client.attach_container(container, Some(options)).await.map_err(|error| container_error("attach to", container, error))?;
        // Kept with the stream: the connection's writing half is not closed early.
        let input = attached.input;
        let container = container.to_string();
        let frames = attached.output.filter_map(move |frame| {
            let _keep_open = &input;
            std::future::ready(output_frame(frame, &container))
        });
        Ok(Box::pin(frames))
    }

    /// The container's stdout and stderr as the engine logged them, from the first line, live,
    /// ending when the container stops; for reading the output of a container that is already
    /// running or done. The engine's log is kept in lines, and its follow mode may end a
    /// moment before the last line is read; a step's own output should use `attach_output`.
    /// The request is sent when the stream is first polled.
    pub fn follow_output(&self, container: &str) -> OutputFrames {
        let options = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).tail("all").build();
        let container = container.to_string();
        let frames =
            self.client.logs(&container, Some(options)).filter_map(move |frame| std::future::ready(output_frame(frame, &container)));
        Box::pin(frames)
    }

    /// Waits until the container is not running and returns its exit code. A non-zero exit is a
    /// normal result here, not an error.
    pub async fn wait_container(&self, container: &str) -> Result<i64, DockerError> {
        let options = WaitContainerOptionsBuilder::default().condition("not-running").build();
        let mut responses = self.client.wait_container(container, Some(options));
        match responses.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(error)) => Err(container_error("wait for", container, error)),
            None => Err(DockerError::Transport {
                operation: "wait for container",
                target: container.to_string(),
                message: "the engine closed the connection without an exit code".to_string(),
            }),
        }
    }

    /// Sends `signal` (`SIGKILL`, `SIGTERM`, …). A container that is not running is left as is.
    pub async fn kill_container(&self, container: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::default().signal(signal).build();
        match self.client.kill_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: the container is not running, which is what the caller wanted.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(error) => Err(container_error("kill", container, error)),
        }
    }

    /// Sends the image's stop signal (SIGTERM by default), then SIGKILL after `grace_seconds`;
    /// returns when the container has stopped.
    pub async fn stop_container(&self, container: &str, grace_seconds: i32) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::default().t(grace_seconds).build();
        match self.client.stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(container_error("stop", container, error)),
        }
    }

    /// Removes the container, killing it first when it runs, with its anonymous volumes. A
    /// container that does not exist (any more) is not an error.
    pub async fn remove_container(&self, container: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.client.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) => match container_error("remove", container, error) {
                DockerError::ContainerNotFound { .. } => Ok(()),
                // 409: a removal of the same container is already in progress.
                DockerError::Container { status: 409, message, .. } if message.contains("already in progress") => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Runs `command` in the running container and returns its exit code and output. Waits for
    /// the command by reading its output to the end: no polling.
    pub async fn exec(&self, container: &str, command: &[String]) -> Result<ExecOutcome, DockerError> {
        let config = bollard::exec::CreateExecOptions::<String> {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self.client.create_exec(container, config).await.map_err(|error| container_error("exec in", container, error))?;
        let started = self.client.start_exec(&created.id, None).await.map_err(|error| container_error("exec in", container, error))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            while let Some(frame) = output.next().await {
                match frame.map_err(|error| container_error("exec in", container, error))? {
                    bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let inspected = self.client.inspect_exec(&created.id).await.map_err(|error| container_error("exec in", container, error))?;
        let exit_code = inspected.exit_code.ok_or_else(|| DockerError::Transport {
            operation: "exec in container",
            target: container.to_string(),
            message: "the engine reported no exit code".to_string(),
        })?;
        Ok(ExecOutcome { exit_code, stdout: stdout.into(), stderr: stderr.into() })
    }

    /// Extracts the tar archive `archive` at `path` in the container, which may be created and
    /// not started; volumes mounted below `path` receive their part. The archive is streamed:
    /// an `Err` item aborts the upload and becomes the error.
    pub async fn upload_archive<S>(&self, container: &str, path: &str, archive: S) -> Result<(), DockerError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let options = UploadToContainerOptionsBuilder::default().path(path).build();
        self.client.upload_to_container(container, Some(options), bollard::body_try_stream(archive)).await.map_err(|error| {
            match failure(error) {
                Failure::Engine { status, message } => {
                    DockerError::Container { operation: "upload an archive to", container: container.to_string(), status, message }
                }
                Failure::Transport { message } => {
                    DockerError::Transport { operation: "upload an archive to", target: container.to_string(), message }
                }
            }
        })
    }

    /// A tar archive of `path` in the container (running or not; volumes mounted there
    /// included), streamed as the engine reads the files: nothing is held in memory.
    ///
    /// The entries are named after `path`'s last component: `/workspace/app` gives
    /// `app/`, `app/Dockerfile`, …, while `/workspace/app/.` gives the folder's content at the
    /// root of the archive, `./`, `./Dockerfile`, …, which is what a build context needs
    /// (`BuildOptions::dockerfile` is then relative to `app`). A `path` that does not exist is
    /// `DockerError::Container` with status 404 and the engine's message; a container that does
    /// not exist is `DockerError::ContainerNotFound`. The request is sent when the stream is
    /// first polled.
    pub fn container_archive(&self, container: &str, path: &str) -> ArchiveStream {
        let options = bollard::query_parameters::DownloadFromContainerOptions { path: path.to_string() };
        let container = container.to_string();
        let archive = self.client.download_from_container(&container, Some(options)).map(move |chunk| {
            chunk.map_err(|error| match failure(error) {
                Failure::Engine { status: 404, message } if message.contains("No such container") => {
                    DockerError::ContainerNotFound { container: container.clone() }
                }
                Failure::Engine { status, message } => {
                    DockerError::Container { operation: "read an archive of", container: container.clone(), status, message }
                }
                Failure::Transport { message } => {
                    DockerError::Transport { operation: "read an archive of", target: container.clone(), message }
                }
            })
        });
        Box::pin(archive)
    }

    /// Whether a container runs, its health, its exit code and its image.
    pub async fn container_state(&self, container: &str) -> Result<ContainerState, DockerError> {
        let details = self
            .client
            .inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .map_err(|error| container_error("inspect", container, error))?;
        let state = details.state.unwrap_or_default();
        Ok(ContainerState {
            running: state.running.unwrap_or(false),
            health: state
                .health
                .and_then(|health| health.status)
                .map(|status| status.to_string())
                .filter(|status| status != "none" && !status.is_empty()),
            exit_code: state.exit_code,
            image_id: details.image.unwrap_or_default(),
            ip_addresses: details
                .network_settings
                .and_then(|settings| settings.networks)
                .map(|networks| {
                    networks.into_values().filter_map(|network| network.ip_address).filter(|address| !address.is_empty()).collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Every container (running or not) carrying all of `labels` (`key=value` or `key`).
    pub async fn list_containers(&self, labels: &[String]) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self.client.list_containers(Some(options)).await.map_err(|error| DockerError::Transport {
            operation: "list containers",
            target: labels.join(","),
            message: error_chain(&error),
        })?;
        Ok(containers
            .into_iter()
            .map(|container| ContainerSummary {
                id: container.id.unwrap_or_default(),
                name: container.names.and_then(|names| names.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_string(),
                state: container.state.map(|state| state.to_string()).unwrap_or_default(),
                labels: container.labels.unwrap_or_default(),
                image_id: container.image_id.unwrap_or_default(),
                created: container.created.unwrap_or_default(),
                health: container.status.as_deref().and_then(health_of_status),
            })
            .collect())
    }
}

/// The health in a container's status line (`Up 3 minutes (healthy)`, `Up 1 second (health:
/// starting)`).
fn health_of_status(status: &str) -> Option<String> {
    ["unhealthy", "healthy", "starting"].into_iter().find(|word| status.contains(&format!("{word})"))).map(str::to_owned)
}
