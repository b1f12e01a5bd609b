//! The harness: an image of the test's own built from the local busybox and pushed by the
//! engine, the test registries and their credentials, a ceiling for every wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use docker::{BuildEvent, BuildOptions, Engine, RegistryCredentials};
use futures_util::StreamExt;
use registry::{Credentials, Descriptor};

/// The registry without authentication.
pub(crate) const OPEN_REGISTRY: &str = "127.0.0.1:5000";
/// The registry with htpasswd authentication.
pub(crate) const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// Written by `scripts/registry-up.sh` as `user:password`.
const AUTH_CREDENTIALS_FILE: &str = "/var/lib/gantry-test/registry-auth/credentials";
/// Built by `scripts/docker-up.sh`; nothing is pulled.
const BUSYBOX: &str = "gantry-test/busybox:latest";
/// Carried by the images the tests build, with the test's own id.
pub(crate) const LABEL: &str = "io.gantry.registry-it";
/// The longest any one wait may take before the test fails instead of hanging.
const CEILING: Duration = Duration::from_secs(60);

static TEST_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `future`, or a failed test once `CEILING` has passed.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(CEILING, future).await.unwrap_or_else(|_| panic!("{what} did not finish within {CEILING:?}"))
}

/// The credentials of the registry with authentication.
pub(crate) fn credentials() -> Credentials {
    let text = std::fs::read_to_string(AUTH_CREDENTIALS_FILE)
        .unwrap_or_else(|error| panic!("{AUTH_CREDENTIALS_FILE}: {error}; run scripts/registry-up.sh"));
    let (username, password) = text.trim().split_once(':').expect("user:password");
    Credentials { username: username.to_owned(), password: password.to_owned() }
}

/// An image the engine built and pushed for one test, in a repository of that test's own.
/// Dropping it removes the image from the engine (what the registry holds stays: the test
/// registries are disposable, and each test's repository is new).
pub(crate) struct PushedImage {
    pub(crate) engine: Engine,
    /// `registry/gantry-registry-it/<test>-<pid>-<n>`
    pub(crate) repository: String,
    pub(crate) tag: String,
    /// The test's id, the value of `LABEL` on the image.
    pub(crate) id: String,
    /// The image's manifest as the engine's push reported it (the media type is the one
    /// Docker 20.10 pushes).
    pub(crate) manifest: Descriptor,
    /// Further tags of the same image pushed by `push_tags`, removed from the engine with it.
    pub(crate) extra_tags: Vec<String>,
}

impl PushedImage {
    /// Builds an image `FROM` the local busybox with `LABEL` and the labels given, and pushes
    /// it to `registry` with `credentials`.
    pub(crate) async fn push(test: &str, registry: &str, credentials: Option<&Credentials>) -> PushedImage {
        let engine = within("connecting", Engine::connect())
            .await
            .unwrap_or_else(|error| panic!("these tests need a Docker engine ({error}); run scripts/docker-up.sh"));
        let id = format!("{test}-{}-{}", std::process::id(), TEST_COUNTER.fetch_add(1, Ordering::Relaxed));
        let repository = format!("{registry}/gantry-registry-it/{id}");
        let tag = "v1".to_owned();
        let dockerfile = format!("FROM {BUSYBOX}\nLABEL {LABEL}={id}\nRUN echo {id} > /id\n");
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).unwrap();
        let context = futures_util::stream::iter([Ok(Bytes::from(archive.into_inner().unwrap()))]);
        let options = BuildOptions {
            tags: vec![format!("{repository}:{tag}")],
            labels: BTreeMap::from([("org.opencontainers.image.revision".to_owned(), "0123abc".to_owned())]),
            // The classic builder's cache lookup loads every child image of the base; another
            // test's image removed at that moment fails this build ("unable to find image").
            no_cache: true,
            ..BuildOptions::default()
        };
        let mut events = engine.build_image(context, options);
        let mut output = String::new();
        within("the build", async {
            while let Some(event) = events.next().await {
                match event {
                    Ok(BuildEvent::Output(text)) => output.push_str(&text),
                    Ok(_) => {}
                    Err(error) => panic!("the build failed: {error}\n{output}"),
                }
            }
        })
        .await;
        // Made before the push, so that a failed push still removes the image.
        let mut image = PushedImage { engine, repository, tag, id, manifest: Descriptor::default(), extra_tags: Vec::new() };
        let engine_credentials = credentials
            .map(|credentials| RegistryCredentials { username: credentials.username.clone(), password: credentials.password.clone() });
        let pushed = within("the push", image.engine.push_image(&image.repository, &image.tag, engine_credentials.as_ref())).await.unwrap();
        image.manifest = Descriptor {
            media_type: "application/vnd.docker.distribution.manifest.v2+json".to_owned(),
            digest: pushed.digest,
            size: pushed.size,
            ..Descriptor::default()
        };
        image
    }

    /// Tags the image as each of `tags` too and pushes them.
    pub(crate) async fn push_tags(&mut self, tags: &[&str], credentials: Option<&Credentials>) {
        let engine_credentials = credentials
            .map(|credentials| RegistryCredentials { username: credentials.username.clone(), password: credentials.password.clone() });
        let source = format!("{}:{}", self.repository, self.tag);
        for tag in tags {
            within("tagging", self.engine.tag_image(&source, &format!("{}:{tag}", self.repository))).await.unwrap();
            self.extra_tags.push((*tag).to_owned());
            within("the push", self.engine.push_image(&self.repository, tag, engine_credentials.as_ref())).await.unwrap();
        }
    }
}

impl Drop for PushedImage {
    fn drop(&mut self) {
        // The test's runtime may be gone: remove on a runtime and connection of our own.
        let images: Vec<String> =
            std::iter::once(&self.tag).chain(&self.extra_tags).map(|tag| format!("{}:{tag}", self.repository)).collect();
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let engine = Engine::connect().await?;
                for image in images {
                    engine.remove_image(&image).await?;
                }
                Ok::<(), docker::DockerError>(())
            })
        });
        if let Ok(Err(error)) = removal.join() {
            eprintln!("removing the test's image failed: {error}");
        }
    }
}
