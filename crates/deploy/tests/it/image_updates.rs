//! Image automation against the real test registries (`scripts/registry-up.sh`): images built
//! from the local busybox with Gantry's labels, pushed by the engine under version tags to a
//! repository of the test's own, and the updates `find_updates` finds for an environment
//! repository's applications: the highest version in range, the next one when that is held,
//! the newest of a branch by creation time, the registry with authentication through the
//! deployer's credentials, and an application whose registry fails skipped without the others.
//! The images are removed from the engine at the end; what the registries hold stays (the
//! repositories are new each run).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use deploy::automation::{ImageUpdate, find_updates};
use deploy::{EnvironmentRepo, ReadOptions, RepoFile, read_repository};
use docker::{BuildEvent, BuildOptions, Engine, RegistryCredentials};
use futures_util::StreamExt;
use registry::{Credentials, Registry};

const OPEN_REGISTRY: &str = "127.0.0.1:5000";
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// Written by `scripts/registry-up.sh` as `user:password`.
const AUTH_CREDENTIALS_FILE: &str = "/var/lib/gantry-test/registry-auth/credentials";
/// Built by `scripts/docker-up.sh`; nothing is pulled.
const BUSYBOX: &str = "gantry-test/busybox:latest";
const CEILING: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(CEILING, future).await.unwrap_or_else(|_| panic!("{what} did not finish within {CEILING:?}"))
}

fn auth_credentials() -> Credentials {
    let text = std::fs::read_to_string(AUTH_CREDENTIALS_FILE)
        .unwrap_or_else(|error| panic!("{AUTH_CREDENTIALS_FILE}: {error}; run scripts/registry-up.sh"));
    let (username, password) = text.trim().split_once(':').expect("user:password");
    Credentials { username: username.to_owned(), password: password.to_owned() }
}

/// `127.0.0.1:5000/it-automation-<pid>-<nanos>/<name>`: new on every run.
fn unique_repository(registry: &str, name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{registry}/it-automation-{}-{nanos}/{name}", std::process::id())
}

/// The images a test built; dropping it removes them from the engine.
struct Images {
    engine: Engine,
    built: Vec<String>,
}

impl Images {
    async fn new() -> Images {
        let engine = within("connecting", Engine::connect())
            .await
            .unwrap_or_else(|error| panic!("this test needs a Docker engine ({error}); run scripts/docker-up.sh"));
        Images { engine, built: Vec::new() }
    }

    /// Builds `repository:tag` `FROM` the local busybox with `labels` written as `LABEL`
    /// lines, pushes it, and answers the digest the registry stored.
    async fn push(&mut self, repository: &str, tag: &str, labels: &[(&str, String)], credentials: Option<&Credentials>) -> String {
        let mut dockerfile = format!("FROM {BUSYBOX}\nLABEL io.gantry.test-image=\"{repository}:{tag}\"\n");
        for (key, value) in labels {
            dockerfile.push_str(&format!("LABEL {key}=\"{value}\"\n"));
        }
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).unwrap();
        let context = futures_util::stream::iter([Ok(Bytes::from(archive.into_inner().unwrap()))]);
        let image = format!("{repository}:{tag}");
        self.built.push(image.clone());
        let mut events = self.engine.build_image(context, BuildOptions { tags: vec![image], ..BuildOptions::default() });
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
        let credentials = credentials
            .map(|credentials| RegistryCredentials { username: credentials.username.clone(), password: credentials.password.clone() });
        within("the push", self.engine.push_image(repository, tag, credentials.as_ref())).await.unwrap().digest
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        // The test's runtime may be gone: remove on a runtime and connection of our own.
        let images = std::mem::take(&mut self.built);
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
            eprintln!("removing the test's images failed: {error}");
        }
    }
}

/// Gantry's labels for build `number` of `branch`.
fn build_labels(number: &str, branch: &str) -> Vec<(&'static str, String)> {
    vec![
        ("org.opencontainers.image.revision", "0123abcd".to_owned()),
        ("io.gantry.repo", "shop/web".to_owned()),
        ("io.gantry.build", number.to_owned()),
        ("io.gantry.pipeline", ".woodpecker.yml".to_owned()),
        ("io.gantry.branch", branch.to_owned()),
        ("org.opencontainers.image.url", format!("https://ci.example.com/repos/shop/web/builds/{number}")),
    ]
}

/// An environment repository with one application per `(name, image, extra lines)`.
fn environment_repo(apps: &[(&str, String, &str)]) -> EnvironmentRepo {
    let mut files = vec![RepoFile {
        path: "environment.yml".to_owned(),
        text: "version: 1\nname: it\ntargets:\n  one: {kind: docker}\ndefaults:\n  require_digest: false\n".to_owned(),
    }];
    for (name, image, extra) in apps {
        files.push(RepoFile {
            path: format!("apps/{name}.yml"),
            text: format!("version: 1\nowner: {{team: shop, contact: shop@example.com}}\nimage: {image}\n{extra}"),
        });
    }
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert!(!diagnostics.iter().any(pipeline::Diagnostic::is_error), "{diagnostics:?}");
    repository.unwrap()
}

fn by_app(updates: Vec<ImageUpdate>) -> HashMap<String, ImageUpdate> {
    updates.into_iter().map(|update| (update.app.clone(), update)).collect()
}

#[tokio::test]
async fn find_updates_moves_each_application_as_its_policy_says_and_skips_one_whose_registry_fails() {
    let credentials = auth_credentials();
    let mut images = Images::new().await;
    let repository = unique_repository(OPEN_REGISTRY, "app");
    // Built in this order: `1.4.1` is the newest image of `main` though `1.5.0` is the highest
    // version; `2.0.0` is newer still, on another branch.
    let mut digests = BTreeMap::new();
    for (tag, number, branch) in [("1.4.0", "1", "main"), ("1.5.0", "2", "main"), ("1.4.1", "3", "main"), ("2.0.0", "4", "next")] {
        digests.insert(tag, images.push(&repository, tag, &build_labels(number, branch), None).await);
    }
    let private = unique_repository(AUTH_REGISTRY, "private");
    let private_old = images.push(&private, "1.0.0", &build_labels("5", "main"), Some(&credentials)).await;
    let private_new = images.push(&private, "1.1.0", &build_labels("6", "main"), Some(&credentials)).await;

    let current = format!("{repository}:1.4.0@{}", digests["1.4.0"]);
    let missing = format!("{}:1.0.0", unique_repository(OPEN_REGISTRY, "missing"));
    let environment = environment_repo(&[
        ("web", current.clone(), "image_policy:\n  semver: ^1.4\n"),
        ("held", current.clone(), &format!("image_policy:\n  semver: ^1.4\nholds:\n  - {}\n", digests["1.5.0"])),
        ("branch", current.clone(), "image_policy:\n  branch: main\n"),
        ("mature", current.clone(), "image_policy:\n  semver: ^1.4\n  maturing: 1h\n"),
        ("missing", missing, "image_policy:\n  semver: ^1.0\n"),
        ("private", format!("{private}:1.0.0@{private_old}"), "image_policy:\n  semver: ^1\n"),
        ("pinned", current.clone(), ""),
    ]);
    let registry = Registry::new();
    let with_credentials = |host: &str| (host == AUTH_REGISTRY).then(|| credentials.clone());
    let updates = by_app(within("find_updates", find_updates(&environment, &registry, with_credentials, SystemTime::now())).await);

    let mut apps: Vec<&str> = updates.keys().map(String::as_str).collect();
    apps.sort_unstable();
    // `missing` has no repository, `mature` waits an hour, `pinned` has no policy.
    assert_eq!(apps, ["branch", "held", "private", "web"]);
    let target = |update: &ImageUpdate| (update.to.tag.clone().unwrap(), update.to.digest.clone().unwrap());
    assert_eq!(target(&updates["web"]), ("1.5.0".to_owned(), digests["1.5.0"].clone()));
    assert_eq!(target(&updates["held"]), ("1.4.1".to_owned(), digests["1.4.1"].clone()));
    assert_eq!(target(&updates["branch"]), ("1.4.1".to_owned(), digests["1.4.1"].clone()));
    assert_eq!(target(&updates["private"]), ("1.1.0".to_owned(), private_new));

    let web = &updates["web"];
    assert_eq!((web.file.as_str(), web.from.to_string()), ("apps/web.yml", current.clone()));
    assert_eq!(web.to.to_string(), format!("{repository}:1.5.0@{}", digests["1.5.0"]));
    assert_eq!(web.provenance.build.as_deref(), Some("2"));
    assert_eq!(web.provenance.branch.as_deref(), Some("main"));
    assert_eq!(web.provenance.revision.as_deref(), Some("0123abcd"));
    assert_eq!(web.provenance.url.as_deref(), Some("https://ci.example.com/repos/shop/web/builds/2"));
    let message = deploy::automation::commit_message(web);
    assert!(message.starts_with("Update web to 1.5.0\n\n"), "{message}");
    assert!(message.contains(&format!("\nGantry-Image: {repository}@{}\n", digests["1.5.0"])), "{message}");

    // An hour later `mature` moves too.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let updates = by_app(within("find_updates", find_updates(&environment, &registry, with_credentials, later)).await);
    assert_eq!(target(&updates["mature"]), ("1.5.0".to_owned(), digests["1.5.0"].clone()));

    // Without the registry's credentials the private application is skipped, not the others.
    let updates = by_app(within("find_updates", find_updates(&environment, &registry, |_: &str| None, SystemTime::now())).await);
    assert!(!updates.contains_key("private"));
    assert_eq!(target(&updates["web"]), ("1.5.0".to_owned(), digests["1.5.0"].clone()));

    // Once the application runs what its policy takes, there is nothing to do.
    let moved = environment_repo(&[("web", web.to.to_string(), "image_policy:\n  semver: ^1.4\n")]);
    assert!(within("find_updates", find_updates(&moved, &registry, |_: &str| None, SystemTime::now())).await.is_empty());
}
