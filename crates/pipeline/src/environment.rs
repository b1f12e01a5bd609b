//! Built-in variables (`CI_*`, and `DRONE_*` for Drone files and Drone plugins) and the encoding
//! of `settings` and `environment` values into container variables.

use std::collections::BTreeMap;

use crate::context::Context;
use crate::model::{Dialect, SettingValue};
use crate::plan::{SECRET_PLACEHOLDER_PREFIX, SECRET_PLACEHOLDER_SUFFIX, SecretReference, StepKind, Workspace};

/// Woodpecker leaves `CI_PIPELINE_FILES` undefined above this many files.
const MAX_LISTED_FILES: usize = 500;

/// What the built-in variables describe besides the context.
pub struct WorkflowFacts<'a> {
    pub dialect: Dialect,
    pub name: &'a str,
    pub number: usize,
    pub workspace: &'a Workspace,
    pub matrix: Option<&'a BTreeMap<String, String>>,
    pub platform: &'a str,
}

/// Variables every step of a workflow sees, also usable in `${...}` and `evaluate`.
pub fn builtin_environment(context: &Context, facts: &WorkflowFacts<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |key: &str, value: &str| {
        env.insert(key.to_owned(), value.to_owned());
    };
    let tag = context.tag.clone().unwrap_or_default();
    let is_pull = context.event.starts_with("pull_request");
    let source_branch = context.source_branch.clone().unwrap_or_else(|| if is_pull { String::new() } else { context.branch.clone() });
    let target_branch = context.target_branch.clone().unwrap_or_else(|| context.branch.clone());
    let (os, arch) = facts.platform.split_once('/').unwrap_or((facts.platform, ""));
    let arch = arch.split('/').next().unwrap_or(arch);
    let workspace_dir = facts.workspace.directory();
    let number = context.pipeline_number.to_string();
    let workflow_number = facts.number.to_string();
    let forge_url = forge_url(context);

    // Shared by both dialects: Woodpecker exports a Drone compatibility set and Drone plugins read it.
    set("CI", if facts.dialect == Dialect::Woodpecker { "woodpecker" } else { "true" });
    set("DRONE", "true");
    set("DRONE_BRANCH", &target_branch);
    set("DRONE_SOURCE_BRANCH", &source_branch);
    set("DRONE_TARGET_BRANCH", &target_branch);
    set("DRONE_BUILD_NUMBER", &number);
    set("DRONE_BUILD_EVENT", drone_event(&context.event));
    set("DRONE_BUILD_STATUS", "success");
    set("DRONE_COMMIT", &context.commit_sha);
    set("DRONE_COMMIT_SHA", &context.commit_sha);
    set("DRONE_COMMIT_AFTER", &context.commit_sha);
    set("DRONE_COMMIT_REF", &context.reference);
    set("DRONE_COMMIT_BRANCH", &context.branch);
    set("DRONE_COMMIT_MESSAGE", &context.commit_message);
    set("DRONE_COMMIT_AUTHOR", &context.commit_author);
    set("DRONE_COMMIT_AUTHOR_NAME", &context.commit_author);
    set("DRONE_COMMIT_AUTHOR_EMAIL", &context.commit_author_email);
    set("DRONE_COMMIT_LINK", &commit_link(context));
    set("DRONE_TAG", &tag);
    set("DRONE_PULL_REQUEST", context.pull_request.as_deref().unwrap_or(""));
    set("DRONE_REPO", &context.repo);
    set("DRONE_REPO_OWNER", context.repo_owner());
    set("DRONE_REPO_NAMESPACE", context.repo_owner());
    set("DRONE_REPO_NAME", context.repo_name());
    set("DRONE_REPO_BRANCH", &context.default_branch);
    set("DRONE_REPO_LINK", &context.repo_url);
    set("DRONE_REPO_SCM", "git");
    set("DRONE_GIT_HTTP_URL", &context.repo_clone_url);
    set("DRONE_REMOTE_URL", &context.repo_clone_url);
    set("DRONE_DEPLOY_TO", context.deploy_target.as_deref().unwrap_or(""));
    set("DRONE_STAGE_NAME", facts.name);
    set("DRONE_STAGE_NUMBER", &workflow_number);
    set("DRONE_STAGE_OS", os);
    set("DRONE_STAGE_ARCH", arch);
    set("DRONE_STAGE_KIND", "pipeline");
    set("DRONE_SYSTEM_HOST", &context.instance);
    set("DRONE_SYSTEM_HOSTNAME", &context.instance);
    set("DRONE_WORKSPACE", &workspace_dir);
    set("DRONE_WORKSPACE_BASE", &facts.workspace.base);
    set("DRONE_WORKSPACE_PATH", &facts.workspace.path);
    if let Some(action) = &context.action {
        set("DRONE_BUILD_ACTION", action);
    }
    if !tag.is_empty() {
        add_semver(&mut set, &tag);
    }

    set("CI_REPO", &context.repo);
    set("CI_REPO_OWNER", context.repo_owner());
    set("CI_REPO_NAME", context.repo_name());
    set("CI_REPO_URL", &context.repo_url);
    set("CI_REPO_CLONE_URL", &context.repo_clone_url);
    set("CI_REPO_DEFAULT_BRANCH", &context.default_branch);
    set("CI_REPO_PRIVATE", "false");
    set("CI_COMMIT_SHA", &context.commit_sha);
    set("CI_COMMIT_REF", &context.reference);
    set("CI_COMMIT_REFSPEC", &context.reference);
    set("CI_COMMIT_BRANCH", &target_branch);
    set("CI_COMMIT_MESSAGE", &context.commit_message);
    set("CI_COMMIT_AUTHOR", &context.commit_author);
    set("CI_COMMIT_AUTHOR_EMAIL", &context.commit_author_email);
    set("CI_COMMIT_URL", &commit_link(context));
    if !tag.is_empty() {
        set("CI_COMMIT_TAG", &tag);
    }
    if is_pull {
        set("CI_COMMIT_SOURCE_BRANCH", &source_branch);
        set("CI_COMMIT_TARGET_BRANCH", &target_branch);
        set("CI_COMMIT_PULL_REQUEST", context.pull_request.as_deref().unwrap_or(""));
    }
    set("CI_PIPELINE_NUMBER", &number);
    set("CI_PIPELINE_EVENT", &context.event);
    set("CI_PIPELINE_FORGE_URL", &commit_link(context));
    if let Some(target) = &context.deploy_target {
        set("CI_PIPELINE_DEPLOY_TARGET", target);
    }
    if let Some(files) = &context.changed_files
        && files.len() <= MAX_LISTED_FILES
    {
        set("CI_PIPELINE_FILES", &serde_json::to_string(files).unwrap_or_default());
    }
    if let Some(cron) = &context.cron {
        set("CI_PIPELINE_CRON", cron);
    }
    set("CI_WORKFLOW_NAME", facts.name);
    set("CI_WORKFLOW_NUMBER", &workflow_number);
    set("CI_WORKSPACE", &workspace_dir);
    set("CI_WORKSPACE_BASE", &facts.workspace.base);
    set("CI_WORKSPACE_PATH", &facts.workspace.path);
    set("CI_SYSTEM_NAME", "gantry");
    set("CI_SYSTEM_HOST", &context.instance);
    set("CI_SYSTEM_PLATFORM", facts.platform);
    set("CI_SYSTEM_VERSION", env!("CARGO_PKG_VERSION"));
    set("CI_FORGE_URL", &forge_url);
    set("CI_MACHINE", &context.instance);
    if let Some(matrix) = facts.matrix {
        for (key, value) in matrix {
            env.insert(key.clone(), value.clone());
        }
    }
    env
}

/// Variables that depend on the step.
pub fn step_environment(name: &str, kind: StepKind, number: usize) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("CI_STEP_NAME".to_owned(), name.to_owned());
    env.insert("CI_STEP_TYPE".to_owned(), kind.as_str().to_owned());
    env.insert("CI_STEP_NUMBER".to_owned(), number.to_string());
    env.insert("DRONE_STEP_NAME".to_owned(), name.to_owned());
    env.insert("DRONE_STEP_NUMBER".to_owned(), number.to_string());
    env
}

fn drone_event(event: &str) -> &str {
    match event {
        "manual" => "custom",
        "deployment" => "promote",
        other => other,
    }
}

fn forge_url(context: &Context) -> String {
    let url = if context.repo_url.is_empty() { &context.repo_clone_url } else { &context.repo_url };
    match url.split_once("://") {
        Some((scheme, _)) if scheme.starts_with("http") => format!("{scheme}://{}", context.forge_host()),
        _ => String::new(),
    }
}

fn commit_link(context: &Context) -> String {
    if context.repo_url.starts_with("http") && !context.commit_sha.is_empty() {
        format!("{}/commit/{}", context.repo_url.trim_end_matches('/'), context.commit_sha)
    } else {
        String::new()
    }
}

/// Drone's `DRONE_SEMVER*` variables, when the tag is a semantic version (with or without `v`).
fn add_semver(set: &mut impl FnMut(&str, &str), tag: &str) {
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let (core, build) = version.split_once('+').map_or((version, ""), |(core, build)| (core, build));
    let (core, prerelease) = core.split_once('-').map_or((core, ""), |(core, pre)| (core, pre));
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3 && parts.iter().all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    if !numeric {
        set("DRONE_SEMVER_ERROR", &format!("{tag} is not a semantic version"));
        return;
    }
    set("DRONE_SEMVER", version);
    set("DRONE_SEMVER_MAJOR", parts[0]);
    set("DRONE_SEMVER_MINOR", parts[1]);
    set("DRONE_SEMVER_PATCH", parts[2]);
    set("DRONE_SEMVER_SHORT", core);
    set("DRONE_SEMVER_PRERELEASE", prerelease);
    set("DRONE_SEMVER_BUILD", build);
}

/// The variable a plugin setting becomes. Woodpecker turns `.` and `-` into `_`; Drone only upper-cases.
pub fn setting_variable(dialect: Dialect, key: &str) -> String {
    let key = match dialect {
        Dialect::Woodpecker => key.replace(['.', '-'], "_"),
        Dialect::Drone => key.to_owned(),
    };
    format!("PLUGIN_{}", key.to_uppercase())
}

/// Encodes a value for a container variable: scalars as text, flat lists comma-joined,
/// anything nested as JSON (with scalars as strings, as Woodpecker does). `None` for null.
pub fn encode_value(value: &SettingValue, variable: &str, secrets: &mut Vec<SecretReference>) -> Option<String> {
    match value {
        SettingValue::Null => None,
        SettingValue::Scalar(text) => Some(text.clone()),
        SettingValue::Secret(name) => {
            secrets.push(SecretReference { env: variable.to_owned(), secret: name.clone(), embedded: false });
            None
        }
        SettingValue::List(items) if items.iter().all(|item| matches!(item, SettingValue::Scalar(_))) => Some(
            items
                .iter()
                .map(|item| match item {
                    SettingValue::Scalar(text) => text.as_str(),
                    _ => "",
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        SettingValue::List(_) | SettingValue::Map(_) => {
            let mut embedded = Vec::new();
            let json = to_json(value, &mut embedded);
            for secret in embedded {
                if !secrets.iter().any(|existing| existing.env == variable && existing.secret == secret) {
                    secrets.push(SecretReference { env: variable.to_owned(), secret, embedded: true });
                }
            }
            Some(json.to_string())
        }
    }
}

fn to_json(value: &SettingValue, embedded: &mut Vec<String>) -> serde_json::Value {
    match value {
        SettingValue::Null => serde_json::Value::Null,
        SettingValue::Scalar(text) => serde_json::Value::String(text.clone()),
        SettingValue::Secret(name) => {
            embedded.push(name.clone());
            serde_json::Value::String(format!("{SECRET_PLACEHOLDER_PREFIX}{name}{SECRET_PLACEHOLDER_SUFFIX}"))
        }
        SettingValue::List(items) => serde_json::Value::Array(items.iter().map(|item| to_json(item, embedded)).collect()),
        SettingValue::Map(entries) => {
            serde_json::Value::Object(entries.iter().map(|(key, value)| (key.clone(), to_json(value, embedded))).collect())
        }
    }
}
