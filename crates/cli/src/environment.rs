//! Environment repositories on disk: `gantry lint` on one (a folder with `environment.yml`),
//! its files read and checked by `deploy` with paths shown as given on the command line; and
//! `gantry deployer plan`, what it would change on its targets.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use deploy::model::{APPS_FOLDER, ENVIRONMENT_FILE};
use deploy::read::{RepoFile, is_app_file};
use pipeline::{Diagnostic, SourceFile};

/// Larger files are not what an environment repository holds; they are listed, not read.
const MAX_READ_BYTES: u64 = 1024 * 1024;

pub(crate) fn is_environment_repository(path: &Path) -> bool {
    path.join(ENVIRONMENT_FILE).is_file()
}

/// Every diagnostic of the repository at `root`, and its YAML files for showing source lines.
pub(crate) fn lint(root: &Path) -> anyhow::Result<(Vec<Diagnostic>, Vec<SourceFile>)> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    let (_, mut diagnostics) = deploy::read_repository(&files, &deploy::ReadOptions::default());
    let shown = |path: &str| {
        let joined = root.join(path);
        let text = joined.to_string_lossy();
        text.strip_prefix("./").unwrap_or(&text).to_string()
    };
    for diagnostic in &mut diagnostics {
        diagnostic.file = shown(&diagnostic.file);
    }
    let sources = files
        .into_iter()
        .filter(|file| file.path == ENVIRONMENT_FILE || is_app_file(&file.path))
        .map(|file| SourceFile::new(shown(&file.path), file.text))
        .collect();
    Ok((diagnostics, sources))
}

/// A repository read from disk and what its targets run: what `plan` and `apply` start from.
struct Reconcile {
    repository: deploy::EnvironmentRepo,
    spec_digests: BTreeMap<String, String>,
    config_files: BTreeMap<String, Vec<u8>>,
    changes: Vec<deploy::plan::Change>,
    target: deploy::target::DockerTarget,
}

/// Reads the repository at `root` and observes its targets; `None` (mistakes printed) when the
/// repository has errors.
async fn reconcile(root: &Path, docker_host: Option<&str>) -> anyhow::Result<Option<Reconcile>> {
    use deploy::target::Target as _;
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    let (repository, _) = deploy::read_repository(&files, &deploy::ReadOptions::default());
    let Some(repository) = repository else {
        let (diagnostics, sources) = lint(root)?;
        eprint!("{}", crate::output::render_diagnostics(&diagnostics, &sources, true, crate::output::use_color(&std::io::stderr())));
        return Ok(None);
    };
    let mut config_files = BTreeMap::new();
    let mut config_digests = BTreeMap::new();
    for app in repository.apps.values() {
        for config in &app.configs {
            let bytes = std::fs::read(root.join(&config.file)).with_context(|| format!("cannot read {}", config.file))?;
            config_digests.insert(config.file.clone(), deploy::plan::content_digest(&bytes));
            config_files.insert(config.file.clone(), bytes);
        }
    }
    let spec_digests: BTreeMap<String, String> = repository
        .apps
        .iter()
        .map(|(name, app)| (name.clone(), deploy::plan::spec_digest(app, &config_digests, &BTreeMap::new())))
        .collect();
    let kinds = repository.environment.targets.iter().map(|(name, target)| (name.clone(), target.kind)).collect();
    // One engine for now: every target of the repository must be a Docker engine, and they are
    // observed through the first one's address (or --docker-host).
    let mut hosts = Vec::new();
    for (name, target) in &repository.environment.targets {
        if target.kind == deploy::model::TargetKind::Swarm {
            anyhow::bail!("target `{name}` is a swarm: this deployer works with Docker engines only so far");
        }
        hosts.push(docker_host.map(str::to_owned).or_else(|| target.docker_host.clone()));
    }
    hosts.dedup();
    if hosts.len() > 1 {
        anyhow::bail!("the targets name several Docker engines: this deployer works with one engine so far");
    }
    let host = hosts.into_iter().next().flatten();
    let target = deploy::target::DockerTarget::connect(host.as_deref()).await.context("cannot reach the Docker engine")?;
    let observed = target.observe(&repository.environment.name).await?;
    let changes = deploy::plan::plan(&repository.apps, &spec_digests, &kinds, &observed);
    Ok(Some(Reconcile { repository, spec_digests, config_files, changes, target }))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// `gantry deployer plan`: the repository at `root` against what its targets run. Exit 0 with
/// the plan printed, or 1 with the repository's mistakes.
pub(crate) fn print_plan(root: &Path, docker_host: Option<&str>) -> anyhow::Result<u8> {
    let Some(reconcile) = runtime()?.block_on(reconcile(root, docker_host))? else { return Ok(1) };
    print!("{}", deploy::plan::render(&reconcile.changes));
    Ok(0)
}

/// `gantry deployer apply`: the plan, then each change carried out in turn. Exit 1 when the
/// repository has mistakes or a change failed (the others are still tried).
pub(crate) fn apply(root: &Path, docker_host: Option<&str>) -> anyhow::Result<u8> {
    use deploy::plan::Action;
    runtime()?.block_on(async {
        let Some(reconcile) = reconcile(root, docker_host).await? else { return Ok(1) };
        let revision = revision_of(root);
        let environment = &reconcile.repository.environment;
        let mut failed = false;
        for change in &reconcile.changes {
            print!("{}", deploy::plan::render(std::slice::from_ref(change)));
            let result = match (&change.action, reconcile.repository.apps.get(&change.app)) {
                (Action::Remove { .. }, _) => reconcile.target.remove(&environment.name, &change.app).await,
                (Action::Warn { .. }, _) | (_, None) => Ok(()),
                (_, Some(app)) => {
                    let kind = environment.targets.get(&app.target).map(|target| target.kind);
                    let deployment = deploy::target::Deployment {
                        environment: &environment.name,
                        revision: &revision,
                        app,
                        spec_digest: &reconcile.spec_digests[&change.app],
                        config_files: &reconcile.config_files,
                        order: deploy::plan::effective_order(app, kind),
                    };
                    reconcile.target.deploy(&deployment).await
                }
            };
            match result {
                Ok(()) => println!("  done"),
                Err(error) => {
                    println!("  failed: {error}");
                    failed = true;
                }
            }
        }
        if reconcile.changes.is_empty() {
            print!("{}", deploy::plan::render(&[]));
        }
        Ok(u8::from(failed))
    })
}

/// The repository's commit, or `working-tree` for a folder that is not a git checkout.
fn revision_of(root: &Path) -> String {
    std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "working-tree".to_owned())
}

/// The files under `dir`, paths relative to `root`; `.git` is skipped. Only the environment
/// file and application files need their text; the rest (configs) need to exist.
fn collect(root: &Path, dir: &Path, files: &mut Vec<RepoFile>) -> anyhow::Result<()> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() && entry.file_name() != ".git" {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let wanted = relative == ENVIRONMENT_FILE || (relative.starts_with(APPS_FOLDER) && is_app_file(&relative));
            let text = if wanted && entry.metadata()?.len() <= MAX_READ_BYTES {
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?
            } else {
                String::new()
            };
            files.push(RepoFile { path: relative, text });
        }
    }
    Ok(())
}
