//! `gantry exec` end to end on the real Docker engine (and the local backend): what runs, in
//! which order, what it sees, what it prints, and that nothing is left behind.
//!
//! Ordering is proven through the shared workspace, not with clocks: a step that must overlap
//! with another waits for the other's marker file and fails if it never comes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const IMAGE: &str = "gantry-test/busybox:latest";

/// A repository folder with one pipeline file.
fn repository(path: &str, pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join(path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(full, pipeline.replace("IMAGE", IMAGE)).unwrap();
    fs::write(dir.path().join("README.md"), "a file from the working tree\n").unwrap();
    dir
}

fn exec(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("exec")
        .args(["--output", "json"])
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .output()
        .unwrap()
}

fn events(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

fn run_id(events: &[Value]) -> String {
    events.iter().find(|e| e["event"] == "run_started").map(|e| e["run"].as_str().unwrap().to_owned()).expect("a run_started event")
}

/// Status of each step that finished, as `step=status`.
fn step_statuses(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| format!("{}={}", e["step"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect()
}

fn logs_of(events: &[Value], step: &str) -> Vec<String> {
    events.iter().filter(|e| e["event"] == "log" && e["step"] == step).map(|e| e["line"].as_str().unwrap().to_owned()).collect()
}

/// Nothing labelled with the run is left on the engine.
fn assert_nothing_left(run: &str) {
    for kind in [vec!["ps", "-aq"], vec!["network", "ls", "-q"], vec!["volume", "ls", "-q"]] {
        let mut args = kind.clone();
        let filter = format!("label=io.gantry.run={run}");
        args.extend(["--filter", &filter]);
        let output = Command::new("docker").args(&args).output().unwrap();
        let left = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(left.is_empty(), "`docker {}` still lists: {left}", kind.join(" "));
    }
}

fn detail(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn steps_share_the_workspace_which_holds_the_working_tree() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  write:\n    image: IMAGE\n    commands:\n      - cat README.md\n      - echo built > artifact.txt\n  read:\n    image: IMAGE\n    commands:\n      - cat artifact.txt\n      - pwd\n",
    );
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    assert_eq!(step_statuses(&events), ["clone=success", "write=success", "read=success"]);
    assert_eq!(logs_of(&events, "write"), ["+ cat README.md", "a file from the working tree", "+ echo built > artifact.txt"]);
    assert_eq!(logs_of(&events, "read")[..2], ["+ cat artifact.txt".to_owned(), "built".to_owned()]);
    assert_nothing_left(&run_id(&events));
}

#[test]
fn fan_out_steps_overlap_and_a_fan_in_step_waits_only_for_its_own_dependencies() {
    // b and c each wait for the other's marker: they pass only if they run at the same time.
    // d needs only b, and writes a marker c waits for: c passes only if d did not wait for it.
    let pipeline = r#"
steps:
  a:
    image: IMAGE
    commands: [touch a.done]
  b:
    image: IMAGE
    depends_on: [a]
    commands:
      - touch b.started
      - for i in $(seq 1 100); do [ -f c.started ] && exit 0; sleep 0.1; done; exit 1
  c:
    image: IMAGE
    depends_on: [a]
    commands:
      - touch c.started
      - for i in $(seq 1 100); do [ -f b.started ] && break; sleep 0.1; done
      - for i in $(seq 1 150); do [ -f d.done ] && exit 0; sleep 0.1; done; exit 1
  d:
    image: IMAGE
    depends_on: [b]
    commands: [touch d.done]
  e:
    image: IMAGE
    depends_on: [c, d]
    commands: [ls a.done b.started c.started d.done]
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let output = exec(dir.path(), &["--parallel", "4"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    let statuses = step_statuses(&events);
    for step in ["a", "b", "c", "d", "e"] {
        assert!(statuses.contains(&format!("{step}=success")), "{statuses:?}");
    }
    // c passing shows d ran while c did; the order of their finish events is a race (c exits
    // as soon as it sees d's marker, maybe before d's exit is reported), so it is not checked.
    let position = |name: &str| statuses.iter().position(|s| s.starts_with(&format!("{name}="))).unwrap();
    assert!(position("e") > position("c") && position("e") > position("d"), "{statuses:?}");
    assert_nothing_left(&run_id(&events));
}

#[test]
fn a_service_is_reached_by_its_name_once_ready() {
    let pipeline = r#"
services:
  web:
    image: IMAGE
    commands:
      - mkdir -p /www && echo hello-from-service > /www/index.html
      - httpd -f -p 8080 -h /www
    healthcheck:
      command: [wget, -q, -O, /dev/null, http://127.0.0.1:8080/]
      interval: 1s
      retries: 30
steps:
  fetch:
    image: IMAGE
    commands:
      - wget -q -O - http://web:8080/
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    assert!(logs_of(&events, "fetch").contains(&"hello-from-service".to_owned()), "{}", detail(&output));
    assert_nothing_left(&run_id(&events));
}

#[test]
fn a_detached_step_runs_alongside_and_is_stopped_at_the_end() {
    let pipeline = r#"
steps:
  server:
    image: IMAGE
    detach: true
    commands:
      - mkdir -p /www && echo detached > /www/index.html
      - httpd -f -p 8081 -h /www
  client:
    image: IMAGE
    commands:
      - for i in $(seq 1 50); do wget -q -O - http://server:8081/ && exit 0; sleep 0.2; done; exit 1
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    assert!(logs_of(&events, "client").contains(&"detached".to_owned()));
    assert!(step_statuses(&events).contains(&"server=success".to_owned()));
    assert_nothing_left(&run_id(&events));
}

#[test]
fn failure_ignore_goes_on_and_failure_steps_run_only_after_a_failure() {
    let pipeline = r#"
steps:
  flaky:
    image: IMAGE
    failure: ignore
    commands: [exit 3]
  next:
    image: IMAGE
    commands: [echo still running]
  broken:
    image: IMAGE
    commands: [exit 4]
  after-broken:
    image: IMAGE
    commands: [echo never]
  notify:
    image: IMAGE
    commands: [echo a step failed]
    when:
      status: [failure]
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", detail(&output));
    let events = events(&output);
    let statuses = step_statuses(&events);
    assert_eq!(statuses, ["clone=success", "flaky=failure", "next=success", "broken=failure", "after-broken=skipped", "notify=success"]);
    let flaky = events.iter().find(|e| e["event"] == "step_finished" && e["step"] == "flaky").unwrap();
    assert_eq!(flaky["exit_code"], 3);
    assert_nothing_left(&run_id(&events));
}

#[test]
fn failure_cancel_stops_the_whole_run() {
    let pipeline = r#"
steps:
  slow:
    image: IMAGE
    depends_on: []
    commands: [sleep 30]
  fails:
    image: IMAGE
    depends_on: []
    failure: cancel
    commands: [sleep 1, exit 2]
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let started = Instant::now();
    let output = exec(dir.path(), &[]);
    assert!(started.elapsed() < Duration::from_secs(25), "the slow step was not stopped");
    assert_ne!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    let statuses = step_statuses(&events);
    assert!(statuses.contains(&"fails=failure".to_owned()), "{statuses:?}");
    assert!(statuses.contains(&"slow=killed".to_owned()), "{statuses:?}");
    assert_nothing_left(&run_id(&events));
}

#[test]
fn secrets_reach_only_the_steps_that_use_them_and_are_masked_even_split() {
    let pipeline = r#"
steps:
  uses:
    image: IMAGE
    environment:
      TOKEN:
        from_secret: api_token
    commands:
      - echo "token is $${TOKEN}"
      - printf 'split hun'; sleep 0.3; printf 'ter2\n'
  other:
    image: IMAGE
    commands:
      - echo "other sees [$${TOKEN}]"
"#;
    let dir = repository(".woodpecker.yml", pipeline);
    let output = exec(dir.path(), &["--secret", "api_token=hunter2"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let events = events(&output);
    let uses = logs_of(&events, "uses");
    assert!(uses.contains(&"token is ********".to_owned()), "{uses:?}");
    assert!(uses.contains(&"split ********".to_owned()), "{uses:?}");
    assert!(logs_of(&events, "other").contains(&"other sees []".to_owned()));
    // A referenced secret that is not given is an error before anything runs.
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", detail(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("api_token"));
}

#[test]
fn exit_codes_and_a_missing_image_named_in_the_error() {
    let dir = repository(".woodpecker.yml", "steps:\n  a:\n    image: 127.0.0.1:9/gantry-test/does-not-exist:1.0\n    commands: [true]\n");
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", detail(&output));
    let events = events(&output);
    let finished = events.iter().find(|e| e["event"] == "step_finished" && e["step"] == "a").unwrap();
    assert_eq!(finished["status"], "error");
    assert!(finished["reason"].as_str().unwrap().contains("127.0.0.1:9/gantry-test/does-not-exist:1.0"), "{finished}");
    assert_nothing_left(&run_id(&events));

    let broken = repository(".woodpecker.yml", "steps:\n  a:\n    image: IMAGE\n    depends_on: [nope]\n    commands: [true]\n");
    assert_eq!(exec(broken.path(), &[]).status.code(), Some(2), "a pipeline with errors is a config error");
}

#[test]
fn privileged_steps_and_host_volumes_need_trust() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  a:\n    image: IMAGE\n    privileged: true\n    commands: [true]\n  b:\n    image: IMAGE\n    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n    commands: [true]\n",
    );
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", detail(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("step `a` of workflow `woodpecker` needs trust: it is privileged"), "{stderr}");
    assert!(stderr.contains("Docker socket"), "{stderr}");
    assert!(stderr.contains("--trusted"), "{stderr}");
}

/// What `gantry exec` refuses without `--trusted`, `gantry lint` notes at the key (a note: the
/// exit code stays 0, JSON carries it) and `gantry plan` marks on the step, before anything runs.
#[test]
fn lint_and_plan_show_what_exec_would_refuse() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  a:\n    image: IMAGE\n    privileged: true\n    commands: [true]\n  b:\n    image: IMAGE\n    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n    network_mode: host\n    commands: [true]\n",
    );
    let gantry = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_gantry")).args(args).current_dir(dir.path()).output().unwrap();

    let lint = gantry(&["lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", detail(&lint));
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(text.contains("note[needs-trust]: step `a` needs trust: it is privileged"), "{text}");
    assert!(text.contains(".woodpecker.yml:4:5"), "{text}");
    assert!(text.contains("note[needs-trust]: step `b` needs trust: it mounts the Docker socket"), "{text}");
    assert!(text.contains(".woodpecker.yml:9:5") && text.contains("it uses the host's network"), "{text}");
    assert!(text.contains("or with `gantry exec --trusted`"), "{text}");
    assert!(text.contains("1 file checked: no problems (3 notes to review)"), "{text}");

    let json = gantry(&["lint", "--format", "json"]);
    assert_eq!(json.status.code(), Some(0), "{}", detail(&json));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((report["errors"].as_u64(), report["warnings"].as_u64(), report["notes"].as_u64()), (Some(0), Some(0), Some(3)), "{report}");
    let first = &report["diagnostics"][0];
    assert_eq!((first["severity"].as_str(), first["code"].as_str()), (Some("note"), Some("needs-trust")), "{report}");
    assert_eq!((first["line"].as_u64(), first["column"].as_u64()), (Some(4), Some(5)), "{report}");

    let plan = gantry(&["plan", "--branch", "main"]);
    assert_eq!(plan.status.code(), Some(0), "{}", detail(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    let line_of =
        |step: &str| text.lines().find(|line| line.trim_start().starts_with(&format!("+ {step} "))).unwrap_or_default().to_owned();
    assert!(line_of("a").ends_with("(needs trust: privileged)"), "{text}");
    assert!(line_of("b").ends_with("(needs trust: volumes, network)"), "{text}");
    assert!(!line_of("clone").contains("needs trust"), "{text}");

    assert_eq!(exec(dir.path(), &[]).status.code(), Some(2), "exec refuses what lint noted");
}

/// Other networks than the workflow's, and a step's own name resolution, are refused without
/// `--trusted` in both dialects, before anything runs: the same decision as the agent's.
#[test]
fn other_networks_and_name_resolution_need_trust() {
    let keys = [
        ("network_mode: container:gantry-other", "it joins the network of container `gantry-other`"),
        ("network_mode: bridge", "it joins the network `bridge` instead of its workflow's"),
        ("dns: [10.0.0.53]", "it sets its own DNS servers (10.0.0.53)"),
        ("dns_search: [corp.example]", "it sets its own DNS search domains (corp.example)"),
        ("extra_hosts: [\"host.docker.internal:host-gateway\"]", "`host-gateway` is the host itself"),
    ];
    for (key, reason) in keys {
        let woodpecker = format!("steps:\n  a:\n    image: IMAGE\n    {key}\n    commands: [true]\n");
        let drone =
            format!("kind: pipeline\ntype: docker\nname: default\nsteps:\n- name: a\n  image: IMAGE\n  {key}\n  commands: [true]\n");
        for (path, pipeline) in [(".woodpecker.yml", woodpecker), (".drone.yml", drone)] {
            let dir = repository(path, &pipeline);
            let output = exec(dir.path(), &[]);
            assert_eq!(output.status.code(), Some(2), "{path} with `{key}`: {}", detail(&output));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("step `a` of workflow `") && stderr.contains(reason), "{path} with `{key}`: {stderr}");
            assert!(events(&output).is_empty(), "{path} with `{key}`: nothing runs");
        }
    }
    // With --trusted the same step runs.
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  a:\n    image: IMAGE\n    dns: [10.0.0.53]\n    extra_hosts: [\"database:10.0.0.5\"]\n    commands: [grep database /etc/hosts]\n",
    );
    let output = exec(dir.path(), &["--trusted"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    assert!(logs_of(&events(&output), "a").iter().any(|line| line.contains("10.0.0.5")), "{}", detail(&output));
    assert_nothing_left(&run_id(&events(&output)));
}

#[test]
fn a_drone_file_and_a_matrix_run() {
    let drone = repository(
        ".drone.yml",
        "kind: pipeline\ntype: docker\nname: test\nsteps:\n- name: hello\n  image: IMAGE\n  commands:\n  - echo \"stage $${DRONE_STAGE_NAME} in $${DRONE_WORKSPACE}\"\n",
    );
    let output = exec(drone.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    assert!(logs_of(&events(&output), "hello").contains(&"stage test in /drone/src".to_owned()));

    let matrix = repository(
        ".woodpecker.yml",
        "matrix:\n  FLAVOUR: [plain, spicy]\nsteps:\n  say:\n    image: IMAGE\n    commands:\n      - echo flavour ${FLAVOUR}\n",
    );
    let output = exec(matrix.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let lines: Vec<String> = events(&output)
        .iter()
        .filter(|e| e["event"] == "log" && e["step"] == "say")
        .map(|e| format!("{}: {}", e["workflow"].as_str().unwrap(), e["line"].as_str().unwrap()))
        .filter(|line| !line.contains("+ "))
        .collect();
    let mut lines = lines;
    lines.sort();
    assert_eq!(lines, ["woodpecker (FLAVOUR=plain): flavour plain", "woodpecker (FLAVOUR=spicy): flavour spicy"]);
}

#[test]
fn interrupting_a_run_mid_step_removes_everything_and_exits_130() {
    interrupt_mid_step("-INT");
}

#[test]
fn terminating_a_run_mid_step_removes_everything_and_exits_130() {
    interrupt_mid_step("-TERM");
}

/// Sends `signal` to `gantry exec` while a step runs, and checks the run stops and cleans up.
fn interrupt_mid_step(signal: &str) {
    let dir = repository(
        ".woodpecker.yml",
        "services:\n  idle:\n    image: IMAGE\n    commands: [sleep 300]\nsteps:\n  long:\n    image: IMAGE\n    commands: [echo started, sleep 300]\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["exec", "--output", "json"])
        .current_dir(dir.path())
        .env("CI", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut run = String::new();
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait until the long step has printed, so it is interrupted mid-step.
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if event["event"] == "run_started" {
            run = event["run"].as_str().unwrap().to_owned();
        }
        if event["event"] == "log" && event["line"] == "started" {
            break;
        }
    }
    assert!(!run.is_empty(), "the run never started");
    let interrupted = Instant::now();
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    let status = child.wait().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(30), "stopping took {:?}", interrupted.elapsed());
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("\"killed\""), "{rest}");
    assert_nothing_left(&run);
}

#[test]
fn the_local_backend_runs_the_same_plan_as_host_processes() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  write:\n    image: IMAGE\n    commands: [echo local > out.txt]\n  read:\n    image: IMAGE\n    commands: [cat out.txt README.md]\n",
    );
    let output = exec(dir.path(), &["--backend", "local"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    assert_eq!(logs_of(&events, "read"), ["+ cat out.txt README.md", "local", "a file from the working tree"]);
    let service =
        repository(".woodpecker.yml", "services:\n  db:\n    image: IMAGE\nsteps:\n  a:\n    image: IMAGE\n    commands: [true]\n");
    let output = exec(service.path(), &["--backend", "local"]);
    assert_eq!(output.status.code(), Some(2), "{}", detail(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot run services"));
}

#[test]
fn workflows_run_after_the_workflows_they_depend_on() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join(".woodpecker")).unwrap();
    let step = |text: &str| format!("steps:\n  say:\n    image: {IMAGE}\n    commands: [echo {text}]\n");
    fs::write(dir.path().join(".woodpecker/build.yml"), step("build")).unwrap();
    fs::write(dir.path().join(".woodpecker/deploy.yml"), format!("depends_on: [build, test]\n{}", step("deploy"))).unwrap();
    fs::write(dir.path().join(".woodpecker/test.yml"), format!("depends_on: [build]\n{}", step("test"))).unwrap();
    let output = exec(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    let position = |kind: &str, workflow: &str| events.iter().position(|e| e["event"] == kind && e["workflow"] == workflow).unwrap();
    assert!(position("workflow_finished", "build") < position("workflow_started", "test"));
    assert!(position("workflow_finished", "test") < position("workflow_started", "deploy"));
    assert_nothing_left(&run_id(&events));
}

#[test]
fn step_and_run_timeouts_stop_what_runs_too_long() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  slow:\n    image: IMAGE\n    timeout: 1s\n    commands: [sleep 30]\n  after:\n    image: IMAGE\n    commands: [true]\n",
    );
    let started = Instant::now();
    let output = exec(dir.path(), &[]);
    assert!(started.elapsed() < Duration::from_secs(20), "the step was not stopped");
    assert_eq!(output.status.code(), Some(1), "{}", detail(&output));
    let events = events(&output);
    let slow = events.iter().find(|e| e["event"] == "step_finished" && e["step"] == "slow").unwrap();
    assert_eq!(slow["status"], "failure");
    assert!(slow["reason"].as_str().unwrap().contains("timed out"), "{slow}");
    assert!(step_statuses(&events).contains(&"after=skipped".to_owned()));
    assert_nothing_left(&run_id(&events));

    let dir = repository(".woodpecker.yml", "steps:\n  slow:\n    image: IMAGE\n    commands: [sleep 30]\n");
    let output = exec(dir.path(), &["--timeout", "2s"]);
    assert_eq!(output.status.code(), Some(1), "a run timeout is a failure, not an interruption\n{}", detail(&output));
    let run_events = self::events(&output);
    assert!(step_statuses(&run_events).contains(&"slow=killed".to_owned()), "{:?}", step_statuses(&run_events));
    assert_nothing_left(&run_id(&run_events));
}

#[test]
fn secrets_from_a_file_and_from_the_environment() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  show:\n    image: IMAGE\n    environment:\n      A: {from_secret: from_file}\n      B: {from_secret: multi_line}\n      C: {from_secret: FROM_ENV}\n    commands:\n      - echo \"$${A} $${C}\"\n      - echo \"$${B}\"\n",
    );
    let secrets = dir.path().join("secrets.env");
    fs::write(&secrets, "# secrets for the test\nfrom_file=file-value-1\nmulti_line=\"first-line\\nsecond-line\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["exec", "--output", "json", "--secrets-file"])
        .arg(&secrets)
        .args(["--secret-env", "FROM_ENV"])
        .current_dir(dir.path())
        .env("CI", "true")
        .env("FROM_ENV", "env-value-2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for value in ["file-value-1", "env-value-2", "first-line", "second-line"] {
        assert!(!stdout.contains(value), "{value} leaked: {stdout}");
    }
    let events = events(&output);
    let lines = logs_of(&events, "show");
    assert!(lines.contains(&"******** ********".to_owned()), "{lines:?}");
    assert!(lines.iter().filter(|line| *line == "********").count() == 2, "a multi-line secret is masked line by line: {lines:?}");
}

#[test]
fn without_an_engine_the_error_says_how_to_get_one() {
    let dir = repository(".woodpecker.yml", "steps:\n  a:\n    image: IMAGE\n    commands: [true]\n");
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["exec"])
        .current_dir(dir.path())
        .env("CI", "true")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", detail(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    assert!(stderr.contains("--backend local"), "{stderr}");
}

#[test]
fn clone_starts_from_a_clean_checkout_of_head() {
    let dir = repository(
        ".woodpecker.yml",
        "steps:\n  look:\n    image: IMAGE\n    commands:\n      - cat README.md\n      - test -f .git/HEAD && echo has-git\n      - test ! -f scratch.txt && echo no-untracked-files\n",
    );
    let git = |args: &[&str]| crate::git_in(dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    fs::write(dir.path().join("README.md"), "changed but not committed\n").unwrap();
    fs::write(dir.path().join("scratch.txt"), "untracked\n").unwrap();
    let output = exec(dir.path(), &["--clone"]);
    assert_eq!(output.status.code(), Some(0), "{}", detail(&output));
    let events = events(&output);
    let lines = logs_of(&events, "look");
    assert!(lines.contains(&"a file from the working tree".to_owned()), "{lines:?}");
    assert!(lines.contains(&"has-git".to_owned()) && lines.contains(&"no-untracked-files".to_owned()), "{lines:?}");
    // Without --clone the working tree is what runs, local changes included.
    let output = exec(dir.path(), &[]);
    assert!(logs_of(&self::events(&output), "look").contains(&"changed but not committed".to_owned()));
}

#[test]
fn an_image_build_step_pushes_and_reports_the_image_or_with_no_push_only_tags_it() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let unique = format!("{}-{nanos}", std::process::id());
    let repository_name = format!("127.0.0.1:5000/gantry-cli-it/exec-{unique}");
    let pipeline = format!("steps:\n  - name: image\n    build:\n      image: {repository_name}\n      tags: [v1]\n");
    let dir = repository(".woodpecker.yml", &pipeline);
    fs::write(dir.path().join("Dockerfile"), format!("FROM {IMAGE}\nCOPY README.md /README.md\n")).unwrap();

    let output = exec(dir.path(), &["--no-push"]);
    let built = events(&output);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!built.iter().any(|e| e["event"] == "image_published"), "nothing is pushed with --no-push");
    let tagged = Command::new("docker").args(["image", "inspect", &format!("{repository_name}:v1")]).output().unwrap();
    assert!(tagged.status.success(), "--no-push leaves the tagged image on the engine");
    assert_nothing_left(&run_id(&built));

    let output = exec(dir.path(), &[]);
    let pushed = events(&output);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let published = pushed.iter().find(|e| e["event"] == "image_published").expect("an image_published event");
    assert_eq!(published["image"]["repository"], repository_name.as_str());
    assert_eq!(published["image"]["tags"], serde_json::json!(["v1"]));
    let digest = published["image"]["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{published}");
    assert!(published["image"]["provenance_digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{published}");
    let _ = Command::new("docker").args(["rmi", &format!("{repository_name}:v1")]).output();
    assert_nothing_left(&run_id(&pushed));
}
