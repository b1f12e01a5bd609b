//! The `gantry` binary: command-line parsing and dispatch. Thin: the work is in the crates.

mod agent_cmd;
mod client;
mod environment;
mod exec;
mod exec_output;
mod git;
mod output;
mod registry_auth;
mod serve;
mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pipeline::{CompileOptions, Context};

/// Exit codes: 0 clean (or warnings only), 1 errors in the pipeline, 2 usage or IO errors.
const EXIT_PIPELINE_ERRORS: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "gantry", version, about = "Container-native CI/CD: runs Woodpecker and Drone pipelines", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Check pipeline files, or an environment repository (a folder with environment.yml), and report
    /// every problem with its file, line and column.
    Lint {
        /// Repository folders, workflow folders or pipeline files (default: the current folder).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what would run for a trigger (event, branch, ...), defaulting from the local git repository.
    Plan {
        /// Repository folder, workflow folder or pipeline file (default: the current folder).
        path: Option<PathBuf>,
        #[command(flatten)]
        trigger: TriggerArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the pipeline here: each step in a container on the local Docker engine (or as host processes).
    Exec(exec::ExecArgs),
    /// Write a Markdown page documenting the pipeline: when it runs, its steps, secrets and graph.
    Docs {
        /// Repository folder, workflow folder or pipeline file (default: the current folder).
        path: Option<PathBuf>,
    },
    /// Run the Gantry server: API, webhooks, polling, cron, the queue agents lease from, live logs.
    Server(serve::ServerArgs),
    /// Run an agent: lease workflows from a server and run them on this machine's Docker engine.
    /// `gantry agent ls|rm` list and remove a server's agents.
    Agent(agent_cmd::AgentCommand),
    /// Repositories on a server (GANTRY_SERVER, GANTRY_TOKEN).
    Repo(client::RepoCommand),
    /// Builds on a server: list, show, logs, cancel, restart, run, approve, decline.
    Build(client::BuildCommand),
    /// Repository secrets on a server (values are write-only).
    Secret(client::SecretCommand),
    /// Where a repository's build results and published images are sent (delivery webhooks).
    Notifier(client::NotifierCommand),
    /// Which build produced an image (IMAGE@DIGEST).
    Artifact(client::ArtifactCommand),
    /// Delivery: keep an environment repository and its targets in agreement (a Docker engine so
    /// far); `plan` and `apply` do one pass over a local folder.
    Deployer(DeployerArgs),
    /// Logins for private registries on a server, per repository (passwords are write-only).
    Registry(client::RegistryCommand),
}

/// `gantry deployer --repo URL …`, or one of its subcommands.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct DeployerArgs {
    #[command(subcommand)]
    command: Option<DeployerCommand>,
    /// The environment repository to clone and follow (any URL git takes, a path included).
    #[arg(long, env = "GANTRY_DEPLOYER_REPO")]
    repo: Option<String>,
    #[arg(long, env = "GANTRY_DEPLOYER_BRANCH", default_value = "main")]
    branch: String,
    /// Seconds between fetches (plus up to a tenth of it at random, so that deployers do not
    /// fetch in step).
    #[arg(long, env = "GANTRY_DEPLOYER_POLL", default_value_t = 30)]
    poll: u64,
    /// The deployer's own folder (the checkout).
    #[arg(long, env = "GANTRY_DEPLOYER_DATA", default_value = "gantry-deployer")]
    data: PathBuf,
    /// The Docker engine to deploy to (default: the targets' `docker_host`, else DOCKER_HOST or
    /// the local socket).
    #[arg(long, env = "GANTRY_DEPLOYER_DOCKER_HOST")]
    docker_host: Option<String>,
}

#[derive(Subcommand)]
enum DeployerCommand {
    /// Print the plan: the environment repository (a local checkout) against what its targets
    /// run, found by the deployer's labels. Changes nothing.
    Plan {
        /// The environment repository's folder.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The Docker engine to observe, for every target (default: each target's `docker_host`,
        /// else DOCKER_HOST or the local socket).
        #[arg(long, env = "GANTRY_DEPLOYER_DOCKER_HOST")]
        docker_host: Option<String>,
    },
    /// Carry out the plan once: start, update (healthy before the old version stops, or
    /// stop-first where a host port needs it), heal and remove. Exit 1 when a change failed.
    Apply {
        /// The environment repository's folder.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The Docker engine to deploy to (default: the targets' `docker_host`, else DOCKER_HOST
        /// or the local socket).
        #[arg(long, env = "GANTRY_DEPLOYER_DOCKER_HOST")]
        docker_host: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The trigger context; anything not given comes from the local git repository.
#[derive(Args, Clone, Default)]
pub struct TriggerArgs {
    /// Event: push, pull_request, pull_request_closed, tag, release, deployment, cron, manual, promote, ...
    #[arg(long)]
    event: Option<String>,
    /// Branch (for pull requests: the target branch).
    #[arg(long)]
    branch: Option<String>,
    /// Tag name; implies `--event tag` unless an event is given.
    #[arg(long)]
    tag: Option<String>,
    /// Full git ref, e.g. refs/heads/main.
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Commit SHA.
    #[arg(long)]
    sha: Option<String>,
    /// Commit message.
    #[arg(long)]
    message: Option<String>,
    /// Commit author name.
    #[arg(long)]
    author: Option<String>,
    /// Commit author e-mail.
    #[arg(long)]
    author_email: Option<String>,
    /// A changed file (repeat the flag); replaces the files changed by the last commit.
    #[arg(long = "changed-file", value_name = "PATH")]
    changed_files: Vec<String>,
    /// Repository as owner/name.
    #[arg(long)]
    repo: Option<String>,
    /// Platform as os/arch.
    #[arg(long)]
    platform: Option<String>,
    /// Name of the cron job, for `--event cron`.
    #[arg(long)]
    cron: Option<String>,
    /// Pull request number.
    #[arg(long)]
    pull_request: Option<String>,
    /// Deployment or promotion target.
    #[arg(long)]
    target: Option<String>,
    /// Extra variable NAME=VALUE for substitution and conditions (repeat the flag).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    environment: Vec<String>,
}

impl TriggerArgs {
    pub(crate) fn context(&self, root: &std::path::Path) -> anyhow::Result<Context> {
        let mut context = git::context_from_git(root);
        if let Some(tag) = &self.tag {
            context.tag = Some(tag.clone());
            context.event = "tag".into();
        }
        if let Some(event) = &self.event {
            context.event = event.clone();
        }
        let overrides: [(&Option<String>, &mut String); 8] = [
            (&self.branch, &mut context.branch),
            (&self.reference, &mut context.reference),
            (&self.sha, &mut context.commit_sha),
            (&self.message, &mut context.commit_message),
            (&self.author, &mut context.commit_author),
            (&self.author_email, &mut context.commit_author_email),
            (&self.repo, &mut context.repo),
            (&self.platform, &mut context.platform),
        ];
        for (value, field) in overrides {
            if let Some(value) = value {
                *field = value.clone();
            }
        }
        if !self.changed_files.is_empty() {
            context.changed_files = Some(self.changed_files.clone());
        }
        if self.cron.is_some() {
            context.cron = self.cron.clone();
        }
        if self.pull_request.is_some() {
            context.pull_request = self.pull_request.clone();
        }
        if self.target.is_some() {
            context.deploy_target = self.target.clone();
        }
        if context.event.starts_with("pull_request") {
            context.target_branch.get_or_insert_with(|| context.branch.clone());
        }
        let mut extra = BTreeMap::new();
        for pair in &self.environment {
            let Some((name, value)) = pair.split_once('=') else {
                anyhow::bail!("--env takes NAME=VALUE, got `{pair}`");
            };
            extra.insert(name.to_owned(), value.to_owned());
        }
        context.extra_environment = extra;
        Ok(context)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    // Long-running services say what they do; commands a person runs stay quiet but for warnings.
    let default_level =
        if matches!(cli.command, Command::Server(_) | Command::Agent(_) | Command::Deployer(DeployerArgs { command: None, .. })) {
            "info"
        } else {
            "warn"
        };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG").unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Lint { paths, format } => {
            let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
            let (environments, paths): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.into_iter().partition(|path| environment::is_environment_repository(path));
            let pipelines = if paths.is_empty() && !environments.is_empty() { Vec::new() } else { source::load_all(&paths)? };
            let mut all = Vec::new();
            let mut files = Vec::new();
            for root in &environments {
                let (diagnostics, sources) = environment::lint(root)?;
                all.extend(diagnostics);
                files.extend(sources);
            }
            for pipeline in &pipelines {
                all.extend(pipeline.diagnostics.iter().cloned());
                all.extend(pipeline::lint_files(&pipeline.files));
                files.extend(pipeline.files.iter().cloned());
            }
            pipeline::diagnostic::sort(&mut all);
            match format {
                Format::Text => print!("{}", output::render_diagnostics(&all, &files, true, output::use_color(&std::io::stdout()))),
                Format::Json => println!("{}", serde_json::to_string_pretty(&output::lint_json(&all, &files))?),
            }
            Ok(if all.iter().any(pipeline::Diagnostic::is_error) { EXIT_PIPELINE_ERRORS } else { 0 })
        }
        Command::Plan { path, trigger, format } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            let loaded = source::load(&path)?;
            let context = trigger.context(&loaded.root)?;
            let mut plan = pipeline::plan_files(&loaded.files, &context, CompileOptions::default());
            plan.diagnostics.splice(0..0, loaded.diagnostics.iter().cloned());
            match format {
                Format::Text => {
                    eprint!(
                        "{}",
                        output::render_diagnostics(&plan.diagnostics, &loaded.files, false, output::use_color(&std::io::stderr()))
                    );
                    print!("{}", output::render_plan(&plan, &context));
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            }
            Ok(if plan.has_errors() { EXIT_PIPELINE_ERRORS } else { 0 })
        }
        Command::Exec(args) => exec::execute(args),
        Command::Docs { path } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            let loaded = source::load(&path)?;
            let (workflows, mut diagnostics) = pipeline::read_and_lint(&loaded.files);
            diagnostics.splice(0..0, loaded.diagnostics.iter().cloned());
            eprint!("{}", output::render_diagnostics(&diagnostics, &loaded.files, false, output::use_color(&std::io::stderr())));
            let options = CompileOptions { ignore_conditions: true, ..CompileOptions::default() };
            let plan = pipeline::compile_with(&workflows, &Context::default(), options);
            print!("{}", pipeline::docs::render_markdown(&workflows, &plan));
            Ok(if diagnostics.iter().any(pipeline::Diagnostic::is_error) { EXIT_PIPELINE_ERRORS } else { 0 })
        }
        Command::Server(args) => serve::execute(args),
        Command::Agent(args) => agent_cmd::execute(args),
        Command::Repo(command) => client::repo(command),
        Command::Build(command) => client::build(command),
        Command::Secret(command) => client::secret(command),
        Command::Notifier(command) => client::notifier(command),
        Command::Artifact(command) => client::artifact(command),
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Plan { repo, docker_host }), .. }) => {
            environment::print_plan(&repo, docker_host.as_deref())
        }
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Apply { repo, docker_host }), .. }) => {
            environment::apply(&repo, docker_host.as_deref())
        }
        Command::Deployer(DeployerArgs { command: None, repo, branch, poll, data, docker_host }) => {
            let Some(repo) = repo else { anyhow::bail!("name the environment repository: gantry deployer --repo URL") };
            environment::run(deploy::run::RunOptions { repo, branch, data, poll: std::time::Duration::from_secs(poll.max(1)), docker_host })
        }
        Command::Registry(command) => client::registry(command),
    }
}
