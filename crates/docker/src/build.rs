//! Image builds through the engine's build API (the classic builder: Docker 20.10's API offers
//! BuildKit only through a session the API client must serve): a tar stream of the context in,
//! a stream of what the builder says out. Dropping that stream closes the connection, and the
//! engine then stops the build, its running step included.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::Engine;
use crate::credentials::{RegistryCredentials, engine_credentials_map, redact};
use crate::error::{DockerError, Failure, failure};

/// How many of the builder's messages wait for a slow reader before the build waits too.
const EVENTS_BUFFERED: usize = 64;

/// What to build from a context, and how.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path inside the context (relative to its root); `Dockerfile` when
    /// empty.
    pub dockerfile: String,
    /// The names the image gets (`repository[:tag]`, `latest` when no tag). None: the image is
    /// known by its id only.
    pub tags: Vec<String>,
    /// `ARG` values. They may be secrets: `Debug` shows their names only. The classic builder
    /// records the values of the args a `RUN` sees in the image's history (`docker history`).
    pub build_args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to stop at; the last stage when `None`.
    pub target: Option<String>,
    /// Labels the image gets besides those its Dockerfile sets.
    pub labels: BTreeMap<String, String>,
    /// Build every step again instead of reusing layers of earlier builds.
    pub no_cache: bool,
    /// Pull the base images of `FROM` lines even when they are on this machine.
    pub pull: bool,
    /// Images whose layers may serve as cache (they must be on this machine).
    pub cache_from: Vec<String>,
    pub intermediate_containers: IntermediateContainers,
    /// Credentials for the registries `FROM` lines pull from, by registry host
    /// (`registry.example.com:5000`; `docker.io` for Docker Hub).
    pub registry_credentials: BTreeMap<String, RegistryCredentials>,
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BuildOptions")
            .field("dockerfile", &self.dockerfile)
            .field("tags", &self.tags)
            .field("build_args", &self.build_args.keys().collect::<Vec<_>>())
            .field("target", &self.target)
            .field("labels", &self.labels)
            .field("no_cache", &self.no_cache)
            .field("pull", &self.pull)
            .field("cache_from", &self.cache_from)
            .field("intermediate_containers", &self.intermediate_containers)
            .field("registry_credentials", &self.registry_credentials)
            .finish()
    }
}

/// What becomes of the containers the builder runs each step in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntermediateContainers {
    /// Removed whatever happened (`forcerm`): a failed build leaves nothing behind.
    #[default]
    RemoveAlways,
    /// Removed after a build that succeeded (`rm`, the docker CLI's default); a failed step's
    /// container stays for inspection.
    RemoveOnSuccess,
    /// Kept.
    Keep,
}

/// One message of a running build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildEvent {
    /// Text as the builder streamed it, not split into lines: step headers (`Step 2/5 : RUN
    /// …`), the output of `RUN` steps, ` ---> Using cache`, ` ---> 3f2a…`.
    Output(String),
    /// Progress of something the builder does besides the steps, such as pulling a base image
    /// (`<layer>: Pull complete`).
    Status(String),
    /// The build succeeded: the image's id (`sha256:…`). The last event of a build that
    /// succeeded, sent once every name in `BuildOptions::tags` points at the image.
    Built { image_id: String },
}

/// A running build's messages. A build that fails ends with an `Err` carrying the engine's
/// message (`DockerError::BuildFailed`); one that succeeds ends with `BuildEvent::Built`.
/// Dropping the stream before its end cancels the build on the engine.
pub type BuildEvents = Pin<Box<dyn Stream<Item = Result<BuildEvent, DockerError>> + Send>>;

/// Aborts the task that drives a build when the caller's stream goes: the build's connection
/// closes with it, which is how the engine learns that the build is cancelled.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Builds an image from `context`, a tar archive (plain or gzip-compressed) of the build
    /// context whose root holds what `COPY` lines name; it is streamed to the engine, so the
    /// caller need not hold it in memory. An `Err` in `context` aborts the build.
    ///
    /// The request is sent at once (call it inside a Tokio runtime); the returned stream
    /// carries the builder's messages as they come. Read it to its end, or drop it to cancel
    /// the build: the engine stops the step that runs and removes its container.
    pub fn build_image<S>(&self, context: S, options: BuildOptions) -> BuildEvents
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(EVENTS_BUFFERED);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            engine.drive_build(context, options, sender).await;
        });
        let guard = AbortOnDrop(task.abort_handle());
        Box::pin(futures_util::stream::poll_fn(move |context| {
            let _cancels_the_build_when_dropped = &guard;
            receiver.poll_recv(context)
        }))
    }

    /// Sends the build's messages to `sender` until the build ends or nobody listens. bollard's
    /// build stream borrows its client, so the build runs in a task of its own that owns one.
    async fn drive_build<S>(&self, context: S, options: BuildOptions, sender: tokio::sync::mpsc::Sender<Result<BuildEvent, DockerError>>)
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let passwords: Vec<String> = options.registry_credentials.values().map(|credentials| credentials.password.clone()).collect();
        let redacted = |text: String| redact(text, passwords.iter().map(String::as_str));
        let target = options.tags.first().cloned().unwrap_or_else(|| "an untagged image".to_string());
        let (engine_options, credentials) = engine_build_options(&options);
        let mut messages = self.client.build_image(engine_options, credentials, Some(bollard::body_try_stream(context)));
        let mut image_id = None;
        while let Some(message) = messages.next().await {
            let event = match message {
                Ok(info) => {
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        image_id = Some(id);
                    }
                    match (info.stream, info.status) {
                        (Some(text), _) => BuildEvent::Output(text),
                        (None, Some(status)) => BuildEvent::Status(match info.id.filter(|id| !id.is_empty()) {
                            Some(id) => format!("{id}: {status}"),
                            None => status,
                        }),
                        (None, None) => continue,
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(build_error(error, &target, &redacted))).await;
                    return;
                }
            };
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let Some(image_id) = image_id else {
            let message = "the engine ended the build without naming the image it built".to_string();
            let _ = sender.send(Err(DockerError::BuildFailed { message })).await;
            return;
        };
        // The engine's API takes several names, bollard's model of it one: the others are
        // given here.
        for tag in options.tags.iter().skip(1) {
            if let Err(error) = self.tag_image(&image_id, tag).await {
                let _ = sender.send(Err(error)).await;
                return;
            }
        }
        let _ = sender.send(Ok(BuildEvent::Built { image_id })).await;
    }
}

fn engine_build_options(
    options: &BuildOptions,
) -> (bollard::query_parameters::BuildImageOptions, Option<HashMap<String, bollard::auth::DockerCredentials>>) {
    let non_empty_map =
        |map: &BTreeMap<String, String>| if map.is_empty() { None } else { Some(map.clone().into_iter().collect::<HashMap<_, _>>()) };
    let (rm, forcerm) = match options.intermediate_containers {
        IntermediateContainers::RemoveAlways => (true, true),
        IntermediateContainers::RemoveOnSuccess => (true, false),
        IntermediateContainers::Keep => (false, false),
    };
    let engine_options = bollard::query_parameters::BuildImageOptions {
        dockerfile: if options.dockerfile.is_empty() { "Dockerfile".to_string() } else { options.dockerfile.clone() },
        t: options.tags.first().cloned(),
        nocache: options.no_cache,
        cachefrom: if options.cache_from.is_empty() { None } else { Some(options.cache_from.clone()) },
        pull: options.pull.then(|| "1".to_string()),
        rm,
        forcerm,
        buildargs: non_empty_map(&options.build_args),
        labels: non_empty_map(&options.labels),
        target: options.target.clone().unwrap_or_default(),
        ..Default::default()
    };
    let credentials =
        if options.registry_credentials.is_empty() { None } else { Some(engine_credentials_map(&options.registry_credentials)) };
    (engine_options, credentials)
}

fn build_error(error: bollard::errors::Error, target: &str, redacted: &impl Fn(String) -> String) -> DockerError {
    match error {
        bollard::errors::Error::DockerStreamError { error } => DockerError::BuildFailed { message: redacted(error) },
        error => match failure(error) {
            Failure::Engine { message, .. } => DockerError::BuildFailed { message: redacted(message) },
            Failure::Transport { message } => {
                DockerError::Transport { operation: "build image", target: target.to_string(), message: redacted(message) }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::BuildOptions;
    use crate::RegistryCredentials;

    #[test]
    fn build_arg_values_and_passwords_stay_out_of_debug_output() {
        let options = BuildOptions {
            build_args: BTreeMap::from([("TOKEN".to_owned(), "s3cr3t-value".to_owned())]),
            registry_credentials: BTreeMap::from([(
                "127.0.0.1:5001".to_owned(),
                RegistryCredentials { username: "user".to_owned(), password: "pa55word".to_owned() },
            )]),
            ..BuildOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("TOKEN") && shown.contains("user"), "{shown}");
        assert!(!shown.contains("s3cr3t-value") && !shown.contains("pa55word"), "{shown}");
    }
}
