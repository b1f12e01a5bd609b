//! Every Rust file opens with a `//!` module doc: what it is for, before how it does it.

use std::path::{Path, PathBuf};

/// Whether `text`, the contents of a `.rs` file, lacks a `//!` line before its first item.
/// Blank lines and `//` comments (a licence header, a lint note) may come first.
pub fn lacks_module_doc(text: &str) -> bool {
    for line in text.lines().map(str::trim_start) {
        if line.starts_with("//!") {
            return false;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        return true;
    }
    true
}

/// The `.rs` files below `dir`, sorted, skipping `target` folders and hidden ones.
pub fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
