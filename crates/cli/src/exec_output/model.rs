//! What is known of a run from its events so far: its workflows and steps, each in its phase.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use runtime::{Event, Status};

use super::text::step_colour;

/// Log prefixes of the live view are padded to line up, but not without bound.
const LIVE_PREFIX_WIDTH_LIMIT: usize = 24;

/// What is known of the run from its events: which workflows and steps exist, in which state,
/// and for the live view the lines that show them.
#[derive(Default)]
pub(super) struct RunModel {
    /// From `RunStarted`; labels carry the workflow name when there are several.
    declared_workflows: usize,
    pub(super) workflows: Vec<WorkflowView>,
    pub(super) workflow_index: HashMap<String, usize>,
    /// Widest log prefix so far (live view), within `LIVE_PREFIX_WIDTH_LIMIT`.
    pub(super) prefix_width: usize,
    /// Images build steps pushed, in order, as `repository@digest (tags)`.
    pub(super) published: Vec<String>,
}

pub(super) struct WorkflowView {
    pub(super) name: String,
    pub(super) phase: Phase,
    pub(super) reason: Option<String>,
    pub(super) steps: Vec<StepView>,
    step_index: HashMap<String, usize>,
    /// Live view: one line for the workflow, and whether its steps' lines were folded into it.
    pub(super) line: Option<ProgressBar>,
    pub(super) collapsed: bool,
}

pub(super) struct StepView {
    pub(super) name: String,
    pub(super) colour: &'static str,
    pub(super) phase: Phase,
    pub(super) reason: Option<String>,
    pub(super) line: Option<ProgressBar>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    Pending,
    Running { since: Instant },
    Finished { status: Status, exit_code: Option<i64>, duration: Duration },
}

impl RunModel {
    fn several_workflows(&self) -> bool {
        self.declared_workflows.max(self.workflows.len()) > 1
    }

    /// `step` alone in a single-workflow run, `workflow/step` otherwise.
    pub(super) fn label(&self, workflow: &str, step: &str) -> String {
        if self.several_workflows() { format!("{workflow}/{step}") } else { step.to_owned() }
    }

    fn workflow_mut(&mut self, name: &str) -> &mut WorkflowView {
        let index = match self.workflow_index.get(name) {
            Some(index) => *index,
            None => {
                self.workflows.push(WorkflowView::new(name));
                self.workflow_index.insert(name.to_owned(), self.workflows.len() - 1);
                self.workflows.len() - 1
            }
        };
        &mut self.workflows[index]
    }

    pub(super) fn workflow(&self, name: &str) -> Option<&WorkflowView> {
        self.workflow_index.get(name).map(|index| &self.workflows[*index])
    }

    pub(super) fn step(&self, workflow: &str, step: &str) -> Option<&StepView> {
        let workflow = self.workflow(workflow)?;
        workflow.step_index.get(step).map(|index| &workflow.steps[*index])
    }

    pub(super) fn observe(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::RunStarted { workflows, .. } => self.declared_workflows = workflows.len(),
            Event::WorkflowStarted { workflow, steps } => {
                let view = self.workflow_mut(workflow);
                view.phase = Phase::Running { since: now };
                for step in steps {
                    view.step_mut(step);
                }
                self.widen_prefixes(workflow);
            }
            Event::StepStarted { workflow, step } => {
                self.workflow_mut(workflow).step_mut(step).phase = Phase::Running { since: now };
                self.widen_prefixes(workflow);
            }
            Event::StepFinished { workflow, step, status, exit_code, duration, reason } => {
                let view = self.workflow_mut(workflow).step_mut(step);
                view.phase = Phase::Finished { status: *status, exit_code: *exit_code, duration: *duration };
                view.reason = reason.clone();
            }
            Event::WorkflowFinished { workflow, status, duration, reason } => {
                let view = self.workflow_mut(workflow);
                view.phase = Phase::Finished { status: *status, exit_code: None, duration: *duration };
                view.reason = reason.clone();
            }
            Event::ImagePublished { image, .. } => self.published.push(published_line(image)),
            Event::Log { .. } | Event::RunFinished { .. } => {}
        }
    }

    fn widen_prefixes(&mut self, workflow: &str) {
        let several = self.several_workflows();
        let Some(view) = self.workflow(workflow) else { return };
        let widest = view.steps.iter().map(|step| step.name.chars().count()).max().unwrap_or(0);
        let widest = if several { widest + workflow.chars().count() + 1 } else { widest };
        self.prefix_width = self.prefix_width.max(widest.min(LIVE_PREFIX_WIDTH_LIMIT));
    }
}

impl WorkflowView {
    fn new(name: &str) -> WorkflowView {
        WorkflowView {
            name: name.to_owned(),
            phase: Phase::Pending,
            reason: None,
            steps: Vec::new(),
            step_index: HashMap::new(),
            line: None,
            collapsed: false,
        }
    }

    fn step_mut(&mut self, name: &str) -> &mut StepView {
        let index = match self.step_index.get(name) {
            Some(index) => *index,
            None => {
                let colour = step_colour(&self.name, Some(self.steps.len()), name);
                self.steps.push(StepView { name: name.to_owned(), colour, phase: Phase::Pending, reason: None, line: None });
                self.step_index.insert(name.to_owned(), self.steps.len() - 1);
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }
}

/// `127.0.0.1:5000/app@sha256:… (latest, 1.2)`: the pinned name a deployer uses, then the tags.
pub(super) fn published_line(image: &runtime::PublishedImage) -> String {
    format!("{}@{} ({})", image.repository, image.digest, image.tags.join(", "))
}
