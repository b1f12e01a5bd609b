//! Environment repositories on disk: `gantry lint` on one (a folder with `environment.yml`),
//! with paths shown as given on the command line; `gantry deployer plan` and `apply`, one
//! reconcile of a local folder; and `gantry deployer`, the long-running one.

use std::path::Path;

use anyhow::Context as _;
use deploy::model::ENVIRONMENT_FILE;
use deploy::read::is_app_file;
use deploy::reconcile::{ReconcileError, prepare, read_folder};
use pipeline::{Diagnostic, SourceFile};

pub(crate) fn is_environment_repository(path: &Path) -> bool {
    path.join(ENVIRONMENT_FILE).is_file()
}

/// Every diagnostic of the repository at `root`, and its YAML files for showing source lines.
pub(crate) fn lint(root: &Path) -> anyhow::Result<(Vec<Diagnostic>, Vec<SourceFile>)> {
    let files = read_folder(root)?;
    let (_, diagnostics) = deploy::read_repository(&files, &deploy::ReadOptions::default());
    Ok(shown(root, diagnostics, files))
}

fn shown(root: &Path, mut diagnostics: Vec<Diagnostic>, files: Vec<deploy::RepoFile>) -> (Vec<Diagnostic>, Vec<SourceFile>) {
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
    (diagnostics, sources)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// The prepared reconcile, or exit 1 with the repository's mistakes printed.
async fn prepared(root: &Path, docker_host: Option<&str>) -> anyhow::Result<Option<deploy::reconcile::Prepared>> {
    let options = deploy::reconcile::ReconcileOptions { docker_host, ..Default::default() };
    match prepare(root, &options).await {
        Ok(prepared) => Ok(Some(prepared)),
        Err(ReconcileError::Mistakes(diagnostics)) => {
            let (diagnostics, sources) = shown(root, diagnostics, read_folder(root)?);
            eprint!("{}", crate::output::render_diagnostics(&diagnostics, &sources, true, crate::output::use_color(&std::io::stderr())));
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// `gantry deployer plan`: the repository at `root` against what its targets run. Exit 0 with
/// the plan printed, or 1 with the repository's mistakes.
pub(crate) fn print_plan(root: &Path, docker_host: Option<&str>) -> anyhow::Result<u8> {
    let Some(prepared) = runtime()?.block_on(prepared(root, docker_host))? else { return Ok(1) };
    print!("{}", deploy::plan::render(&prepared.changes));
    Ok(0)
}

/// `gantry deployer apply`: the plan, then each change carried out in turn. Exit 1 when the
/// repository has mistakes or a change failed (the others are still tried).
pub(crate) fn apply(root: &Path, docker_host: Option<&str>) -> anyhow::Result<u8> {
    runtime()?.block_on(async {
        let Some(prepared) = prepared(root, docker_host).await? else { return Ok(1) };
        if prepared.changes.is_empty() {
            print!("{}", deploy::plan::render(&[]));
        }
        let mut failed = false;
        let revision = deploy::reconcile::Revision { id: revision_of(root), author: String::new() };
        for outcome in prepared.apply(&revision, None).await {
            print!("{}", deploy::plan::render(std::slice::from_ref(&outcome.change)));
            match outcome.result {
                Ok(()) => println!("  done"),
                Err(error) => {
                    println!("  failed: {error}");
                    failed = true;
                }
            }
        }
        Ok(u8::from(failed))
    })
}

/// `gantry deployer`: reconciles the repository at `options.repo` every poll until SIGTERM or
/// Ctrl-C.
pub(crate) fn run(options: deploy::run::RunOptions) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&options.data).with_context(|| format!("cannot make the data folder {}", options.data.display()))?;
    runtime()?.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let signals = stop.clone();
        tokio::spawn(async move {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {}
            }
            signals.cancel();
        });
        tracing::info!(repo = %options.repo, branch = %options.branch, poll = ?options.poll, "deployer started");
        deploy::run::run(&options, stop).await;
        tracing::info!("deployer stopped");
        Ok(0)
    })
}

/// The repository's commit, or `working-tree` for a folder that is not a git checkout.
fn revision_of(root: &Path) -> String {
    gitcmd::output_in(root, &["rev-parse", "HEAD"])
        .map(|output| String::from_utf8_lossy(&output).trim().to_owned())
        .unwrap_or_else(|_| "working-tree".to_owned())
}
