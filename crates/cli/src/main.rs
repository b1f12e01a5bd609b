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
        /// A deployer's data folder: environment repositories' secret names are checked against
        /// its store (names only; the key is not needed).
        #[arg(long, env = "GANTRY_DEPLOYER_DATA")]
        deployer_data: Option<PathBuf>,
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
    /// An environment as its deployer sees it: `status`, `history APP`, and `rollback APP` (a
    /// commit to the environment repository).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Logins for private registries on a server, per repository (passwords are write-only).
    Registry(client::RegistryCommand),
    /// Environments whose deployers report to a server (`gantry deployer --notify`): their
    /// deployments, what runs, and the build that made it.
    Environment(client::EnvironmentCommand),
    /// Local users: add, ls (server admins).
    User(client::UserCommand),
    /// Sign in as a user and make an API token for the client (printed once: export it as
    /// GANTRY_TOKEN).
    Login(client::LoginCommand),
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
    #[command(flatten)]
    data: DeployerData,
    /// The Docker engine to deploy to (default: the targets' `docker_host`, else DOCKER_HOST or
    /// the local socket).
    #[arg(long, env = "GANTRY_DEPLOYER_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Serve push webhooks (`/hooks/github|gitea|gitlab|generic`), Gantry's `image.published`
    /// (`/hooks/gantry`), the inventory (`/api/v1/inventory`), history and `/metrics` here.
    #[arg(long, env = "GANTRY_DEPLOYER_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Verifies push webhooks (HMAC-SHA256 signature, or GitLab's token).
    #[arg(long, env = "GANTRY_DEPLOYER_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Verifies Gantry's signed `image.published` notifications (the notifier's secret).
    #[arg(long, env = "GANTRY_DEPLOYER_GANTRY_SECRET", hide_env_values = true)]
    gantry_secret: Option<String>,
    /// Required as `Authorization: Bearer …` by the inventory and history endpoints.
    #[arg(long, env = "GANTRY_DEPLOYER_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Send signed deployment events (started, succeeded, failed, rolled back, drift) here;
    /// repeat for several receivers.
    #[arg(long = "notify", env = "GANTRY_DEPLOYER_NOTIFY", value_delimiter = ',')]
    notify: Vec<String>,
    /// Signs the deployment events (`X-Gantry-Signature: sha256=<hex HMAC>`).
    #[arg(long, env = "GANTRY_DEPLOYER_NOTIFY_SECRET", hide_env_values = true)]
    notify_secret: Option<String>,
    /// Plan on every pass and change nothing.
    #[arg(long, env = "GANTRY_DEPLOYER_DRY_RUN")]
    dry_run: bool,
    /// Reconcile only the environment's target of this name or kind (`docker`, `swarm`) and
    /// its applications (default: all of them).
    #[arg(long, env = "GANTRY_DEPLOYER_TARGET")]
    target: Option<String>,
    /// Seconds between asking registries for newer images for the applications' image
    /// policies (Gantry's `image.published` hook asks at once).
    #[arg(long, env = "GANTRY_DEPLOYER_IMAGE_POLL", default_value_t = 300)]
    image_poll: u64,
}

/// The deployer's own folder and the key of its secret store.
#[derive(Args, Clone)]
struct DeployerData {
    /// The deployer's own folder: the checkout, the secret store, the deployment history.
    #[arg(long = "data", env = "GANTRY_DEPLOYER_DATA", default_value = "gantry-deployer")]
    folder: PathBuf,
    /// The secret store's key (64 hex digits or base64 of 32 bytes); default: a 0600 key file
    /// in the data folder, created on first use.
    #[arg(long, env = "GANTRY_DEPLOYER_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
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
        #[command(flatten)]
        data: DeployerData,
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
        #[command(flatten)]
        data: DeployerData,
    },
    /// The deployer's secrets: values that never go into git, sealed in its data folder and
    /// given to containers as files. Setting a new value rolls the applications that use it.
    #[command(subcommand)]
    Secret(DeployerSecretCommand),
    /// The deployer's registry logins: it pulls images and asks for newer ones with them
    /// (passwords sealed like secrets, never shown).
    #[command(subcommand)]
    Registry(DeployerRegistryCommand),
}

#[derive(Subcommand)]
enum DeployerRegistryCommand {
    /// Add or replace the login for a registry host (`registry.example.com`, `127.0.0.1:5001`).
    /// The password comes from --password-from-env or stdin.
    Add {
        host: String,
        #[arg(long)]
        username: String,
        /// The name of an environment variable holding the password.
        #[arg(long)]
        password_from_env: Option<String>,
        #[command(flatten)]
        data: DeployerData,
    },
    /// The registries the deployer has logins for, with their usernames.
    Ls {
        #[command(flatten)]
        data: DeployerData,
    },
    /// Remove the login for a registry host.
    Rm {
        host: String,
        #[command(flatten)]
        data: DeployerData,
    },
}

#[derive(Subcommand)]
enum DeployerSecretCommand {
    /// Create or replace a secret. The value comes from --value, --from-file, --from-env or stdin.
    Add {
        name: String,
        /// The value. It shows in process lists and shell history: prefer stdin, --from-file or --from-env.
        #[arg(long, conflicts_with_all = ["from_file", "from_env"])]
        value: Option<String>,
        #[arg(long, conflicts_with = "from_env")]
        from_file: Option<PathBuf>,
        /// The name of an environment variable holding the value.
        #[arg(long)]
        from_env: Option<String>,
        #[command(flatten)]
        data: DeployerData,
    },
    /// The secrets' names, versions and when they were set (never their values).
    Ls {
        #[command(flatten)]
        data: DeployerData,
    },
    /// Remove a secret; applications naming it fail to deploy until it is back.
    Rm {
        name: String,
        #[command(flatten)]
        data: DeployerData,
    },
}

/// `gantry env`: what runs in an environment, its history, and rollbacks as commits.
#[derive(Subcommand)]
enum EnvCommand {
    /// Every application: owner, version and digest, replicas healthy of desired, state,
    /// deployed by, the build that produced it, drift.
    Status {
        #[command(flatten)]
        deployer: DeployerClient,
        /// Print JSON (the inventory as the deployer serves it).
        #[arg(long)]
        json: bool,
    },
    /// Every deployment of one application: from → to, when, who, outcome, duration, reason.
    History {
        app: String,
        #[command(flatten)]
        deployer: DeployerClient,
        #[arg(long)]
        json: bool,
    },
    /// The commits between two versions of an application (say, what promoting staging to
    /// production brings): each with author, message and the builds that tested it. Asks the
    /// Gantry server (--server), which knows the build behind every image, not a deployer.
    Diff(client::ChangelogCommand),
    /// Ask to run in --to the exact image APP runs in --from (a promotion). The target
    /// environment's rules (`promotion:` in its environment.yml) say who approves, how many,
    /// soak time, required checks and freezes; once approved, its deployer commits the image.
    /// Asks the Gantry server (--server).
    Promote {
        app: String,
        /// The environment whose running version is promoted.
        #[arg(long)]
        from: String,
        /// The environment promoted to.
        #[arg(long)]
        to: String,
        /// Why, for the approvers.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerClient,
    },
    /// From a container a deployer runs to everything behind it: environment, application,
    /// owner, the deployment, the image, the build that pushed it, its commit and how each of
    /// its workflows ended. Reads the container's labels from the engine (DOCKER_HOST or
    /// --docker-host) and asks the Gantry server (--server) for the rest.
    Trace {
        /// The container's id (or a prefix of it) or name.
        container: String,
        #[arg(long)]
        docker_host: Option<String>,
        #[command(flatten)]
        server: ServerClient,
    },
    /// Approve promotion ID (not your own), with an optional comment.
    Approve {
        id: i64,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerClient,
    },
    /// Reject promotion ID (or withdraw your own), with an optional comment.
    Reject {
        id: i64,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerClient,
    },
    /// Promotions into ENVIRONMENT, newest first, or one promotion with --id.
    Promotions {
        environment: Option<String>,
        /// One promotion, with its decisions.
        #[arg(long, conflicts_with = "environment")]
        id: Option<i64>,
        /// Only those in this state: pending, approved, applied, proposed, rejected, expired, failed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        server: ServerClient,
    },
    /// Roll an application back by a commit to the environment repository: its file as it was
    /// at REVISION (default: before its image last changed). The deployer then deploys it.
    Rollback {
        app: String,
        /// The environment repository's commit to take the application's file from.
        #[arg(long)]
        to: Option<String>,
        /// The environment repository (any URL git takes) to commit to.
        #[arg(long, env = "GANTRY_DEPLOYER_REPO")]
        repo: String,
        #[arg(long, env = "GANTRY_DEPLOYER_BRANCH", default_value = "main")]
        branch: String,
    },
}

/// Where the Gantry server is, for the `gantry env` commands that ask it.
#[derive(Args, Clone)]
struct ServerClient {
    #[command(flatten)]
    connection: client::Connection,
    /// Print JSON instead of text.
    #[arg(long, display_order = 99)]
    json: bool,
}

impl ServerClient {
    fn command(self, action: client::PromotionAction) -> client::PromotionCommand {
        client::PromotionCommand::new(self.connection, self.json, action)
    }
}

/// Where a deployer's API is.
#[derive(Args, Clone)]
struct DeployerClient {
    /// The deployer's listen address, as a URL (`http://127.0.0.1:8790`).
    #[arg(long = "deployer", env = "GANTRY_DEPLOYER_URL")]
    url: String,
    /// Its API token, when it requires one.
    #[arg(long, env = "GANTRY_DEPLOYER_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
        Command::Lint { paths, format, deployer_data } => {
            let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
            let (environments, paths): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.into_iter().partition(|path| environment::is_environment_repository(path));
            let pipelines = if paths.is_empty() && !environments.is_empty() { Vec::new() } else { source::load_all(&paths)? };
            let mut all = Vec::new();
            let mut files = Vec::new();
            for root in &environments {
                let (diagnostics, sources) = environment::lint(root, deployer_data.as_deref())?;
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
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Plan { repo, docker_host, data }), .. }) => {
            environment::print_plan(&repo, docker_host.as_deref(), &data.folder, data.secret_key.as_deref())
        }
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Apply { repo, docker_host, data }), .. }) => {
            environment::apply(&repo, docker_host.as_deref(), &data.folder, data.secret_key.as_deref())
        }
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Secret(command)), .. }) => match command {
            DeployerSecretCommand::Add { name, value, from_file, from_env, data } => {
                let value = client::secret::read_value(&name, value.as_deref(), from_file.as_deref(), from_env.as_deref())?;
                environment::secret_add(&data.folder, data.secret_key.as_deref(), &name, &value)
            }
            DeployerSecretCommand::Ls { data } => environment::secret_list(&data.folder, data.secret_key.as_deref()),
            DeployerSecretCommand::Rm { name, data } => environment::secret_remove(&data.folder, data.secret_key.as_deref(), &name),
        },
        Command::Deployer(DeployerArgs { command: Some(DeployerCommand::Registry(command)), .. }) => match command {
            DeployerRegistryCommand::Add { host, username, password_from_env, data } => {
                let password = client::secret::read_value(&format!("the password for {host}"), None, None, password_from_env.as_deref())?;
                environment::registry_add(&data.folder, data.secret_key.as_deref(), &host, &username, &password)
            }
            DeployerRegistryCommand::Ls { data } => environment::registry_list(&data.folder, data.secret_key.as_deref()),
            DeployerRegistryCommand::Rm { host, data } => environment::registry_remove(&data.folder, data.secret_key.as_deref(), &host),
        },
        Command::Deployer(args @ DeployerArgs { command: None, .. }) => {
            let Some(repo) = args.repo else { anyhow::bail!("name the environment repository: gantry deployer --repo URL") };
            let secret = args.notify_secret;
            environment::run(deploy::run::RunOptions {
                repo,
                branch: args.branch,
                data: args.data.folder,
                poll: std::time::Duration::from_secs(args.poll.max(1)),
                docker_host: args.docker_host,
                listen: args.listen,
                webhook_secret: args.webhook_secret,
                gantry_secret: args.gantry_secret,
                api_token: args.api_token,
                secret_key: args.data.secret_key,
                receivers: args.notify.into_iter().map(|url| deploy::events::Receiver { url, secret: secret.clone() }).collect(),
                dry_run: args.dry_run,
                target: args.target,
                image_poll: std::time::Duration::from_secs(args.image_poll.max(1)),
            })
        }
        Command::Env(command) => match command {
            EnvCommand::Status { deployer, json } => environment::status(&deployer.url, deployer.token.as_deref(), json),
            EnvCommand::History { app, deployer, json } => environment::history(&deployer.url, deployer.token.as_deref(), &app, json),
            EnvCommand::Rollback { app, to, repo, branch } => environment::rollback(&repo, &branch, &app, to.as_deref()),
            EnvCommand::Diff(command) => client::changelog(command),
            EnvCommand::Promote { app, from, to, comment, server } => {
                client::promotion(server.command(client::PromotionAction::Request { app, from, to, comment }))
            }
            EnvCommand::Trace { container, docker_host, server } => client::trace(server.connection, container, docker_host, server.json),
            EnvCommand::Approve { id, comment, server } => {
                client::promotion(server.command(client::PromotionAction::Decide { id, approve: true, comment }))
            }
            EnvCommand::Reject { id, comment, server } => {
                client::promotion(server.command(client::PromotionAction::Decide { id, approve: false, comment }))
            }
            EnvCommand::Promotions { environment, id, state, server } => match (id, environment) {
                (Some(id), _) => client::promotion(server.command(client::PromotionAction::Show { id })),
                (None, Some(environment)) => client::promotion(server.command(client::PromotionAction::List { environment, state })),
                (None, None) => anyhow::bail!("name an environment, or a promotion with --id"),
            },
        },
        Command::Registry(command) => client::registry(command),
        Command::Environment(command) => client::environment(command),
        Command::User(command) => client::user(command),
        Command::Login(command) => client::login(command),
    }
}
