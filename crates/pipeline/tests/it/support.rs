//! Fixture loading shared by the test modules: a folder is a repository root.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use pipeline::discovery::discover;
use pipeline::{Context, SourceFile};

pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Sub-folders of `tests/data/<group>`, sorted.
pub(crate) fn cases(group: &str) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = fs::read_dir(data_dir().join(group))
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            entry.file_type().unwrap().is_dir().then(|| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
        })
        .collect();
    cases.sort();
    cases
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().map(|kind| kind.is_file()).unwrap_or(false))
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The pipeline files of a repository folder, with paths relative to it.
pub(crate) fn load(dir: &Path) -> Vec<SourceFile> {
    let root = names(dir);
    let folder = dir.join(".woodpecker");
    let folder_names = folder.is_dir().then(|| names(&folder));
    let root_refs: Vec<&str> = root.iter().map(String::as_str).collect();
    let folder_refs: Option<Vec<&str>> = folder_names.as_ref().map(|names| names.iter().map(String::as_str).collect());
    let files = discover(&root_refs, folder_refs.as_deref());
    assert!(!files.is_empty(), "no pipeline files in {}", dir.display());
    files.into_iter().map(|relative| SourceFile::new(relative.clone(), fs::read_to_string(dir.join(&relative)).unwrap())).collect()
}

/// The context tests plan for: a push to `main` of `acme/app`, changed by `context.json` beside the case.
pub(crate) fn context_for(dir: &Path) -> Context {
    let mut context = Context {
        event: "push".into(),
        branch: "main".into(),
        commit_sha: "4f1c2a9e0b7d3c5a6e8f9012a3b4c5d6e7f80912".into(),
        commit_message: "Update dependencies".into(),
        commit_author: "Ada Lovelace".into(),
        commit_author_email: "ada@example.com".into(),
        repo: "acme/app".into(),
        repo_url: "https://git.example.com/acme/app".into(),
        repo_clone_url: "https://git.example.com/acme/app.git".into(),
        instance: "ci.example.com".into(),
        pipeline_number: 42,
        ..Context::default()
    };
    let path = dir.join("context.json");
    let Ok(text) = fs::read_to_string(&path) else { return context };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let text_of = |key: &str| value.get(key).and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())));
    if let Some(event) = text_of("event") {
        context.event = event;
    }
    if let Some(branch) = text_of("branch") {
        context.branch = branch;
    }
    context.tag = text_of("tag");
    if let Some(reference) = text_of("ref") {
        context.reference = reference;
    }
    if let Some(sha) = text_of("commit_sha") {
        context.commit_sha = sha;
    }
    if let Some(message) = text_of("commit_message") {
        context.commit_message = message;
    }
    if let Some(author) = text_of("commit_author") {
        context.commit_author = author;
    }
    if let Some(repo) = text_of("repo") {
        context.repo = repo;
    }
    if let Some(platform) = text_of("platform") {
        context.platform = platform;
    }
    context.cron = text_of("cron");
    context.pull_request = text_of("pull_request");
    context.source_branch = text_of("source_branch");
    context.target_branch = text_of("target_branch");
    context.deploy_target = text_of("deploy_target");
    context.action = text_of("action");
    if let Some(files) = value.get("changed_files").and_then(|v| v.as_array()) {
        context.changed_files = Some(files.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect());
    }
    if let Some(extra) = value.get("environment").and_then(|v| v.as_object()) {
        context.extra_environment =
            extra.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect::<BTreeMap<_, _>>();
    }
    context
}

/// All diagnostics rendered as the CLI shows them.
pub(crate) fn render_diagnostics(diagnostics: &[pipeline::Diagnostic], files: &[SourceFile]) -> String {
    diagnostics
        .iter()
        .map(|diagnostic| {
            let source = files.iter().find(|file| file.path == diagnostic.file).map(|file| file.text.as_str());
            diagnostic.render(source)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
