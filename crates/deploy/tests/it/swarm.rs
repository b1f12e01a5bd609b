//! The Swarm target on a real single-node Swarm: a first deploy runs its replicas with the
//! config file and the secret mounted; rotating a secret rolls the service and removes the old
//! secret; an update whose health check fails is an error and the previous version runs
//! again; a scale or an image change by hand is drift; a create that never becomes healthy
//! leaves nothing; removing leaves nothing.
//!
//! The engine is put in a Swarm only for these tests, and back as it was found
//! (`SwarmGuard`); they take turns on it. Each test works in an environment of its own and
//! checks, by the environment's label, that nothing it made is left. Only the local busybox
//! image is used: nothing can be pulled.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use deploy::model::TargetKind;
use deploy::plan::{Action, content_digest, effective_order, plan, spec_digest};
use deploy::swarm::{SwarmTarget, service_name};
use deploy::target::{Deployment, SecretMaterial, Target as _, TargetError, labels};
use deploy::{App, ReadOptions, RepoFile, read_repository};

const BUSYBOX: &str = "gantry-test/busybox:latest";
/// The longest one deploy, removal or cleanup may take before the test fails instead of
/// hanging.
const CEILING: Duration = Duration::from_secs(120);
/// On the node the tests initialised, with the test process's id and whether the engine had
/// `docker_gwbridge` before, so that a run that died midway is cleaned up by the next.
const NODE_LABEL: &str = "io.gantry.deploy-it.swarm";

/// Runs and exits cleanly on SIGTERM (a shell as PID 1 ignores it otherwise, and every stop
/// would wait out Swarm's 10 s grace period); `healthy` makes the health check pass.
fn command(healthy: bool) -> String {
    let touch = if healthy { "touch /tmp/ok; " } else { "" };
    format!("[sh, -c, \"trap 'exit 0' TERM; {touch}sleep 3600 & wait\"]")
}

/// An application file for `web` with short health-check and rollout times.
fn web(image: &str, replicas: u32, healthy: bool, extra: &str) -> String {
    format!(
        "version: 1\nowner: {{team: web, contact: web@example.com}}\nimage: {image}\nreplicas: {replicas}\ncommand: {}\n\
         healthcheck: {{command: [test, -f, /tmp/ok], interval: 1s, timeout: 1s, retries: 2}}\n\
         update: {{order: start-first, parallelism: 1, monitor: 2s, failure_action: rollback}}\n{extra}",
        command(healthy)
    )
}

#[test]
fn a_first_deploy_runs_the_replicas_with_config_and_secret_mounted() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("first").await;
        let extra = "configs: [{file: web/settings.conf, target: /etc/web/settings.conf}]\n\
                     secrets: [{name: token, target: /run/secrets/token}]\n\
                     volumes: [data:/data]\nnetworks: [backend]\n";
        let release = environment.release(
            &web(BUSYBOX, 2, true, extra),
            &[("apps/web/settings.conf", "greeting = hello\n")],
            &[("token", "v1", "s3cret")],
        );
        within("deploy", target.deploy(&release.deployment(&environment.name))).await.expect("the first deploy");

        let observed = target.observe(&environment.name).await.expect("observe");
        assert_eq!(observed.len(), 1, "{observed:#?}");
        let web = &observed[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.spec_digest.as_deref(), Some(release.spec_digest.as_str()));
        assert_eq!(web.image, BUSYBOX);
        assert_eq!(web.desired_replicas, 2);
        assert_eq!(web.revision, "r1");
        assert!(web.since > 1_600_000_000, "{web:?}");
        assert_eq!(web.instances.len(), 2, "{web:#?}");
        assert!(web.instances.iter().all(|instance| instance.running && instance.foreign_image.is_none()), "{web:#?}");
        assert!(web.instances.iter().all(|instance| instance.health.as_deref() == Some("healthy")), "{web:#?}");
        let changes = plan(&release.apps(), &release.digests(), &kinds(), &observed);
        assert!(changes.is_empty(), "what runs is what the repository says: {changes:?}");

        let container = environment.running_container().await;
        assert_eq!(environment.exec(&container, "cat /etc/web/settings.conf").await, "greeting = hello\n");
        assert_eq!(environment.exec(&container, "stat -c '%a %u' /etc/web/settings.conf").await, "444 0\n");
        assert_eq!(environment.exec(&container, "cat /run/secrets/token").await, "s3cret");
        assert_eq!(environment.exec(&container, "stat -c '%a %u' /run/secrets/token").await, "400 0\n");
        assert_eq!(environment.exec(&container, "touch /data/kept && echo ok").await, "ok\n");

        let configs = environment.engine.list_configs(&environment.filter()).await.unwrap();
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].name, format!("{}-web-{}-settings.conf", environment.name, &content_digest(b"greeting = hello\n")[7..19]));
        let secrets = environment.engine.list_secrets(&environment.filter()).await.unwrap();
        assert_eq!(secrets.iter().map(|secret| secret.name.clone()).collect::<Vec<_>>(), [format!("{}-token-v1", environment.name)]);

        within("remove", target.remove(&environment.name, "web")).await.expect("remove");
        assert!(target.observe(&environment.name).await.unwrap().is_empty());
        assert!(environment.engine.list_configs(&environment.filter()).await.unwrap().is_empty(), "the config went with the service");
        assert!(environment.engine.list_secrets(&environment.filter()).await.unwrap().is_empty(), "the secret went with the service");
        target.prune_networks(&environment.name).await.unwrap();
        environment.finish().await;
    });
}

#[test]
fn rotating_a_secret_rolls_the_service_and_removes_the_old_secret() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("rotate").await;
        let extra = "secrets: [token]\n";
        let first = environment.release(&web(BUSYBOX, 1, true, extra), &[], &[("token", "v1", "first")]);
        within("deploy", target.deploy(&first.deployment(&environment.name))).await.expect("the first deploy");
        let rotated = environment.release(&web(BUSYBOX, 1, true, extra), &[], &[("token", "v2", "second")]);
        assert_ne!(first.spec_digest, rotated.spec_digest);
        let changes = plan(&rotated.apps(), &rotated.digests(), &kinds(), &target.observe(&environment.name).await.unwrap());
        assert!(matches!(changes.as_slice(), [change] if matches!(change.action, Action::Update { .. })), "{changes:?}");

        within("deploy", target.deploy(&rotated.deployment(&environment.name))).await.expect("the rotation");
        let observed = target.observe(&environment.name).await.unwrap();
        assert_eq!(observed[0].spec_digest.as_deref(), Some(rotated.spec_digest.as_str()));
        assert_eq!(observed[0].instances.len(), 1, "{observed:#?}");
        let secrets = environment.engine.list_secrets(&environment.filter()).await.unwrap();
        assert_eq!(
            secrets.iter().map(|secret| secret.name.clone()).collect::<Vec<_>>(),
            [format!("{}-token-v2", environment.name)],
            "the old version is gone"
        );
        let container = environment.running_container().await;
        assert_eq!(environment.exec(&container, "cat /run/secrets/token").await, "second");

        within("remove", target.remove(&environment.name, "web")).await.expect("remove");
        environment.finish().await;
    });
}

#[test]
fn an_update_that_fails_its_health_check_goes_back_to_the_previous_version() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("rollback").await;
        let image = environment.second_tag();
        let config = "environment: {VERSION: '1'}\nconfigs: [{file: web/settings.conf, target: /etc/web/settings.conf}]\n";
        let good = environment.release(&web(BUSYBOX, 2, true, config), &[("apps/web/settings.conf", "version = 1\n")], &[]);
        within("deploy", target.deploy(&good.deployment(&environment.name))).await.expect("the first deploy");

        let bad = environment.release(
            &web(&image, 2, false, &config.replace("VERSION: '1'", "VERSION: '2'")),
            &[("apps/web/settings.conf", "version = 2\n")],
            &[],
        );
        let result = within("deploy", target.deploy(&bad.deployment(&environment.name))).await;
        match result {
            Err(TargetError::Unhealthy { app, why }) => {
                assert_eq!(app, "web");
                assert!(why.contains("update rolled back") && why.contains("health check failed"), "Swarm's reason: {why}");
            }
            other => panic!("expected the new version to be unhealthy, got {other:?}"),
        }

        let observed = target.observe(&environment.name).await.unwrap();
        let web = &observed[0];
        assert_eq!(web.spec_digest.as_deref(), Some(good.spec_digest.as_str()), "the previous spec is back: {web:#?}");
        assert_eq!(web.image, BUSYBOX);
        assert_eq!(web.desired_replicas, 2);
        assert_eq!(web.instances.len(), 2, "{web:#?}");
        assert!(web.instances.iter().all(|instance| instance.foreign_image.is_none()), "{web:#?}");
        let container = environment.running_container().await;
        assert_eq!(environment.exec(&container, "echo $VERSION; cat /etc/web/settings.conf").await, "1\nversion = 1\n");
        let configs = environment.engine.list_configs(&environment.filter()).await.unwrap();
        assert_eq!(
            configs.iter().map(|config| config.name.clone()).collect::<Vec<_>>(),
            [format!("{}-web-{}-settings.conf", environment.name, &content_digest(b"version = 1\n")[7..19])],
            "the config made for the version that failed is gone, the one in force stays"
        );

        within("remove", target.remove(&environment.name, "web")).await.expect("remove");
        environment.finish().await;
    });
}

#[test]
fn a_scale_or_an_image_changed_by_hand_is_drift_and_is_healed() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("drift").await;
        let release = environment.release(&web(BUSYBOX, 1, true, ""), &[], &[]);
        within("deploy", target.deploy(&release.deployment(&environment.name))).await.expect("the first deploy");
        let service = service_name(&environment.name, "web");

        docker(&["service", "scale", "--detach", &format!("{service}=3")]);
        let observed = target.observe(&environment.name).await.unwrap();
        assert_eq!(observed[0].desired_replicas, 3);
        assert_eq!(observed[0].spec_digest.as_deref(), Some(release.spec_digest.as_str()), "the same version, more of it");
        let changes = plan(&release.apps(), &release.digests(), &kinds(), &observed);
        assert!(
            matches!(changes.as_slice(), [change] if matches!(&change.action, Action::Heal { drift } if drift[0].contains("replicas set to 3 by hand"))),
            "{changes:?}"
        );
        within("heal", target.deploy(&release.deployment(&environment.name))).await.expect("healing the scale");
        let observed = target.observe(&environment.name).await.unwrap();
        assert_eq!(observed[0].desired_replicas, 1);
        assert!(plan(&release.apps(), &release.digests(), &kinds(), &observed).is_empty(), "{observed:#?}");

        let image = environment.second_tag();
        docker(&["service", "update", "--detach", "--image", &image, &service]);
        let observed = target.observe(&environment.name).await.unwrap();
        assert!(observed[0].instances.iter().any(|instance| instance.foreign_image.as_deref() == Some(image.as_str())), "{observed:#?}");
        within("heal", target.deploy(&release.deployment(&environment.name))).await.expect("healing the image");
        let observed = target.observe(&environment.name).await.unwrap();
        assert!(observed[0].instances.iter().all(|instance| instance.foreign_image.is_none()), "{observed:#?}");

        within("remove", target.remove(&environment.name, "web")).await.expect("remove");
        environment.finish().await;
    });
}

#[test]
fn a_first_deploy_that_never_becomes_healthy_leaves_nothing() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("create").await;
        let extra = "configs: [{file: web/settings.conf, target: /etc/web/settings.conf}]\n";
        let release = environment.release(&web(BUSYBOX, 1, false, extra), &[("apps/web/settings.conf", "x = 1\n")], &[]);
        let result = within("deploy", target.deploy(&release.deployment(&environment.name))).await;
        assert!(
            matches!(&result, Err(TargetError::Unhealthy { why, .. }) if why.contains("health check failed") || why.contains("unhealthy")),
            "{result:?}"
        );
        assert!(target.observe(&environment.name).await.unwrap().is_empty());
        assert!(environment.engine.list_configs(&environment.filter()).await.unwrap().is_empty(), "its config went too");
        environment.finish().await;
    });
}

#[test]
fn the_deployer_keeps_a_swarm_as_its_repository_says_and_commits_a_rollback_swarm_made() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let environment = Environment::new("deployer").await;
        let dir = tempfile::tempdir().unwrap();
        let (bare, work) = (dir.path().join("env.git"), dir.path().join("work"));
        let git = |cwd: &std::path::Path, args: &[&str]| {
            let output = Command::new("git")
                .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap();
            assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        git(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git(dir.path(), &["init", "-q", "-b", "main", work.to_str().unwrap()]);
        std::fs::create_dir(work.join("apps")).unwrap();
        std::fs::write(
            work.join("environment.yml"),
            format!("version: 1\nname: {}\ntargets:\n  swarm: {{kind: swarm}}\ndefaults: {{require_digest: false}}\n", environment.name),
        )
        .unwrap();
        let push = |file: &str, message: &str| {
            std::fs::write(work.join("apps/web.yml"), file).unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-q", "-m", message]);
            git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        };
        let service_env = || {
            let name = service_name(&environment.name, "web");
            let output = Command::new("docker")
                .args(["service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}", &name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        push(&web(BUSYBOX, 1, true, "environment: {VERSION: '1'}\n"), "web 1");

        let stop = tokio_util::sync::CancellationToken::new();
        let options = deploy::run::RunOptions {
            repo: bare.to_str().unwrap().to_owned(),
            branch: "main".to_owned(),
            data: dir.path().join("data"),
            poll: Duration::from_millis(500),
            docker_host: None,
            listen: None,
            webhook_secret: None,
            gantry_secret: None,
            api_token: None,
            secret_key: None,
            receivers: Vec::new(),
            dry_run: false,
            target: Some("swarm".to_owned()),
            image_poll: Duration::from_secs(3600),
        };
        let deployer = tokio::spawn(deploy::run::run(options, stop.clone()));
        let bare_head = |format: &str| git(&bare, &["log", "-1", &format!("--format={format}"), "main"]);
        until("web 1 runs as a service", || service_env().contains("VERSION=1")).await;
        let target = SwarmTarget::connect(None).await.unwrap();
        let observed = target.observe(&environment.name).await.unwrap();
        assert_eq!(observed[0].revision, bare_head("%H"), "labelled with the revision it came from");

        // Version 2 never becomes healthy: Swarm rolls it back, the deployer commits that.
        push(&web(BUSYBOX, 1, false, "environment: {VERSION: '2'}\n"), "web 2");
        until("the rollback committed", || bare_head("%an") == "Gantry deployer").await;
        let message = bare_head("%B");
        assert!(message.starts_with("Roll back web"), "{message}");
        assert!(message.contains("Gantry-Failed-Image:"), "{message}");
        let file = git(&bare, &["show", "main:apps/web.yml"]);
        assert!(file.contains("VERSION: '1'"), "{file}");
        until("web 1 runs again", || service_env().contains("VERSION=1")).await;

        // Gone from the repository: the service and what it mounted go.
        git(&work, &["pull", "-q", bare.to_str().unwrap(), "main"]);
        std::fs::remove_file(work.join("apps/web.yml")).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "no more web"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        until("the service removed", || service_env().trim().is_empty()).await;
        stop.cancel();
        deployer.await.unwrap().unwrap();
        environment.finish().await;
    });
}

#[test]
fn a_service_of_an_image_in_a_private_registry_is_pulled_with_the_deployers_login() {
    let _swarm = SwarmGuard::acquire();
    run(async {
        let (target, environment) = setup("private").await;
        let text = std::fs::read_to_string("/var/lib/gantry-test/registry-auth/credentials")
            .expect("scripts/setup.sh wrote the test registry's login");
        let (username, password) = text.trim().split_once(':').unwrap();
        let login = docker::RegistryCredentials { username: username.to_owned(), password: password.to_owned() };
        let repository = format!("127.0.0.1:5001/{}/web", environment.name);
        let image = format!("{repository}:1");
        docker(&["tag", BUSYBOX, &image]);
        within("push", environment.engine.push_image(&repository, "1", Some(&login))).await.expect("pushed with the login");
        // Only the registry has it now: the node must pull, and the registry wants the login.
        docker(&["image", "rm", &image]);
        let release = environment.release(&web(&image, 1, true, ""), &[], &[]);

        let anonymous = within("deploy", target.deploy(&release.deployment(&environment.name))).await;
        assert!(anonymous.is_err(), "without the login the node cannot pull: {anonymous:?}");
        within("remove", target.remove(&environment.name, "web")).await.expect("remove");

        let deployment = Deployment { pull_credentials: Some(&login), ..release.deployment(&environment.name) };
        within("deploy", target.deploy(&deployment)).await.expect("pulled with the deployer's login");
        let observed = target.observe(&environment.name).await.unwrap();
        assert!(observed[0].instances.iter().all(|instance| instance.running), "{observed:#?}");
        within("remove", target.remove(&environment.name, "web")).await.expect("remove");
        environment.finish().await;
        let _ = Command::new("docker").args(["image", "rm", &image]).output();
    });
}

/// Until `check` holds, or a failed test once `CEILING` has passed.
async fn until(what: &str, check: impl Fn() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(test);
}

async fn setup(test: &str) -> (SwarmTarget, Environment) {
    let target = within("connecting", SwarmTarget::connect(None)).await.expect("the engine manages a Swarm now");
    (target, Environment::new(test).await)
}

/// `future`, or a failed test once `CEILING` has passed.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(CEILING, future).await.unwrap_or_else(|_| panic!("{what} did not finish within {CEILING:?}"))
}

fn kinds() -> BTreeMap<String, TargetKind> {
    BTreeMap::from([("swarm".to_owned(), TargetKind::Swarm)])
}

static ENVIRONMENTS: AtomicUsize = AtomicUsize::new(0);

/// One test's environment on the shared Swarm: everything the target makes carries its name
/// as the environment label, and goes at the end.
struct Environment {
    name: String,
    engine: docker::Engine,
    /// Image tags the test made.
    tags: Mutex<Vec<String>>,
}

/// One version of the repository: the application read from its files, and what a deployment
/// of it carries.
struct Release {
    app: App,
    spec_digest: String,
    config_files: BTreeMap<String, Vec<u8>>,
    secrets: BTreeMap<String, SecretMaterial>,
}

impl Release {
    fn deployment<'a>(&'a self, environment: &'a str) -> Deployment<'a> {
        Deployment {
            environment,
            revision: "r1",
            app: &self.app,
            spec_digest: &self.spec_digest,
            config_files: &self.config_files,
            secrets: &self.secrets,
            order: effective_order(&self.app, Some(TargetKind::Swarm)),
            monitor: self.app.update.monitor,
            pull_credentials: None,
        }
    }

    fn apps(&self) -> BTreeMap<String, App> {
        BTreeMap::from([(self.app.name.clone(), self.app.clone())])
    }

    fn digests(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.app.name.clone(), self.spec_digest.clone())])
    }
}

impl Environment {
    async fn new(test: &str) -> Environment {
        let engine = within("connecting", docker::Engine::connect()).await.expect("a Docker engine");
        let number = ENVIRONMENTS.fetch_add(1, Ordering::Relaxed);
        Environment { name: format!("it-{test}-{}-{number}", std::process::id()), engine, tags: Mutex::new(Vec::new()) }
    }

    fn filter(&self) -> Vec<String> {
        vec![format!("{}={}", labels::ENVIRONMENT, self.name)]
    }

    /// `apps/web.yml` as `app_file`, with `configs` (path, content) in the repository and
    /// `secrets` (name, version, value) in the deployer's store.
    fn release(&self, app_file: &str, configs: &[(&str, &str)], secrets: &[(&str, &str, &str)]) -> Release {
        let mut files = vec![
            RepoFile {
                path: "environment.yml".into(),
                // The local test image has no registry digest to pin.
                text: format!("version: 1\nname: {}\ntargets:\n  swarm: {{kind: swarm}}\ndefaults: {{require_digest: false}}\n", self.name),
            },
            RepoFile { path: "apps/web.yml".into(), text: app_file.to_owned() },
        ];
        files.extend(configs.iter().map(|(path, _)| RepoFile { path: (*path).to_owned(), text: String::new() }));
        let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
        assert!(!diagnostics.iter().any(pipeline::Diagnostic::is_error), "{diagnostics:?}");
        let app = repository.unwrap().apps.remove("web").unwrap();
        let config_files: BTreeMap<String, Vec<u8>> =
            configs.iter().map(|(path, content)| ((*path).to_owned(), content.as_bytes().to_vec())).collect();
        let config_digests = config_files.iter().map(|(path, content)| (path.clone(), content_digest(content))).collect();
        let secrets: BTreeMap<String, SecretMaterial> = secrets
            .iter()
            .map(|(name, version, value)| {
                ((*name).to_owned(), SecretMaterial { version: (*version).to_owned(), value: value.as_bytes().to_vec() })
            })
            .collect();
        let secret_versions = secrets.iter().map(|(name, material)| (name.clone(), material.version.clone())).collect();
        let spec_digest = spec_digest(&app, &config_digests, &secret_versions);
        Release { app, spec_digest, config_files, secrets }
    }

    /// Another tag of the busybox image: another image version, without a registry.
    fn second_tag(&self) -> String {
        let tag = format!("gantry-test/busybox:{}", self.name);
        docker(&["tag", BUSYBOX, &tag]);
        self.tags.lock().unwrap().push(tag.clone());
        tag
    }

    /// A running container of the environment's tasks (on this, the only node).
    async fn running_container(&self) -> String {
        let containers = self.engine.list_containers(&self.filter()).await.unwrap();
        containers.into_iter().find(|container| container.state == "running").map(|container| container.id).expect("a running task")
    }

    /// The output of `script` run with `sh -c` in `container`, which must succeed.
    async fn exec(&self, container: &str, script: &str) -> String {
        let command = ["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let outcome = within("exec", self.engine.exec(container, &command)).await.expect("exec");
        assert_eq!(outcome.exit_code, 0, "{script}: {}", String::from_utf8_lossy(&outcome.stderr));
        String::from_utf8_lossy(&outcome.stdout).into_owned()
    }

    /// Removes whatever the environment left and checks that nothing is left.
    async fn finish(&self) {
        within("cleanup", cleanup(&self.engine, &self.filter())).await.expect("cleanup");
        let filter = self.filter();
        let services = self.engine.list_services(&filter).await.unwrap();
        let configs = self.engine.list_configs(&filter).await.unwrap();
        let secrets = self.engine.list_secrets(&filter).await.unwrap();
        let resources = self.engine.list_labelled(&filter).await.unwrap();
        assert!(
            services.is_empty() && configs.is_empty() && secrets.is_empty() && resources.is_empty(),
            "{} leaked: {services:#?} {configs:#?} {secrets:#?} {resources:#?}",
            self.name
        );
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // After a failure too; the test's runtime may be gone, so on one of our own.
        let filter = self.filter();
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move { cleanup(&docker::Engine::connect().await?, &filter).await })
        });
        if let Ok(Err(error)) = cleaned.join() {
            eprintln!("cleanup failed: {error}");
        }
        for tag in self.tags.lock().map(|tags| tags.clone()).unwrap_or_default() {
            let _ = Command::new("docker").args(["image", "rm", &tag]).output();
        }
    }
}

/// Removes the services carrying `filter`, waits until their containers are gone, then their
/// configs, secrets, networks and volumes.
async fn cleanup(engine: &docker::Engine, filter: &[String]) -> Result<(), docker::DockerError> {
    for service in engine.list_services(filter).await? {
        engine.remove_service(&service.id).await?;
    }
    for _ in 0..240 {
        if engine.list_containers(filter).await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for config in engine.list_configs(filter).await? {
        engine.remove_config(&config.id).await?;
    }
    for secret in engine.list_secrets(filter).await? {
        engine.remove_secret(&secret.id).await?;
    }
    engine.remove_labelled(filter).await.map(|_| ())
}

/// Runs the docker CLI, which must succeed; its output.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The engine in a Swarm while any test holds it, one test at a time. The first holder puts
/// an engine that is in none into one (`docker swarm init`); the last one out leaves it again
/// and removes the `docker_gwbridge` network that init made. An engine that was in a Swarm
/// already is left in it.
struct SwarmGuard {
    _turn: MutexGuard<'static, ()>,
}

/// How many tests hold or wait for the Swarm, and what to undo when the last one goes.
struct Holders {
    count: usize,
    made: Option<MadeSwarm>,
}

/// A Swarm the tests initialised.
struct MadeSwarm {
    remove_gateway_bridge: bool,
}

static HOLDERS: Mutex<Holders> = Mutex::new(Holders { count: 0, made: None });
static TURN: Mutex<()> = Mutex::new(());

impl SwarmGuard {
    fn acquire() -> SwarmGuard {
        {
            let mut holders = HOLDERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if holders.count == 0 {
                holders.made = join_swarm();
            }
            // Counted before waiting for the turn, so the Swarm stays while tests queue.
            holders.count += 1;
        }
        // A test that failed while holding the turn poisoned it; the next still goes.
        SwarmGuard { _turn: TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        let mut holders = HOLDERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        holders.count -= 1;
        if holders.count == 0
            && let Some(made) = holders.made.take()
        {
            leave_swarm(&made);
        }
    }
}

/// Puts the engine in a Swarm when it is in none; what to undo, when it did. A Swarm that a
/// test process which died midway made (its label names a process that is gone) is taken
/// over, so that this run leaves it.
fn join_swarm() -> Option<MadeSwarm> {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    match state.trim() {
        "inactive" => {
            let bridge_existed =
                Command::new("docker").args(["network", "inspect", "docker_gwbridge"]).output().is_ok_and(|output| output.status.success());
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
            let made = MadeSwarm { remove_gateway_bridge: !bridge_existed };
            let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
            let labelled = Command::new("docker")
                .args(["node", "update", "--label-add", &format!("{NODE_LABEL}={}:{bridge_existed}", std::process::id()), node.trim()])
                .output();
            if !labelled.is_ok_and(|output| output.status.success()) {
                leave_swarm(&made);
                panic!("cannot label the Swarm's node");
            }
            Some(made)
        }
        "active" => {
            let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
            let label = docker(&["node", "inspect", node.trim(), "--format", &format!("{{{{index .Spec.Labels \"{NODE_LABEL}\"}}}}")]);
            let (pid, bridge_existed) = label.trim().split_once(':')?;
            let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
            gone.then_some(MadeSwarm { remove_gateway_bridge: bridge_existed != "true" })
        }
        other => panic!("the engine's Swarm is `{other}`; these tests need it inactive (or active)"),
    }
}

fn leave_swarm(made: &MadeSwarm) {
    docker(&["swarm", "leave", "--force"]);
    if made.remove_gateway_bridge {
        // Left behind by `swarm leave`; the engine had none before.
        let _ = Command::new("docker").args(["network", "rm", "docker_gwbridge"]).output();
    }
}
