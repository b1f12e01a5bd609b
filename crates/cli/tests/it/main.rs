//! The `gantry` binary as users run it: exit codes, output formats, discovery, git defaults.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod browser;
mod client;
mod delivery;
mod deployer;
mod e2e;
mod exec;
mod faults;
mod promotion;
mod reporting;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gantry(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary repository folder holding the given files.
fn repository(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, text).unwrap();
    }
    dir
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

const GOOD: &str = "steps:\n  build:\n    image: golang:1.23\n    commands: [go build ./...]\n";
const WARNING_ONLY: &str = "steps:\n  build:\n    image: golang:1.23\n    comands: [go build]\n";
const BROKEN: &str =
    "steps:\n  build:\n    image: golang:1.23\n    depends_on: [tset]\n  test:\n    image: golang:1.23\n    detach: maybe\n";

#[test]
fn lint_exit_codes_say_clean_warnings_errors_or_usage() {
    let clean = repository(&[(".woodpecker.yml", GOOD)]);
    assert_eq!(gantry(&["lint"], clean.path()).status.code(), Some(0));
    let warned = repository(&[(".woodpecker.yml", WARNING_ONLY)]);
    let output = gantry(&["lint"], warned.path());
    assert_eq!(output.status.code(), Some(0), "warnings alone pass");
    assert!(stdout(&output).contains("warning[unknown-key]"));
    let broken = repository(&[(".woodpecker.yml", BROKEN)]);
    assert_eq!(gantry(&["lint"], broken.path()).status.code(), Some(1));
    let empty = repository(&[("README.md", "nothing here")]);
    let output = gantry(&["lint"], empty.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no pipeline found"), "{}", stderr(&output));
    assert_eq!(gantry(&["lint", "does/not/exist.yml"], clean.path()).status.code(), Some(2));
    assert_eq!(gantry(&["lint", "--format", "xml"], clean.path()).status.code(), Some(2));
}

#[test]
fn lint_checks_an_environment_repository_with_every_mistake_in_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = gantry(&["lint", "examples/environment"], &root);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("3 files checked: no problems"), "{}", stdout(&output));

    let output = gantry(&["lint", "crates/deploy/tests/it/repos/mistakes", "--format", "json"], &root);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<String> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}:{}:{} {}", d["file"].as_str().unwrap(), d["line"], d["column"], d["code"].as_str().unwrap()))
        .collect();
    for expected in [
        "crates/deploy/tests/it/repos/mistakes/apps/api.yml:3:9 unknown-target",
        "crates/deploy/tests/it/repos/mistakes/apps/api.yml:18:1 unknown-key",
        "crates/deploy/tests/it/repos/mistakes/environment.yml:5:24 unknown-key",
    ] {
        assert!(found.iter().any(|line| line == expected), "{expected} in {found:?}");
    }
    let text = stdout(&gantry(&["lint", "crates/deploy/tests/it/repos/mistakes"], &root));
    assert!(text.contains("3 | target: gren") && text.contains("did you mean `green`?"), "the source line and the hint: {text}");

    // With a deployer's data folder, secret names are checked against its store.
    let data = tempfile::tempdir().unwrap();
    let added = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["deployer", "secret", "add", "other_secret", "--value", "x", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(added.status.success());
    let output = gantry(&["lint", "examples/environment", "--deployer-data", data.path().to_str().unwrap()], &root);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("session_key"), "the example's secret is not in this store: {}", stdout(&output));
}

#[test]
fn lint_reports_every_problem_rustc_style() {
    let broken = repository(&[(".woodpecker.yml", BROKEN)]);
    let text = stdout(&gantry(&["lint"], broken.path()));
    assert!(text.contains("error[unknown-dependency]: step `build` depends on `tset`"), "{text}");
    assert!(text.contains("--> .woodpecker.yml:4:18"), "{text}");
    assert!(text.contains("4 |     depends_on: [tset]"), "{text}");
    assert!(text.contains("  |                  ^"), "{text}");
    assert!(text.contains("= help: did you mean `test`?"), "{text}");
    assert!(text.contains("error[wrong-type]: `detach` must be true or false"), "{text}");
    assert!(text.contains("1 file checked: 2 errors, 0 warnings"), "{text}");
}

#[test]
fn lint_json_lists_diagnostics_with_positions() {
    let broken = repository(&[(".woodpecker.yml", BROKEN)]);
    let output = gantry(&["lint", "--format", "json"], broken.path());
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["errors"], 2);
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "unknown-dependency");
    assert_eq!(first["file"], ".woodpecker.yml");
    assert_eq!((first["line"].as_u64(), first["column"].as_u64()), (Some(4), Some(18)));
    assert_eq!(first["hint"], "did you mean `test`?");
}

#[test]
fn lint_of_several_paths_and_a_binary_file() {
    let dir = repository(&[
        ("a/.drone.yml", "kind: pipeline\nsteps:\n- name: x\n  image: alpine\n  commands: [ls]\n"),
        ("b/.woodpecker.yml", GOOD),
    ]);
    let output = gantry(&["lint", "a", "b"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("2 files checked: no problems"));
    fs::write(dir.path().join("binary.yml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let output = gantry(&["lint", "binary.yml"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("not valid UTF-8"), "{}", stdout(&output));
}

#[test]
fn plan_json_lists_every_workflow_and_step_with_skips_explained() {
    let output = gantry(&["plan", "webapp", "--event", "push", "--branch", "main", "--format", "json"], &examples());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workflows = plan["workflows"].as_array().unwrap();
    let names: Vec<&str> = workflows.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build", "publish"]);
    assert_eq!(workflows[1]["skipped"], true);
    assert!(workflows[1]["skip_reason"].as_str().unwrap().contains("event is push"));
    assert_eq!(workflows[1]["depends_on"], serde_json::json!(["build"]));
    let steps: Vec<&str> = workflows[0]["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["clone", "deps", "lint", "unit", "typecheck", "bundle"]);
    let bundle = &workflows[0]["steps"][5];
    assert_eq!(bundle["kind"], "commands");
    assert_eq!(bundle["image"], "node:22-alpine");
    assert_eq!(bundle["depends_on"], serde_json::json!(["lint", "unit", "typecheck"]));
    assert_eq!(bundle["skipped"], false);
    assert_eq!(workflows[0]["services"][0]["name"], "cache");
    assert!(plan["diagnostics"].as_array().unwrap().is_empty());
    // Secrets are references by name: the JSON carries no value, only where a value goes.
    let image = &workflows[1]["steps"][1];
    assert_eq!(image["secrets"], serde_json::json!([{"env": "PLUGIN_PASSWORD", "secret": "registry_password"}]));
}

#[test]
fn plan_text_marks_skipped_steps_with_the_reason() {
    let output = gantry(&["plan", "webapp", "--tag", "v2.0.0"], &examples());
    let text = stdout(&output);
    assert!(text.contains("plan for tag on tag v2.0.0"), "{text}");
    assert!(text.contains("workflow publish (webapp/.woodpecker/publish.yml) runs"), "{text}");
    assert!(text.contains("+ announce"), "{text}");
    let output = gantry(&["plan", "webapp", "--event", "cron", "--cron", "nightly"], &examples());
    let text = stdout(&output);
    assert!(text.contains("workflow build (webapp/.woodpecker/build.yml) skipped: event is cron"), "{text}");
}

#[test]
fn plan_defaults_its_context_from_the_local_git_repository() {
    let dir = repository(&[(
        ".woodpecker.yml",
        "steps:\n  show:\n    image: alpine\n    commands:\n      - echo ${CI_COMMIT_BRANCH} ${CI_COMMIT_SHA}\n",
    )]);
    let git = |args: &[&str]| git_in(dir.path(), args);
    git(&["init", "-q", "-b", "feature/login"]);
    git(&["remote", "add", "origin", "https://git.example.com/acme/shop.git"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "Add login"]);
    let sha = String::from_utf8(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(dir.path()).output().unwrap().stdout).unwrap();
    let output = gantry(&["plan", "--format", "json"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workflow = &plan["workflows"][0];
    assert_eq!(workflow["environment"]["CI_COMMIT_BRANCH"], "feature/login");
    assert_eq!(workflow["environment"]["CI_COMMIT_SHA"], sha.trim());
    assert_eq!(workflow["environment"]["CI_REPO"], "acme/shop");
    assert_eq!(workflow["environment"]["CI_COMMIT_MESSAGE"], "Add login");
    assert_eq!(workflow["workspace"]["path"], "src/git.example.com/acme/shop");
    let command = workflow["steps"][1]["commands"][0].as_str().unwrap();
    assert_eq!(command, format!("echo feature/login {}", sha.trim()));
    // Flags win over git.
    let output = gantry(&["plan", "--format", "json", "--branch", "main"], dir.path());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["workflows"][0]["environment"]["CI_COMMIT_BRANCH"], "main");
}

#[test]
fn plan_exits_1_on_errors_and_prints_them() {
    let broken = repository(&[(".woodpecker.yml", BROKEN)]);
    let output = gantry(&["plan"], broken.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("error[unknown-dependency]"));
}

#[test]
fn plan_shows_an_image_build_step_with_every_name_it_pushes() {
    let dir = repository(&[(
        ".drone.yml",
        "kind: pipeline\nname: default\nsteps:\n- name: publish\n  image: plugins/docker\n  privileged: true\n  settings:\n    repo: 127.0.0.1:5000/acme/app\n    tags: [latest, v1]\n",
    )]);
    let output = gantry(&["plan", "--branch", "main"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("publish                  build     push 127.0.0.1:5000/acme/app:latest 127.0.0.1:5000/acme/app:v1"), "{text}");
    assert!(!text.contains("needs trust"), "a native build needs no privileges: {text}");
}

#[test]
fn plan_of_one_file_of_a_workflow_folder_leaves_its_sibling_dependencies_out() {
    let dir = repository(&[
        (".woodpecker/build.yml", GOOD),
        (".woodpecker/deploy.yml", "depends_on: [build]\nsteps:\n  ship:\n    image: alpine\n    commands: [echo ship]\n"),
    ]);
    let output = gantry(&["plan", "--format", "json", ".woodpecker/deploy.yml"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workflows = plan["workflows"].as_array().unwrap();
    assert_eq!(workflows.len(), 1, "only the file asked for is planned: {plan}");
    assert_eq!(workflows[0]["depends_on"], serde_json::json!([]));
    let warning = &plan["diagnostics"][0];
    assert_eq!(warning["severity"], "warning", "{plan}");
    assert!(warning["message"].as_str().unwrap().contains("depends on `build` of `.woodpecker/build.yml`, which is not loaded"), "{plan}");
    assert!(warning["hint"].as_str().unwrap().contains("plan the whole folder (`.woodpecker`)"), "{plan}");
    // Both files given together plan both, the dependency kept.
    let output = gantry(&["lint", ".woodpecker/deploy.yml", ".woodpecker/build.yml"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(!stdout(&output).contains("not loaded"), "{}", stdout(&output));
    // A dependency on nothing at all is still an error.
    fs::write(dir.path().join(".woodpecker/deploy.yml"), "depends_on: [biuld]\nsteps:\n  ship:\n    image: alpine\n    commands: [echo]\n")
        .unwrap();
    let output = gantry(&["plan", ".woodpecker/deploy.yml"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn docs_writes_markdown_with_a_mermaid_graph() {
    let output = gantry(&["docs", "drone-service"], &examples());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("# "), "{text}");
    assert!(text.contains("```mermaid"), "{text}");
    assert!(text.contains("docker_password"), "{text}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = repository(&[]);
    assert_eq!(gantry(&["frobnicate"], dir.path()).status.code(), Some(2));
    assert_eq!(gantry(&["plan", "--env", "NOEQUALS"], &examples().join("webapp")).status.code(), Some(2));
    let help = gantry(&["--help"], dir.path());
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("lint"));
}

/// Runs git in `dir` as a fixed author, insists it succeeds, and returns what it printed.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
