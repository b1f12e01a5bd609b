//! What is documented: each workflow as written next to its plan, as views the renderers read.

use crate::compile::CLONE_STEP;
use crate::condition::When;
use crate::environment::{encode_value, setting_variable};
use crate::image_build::runs_natively;
use crate::model::{CloneSpec, Dialect, FailurePolicy, StepSpec, WorkflowSpec};
use crate::plan::{Plan, RunOn, SecretReference, StepKind, StepPlan, WorkflowPlan};

use super::conditions::*;
use super::steps::*;
use super::text::*;

pub(super) struct WorkflowDoc<'a> {
    pub(super) spec: &'a WorkflowSpec,
    /// The plans of this workflow: one, or one per matrix row. May be empty if the plan does
    /// not hold it.
    pub(super) rows: Vec<&'a WorkflowPlan>,
    /// Clone steps first, then the steps, in declared order.
    pub(super) steps: Vec<StepView<'a>>,
    pub(super) services: Vec<StepView<'a>>,
    pub(super) anchor: String,
}

pub(super) struct StepView<'a> {
    pub(super) name: String,
    pub(super) kind: StepKind,
    /// `None` for the built-in clone step.
    pub(super) spec: Option<&'a StepSpec>,
    pub(super) plan: Option<&'a StepPlan>,
    pub(super) after: Vec<String>,
    pub(super) runs_on: Vec<RunOn>,
    /// Why the step never runs, whatever triggers the pipeline.
    pub(super) never: Option<String>,
    pub(super) secrets: Vec<SecretUse>,
    pub(super) anchor: String,
}

/// One way a step (or workflow) receives a secret.
pub(super) struct SecretUse {
    pub(super) secret: String,
    /// How it arrives, in words: "setting `password` (`PLUGIN_PASSWORD`)".
    pub(super) how: String,
}

impl StepView<'_> {
    pub(super) fn conditional(&self) -> bool {
        self.spec.is_some_and(|spec| spec.when.alternatives.iter().any(has_filters))
    }

    pub(super) fn only_on_failure(&self) -> bool {
        self.runs_on == [RunOn::Failure]
    }

    pub(super) fn also_on_failure(&self) -> bool {
        self.runs_on.contains(&RunOn::Success) && self.runs_on.contains(&RunOn::Failure)
    }

    pub(super) fn detach(&self) -> bool {
        self.kind != StepKind::Service && (self.plan.is_some_and(|plan| plan.detach) || self.spec.is_some_and(|spec| spec.detach))
    }

    pub(super) fn failure(&self) -> FailurePolicy {
        self.plan.map(|plan| plan.failure).or(self.spec.map(|spec| spec.failure)).unwrap_or_default()
    }

    /// A plugin to the reader: Woodpecker's rule (`is_plugin`) makes a step with settings and
    /// `environment` (or legacy `secrets`) a commands step, but it still only runs its image.
    pub(super) fn is_plugin(&self) -> bool {
        self.kind == StepKind::Plugin
            || (self.kind == StepKind::Commands && runs_image_as_is(self) && self.spec.is_some_and(|spec| !spec.settings.is_empty()))
    }

    pub(super) fn image(&self) -> Option<&str> {
        self.spec.and_then(|spec| spec.image.as_deref()).or(self.plan.and_then(|plan| plan.image.as_deref()))
    }
}

pub(super) fn collect<'a>(workflows: &'a [WorkflowSpec], plan: &'a Plan) -> Vec<WorkflowDoc<'a>> {
    // The compiler plans workflows in order, each as one plan or one per matrix row.
    let mut cursor = 0;
    let mut docs = Vec::with_capacity(workflows.len());
    for spec in workflows {
        let belongs = |row: &WorkflowPlan| row.base_name == spec.name && row.file == spec.file;
        if !plan.workflows.get(cursor).is_some_and(belongs) {
            // Out of step with the plan: look for the first unused match.
            if let Some(found) = plan.workflows.iter().skip(cursor).position(belongs) {
                cursor += found;
            }
        }
        let mut rows = Vec::new();
        while let Some(row) = plan.workflows.get(cursor).filter(|row| belongs(row)) {
            rows.push(row);
            cursor += 1;
        }
        let first = rows.first().copied();
        let (steps, services) = step_views(spec, first);
        docs.push(WorkflowDoc { spec, rows, steps, services, anchor: String::new() });
    }
    docs
}

pub(super) fn step_views<'a>(spec: &'a WorkflowSpec, plan: Option<&'a WorkflowPlan>) -> (Vec<StepView<'a>>, Vec<StepView<'a>>) {
    let planned: &[StepPlan] = plan.map_or(&[], |plan| &plan.steps);
    let clone_specs: &[StepSpec] = match &spec.clone {
        CloneSpec::Custom(steps) => steps,
        _ => &[],
    };
    let has_default_clone = matches!(spec.clone, CloneSpec::Default { .. });
    let written: Vec<(StepKind, Option<&StepSpec>)> = if has_default_clone { vec![(StepKind::Clone, None)] } else { Vec::new() }
        .into_iter()
        .chain(clone_specs.iter().map(|step| (StepKind::Clone, Some(step))))
        .chain(spec.steps.iter().map(|step| (written_kind(spec, step), Some(step))))
        .collect();
    let use_plan = planned.len() == written.len();
    let mut steps: Vec<StepView<'a>> = Vec::with_capacity(written.len());
    for (index, (kind, step)) in written.into_iter().enumerate() {
        let plan = if use_plan { planned.get(index) } else { None };
        steps.push(view(spec, kind, step, plan));
    }
    let planned_services: &[StepPlan] = plan.map_or(&[], |plan| &plan.services);
    let services = spec
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            let plan = planned_services.get(index).filter(|_| planned_services.len() == spec.services.len());
            let mut view = view(spec, StepKind::Service, Some(service), plan);
            view.after.clear();
            view
        })
        .collect();
    (steps, services)
}

/// A step's kind as written (the plan may be missing or cut short by errors).
fn written_kind(workflow: &WorkflowSpec, step: &StepSpec) -> StepKind {
    if runs_natively(step, workflow.dialect) {
        StepKind::Build
    } else if step.is_plugin() {
        StepKind::Plugin
    } else {
        StepKind::Commands
    }
}

pub(super) fn view<'a>(workflow: &WorkflowSpec, kind: StepKind, spec: Option<&'a StepSpec>, plan: Option<&'a StepPlan>) -> StepView<'a> {
    let name = plan.map(|plan| plan.name.clone()).or(spec.map(|spec| spec.name.clone())).unwrap_or_else(|| CLONE_STEP.to_owned());
    let (runs_on, never) = match plan {
        Some(plan) => (plan.runs_on.clone(), plan.skipped.then(|| plan.skip_reason.clone().unwrap_or_else(|| "it is skipped".into()))),
        None => {
            let statuses = spec.map(|spec| statuses_of(&spec.when)).unwrap_or_else(|| vec![RunOn::Success]);
            let never = statuses.is_empty().then(|| "its `status` condition lists no status".to_owned());
            (statuses, never)
        }
    };
    StepView {
        name,
        kind,
        spec,
        plan,
        after: plan.map(|plan| plan.depends_on.clone()).unwrap_or_default(),
        runs_on,
        never,
        secrets: spec.map(|spec| step_secrets(workflow.dialect, spec)).unwrap_or_default(),
        anchor: String::new(),
    }
}

/// When a `when` lets a step run, as the compiler decides it with conditions ignored.
pub(super) fn statuses_of(when: &When) -> Vec<RunOn> {
    let (on_success, on_failure) = when.statuses_ignoring_conditions();
    RunOn::list(on_success, on_failure)
}

/// The secrets a step receives, found as the compiler finds them (`encode_value`), with where
/// each was written.
pub(super) fn step_secrets(dialect: Dialect, step: &StepSpec) -> Vec<SecretUse> {
    let mut uses = Vec::new();
    for entry in &step.environment {
        let mut references = Vec::new();
        encode_value(&entry.value, &entry.name, &mut references);
        for reference in references {
            let how = if reference.embedded {
                format!("part of {}", code(&format!("${}", entry.name)))
            } else {
                code(&format!("${}", entry.name))
            };
            uses.push(SecretUse { secret: reference.secret, how });
        }
    }
    for (key, value) in &step.settings {
        let variable = setting_variable(dialect, key);
        let mut references: Vec<SecretReference> = Vec::new();
        encode_value(value, &variable, &mut references);
        for reference in references {
            let part = if reference.embedded { "part of " } else { "" };
            uses.push(SecretUse {
                secret: reference.secret,
                how: format!("{part}setting {} ({})", code(key), code(&format!("${variable}"))),
            });
        }
    }
    uses
}
