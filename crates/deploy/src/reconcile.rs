//! One reconcile, composed from the parts: the repository's files from a folder, read; its
//! target observed; the plan; and, when asked, each change carried out. `gantry deployer plan`
//! and `apply` run one; the long-running deployer (`run`) runs one per poll.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
    pub repository: EnvironmentRepo,
    pub changes: Vec<Change>,
    /// What the targets run, as observed.
    pub observed: Vec<ObservedApp>,
    pub spec_digests: BTreeMap<String, String>,
    config_files: BTreeMap<String, Vec<u8>>,
    secrets: BTreeMap<String, SecretMaterial>,
    connections: Vec<Connection>,
    /// Target name → index in `connections`.
    connection_of_target: BTreeMap<String, usize>,
    /// Application → the connection it was observed on.
    observed_on: BTreeMap<String, usize>,
}

/// What one change came to.
#[derive(Debug)]
pub struct Outcome {
    pub change: Change,
    pub result: Result<(), TargetError>,
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
    /// Where deployments are recorded.
    pub history: Option<&'a History>,
}

/// The commit being reconciled and who made it.
#[derive(Clone, Debug, Default)]
pub struct Revision {
    pub id: String,
    pub author: String,
}

/// Reads the repository at `root` and observes its targets.
pub async fn prepare(root: &Path, options: &ReconcileOptions<'_>) -> Result<Prepared, ReconcileError> {
    let files = read_folder(root)?;
    let known_secrets = match options.secrets {
        Some(store) => Some(store.names().map_err(|error| ReconcileError::Read(error.to_string()))?),
        None => None,
    };
    let (repository, diagnostics) = read_repository(&files, &ReadOptions { known_secrets });
    let Some(repository) = repository else { return Err(ReconcileError::Mistakes(diagnostics)) };
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
        Some(store) => store.materials(&wanted).map_err(|error| ReconcileError::Read(error.to_string()))?,
        None => BTreeMap::new(),
    };
    let secret_versions = secrets.iter().map(|(name, material)| (name.clone(), material.version.clone())).collect();
    let spec_digests: BTreeMap<String, String> =
        repository.apps.iter().map(|(name, app)| (name.clone(), spec_digest(app, &config_digests, &secret_versions))).collect();
    let kinds = repository.environment.targets.iter().map(|(name, target)| (name.clone(), target.kind)).collect();

    // Targets that are one engine (the same kind at the same address) are one connection,
    // observed once.
    let mut connections: Vec<Connection> = Vec::new();
    let mut connection_of_target = BTreeMap::new();
    for (name, target) in &repository.environment.targets {
        let host = options.docker_host.map(str::to_owned).or_else(|| target.docker_host.clone());
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
    let mut observed = Vec::new();
    let mut observed_on = BTreeMap::new();
    for (index, connection) in connections.iter().enumerate() {
        for app in connection.target.observe(&repository.environment.name).await? {
            observed_on.insert(app.name.clone(), index);
            observed.push(app);
        }
    }
    let changes = plan(&repository.apps, &spec_digests, &kinds, &observed);
    Ok(Prepared { repository, changes, observed, spec_digests, config_files, secrets, connections, connection_of_target, observed_on })
}

struct Connection {
    kind: TargetKind,
    host: Option<String>,
    target: AnyTarget,
}

impl Prepared {
    /// Carries out every change in turn, whatever happens to the others, and records each in
    /// the history; what is started is labelled with `revision`.
    pub async fn apply(&self, revision: &Revision, history: Option<&History>) -> Vec<Outcome> {
        let environment = &self.repository.environment;
        let mut outcomes = Vec::new();
        for change in &self.changes {
            if matches!(change.action, Action::Warn { .. }) {
                outcomes.push(Outcome { change: change.clone(), result: Ok(()) });
                continue;
            }
            let before = self.observed.iter().find(|app| app.name == change.app);
            let desired = self.repository.apps.get(&change.app);
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
            if let Some(history) = history
                && let Err(error) = history.write(&record)
            {
                tracing::warn!(%error, "cannot record the deployment");
            }
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
            if let Some(history) = history
                && let Err(error) = history.write(&record)
            {
                tracing::warn!(%error, "cannot record the deployment");
            }
            outcomes.push(Outcome { change: change.clone(), result });
        }
        outcomes
    }

    async fn apply_change(&self, change: &Change, revision: &Revision) -> Result<(), TargetError> {
        let environment = &self.repository.environment;
        let observed_on = self.observed_on.get(&change.app).map(|&index| &self.connections[index].target);
        let Some(app) = self.repository.apps.get(&change.app) else {
            return match observed_on {
                Some(target) => target.remove(&environment.name, &change.app).await,
                None => Ok(()),
            };
        };
        let index = self.connection_of_target[&app.target];
        let target = &self.connections[index].target;
        let deployment = Deployment {
            environment: &environment.name,
            revision: &revision.id,
            app,
            spec_digest: &self.spec_digests[&change.app],
            config_files: &self.config_files,
            secrets: &self.secrets,
            order: effective_order(app, environment.targets.get(&app.target).map(|target| target.kind)),
        };
        target.deploy(&deployment).await?;
        // Moved to another target: what ran on the old one goes once the new one is healthy.
        if let Some(&old) = self.observed_on.get(&change.app)
            && old != index
        {
            self.connections[old].target.remove(&environment.name, &change.app).await?;
        }
        Ok(())
    }
}
