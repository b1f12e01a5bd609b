//! Checks that need the whole workflow or the whole pipeline, beyond what reading one value finds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use crate::compile::{
    CLONE_STEP, matrix_limit_diagnostic, matrix_rows, resolved_volume, unknown_step_diagnostic, unknown_workflow_diagnostic,
};
use crate::context::Context;
use crate::dag::find_cycle;
use crate::diagnostic::{Diagnostic, code, did_you_mean};
use crate::environment::{WorkflowFacts, builtin_environment, setting_variable};
use crate::image_build::{build_form, read_build, runs_natively};
use crate::model::{CloneSpec, Dialect, StepSpec, WorkflowSpec};
use crate::plan::Workspace;
use crate::substitution::referenced_variables;
use crate::trust::needs;
use crate::yaml::{Node, NodeValue};

/// Lints workflows of one pipeline (all files of a repository together).
pub fn lint_workflows(workflows: &[WorkflowSpec]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for workflow in workflows {
        check_steps(workflow, &mut diagnostics);
        check_matrix(workflow, &mut diagnostics);
        check_unreachable(workflow, &mut diagnostics);
        check_substitutions(workflow, &mut diagnostics);
        check_services(workflow, &mut diagnostics);
        check_trust(workflow, &mut diagnostics);
        check_builds(workflow, &mut diagnostics);
    }
    check_workflow_graph(workflows, &mut diagnostics);
    diagnostics
}

fn clone_names(workflow: &WorkflowSpec) -> Vec<String> {
    match &workflow.clone {
        CloneSpec::Default { .. } => vec![CLONE_STEP.to_owned()],
        CloneSpec::Skip => Vec::new(),
        CloneSpec::Custom(steps) => steps.iter().map(|step| step.name.clone()).collect(),
    }
}

fn check_steps(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let graph_mode = workflow.steps.iter().any(|step| step.depends_on.is_some());
    let mut names: Vec<String> = clone_names(workflow);
    let mut first_seen: HashMap<&str, &StepSpec> = HashMap::new();
    for step in &workflow.steps {
        if let Some(first) = first_seen.get(step.name.as_str()) {
            let message = format!("step name `{}` is used twice (first at line {})", step.name, first.span.line);
            diagnostics.push(if graph_mode {
                Diagnostic::error(code::DUPLICATE_NAME, &workflow.file, step.span, message)
                    .with_hint("steps are found by name in `depends_on`: give each its own name")
            } else {
                Diagnostic::warning(code::DUPLICATE_NAME, &workflow.file, step.span, message)
                    .with_hint("give each step its own name; this one runs as a numbered copy")
            });
        } else {
            first_seen.insert(&step.name, step);
        }
        names.push(step.name.clone());
    }
    let mut service_names: HashSet<&str> = HashSet::new();
    for service in &workflow.services {
        if !service_names.insert(&service.name) {
            diagnostics.push(
                Diagnostic::error(
                    code::DUPLICATE_NAME,
                    &workflow.file,
                    service.span,
                    format!("service name `{}` is used twice", service.name),
                )
                .with_hint("the name is the service's host name, so it must be unique"),
            );
        }
    }
    if !graph_mode {
        return;
    }
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    for step in &workflow.steps {
        for dependency in step.depends_on.iter().flatten() {
            if dependency.name == step.name {
                diagnostics.push(
                    Diagnostic::error(
                        code::DEPENDENCY_CYCLE,
                        &workflow.file,
                        dependency.span,
                        format!("step `{}` depends on itself", step.name),
                    )
                    .with_hint("remove it from its own `depends_on`"),
                );
            } else if !known.contains(dependency.name.as_str()) && !dependency.optional {
                if workflow.services.iter().any(|service| service.name == dependency.name) {
                    diagnostics.push(
                        Diagnostic::error(
                            code::UNKNOWN_DEPENDENCY,
                            &workflow.file,
                            dependency.span,
                            format!("step `{}` depends on service `{}`; services are not steps", step.name, dependency.name),
                        )
                        .with_hint("services start before every step; to wait until one is ready give it a `healthcheck`"),
                    );
                } else {
                    diagnostics.push(unknown_step_diagnostic(workflow, &step.name, dependency, &names));
                }
            }
        }
    }
    let graph: Vec<(&str, Vec<&str>)> = workflow
        .steps
        .iter()
        .map(|step| {
            let dependencies = step
                .depends_on
                .iter()
                .flatten()
                .filter(|dependency| dependency.name != step.name)
                .map(|dependency| dependency.name.as_str())
                .collect();
            (step.name.as_str(), dependencies)
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let first = workflow.steps.iter().find(|step| step.name == cycle[0]);
        let span = first
            .and_then(|step| {
                step.depends_on.iter().flatten().find(|dependency| cycle.get(1) == Some(&dependency.name)).map(|dependency| dependency.span)
            })
            .or(first.map(|step| step.span))
            .unwrap_or(workflow.span);
        diagnostics.push(
            Diagnostic::error(
                code::DEPENDENCY_CYCLE,
                &workflow.file,
                span,
                format!("steps depend on each other in a cycle: {}", cycle.join(" → ")),
            )
            .with_hint("remove one of these `depends_on` entries so the steps can run in some order"),
        );
    }
}

fn check_matrix(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let Some(matrix) = &workflow.matrix else { return };
    if let Err(count) = matrix_rows(matrix) {
        diagnostics.push(matrix_limit_diagnostic(workflow, matrix, count));
    }
    for (axis, values) in &matrix.axes {
        if values.is_empty() {
            diagnostics.push(
                Diagnostic::warning(
                    code::UNREACHABLE_STEP,
                    &workflow.file,
                    matrix.span,
                    format!("matrix axis `{axis}` has no values, so the workflow has no rows"),
                )
                .with_hint("list at least one value"),
            );
        }
    }
}

/// Steps whose conditions cannot hold together with their workflow's.
fn check_unreachable(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let workflow_events = workflow.when.possible_events();
    let axis_values: BTreeMap<&str, BTreeSet<&str>> = match &workflow.matrix {
        Some(matrix) if matrix.include.is_empty() => {
            matrix.axes.iter().map(|(axis, values)| (axis.as_str(), values.iter().map(String::as_str).collect())).collect()
        }
        Some(matrix) => {
            let mut axes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for row in &matrix.include {
                for (key, value) in row {
                    axes.entry(key.as_str()).or_default().insert(value.as_str());
                }
            }
            axes
        }
        None => BTreeMap::new(),
    };
    for step in workflow.steps.iter().chain(&workflow.services) {
        if step.when.is_empty() {
            continue;
        }
        if let (Some(allowed), Some(step_events)) = (&workflow_events, step.when.possible_events())
            && step_events.iter().chain(allowed).all(|event| crate::context::EVENTS.contains(&event.as_str()))
            && !step_events.iter().any(|event| allowed.contains(event) || event.contains(['*', '?', '[', '{']))
        {
            diagnostics.push(
                Diagnostic::warning(
                    code::UNREACHABLE_STEP,
                    &workflow.file,
                    step.when.span.unwrap_or(step.span),
                    format!(
                        "step `{}` can never run: it runs on {} but workflow `{}` runs only on {}",
                        step.name,
                        step_events.join(", "),
                        workflow.name,
                        allowed.join(", ")
                    ),
                )
                .with_hint("align the step's `event` filter with the workflow's"),
            );
            continue;
        }
        let every_set_unreachable = step.when.alternatives.iter().all(|set| {
            set.matrix.as_ref().is_some_and(|filter| {
                filter.iter().any(|(axis, pattern)| match axis_values.get(axis.as_str()) {
                    Some(values) => !values.iter().any(|value| pattern.matches(value)),
                    None => !pattern.matches(""),
                })
            })
        });
        if every_set_unreachable {
            let mut diagnostic = Diagnostic::warning(
                code::UNREACHABLE_STEP,
                &workflow.file,
                step.when.span.unwrap_or(step.span),
                format!("step `{}` can never run: its `matrix` condition matches no row of the matrix", step.name),
            );
            if axis_values.is_empty() {
                diagnostic.hint = Some("the workflow has no `matrix`".into());
            } else {
                let rows: Vec<String> = axis_values
                    .iter()
                    .map(|(axis, values)| format!("{axis}: {}", values.iter().copied().collect::<Vec<_>>().join(", ")))
                    .collect();
                diagnostic.hint = Some(format!("the matrix has {}", rows.join("; ")));
            }
            diagnostics.push(diagnostic);
        }
    }
}

/// Variables Woodpecker and Drone set at run time or from forge data Gantry does not model yet:
/// known names, though the plan cannot fill them in.
const RUNTIME_VARIABLES: &[&str] = &[
    "CI_PREV_COMMIT_SHA",
    "CI_PREV_COMMIT_REF",
    "CI_PREV_COMMIT_REFSPEC",
    "CI_PREV_COMMIT_BRANCH",
    "CI_PREV_COMMIT_SOURCE_BRANCH",
    "CI_PREV_COMMIT_TARGET_BRANCH",
    "CI_PREV_COMMIT_URL",
    "CI_PREV_COMMIT_MESSAGE",
    "CI_PREV_COMMIT_TIMESTAMP",
    "CI_PREV_COMMIT_AUTHOR",
    "CI_PREV_COMMIT_AUTHOR_EMAIL",
    "CI_PREV_COMMIT_AUTHOR_AVATAR",
    "CI_PREV_PIPELINE_NUMBER",
    "CI_PREV_PIPELINE_PARENT",
    "CI_PREV_PIPELINE_EVENT",
    "CI_PREV_PIPELINE_EVENT_REASON",
    "CI_PREV_PIPELINE_URL",
    "CI_PREV_PIPELINE_FORGE_URL",
    "CI_PREV_PIPELINE_DEPLOY_TARGET",
    "CI_PREV_PIPELINE_DEPLOY_TASK",
    "CI_PREV_PIPELINE_STATUS",
    "CI_PREV_PIPELINE_CREATED",
    "CI_PREV_PIPELINE_STARTED",
    "CI_PREV_PIPELINE_FINISHED",
    "CI_PREV_PIPELINE_AUTHOR",
    "CI_PREV_PIPELINE_AVATAR",
    "CI_PIPELINE_PARENT",
    "CI_PIPELINE_DEPLOY_TASK",
    "CI_PIPELINE_EVENT_REASON",
    "CI_PIPELINE_RELEASE_TITLE",
    "CI_PIPELINE_RELEASE_PRE",
    "CI_PIPELINE_AUTHOR",
    "CI_PIPELINE_AVATAR",
    "CI_PIPELINE_RERUNS",
    "CI_PIPELINE_STATUS",
    "CI_COMMIT_PRERELEASE",
    "CI_COMMIT_AUTHOR_AVATAR",
    "CI_COMMIT_PULL_REQUEST_MILESTONE",
    "CI_COMMIT_PULL_REQUEST_DRAFT",
    "CI_REPO_REMOTE_ID",
    "CI_REPO_SCM",
    "CI_REPO_TRUSTED",
    "CI_REPO_TRUSTED_NETWORK",
    "CI_REPO_TRUSTED_VOLUMES",
    "CI_REPO_TRUSTED_SECURITY",
    "CI_STEP_URL",
    "CI_STEP_STARTED",
    "CI_NETRC_MACHINE",
    "CI_NETRC_USERNAME",
    "CI_NETRC_PASSWORD",
    "DRONE_COMMIT_BEFORE",
    "DRONE_BUILD_TRIGGER",
    "DRONE_BUILD_PARENT",
    "DRONE_BUILD_FINISHED",
    "DRONE_BUILD_STATUS",
    "DRONE_FAILED_STAGES",
    "DRONE_FAILED_STEPS",
    "DRONE_PULL_REQUEST_TITLE",
    "DRONE_GIT_SSH_URL",
    "DRONE_STAGE_DEPENDS_ON",
    "DRONE_STAGE_FINISHED",
    "DRONE_STAGE_MACHINE",
    "DRONE_STAGE_STARTED",
    "DRONE_STAGE_STATUS",
    "DRONE_STAGE_TYPE",
    "DRONE_STAGE_VARIANT",
    "DRONE_DOCKER_NETWORK_ID",
    "DRONE_NETRC_MACHINE",
    "DRONE_NETRC_USERNAME",
    "DRONE_NETRC_PASSWORD",
    "CI_COMMIT_TIMESTAMP",
    "CI_PIPELINE_URL",
    "CI_PIPELINE_CREATED",
    "CI_PIPELINE_STARTED",
    "CI_SYSTEM_URL",
    "CI_FORGE_TYPE",
    "CI_REPO_CLONE_SSH_URL",
    "CI_COMMIT_PULL_REQUEST_LABELS",
    "DRONE_BUILD_LINK",
    "DRONE_BUILD_CREATED",
    "DRONE_BUILD_STARTED",
    "DRONE_SYSTEM_PROTO",
    "DRONE_SYSTEM_VERSION",
    "DRONE_REPO_VISIBILITY",
    "DRONE_REPO_PRIVATE",
    "DRONE_CALVER",
    "DRONE_STEP_NAME",
    "DRONE_STEP_NUMBER",
    "CI_STEP_NAME",
    "CI_STEP_NUMBER",
    "CI_STEP_TYPE",
];

/// Names `${...}` may use at compile time, for any dialect: every built-in and the run-time names.
static BUILTIN_NAMES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    let context = Context {
        tag: Some("v1.0.0".into()),
        pull_request: Some("1".into()),
        deploy_target: Some("production".into()),
        cron: Some("nightly".into()),
        action: Some("opened".into()),
        changed_files: Some(Vec::new()),
        event: "pull_request".into(),
        ..Context::default()
    };
    let workspace = Workspace { base: String::new(), path: String::new() };
    let facts =
        WorkflowFacts { dialect: Dialect::Woodpecker, name: "", number: 1, workspace: &workspace, matrix: None, platform: "linux/amd64" };
    let mut names: BTreeSet<String> = builtin_environment(&context, &facts).into_keys().collect();
    names.extend(RUNTIME_VARIABLES.iter().map(|name| (*name).to_owned()));
    names
});

/// The matrix variables of a workflow, which `${...}` may use besides the built-ins.
fn matrix_variables(workflow: &WorkflowSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(matrix) = &workflow.matrix {
        names.extend(matrix.axes.iter().map(|(axis, _)| axis.clone()));
        names.extend(matrix.include.iter().flat_map(|row| row.keys().cloned()));
    }
    names
}

/// Substitution happens when the pipeline is compiled, not in the shell: a `${HOME}` in a
/// command becomes empty. Say so where it happens.
fn check_substitutions(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let matrix = matrix_variables(workflow);
    let is_known = |name: &str| BUILTIN_NAMES.contains(name) || matrix.contains(name);
    visit_strings(&workflow.document, &mut |text, node| {
        if !text.contains('$') {
            return;
        }
        match referenced_variables(text) {
            Err(error) => diagnostics.push(
                Diagnostic::error(code::INVALID_SUBSTITUTION, &workflow.file, node.span, format!("invalid substitution: {error}"))
                    .with_hint("write `${NAME}`, or `$${NAME}` to keep it for the shell"),
            ),
            Ok(variables) => {
                for (name, _) in variables {
                    if is_known(&name) || !text.contains(&format!("${{{name}}}")) {
                        continue;
                    }
                    let mut diagnostic = Diagnostic::warning(
                        code::EMPTY_SUBSTITUTION,
                        &workflow.file,
                        node.span,
                        format!(
                            "`${{{name}}}` is replaced when the pipeline is compiled and `{name}` is not a pipeline variable, so it becomes empty"
                        ),
                    );
                    diagnostic.hint = Some(match did_you_mean(&name, BUILTIN_NAMES.iter().chain(&matrix).map(String::as_str)) {
                        Some(suggestion) => format!("did you mean `${{{suggestion}}}`? To let the shell expand it, write `$${{{name}}}`"),
                        None => format!("to let the shell expand it, write `$${{{name}}}`"),
                    });
                    diagnostics.push(diagnostic);
                }
            }
        }
    });
}

fn visit_strings<'a>(node: &'a Node, visit: &mut impl FnMut(&'a str, &'a Node)) {
    match &node.value {
        NodeValue::String(text) => visit(text, node),
        NodeValue::Sequence(items) => items.iter().for_each(|item| visit_strings(item, visit)),
        NodeValue::Mapping(entries) => {
            for (key, value) in entries {
                // Anchors under `variables` are checked where they are used.
                if key.as_str() == Some("variables") {
                    continue;
                }
                visit_strings(key, visit);
                visit_strings(value, visit);
            }
        }
        _ => {}
    }
}

fn check_services(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    for service in &workflow.services {
        let valid = !service.name.is_empty()
            && service.name.len() <= 63
            && service.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !service.name.starts_with('-');
        if !valid {
            diagnostics.push(
                Diagnostic::warning(
                    code::INVALID_VALUE,
                    &workflow.file,
                    service.span,
                    format!("service name `{}` is not a valid host name", service.name),
                )
                .with_hint("steps reach a service by its name: use letters, digits and `-`"),
            );
        }
    }
    if workflow.dialect == Dialect::Drone
        && let Some(kind) = &workflow.runner_type
        && kind.name == "exec"
        && !workflow.services.is_empty()
    {
        diagnostics.push(Diagnostic::warning(
            code::UNSUPPORTED,
            &workflow.file,
            kind.span,
            "`exec` pipelines run on the host and cannot have services",
        ));
    }
}

/// Notes what each step needs trust for, at the key that asks for it, so a reviewer sees it
/// before the pipeline runs (where it is refused without the trust).
/// Image build steps: every setting Gantry cannot honour, and what the builder plugin's own
/// container needed that a build run by Gantry does not.
fn check_builds(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    for step in &workflow.steps {
        let Some(form) = build_form(step) else { continue };
        let dialect = workflow.dialect;
        let settings = read_build(step, form, &workflow.file, &|key| setting_variable(dialect, key), diagnostics);
        if settings.fallback.is_some() {
            continue;
        }
        let unneeded: Vec<&str> = needs(&step.container).iter().map(|need| need.key).collect();
        if let Some(first) = unneeded.first() {
            let keys: Vec<String> = unneeded.iter().map(|key| format!("`{key}`")).collect();
            diagnostics.push(
                Diagnostic::note(
                    code::UNSUPPORTED,
                    &workflow.file,
                    step.key_span(first),
                    format!("step `{}` is an image build Gantry runs itself: {} is not needed and not applied", step.name, keys.join(", ")),
                )
                .with_hint("the build runs on the agent's engine through its API; no container of the plugin starts"),
            );
        }
    }
}

fn check_trust(workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let clone_steps = match &workflow.clone {
        CloneSpec::Custom(steps) => steps.as_slice(),
        _ => &[],
    };
    let services = workflow.services.iter().map(|service| ("service", service));
    let steps = clone_steps.iter().chain(&workflow.steps).map(|step| ("step", step));
    for (noun, step) in services.chain(steps) {
        if runs_natively(step, workflow.dialect) {
            continue;
        }
        let mut container = step.container.clone();
        container.volumes = container.volumes.iter().filter_map(|volume| resolved_volume(workflow, volume).ok().flatten()).collect();
        for need in needs(&container) {
            diagnostics.push(
                Diagnostic::note(
                    code::NEEDS_TRUST,
                    &workflow.file,
                    step.key_span(need.key),
                    format!("{noun} `{}` needs trust: {}", step.name, need.reason),
                )
                .with_hint(format!(
                    "it runs only on a repository an admin trusts with {}, or with `gantry exec --trusted`",
                    need.kind.allows()
                )),
            );
        }
    }
}

fn check_workflow_graph(workflows: &[WorkflowSpec], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &WorkflowSpec> = HashMap::new();
    for workflow in workflows {
        if let Some(first) = seen.get(workflow.name.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    code::DUPLICATE_NAME,
                    &workflow.file,
                    workflow.span,
                    format!("workflow name `{}` is also used in {} line {}", workflow.name, first.file, first.span.line),
                )
                .with_hint("give each workflow (Drone: each pipeline's `name`) its own name"),
            );
        } else {
            seen.insert(&workflow.name, workflow);
        }
    }
    for workflow in workflows {
        for dependency in &workflow.depends_on {
            if !dependency.optional && !seen.contains_key(dependency.name.as_str()) {
                diagnostics.push(unknown_workflow_diagnostic(workflow, dependency, workflows));
            }
        }
    }
    let graph: Vec<(&str, Vec<&str>)> = workflows
        .iter()
        .map(|workflow| (workflow.name.as_str(), workflow.depends_on.iter().map(|dependency| dependency.name.as_str()).collect()))
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let first = workflows.iter().find(|workflow| workflow.name == cycle[0]);
        let (file, span) = first
            .map(|workflow| {
                let span = workflow
                    .depends_on
                    .iter()
                    .find(|dependency| cycle.get(1) == Some(&dependency.name))
                    .map_or(workflow.span, |dependency| dependency.span);
                (workflow.file.as_str(), span)
            })
            .unwrap_or(("", crate::yaml::Span::new(1, 1)));
        diagnostics.push(
            Diagnostic::error(
                code::DEPENDENCY_CYCLE,
                file,
                span,
                format!("workflows depend on each other in a cycle: {}", cycle.join(" → ")),
            )
            .with_hint("remove one of these `depends_on` entries"),
        );
    }
}
