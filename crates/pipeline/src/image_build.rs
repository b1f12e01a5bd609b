//! Image build steps: a step that builds an image from the workspace and pushes it, which Gantry
//! runs itself through the engine's build API instead of a container (no Docker-in-Docker, no
//! socket, nothing privileged).
//!
//! Two forms compile to the one [`ImageBuild`]:
//! - the common builder plugins (`plugins/docker`, the docker-buildx plugins, kaniko, and the
//!   registry variants `plugins/gcr`, `plugins/acr`, `plugins/ecr`), read from their `settings`
//!   with the plugins' own meanings, so existing files keep working unchanged;
//! - Gantry's own `build:` key on a step, for new pipelines.
//!
//! Reading the settings ([`read_build`]) needs no trigger context, so `gantry lint` reports
//! every setting Gantry cannot honour; [`BuildSettings::plan`] then decides what needs the
//! context (automatic tags, paths in the workspace).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::diagnostic::{Diagnostic, code, did_you_mean};
use crate::model::{SettingValue, StepSpec};
use crate::yaml::Span;

/// What an image build step does, fully resolved: the boundary to the executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    /// The builder plugin image the step names, which Gantry runs natively; `None` for `build:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The build context: an absolute path in the workflow's workspace.
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Repositories to tag and push (registry included, no tag): every one gets every tag.
    pub repositories: Vec<String>,
    pub tags: Vec<String>,
    /// A file in the workspace whose tags (comma- or line-separated) replace `tags`, read when
    /// the step runs (an earlier step writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_file: Option<TagsFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Build arguments whose values are variables of the step's environment: argument name →
    /// variable (a secret's value arrives this way; it is masked in the build's output like in
    /// any step's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args_from_env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub push: bool,
    /// Remove the tags from the agent's engine after the step (the layers stay in its cache).
    pub purge: bool,
    pub no_cache: bool,
    /// Pull base images even when the engine has them.
    pub pull: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Credentials the step's settings give; otherwise the repository's registry credentials
    /// for the repositories' hosts are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<RegistryLogin>,
}

impl ImageBuild {
    /// Every `repository:tag` the step makes, in order.
    pub fn references(&self) -> Vec<String> {
        self.repositories.iter().flat_map(|repository| self.tags.iter().map(move |tag| format!("{repository}:{tag}"))).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsFile {
    /// Absolute path in the workspace.
    pub path: String,
    /// A missing file fails the step; otherwise `tags` stay (plugins/docker's optional `.tags`).
    pub required: bool,
}

/// Credentials for a push: the registry host and the step's environment variables holding the
/// user name and password (filled in from secrets when the step runs, never in the plan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLogin {
    pub registry: String,
    pub username_variable: String,
    pub password_variable: String,
}

/// Which vocabulary a build step's settings are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildForm {
    /// Gantry's `build:` key.
    Native,
    Plugin(PluginFamily),
}

/// Builder plugins whose settings Gantry honours, grouped by the settings they take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFamily {
    /// Drone's `plugins/docker`.
    Docker,
    /// Woodpecker's and thegeeklab's docker-buildx plugins.
    Buildx,
    /// The kaniko plugins.
    Kaniko,
    /// `plugins/gcr`, `plugins/kaniko-gcr`: `json_key` logs in to Google's registry.
    Gcr,
    /// `plugins/acr`: Azure's registry, `registry` prefixes the repository.
    Acr,
}

/// Builder plugin images by name (registry host, tag and digest removed), with their family.
const BUILDER_PLUGINS: &[(&str, PluginFamily)] = &[
    ("plugins/docker", PluginFamily::Docker),
    ("plugins/docker-buildx", PluginFamily::Buildx),
    ("woodpeckerci/plugin-docker-buildx", PluginFamily::Buildx),
    ("woodpecker-plugins/docker-buildx", PluginFamily::Buildx),
    ("thegeeklab/drone-docker-buildx", PluginFamily::Buildx),
    ("plugins/kaniko", PluginFamily::Kaniko),
    ("woodpeckerci/plugin-kaniko", PluginFamily::Kaniko),
    ("woodpecker-plugins/kaniko", PluginFamily::Kaniko),
    ("banzaicloud/drone-kaniko", PluginFamily::Kaniko),
    ("plugins/gcr", PluginFamily::Gcr),
    ("plugins/kaniko-gcr", PluginFamily::Gcr),
    ("plugins/acr", PluginFamily::Acr),
    // Not `plugins/ecr`: it logs in by exchanging AWS keys for a token, which Gantry cannot do,
    // so it still runs as the plugin's own (privileged) container.
];

/// Hosts the builder plugins are published on besides Docker Hub.
const PLUGIN_HOSTS: &[&str] = &["docker.io", "index.docker.io", "codeberg.org", "quay.io", "ghcr.io"];

/// The family of a builder plugin image (`plugins/docker:20`, `quay.io/thegeeklab/drone-docker-buildx:24`),
/// or `None` for any other image.
pub fn builder_plugin(image: &str) -> Option<PluginFamily> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let name_start = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    let without_tag = match without_digest[name_start..].find(':') {
        Some(colon) => &without_digest[..name_start + colon],
        None => without_digest,
    };
    let name =
        PLUGIN_HOSTS.iter().find_map(|host| without_tag.strip_prefix(host).and_then(|rest| rest.strip_prefix('/'))).unwrap_or(without_tag);
    BUILDER_PLUGINS.iter().find(|(plugin, _)| *plugin == name).map(|(_, family)| *family)
}

/// The form a step's build is written in, if it is a build step.
pub fn build_form(step: &StepSpec) -> Option<BuildForm> {
    if step.build.is_some() {
        return Some(BuildForm::Native);
    }
    if !step.is_plugin() {
        return None;
    }
    step.image.as_deref().and_then(builder_plugin).map(BuildForm::Plugin)
}

/// What a setting means to the executor; the same meaning may have several names across forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meaning {
    Repositories,
    Registry,
    Tags,
    AutoTag,
    AutoTagSuffix,
    TagsFile,
    Dockerfile,
    Context,
    BuildArgs,
    BuildArgsFromEnv,
    Target,
    Labels,
    Username,
    Password,
    /// gcr's service account key: the password, with user `_json_key`.
    JsonKey,
    DryRun,
    Push,
    Purge,
    NoCache,
    Pull,
    CacheFrom,
    Platforms,
    /// Settings of the plugin's own Docker daemon (mirrors, storage driver, DNS): with no daemon
    /// of the step's own they mean nothing.
    DaemonOnly,
    /// Read and ignored, with a warning that says why.
    Ignored(&'static str),
    /// Cannot be honoured natively, and ignoring it would build something else than asked: the
    /// step runs the plugin's own container instead, as it did before Gantry built images.
    Refused(&'static str),
}

/// Setting names and what they mean to the executor.
type SettingTable = &'static [(&'static str, Meaning)];

const NATIVE_SETTINGS: SettingTable = &[
    ("image", Meaning::Repositories),
    ("images", Meaning::Repositories),
    ("tags", Meaning::Tags),
    ("tags_file", Meaning::TagsFile),
    ("context", Meaning::Context),
    ("dockerfile", Meaning::Dockerfile),
    ("args", Meaning::BuildArgs),
    ("args_from_env", Meaning::BuildArgsFromEnv),
    ("target", Meaning::Target),
    ("labels", Meaning::Labels),
    ("push", Meaning::Push),
    ("purge", Meaning::Purge),
    ("no_cache", Meaning::NoCache),
    ("pull", Meaning::Pull),
    ("cache_from", Meaning::CacheFrom),
];

const REFUSED_SECRETS: &str = "build secrets (`RUN --mount=type=secret`) need BuildKit, which this engine's build API does not offer; pass them with `build_args_from_env`";

/// Settings every builder plugin family shares (plugins/docker's names).
const PLUGIN_SETTINGS: SettingTable = &[
    ("repo", Meaning::Repositories),
    ("registry", Meaning::Registry),
    ("tags", Meaning::Tags),
    ("tag", Meaning::Tags),
    ("auto_tag", Meaning::AutoTag),
    ("auto_tag_suffix", Meaning::AutoTagSuffix),
    ("tags_file", Meaning::TagsFile),
    ("dockerfile", Meaning::Dockerfile),
    ("context", Meaning::Context),
    ("build_args", Meaning::BuildArgs),
    ("build_args_from_env", Meaning::BuildArgsFromEnv),
    ("target", Meaning::Target),
    ("labels", Meaning::Labels),
    ("custom_labels", Meaning::Labels),
    ("username", Meaning::Username),
    ("password", Meaning::Password),
    ("dry_run", Meaning::DryRun),
    ("purge", Meaning::Purge),
    ("no_cache", Meaning::NoCache),
    ("pull_image", Meaning::Pull),
    ("cache_from", Meaning::CacheFrom),
    ("platforms", Meaning::Platforms),
    ("platform", Meaning::Platforms),
    ("mirror", Meaning::DaemonOnly),
    ("registry_mirrors", Meaning::DaemonOnly),
    ("storage_driver", Meaning::DaemonOnly),
    ("storage_path", Meaning::DaemonOnly),
    ("bip", Meaning::DaemonOnly),
    ("mtu", Meaning::DaemonOnly),
    ("ipv6", Meaning::DaemonOnly),
    ("custom_dns", Meaning::DaemonOnly),
    ("custom_dns_search", Meaning::DaemonOnly),
    ("insecure", Meaning::DaemonOnly),
    ("debug", Meaning::DaemonOnly),
    ("daemon_off", Meaning::DaemonOnly),
    ("experimental", Meaning::DaemonOnly),
    ("buildkit_config", Meaning::DaemonOnly),
    ("builder_driver", Meaning::DaemonOnly),
    ("driver_opts", Meaning::DaemonOnly),
    ("email", Meaning::Ignored("registries no longer take an e-mail address at login")),
    ("compress", Meaning::Ignored("the engine sends the context compressed as it sees fit")),
    ("quiet", Meaning::Ignored("the build's output is the step's log")),
    ("cache_to", Meaning::Ignored("the agent's engine keeps the layer cache itself, shared by every build on that agent")),
    ("cache_images", Meaning::Ignored("the agent's engine keeps the layer cache itself, shared by every build on that agent")),
    ("provenance", Meaning::Ignored("Gantry attaches its own provenance statement to every pushed image")),
    ("sbom", Meaning::Ignored("SBOM attestations need BuildKit")),
    ("add_host", Meaning::Ignored("build containers resolve names through the agent's engine")),
    ("logins", Meaning::Ignored("add the registries' credentials with `gantry registry add`")),
    ("config", Meaning::Ignored("add the registries' credentials with `gantry registry add`")),
    ("docker_config", Meaning::Ignored("add the registries' credentials with `gantry registry add`")),
    ("secret", Meaning::Refused(REFUSED_SECRETS)),
    ("secrets", Meaning::Refused(REFUSED_SECRETS)),
    ("secrets_from_env", Meaning::Refused(REFUSED_SECRETS)),
    ("ssh", Meaning::Refused("SSH agent forwarding into a build needs BuildKit")),
    ("squash", Meaning::Refused("squashing needs the engine's experimental mode")),
    ("output", Meaning::Refused("build outputs other than an image need BuildKit")),
    ("no_push", Meaning::DryRun),
    ("skip_tls_verify", Meaning::Ignored("registries on 127.0.0.0/8 are reached over HTTP; others need valid TLS")),
    ("cache", Meaning::Ignored("the agent's engine keeps the layer cache itself, shared by every build on that agent")),
    ("cache_repo", Meaning::Ignored("the agent's engine keeps the layer cache itself, shared by every build on that agent")),
    ("json_key", Meaning::JsonKey),
    ("tenant", Meaning::Ignored("log in with `username` and `password` (a service principal's id and secret)")),
];

/// A build step's settings as read, before the trigger context is known.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSettings {
    pub form: BuildForm,
    /// The settings that make the step run the plugin's own container instead, if any.
    pub fallback: Option<String>,
    plugin: Option<String>,
    repositories: Vec<String>,
    registry: Option<String>,
    tags: Vec<String>,
    auto_tag: bool,
    auto_tag_suffix: Option<String>,
    tags_file: Option<String>,
    dockerfile: String,
    context: String,
    build_args: BTreeMap<String, String>,
    build_args_from_env: Vec<String>,
    /// Build arguments whose value is a secret (`build_args: {TOKEN: {from_secret: npm}}`).
    pub secret_build_args: Vec<(String, String)>,
    target: Option<String>,
    labels: BTreeMap<String, String>,
    /// Variables of the step's environment (`PLUGIN_USERNAME`, …) when the settings give them.
    username_variable: Option<String>,
    password_variable: Option<String>,
    json_key_variable: Option<String>,
    push: bool,
    purge: bool,
    no_cache: bool,
    pull: bool,
    cache_from: Vec<String>,
}

/// Reads a build step's settings (`settings` of a builder plugin, or `build:`), reporting every
/// setting Gantry cannot honour at the setting's own line. `variable` names the environment
/// variable a plugin setting reaches the step as (`PLUGIN_<NAME>`).
pub fn read_build(
    step: &StepSpec,
    form: BuildForm,
    file: &str,
    variable: &dyn Fn(&str) -> String,
    diagnostics: &mut Vec<Diagnostic>,
) -> BuildSettings {
    let (entries, table, section): (&[(String, SettingValue)], SettingTable, &str) = match form {
        BuildForm::Native => (step.build.as_deref().unwrap_or_default(), NATIVE_SETTINGS, "build"),
        BuildForm::Plugin(_) => (&step.settings, PLUGIN_SETTINGS, "settings"),
    };
    let mut settings = BuildSettings {
        form,
        fallback: None,
        plugin: match form {
            BuildForm::Native => None,
            BuildForm::Plugin(_) => step.image.clone(),
        },
        repositories: Vec::new(),
        registry: None,
        tags: Vec::new(),
        auto_tag: false,
        auto_tag_suffix: None,
        tags_file: None,
        dockerfile: "Dockerfile".into(),
        context: ".".into(),
        build_args: BTreeMap::new(),
        build_args_from_env: Vec::new(),
        secret_build_args: Vec::new(),
        target: None,
        labels: BTreeMap::new(),
        username_variable: None,
        password_variable: None,
        json_key_variable: None,
        push: true,
        // plugins/docker purges by default; a native build keeps its image unless asked.
        purge: form != BuildForm::Native,
        no_cache: false,
        pull: false,
        cache_from: Vec::new(),
    };
    let first_diagnostic = diagnostics.len();
    let mut report = Report { file, step, section, diagnostics };
    let mut platforms = Vec::new();
    // Settings only the plugin's own container can honour.
    let mut fallback: Vec<(String, String)> = Vec::new();
    for (name, value) in entries {
        let Some(meaning) = table.iter().find(|(known, _)| known == name).map(|(_, meaning)| *meaning) else {
            let mut diagnostic =
                report.diagnostic(false, name, format!("`{section}.{name}` is not a setting Gantry's image build knows; it is ignored"));
            diagnostic.hint = Some(match did_you_mean(name, table.iter().map(|(known, _)| *known)) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!(
                    "the settings Gantry builds with are listed by `gantry docs`; `{name}` would have configured the plugin's own container"
                ),
            });
            report.push(diagnostic);
            continue;
        };
        if matches!(value, SettingValue::Secret(_))
            && !matches!(meaning, Meaning::Username | Meaning::Password | Meaning::JsonKey | Meaning::Refused(_) | Meaning::Ignored(_))
        {
            let message = format!("`{section}.{name}` cannot come from a secret");
            let diagnostic = report
                .diagnostic(true, name, message)
                .with_hint("give secrets to a build through the step's `environment` and `build_args_from_env`");
            report.push(diagnostic);
            continue;
        }
        match meaning {
            Meaning::Repositories => settings.repositories = report.list(name, value),
            Meaning::Registry => settings.registry = report.text(name, value),
            // A tag made of a variable empty in this context (`${CI_COMMIT_TAG}` on a push) is left
            // out, so a workflow written for tags still plans on other events.
            Meaning::Tags => settings.tags = report.list(name, value).into_iter().filter(|tag| !tag.is_empty()).collect(),
            Meaning::AutoTag => settings.auto_tag = report.boolean(name, value),
            Meaning::AutoTagSuffix => settings.auto_tag_suffix = report.text(name, value),
            Meaning::TagsFile => settings.tags_file = report.text(name, value),
            Meaning::Dockerfile => settings.dockerfile = report.text(name, value).unwrap_or_else(|| "Dockerfile".into()),
            Meaning::Context => settings.context = report.text(name, value).unwrap_or_else(|| ".".into()),
            Meaning::BuildArgs => {
                for (argument, value) in report.pairs(name, value) {
                    match value {
                        ArgumentValue::Text(text) => {
                            settings.build_args.insert(argument, text);
                        }
                        ArgumentValue::Secret(secret) => settings.secret_build_args.push((argument, secret)),
                    }
                }
            }
            Meaning::BuildArgsFromEnv => settings.build_args_from_env = report.list(name, value),
            Meaning::Target => settings.target = report.text(name, value),
            Meaning::Labels => {
                for (label, value) in report.pairs(name, value) {
                    match value {
                        ArgumentValue::Text(text) => {
                            settings.labels.insert(label, text);
                        }
                        ArgumentValue::Secret(_) => report.wrong_type(name, "a mapping of strings (a label is public: never a secret)"),
                    }
                }
            }
            Meaning::Username => settings.username_variable = Some(variable(name)),
            Meaning::Password => settings.password_variable = Some(variable(name)),
            Meaning::JsonKey => settings.json_key_variable = Some(variable(name)),
            Meaning::DryRun => settings.push = !report.boolean(name, value),
            Meaning::Push => settings.push = report.boolean(name, value),
            Meaning::Purge => settings.purge = report.boolean(name, value),
            Meaning::NoCache => settings.no_cache = report.boolean(name, value),
            Meaning::Pull => settings.pull = report.boolean(name, value),
            Meaning::CacheFrom => settings.cache_from = report.list(name, value),
            Meaning::Platforms => platforms = report.list(name, value),
            Meaning::DaemonOnly => {
                let message =
                    format!("`{section}.{name}` configures the plugin's own Docker daemon, which Gantry does not start; it is ignored");
                let diagnostic = report.diagnostic(false, name, message).with_hint("Gantry builds on the agent's engine");
                report.push(diagnostic);
            }
            Meaning::Ignored(why) => {
                let diagnostic = report.diagnostic(false, name, format!("`{section}.{name}` is ignored: {why}"));
                report.push(diagnostic);
            }
            Meaning::Refused(why) => fallback.push((name.clone(), why.to_owned())),
        }
    }
    if platforms.len() > 1 {
        fallback.push((
            "platforms".to_owned(),
            format!("it asks for {} platforms and the agent's engine builds for its own platform only", platforms.len()),
        ));
    } else if let Some(platform) = platforms.first() {
        let message =
            format!("`settings.platforms` is ignored: the image is built for the agent's own platform, not necessarily `{platform}`");
        let diagnostic =
            Diagnostic::note(code::UNSUPPORTED, file, report.span("platforms"), message).with_hint("pick agents with a `platform` label");
        report.push(diagnostic);
    }
    if let BuildForm::Plugin(family) = form {
        apply_family(&mut settings, family);
    }
    check_names(&settings, &mut report);
    warn_of_secrets_in_history(&settings, &mut report);
    if !fallback.is_empty() {
        // The plugin runs as written: what was said about its settings no longer applies.
        report.diagnostics.truncate(first_diagnostic);
        for (name, why) in &fallback {
            let message =
                format!("`{section}.{name}`: {why}; step `{}` runs the plugin's own container instead of a build by Gantry", step.name);
            let diagnostic = report
                .diagnostic(false, name, message)
                .with_hint("that container runs Docker-in-Docker (privileged: it needs a repository an admin trusts); without this setting Gantry builds the image itself");
            report.push(diagnostic);
        }
        settings.fallback = Some(fallback.iter().map(|(name, _)| format!("`{section}.{name}`")).collect::<Vec<_>>().join(", "));
    }
    settings
}

/// Whether a step is an image build Gantry runs itself: a `build:` step, or a builder plugin
/// whose settings it can all honour.
pub fn runs_natively(step: &StepSpec, dialect: crate::model::Dialect) -> bool {
    build_form(step).is_some_and(|form| {
        let variable = |key: &str| crate::environment::setting_variable(dialect, key);
        read_build(step, form, "", &variable, &mut Vec::new()).fallback.is_none()
    })
}

/// What a registry variant adds to the shared settings: its registry, and how it logs in.
fn apply_family(settings: &mut BuildSettings, family: PluginFamily) {
    let default_registry = match family {
        PluginFamily::Gcr => Some("gcr.io"),
        _ => None,
    };
    if settings.registry.is_none() {
        settings.registry = default_registry.map(str::to_owned);
    }
    if matches!(family, PluginFamily::Gcr | PluginFamily::Acr)
        && let Some(registry) = settings.registry.clone()
    {
        // These plugins prefix `repo` with `registry` unless it names it already.
        for repository in &mut settings.repositories {
            if !repository.starts_with(&format!("{registry}/")) {
                *repository = format!("{}/{}", registry.trim_end_matches('/'), repository);
            }
        }
    }
    if family == PluginFamily::Docker && settings.tags.is_empty() && settings.tags_file.is_none() {
        // plugins/docker reads `.tags` when `tags` is not set, and builds `latest` without it.
        settings.tags_file = Some(".tags".into());
    }
}

fn check_names(settings: &BuildSettings, report: &mut Report<'_>) {
    let repository_key = if settings.form == BuildForm::Native { "image" } else { "repo" };
    if settings.repositories.is_empty() {
        let message = format!("image build step `{}` names no image: `{}.{repository_key}` is missing", report.step.name, report.section);
        let diagnostic = Diagnostic::error(code::MISSING_KEY, report.file, report.step.key_span(report.section), message)
            .with_hint(format!("name the image to build, e.g. `{repository_key}: registry.example.com/team/app`"));
        report.push(diagnostic);
    }
    for repository in &settings.repositories {
        if !repository.contains('$') && !is_repository(repository) {
            let message = format!("`{}.{repository_key}`: `{repository}` is not an image repository name", report.section);
            let diagnostic = report.diagnostic(true, repository_key, message).with_hint(
                "lower-case letters, digits and `._-` separated by `/`, a registry host first (`127.0.0.1:5000/team/app`), no tag",
            );
            report.push(diagnostic);
        }
    }
    for tag in &settings.tags {
        if !tag.contains('$') && !is_tag(tag) {
            let message = format!("`{}.tags`: `{tag}` is not a valid image tag", report.section);
            let diagnostic = report
                .diagnostic(true, "tags", message)
                .with_hint("a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`");
            report.push(diagnostic);
        }
    }
    for name in &settings.build_args_from_env {
        if !report.step.environment.iter().any(|entry| &entry.name == name) {
            let message = format!("`{}.{}`: `{name}` is not in the step's `environment`", report.section, from_env_key(settings.form));
            let diagnostic = report
                .diagnostic(false, from_env_key(settings.form), message)
                .with_hint(format!("add `{name}` to the step's `environment` (e.g. `{name}: {{from_secret: …}}`), or it is passed empty unless a built-in variable has that name"));
            report.push(diagnostic);
        }
    }
}

/// The engine's builder writes the build arguments a `RUN` line sees into the image's history,
/// so a secret given as one ends up in the image. It works (and is masked in the log), as with
/// the plugins, but the author must know.
fn warn_of_secrets_in_history(settings: &BuildSettings, report: &mut Report<'_>) {
    let mut secrets: Vec<(&str, &str)> =
        settings.secret_build_args.iter().map(|(argument, secret)| (argument.as_str(), secret.as_str())).collect();
    for name in &settings.build_args_from_env {
        if let Some(SettingValue::Secret(secret)) =
            report.step.environment.iter().find(|entry| &entry.name == name).map(|entry| &entry.value)
        {
            secrets.push((name.as_str(), secret.as_str()));
        }
    }
    let key = if settings.form == BuildForm::Native { "args" } else { "build_args" };
    for (argument, secret) in secrets {
        let message = format!(
            "build argument `{argument}` holds secret `{secret}`: the engine's builder records the arguments a `RUN` line sees in the image's history, where anyone who can pull the image reads it"
        );
        let diagnostic = report
            .diagnostic(false, key, message)
            .with_hint("use it only in a build stage the final image does not start from (a multi-stage Dockerfile), or fetch what it unlocks in an earlier step");
        report.push(diagnostic);
    }
}

fn from_env_key(form: BuildForm) -> &'static str {
    if form == BuildForm::Native { "args_from_env" } else { "build_args_from_env" }
}

impl BuildSettings {
    /// The build for one trigger context, or why the step does nothing: plugins/docker's
    /// `auto_tag` builds only tags and the default branch. `working_dir` is the step's
    /// directory, which `context`, `dockerfile` and `tags_file` are relative to.
    pub fn plan(&self, context: &Context, working_dir: &str, file: &str, span: Span) -> Result<ImageBuild, PlanOutcome> {
        let mut tags = if self.tags.is_empty() { vec!["latest".to_owned()] } else { self.tags.clone() };
        if self.auto_tag {
            match auto_tags(context) {
                AutoTags::Skip => {
                    return Err(PlanOutcome::Skip(format!(
                        "`auto_tag` builds only tags and the default branch (`{}`), as plugins/docker does",
                        context.default_branch
                    )));
                }
                AutoTags::Tags(automatic) => {
                    tags = match &self.auto_tag_suffix {
                        Some(suffix) if !suffix.is_empty() => {
                            automatic.iter().map(|tag| if tag == "latest" { suffix.clone() } else { format!("{tag}-{suffix}") }).collect()
                        }
                        _ => automatic,
                    };
                    // Explicit tags come along, as in the docker-buildx plugin.
                    for tag in &self.tags {
                        if !tags.contains(tag) {
                            tags.push(tag.clone());
                        }
                    }
                }
                AutoTags::NotSemver(tag) => {
                    return Err(PlanOutcome::Error(
                        Diagnostic::error(
                            code::INVALID_VALUE,
                            file,
                            span,
                            format!("`auto_tag`: tag `{tag}` is not a semantic version (major.minor.patch)"),
                        )
                        .with_hint("tag releases like `v1.2.3`, or set `tags` yourself for this event"),
                    ));
                }
            }
        }
        let context_dir = join_path(working_dir, &self.context);
        let dockerfile_path = join_path(working_dir, &self.dockerfile);
        let Some(dockerfile) = relative_to(&dockerfile_path, &context_dir) else {
            return Err(PlanOutcome::Error(
                Diagnostic::error(
                    code::UNSUPPORTED,
                    file,
                    span,
                    format!("the Dockerfile `{}` is outside the build context `{}`", self.dockerfile, self.context),
                )
                .with_hint("move the Dockerfile into the context, or make `context` a folder that holds it"),
            ));
        };
        let login = self.login();
        Ok(ImageBuild {
            plugin: self.plugin.clone(),
            context: context_dir,
            dockerfile,
            repositories: self.repositories.clone(),
            tags,
            tags_file: self.tags_file.as_ref().map(|path| TagsFile {
                path: join_path(working_dir, path),
                // Only plugins/docker's implicit `.tags` may be missing.
                required: !(self.form == BuildForm::Plugin(PluginFamily::Docker) && self.tags.is_empty() && path == ".tags"),
            }),
            build_args: self.build_args.clone(),
            build_args_from_env: self
                .build_args_from_env
                .iter()
                .map(|name| (name.clone(), name.clone()))
                .chain(self.secret_build_args.iter().map(|(argument, _)| (argument.clone(), secret_argument_variable(argument))))
                .collect(),
            target: self.target.clone(),
            labels: self.labels.clone(),
            push: self.push,
            purge: self.purge,
            no_cache: self.no_cache,
            pull: self.pull,
            cache_from: self.cache_from.clone(),
            login,
        })
    }

    fn login(&self) -> Option<RegistryLogin> {
        let registry =
            self.registry.clone().or_else(|| self.repositories.first().map(|repository| registry_host(repository).to_owned()))?;
        if let Some(json_key) = &self.json_key_variable {
            return Some(RegistryLogin {
                registry,
                username_variable: JSON_KEY_USER_VARIABLE.to_owned(),
                password_variable: json_key.clone(),
            });
        }
        match (&self.username_variable, &self.password_variable) {
            (Some(username), Some(password)) => {
                Some(RegistryLogin { registry, username_variable: username.clone(), password_variable: password.clone() })
            }
            _ => None,
        }
    }
}

/// The step variable a secret build argument's value arrives in.
pub fn secret_argument_variable(argument: &str) -> String {
    format!("GANTRY_BUILD_ARG_{argument}")
}

/// The variable the compiler sets to `_json_key` for gcr's `json_key` login.
pub const JSON_KEY_USER_VARIABLE: &str = "GANTRY_BUILD_JSON_KEY_USER";

/// Why a build step has no build for a context.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanOutcome {
    Skip(String),
    Error(Diagnostic),
}

enum AutoTags {
    Tags(Vec<String>),
    Skip,
    NotSemver(String),
}

/// plugins/docker's automatic tags: on a tag `v1.2.3` → `1`, `1.2`, `1.2.3` (`0.4`, `0.4.1` for
/// major 0; the whole version for a pre-release or build metadata); on the default branch →
/// `latest`; otherwise nothing is built.
fn auto_tags(context: &Context) -> AutoTags {
    if let Some(tag) = context.reference.strip_prefix("refs/tags/") {
        let version = tag.strip_prefix('v').unwrap_or(tag);
        let (core, extra) = match version.find(['-', '+']) {
            Some(at) => (&version[..at], Some(&version[at..])),
            None => (version, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let numeric = |part: &&str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
        if parts.len() != 3 || !parts.iter().all(numeric) || extra.is_some_and(|extra| extra.len() < 2) {
            return AutoTags::NotSemver(tag.to_owned());
        }
        if extra.is_some() {
            return AutoTags::Tags(vec![version.to_owned()]);
        }
        let (major, minor, patch) = (parts[0], parts[1], parts[2]);
        if major.trim_start_matches('0').is_empty() {
            return AutoTags::Tags(vec![format!("{major}.{minor}"), format!("{major}.{minor}.{patch}")]);
        }
        return AutoTags::Tags(vec![major.to_owned(), format!("{major}.{minor}"), format!("{major}.{minor}.{patch}")]);
    }
    if context.reference == format!("refs/heads/{}", context.default_branch) {
        return AutoTags::Tags(vec!["latest".to_owned()]);
    }
    AutoTags::Skip
}

/// The registry host of a repository name: its first part when that looks like a host
/// (`127.0.0.1:5000`, `registry.example.com`, `localhost`), Docker Hub otherwise.
pub fn registry_host(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

fn is_repository(name: &str) -> bool {
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
        _ => (None, name),
    };
    let host_ok =
        host.is_none_or(|host| !host.is_empty() && host.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte)));
    let component_ok = |component: &str| {
        !component.is_empty()
            && component.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte))
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric()
    };
    host_ok && path.split('/').all(component_ok)
}

fn is_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_')
        && tag.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
}

/// `relative` against the absolute `base`, with `.` and `..` resolved.
fn join_path(base: &str, relative: &str) -> String {
    let mut parts: Vec<&str> =
        if relative.starts_with('/') { Vec::new() } else { base.split('/').filter(|part| !part.is_empty()).collect() };
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `path` relative to `dir` when it lies inside it.
fn relative_to(path: &str, dir: &str) -> Option<String> {
    let dir = dir.trim_end_matches('/');
    path.strip_prefix(dir).and_then(|rest| rest.strip_prefix('/')).filter(|rest| !rest.is_empty()).map(str::to_owned)
}

enum ArgumentValue {
    Text(String),
    Secret(String),
}

/// Reports problems of one build step's settings, each at the line of its key.
struct Report<'a> {
    file: &'a str,
    step: &'a StepSpec,
    section: &'a str,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    fn span(&self, name: &str) -> Span {
        let key = format!("{}.{name}", self.section);
        self.step.key_spans.iter().find(|(written, _)| *written == key).map_or_else(|| self.step.key_span(self.section), |(_, span)| *span)
    }

    fn diagnostic(&self, error: bool, name: &str, message: String) -> Diagnostic {
        let span = self.span(name);
        if error {
            Diagnostic::error(code::UNSUPPORTED, self.file, span, message)
        } else {
            Diagnostic::warning(code::UNSUPPORTED, self.file, span, message)
        }
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn wrong_type(&mut self, name: &str, expected: &str) {
        let span = self.span(name);
        self.diagnostics.push(Diagnostic::error(
            code::WRONG_TYPE,
            self.file,
            span,
            format!("`{}.{name}` must be {expected}", self.section),
        ));
    }

    fn text(&mut self, name: &str, value: &SettingValue) -> Option<String> {
        match value {
            SettingValue::Null => None,
            SettingValue::Scalar(text) => Some(text.clone()),
            _ => {
                self.wrong_type(name, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, name: &str, value: &SettingValue) -> bool {
        match value {
            SettingValue::Null => false,
            SettingValue::Scalar(text) if text == "true" => true,
            SettingValue::Scalar(text) if text == "false" => false,
            _ => {
                self.wrong_type(name, "`true` or `false`");
                false
            }
        }
    }

    /// A list, or a comma-separated string (how the plugins read `PLUGIN_TAGS`).
    fn list(&mut self, name: &str, value: &SettingValue) -> Vec<String> {
        match value {
            SettingValue::Null => Vec::new(),
            SettingValue::Scalar(text) => text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect(),
            SettingValue::List(items) => {
                let mut list = Vec::new();
                for item in items {
                    match item {
                        SettingValue::Scalar(text) => list.push(text.trim().to_owned()),
                        _ => self.wrong_type(name, "a list of strings"),
                    }
                }
                list
            }
            _ => {
                self.wrong_type(name, "a list of strings");
                Vec::new()
            }
        }
    }

    /// `KEY=value` pairs: a mapping (whose values may be secrets), a list of `KEY=value` strings,
    /// or one comma-separated string.
    fn pairs(&mut self, name: &str, value: &SettingValue) -> Vec<(String, ArgumentValue)> {
        match value {
            SettingValue::Map(entries) => {
                let mut pairs = Vec::new();
                for (key, value) in entries {
                    match value {
                        SettingValue::Scalar(text) => pairs.push((key.clone(), ArgumentValue::Text(text.clone()))),
                        SettingValue::Null => pairs.push((key.clone(), ArgumentValue::Text(String::new()))),
                        SettingValue::Secret(secret) => pairs.push((key.clone(), ArgumentValue::Secret(secret.clone()))),
                        _ => self.wrong_type(name, "a mapping of strings"),
                    }
                }
                pairs
            }
            _ => {
                let mut pairs = Vec::new();
                for item in self.list(name, value) {
                    match item.split_once('=') {
                        Some((key, value)) => pairs.push((key.to_owned(), ArgumentValue::Text(value.to_owned()))),
                        None => self.wrong_type(name, "`KEY=value` entries or a mapping"),
                    }
                }
                pairs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_plugins_are_recognised_with_any_tag_host_or_digest() {
        assert_eq!(builder_plugin("plugins/docker"), Some(PluginFamily::Docker));
        assert_eq!(builder_plugin("plugins/docker:20.18"), Some(PluginFamily::Docker));
        assert_eq!(builder_plugin("docker.io/plugins/docker@sha256:abc"), Some(PluginFamily::Docker));
        assert_eq!(builder_plugin("quay.io/thegeeklab/drone-docker-buildx:24"), Some(PluginFamily::Buildx));
        assert_eq!(builder_plugin("codeberg.org/woodpecker-plugins/docker-buildx:5"), Some(PluginFamily::Buildx));
        assert_eq!(builder_plugin("plugins/ecr"), None, "ECR logs in with AWS keys: it stays a plugin");
        assert_eq!(builder_plugin("plugins/dockerx"), None);
        assert_eq!(builder_plugin("registry.example.com/plugins/docker"), None);
    }

    #[test]
    fn paths_join_and_relate_inside_the_workspace() {
        assert_eq!(join_path("/w/src", "."), "/w/src");
        assert_eq!(join_path("/w/src", "./app/"), "/w/src/app");
        assert_eq!(join_path("/w/src", "../x"), "/w/x");
        assert_eq!(relative_to("/w/src/docker/Dockerfile", "/w/src"), Some("docker/Dockerfile".into()));
        assert_eq!(relative_to("/w/src/Dockerfile", "/w/src/app"), None);
        assert_eq!(relative_to("/w/srcx/Dockerfile", "/w/src"), None);
    }

    #[test]
    fn names_are_checked_like_docker_checks_them() {
        assert!(is_repository("127.0.0.1:5000/team/app"));
        assert!(is_repository("team/app"));
        assert!(!is_repository("Team/app"));
        assert!(!is_repository("team/app:latest"));
        assert!(is_tag("1.2.3-rc.1"));
        assert!(!is_tag("-x"));
        assert!(!is_tag("a/b"));
        assert_eq!(registry_host("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(registry_host("team/app"), "docker.io");
    }
}
