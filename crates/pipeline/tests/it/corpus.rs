//! Realistic pipelines of both dialects: each lints without errors and plans every declared
//! step in declared order; the plan is pinned by a snapshot.

use pipeline::plan::Plan;
use pipeline::{CompileOptions, Severity, plan_files};
use serde_json::Value;

use crate::support::{cases, context_for, load, render_diagnostics};

/// The plan without what every plan repeats (built-in variables), so snapshots show the decisions.
fn condensed(plan: &Plan) -> Value {
    let mut value = serde_json::to_value(plan).unwrap();
    for workflow in value["workflows"].as_array_mut().unwrap() {
        let object = workflow.as_object_mut().unwrap();
        object.remove("environment");
        object.remove("file");
        for list in ["steps", "services"] {
            for step in object[list].as_array_mut().unwrap() {
                let environment = step["environment"].as_object_mut().unwrap();
                environment.retain(|key, _| !key.starts_with("CI_STEP_") && !key.starts_with("DRONE_STEP_"));
                if environment.is_empty() {
                    step.as_object_mut().unwrap().remove("environment");
                }
            }
        }
    }
    value
}

#[test]
fn corpus_plans_match_snapshots() {
    let cases = cases("corpus");
    assert!(cases.len() >= 40, "the corpus has {} cases, fewer than 40", cases.len());
    for (name, dir) in cases {
        let files = load(&dir);
        let plan = plan_files(&files, &context_for(&dir), CompileOptions::default());
        let errors: Vec<_> = plan.diagnostics.iter().filter(|d| d.severity == Severity::Error).cloned().collect();
        assert!(errors.is_empty(), "{name} has errors:\n{}", render_diagnostics(&errors, &files));
        insta::with_settings!({snapshot_suffix => name.clone(), prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_yaml_snapshot!("plan", condensed(&plan));
        });
    }
}

/// Every step and service written in a file appears in the plan, in the order written.
#[test]
fn corpus_plans_keep_every_declared_step_in_order() {
    for (name, dir) in cases("corpus") {
        let files = load(&dir);
        let (workflows, _) = pipeline::read_and_lint(&files);
        let options = CompileOptions { ignore_conditions: true, ..CompileOptions::default() };
        let plan = pipeline::compile_with(&workflows, &context_for(&dir), options);
        for spec in &workflows {
            for row in plan.workflows.iter().filter(|w| w.base_name == spec.name && w.file == spec.file) {
                let planned: Vec<&str> =
                    row.steps.iter().filter(|s| s.kind != pipeline::plan::StepKind::Clone).map(|s| s.name.as_str()).collect();
                let declared: Vec<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
                assert_eq!(planned, declared, "{name}/{}: the planned steps are not the declared ones in order", spec.name);
                let services: Vec<&str> = row.services.iter().map(|s| s.name.as_str()).collect();
                let declared_services: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
                assert_eq!(services, declared_services, "{name}/{}: the planned services are not the declared ones in order", spec.name);
            }
        }
    }
}

/// A plan is what crosses the wire to an agent: it reads back from JSON as it was written.
#[test]
fn plans_read_back_from_json_unchanged() {
    for (name, dir) in cases("corpus") {
        let files = load(&dir);
        let plan = plan_files(&files, &context_for(&dir), CompileOptions::default());
        let written = serde_json::to_string(&plan).unwrap();
        let read: Plan = serde_json::from_str(&written).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(serde_json::to_string(&read).unwrap(), written, "{name}");
    }
}
