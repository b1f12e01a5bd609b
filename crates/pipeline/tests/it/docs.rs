//! `gantry docs`: a pipeline rendered as a Markdown page for the people who use it.
//!
//! Each fixture under `tests/data/docs/<case>/` is a repository root; its page is pinned by a
//! snapshot. The targeted tests below state what every page must get right whatever the layout:
//! safe Mermaid, every secret named and no secret value, conditions in words, determinism.

use pipeline::docs::render_markdown;
use pipeline::plan::SECRET_PLACEHOLDER_PREFIX;
use pipeline::{CompileOptions, Context, Severity, SourceFile, compile_with, read_and_lint};

use crate::support::{data_dir, load, render_diagnostics};

/// The page for some pipeline files, as `gantry docs` makes it. Fixtures are valid pipelines.
fn render(files: &[SourceFile]) -> String {
    let (_, diagnostics) = read_and_lint(files);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).cloned().collect();
    assert!(errors.is_empty(), "fixture has errors:\n{}", render_diagnostics(&errors, files));
    render_even_with_errors(files)
}

/// `gantry docs` documents a pipeline with errors too, as far as it was read.
fn render_even_with_errors(files: &[SourceFile]) -> String {
    let (workflows, _) = read_and_lint(files);
    let plan = compile_with(&workflows, &Context::default(), CompileOptions { ignore_conditions: true, ..Default::default() });
    render_markdown(&workflows, &plan)
}

/// The page for a fixture folder, pinned by a snapshot named after the case.
fn check(case: &str) -> String {
    let page = render(&load(&data_dir().join("docs").join(case)));
    insta::with_settings!({snapshot_suffix => case, prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!("docs", page);
    });
    page
}

fn woodpecker(text: &str) -> String {
    render(&[SourceFile::new(".woodpecker.yaml", text)])
}

/// The contents of every ```mermaid block.
fn mermaid_blocks(page: &str) -> Vec<String> {
    page.split("```mermaid\n").skip(1).map(|rest| rest.split("\n```").next().unwrap().to_owned()).collect()
}

// --- Whole pages -------------------------------------------------------------------------------

#[test]
fn a_woodpecker_folder_of_three_dependent_workflows() {
    let page = check("woodpecker-workflows");
    assert!(page.contains("Workflows run in this order: `build` → `test` → `deploy`."), "{page}");
}

#[test]
fn a_drone_file_of_several_pipelines() {
    let page = check("drone-multi");
    assert!(page.contains("`kubernetes` pipelines are planned but not run"), "{page}");
}

#[test]
fn matrix_workflows_of_axes_and_of_included_rows() {
    let page = check("matrix");
    assert!(page.contains("4 rows — every combination of:"), "{page}");
    assert!(page.contains("3 rows listed with `include`:"), "{page}");
}

#[test]
fn a_workflow_with_services_secrets_and_risky_steps() {
    check("services-secrets");
}

#[test]
fn the_smallest_pipeline() {
    check("minimal");
}

// --- Mermaid -----------------------------------------------------------------------------------

#[test]
fn mermaid_node_ids_are_generated_and_labels_escaped() {
    let page = check("services-secrets");
    let graph = &mermaid_blocks(&page)[0];
    // The id keeps only ASCII letters and digits of the name; the label keeps the name, escaped.
    assert!(graph.contains(r#"s2_build_api_v2_x_y["build #quot;api#quot; [v2]: x/y"]"#), "{graph}");
    for line in graph.lines().map(str::trim) {
        if line.starts_with("classDef") || line.starts_with("class ") || line.starts_with("subgraph") || line == "end" {
            continue;
        }
        let id: String = line.chars().take_while(|c| !matches!(c, '[' | '(' | '{' | ' ')).collect();
        assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "unsafe node id {id:?} in {line:?}");
        // Inside labels nothing is left that ends the quoted label early.
        if let Some(start) = line.find("\"") {
            let label = &line[start + 1..line.rfind('"').unwrap()];
            assert!(!label.contains('"') && !label.contains('`'), "unescaped label {label:?}");
        }
    }
}

#[test]
fn mermaid_shows_the_clone_first_and_services_apart() {
    let page = check("woodpecker-workflows");
    let build = &mermaid_blocks(&page)[1];
    assert!(build.lines().nth(1).unwrap().contains(r#"s1_clone(["clone"])"#), "{build}");
    let test = &mermaid_blocks(&page)[2];
    assert!(test.contains("subgraph services"), "{test}");
    assert!(test.contains(r#"v1_pg[("pg")]"#), "{test}");
}

#[test]
fn mermaid_marks_conditional_failure_only_and_detached_steps() {
    let page = check("services-secrets");
    let graph = &mermaid_blocks(&page)[0];
    assert!(graph.contains("class s6_publish conditional"), "{graph}");
    assert!(graph.contains("dind<br/><small>detached"), "{graph}");
    assert!(graph.contains("s4_dind -.-> s5_integration"), "a detached step's dependents do not wait for it:\n{graph}");
    let deploy = &mermaid_blocks(&check("woodpecker-workflows"))[3];
    assert!(deploy.contains("class s2_page_oncall failure"), "{deploy}");
}

#[test]
fn a_pipeline_of_several_workflows_has_a_graph_of_their_dependencies() {
    let page = check("woodpecker-workflows");
    let workflows = &mermaid_blocks(&page)[0];
    assert!(workflows.starts_with("flowchart LR"), "{workflows}");
    assert!(workflows.contains("w1_build --> w3_deploy"), "{workflows}");
    assert!(workflows.contains("w2_test --> w3_deploy"), "{workflows}");
    assert_eq!(mermaid_blocks(&check("minimal")).len(), 1, "one workflow: only its step graph");
}

#[test]
fn mermaid_keywords_as_step_names_are_safe_ids() {
    let page = woodpecker(
        "steps:\n  - name: end\n    image: alpine\n    commands: [true]\n  - name: graph\n    image: alpine\n    commands: [true]\n",
    );
    let graph = &mermaid_blocks(&page)[0];
    assert!(graph.contains("s2_end[\"end\"]") && graph.contains("s2_end --> s3_graph"), "{graph}");
}

#[test]
fn a_dependency_on_a_missing_workflow_shows_in_the_graph() {
    let files = [
        SourceFile::new(".woodpecker/build.yaml", "steps:\n  - name: a\n    image: alpine\n    commands: [true]\n"),
        SourceFile::new(".woodpecker/deploy.yaml", "depends_on: [biuld]\nsteps:\n  - name: a\n    image: alpine\n    commands: [true]\n"),
    ];
    let workflows = &mermaid_blocks(&render_even_with_errors(&files))[0];
    assert!(workflows.contains("missing1[\"biuld<br/><small>no such workflow</small>\"]"), "{workflows}");
    assert!(workflows.contains("missing1 --> w2_deploy"), "{workflows}");
}

#[test]
fn a_matrix_over_the_limit_still_documents_its_steps() {
    let values: Vec<String> = (1..=17).map(|n| n.to_string()).collect();
    let page = render_even_with_errors(&[SourceFile::new(
        ".woodpecker.yaml",
        format!(
            "matrix:\n  A: [{0}]\n  B: [{0}]\nsteps:\n  - name: one\n    image: alpine\n    commands: [true]\n  - name: two\n    image: alpine\n    commands: [true]\n",
            values.join(", ")
        ),
    )]);
    assert!(page.contains("The matrix expands to 289 rows, more than Gantry's limit; the workflow does not run."), "{page}");
    assert!(page.contains("**Never runs:** matrix expands to 289 rows, more than the limit of 256."), "{page}");
    assert!(mermaid_blocks(&page)[0].contains("s2_one --> s3_two"), "the declared order, without a plan:\n{page}");
}

// --- Secrets -----------------------------------------------------------------------------------

#[test]
fn every_secret_is_listed_with_who_uses_it_and_as_what() {
    let page = check("services-secrets");
    let secrets = page.split("## Secrets").nth(1).unwrap().split("\n## ").next().unwrap();
    for row in [
        "| `api_token` | [`integration`](#integration) | `$API_TOKEN` |",
        "| `npm_token` | [`publish`](#publish) | part of setting `build_args` (`$PLUGIN_BUILD_ARGS`) |",
        "| `registry_password` | [`publish`](#publish) | setting `password` (`$PLUGIN_PASSWORD`) |",
        "| `slack_webhook` | [`notify`](#notify) | `$SLACK_WEBHOOK` |",
    ] {
        assert!(secrets.contains(row), "missing {row:?} in\n{secrets}");
    }
    assert!(secrets.contains("Secret values are never shown here"), "{secrets}");
}

#[test]
fn only_secret_names_appear_never_values_or_placeholders() {
    let page = woodpecker(
        "steps:\n  - name: push\n    image: plugins/webhook\n    settings:\n      password:\n        from_secret: registry_password\n      \
         auth:\n        header: Bearer\n        token:\n          from_secret: auth_token\n",
    );
    assert!(page.contains("password: { from_secret: registry_password }"), "{page}");
    assert!(page.contains("| `registry_password` |"), "{page}");
    assert!(!page.contains(SECRET_PLACEHOLDER_PREFIX), "an embedded secret's placeholder leaked:\n{page}");
    // The name only ever shows as a name: in code, or as the `from_secret` it was written as.
    for (index, _) in page.match_indices("registry_password") {
        let before = &page[..index];
        assert!(before.ends_with('`') || before.ends_with("from_secret: "), "bare secret name at {index}:\n{page}");
    }
}

#[test]
fn a_pipeline_without_secrets_says_so() {
    assert!(check("minimal").contains("This pipeline uses no secrets."));
}

// --- Conditions in words -----------------------------------------------------------------------

#[test]
fn workflow_conditions_read_as_sentences() {
    let page = woodpecker(
        "when:\n  - event: push\n    branch: [main, release/*]\n  - event: tag\n    ref: refs/tags/v*\n    path: docs/**\nsteps:\n  - name: a\n    image: alpine\n    commands: [true]\n",
    );
    assert!(page.contains("  - On `push` when the branch matches `main` or `release/*`"), "{page}");
    assert!(
        page.contains("  - On `tag` when the ref matches `refs/tags/v*` and a changed file matches `docs/**` (file filters only apply to pushes and pull requests)"),
        "{page}"
    );
}

#[test]
fn step_conditions_read_as_sentences() {
    let page = woodpecker(
        "steps:\n  - name: a\n    image: alpine\n    commands: [true]\n    when:\n      branch:\n        exclude: [gh-pages]\n      \
         event: pull_request\n      status: [success, failure]\n  - name: b\n    image: alpine\n    commands: [true]\n    when:\n      \
         - status: failure\n      - cron: nightly\n",
    );
    assert!(page.contains("| on `pull_request` when the branch is not `gh-pages`, even if an earlier step failed |"), "{page}");
    assert!(page.contains("| only if an earlier step failed; or when the cron job is `nightly` (checked for cron runs only) |"), "{page}");
}

#[test]
fn workflow_dependencies_and_failure_statuses_read_as_sentences() {
    let files = [
        SourceFile::new(".woodpecker/build.yaml", "steps:\n  - name: a\n    image: alpine\n    commands: [true]\n"),
        SourceFile::new(".woodpecker/test.yaml", "steps:\n  - name: a\n    image: alpine\n    commands: [true]\n"),
        SourceFile::new(
            ".woodpecker/notify.yaml",
            "depends_on: [build, test]\nwhen:\n  status: [success, failure]\nsteps:\n  - name: a\n    image: alpine\n    commands: [true]\n",
        ),
    ];
    let page = render(&files);
    assert!(page.contains("- After workflows `build` and `test` finished, whether or not they succeeded."), "{page}");
    assert!(page.contains("Workflows run in this order: `build`, `test` → `notify`."), "{page}");
}

// --- Markdown safety and determinism ---------------------------------------------------------------

#[test]
fn names_with_pipes_and_backticks_do_not_break_tables_or_code() {
    let page = woodpecker("steps:\n  - name: lint | fmt `x`\n    image: alpine\n    commands: [\"echo '```'\"]\n");
    assert!(page.contains("| [`` lint \\| fmt `x` ``](#lint--fmt-x) |"), "{page}");
    assert!(page.contains("### `` lint | fmt `x` ``"), "{page}");
    assert!(page.contains("````sh\necho '```'\n````"), "a longer fence around backticks:\n{page}");
}

#[test]
fn long_command_lists_are_shortened_with_a_count() {
    let commands: Vec<String> = (1..=12).map(|n| format!("      - echo {n}")).collect();
    let page = woodpecker(&format!("steps:\n  - name: many\n    image: alpine\n    commands:\n{}\n", commands.join("\n")));
    assert!(page.contains("echo 8\n# … and 4 more commands (see the pipeline file)\n```"), "{page}");
}

#[test]
fn the_same_pipeline_always_gives_the_same_page() {
    let dir = data_dir().join("docs/woodpecker-workflows");
    assert_eq!(render(&load(&dir)), render(&load(&dir)));
}
