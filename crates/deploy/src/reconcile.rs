//! One reconcile, composed from the parts: the repository's files from a folder, read; its
//! target observed; the plan; and, when asked, each change carried out. `gantry deployer plan`
//! and `apply` run one; the long-running deployer (`run`) runs one per poll.

use std::collections::BTreeMap;
use std::path::Path;

use pipeline::Diagnostic;

use crate::EnvironmentRepo;
use crate::model::{ENVIRONMENT_FILE, TargetKind};
use crate::plan::{Action, Change, content_digest, effective_order, plan, spec_digest};
use crate::read::{ReadOptions, RepoFile, is_app_file, read_repository};
use crate::target::{Deployment, DockerTarget, Target as _, TargetError};

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
    spec_digests: BTreeMap<String, String>,
    config_files: BTreeMap<String, Vec<u8>>,
    target: DockerTarget,
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

/// Reads the repository at `root` and observes its target through `docker_host` (default: the
/// target's own, else DOCKER_HOST or the local socket).
pub async fn prepare(root: &Path, docker_host: Option<&str>) -> Result<Prepared, ReconcileError> {
    let files = read_folder(root)?;
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
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
    let spec_digests: BTreeMap<String, String> =
        repository.apps.iter().map(|(name, app)| (name.clone(), spec_digest(app, &config_digests, &BTreeMap::new()))).collect();
    let kinds = repository.environment.targets.iter().map(|(name, target)| (name.clone(), target.kind)).collect();
    // One engine so far: every target must be a Docker engine, reached at one address.
    let mut hosts = Vec::new();
    for (name, target) in &repository.environment.targets {
        if target.kind == TargetKind::Swarm {
            return Err(ReconcileError::Unsupported(format!(
                "target `{name}` is a swarm: this deployer works with Docker engines only so far"
            )));
        }
        hosts.push(docker_host.map(str::to_owned).or_else(|| target.docker_host.clone()));
    }
    hosts.dedup();
    if hosts.len() > 1 {
        return Err(ReconcileError::Unsupported("the targets name several Docker engines: this deployer works with one so far".into()));
    }
    let target = DockerTarget::connect(hosts.into_iter().next().flatten().as_deref()).await?;
    let observed = target.observe(&repository.environment.name).await?;
    let changes = plan(&repository.apps, &spec_digests, &kinds, &observed);
    Ok(Prepared { repository, changes, spec_digests, config_files, target })
}

impl Prepared {
    /// Carries out every change in turn, whatever happens to the others; `revision` labels
    /// what is started.
    pub async fn apply(&self, revision: &str) -> Vec<Outcome> {
        let environment = &self.repository.environment;
        let mut outcomes = Vec::new();
        for change in &self.changes {
            let result = match (&change.action, self.repository.apps.get(&change.app)) {
                (Action::Remove { .. }, _) => self.target.remove(&environment.name, &change.app).await,
                (Action::Warn { .. }, _) | (_, None) => Ok(()),
                (_, Some(app)) => {
                    let deployment = Deployment {
                        environment: &environment.name,
                        revision,
                        app,
                        spec_digest: &self.spec_digests[&change.app],
                        config_files: &self.config_files,
                        order: effective_order(app, environment.targets.get(&app.target).map(|target| target.kind)),
                    };
                    self.target.deploy(&deployment).await
                }
            };
            match &result {
                Ok(()) => tracing::info!(app = %change.app, action = ?change.action, "applied"),
                Err(error) => tracing::warn!(app = %change.app, %error, "not applied"),
            }
            outcomes.push(Outcome { change: change.clone(), result });
        }
        outcomes
    }
}
