//! Finding and reading pipeline files from the paths given on the command line.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pipeline::diagnostic::code;
use pipeline::discovery::{WOODPECKER_FOLDER, discover};
use pipeline::yaml::Span;
use pipeline::{Diagnostic, SourceFile};

/// The files of one pipeline and the folder they were found from (for git).
pub(crate) struct Pipeline {
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    /// Problems found while reading the files as text.
    pub diagnostics: Vec<Diagnostic>,
}

/// A file that exists but is not UTF-8 is bad input, reported as a diagnostic where the first
/// bad byte is, not as an IO error: the user fixes the file.
fn read_source(path: &Path, display: String, diagnostics: &mut Vec<Diagnostic>) -> anyhow::Result<SourceFile> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            diagnostics.push(
                Diagnostic::error(code::YAML_SYNTAX, &display, Span::new(line as u32, column as u32), "the file is not valid UTF-8 text")
                    .with_hint("save the file as UTF-8"),
            );
            return Ok(SourceFile::new(display, String::new()));
        }
    };
    Ok(SourceFile::new(display, text))
}

fn display_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

fn names_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Loads the pipeline at `path`: a repository folder (discovered as Woodpecker and Drone do),
/// a folder of workflow files, or one file (a custom config path).
pub(crate) fn load(path: &Path) -> anyhow::Result<Pipeline> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if metadata.is_file() {
        let root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let root = if root.as_os_str().is_empty() { PathBuf::from(".") } else { root };
        let mut diagnostics = Vec::new();
        let mut files = vec![read_source(path, display_path(path), &mut diagnostics)?];
        files.extend(sibling_workflow_files(path));
        return Ok(Pipeline { root, files, diagnostics });
    }
    let root_names = names_in(path)?;
    let folder = path.join(WOODPECKER_FOLDER);
    let folder_names = if folder.is_dir() { Some(names_in(&folder)?) } else { None };
    let root_refs: Vec<&str> = root_names.iter().map(String::as_str).collect();
    let folder_refs: Option<Vec<&str>> = folder_names.as_ref().map(|names| names.iter().map(String::as_str).collect());
    let mut relative = discover(&root_refs, folder_refs.as_deref());
    let mut root = path.to_path_buf();
    if relative.is_empty() {
        // A custom config folder: every YAML file in it is a workflow.
        relative = root_names.iter().filter(|name| name.ends_with(".yml") || name.ends_with(".yaml")).cloned().collect();
        if relative.is_empty() {
            bail!("no pipeline found in {}: expected .woodpecker/*.yml, .woodpecker.yml or .drone.yml", path.display());
        }
        root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    }
    let mut diagnostics = Vec::new();
    let mut files = Vec::with_capacity(relative.len());
    for name in &relative {
        let full = path.join(name);
        files.push(read_source(&full, display_path(&full), &mut diagnostics)?);
    }
    Ok(Pipeline { root, files, diagnostics })
}

/// The other workflow files of a `.woodpecker/` folder when one of its files is planned alone:
/// their workflows' names make a `depends_on` on them a dependency left out, not an error.
/// Unreadable ones are skipped: they are not what was asked for.
fn sibling_workflow_files(path: &Path) -> Vec<SourceFile> {
    let Some(folder) = path.parent().filter(|folder| folder.file_name().is_some_and(|name| name == WOODPECKER_FOLDER)) else {
        return Vec::new();
    };
    let Ok(names) = names_in(folder) else { return Vec::new() };
    names
        .iter()
        .filter(|name| {
            (name.ends_with(".yml") || name.ends_with(".yaml")) && Some(name.as_str()) != path.file_name().and_then(|own| own.to_str())
        })
        .filter_map(|name| {
            let full = folder.join(name);
            let text = fs::read_to_string(&full).ok()?;
            Some(SourceFile::sibling(display_path(&full), text))
        })
        .collect()
}

/// Loads several paths: each folder is its own pipeline; files given together that sit in the
/// same folder form one pipeline (so that `depends_on` between them resolves).
pub(crate) fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Pipeline>> {
    let mut pipelines: Vec<(bool, Pipeline)> = Vec::new();
    for path in paths {
        let is_file = path.is_file();
        let mut pipeline = load(path)?;
        match pipelines.iter_mut().find(|(from_file, existing)| *from_file && is_file && existing.root == pipeline.root) {
            Some((_, existing)) => {
                existing.files.append(&mut pipeline.files);
                existing.diagnostics.append(&mut pipeline.diagnostics);
                // A file given itself is planned, not a sibling of another; siblings once each.
                let given: Vec<String> = existing.files.iter().filter(|file| !file.sibling).map(|file| file.path.clone()).collect();
                let mut seen = std::collections::HashSet::new();
                existing.files.retain(|file| !file.sibling || (!given.contains(&file.path) && seen.insert(file.path.clone())));
            }
            None => pipelines.push((is_file, pipeline)),
        }
    }
    Ok(pipelines.into_iter().map(|(_, pipeline)| pipeline).collect())
}
