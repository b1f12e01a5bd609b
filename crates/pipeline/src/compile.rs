//! The compiler: workflows as written plus a trigger context give a `Plan`.
//!
//! Per workflow: matrix rows, then per row `${VAR}` substitution (on string values, so spans do
//! not move), conditions, the step graph, and the environment each container gets.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::condition::{Decision, MatchInput};
use crate::container::ContainerOptions;
use crate::context::Context;
use crate::diagnostic::{self, Diagnostic, code, did_you_mean};
use crate::environment::{WorkflowFacts, builtin_environment, encode_value, setting_variable, step_environment};
use crate::image_build::{BuildForm, JSON_KEY_USER_VARIABLE, PlanOutcome, PluginFamily, build_form, read_build, secret_argument_variable};
use crate::model::{CloneSpec, Dialect, Matrix, PullPolicy, StepSpec, VolumeKind, WorkflowSpec};
use crate::plan::{CloneOptions, ConcurrencyPlan, Plan, RunOn, SecretReference, StepKind, StepPlan, WorkflowPlan, Workspace};
use crate::read::reread_document;
use crate::substitution::substitute;
use crate::yaml::{Node, NodeValue};

/// Most rows a matrix may expand to. Above it the workflow is an error: Woodpecker silently
/// drops rows past its limit, which hides work that was meant to run.
pub const MAX_MATRIX_ROWS: usize = 256;

/// Name of the built-in clone step.
pub const CLONE_STEP: &str = "clone";

/// How the plan will be run.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompileOptions {
    /// Run by `gantry exec` on this machine (`when.local`).
    pub local: bool,
    /// Plan every workflow and step as if their conditions held (only `status` is kept):
    /// the pipeline as declared, for documentation.
    pub ignore_conditions: bool,
}

/// Compiles workflows for a context.
pub fn compile(workflows: &[WorkflowSpec], context: &Context) -> Plan {
    compile_with(workflows, context, CompileOptions::default())
}

pub fn compile_with(workflows: &[WorkflowSpec], context: &Context, options: CompileOptions) -> Plan {
    let context = context.clone().normalized();
    let mut diagnostics = Vec::new();
    let mut plans: Vec<WorkflowPlan> = Vec::new();
    for (index, workflow) in workflows.iter().enumerate() {
        plans.extend(compile_workflow(workflow, index + 1, &context, options, &mut diagnostics));
    }
    resolve_workflow_dependencies(workflows, &mut plans, &mut diagnostics);
    let mut seen = HashSet::new();
    diagnostics.retain(|diagnostic: &Diagnostic| seen.insert(format!("{diagnostic:?}")));
    diagnostic::sort(&mut diagnostics);
    Plan { workflows: plans, diagnostics }
}

/// The rows a matrix expands to, or the count when it is over the limit.
pub fn matrix_rows(matrix: &Matrix) -> Result<Vec<BTreeMap<String, String>>, u128> {
    if !matrix.include.is_empty() {
        return if matrix.include.len() > MAX_MATRIX_ROWS { Err(matrix.include.len() as u128) } else { Ok(matrix.include.clone()) };
    }
    let count = matrix.axes.iter().fold(1u128, |count, (_, values)| count.saturating_mul(values.len() as u128));
    if count > MAX_MATRIX_ROWS as u128 {
        return Err(count);
    }
    let mut rows = vec![BTreeMap::new()];
    for (axis, values) in &matrix.axes {
        let mut next = Vec::with_capacity(rows.len() * values.len());
        for row in &rows {
            for value in values {
                let mut extended = row.clone();
                extended.insert(axis.clone(), value.clone());
                next.push(extended);
            }
        }
        rows = next;
    }
    Ok(rows)
}

fn compile_workflow(
    workflow: &WorkflowSpec,
    number: usize,
    context: &Context,
    options: CompileOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<WorkflowPlan> {
    let rows: Vec<Option<BTreeMap<String, String>>> = match &workflow.matrix {
        None => vec![None],
        Some(matrix) => match matrix_rows(matrix) {
            Ok(rows) if rows.is_empty() => vec![None],
            Ok(rows) => rows.into_iter().map(Some).collect(),
            Err(count) => {
                diagnostics.push(matrix_limit_diagnostic(workflow, matrix, count));
                // The steps are planned once, as written, so the workflow can still be shown.
                let mut plan = compile_row(workflow, number, None, context, options, &mut Vec::new());
                plan.skipped = true;
                plan.skip_reason = Some(format!("matrix expands to {count} rows, more than the limit of {MAX_MATRIX_ROWS}"));
                return vec![plan];
            }
        },
    };
    let multiple = rows.len() > 1 || workflow.matrix.is_some();
    rows.into_iter()
        .map(|row| {
            let mut plan = compile_row(workflow, number, row.as_ref(), context, options, diagnostics);
            if multiple && let Some(row) = &row {
                let axes: Vec<String> = row.iter().map(|(key, value)| format!("{key}={value}")).collect();
                plan.name = format!("{} ({})", workflow.name, axes.join(", "));
            }
            plan
        })
        .collect()
}

pub(crate) fn matrix_limit_diagnostic(workflow: &WorkflowSpec, matrix: &Matrix, count: u128) -> Diagnostic {
    Diagnostic::error(
        code::MATRIX_LIMIT,
        &workflow.file,
        matrix.span,
        format!("matrix of workflow `{}` expands to {count} rows, more than the limit of {MAX_MATRIX_ROWS}", workflow.name),
    )
    .with_hint("split the workflow, or list the rows you need with `include`")
}

fn default_workspace(workflow: &WorkflowSpec, context: &Context) -> Workspace {
    let (base, path) = match workflow.dialect {
        Dialect::Woodpecker => (
            "/woodpecker".to_owned(),
            format!("src/{}/{}/{}", context.forge_host(), context.repo_owner(), context.repo_name()).replace("//", "/"),
        ),
        Dialect::Drone => ("/drone".to_owned(), "src".to_owned()),
    };
    Workspace {
        base: workflow.workspace.base.clone().unwrap_or(base),
        path: workflow.workspace.path.clone().unwrap_or(path).trim_matches('/').to_owned(),
    }
}

fn empty_plan(workflow: &WorkflowSpec, context: &Context, matrix: Option<&BTreeMap<String, String>>) -> WorkflowPlan {
    let runner_type = workflow.runner_type.as_ref().map(|named| named.name.clone());
    WorkflowPlan {
        name: workflow.name.clone(),
        base_name: workflow.name.clone(),
        file: workflow.file.clone(),
        dialect: workflow.dialect,
        skipped: false,
        skip_reason: None,
        depends_on: Vec::new(),
        runs_on: vec![RunOn::Success],
        matrix: matrix.cloned(),
        labels: BTreeMap::new(),
        platform: None,
        runnable: runner_type.as_deref().is_none_or(|kind| kind == "docker" || kind == "exec"),
        runner_type,
        workspace: default_workspace(workflow, context),
        environment: BTreeMap::new(),
        steps: Vec::new(),
        services: Vec::new(),
        volumes: Vec::new(),
        concurrency: None,
        image_pull_secrets: workflow.image_pull_secrets.clone(),
    }
}

/// The built-in variables of one matrix row of a workflow.
fn row_builtins(
    context: &Context,
    workflow: &WorkflowSpec,
    number: usize,
    workspace: &Workspace,
    matrix: Option<&BTreeMap<String, String>>,
    platform: &str,
) -> BTreeMap<String, String> {
    let facts = WorkflowFacts { dialect: workflow.dialect, name: &workflow.name, number, workspace, matrix, platform };
    builtin_environment(context, &facts)
}

fn has_substitution(node: &Node) -> bool {
    match &node.value {
        // Backslashes count: drone/envsubst (as Woodpecker pins it) also unescapes `\\` and `\/`.
        NodeValue::String(text) => text.contains(['$', '\\']),
        NodeValue::Sequence(items) => items.iter().any(has_substitution),
        NodeValue::Mapping(entries) => entries.iter().any(|(key, value)| has_substitution(key) || has_substitution(value)),
        _ => false,
    }
}

fn compile_row(
    written: &WorkflowSpec,
    number: usize,
    matrix: Option<&BTreeMap<String, String>>,
    context: &Context,
    options: CompileOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> WorkflowPlan {
    let mut plan = empty_plan(written, context, matrix);
    // Labels and platform may use matrix variables, so substitute first with what is known.
    let platform_guess =
        written.labels.get("platform").cloned().or_else(|| written.platform.clone()).unwrap_or_else(|| context.platform.clone());
    let mut environment = context.extra_environment.clone();
    environment.extend(row_builtins(context, written, number, &plan.workspace, matrix, &platform_guess));

    let substituted;
    let workflow = if has_substitution(&written.document) {
        let lookup = |name: &str| environment.get(name).cloned();
        let document = written.document.map_strings(&mut |text, span| {
            substitute(text, &lookup).map_err(|error| {
                Diagnostic::error(code::INVALID_SUBSTITUTION, &written.file, span, format!("invalid substitution: {error}"))
                    .with_hint("write `${NAME}`, or `$${NAME}` to keep it for the shell")
            })
        });
        match document {
            Ok(document) => {
                let (spec, reread_diagnostics) = reread_document(written, document);
                diagnostics.extend(reread_diagnostics);
                substituted = spec;
                substituted.as_ref().unwrap_or(written)
            }
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                written
            }
        }
    } else {
        written
    };

    plan.labels = workflow.labels.clone();
    plan.platform = workflow.labels.get("platform").cloned().or_else(|| workflow.platform.clone());
    plan.concurrency =
        workflow.concurrency.as_ref().map(|concurrency| ConcurrencyPlan { limit: concurrency.limit, group: concurrency.group.clone() });
    let platform = plan.platform.clone().unwrap_or_else(|| context.platform.clone());
    if platform != platform_guess {
        environment.extend(row_builtins(context, written, number, &plan.workspace, matrix, &platform));
    }
    for entry in &workflow.environment {
        let mut secrets = Vec::new();
        if let Some(value) = encode_value(&entry.value, &entry.name, &mut secrets) {
            plan.environment.entry(entry.name.clone()).or_insert(value);
        }
        if !secrets.is_empty() {
            diagnostics.push(
                Diagnostic::warning(
                    code::UNSUPPORTED,
                    &workflow.file,
                    entry.span,
                    "secrets in pipeline-level `environment` are given to no step",
                )
                .with_hint("move `from_secret` to the `environment` of the steps that need it"),
            );
        }
    }
    plan.environment.extend(environment.iter().map(|(key, value)| (key.clone(), value.clone())));

    let input =
        MatchInput { context, environment: &environment, matrix, local: options.local, ignore_conditions: options.ignore_conditions };
    match workflow.when.decide(&input) {
        Ok(Decision::Run { on_success, on_failure }) => plan.runs_on = RunOn::list(on_success, on_failure),
        Ok(Decision::Skip(reason)) => {
            plan.skipped = true;
            plan.skip_reason = Some(reason);
        }
        Err(message) => {
            diagnostics.push(Diagnostic::error(
                code::INVALID_EXPRESSION,
                &workflow.file,
                workflow.when.span.unwrap_or(workflow.span),
                message,
            ));
            plan.skipped = true;
            plan.skip_reason = Some("its condition could not be evaluated".into());
        }
    }

    for volume in &workflow.volumes {
        if let VolumeKind::Temporary { .. } = volume.kind {
            plan.volumes.push(volume.name.clone());
        }
    }

    let mut steps: Vec<StepPlan> = Vec::new();
    let mut step_number = 0;
    let mut next_number = || {
        step_number += 1;
        step_number
    };
    let workspace_dir = plan.workspace.directory();
    match &workflow.clone {
        CloneSpec::Skip => {}
        CloneSpec::Default { depth, tags, submodules, lfs } => {
            let mut step = base_step(CLONE_STEP, StepKind::Clone, &workspace_dir);
            step.clone = Some(CloneOptions {
                depth: *depth,
                tags: tags.unwrap_or(context.event == "tag"),
                submodules: submodules.unwrap_or(false),
                lfs: lfs.unwrap_or(false),
            });
            steps.push(step);
        }
        CloneSpec::Custom(clone_steps) => {
            for spec in clone_steps {
                let mut step = lower_step(workflow, spec, StepKind::Clone, next_number(), &workspace_dir, diagnostics);
                decide_step(&mut step, spec, &input, &workflow.file, diagnostics);
                steps.push(step);
            }
        }
    }
    let clone_count = steps.len();
    for spec in &workflow.services {
        let mut service = lower_step(workflow, spec, StepKind::Service, next_number(), &workspace_dir, diagnostics);
        decide_step(&mut service, spec, &input, &workflow.file, diagnostics);
        service.runs_on = vec![RunOn::Success, RunOn::Failure];
        plan.services.push(service);
    }
    for spec in &workflow.steps {
        let kind = if spec.is_plugin() { StepKind::Plugin } else { StepKind::Commands };
        let mut step = lower_step(workflow, spec, kind, next_number(), &workspace_dir, diagnostics);
        decide_step(&mut step, spec, &input, &workflow.file, diagnostics);
        if let Some(form) = build_form(spec) {
            lower_build(&mut step, spec, form, workflow, context, diagnostics);
        }
        steps.push(step);
    }
    make_names_unique(&mut steps[clone_count..], workflow, diagnostics);
    link_steps(&mut steps, clone_count, workflow, diagnostics);
    plan.steps = steps;
    plan
}

/// Makes a step an image build: no image of its own to run (and so none of the container options
/// the builder plugin's Docker-in-Docker needed, such as `privileged`), the build decided for
/// this context.
fn lower_build(
    step: &mut StepPlan,
    spec: &StepSpec,
    form: BuildForm,
    workflow: &WorkflowSpec,
    context: &Context,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let dialect = workflow.dialect;
    let settings = read_build(spec, form, &workflow.file, &|key| setting_variable(dialect, key), diagnostics);
    if settings.fallback.is_some() {
        return;
    }
    step.kind = StepKind::Build;
    step.image = None;
    step.container = ContainerOptions::default();
    for (argument, secret) in &settings.secret_build_args {
        step.secrets.push(SecretReference { env: secret_argument_variable(argument), secret: secret.clone(), embedded: false });
    }
    if let BuildForm::Plugin(PluginFamily::Gcr) = form {
        step.environment.insert(JSON_KEY_USER_VARIABLE.to_owned(), "_json_key".to_owned());
    }
    match settings.plan(
        context,
        &step.working_dir,
        &workflow.file,
        spec.key_span(if form == BuildForm::Native { "build" } else { "settings" }),
    ) {
        Ok(build) => step.build = Some(build),
        Err(PlanOutcome::Skip(reason)) => {
            if !step.skipped {
                step.skipped = true;
                step.skip_reason = Some(reason);
            }
        }
        Err(PlanOutcome::Error(diagnostic)) => {
            diagnostics.push(diagnostic);
            step.skipped = true;
            step.skip_reason = Some("its image build could not be planned".into());
        }
    }
}

fn base_step(name: &str, kind: StepKind, workspace_dir: &str) -> StepPlan {
    StepPlan {
        name: name.to_owned(),
        kind,
        image: None,
        pull: PullPolicy::IfNotPresent,
        commands: Vec::new(),
        command: Vec::new(),
        entrypoint: None,
        shell: None,
        environment: BTreeMap::new(),
        secrets: Vec::new(),
        depends_on: Vec::new(),
        skipped: false,
        skip_reason: None,
        runs_on: vec![RunOn::Success],
        failure: Default::default(),
        detach: false,
        container: ContainerOptions::default(),
        working_dir: workspace_dir.to_owned(),
        backend_options: None,
        healthcheck: None,
        timeout_seconds: None,
        clone: None,
        build: None,
    }
}

fn lower_step(
    workflow: &WorkflowSpec,
    spec: &StepSpec,
    kind: StepKind,
    number: usize,
    workspace_dir: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> StepPlan {
    let mut step = base_step(&spec.name, kind, workspace_dir);
    step.image = spec.image.clone();
    step.pull = spec.pull.unwrap_or(PullPolicy::IfNotPresent);
    step.commands = spec.commands.clone();
    step.command = spec.command.clone();
    step.entrypoint = spec.entrypoint.clone();
    step.shell = spec.shell.clone();
    for entry in &spec.environment {
        if let Some(value) = encode_value(&entry.value, &entry.name, &mut step.secrets) {
            step.environment.insert(entry.name.clone(), value);
        }
    }
    for (key, value) in &spec.settings {
        let variable = setting_variable(workflow.dialect, key);
        if let Some(encoded) = encode_value(value, &variable, &mut step.secrets) {
            step.environment.insert(variable, encoded);
        }
    }
    step.environment.extend(step_environment(&spec.name, kind, number));
    step.failure = spec.failure;
    step.detach = spec.detach || kind == StepKind::Service;
    step.container = spec.container.clone();
    step.working_dir = match &spec.directory {
        Some(directory) if directory.starts_with('/') => directory.clone(),
        Some(directory) => format!("{}/{}", workspace_dir.trim_end_matches('/'), directory.trim_start_matches("./")),
        None => workspace_dir.to_owned(),
    };
    step.container.volumes =
        spec.container.volumes.iter().filter_map(|volume| resolve_volume(workflow, spec, volume, diagnostics)).collect();
    step.backend_options = spec.backend_options.clone();
    step.healthcheck = spec.healthcheck.clone();
    step.timeout_seconds = spec.timeout_seconds;
    step
}

/// Drone steps mount pipeline volumes by name; resolve them to a host path or a named volume.
fn resolve_volume(workflow: &WorkflowSpec, spec: &StepSpec, volume: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    match resolved_volume(workflow, volume) {
        Ok(resolved) => resolved,
        Err(name) => {
            // Drone's runner skips such a mount silently; real pipelines rely on it (a `gopath`
            // volume declared in the first pipeline only), so it stays a warning, said aloud.
            let mut diagnostic = Diagnostic::warning(
                code::UNKNOWN_DEPENDENCY,
                &workflow.file,
                spec.key_span("volumes"),
                format!(
                    "step `{}` mounts volume `{name}`, which the pipeline does not declare; the mount is ignored, as Drone does",
                    spec.name
                ),
            );
            diagnostic.hint = Some(match did_you_mean(name, workflow.volumes.iter().map(|declared| declared.name.as_str())) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => {
                    "declare it under this pipeline's `volumes:` (each pipeline declares its own) with `temp: {}` or `host: {path: ...}`"
                        .into()
                }
            });
            diagnostics.push(diagnostic);
            None
        }
    }
}

/// A step's volume as the container gets it: a Drone pipeline volume's name becomes its host
/// path (a host volume) or stays (a temporary one). `Ok(None)` for a volume that is dropped,
/// `Err(name)` for a name the pipeline does not declare.
pub(crate) fn resolved_volume<'a>(workflow: &WorkflowSpec, volume: &'a str) -> Result<Option<String>, &'a str> {
    if workflow.dialect != Dialect::Drone || workflow.volumes.is_empty() && volume.starts_with('/') {
        return Ok(Some(volume.to_owned()));
    }
    let Some((name, rest)) = volume.split_once(':') else { return Ok(None) };
    if name.starts_with('/') {
        return Ok(Some(volume.to_owned()));
    }
    match workflow.volumes.iter().find(|declared| declared.name == name) {
        Some(declared) => Ok(Some(match &declared.kind {
            VolumeKind::Host { path } => format!("{path}:{rest}"),
            VolumeKind::Temporary { .. } => volume.to_owned(),
        })),
        None => Err(name),
    }
}

fn decide_step(step: &mut StepPlan, spec: &StepSpec, input: &MatchInput<'_>, file: &str, diagnostics: &mut Vec<Diagnostic>) {
    match spec.when.decide(input) {
        Ok(Decision::Run { on_success, on_failure }) => {
            step.runs_on = RunOn::list(on_success, on_failure);
            if step.runs_on.is_empty() {
                step.skipped = true;
                step.skip_reason = Some("its `status` condition lists no status".into());
            }
        }
        Ok(Decision::Skip(reason)) => {
            step.skipped = true;
            step.skip_reason = Some(reason);
        }
        Err(message) => {
            diagnostics.push(Diagnostic::error(code::INVALID_EXPRESSION, file, spec.when.span.unwrap_or(spec.span), message));
            step.skipped = true;
            step.skip_reason = Some("its condition could not be evaluated".into());
        }
    }
}

/// Names identify steps in logs and in `depends_on`. Where Woodpecker tolerates duplicates
/// (sequential workflows), later ones get a number; in graph mode they are an error (see lint).
fn make_names_unique(steps: &mut [StepPlan], workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let graph_mode = workflow.steps.iter().any(|step| step.depends_on.is_some());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, step) in steps.iter_mut().enumerate() {
        let count = seen.entry(step.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            if graph_mode {
                // Reported by lint as an error; keep the name so the report matches the file.
                continue;
            }
            let spec = &workflow.steps[index];
            diagnostics.push(
                Diagnostic::warning(
                    code::DUPLICATE_NAME,
                    &workflow.file,
                    spec.span,
                    format!("another step is already named `{}`", spec.name),
                )
                .with_hint("give each step its own name; this one runs as a numbered copy"),
            );
            step.name = format!("{}-{}", step.name, count);
        }
    }
}

/// Sets `depends_on` of every step: clone steps in a chain, then either the file order
/// (no `depends_on` anywhere) or each step's own dependencies. Skipped steps are taken out of
/// the graph: whoever waited for them waits for what they waited for.
fn link_steps(steps: &mut [StepPlan], clone_count: usize, workflow: &WorkflowSpec, diagnostics: &mut Vec<Diagnostic>) {
    let last_clone = clone_count.checked_sub(1).map(|index| steps[index].name.clone());
    let graph_mode = workflow.steps.iter().any(|step| step.depends_on.is_some());
    let names: Vec<String> = steps.iter().map(|step| step.name.clone()).collect();
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut declared: Vec<Vec<String>> = vec![Vec::new(); steps.len()];
    for index in 1..clone_count {
        declared[index] = vec![names[index - 1].clone()];
    }
    // File order: each step waits for the previous stage, where a stage is one step, or a run
    // of consecutive steps of the same (legacy) `group`, which run in parallel.
    let mut previous_stage: Vec<String> = last_clone.clone().into_iter().collect();
    let mut current_stage: Vec<String> = Vec::new();
    let mut current_group: Option<&str> = None;
    for (offset, spec) in workflow.steps.iter().enumerate() {
        let index = clone_count + offset;
        declared[index] = if graph_mode {
            match &spec.depends_on {
                Some(dependencies) if !dependencies.is_empty() => dependencies
                    .iter()
                    .filter(|dependency| {
                        let known = known.contains(dependency.name.as_str());
                        if !known && !dependency.optional {
                            diagnostics.push(unknown_step_diagnostic(workflow, &spec.name, dependency, &names));
                        }
                        known
                    })
                    .map(|dependency| dependency.name.clone())
                    .collect(),
                _ => last_clone.clone().into_iter().collect(),
            }
        } else {
            let same_group = spec.group.is_some() && spec.group.as_deref() == current_group;
            if !same_group && offset > 0 {
                previous_stage = std::mem::take(&mut current_stage);
            }
            current_group = spec.group.as_deref();
            current_stage.push(names[index].clone());
            previous_stage.clone()
        };
    }
    if graph_mode && workflow.dialect == Dialect::Woodpecker {
        skip_dependents_of_skipped_steps(steps, clone_count, workflow);
    }
    let skipped: HashMap<&str, usize> =
        steps.iter().enumerate().filter(|(_, step)| step.skipped).map(|(index, step)| (step.name.as_str(), index)).collect();
    let position: HashMap<&str, usize> = names.iter().enumerate().map(|(index, name)| (name.as_str(), index)).collect();
    let mut resolved: Vec<Vec<String>> = Vec::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        if step.skipped {
            resolved.push(declared[index].clone());
            continue;
        }
        let mut result: Vec<String> = Vec::new();
        let mut pending: Vec<&str> = declared[index].iter().map(String::as_str).collect();
        let mut visited: HashSet<&str> = HashSet::new();
        while let Some(name) = pending.pop() {
            if !visited.insert(name) {
                continue;
            }
            if skipped.contains_key(name) {
                if let Some(&at) = position.get(name) {
                    pending.extend(declared[at].iter().map(String::as_str));
                }
            } else if !result.iter().any(|existing| existing == name) {
                result.push(name.to_owned());
            }
        }
        result.sort_by_key(|name| position.get(name.as_str()).copied().unwrap_or(usize::MAX));
        resolved.push(result);
    }
    for (step, dependencies) in steps.iter_mut().zip(resolved) {
        step.depends_on = dependencies;
    }
}

/// Woodpecker refuses to run a step whose required dependency was filtered out by `when`; Gantry
/// skips it instead, and says why, so that e.g. a deploy never runs without its build. Optional
/// dependencies are simply dropped. (Drone runs such steps: a skipped step counts as done there.)
fn skip_dependents_of_skipped_steps(steps: &mut [StepPlan], clone_count: usize, workflow: &WorkflowSpec) {
    // Repeat until stable: dependencies may be declared after the steps that use them.
    let mut changed = true;
    while changed {
        changed = false;
        for (offset, spec) in workflow.steps.iter().enumerate() {
            let index = clone_count + offset;
            if steps[index].skipped {
                continue;
            }
            let blocked = spec
                .depends_on
                .iter()
                .flatten()
                .filter(|dependency| !dependency.optional)
                .find(|dependency| steps.iter().any(|other| other.name == dependency.name && other.skipped));
            if let Some(dependency) = blocked {
                steps[index].skipped = true;
                steps[index].skip_reason = Some(format!("it depends on step `{}`, which does not run", dependency.name));
                changed = true;
            }
        }
    }
}

pub(crate) fn unknown_workflow_diagnostic(
    spec: &WorkflowSpec,
    dependency: &crate::model::Dependency,
    workflows: &[WorkflowSpec],
) -> Diagnostic {
    let known: Vec<&str> = workflows.iter().map(|workflow| workflow.name.as_str()).collect();
    let mut diagnostic = Diagnostic::error(
        code::UNKNOWN_DEPENDENCY,
        &spec.file,
        dependency.span,
        format!("workflow `{}` depends on `{}`, which is not a workflow of this pipeline", spec.name, dependency.name),
    );
    diagnostic.hint = Some(match did_you_mean(&dependency.name, known.iter().copied()) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => format!("workflows are: {}", known.join(", ")),
    });
    diagnostic
}

pub(crate) fn unknown_step_diagnostic(
    workflow: &WorkflowSpec,
    step: &str,
    dependency: &crate::model::Dependency,
    names: &[String],
) -> Diagnostic {
    let mut diagnostic = Diagnostic::error(
        code::UNKNOWN_DEPENDENCY,
        &workflow.file,
        dependency.span,
        format!("step `{step}` depends on `{}`, which is not a step of workflow `{}`", dependency.name, workflow.name),
    );
    diagnostic.hint = Some(match did_you_mean(&dependency.name, names.iter().map(String::as_str)) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => format!("steps are: {}", names.join(", ")),
    });
    diagnostic
}

/// Resolves `depends_on` between workflows to plan names (all rows of a matrix), and skips
/// workflows whose required dependency does not run.
fn resolve_workflow_dependencies(workflows: &[WorkflowSpec], plans: &mut [WorkflowPlan], diagnostics: &mut Vec<Diagnostic>) {
    let by_base: HashMap<&str, Vec<usize>> = plans.iter().enumerate().fold(HashMap::new(), |mut map, (index, plan)| {
        map.entry(plan.base_name.as_str()).or_default().push(index);
        map
    });
    let mut dependencies: Vec<Vec<(String, bool)>> = vec![Vec::new(); plans.len()];
    for (index, plan) in plans.iter().enumerate() {
        let Some(spec) = workflows.iter().find(|spec| spec.name == plan.base_name && spec.file == plan.file) else { continue };
        for dependency in &spec.depends_on {
            match by_base.get(dependency.name.as_str()) {
                Some(targets) => {
                    for &target in targets {
                        dependencies[index].push((plans[target].name.clone(), dependency.optional));
                    }
                }
                None if dependency.optional => {}
                None => diagnostics.push(unknown_workflow_diagnostic(spec, dependency, workflows)),
            }
        }
    }
    // Skipping spreads along dependencies; repeat until nothing changes (the graph is small).
    let mut changed = true;
    while changed {
        changed = false;
        for index in 0..plans.len() {
            if plans[index].skipped {
                continue;
            }
            let blocked = dependencies[index]
                .iter()
                .find(|(name, optional)| !optional && plans.iter().any(|other| &other.name == name && other.skipped));
            if let Some((name, _)) = blocked {
                plans[index].skipped = true;
                plans[index].skip_reason = Some(format!("it depends on workflow `{name}`, which does not run"));
                changed = true;
            }
        }
    }
    let skipped: HashSet<String> = plans.iter().filter(|plan| plan.skipped).map(|plan| plan.name.clone()).collect();
    for (plan, dependencies) in plans.iter_mut().zip(dependencies) {
        plan.depends_on =
            dependencies.into_iter().filter(|(name, optional)| !(*optional && skipped.contains(name))).map(|(name, _)| name).collect();
    }
}
