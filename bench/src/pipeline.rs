//! Lint + plan against parsing the same text with serde-saphyr alone, side by side.
//!
//! Two workloads: 1,000 typical pipeline files (the test corpus, cycled, each file made
//! distinct), and one Woodpecker file of 2,000 steps in a fan-out/fan-in graph. Each round
//! runs the baseline and Gantry alternately on the same input; the report gives medians and
//! the ratio Gantry / baseline.

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline::discovery::discover;
use pipeline::{CompileOptions, Context, SourceFile, plan_files};

/// A repository's pipeline: its files, planned together.
type Repository = Vec<SourceFile>;

fn corpus() -> Vec<Repository> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/pipeline/tests/data/corpus");
    let mut repositories = Vec::new();
    let mut cases: Vec<_> = std::fs::read_dir(&root).expect("corpus folder").filter_map(Result::ok).filter(|e| e.path().is_dir()).collect();
    cases.sort_by_key(std::fs::DirEntry::file_name);
    for case in cases {
        let dir = case.path();
        let list = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.path().is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let root_names = list(&dir);
        let folder = dir.join(".woodpecker");
        let folder_names = folder.is_dir().then(|| list(&folder));
        let root_refs: Vec<&str> = root_names.iter().map(String::as_str).collect();
        let folder_refs: Option<Vec<&str>> = folder_names.as_ref().map(|names| names.iter().map(String::as_str).collect());
        let files: Repository = discover(&root_refs, folder_refs.as_deref())
            .into_iter()
            .map(|relative| SourceFile::new(relative.clone(), std::fs::read_to_string(dir.join(&relative)).unwrap()))
            .collect();
        if !files.is_empty() {
            repositories.push(files);
        }
    }
    repositories
}

/// 1,000 files: corpus files cycled, each given a distinct comment so no work can be shared.
fn typical_files(count: usize) -> Vec<Repository> {
    let corpus = corpus();
    let mut repositories = Vec::new();
    let mut files = 0;
    let mut round = 0;
    while files < count {
        for repository in &corpus {
            if files >= count {
                break;
            }
            let copy: Repository =
                repository.iter().map(|file| SourceFile::new(file.path.clone(), format!("# copy {round}\n{}", file.text))).collect();
            files += copy.len();
            repositories.push(copy);
        }
        round += 1;
    }
    repositories
}

/// One Woodpecker file of `steps` steps: groups of 20 that fan out from a setup step and fan
/// in to a check, with conditions, environment, settings and secrets on the way.
fn large_file(steps: usize) -> Repository {
    let mut text = String::from(
        "when:\n  - event: [push, pull_request]\n  - event: tag\nservices:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: test\nsteps:\n",
    );
    for index in 0..steps {
        let group = index / 20;
        let dependency = if index % 20 == 0 {
            if group == 0 { "[]".to_owned() } else { format!("[step-{}]", index - 1) }
        } else if index % 20 == 19 {
            format!("[{}]", (group * 20 + 1..index).map(|i| format!("step-{i}")).collect::<Vec<_>>().join(", "))
        } else {
            format!("[step-{}]", group * 20)
        };
        text.push_str(&format!(
            "  step-{index}:\n    image: golang:1.23\n    depends_on: {dependency}\n    environment:\n      GOFLAGS: -mod=readonly\n      TOKEN:\n        from_secret: token_{group}\n    commands:\n      - go test ./pkg/{index}/...\n      - echo ${{CI_COMMIT_SHA:0:8}}\n    when:\n      - branch: [main, 'release/*']\n      - event: pull_request\n"
        ));
    }
    vec![SourceFile::new(".woodpecker.yml", text)]
}

fn context() -> Context {
    Context {
        event: "push".into(),
        branch: "main".into(),
        commit_sha: "4f1c2a9e0b7d3c5a6e8f9012a3b4c5d6e7f80912".into(),
        repo: "acme/app".into(),
        repo_url: "https://git.example.com/acme/app".into(),
        changed_files: Some(vec!["src/main.rs".into(), "docs/index.md".into()]),
        ..Context::default()
    }
}

fn baseline(repositories: &[Repository]) -> usize {
    let mut nodes = 0;
    for repository in repositories {
        for file in repository {
            let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&file.text).unwrap_or_default();
            nodes += documents.len();
        }
    }
    nodes
}

/// Gantry's own YAML layer alone (spans, merges), to show what the rest of the work costs.
fn spanned_parse(repositories: &[Repository]) -> usize {
    let mut nodes = 0;
    for repository in repositories {
        for file in repository {
            nodes += pipeline::yaml::parse_documents(&file.text).map(|documents| documents.len()).unwrap_or_default();
        }
    }
    nodes
}

fn gantry(repositories: &[Repository], context: &Context) -> usize {
    let mut steps = 0;
    for repository in repositories {
        let plan = plan_files(repository, context, CompileOptions::default());
        steps += plan.workflows.iter().map(|workflow| workflow.steps.len()).sum::<usize>();
    }
    steps
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(name: &str, repositories: &[Repository], rounds: usize) {
    let context = context();
    let files: usize = repositories.iter().map(Vec::len).sum();
    let bytes: usize = repositories.iter().flatten().map(|file| file.text.len()).sum();
    // Warm up both, and check that Gantry planned something.
    baseline(repositories);
    let steps = gantry(repositories, &context);
    assert!(steps > 0, "{name}: nothing was planned");
    let (mut base_times, mut gantry_times, mut spanned_times) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first so neither always runs on a warmer cache.
        let mut run_base = || {
            let start = Instant::now();
            std::hint::black_box(baseline(repositories));
            base_times.push(start.elapsed());
        };
        let mut run_gantry = || {
            let start = Instant::now();
            std::hint::black_box(gantry(repositories, &context));
            gantry_times.push(start.elapsed());
        };
        if round % 2 == 0 {
            run_base();
            run_gantry();
        } else {
            run_gantry();
            run_base();
        }
        let start = Instant::now();
        std::hint::black_box(spanned_parse(repositories));
        spanned_times.push(start.elapsed());
    }
    let spanned = median(spanned_times);
    let base = median(base_times);
    let ours = median(gantry_times);
    let per_file = |total: Duration| total / files as u32;
    println!(
        "{name:<28} {files:>5} files {:>8.1} KiB | serde-saphyr parse {:>9.3} ms ({:>7.1} µs/file) | gantry lint+plan {:>9.3} ms ({:>7.1} µs/file) | ratio {:.2}x",
        bytes as f64 / 1024.0,
        base.as_secs_f64() * 1e3,
        per_file(base).as_secs_f64() * 1e6,
        ours.as_secs_f64() * 1e3,
        per_file(ours).as_secs_f64() * 1e6,
        ours.as_secs_f64() / base.as_secs_f64(),
    );
    println!(
        "{:<28} of which reading YAML into spanned nodes: {:.3} ms ({:.2}x the baseline)",
        "",
        spanned.as_secs_f64() * 1e3,
        spanned.as_secs_f64() / base.as_secs_f64()
    );
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(15);
    println!("lint + plan against serde-saphyr alone parsing the same text; medians of {rounds} alternating rounds");
    measure("1,000 typical files", &typical_files(1000), rounds);
    measure("one file of 2,000 steps", &[large_file(2000)], rounds);
}
