//! One reconcile, composed from the parts: the repository's files from a folder, read; its
//! target observed; the plan; and, when asked, each change carried out. `gantry deployer plan`
//! and `apply` run one; the long-running deployer (`run`) runs one per poll.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use pipeline::Diagnostic;

use crate::EnvironmentRepo;
use crate::history::{self, DeploymentKind, DeploymentOutcome, DeploymentRecord, History};
use crate::model::{ENVIRONMENT_FILE, TargetKind};
use crate::plan::ObservedApp;
use crate::plan::{Action, Change, content_digest, effective_order, plan, spec_digest};
use crate::read::{ReadOptions, RepoFile, is_app_file, read_repository};
use crate::secrets::SecretStore;
use crate::target::{AnyTarget, Deployment, SecretMaterial, Target as _, TargetError};

/// Larger files are not what an environment repository holds; they are listed, not read.
const MAX_READ_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the environment repository has mistakes")]
    Mistakes(Vec<Diagnostic>),
    #[error("cannot read the environment repository: {0}")]
    Read(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// A repository read and its target observed: the plan, and what applying it needs.
pub struct Prepared {
    pub desired: Arc<Desired>,
    pub targets: Arc<Targets>,
    pub changes: Vec<Change>,
    /// What the targets run, as observed.
    pub observed: Vec<ObservedApp>,
    /// Application → the connection it was observed on.
    observed_on: BTreeMap<String, usize>,
}

/// What one change came to.
#[derive(Debug)]
pub struct Outcome {
    pub change: Change,
    pub result: Result<(), TargetError>,
    /// The deployment as recorded; `None` for drift only warned about.
    pub record: Option<DeploymentRecord>,
}

/// The files under `root` (`.git` skipped), paths relative to it. Only the environment file
/// and application files are read as text; the rest (configs) are listed.
pub fn read_folder(root: &Path) -> Result<Vec<RepoFile>, ReconcileError> {
    let mut files = Vec::new();
    collect(root, root, &mut files).map_err(|error| ReconcileError::Read(error.to_string()))?;
    Ok(files)
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<RepoFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() && entry.file_name() != ".git" {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let wanted = relative == ENVIRONMENT_FILE || is_app_file(&relative);
            let text = if wanted && entry.metadata()?.len() <= MAX_READ_BYTES {
                std::fs::read_to_string(&path).map_err(|error| std::io::Error::other(format!("{}: {error}", path.display())))?
            } else {
                String::new()
            };
            files.push(RepoFile { path: relative, text });
        }
    }
    Ok(())
}

/// What a reconcile may use beyond the repository's files.
#[derive(Default)]
pub struct ReconcileOptions<'a> {
    /// Every target's engine is reached here instead of its own address (tests, a tunnel).
    pub docker_host: Option<&'a str>,
    /// The deployer's secret store; without one, an application that names a secret fails.
    pub secrets: Option<&'a SecretStore>,
    /// Only the targets of this name or kind (`docker`, `swarm`) and their applications: a
    /// deployer inside one of an environment's targets leaves the others to theirs.
    pub only_target: Option<&'a str>,
}

/// Where each deployment is recorded, when it starts and again when it ends.
pub trait Journal: Sync {
    fn record(&self, record: &DeploymentRecord);
}

impl Journal for History {
    fn record(&self, record: &DeploymentRecord) {
        if let Err(error) = self.write(record) {
            tracing::warn!(%error, "cannot record the deployment");
        }
    }
}

/// Records nothing (`gantry deployer apply` without a data folder).
pub struct NoJournal;

impl Journal for NoJournal {
    fn record(&self, _: &DeploymentRecord) {}
}

/// The commit being reconciled and who made it.
#[derive(Clone, Debug, Default)]
pub struct Revision {
    pub id: String,
    pub author: String,
}

/// What the repository at one revision wants, read once: the applications, their spec
/// digests, and what deploying them needs (config files, secret values, registry logins).
pub struct Desired {
    pub repository: EnvironmentRepo,
    /// Applications of the repository on targets this deployer leaves to others
    /// (`only_target`): not in `repository`, and not this deployer's to promote.
    pub elsewhere: BTreeSet<String>,
    pub spec_digests: BTreeMap<String, String>,
    kinds: BTreeMap<String, TargetKind>,
    config_files: BTreeMap<String, Vec<u8>>,
    secrets: BTreeMap<String, SecretMaterial>,
    /// Registry logins by host.
    registry_logins: BTreeMap<String, docker::RegistryCredentials>,
}

/// Reads the repository at `root`: the files, the model, config contents, secret values and
/// versions, spec digests. Every mistake of the repository is in the error.
pub fn read_desired(root: &Path, options: &ReconcileOptions<'_>) -> Result<Desired, ReconcileError> {
    let files = read_folder(root)?;
    let store_error = |error: crate::secrets::SecretStoreError| ReconcileError::Read(error.to_string());
    let known_secrets = options.secrets.map(SecretStore::names).transpose().map_err(store_error)?;
    let (repository, diagnostics) = read_repository(&files, &ReadOptions { known_secrets });
    let Some(mut repository) = repository else { return Err(ReconcileError::Mistakes(diagnostics)) };
    let mut elsewhere = BTreeSet::new();
    if let Some(only) = options.only_target {
        let kind_name = |kind: TargetKind| match kind {
            TargetKind::Docker => "docker",
            TargetKind::Swarm => "swarm",
        };
        repository.environment.targets.retain(|name, target| name == only || kind_name(target.kind) == only);
        if repository.environment.targets.is_empty() {
            return Err(ReconcileError::Unsupported(format!("the environment has no target named `{only}` or of that kind")));
        }
        let targets = repository.environment.targets.clone();
        elsewhere = repository.apps.values().filter(|app| !targets.contains_key(&app.target)).map(|app| app.name.clone()).collect();
        repository.apps.retain(|_, app| targets.contains_key(&app.target));
    }
    let mut config_files = BTreeMap::new();
    let mut config_digests = BTreeMap::new();
    for app in repository.apps.values() {
        for config in &app.configs {
            let bytes =
                std::fs::read(root.join(&config.file)).map_err(|error| ReconcileError::Read(format!("{}: {error}", config.file)))?;
            config_digests.insert(config.file.clone(), content_digest(&bytes));
            config_files.insert(config.file.clone(), bytes);
        }
    }
    let wanted: BTreeSet<String> = repository.apps.values().flat_map(|app| app.secrets.iter().map(|secret| secret.name.clone())).collect();
    let secrets = match options.secrets {
        Some(store) if !wanted.is_empty() => store.materials(&wanted).map_err(store_error)?,
        _ => BTreeMap::new(),
    };
    let registry_logins: BTreeMap<String, docker::RegistryCredentials> = match options.secrets {
        Some(store) => store
            .registries()
            .map_err(store_error)?
            .into_iter()
            .map(|login| (login.host, docker::RegistryCredentials { username: login.username, password: login.password }))
            .collect(),
        None => BTreeMap::new(),
    };
    let secret_versions = secrets.iter().map(|(name, material)| (name.clone(), material.version.clone())).collect();
    let spec_digests: BTreeMap<String, String> =
        repository.apps.iter().map(|(name, app)| (name.clone(), spec_digest(app, &config_digests, &secret_versions))).collect();
    let kinds = repository.environment.targets.iter().map(|(name, target)| (name.clone(), target.kind)).collect();
    Ok(Desired { repository, elsewhere, spec_digests, kinds, config_files, secrets, registry_logins })
}

/// Connections to the environment's targets; targets that are one engine (the same kind at
/// the same address) share one, observed once. Kept across passes by the deployer.
pub struct Targets {
    connections: Vec<Connection>,
    /// Target name → index in `connections`.
    connection_of_target: BTreeMap<String, usize>,
}

impl Targets {
    /// Connects to every target of `desired`'s environment.
    pub async fn connect(desired: &Desired, docker_host: Option<&str>) -> Result<Targets, ReconcileError> {
        let mut connections: Vec<Connection> = Vec::new();
        let mut connection_of_target = BTreeMap::new();
        for (name, target) in &desired.repository.environment.targets {
            let host = docker_host.map(str::to_owned).or_else(|| target.docker_host.clone());
            let index = match connections.iter().position(|connection| connection.kind == target.kind && connection.host == host) {
                Some(index) => index,
                None => {
                    let connected = AnyTarget::connect(target.kind, host.as_deref()).await?;
                    connections.push(Connection { kind: target.kind, host, target: connected });
                    connections.len() - 1
                }
            };
            connection_of_target.insert(name.clone(), index);
        }
        Ok(Targets { connections, connection_of_target })
    }

    /// Whether these connections serve exactly `desired`'s targets.
    pub fn serve(&self, desired: &Desired, docker_host: Option<&str>) -> bool {
        desired.repository.environment.targets.len() == self.connection_of_target.len()
            && desired.repository.environment.targets.iter().all(|(name, target)| {
                let host = docker_host.map(str::to_owned).or_else(|| target.docker_host.clone());
                self.connection_of_target
                    .get(name)
                    .is_some_and(|&index| self.connections[index].kind == target.kind && self.connections[index].host == host)
            })
    }
}

/// What the targets run, against `desired`: the plan.
pub async fn observe(desired: Arc<Desired>, targets: Arc<Targets>) -> Result<Prepared, ReconcileError> {
    let mut observed = Vec::new();
    let mut observed_on = BTreeMap::new();
    for (index, connection) in targets.connections.iter().enumerate() {
        for app in connection.target.observe(&desired.repository.environment.name).await? {
            observed_on.insert(app.name.clone(), index);
            observed.push(app);
        }
    }
    let changes = plan(&desired.repository.apps, &desired.spec_digests, &desired.kinds, &observed);
    Ok(Prepared { desired, targets, changes, observed, observed_on })
}

/// Reads the repository at `root` and observes its targets.
pub async fn prepare(root: &Path, options: &ReconcileOptions<'_>) -> Result<Prepared, ReconcileError> {
    let desired = read_desired(root, options)?;
    let targets = Targets::connect(&desired, options.docker_host).await?;
    observe(Arc::new(desired), Arc::new(targets)).await
}

struct Connection {
    kind: TargetKind,
    host: Option<String>,
    target: AnyTarget,
}

impl Prepared {
    /// Carries out every change in turn, whatever happens to the others, and records each in
    /// the history; what is started is labelled with `revision`.
    pub async fn apply(&self, revision: &Revision, journal: &dyn Journal) -> Vec<Outcome> {
        let environment = &self.desired.repository.environment;
        let mut outcomes = Vec::new();
        for change in &self.changes {
            if matches!(change.action, Action::Warn { .. }) {
                outcomes.push(Outcome { change: change.clone(), result: Ok(()), record: None });
                continue;
            }
            let before = self.observed.iter().find(|app| app.name == change.app);
            let desired = self.desired.repository.apps.get(&change.app);
            let mut record = DeploymentRecord {
                id: history::new_id(),
                environment: environment.name.clone(),
                app: change.app.clone(),
                kind: match change.action {
                    Action::Create { .. } => DeploymentKind::Create,
                    Action::Update { .. } => DeploymentKind::Update,
                    Action::Remove { .. } => DeploymentKind::Remove,
                    Action::Heal { .. } | Action::Warn { .. } => DeploymentKind::Heal,
                },
                from_image: before.map(|app| app.image.clone()),
                to_image: desired.map(|app| app.image.to_string()),
                from_revision: before.map(|app| app.revision.clone()).filter(|revision| !revision.is_empty()),
                revision: revision.id.clone(),
                author: revision.author.clone(),
                started_at: history::now_ms(),
                finished_at: None,
                outcome: DeploymentOutcome::Running,
                reason: None,
            };
            journal.record(&record);
            let result = self.apply_change(change, revision).await;
            record.finished_at = Some(history::now_ms());
            match &result {
                Ok(()) => {
                    record.outcome = DeploymentOutcome::Succeeded;
                    tracing::info!(app = %change.app, action = ?change.action, "applied");
                }
                Err(error) => {
                    record.outcome = DeploymentOutcome::Failed;
                    record.reason = Some(error.to_string());
                    tracing::warn!(app = %change.app, %error, "not applied");
                }
            }
            journal.record(&record);
            outcomes.push(Outcome { change: change.clone(), result, record: Some(record) });
        }
        outcomes
    }

    async fn apply_change(&self, change: &Change, revision: &Revision) -> Result<(), TargetError> {
        let (desired, targets) = (&*self.desired, &*self.targets);
        let environment = &desired.repository.environment;
        let observed_on = self.observed_on.get(&change.app).map(|&index| &targets.connections[index].target);
        let Some(app) = desired.repository.apps.get(&change.app) else {
            return match observed_on {
                Some(target) => target.remove(&environment.name, &change.app).await,
                None => Ok(()),
            };
        };
        let index = targets.connection_of_target[&app.target];
        let target = &targets.connections[index].target;
        let deployment = Deployment {
            environment: &environment.name,
            revision: &revision.id,
            app,
            spec_digest: &desired.spec_digests[&change.app],
            config_files: &desired.config_files,
            secrets: &desired.secrets,
            pull_credentials: desired.registry_logins.get(docker::registry_host(&app.image.repository)),
            order: effective_order(app, environment.targets.get(&app.target).map(|target| target.kind)),
            // A new version is watched for a while before it counts as deployed; starting what
            // was not running, or putting back what drifted, is not a new version.
            monitor: if matches!(change.action, Action::Update { .. }) { app.update.monitor } else { std::time::Duration::ZERO },
        };
        target.deploy(&deployment).await?;
        // Moved to another target: what ran on the old one goes once the new one is healthy.
        if let Some(&old) = self.observed_on.get(&change.app)
            && old != index
        {
            targets.connections[old].target.remove(&environment.name, &change.app).await?;
        }
        Ok(())
    }
}
