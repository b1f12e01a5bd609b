//! `gantry exec`: compile the pipeline of a folder and run it here, on Docker or as host processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use pipeline::CompileOptions;
use runtime::{Backend, PublishOptions, RunOptions, Status, WorkspaceSource};
use tokio_util::sync::CancellationToken;

use crate::exec_output::{ExecOutput, OutputMode};
use crate::{TriggerArgs, output, source};

/// Exit codes of `gantry exec`.
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendKind {
    /// Containers on the Docker engine at DOCKER_HOST (the local socket by default).
    Docker,
    /// Host processes in a temporary workspace; images are ignored and services cannot run.
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExecOutputFormat {
    /// A live view on a terminal, plain lines otherwise (or with CI=true).
    Human,
    /// One JSON event per line.
    Json,
}

#[derive(Args, Clone)]
pub(crate) struct ExecArgs {
    /// Repository folder, workflow folder or pipeline file (default: the current folder).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub trigger: TriggerArgs,
    #[arg(long, value_enum, default_value_t = BackendKind::Docker)]
    pub backend: BackendKind,
    /// Most steps running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Limit for the whole run, e.g. 90s, 30m, 2h; steps still running then are killed.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// A secret NAME=VALUE (repeat the flag). Steps get only the secrets they reference.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// A file of NAME=VALUE lines (blank lines and # comments ignored; "..." values may hold \n).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Vec<PathBuf>,
    /// A secret taken from the environment variable of the same name (repeat the flag).
    #[arg(long = "secret-env", value_name = "NAME")]
    pub secret_env: Vec<String>,
    /// Allow privileged steps, devices, host volumes, the Docker socket, other networks than the
    /// workflow's, and a step's own DNS and host entries. Only for pipelines you trust.
    #[arg(long)]
    pub trusted: bool,
    /// Start from a clean checkout of HEAD instead of a copy of the working tree.
    #[arg(long)]
    pub clone: bool,
    /// Give every workflow its own network from the start. By default a workflow gets one as
    /// soon as something in it is reached by name (a service, a detached step); until then its
    /// steps use the engine's default bridge, which makes each step start faster.
    #[arg(long)]
    pub network_per_workflow: bool,
    /// Build images of build steps on the local engine without pushing them (they keep their
    /// tags there).
    #[arg(long)]
    pub no_push: bool,
    #[arg(long = "output", value_enum, default_value_t = ExecOutputFormat::Human)]
    pub output: ExecOutputFormat,
}

/// `30`, `90s`, `30m`, `2h`: seconds without a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((index, _)) => (&text[..index], &text[index..]),
        None => (text, "s"),
    };
    let value: u64 = digits.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 30m or 2h"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(format!("`{text}` is not a duration like 90s, 30m or 2h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Collects secrets from flags, files and the environment. Later sources win.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn collect_secrets(args: &ExecArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut secrets = BTreeMap::new();
    for file in &args.secrets_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read secrets file {}", file.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                bail!("{}:{}: expected NAME=VALUE", file.display(), number + 1);
            };
            secrets.insert(name.trim().to_owned(), unquote(value.trim_end()));
        }
    }
    for name in &args.secret_env {
        let value = std::env::var(name).with_context(|| format!("--secret-env {name}: the environment has no variable {name}"))?;
        secrets.insert(name.clone(), value);
    }
    for pair in &args.secrets {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--secret takes NAME=VALUE, got `{}`", pair.split('=').next().unwrap_or(""));
        };
        secrets.insert(name.to_owned(), value.to_owned());
    }
    Ok(secrets)
}

/// `"a\nb"` → two lines; other values as written.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')) {
        Some(inner) => inner.replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

/// Runs `gantry exec`; returns the process exit code.
pub(crate) fn execute(args: ExecArgs) -> anyhow::Result<u8> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let loaded = source::load(&path)?;
    let context = args.trigger.context(&loaded.root)?;
    let mut plan = pipeline::plan_files(&loaded.files, &context, CompileOptions { local: true, ..CompileOptions::default() });
    plan.diagnostics.splice(0..0, loaded.diagnostics.iter().cloned());
    let colored = output::use_color(&std::io::stderr());
    if plan.has_errors() {
        eprint!("{}", output::render_diagnostics(&plan.diagnostics, &loaded.files, false, colored));
        eprintln!("error: the pipeline has errors; fix them and run again (`gantry lint` lists them)");
        return Ok(EXIT_CONFIG);
    }
    let granted = if args.trusted { runtime::trust::TrustFlags::ALL } else { runtime::trust::TrustFlags::NONE };
    let refused = runtime::trust::refused(&plan, granted);
    if !refused.is_empty() {
        for item in &refused {
            eprintln!("error: step `{}` of workflow `{}` needs trust: {}", item.step, item.workflow, item.reason);
        }
        eprintln!("hint: run with --trusted if you trust this pipeline and the machine may run it");
        return Ok(EXIT_CONFIG);
    }
    let secrets = collect_secrets(&args)?;
    let workspace =
        if args.clone { WorkspaceSource::GitHead(loaded.root.clone()) } else { WorkspaceSource::WorkingTree(loaded.root.clone()) };
    let publish = PublishOptions {
        push: !args.no_push,
        registries: crate::registry_auth::run_credentials(&plan, &secrets)?,
        pipeline_files: loaded.files.iter().filter(|file| !file.sibling).map(|file| (file.path.clone(), sha256_hex(&file.text))).collect(),
        source_date: gitcmd::output_in(&loaded.root, &["log", "-1", "--format=%cI"])
            .ok()
            .and_then(|output| runtime::publish::commit_date(&String::from_utf8_lossy(&output))),
        ..PublishOptions::default()
    };
    let options = RunOptions { parallel: usize::from(args.parallel), timeout: args.timeout, workspace, secrets, publish };
    let mode = OutputMode::choose(args.output == ExecOutputFormat::Json);

    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let warnings = plan.diagnostics.iter().filter(|diagnostic| diagnostic.is_warning()).count();
        if warnings > 0 && mode != OutputMode::Json {
            eprintln!("note: the pipeline has {warnings} warning(s); `gantry lint` shows them");
        }
        match args.backend {
            BackendKind::Docker => {
                // Steps join the workflow's own network only once something in it is addressed
                // by name (a service, a detached step): the engine's network setup is most of a
                // step's start-up cost. Services are killed at the end: their data is discarded,
                // and a shell as a container's first process ignores SIGTERM anyway.
                let network_policy = if args.network_per_workflow {
                    backend_docker::NetworkPolicy::Always
                } else {
                    backend_docker::NetworkPolicy::WhenAddressed
                };
                let docker_options =
                    backend_docker::DockerBackendOptions { network_policy, service_stop_grace: Duration::ZERO, ..Default::default() };
                let backend = match backend_docker::DockerBackend::connect_with(docker_options).await {
                    Ok(backend) => backend,
                    Err(error) => return Ok(no_engine(&error)),
                };
                run_with(backend, &plan, options, mode).await
            }
            BackendKind::Local => {
                let backend = backend_local::LocalBackend::new();
                if plan.workflows.iter().any(|workflow| !workflow.skipped && workflow.services.iter().any(|service| !service.skipped)) {
                    eprintln!("error: the local backend cannot run services; run with the Docker backend (the default)");
                    return Ok(EXIT_CONFIG);
                }
                run_with(backend, &plan, options, mode).await
            }
        }
    })
}

fn no_engine(error: &runtime::BackendError) -> u8 {
    eprintln!("error: {error}");
    if let runtime::BackendError::Unavailable { hint, .. } = error {
        eprintln!("hint: {hint}");
    }
    eprintln!("hint: or run the steps as host processes with `gantry exec --backend local`");
    EXIT_CONFIG
}

async fn run_with<B: Backend>(backend: B, plan: &pipeline::Plan, options: RunOptions, mode: OutputMode) -> anyhow::Result<u8> {
    let output: Arc<ExecOutput> = crate::exec_output::sink(mode);
    if backend.name() == "local" && plan.workflows.iter().any(|workflow| workflow.steps.iter().any(|step| step.image.is_some())) {
        output.note("the local backend runs steps as host processes: images are ignored");
    }
    let cancel = CancellationToken::new();
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_signal_handler(cancel.clone(), interrupted.clone(), output.clone());
    let summary = match runtime::run_plan(plan, Arc::new(backend), options, output.clone(), cancel).await {
        Ok(summary) => summary,
        Err(runtime::run::RunError::Backend(error)) => return Ok(no_engine(&error)),
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(EXIT_CONFIG);
        }
    };
    output.finish(&summary);
    Ok(match summary.status {
        _ if interrupted.load(std::sync::atomic::Ordering::SeqCst) => EXIT_INTERRUPTED,
        Status::Success | Status::Skipped => 0,
        // Stopped by a run timeout or a `failure: cancel` step, not by the user.
        Status::Killed | Status::Failure | Status::Error => EXIT_FAILED,
    })
}

/// Ctrl-C or SIGTERM cancels the run: running steps are stopped and everything is removed.
fn spawn_signal_handler(cancel: CancellationToken, interrupted: Arc<std::sync::atomic::AtomicBool>, output: Arc<ExecOutput>) {
    tokio::spawn(async move {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
            _ = cancel.cancelled() => return,
        }
        interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
        output.note("interrupted: stopping the steps and removing their containers");
        cancel.cancel();
    });
}
