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

/// Every diagnostic of the repository at `root` (secret names checked against the store in
/// `deployer_data` when given), and its YAML files for showing source lines.
pub(crate) fn lint(root: &Path, deployer_data: Option<&Path>) -> anyhow::Result<(Vec<Diagnostic>, Vec<SourceFile>)> {
    let files = read_folder(root)?;
    let known_secrets = match deployer_data {
        Some(data) if data.join("secrets.json").exists() => Some(deploy::secrets::SecretStore::names_in(data)?),
        // A deployer with no secrets yet: every name is unknown.
        Some(data) if data.is_dir() => Some(std::collections::BTreeSet::new()),
        Some(data) => anyhow::bail!("{} is not a deployer's data folder", data.display()),
        None => None,
    };
    let (_, diagnostics) = deploy::read_repository(&files, &deploy::ReadOptions { known_secrets });
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

/// The deployer's secret store in `data`, when that folder exists (`plan` and `apply` on a
/// machine without a deployer have none).
fn secret_store(data: &Path, key: Option<&str>) -> anyhow::Result<Option<deploy::secrets::SecretStore>> {
    if !data.is_dir() {
        return Ok(None);
    }
    Ok(Some(deploy::secrets::SecretStore::open(data, key)?))
}

/// The prepared reconcile, or exit 1 with the repository's mistakes printed.
async fn prepared(
    root: &Path,
    docker_host: Option<&str>,
    secrets: Option<&deploy::secrets::SecretStore>,
) -> anyhow::Result<Option<deploy::reconcile::Prepared>> {
    let options = deploy::reconcile::ReconcileOptions { docker_host, secrets, only_target: None };
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
pub(crate) fn print_plan(root: &Path, docker_host: Option<&str>, data: &Path, key: Option<&str>) -> anyhow::Result<u8> {
    let secrets = secret_store(data, key)?;
    let Some(prepared) = runtime()?.block_on(prepared(root, docker_host, secrets.as_ref()))? else { return Ok(1) };
    print!("{}", deploy::plan::render(&prepared.changes));
    Ok(0)
}

/// `gantry deployer apply`: the plan, then each change carried out in turn. Exit 1 when the
/// repository has mistakes or a change failed (the others are still tried).
pub(crate) fn apply(root: &Path, docker_host: Option<&str>, data: &Path, key: Option<&str>) -> anyhow::Result<u8> {
    let secrets = secret_store(data, key)?;
    runtime()?.block_on(async {
        let Some(prepared) = prepared(root, docker_host, secrets.as_ref()).await? else { return Ok(1) };
        if prepared.changes.is_empty() {
            print!("{}", deploy::plan::render(&[]));
        }
        let mut failed = false;
        let revision = deploy::reconcile::Revision { id: revision_of(root), author: String::new() };
        for outcome in prepared.apply(&revision, &deploy::reconcile::NoJournal).await {
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
        deploy::run::run(options, stop).await?;
        tracing::info!("deployer stopped");
        Ok(0)
    })
}

/// `gantry deployer secret add`.
pub(crate) fn secret_add(data: &Path, key: Option<&str>, name: &str, value: &str) -> anyhow::Result<u8> {
    let store = deploy::secrets::SecretStore::open(data, key)?;
    match store.set(name, value.as_bytes())? {
        deploy::secrets::SetOutcome::Created => println!("secret {name} added"),
        deploy::secrets::SetOutcome::Rotated => println!("secret {name} changed: the applications using it roll on the next reconcile"),
        deploy::secrets::SetOutcome::Unchanged => println!("secret {name} already has this value: nothing changes"),
    }
    Ok(0)
}

/// `gantry deployer secret ls`.
pub(crate) fn secret_list(data: &Path, key: Option<&str>) -> anyhow::Result<u8> {
    let store = deploy::secrets::SecretStore::open(data, key)?;
    let secrets = store.list()?;
    if secrets.is_empty() {
        println!("no secrets: add one with gantry deployer secret add NAME");
    }
    for secret in secrets {
        let when = time::OffsetDateTime::from_unix_timestamp(secret.updated_at as i64)
            .ok()
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        println!("{:<32} version {}  set {when}", secret.name, secret.version);
    }
    Ok(0)
}

/// `gantry deployer secret rm`.
pub(crate) fn secret_remove(data: &Path, key: Option<&str>, name: &str) -> anyhow::Result<u8> {
    let store = deploy::secrets::SecretStore::open(data, key)?;
    if store.remove(name)? {
        println!("secret {name} removed");
        Ok(0)
    } else {
        eprintln!("no secret named {name}");
        Ok(1)
    }
}

/// `gantry deployer registry add`.
pub(crate) fn registry_add(data: &Path, key: Option<&str>, host: &str, username: &str, password: &str) -> anyhow::Result<u8> {
    deploy::secrets::SecretStore::open(data, key)?.set_registry(host, username, password)?;
    println!("login for {host} saved (as {username})");
    Ok(0)
}

/// `gantry deployer registry ls`.
pub(crate) fn registry_list(data: &Path, key: Option<&str>) -> anyhow::Result<u8> {
    let logins = deploy::secrets::SecretStore::open(data, key)?.registries()?;
    if logins.is_empty() {
        println!("no registry logins: add one with gantry deployer registry add HOST --username USER");
    }
    for login in logins {
        println!("{:<32} {}", login.host, login.username);
    }
    Ok(0)
}

/// `gantry deployer registry rm`.
pub(crate) fn registry_remove(data: &Path, key: Option<&str>, host: &str) -> anyhow::Result<u8> {
    if deploy::secrets::SecretStore::open(data, key)?.remove_registry(host)? {
        println!("login for {host} removed");
        Ok(0)
    } else {
        eprintln!("no login for {host}");
        Ok(1)
    }
}

/// A GET of the deployer's API.
fn deployer_get(url: &str, token: Option<&str>, path_and_query: &str) -> anyhow::Result<reqwest::Response> {
    let full = format!("{}{path_and_query}", url.trim_end_matches('/'));
    runtime()?.block_on(async {
        let mut request = reqwest::Client::new().get(&full);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the deployer at {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the deployer answered {status}: {}", body.trim());
        }
        Ok(response)
    })
}

/// `gantry env status`.
pub(crate) fn status(url: &str, token: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let response = deployer_get(url, token, "/api/v1/inventory")?;
    let inventory: deploy::inventory::Inventory = runtime()?.block_on(response.json()).context("the deployer's inventory is not JSON")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print!("{}", deploy::inventory::render(&inventory));
    }
    Ok(0)
}

/// `gantry env history APP`.
pub(crate) fn history(url: &str, token: Option<&str>, app: &str, json: bool) -> anyhow::Result<u8> {
    let response = deployer_get(url, token, &format!("/api/v1/history?app={app}"))?;
    let records: Vec<deploy::history::DeploymentRecord> =
        runtime()?.block_on(response.json()).context("the deployer's history is not JSON")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(0);
    }
    if records.is_empty() {
        println!("{app} has not been deployed by this deployer");
    }
    for record in records.iter().rev() {
        let when = time::OffsetDateTime::from_unix_timestamp((record.started_at / 1000) as i64)
            .ok()
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let outcome = serde_json::to_value(record.outcome).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default();
        let kind = serde_json::to_value(&record.kind).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default();
        let duration = record.duration_ms().map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_else(|| "-".to_owned());
        println!(
            "{when}  {kind:<8} {} → {}  {outcome} in {duration}  by {}  at {}",
            record.from_image.as_deref().unwrap_or("(nothing)"),
            record.to_image.as_deref().unwrap_or("(nothing)"),
            if record.author.is_empty() { "-" } else { &record.author },
            record.revision.chars().take(8).collect::<String>(),
        );
        if let Some(reason) = &record.reason {
            println!("    {reason}");
        }
    }
    Ok(0)
}

/// `gantry env rollback APP [--to REVISION]`: a commit by the person running it (their git
/// identity, else the machine's user).
pub(crate) fn rollback(repo: &str, branch: &str, app: &str, to: Option<&str>) -> anyhow::Result<u8> {
    let work = tempfile::tempdir().context("cannot make a temporary folder")?;
    let name = gitcmd::output_in(Path::new("."), &["config", "user.name"])
        .map(|out| String::from_utf8_lossy(&out).trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "gantry".to_owned()));
    let email = gitcmd::output_in(Path::new("."), &["config", "user.email"])
        .map(|out| String::from_utf8_lossy(&out).trim().to_owned())
        .ok()
        .filter(|email| !email.is_empty())
        .unwrap_or_else(|| format!("{name}@localhost"));
    let done = runtime()?.block_on(deploy::rollback::rollback(repo, branch, work.path(), app, to, (&name, &email)))?;
    println!("{app}: {} → {} (commit {})", done.from, done.to, &done.commit[..done.commit.len().min(12)]);
    if !done.pushed {
        eprintln!("the commit could not be pushed to {repo}; nothing changed there");
        return Ok(1);
    }
    Ok(0)
}

/// The repository's commit, or `working-tree` for a folder that is not a git checkout.
fn revision_of(root: &Path) -> String {
    gitcmd::output_in(root, &["rev-parse", "HEAD"])
        .map(|output| String::from_utf8_lossy(&output).trim().to_owned())
        .unwrap_or_else(|_| "working-tree".to_owned())
}
