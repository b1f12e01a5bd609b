//! The scheduler over the fake backend: which step runs when, how each ends, and what is
//! reported. One table of pipelines; `check` runs each and holds every run to the rules all runs
//! share (one final event per step, a step starts only after its own dependencies, the teardown
//! is a workflow's last call, no secret in any event) before the case's own expectations.
//!
//! Concurrency is proven with `await STEP` (a step that waits for another to have started fails
//! if it never does), not with clocks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::{CompileOptions, Context, SourceFile};
use runtime::fake::{Call, FakeBackend};
use runtime::{Event, RunOptions, Status, WorkspaceSource};
use tokio_util::sync::CancellationToken;

use Status::{Error, Failure, Killed, Skipped, Success};

struct Case {
    name: &'static str,
    /// A `.woodpecker.yml`; every step runs the fake's commands.
    pipeline: &'static str,
    /// Limit of the whole run.
    timeout: Option<Duration>,
    /// Cancel the run once this step has started.
    cancel_at: Option<&'static str>,
    secrets: &'static [(&'static str, &'static str)],
    run: Status,
    /// The workflow's status and a part of its reason (`""`: no reason).
    workflow: (Status, &'static str),
    /// Every step and service: its final status and a part of its reason (`""`: no reason).
    steps: &'static [(&'static str, Status, &'static str)],
    /// Output lines of steps.
    logs: &'static [(&'static str, &'static [&'static str])],
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            pipeline: "",
            timeout: None,
            cancel_at: None,
            secrets: &[],
            run: Success,
            workflow: (Success, ""),
            steps: &[],
            logs: &[],
        }
    }
}

const WORKFLOW: &str = "woodpecker";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_runs_and_reports_every_step() {
    let cases = [
        // Ordering.
        Case {
            name: "steps without dependencies run one after another, in declared order",
            pipeline: "
steps:
  a: {image: x, commands: [echo one, echo two]}
  b: {image: x, commands: [sleep 20]}
  c: {image: x, commands: [echo three]}
",
            steps: &[("clone", Success, ""), ("a", Success, ""), ("b", Success, ""), ("c", Success, "")],
            logs: &[("a", &["one", "two"]), ("c", &["three"])],
            ..Case::default()
        },
        Case {
            // Were steps run level by level, `slow` would wait for `late` forever and fail.
            name: "a step starts as soon as its own dependencies finish",
            pipeline: "
skip_clone: true
steps:
  slow: {image: x, commands: [await late]}
  quick: {image: x, commands: [echo quick]}
  late: {image: x, commands: [echo late], depends_on: [quick]}
",
            steps: &[("slow", Success, ""), ("quick", Success, ""), ("late", Success, "")],
            ..Case::default()
        },
        Case {
            name: "fan-out runs side by side and fan-in waits for all of it",
            pipeline: "
skip_clone: true
steps:
  build: {image: x, commands: [sleep 10]}
  unit: {image: x, commands: [await lint], depends_on: [build]}
  lint: {image: x, commands: [await docs], depends_on: [build]}
  docs: {image: x, commands: [await unit], depends_on: [build]}
  package: {image: x, commands: [echo done], depends_on: [unit, lint, docs]}
",
            steps: &[("build", Success, ""), ("unit", Success, ""), ("lint", Success, ""), ("docs", Success, ""), ("package", Success, "")],
            ..Case::default()
        },
        // Failure policies.
        Case {
            name: "a failure skips what depends on it, and what runs beside it finishes",
            pipeline: "
skip_clone: true
steps:
  test: {image: x, commands: [await beside, exit 3]}
  beside: {image: x, commands: [sleep 20], depends_on: []}
  deploy: {image: x, commands: [echo deploy], depends_on: [test]}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[("test", Failure, ""), ("beside", Success, ""), ("deploy", Skipped, "an earlier step failed")],
            ..Case::default()
        },
        Case {
            name: "failure: ignore shows the step failed and the workflow goes on",
            pipeline: "
skip_clone: true
steps:
  flaky: {image: x, commands: [exit 1], failure: ignore}
  next: {image: x, commands: [echo next]}
",
            steps: &[("flaky", Failure, ""), ("next", Success, "")],
            logs: &[("next", &["next"])],
            ..Case::default()
        },
        Case {
            name: "steps on failure run after a failure, the others are not run",
            pipeline: "
skip_clone: true
steps:
  test: {image: x, commands: [exit 2]}
  deploy: {image: x, commands: [echo deploy]}
  notify: {image: x, commands: [echo failed], when: {status: [failure]}}
  cleanup: {image: x, commands: [echo cleanup], when: {status: [success, failure]}}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[
                ("test", Failure, ""),
                ("deploy", Skipped, "an earlier step failed"),
                ("notify", Success, ""),
                ("cleanup", Success, ""),
            ],
            logs: &[("notify", &["failed"])],
            ..Case::default()
        },
        Case {
            name: "steps on failure are not run after a success",
            pipeline: "
skip_clone: true
steps:
  test: {image: x, commands: [exit 0]}
  notify: {image: x, commands: [echo failed], when: {status: [failure]}}
",
            steps: &[("test", Success, ""), ("notify", Skipped, "it runs only after a failure")],
            ..Case::default()
        },
        Case {
            name: "failure: cancel stops every other running step",
            pipeline: "
skip_clone: true
steps:
  fast: {image: x, commands: [await long, exit 1], failure: cancel}
  long: {image: x, commands: [hang], depends_on: []}
",
            run: Killed,
            workflow: (Killed, ""),
            steps: &[("fast", Failure, ""), ("long", Killed, "the run was cancelled")],
            ..Case::default()
        },
        // Detached steps and services.
        Case {
            name: "a detached step runs beside the later steps and is stopped at the end",
            pipeline: "
skip_clone: true
steps:
  server: {image: x, commands: [echo listening, hang], detach: true}
  client: {image: x, commands: [await server, echo connected]}
",
            steps: &[("server", Success, ""), ("client", Success, "")],
            logs: &[("server", &["listening"]), ("client", &["connected"])],
            ..Case::default()
        },
        Case {
            name: "a detached step that ends with an error is reported failed at the end",
            pipeline: "
skip_clone: true
steps:
  sidecar: {image: x, commands: [exit 4], detach: true}
  main: {image: x, commands: [sleep 20]}
",
            steps: &[("sidecar", Failure, ""), ("main", Success, "")],
            ..Case::default()
        },
        Case {
            name: "services start before the steps and are stopped at the end",
            pipeline: "
skip_clone: true
services:
  database: {image: x, healthcheck: {command: [ready], interval: 0, retries: 5}}
steps:
  migrate: {image: x, commands: [await database, echo migrated]}
",
            steps: &[("database", Success, ""), ("migrate", Success, "")],
            ..Case::default()
        },
        Case {
            name: "a service that never becomes ready fails the workflow before any step",
            pipeline: "
skip_clone: true
services:
  database: {image: x, commands: [unready, hang], healthcheck: {command: [ready], interval: 0, retries: 2}}
steps:
  migrate: {image: x, commands: [echo migrated]}
",
            run: Failure,
            workflow: (Failure, "service `database` did not become ready"),
            steps: &[("database", Failure, "did not become ready"), ("migrate", Skipped, "did not become ready")],
            ..Case::default()
        },
        Case {
            name: "a service that cannot start fails the workflow and no step runs",
            pipeline: "
skip_clone: true
services:
  database: {image: x, commands: [fail start no such image]}
steps:
  migrate: {image: x, commands: [echo migrated]}
",
            // A workflow that could not run makes the run an error, as it makes a build one.
            run: Error,
            workflow: (Error, "no such image"),
            steps: &[("database", Error, "no such image"), ("migrate", Skipped, "service `database` could not start")],
            ..Case::default()
        },
        // Cancellation and timeouts.
        Case {
            name: "cancelling the run stops the running step and runs nothing more",
            pipeline: "
skip_clone: true
steps:
  long: {image: x, commands: [hang]}
  after: {image: x, commands: [echo after]}
  notify: {image: x, commands: [echo failed], when: {status: [failure]}}
",
            cancel_at: Some("long"),
            run: Killed,
            workflow: (Killed, ""),
            steps: &[
                ("long", Killed, "the run was cancelled"),
                ("after", Killed, "the run was cancelled"),
                ("notify", Killed, "cancelled"),
            ],
            ..Case::default()
        },
        Case {
            name: "a step that outlives its timeout is stopped and fails",
            pipeline: "
skip_clone: true
steps:
  long: {image: x, commands: [hang], timeout: 1s}
  after: {image: x, commands: [echo after]}
  notify: {image: x, commands: [echo timed out], when: {status: [failure]}}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[("long", Failure, "timed out after 1 s"), ("after", Skipped, "an earlier step failed"), ("notify", Success, "")],
            ..Case::default()
        },
        Case {
            name: "the run's timeout kills what still runs",
            pipeline: "
skip_clone: true
steps:
  long: {image: x, commands: [hang]}
  after: {image: x, commands: [echo after]}
",
            timeout: Some(Duration::from_millis(300)),
            run: Killed,
            workflow: (Killed, ""),
            steps: &[("long", Killed, "the run was cancelled"), ("after", Killed, "the run was cancelled")],
            ..Case::default()
        },
        // Panics: each fails its step and the workflow; what depends on it is not run.
        Case {
            name: "a step whose start panics fails, and its dependents are not run",
            pipeline: "
skip_clone: true
steps:
  build: {image: x, commands: [panic start]}
  test: {image: x, commands: [echo test], depends_on: [build]}
  deploy: {image: x, commands: [echo deploy], depends_on: [test]}
  notify: {image: x, commands: [echo failed], depends_on: [build], when: {status: [failure]}}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[
                ("build", Error, "panicked"),
                ("test", Skipped, "an earlier step failed"),
                ("deploy", Skipped, "an earlier step failed"),
                ("notify", Success, ""),
            ],
            ..Case::default()
        },
        Case {
            name: "a step whose wait panics fails, and its dependents are not run",
            pipeline: "
skip_clone: true
steps:
  build: {image: x, commands: [echo building, panic wait, hang]}
  test: {image: x, commands: [echo test]}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[("build", Error, "the step panicked: the fake backend panics in wait"), ("test", Skipped, "an earlier step failed")],
            ..Case::default()
        },
        Case {
            name: "a step whose container creation panics fails",
            pipeline: "
skip_clone: true
steps:
  build: {image: x, commands: [panic prepare]}
  test: {image: x, commands: [echo test]}
",
            run: Failure,
            workflow: (Failure, ""),
            steps: &[("build", Error, "panicked"), ("test", Skipped, "an earlier step failed")],
            ..Case::default()
        },
        Case {
            name: "a panic with failure: ignore is ignored like any failure",
            pipeline: "
skip_clone: true
steps:
  flaky: {image: x, commands: [panic wait], failure: ignore}
  next: {image: x, commands: [echo next]}
",
            steps: &[("flaky", Error, "panicked"), ("next", Success, "")],
            ..Case::default()
        },
        Case {
            name: "a service whose start panics fails the workflow and no step runs",
            pipeline: "
skip_clone: true
services:
  database: {image: x, commands: [panic start]}
steps:
  migrate: {image: x, commands: [echo migrated]}
",
            // A workflow that could not run makes the run an error, as it makes a build one.
            run: Error,
            workflow: (Error, "panicked"),
            steps: &[("database", Error, "panicked"), ("migrate", Skipped, "service `database` could not start")],
            ..Case::default()
        },
        Case {
            name: "a service whose readiness check panics fails the workflow",
            pipeline: "
skip_clone: true
services:
  database: {image: x, commands: [panic probe, hang], healthcheck: {command: [ready], interval: 0, retries: 5}}
steps:
  migrate: {image: x, commands: [echo migrated]}
",
            run: Failure,
            workflow: (Failure, "its readiness check panicked"),
            steps: &[("database", Error, "its readiness check panicked"), ("migrate", Skipped, "did not become ready")],
            ..Case::default()
        },
        Case {
            name: "a service that panics when stopped fails, and the workflow with it",
            pipeline: "
skip_clone: true
services:
  database: {image: x, commands: [panic stop, hang]}
steps:
  migrate: {image: x, commands: [echo migrated]}
",
            run: Failure,
            workflow: (Failure, "service `database`: stopping the service panicked"),
            steps: &[("database", Error, "panicked"), ("migrate", Success, "")],
            ..Case::default()
        },
        Case {
            name: "a detached step whose wait panics fails, and the workflow with it",
            pipeline: "
skip_clone: true
steps:
  sidecar: {image: x, commands: [panic wait, hang], detach: true}
  main: {image: x, commands: [await sidecar]}
",
            run: Failure,
            workflow: (Failure, "step `sidecar`: stopping the step panicked"),
            steps: &[("sidecar", Error, "panicked"), ("main", Success, "")],
            ..Case::default()
        },
        // What leaves the runtime.
        Case {
            name: "a backend error that echoes a secret reaches the events masked",
            pipeline: "
skip_clone: true
steps:
  deploy:
    image: x
    environment: {TOKEN: {from_secret: deploy_token}}
    commands: [echo token is $$TOKEN, fail start the engine refused TOKEN=$$TOKEN]
",
            secrets: &[("deploy_token", "hunter2-s3cr3t")],
            run: Failure,
            workflow: (Failure, ""),
            steps: &[("deploy", Error, "the engine refused TOKEN=********")],
            ..Case::default()
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(failure) =
            tokio::time::timeout(Duration::from_secs(30), check(case)).await.unwrap_or_else(|_| Err("it never ended".into()))
        {
            failures.push(format!("{}: {failure}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// Runs a case's pipeline on the fake backend; `Err` says what differs from the case.
async fn check(case: &Case) -> Result<(), String> {
    let plan = pipeline::plan_files(&[SourceFile::new(".woodpecker.yml", case.pipeline)], &Context::default(), CompileOptions::default());
    if plan.has_errors() {
        return Err(format!("the pipeline has errors: {:?}", plan.diagnostics));
    }
    let backend = FakeBackend::new();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let cancel = CancellationToken::new();
    let sink = {
        let events = events.clone();
        let cancel = cancel.clone();
        let cancel_at = case.cancel_at;
        move |event: Event| {
            if let Event::StepStarted { step, .. } = &event
                && Some(step.as_str()) == cancel_at
            {
                cancel.cancel();
            }
            events.lock().unwrap().push(event);
        }
    };
    let options = RunOptions {
        parallel: 4,
        timeout: case.timeout,
        workspace: WorkspaceSource::Empty,
        secrets: case.secrets.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect::<BTreeMap<_, _>>(),
        publish: Default::default(),
    };
    let summary = runtime::run_plan(&plan, Arc::new(backend.clone()), options, Arc::new(sink), cancel)
        .await
        .map_err(|error| format!("the run failed: {error}"))?;
    let events = events.lock().unwrap().clone();
    let calls = backend.calls();
    let trace =
        || format!("\nevents:\n{}\ncalls:\n{calls:#?}", events.iter().map(|event| format!("  {event:?}")).collect::<Vec<_>>().join("\n"));
    let fail = |message: String| Err(format!("{message}{}", trace()));

    // Rules every run keeps.
    let workflow_plan = &plan.workflows[0];
    let all_steps: Vec<&pipeline::plan::StepPlan> = workflow_plan.services.iter().chain(&workflow_plan.steps).collect();
    for step in &all_steps {
        let finished = events.iter().filter(|event| matches!(event, Event::StepFinished { step: name, .. } if name == &step.name)).count();
        if finished != 1 {
            return fail(format!("step `{}` has {finished} final events, not one", step.name));
        }
        let position = |wanted: fn(&Event) -> bool| events.iter().position(|event| wanted(event) && step_of(event) == Some(&step.name));
        let finished_at = position(|event| matches!(event, Event::StepFinished { .. })).unwrap();
        let started = events.iter().filter(|event| matches!(event, Event::StepStarted { step: name, .. } if name == &step.name)).count();
        if started > 1 || position(|event| matches!(event, Event::StepStarted { .. })).is_some_and(|at| at > finished_at) {
            return fail(format!("step `{}` starts more than once or after its end", step.name));
        }
        if events.iter().skip(finished_at).any(|event| matches!(event, Event::Log { step: name, .. } if name == &step.name)) {
            return fail(format!("step `{}` has output after its end", step.name));
        }
        // A step starts only once each of its own dependencies has ended (a detached one: started).
        let call_at = |wanted: &dyn Fn(&Call) -> bool| calls.iter().rposition(wanted);
        let Some(started_at) = calls.iter().position(|call| matches!(call, Call::Start { step: name, .. } if name == &step.name)) else {
            continue;
        };
        for dependency in &step.depends_on {
            let detached = all_steps.iter().any(|other| &other.name == dependency && other.detach);
            let ended_at = call_at(&|call| match call {
                Call::Start { step: name, .. } => name == dependency,
                Call::Exited { step: name, .. } => name == dependency && !detached,
                _ => false,
            });
            if ended_at.is_some_and(|ended_at| ended_at > started_at) {
                return fail(format!("step `{}` started before its dependency `{dependency}` ended", step.name));
            }
        }
    }
    let Some(teardown) = calls.iter().position(|call| matches!(call, Call::Teardown { .. })) else {
        return fail("the workflow was not torn down".into());
    };
    if teardown != calls.len() - 1 {
        return fail("the teardown is not the workflow's last call".into());
    }
    let written = serde_json::to_string(&events).unwrap();
    if let Some((_, value)) = case.secrets.iter().find(|(_, value)| written.contains(value)) {
        return fail(format!("the secret value `{value}` is in the events"));
    }
    if !matches!(events.first(), Some(Event::RunStarted { .. })) || !matches!(events.last(), Some(Event::RunFinished { .. })) {
        return fail("the run's events do not start with run_started and end with run_finished".into());
    }

    // The case's own expectations.
    if summary.status != case.run {
        return fail(format!("the run ended {:?}, not {:?}", summary.status, case.run));
    }
    let workflow_end = events.iter().find_map(|event| match event {
        Event::WorkflowFinished { workflow, status, reason, .. } if workflow == WORKFLOW => Some((*status, reason.clone())),
        _ => None,
    });
    let Some((status, reason)) = workflow_end else { return fail("the workflow has no end".into()) };
    if let Some(problem) = compare("the workflow", (status, reason.as_deref()), case.workflow) {
        return fail(problem);
    }
    let mut ended: Vec<&str> = Vec::new();
    for event in &events {
        if let Event::StepFinished { step, status, reason, .. } = event {
            ended.push(step);
            let Some(expected) = case.steps.iter().find(|(name, ..)| name == step) else {
                return fail(format!("step `{step}` is not in the case"));
            };
            if let Some(problem) = compare(&format!("step `{step}`"), (*status, reason.as_deref()), (expected.1, expected.2)) {
                return fail(problem);
            }
        }
    }
    if let Some((missing, ..)) = case.steps.iter().find(|(name, ..)| !ended.contains(name)) {
        return fail(format!("step `{missing}` has no end"));
    }
    for (step, lines) in case.logs {
        let logged: Vec<&str> = events
            .iter()
            .filter_map(|event| match event {
                Event::Log { step: name, line, .. } if name == step => Some(line.as_str()),
                _ => None,
            })
            .collect();
        if logged != *lines {
            return fail(format!("step `{step}` printed {logged:?}, not {lines:?}"));
        }
    }
    Ok(())
}

fn step_of(event: &Event) -> Option<&String> {
    match event {
        Event::StepStarted { step, .. } | Event::StepFinished { step, .. } | Event::Log { step, .. } => Some(step),
        _ => None,
    }
}

/// A status and reason against the expected status and a part of the reason (`""`: none).
fn compare(what: &str, (status, reason): (Status, Option<&str>), (expected, part): (Status, &str)) -> Option<String> {
    let reason_matches = match reason {
        None => part.is_empty(),
        Some(reason) => !part.is_empty() && reason.contains(part),
    };
    (status != expected || !reason_matches)
        .then(|| format!("{what} ended {status:?} with reason {reason:?}, not {expected:?} with a reason holding {part:?}"))
}

/// The last line of defence: a workflow's own task dies (here the event sink panics while the
/// runtime clones, outside any step's task). The workflow still ends, in error, and so does
/// every one of its steps, once; the run goes on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_whose_task_dies_still_ends_every_step() {
    let pipeline = "steps:\n  build: {image: x, commands: [echo build]}\n  test: {image: x, commands: [echo test]}\n";
    let plan = pipeline::plan_files(&[SourceFile::new(".woodpecker.yml", pipeline)], &Context::default(), CompileOptions::default());
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = {
        let events = events.clone();
        move |event: Event| {
            if matches!(&event, Event::StepStarted { step, .. } if step == "clone") {
                panic!("the sink fails");
            }
            events.lock().unwrap().push(event);
        }
    };
    let options =
        RunOptions { parallel: 2, timeout: None, workspace: WorkspaceSource::Empty, secrets: BTreeMap::new(), publish: Default::default() };
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        runtime::run_plan(&plan, Arc::new(FakeBackend::new()), options, Arc::new(sink), CancellationToken::new()),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let events = events.lock().unwrap().clone();
    assert_eq!(summary.status, Error, "{events:#?}");
    let ends: Vec<(String, Status, String)> = events
        .iter()
        .filter_map(|event| match event {
            Event::StepFinished { step, status, reason, .. } => Some((step.clone(), *status, reason.clone().unwrap_or_default())),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = ends.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(names, ["clone", "build", "test"], "{events:#?}");
    assert!(
        ends.iter().all(|(_, status, reason)| *status == Error && reason.contains("the workflow's task panicked: the sink fails")),
        "{ends:#?}"
    );
    assert!(
        events.iter().any(
            |event| matches!(event, Event::WorkflowFinished { status: Error, reason: Some(reason), .. } if reason.contains("panicked"))
        ),
        "{events:#?}"
    );
    assert!(matches!(events.last(), Some(Event::RunFinished { status: Error, .. })), "{events:#?}");
}
