//! Environment repositories on disk: `gantry lint` on one (a folder with `environment.yml`),
//! its files read and checked by `deploy` with paths shown as given on the command line; and
//! `gantry deployer plan`, what it would change on its targets.

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

/// `gantry deployer plan`: the repository at `root` against what its targets run. Exit 0 with
/// the plan printed, or 1 with the repository's mistakes.
pub(crate) fn print_plan(root: &Path, docker_host: Option<&str>) -> anyhow::Result<u8> {
    use deploy::target::Target as _;
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    let (repository, diagnostics) = deploy::read_repository(&files, &deploy::ReadOptions::default());
    let Some(repository) = repository else {
        let (diagnostics, sources) = lint(root)?;
        eprint!("{}", crate::output::render_diagnostics(&diagnostics, &sources, true, crate::output::use_color(&std::io::stderr())));
        return Ok(1);
    };
    drop(diagnostics);
    let mut config_digests = std::collections::BTreeMap::new();
    for app in repository.apps.values() {
        for config in &app.configs {
            let bytes = std::fs::read(root.join(&config.file)).with_context(|| format!("cannot read {}", config.file))?;
            config_digests.insert(config.file.clone(), deploy::plan::content_digest(&bytes));
        }
    }
    let spec_digests = repository
        .apps
        .iter()
        .map(|(name, app)| (name.clone(), deploy::plan::spec_digest(app, &config_digests, &std::collections::BTreeMap::new())))
        .collect();
    let kinds = repository.environment.targets.iter().map(|(name, target)| (name.clone(), target.kind)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let observed = runtime.block_on(async {
        let mut observed = Vec::new();
        for (name, target) in &repository.environment.targets {
            if target.kind == deploy::model::TargetKind::Swarm {
                anyhow::bail!("target `{name}` is a swarm: this deployer observes Docker engines only so far");
            }
            let host = docker_host.map(str::to_owned).or_else(|| target.docker_host.clone());
            let engine = deploy::target::DockerTarget::connect(host.as_deref())
                .await
                .with_context(|| format!("cannot reach the Docker engine of target `{name}`"))?;
            observed.extend(engine.observe(&repository.environment.name).await?);
        }
        Ok(observed)
    })?;
    let changes = deploy::plan::plan(&repository.apps, &spec_digests, &kinds, &observed);
    print!("{}", deploy::plan::render(&changes));
    Ok(0)
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
