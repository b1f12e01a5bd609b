//! The steps of a workflow: the table, the services, and each step's details.

use crate::compile::matrix_rows;
use crate::model::{CloneSpec, FailurePolicy, SettingValue, WorkflowSpec};
use crate::plan::StepKind;
use std::fmt::Write;

use super::collect::*;
use super::conditions::*;
use super::text::*;
use super::*;

pub(super) fn render_step_table(out: &mut String, doc: &WorkflowDoc<'_>) {
    let notes: Vec<Vec<String>> = doc.steps.iter().map(step_notes).collect();
    let with_notes = notes.iter().any(|notes| !notes.is_empty());
    out!(out, "| Step | Does | After | Runs{} |", if with_notes { " | Notes" } else { "" });
    out!(out, "|---|---|---|---|{}", if with_notes { "---|" } else { "" });
    for (step, notes) in doc.steps.iter().zip(&notes) {
        let name = step_name_link(step);
        let after =
            if step.after.is_empty() { "—".to_owned() } else { step.after.iter().map(|name| code(name)).collect::<Vec<_>>().join(", ") };
        let mut row = format!("| {} | {} | {} | {} |", cell(&name), cell(&does(step)), cell(&after), cell(&runs(doc.spec, step)));
        if with_notes {
            let _ = write!(row, " {} |", cell(&notes.join(", ")));
        }
        out!(out, "{row}");
    }
    out!(out);
}

pub(super) fn render_service_table(out: &mut String, doc: &WorkflowDoc<'_>) {
    out!(out, "Services start before the first step and run until the workflow ends; steps reach each one at its name as host name.");
    out!(out);
    let conditional = doc.services.iter().any(StepView::conditional);
    out!(out, "| Service | Image | Ports |{}", if conditional { " Runs |" } else { "" });
    out!(out, "|---|---|---|{}", if conditional { "---|" } else { "" });
    for service in &doc.services {
        let name = step_name_link(service);
        let image = service.image().map_or("—".to_owned(), code);
        let ports =
            service.spec.map(|spec| spec.container.ports.iter().map(|port| code(port)).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        let ports = if ports.is_empty() { "—".to_owned() } else { ports };
        let mut row = format!("| {} | {} | {} |", cell(&name), cell(&image), cell(&ports));
        if conditional {
            let _ = write!(row, " {} |", cell(&runs(doc.spec, service)));
        }
        out!(out, "{row}");
    }
    out!(out);
}

/// "commands in `golang:1.23`", "plugin `plugins/s3`", "built-in git clone".
pub(super) fn does(step: &StepView<'_>) -> String {
    if step.kind == StepKind::Build {
        return build_summary(step);
    }
    let image = step.image().map(code);
    match (step.kind, image) {
        (StepKind::Clone, None) => "built-in git clone".to_owned(),
        (StepKind::Clone, Some(image)) => format!("clone with {image}"),
        (_, Some(image)) if step.is_plugin() => format!("plugin {image}"),
        (StepKind::Plugin, Some(image)) => format!("plugin {image}"),
        (StepKind::Plugin, None) => "plugin (no image)".to_owned(),
        (StepKind::Commands, Some(image)) if runs_image_as_is(step) => format!("runs {image}"),
        (StepKind::Commands, Some(image)) => format!("{} in {image}", commands_noun(step)),
        (StepKind::Commands, None) => format!("{} on the host", commands_noun(step)),
        (StepKind::Service, Some(image)) => format!("service {image}"),
        (StepKind::Service, None) => "service".to_owned(),
        (StepKind::Build, _) => build_summary(step),
    }
}

/// "builds and pushes `registry/app:1.2`, `registry/app:latest` (plugin `plugins/docker`, built by Gantry)".
fn build_summary(step: &StepView<'_>) -> String {
    let plugin = step.image().map(|image| format!(" (plugin {}, built by Gantry)", code(image))).unwrap_or_default();
    let Some(build) = step.plan.and_then(|plan| plan.build.as_ref()) else {
        return format!("builds an image{plugin}");
    };
    let verb = if build.push { "builds and pushes" } else { "builds (no push)" };
    let mut names: Vec<String> = build.references().iter().map(|reference| code(reference)).collect();
    if let Some(file) = &build.tags_file {
        names.push(format!("tags from {}{}", code(&file.path), if file.required { "" } else { " if present" }));
    }
    format!("{verb} {}{plugin}", names.join(", "))
}

/// The facts of an image build step: context, Dockerfile, names, arguments, credentials.
fn render_build_details(out: &mut String, step: &StepView<'_>) {
    let Some(build) = step.plan.and_then(|plan| plan.build.as_ref()) else {
        out!(out, "Builds an image; nothing is built for the trigger shown.");
        out!(out);
        return;
    };
    match &build.plugin {
        Some(plugin) => out!(
            out,
            "Image build from the settings of {}, run by Gantry on the agent's engine (no Docker-in-Docker, not privileged).",
            code(plugin)
        ),
        None => out!(out, "Image build, run by Gantry on the agent's engine."),
    }
    out!(out);
    let mut facts = vec![format!("Context {}, Dockerfile {}.", code(&build.context), code(&build.dockerfile))];
    let references: Vec<String> = build.references().iter().map(|reference| code(reference)).collect();
    facts.push(format!("{} {}.", if build.push { "Pushes" } else { "Tags, without pushing," }, references.join(", ")));
    if let Some(file) = &build.tags_file {
        let presence = if file.required { "" } else { ", when that file exists" };
        facts.push(format!("Tags are read from {} when the step runs{presence}.", code(&file.path)));
    }
    if let Some(target) = &build.target {
        facts.push(format!("Target stage {}.", code(target)));
    }
    if !build.build_args.is_empty() || !build.build_args_from_env.is_empty() {
        let mut args: Vec<String> = build.build_args.keys().map(|name| code(name)).collect();
        args.extend(build.build_args_from_env.keys().map(|name| format!("{} (from the environment)", code(name))));
        facts.push(format!("Build arguments {}.", args.join(", ")));
    }
    match &build.login {
        Some(login) => facts.push(format!("Logs in to {} with the step's settings.", code(&login.registry))),
        None if build.push => facts.push("Pushes with the repository's registry credentials (`gantry registry add`).".to_owned()),
        None => {}
    }
    for fact in facts {
        out!(out, "- {fact}");
    }
    out!(out);
}

/// No commands, entrypoint or arguments: the image's own entrypoint does the work.
pub(super) fn runs_image_as_is(step: &StepView<'_>) -> bool {
    step.spec.is_some_and(|spec| spec.commands.is_empty() && spec.command.is_empty() && spec.entrypoint.is_none())
}

pub(super) fn commands_noun(step: &StepView<'_>) -> String {
    match step.spec {
        Some(spec) if !spec.commands.is_empty() => count(spec.commands.len(), "command", "commands"),
        Some(spec) if spec.entrypoint.is_some() => "entrypoint".to_owned(),
        Some(spec) if !spec.command.is_empty() => "image command".to_owned(),
        _ => "image default".to_owned(),
    }
}

/// The "Runs" cell: conditions in words; "on success" (of the steps it waits for) when there
/// are none.
pub(super) fn runs(workflow: &WorkflowSpec, step: &StepView<'_>) -> String {
    if let Some(reason) = &step.never {
        return format!("**never**: {reason}");
    }
    if step.kind == StepKind::Clone && step.after.is_empty() && step.spec.is_none_or(|spec| spec.when.is_empty()) {
        return "first".to_owned();
    }
    let Some(spec) = step.spec else { return "first".to_owned() };
    let rows = workflow.matrix.as_ref().and_then(|matrix| matrix_rows(matrix).ok());
    let sets: Vec<String> =
        spec.when.alternatives.iter().map(|set| describe_set(set, Scope::Step, rows.as_deref())).filter(|text| !text.is_empty()).collect();
    if sets.is_empty() {
        return if step.kind == StepKind::Service { "always".to_owned() } else { "on success".to_owned() };
    }
    sets.join("; or ")
}

pub(super) fn step_notes(step: &StepView<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    if step.detach() {
        notes.push("detached: later steps do not wait for it".to_owned());
    }
    match step.failure() {
        FailurePolicy::Fail => {}
        FailurePolicy::Ignore => notes.push("failure ignored".to_owned()),
        FailurePolicy::Cancel => notes.push("failure cancels the pipeline".to_owned()),
    }
    if let Some(spec) = step.spec {
        if spec.container.privileged {
            notes.push("**privileged**".to_owned());
        }
        if let Some(seconds) = spec.timeout_seconds {
            notes.push(format!("timeout {}", human_duration(seconds)));
        }
    }
    if !step.secrets.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for secret in &step.secrets {
            let name = code(&secret.secret);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        notes.push(format!("secrets {}", names.join(", ")));
    }
    notes
}

/// Whether a step gets its own section: every written step, except services that are just an
/// image (the services table already says all there is).
pub(super) fn has_details(step: &StepView<'_>) -> bool {
    if step.spec.is_none() {
        return false;
    }
    if step.kind != StepKind::Service {
        return true;
    }
    let mut probe = String::new();
    render_step_details(&mut probe, step);
    probe.lines().any(|line| line.starts_with("- ") || line.starts_with("```"))
}

/// A link to a step's section, or its name when it has none.
pub(super) fn step_name_link(step: &StepView<'_>) -> String {
    if step.anchor.is_empty() { code(&step.name) } else { format!("[{}](#{})", code(&step.name), step.anchor) }
}

pub(super) fn render_step_details(out: &mut String, step: &StepView<'_>) {
    let Some(spec) = step.spec else { return };
    out!(out, "### {}", code(&step.name));
    out!(out);
    let mut facts: Vec<String> = Vec::new();
    match step.kind {
        StepKind::Build => render_build_details(out, step),
        _ if runs_image_as_is(step) => {
            let what = match step.kind {
                _ if step.is_plugin() => "Plugin",
                StepKind::Plugin => "Plugin",
                StepKind::Service => "Service",
                StepKind::Clone => "Clone plugin",
                StepKind::Commands | StepKind::Build => "Runs",
            };
            match &spec.image {
                Some(image) => out!(out, "{what} {}{}", code(image), if spec.settings.is_empty() { "." } else { " with settings:" }),
                None => out!(out, "{what} without an image{}", if spec.settings.is_empty() { "." } else { ", with settings:" }),
            }
            out!(out);
            if !spec.settings.is_empty() {
                out.push_str(&fenced("yaml", &settings_yaml(&spec.settings)));
                out!(out);
            }
        }
        _ => {
            let place = match (&spec.image, &spec.directory) {
                (Some(image), Some(directory)) => format!("In {}, from directory {}", code(image), code(directory)),
                (Some(image), None) => format!("In {}", code(image)),
                (None, Some(directory)) => format!("On the host, from directory {}", code(directory)),
                (None, None) => "On the host".to_owned(),
            };
            if let Some(entrypoint) = &spec.entrypoint {
                facts.push(format!("Entrypoint: {}.", code(&entrypoint.join(" "))));
            }
            if !spec.commands.is_empty() {
                let shell = spec.shell.as_ref().map(|shell| format!(" (shell {})", code(shell))).unwrap_or_default();
                out!(out, "{place}{shell}:");
                out!(out);
                out.push_str(&fenced("sh", &commands_block(&spec.commands)));
                out!(out);
            } else if !spec.command.is_empty() {
                out!(out, "{place}, runs the image with arguments {}.", code(&spec.command.join(" ")));
                out!(out);
            } else {
                out!(out, "{place}.");
                out!(out);
            }
            if !spec.settings.is_empty() {
                out!(out, "Settings:");
                out!(out);
                out.push_str(&fenced("yaml", &settings_yaml(&spec.settings)));
                out!(out);
            }
        }
    }
    let environment: Vec<String> = spec
        .environment
        .iter()
        .filter(|entry| !matches!(entry.value, SettingValue::Secret(_)))
        .map(|entry| environment_entry(&entry.name, &entry.value))
        .collect();
    if !environment.is_empty() {
        facts.push(format!("Environment: {}.", environment.join(", ")));
    }
    if !step.secrets.is_empty() {
        let uses: Vec<String> = step.secrets.iter().map(|secret| format!("{} as {}", code(&secret.secret), secret.how)).collect();
        facts.push(format!("Secrets: {}.", uses.join(", ")));
    }
    if !spec.container.ports.is_empty() && step.kind != StepKind::Service {
        facts.push(format!("Ports: {}.", spec.container.ports.iter().map(|port| code(port)).collect::<Vec<_>>().join(", ")));
    }
    if let Some(healthcheck) = &spec.healthcheck {
        facts.push(format!(
            "Ready when {} succeeds (every {} s, up to {} tries).",
            code(&healthcheck.command.join(" ")),
            healthcheck.interval_seconds,
            healthcheck.retries
        ));
    }
    let volumes = step.plan.map_or(&spec.container.volumes, |plan| &plan.container.volumes);
    if !volumes.is_empty() {
        facts.push(format!("Volumes: {}.", volumes.iter().map(|volume| code(volume)).collect::<Vec<_>>().join(", ")));
    }
    if spec.container.privileged {
        facts.push("**Privileged**: full access to the host's devices and kernel.".to_owned());
    }
    if let Some(mode) = &spec.container.network_mode {
        facts.push(format!("Network mode: {}.", code(mode)));
    }
    if !spec.container.devices.is_empty() {
        facts.push(format!("Devices: {}.", spec.container.devices.iter().map(|device| code(device)).collect::<Vec<_>>().join(", ")));
    }
    if let Some(user) = &spec.container.user {
        facts.push(format!("Runs as user {}.", code(user)));
    }
    if let Some(seconds) = spec.timeout_seconds {
        facts.push(format!("Times out after {}.", human_duration(seconds)));
    }
    if let Some(limit) = &spec.container.memory_limit {
        facts.push(format!("Memory limit: {}.", code(limit)));
    }
    if spec.pull == Some(crate::model::PullPolicy::Always) {
        facts.push("Pulls the image every time.".to_owned());
    } else if spec.pull == Some(crate::model::PullPolicy::Never) {
        facts.push("Never pulls the image: it must already be on the agent.".to_owned());
    }
    if let Some(options) = &spec.backend_options
        && let Some(map) = options.as_object()
        && !map.is_empty()
    {
        let keys: Vec<String> = map.keys().map(|key| code(key)).collect();
        facts.push(format!("Backend options for {}.", keys.join(", ")));
    }
    for fact in facts {
        out!(out, "- {fact}");
    }
    if !out.ends_with("\n\n") {
        out!(out);
    }
}

/// Options of the built-in clone, if any were set.
pub(super) fn clone_options(workflow: &WorkflowSpec) -> Option<String> {
    let CloneSpec::Default { depth, tags, submodules, lfs } = &workflow.clone else { return None };
    let mut options = Vec::new();
    if let Some(depth) = depth {
        options.push(if *depth == 0 { "full history".to_owned() } else { format!("depth {depth}") });
    }
    match tags {
        Some(true) => options.push("with tags".to_owned()),
        Some(false) => options.push("without tags".to_owned()),
        None => {}
    }
    if *submodules == Some(true) {
        options.push("with submodules".to_owned());
    }
    if *lfs == Some(true) {
        options.push("with Git LFS files".to_owned());
    }
    (!options.is_empty()).then(|| format!("Clone: {}.", options.join(", ")))
}

pub(super) fn commands_block(commands: &[String]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut shown = 0;
    for command in commands {
        let command_lines: Vec<&str> = command.trim_end().lines().collect();
        if lines.len() + command_lines.len() > MAX_COMMAND_LINES && shown > 0 {
            break;
        }
        for line in command_lines.iter().take(MAX_COMMAND_LINES) {
            lines.push(shorten(line, MAX_COMMAND_WIDTH));
        }
        if command_lines.len() > MAX_COMMAND_LINES {
            lines.push(format!("# … {} more lines of this command", command_lines.len() - MAX_COMMAND_LINES));
        }
        shown += 1;
    }
    if shown < commands.len() {
        let rest = commands.len() - shown;
        lines.push(format!("# … and {} (see the pipeline file)", count(rest, "more command", "more commands")));
    }
    lines.join("\n")
}

/// Settings as YAML, one key a line, values shortened; secrets as written (`from_secret`).
pub(super) fn settings_yaml(settings: &[(String, SettingValue)]) -> String {
    settings.iter().map(|(key, value)| format!("{}: {}", yaml_key(key), yaml_value(value, false))).collect::<Vec<_>>().join("\n")
}

pub(super) fn yaml_key(key: &str) -> String {
    yaml_scalar(key, false)
}

pub(super) fn yaml_value(value: &SettingValue, flow: bool) -> String {
    let text = match value {
        SettingValue::Null => "~".to_owned(),
        SettingValue::Scalar(text) => {
            let first = text.lines().next().unwrap_or("");
            let shortened = if text.lines().count() > 1 { format!("{first} …") } else { text.clone() };
            yaml_scalar(&shorten(&shortened, MAX_VALUE_WIDTH), flow)
        }
        SettingValue::Secret(name) => format!("{{ from_secret: {} }}", yaml_scalar(name, true)),
        SettingValue::List(items) => format!("[{}]", items.iter().map(|item| yaml_value(item, true)).collect::<Vec<_>>().join(", ")),
        SettingValue::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|(key, value)| format!("{}: {}", yaml_scalar(key, true), yaml_value(value, true)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if flow { text } else { shorten_flow(&text) }
}

/// Long flow collections are cut at a separator so that the secrets in them stay whole.
pub(super) fn shorten_flow(text: &str) -> String {
    if text.chars().count() <= MAX_VALUE_WIDTH * 2 || text.contains("from_secret") {
        return text.to_owned();
    }
    shorten(text, MAX_VALUE_WIDTH * 2)
}

/// A scalar as YAML would read it back as the same string (roughly: quoted when in doubt).
pub(super) fn yaml_scalar(text: &str, flow: bool) -> String {
    let special_start = text
        .starts_with(['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' '])
        || text.ends_with(' ');
    let special_inside =
        text.contains(": ") || text.contains(" #") || text.ends_with(':') || (flow && text.contains([',', '[', ']', '{', '}']));
    if text.is_empty() || special_start || special_inside || text.contains(['\n', '\t']) {
        serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
    } else {
        text.to_owned()
    }
}

pub(super) fn environment_entry(name: &str, value: &SettingValue) -> String {
    match value {
        SettingValue::Secret(secret) => format!("{} from secret {}", code(name), code(secret)),
        SettingValue::Null => code(&format!("{name}=")),
        SettingValue::Scalar(text) => code(&format!("{name}={}", shorten(text.lines().next().unwrap_or(""), MAX_VALUE_WIDTH))),
        other => code(&format!("{name}={}", yaml_value(other, true))),
    }
}
