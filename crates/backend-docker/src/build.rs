//! An image build step on the engine: the build context streamed out of the workflow's
//! workspace volume into the engine's build API, the builder's output as the step's log, then
//! the tags pushed with the step's credentials and each pushed image described by a provenance
//! statement. No container of the step's own runs: nothing privileged, no socket in user code.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use docker::{BuildEvent, BuildOptions, ContainerSpec, Engine, RegistryCredentials, registry_host};
use futures_util::StreamExt;
use runtime::backend::OutputStreamOf;
use runtime::publish::now_rfc3339;
use runtime::{BackendError, BuildRequest, OutputChunk, OutputStream, PublishedImage};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::dockerignore::{DockerIgnore, filter_context};
use crate::owner::LABEL_STEP;
use crate::workflow::DockerWorkflow;

/// The exit code a build step reports when it was stopped (as a killed container would).
const STOPPED: i64 = 137;

/// Where a build step's helper container mounts the workspace, and what it is made from.
#[derive(Clone, Debug)]
pub(crate) struct WorkspaceAccess {
    pub(crate) helper_image: String,
    pub(crate) container_name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) mount: docker::VolumeMount,
}

impl WorkspaceAccess {
    pub(crate) fn new(workflow: &DockerWorkflow, helper_image: &str, step_name: &str) -> WorkspaceAccess {
        let mut labels = workflow.labels.clone();
        labels.insert(LABEL_STEP.to_string(), step_name.to_string());
        let base = workflow.workspace_base_or_root().to_string();
        WorkspaceAccess {
            helper_image: helper_image.to_string(),
            container_name: format!("{}-build", workflow.container_name(step_name)),
            labels,
            mount: workflow.volume_mount(&workflow.workspace_volume, &base, Some("ro")),
        }
    }
}

/// A build step between `prepare` and `remove`.
#[derive(Debug)]
pub(crate) struct BuildStep {
    request: BuildRequest,
    access: WorkspaceAccess,
    stop: CancellationToken,
    exit: watch::Sender<Option<i64>>,
    published: Mutex<Vec<PublishedImage>>,
}

impl BuildStep {
    pub(crate) fn new(request: BuildRequest, access: WorkspaceAccess) -> BuildStep {
        BuildStep { request, access, stop: CancellationToken::new(), exit: watch::Sender::new(None), published: Mutex::default() }
    }

    /// Starts the build in a task of its own; its output arrives on the returned stream.
    pub(crate) fn start(self: &Arc<Self>, engine: &Engine, step_name: &str) -> OutputStreamOf {
        let (sender, receiver) = mpsc::channel::<Result<OutputChunk, BackendError>>(64);
        let step = self.clone();
        let engine = engine.clone();
        let name = step_name.to_string();
        tokio::spawn(async move {
            let log = Log { sender };
            let code = tokio::select! {
                code = step.run(&engine, &log) => code,
                () = step.stop.cancelled() => {
                    log.line(OutputStream::Stderr, "the build was stopped").await;
                    STOPPED
                }
            };
            // The helper container may still exist if the build was stopped mid-context.
            if let Err(error) = engine.remove_container(&step.access.container_name).await {
                tracing::debug!(step = %name, %error, "the build's helper container could not be removed; teardown will");
            }
            step.exit.send_replace(Some(code));
        });
        Box::pin(futures_util::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) }))
    }

    pub(crate) async fn wait(&self) -> i64 {
        let mut exit = self.exit.subscribe();
        match exit.wait_for(Option::is_some).await {
            Ok(code) => code.unwrap_or(STOPPED),
            Err(_) => STOPPED,
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    pub(crate) fn published(&self) -> Vec<PublishedImage> {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The whole build; its exit code: 0 when every push succeeded.
    async fn run(&self, engine: &Engine, log: &Log) -> i64 {
        match self.build_and_push(engine, log).await {
            Ok(()) => 0,
            Err(message) => {
                log.line(OutputStream::Stderr, &message).await;
                1
            }
        }
    }

    async fn build_and_push(&self, engine: &Engine, log: &Log) -> Result<(), String> {
        let build = &self.request.build;
        let helper = self.create_helper(engine).await?;
        let tags = match &build.tags_file {
            Some(file) => match read_workspace_file(engine, &helper, &file.path).await? {
                Some(text) => parse_tags(&text),
                None if file.required => return Err(format!("the tags file `{}` does not exist", file.path)),
                None => build.tags.clone(),
            },
            None => build.tags.clone(),
        };
        if tags.is_empty() {
            return Err("no tags to build: the tags file is empty".to_string());
        }
        let references: Vec<String> =
            build.repositories.iter().flat_map(|repository| tags.iter().map(move |tag| format!("{repository}:{tag}"))).collect();
        log.line(OutputStream::Stdout, &format!("building {} from {} ({})", references.join(", "), build.context, build.dockerfile)).await;

        let context_dir = build.context.trim_end_matches('/');
        let ignore = match read_workspace_file(engine, &helper, &format!("{context_dir}/.dockerignore")).await? {
            Some(text) => DockerIgnore::parse(&text)?,
            None => DockerIgnore::default(),
        };
        let archive = engine
            .container_archive(&helper, &format!("{context_dir}/."))
            .map(|chunk| chunk.map_err(|error| std::io::Error::other(error.to_string())));
        let context = if ignore.is_empty() { archive.boxed() } else { filter_context(archive, ignore, build.dockerfile.clone()).boxed() };
        // Labels go on in a second, one-line build: the classic builder turns each build label
        // into a step of its own, and `org.opencontainers.image.created` changes every time, so
        // the labels would cost a container commit each and defeat the cache of those after it.
        let options = BuildOptions {
            dockerfile: build.dockerfile.clone(),
            tags: Vec::new(),
            build_args: self.request.build_args.clone(),
            target: build.target.clone(),
            no_cache: build.no_cache,
            pull: build.pull,
            cache_from: build.cache_from.clone(),
            registry_credentials: self
                .request
                .credentials
                .iter()
                .map(|credential| {
                    (
                        credential.host.clone(),
                        RegistryCredentials { username: credential.username.clone(), password: credential.password.clone() },
                    )
                })
                .collect(),
            ..BuildOptions::default()
        };
        let mut events = engine.build_image(context, options);
        let mut image_id = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(BuildEvent::Output(text)) => log.text(OutputStream::Stdout, text).await,
                Ok(BuildEvent::Status(status)) => log.line(OutputStream::Stdout, &status).await,
                Ok(BuildEvent::Built { image_id: id }) => image_id = Some(id),
                Err(error) => return Err(format!("the build failed: {error}")),
            }
        }
        let built = image_id.ok_or("the build ended without an image")?;
        if let Err(error) = engine.remove_container(&helper).await {
            tracing::debug!(%error, "the build's helper container could not be removed; teardown will");
        }
        let image_id = label_image(engine, &built, &self.request.labels, &references).await?;
        log.line(OutputStream::Stdout, &format!("built {image_id}, tagged {}", references.join(", "))).await;
        if !self.request.push {
            log.line(OutputStream::Stdout, "not pushed (dry run or --no-push): the image keeps its tags on this engine").await;
            return Ok(());
        }
        let size = engine.inspect_image(&image_id).await.ok().map(|details| i64::try_from(details.size).unwrap_or(i64::MAX));
        let mut failure = None;
        for repository in &build.repositories {
            match self.push_repository(engine, log, repository, &tags, size).await {
                Ok(image) => self.published.lock().unwrap_or_else(PoisonError::into_inner).push(image),
                Err(message) => {
                    failure = Some(message);
                    break;
                }
            }
        }
        if build.purge {
            for reference in &references {
                if let Err(error) = engine.untag_image(reference).await {
                    tracing::debug!(reference, %error, "could not remove a pushed tag from the engine");
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Pushes every tag of one repository; the image is one manifest, so one digest.
    async fn push_repository(
        &self,
        engine: &Engine,
        log: &Log,
        repository: &str,
        tags: &[String],
        size: Option<i64>,
    ) -> Result<PublishedImage, String> {
        let host = registry_host(repository);
        let credentials = self
            .request
            .credential_for(host)
            .map(|credential| RegistryCredentials { username: credential.username.clone(), password: credential.password.clone() });
        let mut digest = String::new();
        for tag in tags {
            let pushed =
                engine.push_image(repository, tag, credentials.as_ref()).await.map_err(|error| format!("the push failed: {error}"))?;
            log.line(OutputStream::Stdout, &format!("pushed {repository}:{tag} ({})", pushed.digest)).await;
            digest = pushed.digest;
        }
        let statement = self.request.provenance.statement(repository, &digest, &now_rfc3339());
        let provenance_digest = match self.attach_provenance(repository, &digest, &statement).await {
            Ok(attestation) => {
                log.line(OutputStream::Stdout, &format!("attached provenance {attestation} to {repository}@{digest}")).await;
                Some(attestation)
            }
            Err(message) => {
                // The image is pushed and its provenance is still recorded with the build: a
                // registry that refuses artifacts costs the attachment, not the build.
                log.line(OutputStream::Stderr, &format!("warning: the provenance could not be attached in the registry: {message}")).await;
                None
            }
        };
        Ok(PublishedImage {
            repository: repository.to_string(),
            tags: tags.to_vec(),
            digest,
            size,
            provenance: Some(statement),
            provenance_digest,
        })
    }

    /// Pushes the statement as an OCI artifact whose `subject` is the image just pushed.
    async fn attach_provenance(&self, repository: &str, digest: &str, statement: &serde_json::Value) -> Result<String, String> {
        let credentials = self
            .request
            .credential_for(registry_host(repository))
            .map(|credential| registry::Credentials { username: credential.username.clone(), password: credential.password.clone() });
        let registry = registry::Registry::new();
        let subject =
            registry.fetch_manifest(repository, digest, credentials.as_ref()).await.map_err(|error| error.to_string())?.descriptor;
        let body = serde_json::to_vec(statement).map_err(|error| error.to_string())?;
        let attestation =
            registry.push_attestation(repository, &subject, &body, credentials.as_ref()).await.map_err(|error| error.to_string())?;
        Ok(attestation.digest)
    }

    /// A container, never started, with the workspace mounted read-only: the build context and
    /// the tags file are read through it.
    async fn create_helper(&self, engine: &Engine) -> Result<String, String> {
        let spec = ContainerSpec {
            name: Some(self.access.container_name.clone()),
            image: self.access.helper_image.clone(),
            command: Some(vec!["/never-started".to_string()]),
            labels: self.access.labels.clone(),
            volume_mounts: vec![self.access.mount.clone()],
            network_mode: Some("none".to_string()),
            ..ContainerSpec::default()
        };
        engine.create_container(spec).await.map_err(|error| format!("cannot read the workspace: {error}"))
    }
}

/// Gives the built image its labels and names in one step: a build of `FROM <image>` and a
/// single `LABEL` line, from a context of that Dockerfile alone. Returns the labelled image's id.
async fn label_image(engine: &Engine, image_id: &str, labels: &BTreeMap<String, String>, references: &[String]) -> Result<String, String> {
    let mut dockerfile = format!("FROM {image_id}\n");
    if !labels.is_empty() {
        let pairs: Vec<String> =
            labels.iter().map(|(key, value)| format!("{}={}", dockerfile_quoted(key), dockerfile_quoted(value))).collect();
        dockerfile.push_str(&format!("LABEL {}\n", pairs.join(" ")));
    }
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).map_err(|error| format!("cannot label the image: {error}"))?;
    let archive = archive.into_inner().map_err(|error| format!("cannot label the image: {error}"))?;
    let context = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(archive)) });
    let options = BuildOptions { tags: references.to_vec(), ..BuildOptions::default() };
    let mut events = engine.build_image(context, options);
    let mut labelled = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(BuildEvent::Built { image_id }) => labelled = Some(image_id),
            Ok(_) => {}
            Err(error) => return Err(format!("labelling the image failed: {error}")),
        }
    }
    labelled.ok_or_else(|| "labelling the image ended without an image".to_string())
}

/// A Dockerfile string in double quotes: backslashes, quotes and line breaks escaped.
fn dockerfile_quoted(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ").replace('$', "\\$");
    format!("\"{escaped}\"")
}

/// The text of one file of the workspace; `None` when it does not exist.
async fn read_workspace_file(engine: &Engine, helper: &str, path: &str) -> Result<Option<String>, String> {
    let mut archive = Vec::new();
    let mut chunks = engine.container_archive(helper, path);
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => archive.extend_from_slice(&bytes),
            Err(error) if error.to_string().contains("404") || error.to_string().contains("No such") => return Ok(None),
            Err(error) => return Err(format!("cannot read `{path}`: {error}")),
        }
        if archive.len() > MAX_TAGS_FILE {
            return Err(format!("`{path}` is larger than a tags file can be ({MAX_TAGS_FILE} bytes)"));
        }
    }
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut entries = entries.entries().map_err(|error| format!("cannot read `{path}`: {error}"))?;
    let Some(entry) = entries.next() else { return Ok(None) };
    let mut entry = entry.map_err(|error| format!("cannot read `{path}`: {error}"))?;
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(|error| format!("`{path}` is not text: {error}"))?;
    Ok(Some(text))
}

const MAX_TAGS_FILE: usize = 64 * 1024;

/// Tags separated by commas or line breaks (plugins/docker writes commas, buildx lines).
fn parse_tags(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|tag| !tag.is_empty()).map(str::to_string).collect()
}

/// The step's output channel.
struct Log {
    sender: mpsc::Sender<Result<OutputChunk, BackendError>>,
}

impl Log {
    async fn text(&self, stream: OutputStream, text: String) {
        let _ = self.sender.send(Ok(OutputChunk { stream, bytes: Bytes::from(text) })).await;
    }

    async fn line(&self, stream: OutputStream, line: &str) {
        self.text(stream, format!("{line}\n")).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_tags;

    #[test]
    fn tags_files_take_commas_or_lines() {
        assert_eq!(parse_tags("1.2.3,1.2\n latest \n\n"), ["1.2.3", "1.2", "latest"]);
    }
}
